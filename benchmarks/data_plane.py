#!/usr/bin/env python
"""Galley data-plane benchmark: ingest, replication, incremental replication, sparse VHD, memory.

Run from the repository root:

    python benchmarks/data_plane.py                  # 2 GiB image (about 3-5 min; needs 14 GiB of free disk)
    python benchmarks/data_plane.py --size-gib 0.25  # a quick run
    python benchmarks/data_plane.py --json           # machine-readable results on stdout
    python benchmarks/data_plane.py --profile        # also py-spy every Galley step: where the time goes

Everything (the source images, the `cp` baselines, Galley's stores, its SQLite database and the
HTTP server's home) lives in one temporary folder, so Galley and the baseline use the same file
system; the folder is removed at the end, also on failure or Ctrl-C. Every Galley step runs in its
own Python process (so its peak RSS is its own), and the page cache is dropped before every
measured step when that is allowed (root: `sync; echo 3 > /proc/sys/vm/drop_caches`); the output
says whether it was. The table (or the JSON document) goes to stdout, progress to stderr.
See benchmarks/README.md ("Data plane") for what each figure means and the goals.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

from galley_server import ROOT, Server

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MiB = 1024 * 1024
GiB = 1024 * MiB
PIECE = 4 * MiB  # how the random source files are written
BLOCK = MiB  # the unit the incremental image rewrites (Galley's chunk size)

SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
GROUP = "bench-data-plane"
RESOURCES_API = "2024-03-01"
DISK_API = "2025-01-02"

SOURCE_STORE = "eastus/1/r0"
TARGET_STORE = "westus2/1/r0"
DENSE_STORE = "northeurope/1/r0"
VHD_STORE = "westeurope/1/r0"
SPARSE_RAW_STORE = "southcentralus/1/r0"

GOAL_INGEST_RATIO = 0.8
GOAL_REPLICATE_RATIO = 0.8
GOAL_INCREMENTAL_FRACTION = 0.10
GOAL_SPARSE_STORED_GIB = 1.1
GOAL_SPARSE_TIME_FACTOR = 2.0  # "same order": the VHD's ingest within 2x the dense 1 GiB raw's
STEP_TIMEOUT_S = 1800


def log(message: str) -> None:
    print(f"[data-plane {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ---- the child process: one Galley step, measured in-process --------------------------------------

def _proc_status(pid: int | str = "self") -> dict[str, float]:
    """VmRSS / VmHWM of a process in MiB."""
    values = {}
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    key, amount, _unit = line.split()
                    values[key.rstrip(":")] = int(amount) / 1024.0
    except OSError:
        pass
    return values


def _stop_py_spy(spy: subprocess.Popen) -> None:
    """py-spy writes its file when interrupted."""
    spy.send_signal(signal.SIGINT)
    try:
        spy.wait(timeout=60)
    except subprocess.TimeoutExpired:
        spy.kill()
        spy.wait(timeout=10)


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds a running process has used (all its threads), from /proc."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return float("nan")


def child_main(spec: dict) -> int:
    """Run one ContentEngine operation on the home `spec["home"]` and print its figures as JSON."""
    import resource

    from galley.config import DEFAULT_REGIONS, Settings
    from galley.content.engine import ContentEngine
    from galley.content.formats import open_disk
    from galley.content.locations import Locations
    from galley.store.content_repository import ContentRepository
    from galley.store.database import make_engine, migrate
    from galley.store.sql_store import SqlStore

    home = Path(spec["home"])
    settings = Settings(home=home, database_url=f"sqlite:///{home / 'galley.db'}", regions=DEFAULT_REGIONS)
    engine = make_engine(settings.database_url)
    migrate(engine)
    content = ContentEngine(ContentRepository(SqlStore(engine)), Locations(settings),
                            bandwidth=settings.replication_bandwidth)
    setup = _proc_status()
    out: dict = {"op": spec["op"], "setup_rss_mib": setup.get("VmRSS")}
    spy = None
    if spec.get("profile_out"):
        # py-spy on this very process, for the measured operation only (not imports and set-up)
        spy = subprocess.Popen(["py-spy", "record", "--format", "raw", "--rate", str(PROFILE_RATE), "--idle",
                                "--threads", "--nonblocking", "--output", spec["profile_out"],
                                "--pid", str(os.getpid())], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1.0)
    usage0 = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    if spec["op"] == "ingest":
        with open_disk(spec["path"], spec.get("format")) as image:
            out["format"] = image.format
            out["virtual_size"] = image.virtual_size
            out["content_id"] = content.ingest(image, spec["store"], (spec["key"], -1))
    elif spec["op"] == "replicate":
        progress = content.replicate([spec["content_id"]], spec["sources"], spec["target"])
        out.update(bytes_total=progress.bytes_total, bytes_done=progress.bytes_done,
                   bytes_moved=progress.bytes_moved)
    else:
        raise SystemExit(f"unknown step {spec['op']!r}")
    out["seconds"] = time.perf_counter() - started
    usage1 = resource.getrusage(resource.RUSAGE_SELF)
    out["cpu_user_seconds"] = usage1.ru_utime - usage0.ru_utime
    out["cpu_sys_seconds"] = usage1.ru_stime - usage0.ru_stime
    out["cpu_seconds"] = out["cpu_user_seconds"] + out["cpu_sys_seconds"]
    if spy is not None:
        _stop_py_spy(spy)
    out["maxrss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    out["vmhwm_mib"] = _proc_status().get("VmHWM")
    if "content_id" in out:
        data = content.repo.content(out["content_id"])
        out["data_bytes"] = int(data["data_bytes"])
    engine.dispose()
    print("RESULT " + json.dumps(out), flush=True)
    return 0


# ---- helpers of the parent ------------------------------------------------------------------------

class Bench:
    last_cpu = 0.0

    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        self.args = args
        self.tmp = tmp
        self.home = tmp / "home"  # Galley's in-process home: SQLite DB and the region stores
        self.home.mkdir()
        self.profile_dir = Path(args.profile_dir) if args.profile else None
        self.drop_results: list[bool] = []
        self.profiles: dict[str, dict] = {}
        self.loadavg_start = os.getloadavg()[0]

    # -- caches ---------------------------------------------------------------------------------
    def drop_caches(self) -> bool:
        os.sync()
        if self.args.no_drop_caches:
            self.drop_results.append(False)
            return False
        try:
            with open("/proc/sys/vm/drop_caches", "w") as handle:
                handle.write("3\n")
            ok = True
        except OSError:
            ok = False
        self.drop_results.append(ok)
        time.sleep(self.args.settle)
        return ok

    # -- processes ------------------------------------------------------------------------------
    @staticmethod
    def run_timed(argv: list[str], **popen) -> tuple[float, float, str]:
        """Run a command; (wall seconds, its peak RSS in MiB from wait4, stdout).
        Its CPU seconds (user + system, from wait4) are left in `Bench.last_cpu`."""
        started = time.perf_counter()
        process = subprocess.Popen(argv, stdout=subprocess.PIPE, **popen)
        timer = threading.Timer(STEP_TIMEOUT_S, process.kill)  # every step is bounded in time
        timer.start()
        try:
            output = process.stdout.read() if process.stdout else b""
            _pid, status, usage = os.wait4(process.pid, 0)  # wait4: this child's own rusage
        except BaseException:
            if process.poll() is None:
                process.kill()
                process.wait()
            raise
        finally:
            timer.cancel()
            if process.stdout:
                process.stdout.close()
        if time.perf_counter() - started >= STEP_TIMEOUT_S:
            raise TimeoutError(f"{argv[0]} took more than {STEP_TIMEOUT_S} s")
        elapsed = time.perf_counter() - started
        Bench.last_cpu = usage.ru_utime + usage.ru_stime
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} exited with {process.returncode}: {output[-2000:]!r}")
        return elapsed, usage.ru_maxrss / 1024.0, output.decode(errors="replace")

    def cp(self, source: Path, label: str) -> dict:
        """`cp` of the file into the same folder, then `sync`: the durable copy a store write is."""
        target = self.tmp / f"cp-{label}.bin"
        self.drop_caches()
        cp_s, cp_rss, _ = self.run_timed(["cp", str(source), str(target)])
        cp_cpu = Bench.last_cpu
        started = time.perf_counter()
        os.sync()
        sync_s = time.perf_counter() - started
        size = source.stat().st_size
        target.unlink()
        os.sync()
        return {"seconds": cp_s + sync_s, "cp_seconds": cp_s, "sync_seconds": sync_s, "bytes": size,
                "mib_s": size / MiB / (cp_s + sync_s), "cp_only_mib_s": size / MiB / cp_s,
                "maxrss_mib": cp_rss, "cpu_seconds": cp_cpu}

    def galley(self, label: str, spec: dict) -> dict:
        """One Galley step in its own process (after dropping the page cache)."""
        spec = {"home": str(self.home), **spec}
        env = {k: v for k, v in os.environ.items() if not k.startswith("GALLEY_")}
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        profile_raw = None
        if self.profile_dir is not None:
            self.profile_dir.mkdir(parents=True, exist_ok=True)
            profile_raw = self.profile_dir / f"{label}.txt"
            profile_raw.unlink(missing_ok=True)
            spec["profile_out"] = str(profile_raw)
        argv = [sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)]
        self.drop_caches()
        wall, _rss, output = self.run_timed(argv, cwd=ROOT, env=env)
        lines = [line for line in output.splitlines() if line.startswith("RESULT ")]
        if not lines:
            raise RuntimeError(f"step {label} printed no result: {output[-2000:]}")
        result = json.loads(lines[-1][len("RESULT "):])
        result["process_wall_seconds"] = wall
        if profile_raw is not None and profile_raw.exists():
            self.profiles[label] = summarize_profile(profile_raw)
            self.profiles[label]["file"] = str(profile_raw)
        return result


def write_random(path: Path, size: int) -> None:
    with open(path, "wb") as handle:
        left = size
        while left > 0:
            n = min(PIECE, left)
            handle.write(os.urandom(n))
            left -= n


def store_folder(home: Path, store_id: str) -> Path:
    region, zone, slot = store_id.split("/")
    return home / "stores" / region / zone / slot


def folder_bytes(folder: Path) -> tuple[int, int, int]:
    """(sum of file sizes, allocated bytes, files) under a folder."""
    size = allocated = files = 0
    for dirpath, _dirs, names in os.walk(folder):
        for name in names:
            st = os.stat(os.path.join(dirpath, name))
            size += st.st_size
            allocated += st.st_blocks * 512
            files += 1
    return size, allocated, files


PROFILE_RATE = 200  # py-spy samples per second
_IDLE_LEAVES = {"concurrent/futures/thread.py:_worker", "threading.py:Condition.wait", "queue.py:Queue.get",
                "threading.py:Event.wait", "selectors.py:EpollSelector.select"}


def _frame_name(frame: str) -> str:
    """`func (path/file.py:123)` → `path/file.py:func`, with site-packages and stdlib prefixes cut."""
    match = re.match(r"^(?P<func>.*?) \((?P<file>.*?)(?::\d+)?\)$", frame.strip())
    if not match:
        return frame.strip()
    path = match.group("file")
    for marker in ("/site-packages/", "/lib/python3.11/", "/lib/python3/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    if "/galley/" in path and not path.startswith("galley/"):
        path = "galley/" + path.rsplit("/galley/", 1)[1]
    return f"{path}:{match.group('func')}"


def summarize_profile(raw: Path, top: int = 8) -> dict:
    """py-spy raw (collapsed) stacks → seconds per thread group, split by what the thread was in.

    A sample is keyed by its innermost Galley frame and its leaf frame (`galley/x.py:f > leaf`).
    For threads other than the main thread, samples waiting for work with no Galley frame on the
    stack (idle pool workers) are left out; the main thread's waits are kept, because its time is
    the step's wall time."""
    groups: dict[str, Counter] = {}
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        thread = "?"
        if frames and frames[0].startswith("thread ("):
            thread = frames[0].split(": ", 1)[1] if ": " in frames[0] else frames[0]
            frames = frames[1:]
        group = re.sub(r"[-_ ]?\d+$", "", thread)
        if group.startswith("thread ("):
            group = "MainThread"  # samples taken before the thread had its name (start-up)
        named = [_frame_name(f) for f in frames]
        if not named:
            continue
        leaf = named[-1]
        if leaf.startswith(("data_plane.py:", "subprocess.py:")):
            continue  # the benchmark's own child waiting for py-spy to attach or to stop
        galley_frames = [f for f in named if f.startswith("galley/")]
        if group != "MainThread" and leaf in _IDLE_LEAVES and (
                not galley_frames or galley_frames[-1] == "galley/jobs/worker.py:Worker._loop"):
            continue  # an idle pool or job-worker thread
        if group == "MainThread" and not galley_frames and leaf == "selectors.py:EpollSelector.select":
            key = "(event loop waiting for the network)"
        elif galley_frames and galley_frames[-1] != leaf:
            key = f"{galley_frames[-1]} > {leaf}"
        else:
            key = leaf
        groups.setdefault(group, Counter())[key] += int(count)
    out = {}
    for group, counter in sorted(groups.items(), key=lambda kv: -sum(kv[1].values())):
        total = sum(counter.values())
        out[group] = {"seconds": round(total / PROFILE_RATE, 2),
                      "top": [(k, round(v / PROFILE_RATE, 2)) for k, v in counter.most_common(top)]}
    return {"threads": out}


