#!/usr/bin/env python
"""Copy-on-write VM disks (issue 12): what a VM's disk costs on the host and in the chunk store,
each figure beside a baseline, in one run.

Run from the repository root:

    python benchmarks/vm_disks.py                          # a 30 GiB image holding 1 GiB of data
    python benchmarks/vm_disks.py --size-gib 4 --data-gib 0.25   # quicker
    python benchmarks/vm_disks.py --json

The goal: "a VM from a 30 GiB image with 1 GiB of data adds less than 50 MiB of stored bytes
until the guest writes". Set-up: a sparse raw image (random data, so nothing compresses or
dedups by accident) ingested into a fresh SQLite + folder store. Then galley.compute.DiskFiles:

1. open(): the shared read-only base materialized from the content (time, bytes allocated on the
   host) beside `cp --sparse=always` of the same raw file, and the overlay's allocated bytes;
   a second VM's open() over the same content (no new base).
2. capture() with nothing written: time and stored bytes added, beside `qemu-img convert -f qcow2
   -O raw` of the overlay (the obvious way to read a VM disk back).
3. the "guest" writes W MiB of random data (qemu-io into the overlay), capture(): time and stored bytes added.

Everything happens in a temporary folder, removed at the end (--keep to keep it).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from galley.compute.disk_files import DiskFiles
from galley.config import DEFAULT_REGIONS, Settings
from galley.content.engine import ContentEngine
from galley.content.locations import Locations
from galley.content.raw import RawImage
from galley.store.content_repository import ContentRepository
from galley.store.database import make_engine, migrate
from galley.store.sql_store import SqlStore

MIB = 1 << 20
STORE = "eastus/1/r0"


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def timed(action):
    started = time.perf_counter()
    result = action()
    return result, time.perf_counter() - started


def allocated(path: Path) -> int:
    return path.stat().st_blocks * 512


def stored_bytes(engine: ContentEngine) -> int:
    return sum(stored for stored, _raw in engine.repo.physical_by_store().values())


def make_image(path: Path, size: int, data: int) -> None:
    """`data` bytes of random data at the start (where an OS image keeps its files), the rest a hole."""
    with open(path, "wb") as f:
        f.truncate(size)
        written = 0
        while written < data:
            piece = min(64 * MIB, data - written)
            f.write(os.urandom(piece))
            written += piece


def run(args, work: Path) -> dict:
    size, data = int(args.size_gib * 1024) * MIB, int(args.data_gib * 1024) * MIB
    settings = Settings(home=work / "home", database_url=f"sqlite:///{work / 'galley.db'}", regions=DEFAULT_REGIONS)
    database = make_engine(settings.database_url)
    migrate(database)
    engine = ContentEngine(ContentRepository(SqlStore(database)), Locations(settings))
    image = work / "image.raw"
    progress(f"making a {args.size_gib:g} GiB image with {args.data_gib:g} GiB of data")
    make_image(image, size, data)
    progress("ingesting it")
    source = RawImage(image)
    content, ingest_s = timed(lambda: engine.ingest(source, STORE, ("image/source", -1)))
    source.close()
    stored_after_ingest = stored_bytes(engine)
    disks = DiskFiles(work / "compute", engine)
    figures = {"virtual_bytes": size, "data_bytes": data, "ingest_seconds": ingest_s,
               "stored_bytes_image": stored_after_ingest}

    progress("opening the first VM disk (materializes the base)")
    overlay, open_s = timed(lambda: disks.open("vm1-os", content, [STORE]))
    base = work / "compute" / "bases" / f"{content}.raw"
    _, cp_s = timed(lambda: subprocess.run(["cp", "--sparse=always", str(image), str(work / "copy.raw")], check=True))
    figures.update(open_seconds=open_s, cp_sparse_seconds=cp_s, base_allocated=allocated(base),
                   cp_allocated=allocated(work / "copy.raw"), overlay_allocated=allocated(overlay))
    (work / "copy.raw").unlink()
    _, second_open_s = timed(lambda: disks.open("vm2-os", content, [STORE]))
    figures.update(second_open_seconds=second_open_s, usage_two_vms=disks.usage())

    progress("capturing the unchanged disk")
    _, convert_s = timed(lambda: subprocess.run(
        ["qemu-img", "convert", "-f", "qcow2", "-O", "raw", str(overlay), str(work / "converted.raw")], check=True))
    (work / "converted.raw").unlink()
    _, capture_s = timed(lambda: disks.capture("vm1-os", STORE, ("disk/vm1-os", -1)))
    figures.update(convert_seconds=convert_s, capture_unchanged_seconds=capture_s,
                   stored_added_unchanged=stored_bytes(engine) - stored_after_ingest)

    progress(f"the guest writes {args.write_mib} MiB; capturing again")
    before = stored_bytes(engine)
    written = work / "written.bin"
    written.write_bytes(os.urandom(args.write_mib * MIB))
    offset_mib = min(512, args.size_gib * 1024 - args.write_mib)
    subprocess.run(["qemu-io", "-f", "qcow2", "-c", f"write -s {written} {offset_mib:.0f}M {args.write_mib}M",
                    str(overlay)], check=True, capture_output=True)
    _, capture_written_s = timed(lambda: disks.capture("vm1-os", STORE, ("disk/vm1-os", -1)))
    figures.update(write_mib=args.write_mib, capture_written_seconds=capture_written_s,
                   stored_added_written=stored_bytes(engine) - before, overlay_allocated_written=allocated(overlay))
    database.dispose()
    return figures


def render(f: dict, load_start: float, load_end: float) -> str:
    mib = lambda n: f"{n / MIB:,.1f} MiB"
    rows = [
        ("image", f"{f['virtual_bytes'] / MIB / 1024:g} GiB virtual, {mib(f['data_bytes'])} data", ""),
        ("ingest (set-up)", f"{f['ingest_seconds']:.1f} s", f"stored {mib(f['stored_bytes_image'])}"),
        ("first VM disk: base + overlay", f"{f['open_seconds']:.2f} s", f"baseline cp --sparse: {f['cp_sparse_seconds']:.2f} s"),
        ("  base allocated on host", mib(f["base_allocated"]), f"baseline cp --sparse: {mib(f['cp_allocated'])}"),
        ("  overlay allocated", mib(f["overlay_allocated"]), ""),
        ("second VM disk (shared base)", f"{f['second_open_seconds']:.3f} s",
         f"host total {mib(f['usage_two_vms']['base_bytes'] + f['usage_two_vms']['overlay_bytes'])}"),
        ("capture, nothing written", f"{f['capture_unchanged_seconds']:.2f} s",
         f"baseline qemu-img convert: {f['convert_seconds']:.2f} s"),
        ("  stored bytes added", mib(f["stored_added_unchanged"]), "goal: < 50 MiB"),
        (f"capture after {f['write_mib']} MiB written", f"{f['capture_written_seconds']:.2f} s", ""),
        ("  stored bytes added", mib(f["stored_added_written"]), f"overlay {mib(f['overlay_allocated_written'])}"),
    ]
    width = max(len(r[0]) for r in rows)
    lines = [f"{name:<{width}}  {value:>22}  {note}" for name, value, note in rows]
    lines.append(f"load average (1 min) at start {load_start:.2f}, at end {load_end:.2f}; {os.cpu_count()} CPUs")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-gib", type=float, default=30)
    parser.add_argument("--data-gib", type=float, default=1)
    parser.add_argument("--write-mib", type=int, default=64)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    for tool in ("qemu-img", "qemu-io"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing (Debian: qemu-utils)")
    load_start = os.getloadavg()[0]
    work = Path(tempfile.mkdtemp(prefix="galley-vm-disks-"))
    try:
        figures = run(args, work)
    finally:
        if args.keep:
            progress(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    load_end = os.getloadavg()[0]
    if args.json:
        print(json.dumps({**figures, "load_start": load_start, "load_end": load_end}, indent=2))
    else:
        print(render(figures, load_start, load_end))


if __name__ == "__main__":
    main()
