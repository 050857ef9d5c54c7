#!/usr/bin/env python
"""Galley on three nodes behind HAProxy (tests/cluster.py): how far it scales on this machine.

Run from the repository root, as root or as a user who can run PostgreSQL's binaries:

    python benchmarks/cluster.py                                  # the full run (about 8 min)
    python benchmarks/cluster.py --uploads 4 --upload-mib 64      # smaller uploads
    python benchmarks/cluster.py --json > cluster.json            # the same figures, machine-readable

One run starts one cluster (PostgreSQL, SeaweedFS master + 2 volume servers + filer + S3 gateway,
three `galley serve` nodes, HAProxy; all on 127.0.0.1, in a new folder under /tmp that is removed
at the end unless --keep) and prints, each beside its baseline:

1. read throughput at the balancer with 1, 2 and 3 nodes in rotation (the others set to MAINT on
   HAProxy's admin socket; they keep running) against the same load on one node directly;
2. N concurrent uploads of M MiB through the balancer against `cp` of the same bytes;
3. image versions created by C concurrent clients through the balancer: rate, 5xx, duplicates;
4. job pickup latency (operation queued -> claimed) on PostgreSQL with 1 and 3 worker nodes.

Progress goes to stderr, the table to stdout. See benchmarks/README.md, "Several nodes".
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import datetime
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
for path in (ROOT, ROOT / "benchmarks"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

# benchmarks/control_plane.py: wrk or its Python load generator, and percentiles
from control_plane import Target, drive, percentile  # noqa: E402
from tests.cluster import Cluster  # noqa: E402

SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
GROUP = "bench-rg"
LOCATION = "eastus"
GALLERY = "benchgal"
READ_DEFINITION = "reads"
LOAD_DEFINITION = "load"
GALLERY_API = "2026-03-03"
DISK_API = "2026-03-02"
GROUP_API = "2024-11-01"
MiB = 1024 * 1024
LEASE_SECONDS = 10.0  # galley.jobs.worker.LEASE_SECONDS: a claim sets lease_until = now + this


def log(message: str) -> None:
    print(f"[cluster-bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def group_id() -> str:
    return f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{GROUP}"


def compute(path: str) -> str:
    return f"{group_id()}/providers/Microsoft.Compute/{path}"


def definition_id(name: str) -> str:
    return compute(f"galleries/{GALLERY}/images/{name}")


def version_path(definition: str, version: str) -> str:
    return f"{definition_id(definition)}/versions/{version}"


# ---- CPU: who used the two CPUs ---------------------------------------------------------------

_TICKS = os.sysconf("SC_CLK_TCK")


def _stat(pid: int) -> tuple[int, float, float] | None:
    """(ppid, own CPU s, reaped children's CPU s) of a process."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            raw = stat.read()
    except OSError:
        return None
    fields = raw[raw.rindex(")") + 2:].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICKS, (int(fields[13]) + int(fields[14])) / _TICKS


def tree_cpu(root: int | None) -> float:
    """CPU seconds of `root`, its live descendants and its reaped children (PostgreSQL's backends)."""
    if root is None:
        return 0.0
    table = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (found := _stat(int(entry))) is not None:
            table[int(entry)] = found
    if root not in table:
        return 0.0
    children: dict[int, list[int]] = {}
    for pid, (ppid, _, _) in table.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0.0, [root]
    while todo:  # a live process's CPU is in no one's reaped-children figure yet: no double count
        pid = todo.pop()
        total += table[pid][1] + table[pid][2]
        todo.extend(children.get(pid, ()))
    return total


def machine_busy() -> float:
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq = values[:7]
    return (user + nice + system + irq + softirq) / _TICKS


class CpuMeter:
    """CPU cores (CPU seconds / wall seconds) of each group of the cluster's processes over a
    `with` block, the load generator (this process and its children: wrk, curl, threads), the
    whole machine, and what is left: other people's work."""

    def __init__(self, cluster: Cluster) -> None:
        self.groups = {node.name: [node.name] for node in cluster.nodes}
        self.groups.update({"haproxy": ["balancer"], "postgres": ["postgres"],
                            "seaweedfs": ["weed-master", "weed-volume1", "weed-volume2", "weed-filer", "s3"]})
        self.cluster = cluster

    def _sample(self) -> dict[str, float]:
        sample = {group: sum(tree_cpu(self.cluster.pid(name)) for name in names)
                  for group, names in self.groups.items()}
        # The cluster's processes are this one's children too: the client is what is left.
        sample["client"] = tree_cpu(os.getpid()) - sum(sample.values())
        sample["machine"] = machine_busy()
        return sample

    def __enter__(self) -> "CpuMeter":
        self.start, self.started = self._sample(), time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        wall = time.perf_counter() - self.started
        end = self._sample()
        self.cores = {k: (end[k] - self.start[k]) / wall for k in end}
        ours = sum(v for k, v in self.cores.items() if k != "machine")
        self.cores["others"] = max(0.0, self.cores["machine"] - ours)
        self.wall = wall


def cpu_text(cores: dict[str, float]) -> str:
    nodes = "+".join(f"{cores[k]:.2f}" for k in sorted(cores) if k.startswith("node"))
    return (f"nodes {nodes}, haproxy {cores['haproxy']:.2f}, pg {cores['postgres']:.2f}, "
            f"weed {cores['seaweedfs']:.2f}, client {cores['client']:.2f}; "
            f"machine {cores['machine']:.2f}/{os.cpu_count()} (others {cores['others']:.2f})")


# ---- the cluster and its token ----------------------------------------------------------------

def admin_token(cluster: Cluster) -> str:
    creds = cluster.credentials()
    answer = httpx.post(f"{cluster.url}/{creds['tenantId']}/oauth2/v2.0/token", verify=cluster.verify(), data={
        "grant_type": "client_credentials", "client_id": creds["clientId"],
        "client_secret": creds["clientSecret"], "scope": f"{cluster.url}/.default"}, timeout=30)
    answer.raise_for_status()
    return answer.json()["access_token"]


def client(cluster: Cluster, token: str, base: str | None = None) -> httpx.Client:
    return httpx.Client(base_url=base or cluster.url, verify=cluster.verify(), timeout=120,
                        headers={"Authorization": f"Bearer {token}"})


def put(http: httpx.Client, path: str, api: str, body: dict) -> httpx.Response:
    answer = http.put(path, params={"api-version": api}, json=body)
    if answer.status_code not in (200, 201, 202):
        raise RuntimeError(f"PUT {path} -> {answer.status_code}: {answer.text[:400]}")
    return answer


def wait_terminal(http: httpx.Client, path: str, api: str, timeout: float = 120.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        state = http.get(path, params={"api-version": api}).json().get("properties", {}).get("provisioningState")
        if state in ("Succeeded", "Failed", "Canceled") or time.monotonic() > deadline:
            return state
        time.sleep(0.05)


def snapshot_body() -> dict:
    return {"location": LOCATION, "properties": {"creationData": {"createOption": "Empty"},
                                                 "diskSizeGB": 1, "osType": "Linux"}}


def version_body(snapshot: str) -> dict:
    return {"location": LOCATION, "properties": {
        "publishingProfile": {}, "storageProfile": {"osDiskImage": {"source": {"id": compute(f"snapshots/{snapshot}")}}}}}


def seed(http: httpx.Client, snapshots: int) -> None:
    put(http, group_id(), GROUP_API, {"location": LOCATION})
    put(http, compute(f"galleries/{GALLERY}"), GALLERY_API, {"location": LOCATION})
    for name in (READ_DEFINITION, LOAD_DEFINITION):
        put(http, definition_id(name), GALLERY_API, {"location": LOCATION, "properties": {
            "osType": "Linux", "osState": "Generalized",
            "identifier": {"publisher": "bench", "offer": "cluster", "sku": name}}})
        wait_terminal(http, definition_id(name), GALLERY_API)
    for s in range(snapshots):
        put(http, compute(f"snapshots/snap-{s}"), DISK_API, snapshot_body())
        wait_terminal(http, compute(f"snapshots/snap-{s}"), DISK_API)


# ---- 1. reads ---------------------------------------------------------------------------------

def haproxy_admin(cluster: Cluster, command: str) -> str:
    with socket.socket(socket.AF_UNIX) as admin:
        admin.connect(str(cluster.root / "haproxy" / "admin.sock"))
        admin.sendall(command.encode() + b"\n")
        answer = b""
        while chunk := admin.recv(65536):
            answer += chunk
    return answer.decode()


def set_rotation(cluster: Cluster, count: int) -> None:
    """The first `count` nodes in HAProxy's rotation, the others in MAINT (still running)."""
    for index, node in enumerate(cluster.nodes):
        haproxy_admin(cluster, f"set server nodes/{node.name} state {'ready' if index < count else 'maint'}")
    for node in cluster.nodes[:count]:
        cluster.wait_in_rotation(node)
    view = cluster.balancer_view()
    assert all(view[n.name].startswith("MAINT") for n in cluster.nodes[count:]), view


def reads(cluster: Cluster, token: str, args) -> dict:
    log("reads: seeding 10 versions")
    with client(cluster, token) as http:
        for v in range(10):
            path = version_path(READ_DEFINITION, f"1.0.{v}")
            put(http, path, GALLERY_API, version_body("snap-0"))
            if wait_terminal(http, path, GALLERY_API) != "Succeeded":
                raise RuntimeError(f"{path} did not succeed")
    headers = {"Authorization": f"Bearer {token}"}
    kinds = {"GET version": f"{version_path(READ_DEFINITION, '1.0.5')}?api-version={GALLERY_API}",
             "LIST 10 versions": f"{definition_id(READ_DEFINITION)}/versions?api-version={GALLERY_API}"}
    configs = {"node1 direct (baseline)": (cluster.nodes[0].url, 3),
               **{f"balancer, {n} node{'s' if n > 1 else ''}": (cluster.url, n) for n in (1, 2, 3)}}
    runs: dict[tuple[str, str], list[dict]] = {}
    for round_no in range(args.rounds):
        for config, (base, in_rotation) in configs.items():
            set_rotation(cluster, in_rotation)
            for kind, path in kinds.items():
                target = Target(base + path, headers, str(cluster.ca))
                if round_no == 0 and args.warmup:
                    drive(target, args.loadgen, args.warmup, args.connections, args.threads)
                log(f"reads: round {round_no + 1}/{args.rounds}, {config}, {kind}, {args.duration} s")
                with CpuMeter(cluster) as meter:
                    result = drive(target, args.loadgen, args.duration, args.connections, args.threads)
                result["cpu"] = meter.cores
                runs.setdefault((config, kind), []).append(result)
    set_rotation(cluster, 3)
    out = {}
    for (config, kind), results in runs.items():
        best = sorted(results, key=lambda r: r["requests_per_s"])[len(results) // 2]  # the median run
        out.setdefault(config, {})[kind] = {**best, "all_requests_per_s": [r["requests_per_s"] for r in results]}
    return out


# ---- 2. uploads -------------------------------------------------------------------------------

def du_bytes(folder: Path) -> int:
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def uploads(cluster: Cluster, token: str, args, work: Path) -> dict:
    count, size = args.uploads, args.upload_mib * MiB
    total_mib = count * args.upload_mib
    sources, copies = work / "sources", work / "copies"
    sources.mkdir()
    copies.mkdir()
    log(f"uploads: writing {count} x {args.upload_mib} MiB of random data to {sources}")
    files = []
    for i in range(count):
        path = sources / f"disk-{i}.raw"
        with open(path, "wb") as out:
            for _ in range(0, size, 16 * MiB):
                out.write(os.urandom(min(16 * MiB, size)))
        files.append(path)
    os.sync()

    log(f"uploads: baseline cp of {total_mib} MiB + sync")
    started = time.perf_counter()
    subprocess.run(["cp", *map(str, files), str(copies)], check=True)
    os.sync()
    cp_seconds = time.perf_counter() - started
    shutil.rmtree(copies)
    os.sync()

    with client(cluster, token) as http:
        disks = [compute(f"disks/upload-{i}") for i in range(count)]
        for disk in disks:
            put(http, disk, DISK_API, {"location": LOCATION, "properties": {
                "osType": "Linux", "creationData": {"createOption": "Upload", "uploadSizeBytes": max(size, 20 * MiB) + 512}}})
            wait_terminal(http, disk, DISK_API)
    header_file = work / "auth.header"  # the token stays off curl's command line (ps shows it)
    header_file.write_text(f"Authorization: Bearer {token}\n")
    os.chmod(header_file, 0o600)
    weed = cluster.root / "seaweedfs"
    stored_before = du_bytes(weed / "volume1") + du_bytes(weed / "volume2")
    log(f"uploads: {count} concurrent PUT {{disk}}/upload of {args.upload_mib} MiB through the balancer")
    with CpuMeter(cluster) as meter:
        running = []
        for disk, path in zip(disks, files):
            argv = ["curl", "-sS", "-H", f"@{header_file}", "--cacert", str(cluster.ca), "-X", "PUT",
                    "-T", str(path), "-o", "/dev/null", "-w", "%{http_code} %{time_total}", "--max-time", "3600",
                    f"{cluster.url}{disk}/upload?api-version={DISK_API}&format=raw"]
            running.append(subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
        answers = [process.communicate() for process in running]
    codes, times = [], []
    for out, err in answers:
        parts = out.split()
        codes.append(parts[0] if parts else f"curl: {err.strip()[:100]}")
        times.append(float(parts[1]) if len(parts) > 1 else float("nan"))
    os.sync()
    stored = du_bytes(weed / "volume1") + du_bytes(weed / "volume2") - stored_before
    shutil.rmtree(sources)
    header_file.unlink()
    failed = [c for c in codes if c != "200"]
    return {"count": count, "mib_each": args.upload_mib, "total_mib": total_mib,
            "wall_s": meter.wall, "mib_per_s": total_mib / meter.wall,
            "per_upload_s": {"p50": statistics.median(times), "max": max(times)},
            "failed": failed, "cpu": meter.cores, "cp_s": cp_seconds, "cp_mib_per_s": total_mib / cp_seconds,
            "seaweedfs_volume_bytes_added": stored}


# ---- 3. versions ------------------------------------------------------------------------------

def versions(cluster: Cluster, token: str, args) -> dict:
    clients, total = args.clients, args.versions
    statuses: dict[str, int] = {}
    put_ms: list[float] = []
    failed_states: list[str] = []
    lock = threading.Lock()

    def one_client(number: int) -> None:
        snapshot = f"snap-{number}"
        with client(cluster, token) as http:
            for i in range(number, total, clients):
                path = version_path(LOAD_DEFINITION, f"1.{number}.{i // clients}")
                start = time.perf_counter()
                try:
                    answer = http.put(path, params={"api-version": GALLERY_API}, json=version_body(snapshot))
                    code = str(answer.status_code)
                except httpx.HTTPError as error:
                    code = type(error).__name__
                elapsed = (time.perf_counter() - start) * 1000
                state = "Succeeded"
                if code in ("200", "201"):
                    state = answer.json()["properties"]["provisioningState"]
                    if state not in ("Succeeded", "Failed"):  # the next one from this source must wait
                        state = wait_terminal(http, path, GALLERY_API)
                with lock:
                    statuses[code] = statuses.get(code, 0) + 1
                    put_ms.append(elapsed)
                    if state != "Succeeded":
                        failed_states.append(f"{path}: {state}")

    log(f"versions: {total} versions by {clients} concurrent clients through the balancer")
    with CpuMeter(cluster) as meter:
        threads = [threading.Thread(target=one_client, args=(n,)) for n in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    log("versions: listing them through the balancer")
    names: list[str] = []
    states: dict[str, int] = {}
    with client(cluster, token) as http:
        url = f"{definition_id(LOAD_DEFINITION)}/versions?api-version={GALLERY_API}"
        while url:
            page = http.get(url)
            page.raise_for_status()
            body = page.json()
            for item in body["value"]:
                names.append(item["name"])
                state = item["properties"]["provisioningState"]
                states[state] = states.get(state, 0) + 1
            url = body.get("nextLink")
    put_ms.sort()
    return {"versions": total, "clients": clients, "wall_s": meter.wall, "versions_per_s": total / meter.wall,
            "statuses": statuses, "5xx": sum(n for c, n in statuses.items() if c.startswith("5")),
            "transport_errors": sum(n for c, n in statuses.items() if not c.isdigit()),
            "put_ms": {"p50": percentile(put_ms, 50), "p99": percentile(put_ms, 99), "max": put_ms[-1]},
            "not_succeeded": failed_states[:5], "listed": len(names), "distinct": len(set(names)),
            "duplicates": len(names) - len(set(names)), "listed_states": states, "cpu": meter.cores}


# ---- 4. job pickup ----------------------------------------------------------------------------

def set_roles(cluster: Cluster, roles: tuple[str | None, ...]) -> None:
    for node, role in zip(cluster.nodes, roles):
        if node.role != role:
            log(f"pickup: restarting {node.name} with --role {role or 'all'}")
            node.role = role
            cluster.restart_node(node)


def pickup(cluster: Cluster, token: str, args, database, tag: str, base: str) -> dict:
    """args.jobs image definitions PUT by args.clients clients at `base`; each is an operation.
    Queued = its start_time (written by the API node), claimed = lease_until - LEASE_SECONDS (the
    claim's UPDATE; these jobs are far shorter than a lease renewal's period)."""
    from sqlalchemy import text

    names = [f"pick-{tag}-{i:04d}" for i in range(args.jobs)]
    codes: list[int] = []

    def submit(some: list[str]) -> None:
        with client(cluster, token, base) as http:
            for name in some:
                codes.append(http.put(definition_id(name), params={"api-version": GALLERY_API}, json={
                    "location": LOCATION, "properties": {"osType": "Linux", "osState": "Generalized",
                                                         "identifier": {"publisher": "p", "offer": "o", "sku": name}}}
                                      ).status_code)

    threads = [threading.Thread(target=submit, args=(names[i::args.clients],)) for i in range(args.clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    query = text("SELECT o.start_time, o.lease_until, o.lease_owner, o.attempts, o.status FROM operations o "
                 "WHERE o.resource_id LIKE :pattern")
    deadline = time.monotonic() + 120
    while True:
        with database.connect() as db:
            rows = db.execute(query, {"pattern": f"%/images/pick-{tag}-%"}).mappings().all()
            nodes = dict(db.execute(text("SELECT id, name FROM nodes")).all())
        if len(rows) >= args.jobs and all(r["status"] != "InProgress" for r in rows) or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    latencies, by_node = [], {}
    for row in rows:
        queued = datetime.fromisoformat(row["start_time"].replace("Z", "+00:00")).timestamp()
        latencies.append((row["lease_until"] - LEASE_SECONDS - queued) * 1000)
        owner = nodes.get((row["lease_owner"] or "").split(".", 1)[0], row["lease_owner"])
        by_node[owner] = by_node.get(owner, 0) + 1
    latencies.sort()
    return {"jobs": len(rows), "expected": args.jobs, "bad_puts": sum(1 for c in codes if c not in (200, 201)),
            "retried": sum(1 for r in rows if r["attempts"] != 1),
            "not_succeeded": sum(1 for r in rows if r["status"] != "Succeeded"),
            "p50_ms": percentile(latencies, 50), "p95_ms": percentile(latencies, 95),
            "max_ms": latencies[-1] if latencies else float("nan"), "claimed_by": dict(sorted(by_node.items()))}


def pickups(cluster: Cluster, token: str, args) -> dict:
    from sqlalchemy import create_engine

    database = create_engine(cluster.database_url)
    out = {}
    try:
        set_roles(cluster, (None, None, None))
        log(f"pickup: {args.jobs} jobs, 3 worker nodes, queued at the balancer")
        out["3 worker nodes, queued at the balancer"] = pickup(cluster, token, args, database, "w3", cluster.url)
        set_roles(cluster, (None, "api", "api"))
        log(f"pickup: {args.jobs} jobs, 1 worker node, queued at the balancer")
        out["1 worker node, queued at the balancer"] = pickup(cluster, token, args, database, "w1", cluster.url)
        log(f"pickup: {args.jobs} jobs, 1 worker node, queued at api-only node2")
        out["1 worker node, queued at api-only node2"] = pickup(cluster, token, args, database, "w1api",
                                                               cluster.nodes[1].url)
    finally:
        database.dispose()
    return out


# ---- report -----------------------------------------------------------------------------------

def versions_of_tools() -> dict:
    def first_line(argv: list[str]) -> str:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
            return (done.stdout or done.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            return "?"

    from tests.postgres import _bin
    from tests.s3server import find_weed
    return {"haproxy": first_line(["haproxy", "-v"]), "postgres": first_line([_bin("postgres"), "--version"]),
            "weed": first_line([find_weed() or "weed", "version"]), "python": platform.python_version()}


def render(results: dict, args) -> str:
    env = results["environment"]
    lines = ["Galley cluster benchmark: 3 `galley serve` nodes (HTTPS) behind HAProxy (HTTPS in, HTTPS to the nodes),",
             "PostgreSQL, SeaweedFS (master, 2 volume servers with replication 001, filer, S3 gateway), all on 127.0.0.1",
             f"{env['cpus']} CPUs shared by every process here (nodes, balancer, PostgreSQL, SeaweedFS, load generator):",
             "scaling is bounded by the machine, not by Galley; the CPU columns say who used the CPUs.",
             f"load average at start {env['load_start']}, at end {env['load_end']}; cluster up in "
             f"{results['cluster_up_s']:.1f} s; {env['tools']}", ""]
    if "reads" in results:
        lines += [f"1. Read throughput ({args.loadgen}, {args.connections} connections, {args.duration} s a run, "
                  f"median of {args.rounds} interleaved rounds; nodes out of rotation are MAINT on HAProxy, still running)",
                  f"  {'target':<26} {'request':<17} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6}  CPU cores during the run"]
        for config, kinds in results["reads"].items():
            for kind, r in kinds.items():
                errors = r["non_2xx"] + r["socket_errors"]
                lines.append(f"  {config:<26} {kind:<17} {r['requests_per_s']:>8.0f} {r.get('p50_ms', float('nan')):>7.1f} "
                             f"{r.get('p99_ms', float('nan')):>7.1f} {errors:>6}  {cpu_text(r['cpu'])}")
        base = results["reads"]["node1 direct (baseline)"]
        for kind in base:
            ratios = "  ".join(f"{n} node{'s' if n > 1 else ''} {results['reads'][c][kind]['requests_per_s'] / base[kind]['requests_per_s']:.2f}x"
                               for n, c in ((1, "balancer, 1 node"), (2, "balancer, 2 nodes"), (3, "balancer, 3 nodes")))
            lines.append(f"  {kind}: balancer / direct: {ratios}")
        lines.append("")
    if "uploads" in results:
        u = results["uploads"]
        lines += [f"2. {u['count']} concurrent uploads of {u['mib_each']} MiB of random data through the balancer "
                  f"(curl -T, PUT {{disk}}/upload, HTTPS to HAProxy, HTTPS to the nodes; chunks land in SeaweedFS S3)",
                  f"  galley: {u['total_mib']} MiB in {u['wall_s']:.1f} s = {u['mib_per_s']:.0f} MiB/s aggregate; "
                  f"per upload p50 {u['per_upload_s']['p50']:.1f} s, max {u['per_upload_s']['max']:.1f} s; "
                  f"failed {len(u['failed'])}{' ' + str(u['failed'][:3]) if u['failed'] else ''}",
                  f"  cp + sync of the same {u['total_mib']} MiB on the same disk: {u['cp_s']:.1f} s = {u['cp_mib_per_s']:.0f} MiB/s"
                  f"  -> galley / cp = {u['mib_per_s'] / u['cp_mib_per_s']:.2f}",
                  f"  SeaweedFS volume files grew by {u['seaweedfs_volume_bytes_added'] / MiB:.0f} MiB "
                  f"({u['seaweedfs_volume_bytes_added'] / MiB / u['total_mib']:.2f}x the data: replication 001 keeps 2 copies)",
                  f"  CPU cores: {cpu_text(u['cpu'])}", ""]
    if "versions" in results:
        v = results["versions"]
        lines += [f"3. {v['versions']} image versions (empty 1 GB snapshot sources) by {v['clients']} concurrent clients "
                  "through the balancer, each waiting for its version to succeed before its next",
                  f"  {v['wall_s']:.1f} s = {v['versions_per_s']:.1f} versions/s; PUT p50 {v['put_ms']['p50']:.0f} ms, "
                  f"p99 {v['put_ms']['p99']:.0f} ms, max {v['put_ms']['max']:.0f} ms; statuses {v['statuses']}",
                  f"  5xx: {v['5xx']}   transport errors: {v['transport_errors']}   not Succeeded: {len(v['not_succeeded'])}"
                  f"{' ' + str(v['not_succeeded']) if v['not_succeeded'] else ''}",
                  f"  listed through the balancer: {v['listed']} versions, {v['distinct']} distinct names, "
                  f"duplicates {v['duplicates']}, states {v['listed_states']}",
                  f"  CPU cores: {cpu_text(v['cpu'])}", ""]
    if "pickup" in results:
        lines += [f"4. Job pickup on PostgreSQL: queued (operations.start_time) -> claimed (lease_until - {LEASE_SECONDS:.0f} s), "
                  f"{args.jobs} image-definition creations by {args.clients} clients; workers poll every 0.5 s and a "
                  "node's own API wakes its own worker at once",
                  f"  {'configuration':<42} {'jobs':>5} {'p50 ms':>7} {'p95 ms':>7} {'max ms':>7} {'retried':>7} {'failed':>6}  claimed by"]
        for config, p in results["pickup"].items():
            lines.append(f"  {config:<42} {p['jobs']:>5} {p['p50_ms']:>7.1f} {p['p95_ms']:>7.1f} {p['max_ms']:>7.1f} "
                         f"{p['retried']:>7} {p['not_succeeded'] + p['bad_puts']:>6}  {p['claimed_by']}")
        lines.append("")
    ok = results.get("checks_ok")
    lines.append(f"checks: {'all passed' if ok else 'FAILED: ' + '; '.join(results['failures'])}")
    return "\n".join(lines)


def checks(results: dict) -> list[str]:
    failures = []
    for config, kinds in results.get("reads", {}).items():
        for kind, r in kinds.items():
            if r["non_2xx"] or r["socket_errors"]:
                failures.append(f"reads {config} {kind}: {r['non_2xx']} non-2xx, {r['socket_errors']} socket errors")
    if (u := results.get("uploads")) and u["failed"]:
        failures.append(f"uploads: {len(u['failed'])} failed")
    if v := results.get("versions"):
        if v["5xx"] or v["transport_errors"] or v["duplicates"] or v["not_succeeded"] or v["listed"] != v["versions"]:
            failures.append("versions: 5xx, errors, duplicates or missing versions")
    for config, p in results.get("pickup", {}).items():
        if p["jobs"] != p["expected"] or p["not_succeeded"] or p["bad_puts"]:
            failures.append(f"pickup {config}: failed jobs")
    return failures


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=int, default=8, help="seconds of each read run (default 8)")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up before each read target's first run")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds of the read runs (median; default 2)")
    parser.add_argument("--connections", type=int, default=16, help="load generator connections (default 16)")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    parser.add_argument("--loadgen", choices=("auto", "wrk", "python"), default="auto")
    parser.add_argument("--uploads", type=int, default=20, help="concurrent uploads (default 20)")
    parser.add_argument("--upload-mib", type=int, default=256, help="MiB of each upload (default 256)")
    parser.add_argument("--versions", type=int, default=1000, help="versions to create (default 1000)")
    parser.add_argument("--clients", type=int, default=10, help="concurrent clients for versions and jobs (default 10)")
    parser.add_argument("--jobs", type=int, default=200, help="jobs for each pickup configuration (default 200)")
    parser.add_argument("--only", default="reads,uploads,versions,pickup",
                        help="comma list of sections to run (default all)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--keep", action="store_true", help="leave the cluster's folder (stopped) for its logs")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.loadgen == "auto":
        args.loadgen = "wrk" if shutil.which("wrk") else "python"
    sections = set(args.only.split(","))
    results: dict = {"environment": {"cpus": os.cpu_count(), "load_start": "%.2f %.2f %.2f" % os.getloadavg(),
                                     "tools": ", ".join(f"{k} {v}" for k, v in versions_of_tools().items())}}
    work = Path(tempfile.mkdtemp(prefix="galley-bench-cluster-"))
    os.chmod(work, 0o755)  # PostgreSQL runs as its own user and must reach its folder
    cluster = Cluster(work / "cluster", node_env={"GALLEY_DEFAULT_SUBSCRIPTION_ID": SUBSCRIPTION})
    try:
        log(f"starting the cluster in {cluster.root}")
        started = time.perf_counter()
        cluster.up()
        results["cluster_up_s"] = time.perf_counter() - started
        token = admin_token(cluster)
        with client(cluster, token) as http:
            seed(http, max(args.clients, 1))
        if "reads" in sections:
            results["reads"] = reads(cluster, token, args)
        if "uploads" in sections:
            results["uploads"] = uploads(cluster, token, args, work)
        if "versions" in sections:
            results["versions"] = versions(cluster, token, args)
        if "pickup" in sections:
            results["pickup"] = pickups(cluster, token, args)
    finally:
        log("stopping the cluster")
        cluster.down()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            log(f"kept {work}")
    results["environment"]["load_end"] = "%.2f %.2f %.2f" % os.getloadavg()
    results["failures"] = checks(results)
    results["checks_ok"] = not results["failures"]
    print(json.dumps(results, indent=2) if args.json else render(results, args))
    return 0 if results["checks_ok"] else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