# ---- the HTTP server (galley_server.Server) ---------------------------------------------------------

def http_upload(bench: Bench, source: Path, https: bool) -> dict:
    """Create a disk over HTTP and `PUT {disk}/upload?format=raw` the source with curl, with the
    administrator's bearer token. Plain HTTP (`galley serve --http`) unless `https`: the figure is
    compared with cp + sync, which encrypts nothing, so TLS would be part of the gap."""
    size = source.stat().st_size
    server = Server(bench.tmp / "server-home", http=not https).start()
    try:
        group = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{GROUP}"
        disk = f"{group}/providers/Microsoft.Compute/disks/bench-upload"
        with server.client(timeout=60) as client:
            response = client.put(f"{group}?api-version={RESOURCES_API}", json={"location": "eastus"})
            response.raise_for_status()
            response = client.put(f"{disk}?api-version={DISK_API}", json={
                "location": "eastus", "properties": {
                    "creationData": {"createOption": "Upload", "uploadSizeBytes": size + 512},
                    "osType": "Linux"}})
            if response.status_code not in (200, 201, 202):
                raise RuntimeError(f"PUT disk -> {response.status_code}: {response.text}")
            deadline = time.time() + 60
            while True:
                state = client.get(f"{disk}?api-version={DISK_API}").json()["properties"]["provisioningState"]
                if state == "Succeeded":
                    break
                if time.time() > deadline or state == "Failed":
                    raise RuntimeError(f"the upload disk is {state}")
                time.sleep(0.1)
        time.sleep(0.5)
        before = _proc_status(server.process.pid)
        cpu_before = _cpu_seconds(server.process.pid)
        bench.drop_caches()
        spy = None
        if bench.profile_dir is not None:
            bench.profile_dir.mkdir(parents=True, exist_ok=True)
            spy_out = bench.profile_dir / "http-upload-server.txt"
            spy_out.unlink(missing_ok=True)
            spy = subprocess.Popen(["py-spy", "record", "--format", "raw", "--rate", str(PROFILE_RATE), "--idle",
                                    "--threads", "--nonblocking", "--output", str(spy_out),
                                    "--pid", str(server.process.pid)],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)  # let py-spy attach
        seconds, curl_rss, output = bench.run_timed([
            "curl", "-sS", "--fail-with-body", *server.curl_args(), "-X", "PUT", "-T", str(source), "-H", "Expect:",
            "-H", "Content-Type: application/octet-stream", "-o", "/dev/null", "-w", "%{http_code}",
            f"{server.url}{disk}/upload?api-version={DISK_API}&format=raw"])
        curl_cpu = Bench.last_cpu
        after = _proc_status(server.process.pid)
        server_cpu = _cpu_seconds(server.process.pid) - cpu_before
        if spy is not None:
            _stop_py_spy(spy)
            if spy_out.exists():
                bench.profiles["http-upload-server"] = {**summarize_profile(spy_out), "file": str(spy_out)}
        stored = folder_bytes(store_folder(server.home, SOURCE_STORE))
        return {"seconds": seconds, "bytes": size, "mib_s": size / MiB / seconds,
                "http_status": output.strip(), "server_rss_before_mib": before.get("VmRSS"),
                "server_vmhwm_before_mib": before.get("VmHWM"), "server_rss_after_mib": after.get("VmRSS"),
                "server_vmhwm_mib": after.get("VmHWM"), "curl_maxrss_mib": curl_rss,
                "stored_bytes": stored[0], "server_cpu_seconds": server_cpu, "curl_cpu_seconds": curl_cpu,
                "transport": server.scheme, "started_with": server.started_with}
    finally:
        server.stop()
        shutil.rmtree(bench.tmp / "server-home", ignore_errors=True)


