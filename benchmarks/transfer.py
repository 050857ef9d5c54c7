#!/usr/bin/env python
"""Galley transfer benchmark: ingest, HTTPS upload and download of a random image next to `cp`
of the same file on the same disk, a sparse image, and the server's peak memory under 8 uploads.

Run from the repository root, as root (to drop the page cache):

    python benchmarks/transfer.py                   # 2 GiB image, 30 GiB sparse image, 3 rounds (about 8 min)
    python benchmarks/transfer.py --size-gib 0.5 --sparse-virtual-gib 8 --sparse-data-gib 0.25
    python benchmarks/transfer.py --profile         # also py-spy the server: where its time goes

Every Galley step is measured next to a `cp` + `sync` of the same file run just before it, in
each of `--rounds` interleaved rounds (cp, ingest, cp, upload, cp, download, ...), with the page
cache dropped before each; the table gives min and median of both and the share of the machine's
CPUs that were busy (anyone's, kernel threads too) during each.

It reuses data_plane.py's machinery (Bench: the cp + sync baseline, each in-process ingest in its
own Python process, cache dropping, py-spy summaries) and galley_server.Server (`galley serve` as
users run it: HTTPS with Galley's own CA, a bearer token). Everything lives in one temporary folder
on one file system and is removed at the end. See benchmarks/README.md ("Transfer").
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from data_plane import (GiB, MiB, Bench, _cpu_seconds, _proc_status, _stop_py_spy, folder_bytes,
                        store_folder, summarize_profile, write_random, PROFILE_RATE)
from galley_server import SUBSCRIPTION, Server, free_port

from galley.domain.ids import key_of

GROUP = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/bench-transfer"
RESOURCES_API = "2024-03-01"
DISK_API = "2025-01-02"
STORE = "eastus/1/r0"
GOAL_RATIO = 0.8
GOAL_RSS_MIB = 300
SPARSE_PIECES = 4


def log(message: str) -> None:
    print(f"[transfer {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has been busy (every process and kernel thread): /proc/stat's
    first line, all but idle and iowait."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:9]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


class MachineBusy:
    """The share of all CPUs busy over a `with` block (1.0: every core busy the whole time)."""

    def __enter__(self):
        self.busy, self.started = machine_busy_seconds(), time.perf_counter()
        return self

    def __exit__(self, *exc):
        wall = time.perf_counter() - self.started
        self.share = (machine_busy_seconds() - self.busy) / (wall * (os.cpu_count() or 1)) if wall > 0 else 0.0


def cp_step(bench: Bench, source: Path, label: str) -> dict:
    """`cp` + `sync` of `source` into the same folder, cache dropped first (Bench.cp's measure),
    with the machine's busy share over the copy."""
    target = bench.tmp / f"cp-{label}.bin"
    bench.drop_caches()
    with MachineBusy() as busy:
        started = time.perf_counter()
        bench.run_timed(["cp", str(source), str(target)])
        cpu = Bench.last_cpu
        os.sync()
        seconds = time.perf_counter() - started
    target.unlink()
    os.sync()
    return {"seconds": seconds, "cpu_seconds": cpu, "machine_busy": busy.share}


# ---- the server's side ------------------------------------------------------------------------------

def create_disk(server: Server, name: str, size: int) -> str:
    disk = f"{GROUP}/providers/Microsoft.Compute/disks/{name}"
    with server.client(timeout=60) as client:
        client.put(f"{GROUP}?api-version={RESOURCES_API}", json={"location": "eastus"}).raise_for_status()
        response = client.put(f"{disk}?api-version={DISK_API}", json={"location": "eastus", "properties": {
            "creationData": {"createOption": "Upload", "uploadSizeBytes": size + 512}, "osType": "Linux"}})
        if response.status_code not in (200, 201, 202):
            raise RuntimeError(f"PUT disk -> {response.status_code}: {response.text}")
        deadline = time.time() + 60
        while client.get(f"{disk}?api-version={DISK_API}").json()["properties"]["provisioningState"] != "Succeeded":
            if time.time() > deadline:
                raise RuntimeError(f"{name} never became Succeeded")
            time.sleep(0.1)
    return disk


def curl_upload(server: Server, disk: str, source: Path) -> list[str]:
    return ["curl", "-sS", "--fail-with-body", *server.curl_args(), "-X", "PUT", "-T", str(source),
            "-H", "Expect:", "-H", "Content-Type: application/octet-stream", "-o", "/dev/null",
            "-w", "%{http_code}", f"{server.url}{disk}/upload?api-version={DISK_API}&format=raw"]


def curl_download(server: Server, disk: str, target: str, fmt: str = "raw") -> list[str]:
    return ["curl", "-sS", "--fail-with-body", *server.curl_args(), "-o", target, "-w", "%{http_code}",
            f"{server.url}{disk}/download?api-version={DISK_API}&format={fmt}"]


class Profiled:
    """py-spy on the server for one step, when --profile is given."""

    def __init__(self, bench: Bench, server: Server, label: str) -> None:
        self.bench, self.server, self.label, self.spy = bench, server, label, None

    def __enter__(self):
        if self.bench.profile_dir is not None and self.label is not None:
            self.bench.profile_dir.mkdir(parents=True, exist_ok=True)
            self.out = self.bench.profile_dir / f"{self.label}.txt"
            self.out.unlink(missing_ok=True)
            self.spy = subprocess.Popen(["py-spy", "record", "--format", "raw", "--rate", str(PROFILE_RATE),
                                         "--idle", "--threads", "--nonblocking", "--output", str(self.out),
                                         "--pid", str(self.server.process.pid)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.0)
        return self

    def __exit__(self, *exc):
        if self.spy is not None:
            _stop_py_spy(self.spy)
            if self.out.exists():
                self.bench.profiles[self.label] = {**summarize_profile(self.out), "file": str(self.out)}


def server_step(bench: Bench, server: Server, label: str | None, argv: list[str], size: int,
                after=None, pid: int | None = None) -> dict:
    """One curl against the server (or, with `pid`, against that process: the bare endpoint), cache
    dropped first; wall seconds (with `after`, e.g. a sync), that process's CPU seconds and VmHWM
    after the step. `label`: the name of the step's profile (None: not profiled)."""
    pid = pid or server.process.pid
    bench.drop_caches()
    cpu = _cpu_seconds(pid)
    with Profiled(bench, server, label), MachineBusy() as busy:
        started = time.perf_counter()
        _wall, _rss, output = bench.run_timed(argv)
        client_cpu = Bench.last_cpu
        if after is not None:
            after()
        seconds = time.perf_counter() - started
    status = _proc_status(pid)
    if output.strip()[-3:] not in ("200", "201"):
        raise RuntimeError(f"{argv[-1]} answered {output.strip()[-300:]}")
    return {"seconds": seconds, "mib_s": size / MiB / seconds, "http_status": output.strip()[-3:],
            "server_cpu_seconds": _cpu_seconds(pid) - cpu, "client_cpu_seconds": client_cpu,
            "machine_busy": busy.share,
            "server_vmhwm_mib": status.get("VmHWM"), "server_rss_mib": status.get("VmRSS")}


# ---- the steps ----------------------------------------------------------------------------------------

DENSE_STEPS = ("ingest", "upload", "bare_upload", "download", "bare_download")
BARE_STEPS = ("bare_upload", "bare_download")  # not Galley: the ceiling of the stack it runs on


def dense(bench: Bench, server: Server, source: Path, rounds: int, bare: bool = True) -> dict:
    """Rounds of, each step right after its own cp + sync (cp, ingest, cp, upload, cp, bare
    upload, ...): in-process ingest; HTTPS upload; the same curl to transfer_drain.py, which drains
    and stores nothing; HTTPS download to a file + sync; the same from transfer_drain.py, which sends
    bytes it never read. The bare steps are what no server on this stack (curl, TLS, uvicorn, uvloop,
    httptools, Galley's HTTP protocol) can go below."""
    size = source.stat().st_size
    disk = create_disk(server, "bench-dense", size)
    steps = [s for s in DENSE_STEPS if bare or s not in BARE_STEPS]
    out = {"cp": {step: [] for step in steps}, "scheme": server.scheme.upper(), **{step: [] for step in steps}}
    target = bench.tmp / "downloaded.raw"
    drain = start_drain(server) if bare else None
    try:
        for r in range(rounds):
            if r:
                renew_chunks(source, size)
            for name in steps:
                out["cp"][name].append(cp_step(bench, source, "dense"))
                log(f"round {r + 1}/{rounds}: cp + sync {out['cp'][name][-1]['seconds']:.2f} s; {name}")
                step = dense_step(bench, server, drain, name, r, disk, source, target)
                out[name].append(step)
                log(f"   {name} {step['seconds']:.2f} s")
    finally:
        if drain is not None:
            stop_drain(drain)
    return out


def renew_chunks(path: Path, size: int) -> None:
    """New random bytes at the start of every MiB of the first `size` bytes: every chunk of the
    next round is one the store has never seen. Otherwise a round would upload what the round
    before stored, and Galley, which stores a chunk once, would only hash and look it up."""
    with open(path, "r+b") as handle:
        for offset in range(0, size, MiB):
            os.pwrite(handle.fileno(), os.urandom(16), offset)


def dense_step(bench: Bench, server: Server, drain, name: str, r: int, disk: str, source: Path,
               target: Path) -> dict:
    size = source.stat().st_size
    if name == "ingest":  # in its own process, a fresh store and database
        home = bench.tmp / f"ingest-home-{r}"
        home.mkdir()
        step = bench.galley(f"ingest-{r + 1}", {"op": "ingest", "path": str(source), "format": "raw",
                                                "store": STORE, "key": "bench/dense", "home": str(home)})
        step["mib_s"] = size / MiB / step["seconds"]
        shutil.rmtree(home, ignore_errors=True)
        return step
    if name == "upload":
        return server_step(bench, server, f"upload-{r + 1}", curl_upload(server, disk, source), size)
    if name == "bare_upload":
        return server_step(bench, server, None, curl_bare(server, drain, ["-X", "PUT", "-T", str(source), "-H", "Expect:",
                                                                       "-o", "/dev/null"]), size, pid=drain[0].pid)
    # downloads: to a file on the same disk, then sync
    if name == "download":
        step = server_step(bench, server, f"download-{r + 1}", curl_download(server, disk, str(target)),
                           size, after=os.sync)
    else:
        step = server_step(bench, server, None, curl_bare(server, drain, ["-o", str(target)], f"?size={size}"),
                           size, after=os.sync, pid=drain[0].pid)
    if target.stat().st_size != size:
        raise RuntimeError(f"the {name} is {target.stat().st_size} bytes, not {size}")
    target.unlink()
    os.sync()
    return step


def curl_bare(server: Server, drain, args: list[str], query: str = "") -> list[str]:
    return ["curl", "-sS", "--fail-with-body", "--cacert", str(server.ca_file), *args, "-w", "%{http_code}",
            f"https://127.0.0.1:{drain[1]}/bare/disk{query}"]


def write_sparse(path: Path, virtual: int, data: int) -> None:
    """`virtual` bytes with `data` bytes of random data in SPARSE_PIECES pieces spread over it."""
    piece = data // SPARSE_PIECES // MiB * MiB
    with open(path, "wb") as handle:
        handle.truncate(virtual)
        for n in range(SPARSE_PIECES):
            handle.seek((virtual // SPARSE_PIECES) * n + 7 * MiB)
            left = piece
            while left:
                chunk = min(4 * MiB, left)
                handle.write(os.urandom(chunk))
                left -= chunk


def sparse(bench: Bench, server: Server, virtual: int, data: int) -> dict:
    source = bench.tmp / "sparse.raw"
    write_sparse(source, virtual, data)
    log(f"sparse: {virtual / GiB:.0f} GiB with {data / GiB:.2f} GiB of data; cp --sparse=always + sync")
    target = bench.tmp / "cp-sparse.raw"
    bench.drop_caches()
    started = time.perf_counter()
    bench.run_timed(["cp", "--sparse=always", str(source), str(target)])
    os.sync()
    result = {"cp": {"seconds": time.perf_counter() - started}}
    target.unlink()
    # Ingested (in its own process) straight into the running server's home, as the disk's content:
    # an HTTP upload of a raw body would put all its zeros on the wire (sparse uploads are the
    # page-write path's, which sends only data).
    disk = create_disk(server, "bench-sparse", virtual)
    log("   ingest (SEEK_DATA finds the data) into the server's store, as the disk's content")
    before = folder_bytes(store_folder(server.home, STORE))[0]
    result["ingest"] = bench.galley("ingest-sparse", {"op": "ingest", "path": str(source), "format": "raw",
                                                      "store": STORE, "key": key_of(disk), "home": str(server.home)})
    result["ingest"]["stored_bytes"] = folder_bytes(store_folder(server.home, STORE))[0] - before
    log("   HTTPS download as a dynamic VHD, then sync")
    vhd = bench.tmp / "sparse.vhd"
    result["download_vhd"] = server_step(bench, server, "download-sparse-vhd",
                                         curl_download(server, disk, str(vhd), "vhd-dynamic"), virtual, after=os.sync)
    result["download_vhd"]["file_bytes"] = vhd.stat().st_size
    vhd.unlink()
    log("   HTTPS download as raw (all 30 GiB on the wire) to /dev/null")
    result["download_raw"] = server_step(bench, server, "download-sparse-raw",
                                         curl_download(server, disk, "/dev/null"), virtual)
    source.unlink()
    return result


def parallel(bench: Bench, tmp: Path, size: int, writers: int, https: bool) -> dict:
    """A fresh server; `writers` curl uploads at once to as many disks, size/writers bytes each."""
    each = size // writers // MiB * MiB
    server = Server(tmp / "parallel-home", http=not https).start()
    try:
        disks, sources = [], []
        for n in range(writers):
            disks.append(create_disk(server, f"bench-parallel-{n}", each))
            sources.append(tmp / f"part-{n}.raw")
            write_random(sources[-1], each)
        before = _proc_status(server.process.pid)
        bench.drop_caches()
        cpu = _cpu_seconds(server.process.pid)
        with Profiled(bench, server, "parallel-upload"):
            started = time.perf_counter()
            running = [subprocess.Popen(curl_upload(server, d, s), stdout=subprocess.PIPE)
                       for d, s in zip(disks, sources)]
            codes = [p.communicate()[0].decode().strip() for p in running]
            seconds = time.perf_counter() - started
        after = _proc_status(server.process.pid)
        for source in sources:
            source.unlink()
        return {"writers": writers, "bytes": each * writers, "seconds": seconds,
                "mib_s": each * writers / MiB / seconds, "codes": codes,
                "server_cpu_seconds": _cpu_seconds(server.process.pid) - cpu,
                "vmhwm_before_mib": before.get("VmHWM"), "vmhwm_mib": after.get("VmHWM")}
    finally:
        server.stop()


def _own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def page_upload(bench: Bench, tmp: Path, source: Path, writers: int, rounds: int, bare: bool = True) -> dict:
    """A fresh server; rounds of: `cp` + sync of the source as a fixed VHD (the baseline), then that
    VHD through a new disk's Write SAS with azure-storage-blob's `upload_blob(blob_type="PageBlob",
    max_concurrency=writers)` (Put Page, 4 MiB each) and endGetAccess, then (`bare`) the same
    upload_blob against transfer_drain.py, a bare endpoint that only drains the bodies (the client's
    and TLS's own cost: what no server can go below). CPU of the server, the client (this process)
    and the machine's busy share for each."""
    from azure.storage.blob import BlobClient

    from galley.content.vhd import DISK_FIXED, VhdFooter

    size = source.stat().st_size
    vhd = tmp / "pages.vhd"
    shutil.copyfile(source, vhd)
    with open(vhd, "ab") as handle:
        handle.write(VhdFooter.new(DISK_FIXED, size).pack())
    server = Server(tmp / "pages-home").start()
    drain = None
    try:
        out = {"writers": writers, "bytes": size, "cp": [], "rounds": [], "bare": []}
        out["vmhwm_before_mib"] = _proc_status(server.process.pid).get("VmHWM")
        if bare:
            drain = start_drain(server)
        for r in range(rounds):
            if r:
                renew_chunks(vhd, size)
            out["cp"].append(cp_step(bench, vhd, "pages"))
            log(f"page writes round {r + 1}/{rounds}: cp + sync of the VHD {out['cp'][-1]['seconds']:.2f} s")
            disk = create_disk(server, f"bench-pages-{r}", size)
            with server.client(timeout=60) as client:
                response = client.post(f"{disk}/beginGetAccess?api-version={DISK_API}",
                                       json={"access": "Write", "durationInSeconds": 3600})
                if response.status_code != 200:
                    raise RuntimeError(f"beginGetAccess -> {response.status_code}: {response.text}")
                sas = response.json()["accessSAS"]
            log(f"   upload_blob(PageBlob, max_concurrency={writers}), endGetAccess")
            bench.drop_caches()
            cpu = _cpu_seconds(server.process.pid)
            with Profiled(bench, server, f"page-upload-{r + 1}"), MachineBusy() as busy:
                client_cpu = _own_cpu_seconds()
                started = time.perf_counter()
                blob = BlobClient.from_blob_url(sas, connection_verify=str(server.ca_file))
                with open(vhd, "rb") as handle:
                    blob.upload_blob(handle, blob_type="PageBlob", length=size + 512, max_concurrency=writers)
                sent = time.perf_counter() - started
                client_cpu = _own_cpu_seconds() - client_cpu
                with server.client(timeout=600) as client:
                    client.post(f"{disk}/endGetAccess?api-version={DISK_API}").raise_for_status()
                seconds = time.perf_counter() - started
            out["rounds"].append({"seconds": seconds, "pages_seconds": sent, "client_cpu_seconds": client_cpu,
                                  "server_cpu_seconds": _cpu_seconds(server.process.pid) - cpu,
                                  "machine_busy": busy.share})
            log(f"   {sent:.2f} s of page writes, {seconds:.2f} s with endGetAccess")
            if drain is not None:
                out["bare"].append(bare_pages(bench, drain, server, vhd, size, writers))
                log(f"   bare endpoint: {out['bare'][-1]['seconds']:.2f} s")
        out["vmhwm_mib"] = _proc_status(server.process.pid).get("VmHWM")
        vhd.unlink()
        return out
    finally:
        if drain is not None:
            stop_drain(drain)
        server.stop()


def start_drain(server: Server) -> tuple[subprocess.Popen, int]:
    """transfer_drain.py on a free port with the server's own certificate (trusted through its CA)."""
    port = free_port()
    tls = server.home / "tls"
    process = subprocess.Popen([sys.executable, str(Path(__file__).resolve().parent / "transfer_drain.py"),
                                "--port", str(port), "--ssl-certfile", str(tls / "server.pem"),
                                "--ssl-keyfile", str(tls / "server.key")],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return process, port
        except OSError:
            if process.poll() is not None:
                raise RuntimeError(f"transfer_drain.py exited with {process.returncode}")
            time.sleep(0.1)
    process.kill()
    raise TimeoutError("transfer_drain.py did not listen")


def stop_drain(drain: tuple[subprocess.Popen, int]) -> None:
    drain[0].terminate()
    drain[0].wait(timeout=30)


def bare_pages(bench: Bench, drain: tuple[subprocess.Popen, int], server: Server, vhd: Path, size: int,
               writers: int) -> dict:
    """The same upload_blob against the bare endpoint: wall, client CPU, the endpoint's CPU."""
    from azure.storage.blob import BlobClient

    process, port = drain
    bench.drop_caches()
    cpu = _cpu_seconds(process.pid)
    with MachineBusy() as busy:
        client_cpu = _own_cpu_seconds()
        started = time.perf_counter()
        blob = BlobClient.from_blob_url(f"https://127.0.0.1:{port}/drain/vhds/disk.vhd?sv=2025-01-05&sr=b&sp=w"
                                        "&sig=unchecked", connection_verify=str(server.ca_file))
        with open(vhd, "rb") as handle:
            blob.upload_blob(handle, blob_type="PageBlob", length=size + 512, max_concurrency=writers)
        seconds = time.perf_counter() - started
        client_cpu = _own_cpu_seconds() - client_cpu
    return {"seconds": seconds, "client_cpu_seconds": client_cpu,
            "server_cpu_seconds": _cpu_seconds(process.pid) - cpu, "machine_busy": busy.share}


# ---- output ----------------------------------------------------------------------------------------------

def render(size: int, d: dict | None, sp: dict | None, par: dict | None, pages: dict | None, bench: Bench,
           load_end: float) -> str:
    lines = [f"Galley transfer benchmark: {size / GiB:.2f} GiB of random data, {os.cpu_count()} CPUs; "
             f"temp dir {bench.tmp}",
             f"page cache dropped before each step: {'yes' if bench.drop_results and all(bench.drop_results) else 'no'}",
             f"load average (1 min) at start {bench.loadavg_start:.2f}, at end {load_end:.2f}",
             "baseline: `cp SRC DST; sync` of the same file on the same disk, run right before each Galley step in "
             f"every round; ratio = cp+sync seconds / Galley seconds (goal >= {GOAL_RATIO}, judged on the medians)",
             "busy: the share of all CPUs busy during the step (every process and kernel thread, median of rounds): "
             "near 100% the step was short of CPU, and others' load counts", ""]
    goals = {}
    if d is not None:
        goals.update(dense_rows(lines, size, d))

    return finish_render(lines, goals, sp, par, pages, bench)


def _stats(steps: list[dict], key: str = "seconds") -> tuple[float, float]:
    values = [s[key] for s in steps]
    return min(values), statistics.median(values)


def _median(steps: list[dict], key: str) -> float | None:
    values = [s[key] for s in steps if s.get(key) is not None]
    return statistics.median(values) if values else None


def _cell(value: float | None, width: int, fmt: str) -> str:
    return f"{value:{width}{fmt}}" if value is not None else " " * width


def dense_rows(lines: list[str], size: int, d: dict) -> dict:
    lines.append(f"  {'step':<50} {'min s':>6} {'median':>6} {'cp min':>6} {'median':>6} {'ratio':>5} "
                 f"{'(min)':>5} {'CPU s':>6} {'client':>6} {'busy':>5} {'HWM':>5}")
    ratios = {}
    names = {"ingest": "ingest (ContentEngine.ingest, own process)",
             "upload": f"{d['scheme']} PUT {{disk}}/upload (curl -T -> galley serve)",
             "download": f"{d['scheme']} GET {{disk}}/download raw (curl -o file; sync)",
             "bare_upload": "  the same curl -T to a bare draining endpoint",
             "bare_download": "  the same curl -o + sync from a bare sending endpoint"}
    for key in DENSE_STEPS:
        if key not in d:
            continue
        steps, cps = d[key], d["cp"][key]
        low, mid = _stats(steps)
        cp_low, cp_mid = _stats(cps)
        cpu = _median(steps, "cpu_seconds" if key == "ingest" else "server_cpu_seconds")
        busy = _median(steps, "machine_busy")
        peak = max((s.get("server_vmhwm_mib") or 0 for s in steps), default=0)
        if key not in BARE_STEPS:
            ratios[key] = cp_mid / mid
        lines.append(f"  {names[key]:<50} {low:6.2f} {mid:6.2f} {cp_low:6.2f} {cp_mid:6.2f} {cp_mid / mid:5.2f} "
                     f"{cp_low / low:5.2f} {_cell(cpu, 6, '.2f')} {_cell(_median(steps, 'client_cpu_seconds'), 6, '.2f')} "
                     + (f"{busy * 100:4.0f}% " if busy is not None else " " * 6) + (f"{peak:5.0f}" if peak else ""))
        lines.append("      rounds: " + " / ".join(f"{s['seconds']:.2f}" for s in steps) + " s; its cp + sync: "
                     + " / ".join(f"{s['seconds']:.2f}" for s in cps) + " s (cp's own CPU "
                     f"{_median(cps, 'cpu_seconds'):.2f} s, busy {_median(cps, 'machine_busy') * 100:.0f}%)")
    lines += ["      (ratio: median cp / median step; (min): fastest cp / fastest step. CPU s: the in-process "
                 "ingest's, or the server's over the step; client: curl's own (reading the file, TLS, the socket), "
                 "on the same CPUs as the server; HWM: the server's VmHWM in MiB after the step)",
                 "      (bare: transfer_drain.py, the same uvicorn + uvloop + httptools + TLS + Galley's HTTP protocol, "
                 "with no authentication, no storage and no reads: what no server on this stack can go below; "
                 "its CPU s is the endpoint's)"]
    return {f"{k} >= {GOAL_RATIO}x cp": v >= GOAL_RATIO for k, v in ratios.items()}


def page_rows(lines: list[str], pages: dict) -> dict:
    size = pages["bytes"]
    gib = size / GiB
    cp_low, cp = _stats(pages["cp"])
    writes_low, writes = _stats(pages["rounds"], "pages_seconds")
    upload_low, upload = _stats(pages["rounds"])
    cpu = _median(pages["rounds"], "server_cpu_seconds")
    client_cpu = _median(pages["rounds"], "client_cpu_seconds")
    lines += ["", f"Disk Write SAS: {gib:.2f} GiB as a fixed VHD, azure-storage-blob upload_blob(PageBlob, "
                  f"max_concurrency={pages['writers']}) to a new disk each round, then endGetAccess; a fresh server",
              f"  {'step':<50} {'min s':>6} {'median':>6} {'ratio':>5} {'(min)':>5} {'server':>6} {'client':>6} "
              f"{'busy':>5}   (CPU s a GiB)",
              f"  {'cp + sync of the VHD (baseline)':<50} {cp_low:6.2f} {cp:6.2f} {'':>5} {'':>5} {'':>6} "
              f"{_median(pages['cp'], 'cpu_seconds') / gib:6.2f} {_median(pages['cp'], 'machine_busy') * 100:4.0f}%",
              "      rounds: " + " / ".join(f"{r['seconds']:.2f}" for r in pages["cp"]) + " s",
              f"  {'page writes (upload_blob returned)':<50} {writes_low:6.2f} {writes:6.2f} {cp / writes:5.2f} "
              f"{cp_low / writes_low:5.2f}",
              "      rounds: " + " / ".join(f"{r['pages_seconds']:.2f}" for r in pages["rounds"]) + " s",
              f"  {'page writes + endGetAccess (the disk has it)':<50} {upload_low:6.2f} {upload:6.2f} {cp / upload:5.2f} "
              f"{cp_low / upload_low:5.2f} {cpu / gib:6.2f} {client_cpu / gib:6.2f} "
              f"{_median(pages['rounds'], 'machine_busy') * 100:4.0f}%",
              "      rounds: " + " / ".join(f"{r['seconds']:.2f}" for r in pages["rounds"]) + " s"]
    if pages.get("bare"):
        bare_low, bare = _stats(pages["bare"])
        lines += [f"  {'the same upload_blob to a bare draining endpoint':<50} {bare_low:6.2f} {bare:6.2f} "
                  f"{cp / bare:5.2f} {cp_low / bare_low:5.2f} {_median(pages['bare'], 'server_cpu_seconds') / gib:6.2f} "
                  f"{_median(pages['bare'], 'client_cpu_seconds') / gib:6.2f} "
                  f"{_median(pages['bare'], 'machine_busy') * 100:4.0f}%",
                  "      rounds: " + " / ".join(f"{r['seconds']:.2f}" for r in pages["bare"]) + " s",
                  "      (transfer_drain.py: uvicorn + httptools over TLS with Galley's certificate, reads each body "
                  "and answers 201; no storage, no authentication. Its ratio is the best any server could reach "
                  "with this client on these CPUs.)"]
    lines.append(f"  server VmHWM {pages['vmhwm_before_mib']:.0f} MiB before, {pages['vmhwm_mib']:.0f} MiB after "
                 f"(goal < {GOAL_RSS_MIB} MiB); CPU s a GiB: the server's (or the bare endpoint's) over a round, "
                 "the client's (azure-storage-blob, in this process) during its page writes; cp's own for cp")
    return {f"SAS page upload >= {GOAL_RATIO}x cp": cp / upload >= GOAL_RATIO,
            f"server peak RSS < {GOAL_RSS_MIB} MiB, page writes x{pages['writers']}": pages["vmhwm_mib"] < GOAL_RSS_MIB}


def finish_render(lines: list[str], goals: dict, sp: dict | None, par: dict | None, pages: dict | None,
                  bench: Bench) -> str:
    if sp is not None:
        lines += ["", f"Sparse image: {sp['virtual'] / GiB:.0f} GiB virtual, {sp['data'] / GiB:.2f} GiB of random data "
                      f"in {SPARSE_PIECES} pieces"]
        lines.append(f"  {'step':<52} {'seconds':>8} {'x cp':>7} {'CPU s':>7}")
        base = sp["cp"]["seconds"]
        lines.append(f"  {'cp --sparse=always + sync (baseline)':<52} {base:8.2f}")
        for name, key, cpu in (("ingest (own process; holes found with SEEK_DATA)", "ingest", "cpu_seconds"),
                               ("HTTPS GET download as vhd-dynamic (file; sync)", "download_vhd", "server_cpu_seconds"),
                               ("HTTPS GET download raw (all bytes, to /dev/null)", "download_raw", "server_cpu_seconds")):
            step = sp[key]
            lines.append(f"  {name:<52} {step['seconds']:8.2f} {step['seconds'] / base:7.2f} {step[cpu]:7.2f}")
        lines.append(f"      (ingest stored {sp['ingest']['stored_bytes'] / GiB:.3f} GiB; the dynamic VHD is "
                     f"{sp['download_vhd']['file_bytes'] / GiB:.3f} GiB)")
        goals["sparse ingest within 2x cp of the data"] = sp["ingest"]["seconds"] <= 2 * base
    if par is not None:
        lines += ["", f"Memory: {par['writers']} parallel HTTPS PUT {{disk}}/upload of "
                      f"{par['bytes'] / par['writers'] / MiB:.0f} MiB each ({par['bytes'] / GiB:.2f} GiB in all) "
                      "to a fresh server",
                  f"  {par['seconds']:.2f} s ({par['mib_s']:.0f} MiB/s in all), server CPU {par['server_cpu_seconds']:.2f} s, "
                  f"HTTP {' '.join(sorted(set(par['codes'])))}",
                  f"  server VmHWM {par['vmhwm_before_mib']:.0f} MiB before, {par['vmhwm_mib']:.0f} MiB after "
                  f"(goal < {GOAL_RSS_MIB} MiB)"]
        goals[f"server peak RSS < {GOAL_RSS_MIB} MiB with {par['writers']} uploads"] = par["vmhwm_mib"] < GOAL_RSS_MIB
    if pages is not None:
        goals.update(page_rows(lines, pages))
    lines += ["", "Goals: " + "; ".join(f"{k}: {'met' if ok else 'MISSED'}" for k, ok in goals.items())]
    if bench.profiles:
        lines += ["", f"Server profiles (py-spy at {PROFILE_RATE} Hz; seconds of samples per thread group)"]
        for label, prof in bench.profiles.items():
            lines.append(f"  {label}  ({prof['file']})")
            for group, info in list(prof["threads"].items())[:4]:
                lines.append(f"    {group}: {info['seconds']:.2f} s")
                for key, seconds in info["top"][:6]:
                    lines.append(f"      {seconds:7.2f} s  {key}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description="Galley transfer benchmark (see benchmarks/README.md).")
    parser.add_argument("--size-gib", type=float, default=2.0, help="the random image (default 2)")
    parser.add_argument("--rounds", type=int, default=3,
                        help="interleaved rounds of the dense and page-write steps, each after its own cp (default 3)")
    parser.add_argument("--sparse-virtual-gib", type=float, default=30.0)
    parser.add_argument("--sparse-data-gib", type=float, default=1.0)
    parser.add_argument("--writers", type=int, default=8, help="parallel uploads in the memory step (default 8)")
    parser.add_argument("--http", action="store_true", help="plain HTTP instead of HTTPS (`galley serve --http`)")
    parser.add_argument("--skip", action="append", default=[], choices=["dense", "sparse", "parallel", "pages", "bare"],
                        help="leave a step out (repeatable)")
    parser.add_argument("--tmp-dir", default="/tmp")
    parser.add_argument("--settle", type=float, default=1.0, help="seconds after dropping the cache (default 1)")
    parser.add_argument("--no-drop-caches", action="store_true")
    parser.add_argument("--profile", action="store_true", help="py-spy the server during each step")
    parser.add_argument("--profile-dir", default="/tmp/galley-transfer-profiles")
    args = parser.parse_args(argv)
    for tool in ("cp", "curl") + (("py-spy",) if args.profile else ()):
        if not shutil.which(tool):
            raise SystemExit(f"{tool} is not installed")
    size = int(args.size_gib * GiB) // MiB * MiB
    need = 5 * size + 3 * args.sparse_data_gib * GiB + GiB
    if shutil.disk_usage(args.tmp_dir).free < need:
        raise SystemExit(f"about {need / GiB:.1f} GiB of free space is needed in {args.tmp_dir}")
    tmp = Path(tempfile.mkdtemp(prefix="galley-transfer-", dir=args.tmp_dir))
    server = None
    try:
        bench = Bench(args, tmp)
        source = tmp / "image.raw"
        log(f"writing {size / GiB:.2f} GiB of random data")
        write_random(source, size)
        server = Server(tmp / "server-home", http=args.http).start()
        d = None if "dense" in args.skip else dense(bench, server, source, args.rounds,
                                                         bare="bare" not in args.skip and not args.http)
        pages = None if "pages" in args.skip else page_upload(bench, tmp, source, args.writers, args.rounds,
                                                               bare="bare" not in args.skip)
        source.unlink()
        sp = None
        if "sparse" not in args.skip:
            sp = sparse(bench, server, int(args.sparse_virtual_gib * GiB), int(args.sparse_data_gib * GiB))
            sp.update(virtual=int(args.sparse_virtual_gib * GiB), data=int(args.sparse_data_gib * GiB))
        server.stop()
        server = None
        par = None if "parallel" in args.skip else parallel(bench, tmp, size, args.writers, not args.http)
        print(render(size, d, sp, par, pages, bench, os.getloadavg()[0]))
    except KeyboardInterrupt:
        log("interrupted; cleaning up")
        return 130
    finally:
        if server is not None:
            server.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        log(f"removed {tmp}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
