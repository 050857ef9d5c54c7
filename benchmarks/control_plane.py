#!/usr/bin/env python
"""Galley control-plane benchmark: seeding, in-process latency, loopback throughput, listing, RSS.

Run from the repository root:

    python benchmarks/control_plane.py                 # N=10,000 versions, human-readable table
    python benchmarks/control_plane.py --versions 2000 # smaller, quicker
    python benchmarks/control_plane.py --json          # machine-readable results on stdout

Progress goes to stderr; the table (or the JSON document) goes to stdout. Everything runs on a
fresh temporary GALLEY_HOME (SQLite, the embedded default) that is removed at the end unless
--keep-home is given. Servers listen on 127.0.0.1 only and are stopped by their own process id.
See benchmarks/README.md for what each figure means and the goals.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
if str(ROOT / "benchmarks") not in sys.path:
    sys.path.insert(0, str(ROOT / "benchmarks"))

import galley_server  # noqa: E402  (benchmarks/galley_server.py: `galley serve`, its CA and its tokens)

SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
GROUP = "bench-rg"
GALLERY = "benchgallery"
DEFINITION = "bench-def"
SNAPSHOT = "bench-snap"
LOCATION = "eastus"
GALLERY_API = "2026-03-03"
RESOURCES_API = "2024-03-01"
DISK_API = "2025-01-02"

GOAL_P99_MS = 5.0
GOAL_RATIO = 0.5
GOAL_LIST_S = 2.0
GOAL_RSS_MB = 150.0


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---- ids and paths ---------------------------------------------------------------------------

def group_id() -> str:
    return f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{GROUP}"


def compute_path() -> str:
    return f"{group_id()}/providers/Microsoft.Compute"


def definition_id(name: str = DEFINITION) -> str:
    return f"{compute_path()}/galleries/{GALLERY}/images/{name}"


def definition_names(count: int) -> list[str]:
    """The seeded definitions: DEFINITION alone, or DEFINITION-000, -001, ... when there are several."""
    return [DEFINITION] if count == 1 else [f"{DEFINITION}-{d:03d}" for d in range(count)]


def snapshot_id(index: int) -> str:
    return f"{compute_path()}/snapshots/{SNAPSHOT}-{index}"


def version_name(i: int) -> str:
    """Distinct Major.Minor.Patch names; index order is version order."""
    return f"1.{i // 1000}.{i % 1000}"


def version_id(i: int, definition: str = DEFINITION) -> str:
    return f"{definition_id(definition)}/versions/{version_name(i)}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# ---- noise from the rest of the machine -------------------------------------------------------

_TICKS = os.sysconf("SC_CLK_TCK")


def _process_table() -> dict[int, tuple[int, float]]:
    """pid -> (ppid, CPU seconds so far) for every process we can read."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as stat:
                raw = stat.read()
        except OSError:
            continue
        fields = raw[raw.rindex(")") + 2:].split()
        table[int(entry)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / _TICKS)
    return table


def _descendants(table: dict[int, tuple[int, float]]) -> set[int]:
    """Live processes started by this one (servers, wrk, the Python load generator)."""
    me, found = os.getpid(), set()
    for pid in table:
        chain, current = [], pid
        while current in table and current != me and current > 1 and len(chain) < 64:
            chain.append(current)
            current = table[current][0]
        if current == me:
            found.update(chain)
    return found


def _our_cpu() -> float:
    """CPU seconds of this process, its reaped children and its live descendants."""
    times = os.times()
    table = _process_table()
    live = sum(table[pid][1] for pid in _descendants(table))
    return times.user + times.system + times.children_user + times.children_system + live


def _machine_cpu() -> tuple[float, float]:
    """(busy, steal) CPU seconds of the whole machine since boot, from /proc/stat."""
    with open("/proc/stat") as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (values + [0] * 8)[:8]
    return (user + nice + system + irq + softirq) / _TICKS, steal / _TICKS


class Phase:
    """Wall time of a phase, and the CPU that the rest of the machine used meanwhile: the whole
    machine's busy time (/proc/stat) less this benchmark's own (itself, its servers, its load
    generator). Other engineers' test runs share these CPUs. Also the hypervisor's steal time."""

    def __init__(self, name: str, record: dict) -> None:
        self.name, self.record = name, record

    def __enter__(self) -> "Phase":
        self.load = os.getloadavg()[0]
        self.machine, self.steal = _machine_cpu()
        self.ours = _our_cpu()
        self.started = time.perf_counter()
        return self

    def __exit__(self, *exc) -> None:
        wall = time.perf_counter() - self.started
        machine, steal = _machine_cpu()
        ours = _our_cpu() - self.ours
        other = max(0.0, machine - self.machine - ours)
        self.record[self.name] = {"wall_s": wall, "our_cpu_s": ours, "other_cpu_s": other,
                                  "other_cpu_cores": other / wall if wall else 0.0,
                                  "steal_cores": (steal - self.steal) / wall if wall else 0.0,
                                  "load_avg_1m_at_start": self.load}


# ---- statistics ------------------------------------------------------------------------------

def percentile(sorted_values: list[float], p: float) -> float:
    """Nearest-rank percentile of an already sorted list."""
    if not sorted_values:
        return float("nan")
    rank = max(1, math.ceil(p / 100.0 * len(sorted_values)))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def summarize_ms(samples_ns: list[int]) -> dict:
    values = sorted(s / 1e6 for s in samples_ns)
    return {"calls": len(values), "p50_ms": percentile(values, 50), "p90_ms": percentile(values, 90),
            "p99_ms": percentile(values, 99), "max_ms": values[-1], "mean_ms": statistics.fmean(values)}


def time_calls(fn, calls: int, warmup: int, budget_s: float) -> list[int]:
    """Call fn() `warmup` times, then `calls` times (or until budget_s runs out); ns per call."""
    for _ in range(warmup):
        fn()
    samples: list[int] = []
    deadline = time.perf_counter() + budget_s
    clock = time.perf_counter_ns
    for _ in range(calls):
        start = clock()
        fn()
        samples.append(clock() - start)
        if time.perf_counter() > deadline:
            break
    return samples