# ---- the steps ------------------------------------------------------------------------------------

def summarize_rounds(rounds: list[dict], size: int) -> dict:
    """Median seconds of the baseline and of Galley over interleaved rounds; ratio of the medians."""
    out = {"rounds": rounds}
    for side in ("cp", "galley"):
        summary = dict(rounds[0][side])
        seconds = [r[side]["seconds"] for r in rounds]
        summary["seconds"] = statistics.median(seconds)
        summary["rounds_seconds"] = seconds
        summary["mib_s"] = size / MiB / summary["seconds"]
        summary["maxrss_mib"] = max(r[side]["maxrss_mib"] for r in rounds)
        summary["cpu_seconds"] = statistics.median(r[side]["cpu_seconds"] for r in rounds)
        if side == "cp":
            summary["cp_seconds"] = statistics.median(r[side]["cp_seconds"] for r in rounds)
            summary["sync_seconds"] = statistics.median(r[side]["sync_seconds"] for r in rounds)
            summary["cp_only_mib_s"] = size / MiB / summary["cp_seconds"]
        out[side] = summary
    out["galley"]["ratio"] = out["cp"]["seconds"] / out["galley"]["seconds"]
    out["galley"]["rounds_ratio"] = [r["cp"]["seconds"] / r["galley"]["seconds"] for r in rounds]
    return out


def run(args: argparse.Namespace, bench: Bench) -> dict:
    tmp = bench.tmp
    size = int(args.size_gib * GiB) // BLOCK * BLOCK
    if size < 21 * MiB:
        raise SystemExit("--size-gib must be at least 0.021 (21 MiB: the smallest upload disk)")
    results: dict = {"size_bytes": size}

    src1 = tmp / "image-v1.raw"
    log(f"writing {size / GiB:.2f} GiB of random data to {src1}")
    write_random(src1, size)

    # 1. ingest, in interleaved rounds: cp, Galley, cp, Galley, ...
    ingest_rounds = []
    for r in range(args.rounds):
        log(f"1. ingest, round {r + 1} of {args.rounds}: cp + sync baseline")
        cp = bench.cp(src1, "ingest")
        log(f"   cp+sync {cp['seconds']:.2f} s ({cp['mib_s']:.0f} MiB/s); Galley ingest (fresh store and DB)")
        home = bench.home if r == 0 else tmp / f"home-ingest-{r}"
        home.mkdir(exist_ok=True)
        g = bench.galley("ingest" if r == 0 else f"ingest-round{r + 1}",
                         {"op": "ingest", "path": str(src1), "format": "raw", "store": SOURCE_STORE,
                          "key": "bench/v1", "home": str(home)})
        g["mib_s"] = size / MiB / g["seconds"]
        g["ratio"] = cp["seconds"] / g["seconds"]
        g["stored_bytes"] = folder_bytes(store_folder(home, SOURCE_STORE))[0]
        log(f"   Galley {g['seconds']:.2f} s ({g['mib_s']:.0f} MiB/s), ratio {g['ratio']:.2f}")
        if r > 0:
            shutil.rmtree(home, ignore_errors=True)
        ingest_rounds.append({"cp": cp, "galley": g})
    results["ingest"] = summarize_rounds(ingest_rounds, size)
    ingest = ingest_rounds[0]["galley"]

    if not args.no_http:
        log("1b. ingest through HTTP: PUT {disk}/upload to `galley serve`")
        upload = http_upload(bench, src1, args.upload_https)
        upload["ratio"] = results["ingest"]["cp"]["seconds"] / upload["seconds"]
        log(f"   HTTP upload {upload['seconds']:.2f} s ({upload['mib_s']:.0f} MiB/s), "
            f"ratio {upload['ratio']:.2f} (to the median cp + sync)")
        results["http_upload"] = upload

    # 2. replication of a fresh version, in interleaved rounds (round 1 fills westus2/1/r0, which
    #    step 3 needs; later rounds copy into fresh replica slots that are removed afterwards)
    replicate_rounds = []
    for r in range(args.rounds):
        target = TARGET_STORE if r == 0 else f"westus2/1/r{r}"
        log(f"2. replication, round {r + 1} of {args.rounds}: cp + sync baseline")
        cp = bench.cp(src1, "replicate")
        log(f"   cp+sync {cp['seconds']:.2f} s; Galley replicate {SOURCE_STORE} -> {target}")
        g = bench.galley("replicate" if r == 0 else f"replicate-round{r + 1}",
                         {"op": "replicate", "content_id": ingest["content_id"], "sources": [SOURCE_STORE],
                          "target": target})
        g["mib_s"] = size / MiB / g["seconds"]
        g["ratio"] = cp["seconds"] / g["seconds"]
        log(f"   Galley {g['seconds']:.2f} s ({g['mib_s']:.0f} MiB/s), ratio {g['ratio']:.2f}")
        if r > 0:
            shutil.rmtree(store_folder(bench.home, target), ignore_errors=True)
        replicate_rounds.append({"cp": cp, "galley": g})
    results["replicate"] = summarize_rounds(replicate_rounds, size)

    # 3. incremental replication
    blocks = size // BLOCK
    changed = max(1, round(blocks * args.changed_fraction))
    rng = random.Random(args.seed)
    rewritten = sorted(rng.sample(range(blocks), changed))
    src2 = tmp / "image-v2.raw"
    log(f"3. incremental: image v2 = v1 with {changed} of {blocks} 1 MiB blocks rewritten")
    shutil.copyfile(src1, src2)
    fd = os.open(src2, os.O_WRONLY)
    try:
        for idx in rewritten:
            os.pwrite(fd, os.urandom(BLOCK), idx * BLOCK)
    finally:
        os.close(fd)
    src1.unlink()  # no longer needed; frees its space
    before_v2 = folder_bytes(store_folder(bench.home, SOURCE_STORE))[0]
    ingest2 = bench.galley("ingest-v2", {"op": "ingest", "path": str(src2), "format": "raw",
                                         "store": SOURCE_STORE, "key": "bench/v2"})
    ingest2["mib_s"] = size / MiB / ingest2["seconds"]
    ingest2["new_stored_bytes"] = folder_bytes(store_folder(bench.home, SOURCE_STORE))[0] - before_v2
    log(f"   v2 ingested in {ingest2['seconds']:.2f} s; replicating v2 to {TARGET_STORE} (holds v1)")
    inc = bench.galley("replicate-v2", {"op": "replicate", "content_id": ingest2["content_id"],
                                        "sources": [SOURCE_STORE], "target": TARGET_STORE})
    inc["fraction_moved"] = inc["bytes_moved"] / size
    inc["blocks_rewritten"] = changed
    inc["blocks"] = blocks
    log(f"   moved {inc['bytes_moved'] / MiB:.0f} MiB = {100 * inc['fraction_moved']:.1f}% of the image "
        f"in {inc['seconds']:.2f} s")
    results["incremental"] = {"ingest_v2": ingest2, "replicate_v2": inc}
    src2.unlink()

    # 4. sparse VHD
    data = int(args.sparse_data_gib * GiB) // (4 * 2 * MiB) * (4 * 2 * MiB)
    virtual = int(args.sparse_virtual_gib * GiB) // (2 * MiB) * (2 * MiB)
    if data <= 0 or data > virtual:
        raise SystemExit("--sparse-data-gib must be positive and no larger than --sparse-virtual-gib")
    dense = tmp / "dense.raw"
    sparse_raw = tmp / "sparse.raw"
    vhd = tmp / "sparse.vhd"
    log(f"4. sparse VHD: {virtual / GiB:.0f} GiB dynamic VHD holding {data / GiB:.2f} GiB of random data "
        f"in 4 pieces")
    write_random(dense, data)
    piece = data // 4
    stride = virtual // 4 // (2 * MiB) * (2 * MiB)
    with open(dense, "rb") as fin, open(sparse_raw, "wb") as fout:
        fout.truncate(virtual)
        for i in range(4):
            fout.seek(i * stride + (stride - piece) // 2 // (2 * MiB) * (2 * MiB))
            left = piece
            while left:
                chunk = fin.read(min(PIECE, left))
                fout.write(chunk)
                left -= len(chunk)
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "vpc", "-o", "subformat=dynamic,force_size=on",
                    str(sparse_raw), str(vhd)], check=True)
    vhd_info = json.loads(subprocess.run(["qemu-img", "info", "--output=json", str(vhd)], check=True,
                                         capture_output=True, text=True).stdout)
    dense_ingest = bench.galley("ingest-dense-1g", {"op": "ingest", "path": str(dense), "format": "raw",
                                                    "store": DENSE_STORE, "key": "bench/dense"})
    dense_ingest["stored_bytes"] = folder_bytes(store_folder(bench.home, DENSE_STORE))[0]
    log(f"   dense {data / GiB:.2f} GiB raw: {dense_ingest['seconds']:.2f} s; now the VHD")
    vhd_ingest = bench.galley("ingest-sparse-vhd", {"op": "ingest", "path": str(vhd), "format": "vhd",
                                                    "store": VHD_STORE, "key": "bench/vhd"})
    stored, allocated, files = folder_bytes(store_folder(bench.home, VHD_STORE))
    vhd_ingest.update(stored_bytes=stored, allocated_bytes=allocated, files=files,
                      time_factor=vhd_ingest["seconds"] / dense_ingest["seconds"])
    log(f"   VHD: {vhd_ingest['seconds']:.2f} s, stored {stored / GiB:.3f} GiB; now the sparse raw")
    raw_ingest = bench.galley("ingest-sparse-raw", {"op": "ingest", "path": str(sparse_raw), "format": "raw",
                                                    "store": SPARSE_RAW_STORE, "key": "bench/sparse-raw"})
    raw_ingest["stored_bytes"] = folder_bytes(store_folder(bench.home, SPARSE_RAW_STORE))[0]
    raw_ingest["time_factor"] = raw_ingest["seconds"] / dense_ingest["seconds"]
    results["sparse"] = {
        "data_bytes": data, "virtual_bytes": virtual,
        "vhd_file_bytes": vhd.stat().st_size, "vhd_allocated_bytes": vhd.stat().st_blocks * 512,
        "sparse_raw_allocated_bytes": sparse_raw.stat().st_blocks * 512,
        "qemu_vhd_virtual_size": vhd_info.get("virtual-size"),
        "dense": dense_ingest, "vhd": vhd_ingest, "sparse_raw": raw_ingest}
    for path in (dense, sparse_raw, vhd):
        path.unlink()

    results["goals"] = goals(results)
    return results