# ---- 1. setup --------------------------------------------------------------------------------

def _relaxed_sync(dbapi_connection, _record, _proxy) -> None:
    dbapi_connection.execute("PRAGMA synchronous=NORMAL")


def _seed_versions(service, worker, versions: int, snapshots: int, names: list[str], per_definition: int,
                   started: float, deadline: float, report_every: int) -> None:
    from galley.domain.ids import IMAGE_VERSION_TYPE
    from galley.domain.service import ResourceRef

    for i in range(versions):
        name = version_name(i % per_definition)
        ref = ResourceRef(id=version_id(i % per_definition, names[i // per_definition]),
                          type=IMAGE_VERSION_TYPE, name=name, subscription_id=SUBSCRIPTION, resource_group=GROUP)
        service.put(ref, {"location": LOCATION, "properties": {
            "publishingProfile": {"targetRegions": [{"name": LOCATION, "regionalReplicaCount": 1}]},
            "storageProfile": {"osDiskImage": {"source": {"id": snapshot_id(i % snapshots)}}}}})
        if (i + 1) % snapshots == 0 or i + 1 == versions:
            worker.run_pending()  # every version of the batch becomes Succeeded
        if (i + 1) % report_every == 0:
            log(f"  seeded {i + 1}/{versions} versions ({time.perf_counter() - started:.1f} s)")
        if time.perf_counter() > deadline:
            raise RuntimeError(f"seeding took over 600 s; stopped after {i + 1} versions")


def seed(client, app, versions: int, snapshots: int, relaxed_sync: bool, definitions: int = 1) -> dict:
    """Group, snapshots, gallery and Linux definition(s) over in-process HTTP; N versions in-process.

    With `definitions` > 1 (names from definition_names), the N versions are spread evenly over
    them: version i goes to definition i // (N / definitions) with the name version_name of its
    place in that definition (N must be a multiple of `definitions`).

    Versions take their OS disk from `snapshots` Empty Linux snapshots in turn. The seed rule
    forbids a second version from a source while one is still Creating, so versions are put in
    batches of at most one per snapshot and the worker finishes each batch (run_pending) before
    the next. More than one snapshot also keeps the service's per-put "is a version being built
    from this source?" check small (it reads every version made from that source).
    """
    from sqlalchemy import event

    def put(path: str, api: str, body: dict) -> None:
        response = client.put(f"{path}?api-version={api}", json=body)
        if response.status_code not in (200, 201, 202):
            raise RuntimeError(f"PUT {path} -> {response.status_code}: {response.text}")

    started = time.perf_counter()
    put(group_id(), RESOURCES_API, {"location": LOCATION})
    for s in range(snapshots):
        put(snapshot_id(s), DISK_API, {"location": LOCATION, "properties": {
            "creationData": {"createOption": "Empty"}, "diskSizeGB": 30, "osType": "Linux"}})
    put(f"{compute_path()}/galleries/{GALLERY}", GALLERY_API, {"location": LOCATION})
    if definitions < 1 or versions % definitions:
        raise ValueError(f"{versions} versions cannot be spread evenly over {definitions} definitions")
    names = definition_names(definitions)
    per_definition = versions // definitions
    for d, definition in enumerate(names):
        put(definition_id(definition), GALLERY_API, {"location": LOCATION, "properties": {
            "osType": "Linux", "osState": "Generalized", "hyperVGeneration": "V2",
            "identifier": {"publisher": "bench", "offer": "galley",
                           "sku": "control-plane" if definitions == 1 else f"control-plane-{d:03d}"}}})
    app.state.worker.run_pending()

    service, worker = app.state.service, app.state.worker
    engine = app.state.store.engine
    if relaxed_sync:
        # Setup only: commits skip the fsync in this process's own engine (WAL stays crash-safe;
        # the last commits could be lost on power loss). The pool is emptied afterwards, so every
        # later connection, and the `galley serve` process, use Galley's own settings again.
        event.listen(engine, "checkout", _relaxed_sync)
        engine.dispose()
        # Likewise the content store's flush: every version's replication ends with
        # FolderStore.sync(), an os.sync() of the whole machine (the versions' sources are empty
        # snapshots, so there is nothing of theirs to flush). Restored below.
        from galley.content.object_store import FolderStore
        store_sync = FolderStore.__dict__["sync"]
        FolderStore.sync = lambda self: None
    versions_started = time.perf_counter()
    deadline = versions_started + 600
    report_every = max(1, versions // 10)
    try:
        _seed_versions(service, worker, versions, snapshots, names, per_definition, versions_started, deadline,
                       report_every)
    finally:
        if relaxed_sync:
            FolderStore.sync = store_sync
    done = time.perf_counter()
    if relaxed_sync:
        event.remove(engine, "checkout", _relaxed_sync)
        engine.dispose()
    return {"method": f"versions through the service layer in-process (ResourceService.put, then "
                      f"Worker.run_pending() after each batch of {snapshots}, one version per snapshot "
                      f"per batch); group, {snapshots} snapshots, gallery and "
                      + ("definition" if definitions == 1 else f"{definitions} definitions") + " through "
                      "in-process HTTP (TestClient)"
                      + ("; SQLite synchronous=NORMAL and the content store's os.sync() skipped while "
                         "seeding (no fsync per commit), Galley's own settings for everything measured"
                         if relaxed_sync else
                         "; Galley's own SQLite settings (fsync per commit)"),
            "relaxed_sync": relaxed_sync, "versions": versions, "snapshots": snapshots, "definitions": definitions,
            "total_s": done - started,
            "versions_s": done - versions_started,
            "versions_per_s": versions / (done - versions_started) if versions else 0.0}


# ---- 2. in-process latency -------------------------------------------------------------------

def asgi_timings(app, path: str, query: str, calls: int, warmup: int, budget_s: float,
                 token: str | None = None) -> list[int]:
    """Call the ASGI app directly (no client, no socket): the whole middleware/routing/threadpool
    stack, as uvicorn would drive it, minus HTTP parsing; with `Authorization: Bearer token` when
    a token is given. ns per call."""
    import asyncio

    headers = [(b"host", b"127.0.0.1"), (b"accept", b"application/json")]
    if token:
        headers.append((b"authorization", f"Bearer {token}".encode()))

    async def one() -> None:
        scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"}, "http_version": "1.1",
                 "method": "GET", "scheme": "http", "path": path, "raw_path": path.encode(),
                 "query_string": query.encode(), "root_path": "",
                 "headers": headers,
                 "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 80), "state": {}}
        sent: list[dict] = []

        async def receive() -> dict:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: dict) -> None:
            sent.append(message)

        await app(scope, receive, send)
        if sent[0]["status"] != 200:
            raise RuntimeError(f"ASGI GET {path} -> {sent[0]['status']}: {sent[1:2]}")

    async def run() -> list[int]:
        for _ in range(warmup):
            await one()
        samples: list[int] = []
        clock = time.perf_counter_ns
        deadline = time.perf_counter() + budget_s
        for _ in range(calls):
            start = clock()
            await one()
            samples.append(clock() - start)
            if time.perf_counter() > deadline:
                break
        return samples

    return asyncio.run(run())


def load_bare_app():
    import importlib.util

    spec = importlib.util.spec_from_file_location("galley_bench_bare_app", ROOT / "benchmarks" / "bare_app.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.app


def inprocess_latency(client, app, versions: int, calls: int, budget_s: float, token: str) -> dict:
    from starlette.testclient import TestClient

    from galley.domain.ids import IMAGE_VERSION_TYPE

    service = app.state.service
    target = version_id(versions // 2)
    latest_path = f"{definition_id()}/versions/latest"
    latest_expected = version_name(versions - 1)
    query = f"api-version={GALLERY_API}"
    get_url = f"{target}?{query}"
    latest_url = f"{latest_path}?{query}"

    for url, expected in ((get_url, version_name(versions // 2)), (latest_url, latest_expected)):
        response = client.get(url)
        if response.status_code != 200 or response.json()["name"] != expected:
            raise RuntimeError(f"GET {url} -> {response.status_code}: {response.text[:300]}")
    if service.latest_version(definition_id()).name != latest_expected:
        raise RuntimeError("service-level latest did not resolve to the newest version")

    def http(test_client, url):
        def call():
            if test_client.get(url).status_code != 200:
                raise RuntimeError(f"GET {url} failed during measurement")
        return call

    warmup = min(200, calls)
    bare = load_bare_app()
    results = {}
    timed = [
        ("service_get", lambda: time_calls(lambda: service.get(target, IMAGE_VERSION_TYPE), calls, warmup, budget_s)),
        ("service_latest", lambda: time_calls(lambda: service.latest_version(definition_id()), calls, warmup, budget_s)),
        ("asgi_get", lambda: asgi_timings(app, target, query, calls, warmup, budget_s, token)),
        ("asgi_latest", lambda: asgi_timings(app, latest_path, query, calls, warmup, budget_s, token)),
        ("http_get", lambda: time_calls(http(client, get_url), calls, warmup, budget_s)),
        ("http_latest", lambda: time_calls(http(client, latest_url), calls, warmup, budget_s)),
        ("bare_asgi_ping", lambda: asgi_timings(bare, "/ping", "", calls, warmup, budget_s)),
    ]
    for name, run in timed:
        log(f"  {name}: {calls} calls")
        results[name] = summarize_ms(run())
    log(f"  bare_http_ping: {calls} calls")
    with TestClient(bare) as bare_client:
        results["bare_http_ping"] = summarize_ms(time_calls(http(bare_client, "/ping"), calls, warmup, budget_s))
    return {"version": version_name(versions // 2), "latest": latest_expected, "cases": results}


# ---- optional profile ------------------------------------------------------------------------

_BUCKETS = (("galley", "/galley/"), ("sqlalchemy", "/sqlalchemy/"), ("fastapi", "/fastapi/"),
            ("starlette", "/starlette/"), ("pydantic", "/pydantic"), ("anyio", "/anyio/"),
            ("asyncio", "/asyncio/"))


def _short(path: str) -> str:
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1]
    if path.startswith(str(ROOT)):
        return os.path.relpath(path, ROOT)
    if "/lib/python3" in path:
        return "stdlib/" + path.split("/lib/python3", 1)[1].split("/", 1)[1]
    return path


def _bucket(path: str, name: str) -> str:
    if path == "~":
        return "sqlite3 (C)" if "sqlite3" in name else "builtins (C)"
    for label, marker in _BUCKETS:
        if marker in path:
            return label
    return "other (stdlib, orjson, ...)"


def profile_inprocess(app, versions: int, calls: int, token: str) -> dict:
    """cProfile the direct ASGI call for three requests. Sync endpoints and dependencies run
    inline (anyio.to_thread.run_sync patched in this process only) so one profiler sees it all;
    the threadpool hand-offs themselves are therefore not in these figures."""
    import cProfile
    import pstats

    import anyio.to_thread

    query = f"api-version={GALLERY_API}"
    cases = {"GET version": (version_id(versions // 2), query),
             "GET versions/latest": (f"{definition_id()}/versions/latest", query),
             "list first page": (f"{definition_id()}/versions", query)}
    original = anyio.to_thread.run_sync

    async def inline(func, *args, **_kwargs):
        return func(*args)

    results = {}
    anyio.to_thread.run_sync = inline
    try:
        for label, (path, q) in cases.items():
            n = calls if label != "list first page" else max(10, calls // 100)
            log(f"  profiling {label} x{n}")
            plain = asgi_timings(app, path, q, n, min(100, n), budget_s=120, token=token)
            profiler = cProfile.Profile()
            profiler.enable()
            asgi_timings(app, path, q, n, 0, budget_s=120, token=token)
            profiler.disable()
            stats = pstats.Stats(profiler).stats
            total = sum(tt for (_cc, _nc, tt, _ct, _callers) in stats.values())
            buckets: dict[str, float] = {}
            rows = []
            for (path_, line, name), (_cc, ncalls, tt, ct, _callers) in stats.items():
                bucket = _bucket(path_, name)
                buckets[bucket] = buckets.get(bucket, 0.0) + tt
                where = f"{_short(path_)}:{line}({name})" if path_ != "~" else name
                rows.append({"where": where, "calls_per_request": ncalls / n, "self_share": tt / total,
                             "cum_share": ct / total})
            top_self = sorted(rows, key=lambda r: -r["self_share"])[:15]
            top_cum = [r for r in sorted(rows, key=lambda r: -r["cum_share"])
                       if r["cum_share"] < 0.9 and "asgi_timings" not in r["where"]][:20]
            results[label] = {
                "unprofiled_p50_ms": summarize_ms(plain)["p50_ms"],
                "profiled_ms_per_request": total / n * 1000,
                "buckets": {k: v / total for k, v in sorted(buckets.items(), key=lambda kv: -kv[1])},
                "top_self": top_self, "top_cumulative": top_cum}
    finally:
        anyio.to_thread.run_sync = original
    return results


def render_profile(profile: dict) -> str:
    lines = ["Profile (cProfile, in-process ASGI, threadpool hand-offs run inline; shares of profiled time)"]
    for label, entry in profile.items():
        lines.append(f"  {label}: unprofiled p50 {entry['unprofiled_p50_ms']:.3f} ms (inline), profiled "
                     f"{entry['profiled_ms_per_request']:.3f} ms/request")
        lines.append("    self time by package: " + ", ".join(
            f"{k} {100 * v:.0f}%" for k, v in entry["buckets"].items() if v >= 0.01))
        lines.append("    cumulative (share, calls/request, file:function):")
        for row in entry["top_cumulative"]:
            lines.append(f"      {100 * row['cum_share']:5.1f}%  {row['calls_per_request']:6.1f}  {row['where']}")
        lines.append("    self (share, calls/request, file:function):")
        for row in entry["top_self"][:10]:
            lines.append(f"      {100 * row['self_share']:5.1f}%  {row['calls_per_request']:6.1f}  {row['where']}")
    return "\n".join(lines)


# ---- servers ---------------------------------------------------------------------------------

def rss_mb(pid: int) -> dict:
    values = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, amount, _unit = line.split()
                values[key.rstrip(":")] = int(amount) / 1024.0
    return {"rss_mb": values.get("VmRSS", float("nan")), "peak_mb": values.get("VmHWM", float("nan"))}


@dataclass
class Server:
    """The baseline server (bare_app.py), over HTTPS with `tls` = (certificate, key, CA) or plain HTTP."""
    name: str
    argv: list[str]
    env: dict
    probe_path: str
    tls: tuple[str, str, str] | None = None
    port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    log_path: Path | None = None

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    @property
    def verify(self):
        return galley_server.tls_context(self.tls[2]) if self.tls else True

    def start(self, log_dir: Path, timeout: float = 60.0) -> "Server":
        import httpx

        self.log_path = log_dir / f"{self.name}.log"
        argv = [arg.replace("{port}", str(self.port)) for arg in self.argv]
        if self.tls:
            argv += ["--ssl-certfile", self.tls[0], "--ssl-keyfile", self.tls[1]]
        self.process = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdin=subprocess.DEVNULL,
                                        stdout=subprocess.DEVNULL, stderr=open(self.log_path, "ab"))
        verify = self.verify
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}; see "
                                   f"{self.log_path}:\n{self.log_path.read_text()[-2000:]}")
            try:
                if httpx.get(self.url + self.probe_path, timeout=2, verify=verify).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"{self.name} did not answer at {self.url}{self.probe_path}")

    def rss(self) -> dict:
        assert self.process is not None
        return rss_mb(self.process.pid)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)


def start_galley(home: Path, log_dir: Path, http: bool) -> tuple[galley_server.Server, str]:
    """`galley serve` on the seeded home (galley_server.Server): HTTPS with its own CA, or --http;
    signed in as the home's administrator (credentials.json) once it answers."""
    galley = galley_server.Server(home, http=http, log_path=log_dir / "galley.log")
    return galley.start(), galley.started_with


def galley_tls(home: Path) -> tuple[str, str, str]:
    """Galley's own server certificate, key and CA, which the bare app serves too."""
    folder = home / "tls"
    return str(folder / "server.pem"), str(folder / "server.key"), str(folder / "ca.pem")


def start_bare(log_dir: Path, tls: tuple[str, str, str] | None) -> Server:
    env = dict(os.environ)
    argv = [sys.executable, str(ROOT / "benchmarks" / "bare_app.py"), "--port", "{port}"]
    return Server("bare", argv, env, "/ping", tls=tls).start(log_dir)


# ---- 3. load generation ----------------------------------------------------------------------

_WRK_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}


def _wrk_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    return float(match.group(1)) * _WRK_UNITS[match.group(2)] if match else float("nan")


def run_wrk(url: str, duration: int, connections: int, threads: int, headers: dict | None = None) -> dict:
    """wrk against `url` (http or https; wrk does not check the certificate), with `headers` on
    every request (the bearer token)."""
    argv = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency", "--timeout", "5s"]
    for name, value in (headers or {}).items():
        argv += ["-H", f"{name}: {value}"]
    argv.append(url)
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 30, check=True).stdout
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    total = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    latency = {f"p{p}_ms": _wrk_ms(m.group(1)) for p in (50, 90, 99)
               for m in [re.search(rf"^\s+{p}%\s+(\S+)", out, re.M)] if m}
    if rps is None or total is None:
        raise RuntimeError(f"could not read wrk output:\n{out}")
    return {"requests_per_s": float(rps.group(1)), "requests": int(total.group(1)),
            "non_2xx": int(non2xx.group(1)) if non2xx else 0,
            "socket_errors": sum(int(g) for g in errors.groups()) if errors else 0, **latency}


def _loadgen_worker(url: str, duration: float, threads: int, max_requests: int) -> None:
    """Runs in its own process (--loadgen-worker): threads of keep-alive httpx clients. Headers
    (the bearer token) come as JSON in BENCH_LOADGEN_HEADERS, the CA to trust over HTTPS in
    BENCH_LOADGEN_CAFILE (not on the command line, where other users could read the token)."""
    import httpx

    headers = json.loads(os.environ.get("BENCH_LOADGEN_HEADERS") or "{}")
    cafile = os.environ.get("BENCH_LOADGEN_CAFILE")

    lock = threading.Lock()
    counts = {"ok": 0, "bad": 0, "errors": 0}
    latencies: list[int] = []
    stop_at = time.perf_counter() + duration

    def loop() -> None:
        ok = bad = errors = 0
        mine: list[int] = []
        verify = galley_server.tls_context(cafile) if cafile else True
        with httpx.Client(timeout=5, headers=headers, verify=verify) as client:
            while time.perf_counter() < stop_at and len(mine) < max_requests:
                start = time.perf_counter_ns()
                try:
                    status = client.get(url).status_code
                except httpx.HTTPError:
                    errors += 1
                    continue
                mine.append(time.perf_counter_ns() - start)
                if 200 <= status < 400:
                    ok += 1
                else:
                    bad += 1
        with lock:
            counts["ok"] += ok
            counts["bad"] += bad
            counts["errors"] += errors
            latencies.extend(mine)

    started = time.perf_counter()
    workers = [threading.Thread(target=loop) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=duration + 30)
    elapsed = time.perf_counter() - started
    values = sorted(v / 1e6 for v in latencies)
    print(json.dumps({"requests_per_s": (counts["ok"] + counts["bad"]) / elapsed,
                      "requests": counts["ok"] + counts["bad"], "non_2xx": counts["bad"],
                      "socket_errors": counts["errors"], "p50_ms": percentile(values, 50),
                      "p90_ms": percentile(values, 90), "p99_ms": percentile(values, 99)}))


def run_python_loadgen(url: str, duration: int, connections: int, headers: dict | None = None,
                       cafile: str | None = None) -> dict:
    argv = [sys.executable, str(Path(__file__).resolve()), "--loadgen-worker", url, str(duration),
            str(connections), str(5_000_000)]
    env = {**os.environ, "BENCH_LOADGEN_HEADERS": json.dumps(headers or {}), "BENCH_LOADGEN_CAFILE": cafile or ""}
    out = subprocess.run(argv, capture_output=True, text=True, timeout=duration + 60, check=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


@dataclass
class Target:
    """What the load generator drives: a URL, the headers of every request, the CA to trust."""
    url: str
    headers: dict = field(default_factory=dict)
    cafile: str | None = None


def drive(target: Target, loadgen: str, seconds: int, connections: int, threads: int) -> dict:
    if loadgen == "wrk":
        return run_wrk(target.url, seconds, connections, threads, target.headers)
    return run_python_loadgen(target.url, seconds, connections, target.headers, target.cafile)


def interleaved(targets: dict[str, Target], loadgen: str, duration: int, warmup: int, connections: int,
                threads: int, rounds: int) -> dict[str, dict]:
    """A warm-up of each target, then `rounds` rounds that drive each in turn; the median req/s."""
    for name, target in targets.items():
        log(f"  warm-up {name} for {warmup} s")
        drive(target, loadgen, warmup, connections, threads)
    runs: dict[str, list[dict]] = {name: [] for name in targets}
    for round_no in range(rounds):
        for name, target in targets.items():
            log(f"  round {round_no + 1}/{rounds}: {name} for {duration} s")
            result = drive(target, loadgen, duration, connections, threads)
            if result["non_2xx"] or result["socket_errors"]:
                log(f"  WARNING {name}: {result['non_2xx']} non-2xx, {result['socket_errors']} socket errors")
            runs[name].append(result)
    return {name: {"requests_per_s": statistics.median(r["requests_per_s"] for r in results), "rounds": results}
            for name, results in runs.items()}


def throughput(galley: galley_server.Server, bare: Server, galley_path: str, loadgen: str, duration: int,
               warmup: int, connections: int, threads: int, rounds: int) -> dict:
    targets = {"bare": Target(bare.url + "/ping", cafile=bare.tls[2] if bare.tls else None),
               "galley": Target(galley.url + galley_path, galley.headers(),
                                str(galley.ca_file) if galley.ca_file else None)}
    summary: dict = interleaved(targets, loadgen, duration, warmup, connections, threads, rounds)
    summary["ratio"] = summary["galley"]["requests_per_s"] / summary["bare"]["requests_per_s"]
    summary["galley_url"] = targets["galley"].url
    summary["bare_url"] = targets["bare"].url
    return summary


# ---- 4. listing ------------------------------------------------------------------------------

def list_with_httpx(galley: galley_server.Server, versions: int, page_size: int) -> dict:
    url = f"{galley.url}{definition_id()}/versions?api-version={GALLERY_API}"
    max_pages = versions // max(page_size, 1) + 5
    names: list[str] = []
    pages = 0
    galley.token()  # a token in hand before the clock starts (it is reused for every page)
    started = time.perf_counter()
    with galley.client(timeout=60) as client:
        while url and pages < max_pages:
            response = client.get(url)
            response.raise_for_status()
            body = response.json()
            names.extend(item["name"] for item in body["value"])
            url = body.get("nextLink")
            pages += 1
    elapsed = time.perf_counter() - started
    return {"seconds": elapsed, "items": len(names), "distinct": len(set(names)), "pages": pages}


class _ServerCredential:
    """The administrator's token of the `galley serve` process (got from its token endpoint)."""

    def __init__(self, galley: galley_server.Server) -> None:
        self.galley = galley

    def get_token(self, *scopes, **kwargs):
        from azure.core.credentials import AccessToken

        return AccessToken(self.galley.token(), int(time.time()) + 600)


def list_with_sdk(galley: galley_server.Server) -> dict:
    from azure.core.pipeline.policies import SansIOHTTPPolicy
    from azure.mgmt.compute import ComputeManagementClient

    seen_api_versions: set[str] = set()

    class SeenApiVersions(SansIOHTTPPolicy):
        def on_request(self, request):
            found = re.search(r"[?&]api-version=([^&]+)", request.http_request.url)
            if found:
                seen_api_versions.add(found.group(1))

    class StaticToken(SansIOHTTPPolicy):
        """Plain-HTTP stand-in for ARM's bearer policy (which insists on HTTPS): --http only."""

        def on_request(self, request):
            request.http_request.headers["Authorization"] = f"Bearer {galley.token()}"

    options: dict = {"per_call_policies": [SeenApiVersions()]}
    if galley.http:
        options["authentication_policy"] = StaticToken()
    else:  # the SDK's own ARM bearer policy, trusting Galley's CA
        options.update(credential_scopes=[f"{galley.url}/.default"], connection_verify=str(galley.ca_file))
    client = ComputeManagementClient(credential=_ServerCredential(galley), subscription_id=SUBSCRIPTION,
                                     base_url=galley.url, **options)
    started = time.perf_counter()
    names = [v.name for v in client.gallery_image_versions.list_by_gallery_image(GROUP, GALLERY, DEFINITION)]
    elapsed = time.perf_counter() - started
    client.close()
    return {"seconds": elapsed, "items": len(names), "distinct": len(set(names)),
            "api_versions": sorted(seen_api_versions)}


def listing(galley: galley_server.Server, versions: int, page_size: int, rounds: int, sdk_rounds: int) -> dict:
    httpx_runs = []
    for round_no in range(rounds):
        result = list_with_httpx(galley, versions, page_size)
        log(f"  httpx round {round_no + 1}/{rounds}: {result['items']} items in {result['pages']} pages, "
            f"{result['seconds']:.3f} s")
        httpx_runs.append(result)
    sdk_runs = []
    for round_no in range(sdk_rounds):
        try:
            result = list_with_sdk(galley)
        except Exception as error:  # the SDK figure is for information only
            result = {"error": f"{type(error).__name__}: {error}"}
        log(f"  SDK round {round_no + 1}/{sdk_rounds}: {result}")
        sdk_runs.append(result)
    times = [r["seconds"] for r in httpx_runs]
    sdk_times = [r["seconds"] for r in sdk_runs if "seconds" in r]
    return {"httpx": {"median_s": statistics.median(times), "best_s": min(times), "first_s": times[0],
                      "rounds": httpx_runs},
            "sdk": {"median_s": statistics.median(sdk_times) if sdk_times else None, "rounds": sdk_runs}}


# ---- report ----------------------------------------------------------------------------------

def goal(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def render_table(results: dict) -> str:
    lines: list[str] = []
    env = results["environment"]
    setup = results["setup"]
    lines.append("Galley control-plane benchmark")
    lines.append(f"  python {env['python']}, fastapi {env['fastapi']}, starlette {env['starlette']}, "
                 f"uvicorn {env['uvicorn']}, {env['cpus']} CPUs, {env['platform']}")
    lines.append(f"  database: SQLite (embedded default) in a fresh temp GALLEY_HOME; page size "
                 f"{env['page_size']}")
    lines.append(f"  transport: {env['transport']}; every Galley request carries the administrator's bearer "
                 "token (from the server's token endpoint)")
    load = results["load_avg"]
    lines.append("  load average (1/5/15 min): start " + " ".join(f"{v:.2f}" for v in load["start"])
                 + ", end " + " ".join(f"{v:.2f}" for v in load.get("end", (float("nan"),) * 3)))
    lines.append("")
    lines.append("1. Setup")
    lines.append(f"  {setup['versions']} image versions in one definition, seeded by {setup['method']}")
    lines.append(f"  versions: {setup['versions_s']:.1f} s ({setup['versions_per_s']:.0f} versions/s); "
                 f"total setup {setup['total_s']:.1f} s")
    lines.append("")

    lat = results["latency"]
    lines.append(f"2. In-process latency (no network), GET version {lat['version']}, latest = {lat['latest']}"
                 f"   goal: p99 < {GOAL_P99_MS:g} ms")
    lines.append("  (ASGI and HTTP rows carry a bearer token, verified by the Authentication middleware; "
                 "benchmarks/identity.py compares with and without it)")
    lines.append(f"  {'call':<44} {'calls':>6} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8}  goal")
    rows = [("service_get", "service  ResourceService.get(version)", True),
            ("service_latest", "service  ResourceService.latest_version", True),
            ("asgi_get", "ASGI     app(scope) GET version", True),
            ("asgi_latest", "ASGI     app(scope) GET versions/latest", True),
            ("http_get", "HTTP     TestClient GET version", True),
            ("http_latest", "HTTP     TestClient GET versions/latest", True),
            ("bare_asgi_ping", "ref.     bare FastAPI ASGI app(scope) /ping", False),
            ("bare_http_ping", "ref.     bare FastAPI TestClient GET /ping", False)]
    for key, label, judged in rows:
        case = lat["cases"][key]
        mark = goal(case["p99_ms"] < GOAL_P99_MS) if judged else "(ref)"
        lines.append(f"  {label:<44} {case['calls']:>6} {case['p50_ms']:>8.3f} {case['p90_ms']:>8.3f} "
                     f"{case['p99_ms']:>8.3f} {case['max_ms']:>8.2f}  {mark}")
    lines.append("")

    tp = results["throughput"]
    lines.append(f"3. HTTP throughput on loopback ({tp['loadgen']}, {tp['connections']} connections, "
                 f"{tp['duration_s']} s x {tp['rounds']} rounds, one uvicorn process each)"
                 f"   goal: ratio >= {GOAL_RATIO:g}")
    lines.append(f"  Galley started with: {tp['galley_started_with']}; bare: benchmarks/bare_app.py"
                 + (" --ssl-certfile/--ssl-keyfile (Galley's certificate)" if tp["galley_url"].startswith("https")
                    else ""))
    lines.append(f"  {'server':<44} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'non-2xx':>8}  rounds req/s")
    for name, label in (("bare", "bare FastAPI  GET /ping (async def)"),
                        ("galley", "Galley        GET one image version + token")):
        entry = tp[name]
        last = entry["rounds"][-1]
        rounds = ", ".join(f"{r['requests_per_s']:.0f}" for r in entry["rounds"])
        non2xx = sum(r["non_2xx"] + r["socket_errors"] for r in entry["rounds"])
        lines.append(f"  {label:<44} {entry['requests_per_s']:>9.0f} {last.get('p50_ms', float('nan')):>8.2f} "
                     f"{last.get('p99_ms', float('nan')):>8.2f} {non2xx:>8}  {rounds}")
    lines.append(f"  {'ratio Galley / bare (medians)':<44} {tp['ratio']:>9.2f}"
                 f"{'':>27}  {goal(tp['ratio'] >= GOAL_RATIO)}")
    lines.append("")

    ls = results["listing"]
    first = ls["httpx"]["rounds"][0]
    lines.append(f"4. List all versions following nextLink   goal: httpx < {GOAL_LIST_S:g} s")
    lines.append(f"  {'client':<44} {'items':>6} {'pages':>6} {'first s':>8} {'median s':>9} {'best s':>8}  goal")
    lines.append(f"  {'httpx over loopback':<44} {first['items']:>6} {first['pages']:>6} "
                 f"{ls['httpx']['first_s']:>8.3f} {ls['httpx']['median_s']:>9.3f} {ls['httpx']['best_s']:>8.3f}  "
                 f"{goal(ls['httpx']['median_s'] < GOAL_LIST_S and first['items'] == setup['versions'])}")
    sdk_ok = [r for r in ls["sdk"]["rounds"] if "seconds" in r]
    if sdk_ok:
        sdk_times = [r["seconds"] for r in sdk_ok]
        lines.append(f"  {'azure-mgmt-compute list_by_gallery_image':<44} {sdk_ok[0]['items']:>6} {'':>6} "
                     f"{sdk_times[0]:>8.3f} {statistics.median(sdk_times):>9.3f} {min(sdk_times):>8.3f}  (info)")
    else:
        lines.append(f"  azure-mgmt-compute: {ls['sdk']['rounds'][0].get('error') if ls['sdk']['rounds'] else 'not run'}")
    lines.append("")

    rss = results["rss"]
    lines.append(f"5. Server resident memory (VmRSS from /proc; `galley serve`, {setup['versions']} versions)"
                 f"   goal: idle < {GOAL_RSS_MB:g} MB")
    lines.append(f"  {'moment':<44} {'RSS MB':>8} {'peak MB':>8}  goal")
    for key, label in (("idle", "Galley idle (2 s after it first answered)"),
                       ("after_throughput", "Galley after the throughput load (+2 s)"),
                       ("after_listing", "Galley after the listing load (+2 s)"),
                       ("bare_idle", "bare FastAPI idle (for reference)")):
        entry = rss[key]
        mark = goal(entry["rss_mb"] < GOAL_RSS_MB) if key == "idle" else ""
        lines.append(f"  {label:<44} {entry['rss_mb']:>8.1f} {entry['peak_mb']:>8.1f}  {mark}")
    lines.append("")
    lines.append("Noise: CPU used by other processes on this machine during each phase (average cores busy "
                 f"outside this benchmark; the machine has {env['cpus']} CPUs), and the 1-min load average at "
                 "its start")
    lines.append("  " + ", ".join(f"{name} {entry['other_cpu_cores']:.2f} cores (load {entry['load_avg_1m_at_start']:.2f})"
                                  for name, entry in results["noise"].items()))
    steal = max(entry["steal_cores"] for entry in results["noise"].values())
    if steal > 0.05:
        lines.append(f"  the hypervisor also took up to {steal:.2f} cores (steal time) from this machine")
    if any(entry["other_cpu_cores"] > 0.25 for entry in results["noise"].values()):
        lines.append("  WARNING: other processes were busy during the run; latency tails and throughput are "
                     "pessimistic. Re-run on a quiet machine for reference figures.")
    if "profile" in results:
        lines.append("")
        lines.append(render_profile(results["profile"]))
    lines.append("")
    lines.append("Goals: " + ", ".join(f"{name} {goal(ok)}" for name, ok in results["goals"].items()))
    return "\n".join(lines)


def environment(page_size: int) -> dict:
    import fastapi
    import starlette
    import uvicorn

    return {"python": platform.python_version(), "fastapi": fastapi.__version__,
            "starlette": starlette.__version__, "uvicorn": uvicorn.__version__, "cpus": os.cpu_count(),
            "platform": platform.platform(terse=True), "page_size": page_size}


# ---- main ------------------------------------------------------------------------------------

def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Galley control-plane benchmark (see benchmarks/README.md).")
    parser.add_argument("--versions", type=int, default=10_000, help="image versions to seed (default 10000)")
    parser.add_argument("--snapshots", type=int, default=100,
                        help="source snapshots the versions are spread over (default 100)")
    parser.add_argument("--seed-fsync", action="store_true",
                        help="seed with Galley's own SQLite durability (fsync every commit; slower) "
                             "instead of synchronous=NORMAL during setup")
    parser.add_argument("--calls", type=int, default=3_000, help="calls per in-process latency case (>= 2000)")
    parser.add_argument("--duration", type=int, default=10, help="seconds per throughput run (default 10)")
    parser.add_argument("--warmup", type=int, default=2, help="seconds of warm-up per server (default 2)")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved throughput rounds (default 2)")
    parser.add_argument("--connections", type=int, default=16, help="concurrent keep-alive connections")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default 1)")
    parser.add_argument("--loadgen", choices=("auto", "wrk", "python"), default="auto",
                        help="load generator: wrk if installed (auto), or a Python process")
    parser.add_argument("--list-rounds", type=int, default=3, help="httpx listing rounds (default 3)")
    parser.add_argument("--sdk-rounds", type=int, default=1, help="Azure SDK listing rounds (default 1)")
    parser.add_argument("--profile", action="store_true",
                        help="also cProfile the in-process ASGI GET version / latest / first list page "
                             "and print where the time goes")
    parser.add_argument("--profile-calls", type=int, default=2000, help="calls per profiled request")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    parser.add_argument("--keep-home", action="store_true", help="keep the temporary GALLEY_HOME")
    parser.add_argument("--http", action="store_true",
                        help="serve Galley with `galley serve --http` and the bare app without TLS "
                             "(default: both over HTTPS with Galley's certificate)")
    return parser.parse_args(argv)


def main(argv: list[str]) -> int:
    if argv[:1] == ["--loadgen-worker"]:
        url, duration, threads, max_requests = argv[1], float(argv[2]), int(argv[3]), int(argv[4])
        _loadgen_worker(url, duration, threads, max_requests)
        return 0
    args = parse_args(argv)
    if args.versions < 1 or args.snapshots < 1:
        raise SystemExit("--versions and --snapshots must be at least 1")
    loadgen = args.loadgen
    if loadgen == "auto":
        loadgen = "wrk" if shutil.which("wrk") else "python"
    elif loadgen == "wrk" and not shutil.which("wrk"):
        raise SystemExit("wrk is not installed (apt-get install -y wrk), or use --loadgen python")

    warnings.filterwarnings("ignore", category=DeprecationWarning)
    warnings.filterwarnings("ignore", message=".*httpx.*")
    from starlette.testclient import TestClient

    from galley.api.app import create_app
    from galley.config import load_settings

    home = Path(tempfile.mkdtemp(prefix="galley-bench-"))
    log_dir = home / "logs"
    log_dir.mkdir()
    log(f"GALLEY_HOME={home}")
    for name in [k for k in os.environ if k.startswith("GALLEY_")]:
        del os.environ[name]
    os.environ["GALLEY_HOME"] = str(home)
    settings = load_settings()
    settings = replace(settings, home=home, database_url=f"sqlite:///{home / 'galley.db'}",
                       default_subscription_id=SUBSCRIPTION)
    results: dict = {"environment": environment(settings.page_size), "noise": {},
                     "load_avg": {"start": os.getloadavg()}}
    results["environment"]["transport"] = (
        "plain HTTP (--http): Galley served with `galley serve --http`, the bare app without TLS"
        if args.http else "HTTPS: Galley's own CA and server certificate ($GALLEY_HOME/tls), the bare app "
        "served with the same certificate")
    noise = results["noise"]
    servers: list = []
    try:
        app = create_app(settings, run_worker=False)
        with TestClient(app) as client:
            # Every request is authenticated: the home's administrator (credentials.json, written by
            # create_app on this first start) signs in at the app's token endpoint.
            token = galley_server.inprocess_token(client, home, settings.public_url)
            client.headers["Authorization"] = f"Bearer {token}"
            log(f"1. seeding {args.versions} versions")
            with Phase("setup", noise):
                results["setup"] = seed(client, app, args.versions, args.snapshots,
                                        relaxed_sync=not args.seed_fsync)
            log(f"   done in {results['setup']['versions_s']:.1f} s")
            log("2. in-process latency")
            with Phase("latency", noise):
                results["latency"] = inprocess_latency(client, app, args.versions, args.calls, budget_s=120,
                                                       token=token)
            if args.profile:
                results["profile"] = profile_inprocess(app, args.versions, args.profile_calls, token)
        del app, client

        galley_path = f"{version_id(args.versions // 2)}?api-version={GALLERY_API}"
        log("5. starting `galley serve` on the seeded home")
        galley, started_with = start_galley(home, log_dir, args.http)
        servers.append(galley)
        with galley.client(timeout=30) as first:
            answer = first.get(galley_path)
            if answer.status_code != 200:
                raise RuntimeError(f"galley serve: GET {galley_path} -> {answer.status_code}: {answer.text[:300]}")
        time.sleep(2)
        rss = {"idle": galley.rss()}
        log(f"   idle RSS {rss['idle']['rss_mb']:.1f} MB")
        bare = start_bare(log_dir, None if args.http else galley_tls(home))
        servers.append(bare)
        time.sleep(2)
        rss["bare_idle"] = bare.rss()

        log(f"3. throughput with {loadgen}")
        with Phase("throughput", noise):
            tp = throughput(galley, bare, galley_path, loadgen, args.duration, args.warmup,
                            args.connections, args.threads, args.rounds)
        tp.update({"loadgen": loadgen, "connections": args.connections, "duration_s": args.duration,
                   "rounds": args.rounds, "galley_started_with": started_with})
        results["throughput"] = tp
        bare.stop()
        time.sleep(2)
        rss["after_throughput"] = galley.rss()

        log("4. listing")
        with Phase("listing", noise):
            results["listing"] = listing(galley, args.versions, settings.page_size, args.list_rounds,
                                         args.sdk_rounds)
        time.sleep(2)
        rss["after_listing"] = galley.rss()
        results["rss"] = rss
        results["load_avg"]["end"] = os.getloadavg()
    finally:
        for server in reversed(servers):
            server.stop()
        if args.keep_home:
            log(f"kept {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)

    lat = results["latency"]["cases"]
    first_list = results["listing"]["httpx"]["rounds"][0]
    results["goals"] = {
        "in-process HTTP p99 < 5 ms": max(lat["http_get"]["p99_ms"], lat["http_latest"]["p99_ms"]) < GOAL_P99_MS,
        "throughput ratio >= 0.5": results["throughput"]["ratio"] >= GOAL_RATIO,
        "list all < 2 s": results["listing"]["httpx"]["median_s"] < GOAL_LIST_S
        and first_list["items"] == args.versions,
        "idle RSS < 150 MB": results["rss"]["idle"]["rss_mb"] < GOAL_RSS_MB,
    }
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(render_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