def goals(r: dict) -> dict:
    out = {
        f"ingest >= {GOAL_INGEST_RATIO}x cp+sync": r["ingest"]["galley"]["ratio"] >= GOAL_INGEST_RATIO,
        f"replication >= {GOAL_REPLICATE_RATIO}x cp+sync": r["replicate"]["galley"]["ratio"] >= GOAL_REPLICATE_RATIO,
        f"incremental moves <= {GOAL_INCREMENTAL_FRACTION:.0%}":
            r["incremental"]["replicate_v2"]["fraction_moved"] <= GOAL_INCREMENTAL_FRACTION,
        f"sparse VHD stored <= {GOAL_SPARSE_STORED_GIB} x data":
            r["sparse"]["vhd"]["stored_bytes"] <= GOAL_SPARSE_STORED_GIB * r["sparse"]["data_bytes"],
        f"sparse VHD ingest <= {GOAL_SPARSE_TIME_FACTOR}x dense raw of its data":
            r["sparse"]["vhd"]["time_factor"] <= GOAL_SPARSE_TIME_FACTOR,
    }
    return out


# ---- output ---------------------------------------------------------------------------------------

def rounds_line(step: dict) -> str:
    cp, g = step["cp"]["rounds_seconds"], step["galley"]["rounds_seconds"]
    return (f"    ({len(cp)} interleaved rounds, medians above: cp+sync {' / '.join(f'{x:.2f}' for x in cp)} s, "
            f"Galley {' / '.join(f'{x:.2f}' for x in g)} s; ratio per round "
            f"{' / '.join(f'{x:.2f}' for x in step['galley']['rounds_ratio'])})")


def render(results: dict) -> str:
    env = results["environment"]
    size = results["size_bytes"]
    lines = [f"Galley data-plane benchmark: {size / GiB:.2f} GiB of random data, "
             f"{env['cpus']} CPUs, Python {env['python']}",
             f"temp dir {env['tmp_dir']} on {env['filesystem']} (Galley's stores, the sources and the cp "
             f"targets all on it)",
             f"page cache dropped before each measured step: {env['drop_caches']}",
             f"load average (1 min) at start {env['loadavg_start']:.2f}, at end {env['loadavg_end']:.2f} "
             f"(other processes on this machine disturb the timings; CPU s = the step's own user + system "
             f"CPU seconds)",
             "baseline: `cp SRC DST` then `sync` (Galley's ingest and replication end with os.sync() too); "
             "ratio = Galley MiB/s / baseline MiB/s (> 1: Galley is faster)", ""]
    hdr = f"  {'step':<46} {'seconds':>8} {'MiB/s':>8} {'ratio':>6} {'peak RSS MiB':>13} {'CPU s':>7}"
    ing, rep = results["ingest"], results["replicate"]

    def row(name, seconds, mib_s, ratio, rss, cpu=None):
        ratio_s = f"{ratio:6.2f}" if ratio is not None else f"{'':>6}"
        rss_s = f"{rss:13.0f}" if rss is not None else f"{'':>13}"
        cpu_s = f"{cpu:7.2f}" if cpu is not None else f"{'':>7}"
        return f"  {name:<46} {seconds:8.2f} {mib_s:8.0f} {ratio_s} {rss_s} {cpu_s}"

    lines.append("1. Ingest of a raw disk")
    lines.append(hdr)
    cp = ing["cp"]
    lines.append(row("cp + sync (baseline)", cp["seconds"], cp["mib_s"], None, cp["maxrss_mib"], cp["cpu_seconds"]))
    lines.append(f"    (of which cp {cp['cp_seconds']:.2f} s = {cp['cp_only_mib_s']:.0f} MiB/s, then sync "
                 f"{cp['sync_seconds']:.2f} s)")
    g = ing["galley"]
    lines.append(row("Galley ContentEngine.ingest (in-process)", g["seconds"], g["mib_s"], g["ratio"],
                     g["maxrss_mib"], g["cpu_seconds"]))
    lines.append(rounds_line(ing))
    lines.append(f"    (round 1's process: {g['process_wall_seconds']:.2f} s wall with start-up and migration; "
                 f"RSS after setup {g['setup_rss_mib']:.0f} MiB; stored {g['stored_bytes'] / MiB:.0f} MiB)")
    if "http_upload" in results:
        h = results["http_upload"]
        lines.append(row(f"{h['transport'].upper()} PUT {{disk}}/upload (curl -> galley serve)", h["seconds"],
                         h["mib_s"], h["ratio"], h["server_vmhwm_mib"], h["server_cpu_seconds"]))
        lines.append("    (" + ("plain HTTP, `galley serve --http`: TLS is left out of the comparison with cp + sync, "
                              "which encrypts nothing; --upload-https measures it over HTTPS"
                              if h["transport"] == "http" else "HTTPS, Galley's own certificate: TLS is in this "
                              "figure, and not in cp + sync") + "; a bearer token on every request)")
        lines.append(f"    (server VmRSS {h['server_rss_before_mib']:.0f} MiB before, "
                     f"{h['server_rss_after_mib']:.0f} MiB after; VmHWM {h['server_vmhwm_before_mib']:.0f} -> "
                     f"{h['server_vmhwm_mib']:.0f} MiB; curl {h['curl_maxrss_mib']:.0f} MiB; HTTP "
                     f"{h['http_status']})")
    lines.append("")
    lines.append(f"2. Replication of a fresh version ({SOURCE_STORE} -> {TARGET_STORE})")
    lines.append(hdr)
    cp = rep["cp"]
    lines.append(row("cp + sync (baseline)", cp["seconds"], cp["mib_s"], None, cp["maxrss_mib"], cp["cpu_seconds"]))
    g = rep["galley"]
    lines.append(row("Galley ContentEngine.replicate", g["seconds"], g["mib_s"], g["ratio"], g["maxrss_mib"],
                     g["cpu_seconds"]))
    lines.append(rounds_line(rep))
    lines.append(f"    (bytes moved {g['bytes_moved'] / MiB:.0f} MiB of {g['bytes_total'] / MiB:.0f} MiB)")
    lines.append("")
    inc = results["incremental"]
    r2, i2 = inc["replicate_v2"], inc["ingest_v2"]
    lines.append(f"3. Incremental replication: v2 = v1 with {r2['blocks_rewritten']} of {r2['blocks']} 1 MiB "
                 f"blocks rewritten ({100 * r2['blocks_rewritten'] / r2['blocks']:.1f}%)")
    lines.append(hdr)
    lines.append(row("Galley ingest of v2 (same store as v1)", i2["seconds"], i2["mib_s"], None, i2["maxrss_mib"],
                     i2["cpu_seconds"]))
    lines.append(f"    (new bytes in the store: {i2['new_stored_bytes'] / MiB:.0f} MiB)")
    lines.append(row(f"Galley replicate v2 to {TARGET_STORE}", r2["seconds"], size / MiB / r2["seconds"], None,
                     r2["maxrss_mib"], r2["cpu_seconds"]))
    lines.append(f"    bytes moved {r2['bytes_moved'] / MiB:.0f} MiB of a {size / MiB:.0f} MiB image = "
                 f"{100 * r2['fraction_moved']:.1f}% (Azure copies 100%)")
    lines.append("")
    sp = results["sparse"]
    lines.append(f"4. Sparse disk: {sp['virtual_bytes'] / GiB:.0f} GiB virtual, {sp['data_bytes'] / GiB:.2f} GiB "
                 f"of random data in 4 scattered pieces (dynamic VHD file "
                 f"{sp['vhd_file_bytes'] / GiB:.3f} GiB, made by qemu-img)")
    lines.append(f"  {'input':<46} {'seconds':>8} {'x dense':>8} {'stored GiB':>11} {'peak RSS MiB':>13} {'CPU s':>7}")
    for name, item in (("dense raw of the data (reference)", sp["dense"]),
                       ("dynamic VHD (30 GiB virtual)", sp["vhd"]),
                       ("sparse raw (30 GiB virtual, holes)", sp["sparse_raw"])):
        factor = item["seconds"] / sp["dense"]["seconds"]
        lines.append(f"  {name:<46} {item['seconds']:8.2f} {factor:8.2f} "
                     f"{item['stored_bytes'] / GiB:11.3f} {item['maxrss_mib']:13.0f} {item['cpu_seconds']:7.2f}")
    lines.append("")
    lines.append("5. Peak RSS (MiB) of each step's own process (ru_maxrss; the server: VmHWM)")
    rss = [("ingest", ing["galley"]["maxrss_mib"]), ("replicate", rep["galley"]["maxrss_mib"]),
           ("ingest v2", i2["maxrss_mib"]), ("replicate v2", r2["maxrss_mib"]),
           ("ingest dense", sp["dense"]["maxrss_mib"]), ("ingest VHD", sp["vhd"]["maxrss_mib"]),
           ("ingest sparse raw", sp["sparse_raw"]["maxrss_mib"])]
    if "http_upload" in results:
        rss.append(("server (HTTP upload)", results["http_upload"]["server_vmhwm_mib"]))
    lines.append("  " + ", ".join(f"{name} {value:.0f}" for name, value in rss))
    lines.append(f"  (a step's process holds about {ing['galley']['setup_rss_mib']:.0f} MiB after imports and "
                 f"setup, before any data moves)")
    lines.append("")
    lines.append("Goals: " + "; ".join(f"{name}: {'met' if ok else 'MISSED'}" for name, ok in results["goals"].items()))
    if results.get("profiles"):
        lines.append("")
        lines.append(f"Profiles (py-spy --nonblocking at {PROFILE_RATE} Hz over the measured operation only; seconds of samples per thread group, busy samples "
                     "only for pool threads; `innermost Galley frame > leaf frame`)")
        for label, prof in results["profiles"].items():
            lines.append(f"  {label}  ({prof['file']})")
            for group, info in prof["threads"].items():
                lines.append(f"    {group}: {info['seconds']:.2f} s")
                for key, seconds in info["top"][:6]:
                    lines.append(f"      {seconds:7.2f} s  {key}")
    return "\n".join(lines)


def environment(tmp: Path, bench: Bench) -> dict:
    device = fstype = "?"
    try:
        best = ""
        with open("/proc/mounts") as mounts:
            for line in mounts:
                dev, mnt, fs = line.split()[:3]
                if str(tmp).startswith(mnt) and len(mnt) >= len(best):
                    best, device, fstype = mnt, dev, fs
    except OSError:
        pass
    drops = bench.drop_results
    if bench.args.no_drop_caches:
        dropped = "no (--no-drop-caches)"
    elif drops and all(drops):
        dropped = "yes (every time)"
    elif any(drops):
        dropped = f"only {sum(drops)} of {len(drops)} times"
    else:
        dropped = "no (not permitted: runs are warm-cache)"
    return {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform(terse=True),
            "tmp_dir": str(tmp), "filesystem": f"{device} ({fstype})", "drop_caches": dropped,
            "loadavg_start": bench.loadavg_start, "loadavg_end": os.getloadavg()[0]}


# ---- main ----------------------------------------------------------------------------------------

def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Galley data-plane benchmark (see benchmarks/README.md).")
    parser.add_argument("--size-gib", type=float, default=2.0, help="size of the random raw image (default 2)")
    parser.add_argument("--changed-fraction", type=float, default=0.05,
                        help="fraction of 1 MiB blocks the second image rewrites (default 0.05)")
    parser.add_argument("--sparse-virtual-gib", type=float, default=30.0,
                        help="virtual size of the sparse VHD (default 30)")
    parser.add_argument("--sparse-data-gib", type=float, default=None,
                        help="random data in the sparse VHD (default: 1, or --size-gib if smaller)")
    parser.add_argument("--tmp-dir", default=None,
                        help="where to make the temporary folder (default: /tmp); everything goes there")
    parser.add_argument("--seed", type=int, default=20240601, help="seed for choosing the rewritten blocks")
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved cp / Galley rounds for ingest and replication (default 3; "
                             "the medians are compared)")
    parser.add_argument("--settle", type=float, default=2.0,
                        help="seconds to wait after sync + drop_caches before each measured step (default 2)")
    parser.add_argument("--no-http", action="store_true", help="skip the HTTP upload through `galley serve`")
    parser.add_argument("--upload-https", action="store_true",
                        help="upload over HTTPS (`galley serve` as it runs by default) instead of plain HTTP "
                             "(`galley serve --http`, the default here: the upload is compared with cp + sync)")
    parser.add_argument("--no-drop-caches", action="store_true", help="do not drop the page cache")
    parser.add_argument("--profile", action="store_true",
                        help="run every Galley step under py-spy and print where its time goes")
    parser.add_argument("--profile-dir", default="/tmp/galley-data-plane-profiles",
                        help="where --profile keeps the raw py-spy stacks (outside the temp folder)")
    parser.add_argument("--json", action="store_true", help="print the results as JSON instead of a table")
    args = parser.parse_args(argv)
    if args.sparse_data_gib is None:
        args.sparse_data_gib = min(1.0, args.size_gib)
    return args


def check_space(tmp_parent: Path, args: argparse.Namespace) -> None:
    size = args.size_gib * GiB
    data = args.sparse_data_gib * GiB
    # at most at once: v1 source + cp copy / v2 source, stores eastus (v1 + delta) and westus2, the
    # server's spool + store (removed after), and the sparse step's dense + sparse raw + VHD + 3 stores.
    need = max(6.5 * size, 2 * size + 6.5 * data) + 1 * GiB
    free = shutil.disk_usage(tmp_parent).free
    if free < need:
        raise SystemExit(f"not enough free space in {tmp_parent}: {free / GiB:.1f} GiB free, about "
                         f"{need / GiB:.1f} GiB needed")


def main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        return child_main(json.loads(argv[1]))
    args = parse_args(argv)
    for tool in ("cp", "curl", "qemu-img") + (("py-spy",) if args.profile else ()):
        if tool == "curl" and args.no_http:
            continue
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is not installed")
    tmp_parent = Path(args.tmp_dir or "/tmp")
    check_space(tmp_parent, args)
    tmp = Path(tempfile.mkdtemp(prefix="galley-data-plane-", dir=tmp_parent))
    log(f"temp dir {tmp}")

    def interrupted(signum, _frame):
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, interrupted)
    try:
        bench = Bench(args, tmp)
        results = run(args, bench)
        results["environment"] = environment(tmp, bench)
        results["profiles"] = bench.profiles
    except KeyboardInterrupt as stop:
        log(f"interrupted ({stop or 'Ctrl-C'}); cleaning up")
        return 130
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        log(f"removed {tmp}")
    if args.json:
        print(json.dumps(results, indent=2))
    else:
        print(render(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
