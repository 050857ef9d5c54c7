"""`galley disk upload` / `galley snapshot upload` the Azure way (galley/cli/page_upload.py):
createOption Upload, a Write SAS, parallel Put Page requests of the image's data only, the VHD
footer, revoke; a re-run resumes an interrupted upload, sending only the missing pages.

The server is an in-process ThreadServer, so the pages it receives are counted by wrapping
PageStore.write_pages: what was sent is observed where it arrives, not inferred from timings.
"""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import subprocess
import threading
from pathlib import Path

import httpx
import pytest

from galley.blobservice.page_store import PageStore
from galley.cli import page_upload
from galley.cli.page_upload import WrittenPages, data_pieces
from galley.content.vhd import VhdFooter


pytestmark = pytest.mark.skipif(shutil.which("qemu-img") is None, reason="needs qemu-img")

MiB = 1024 * 1024
RG = "uploadRG"
SIZE = 48 * MiB
# (offset, length) of random data; everything else is a hole, but for ZEROS, written as zeros.
DATA = ((0, 3 * MiB), (9 * MiB + 4096, 64 * 1024), (20 * MiB, 6 * MiB), (SIZE - 8192, 8192))
ZEROS = (32 * MiB, 4 * MiB)  # explicit zero bytes (not a hole): a 4 MiB cell that must not be sent


class Received(list):
    """(offset, length) of every Put Page the server stored, in arrival order; `footers` holds
    the bodies of the 512-byte ones."""

    def __init__(self) -> None:
        super().__init__()
        self.footers: list[bytes] = []


@pytest.fixture
def received(monkeypatch) -> Received:
    writes, lock = Received(), threading.Lock()
    original = PageStore.write_pages

    def counted(self, offset, data):
        with lock:
            writes.append((offset, len(data)))
            if len(data) == 512:
                writes.footers.append(bytes(data))
        return original(self, offset, data)

    monkeypatch.setattr(PageStore, "write_pages", counted)
    return writes


@pytest.fixture
def files(tmp_path) -> Path:
    folder = tmp_path / "files"
    folder.mkdir()
    return folder


def make_raw(path: Path, seed: int = 0, size: int = SIZE, data=DATA, zeros=ZEROS) -> Path:
    rng = random.Random(seed)
    with open(path, "wb") as f:
        f.truncate(size)
        for offset, length in data:
            f.seek(offset)
            f.write(rng.randbytes(length))
        if zeros:
            f.seek(zeros[0])
            f.write(bytes(zeros[1]))
    return path


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for piece in iter(lambda: f.read(MiB), b""):
            digest.update(piece)
    return digest.hexdigest()


def convert(raw: Path, out: Path, fmt: str, *options: str) -> Path:
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", fmt, *options, str(raw), str(out)], check=True,
                   capture_output=True)
    return out


def download(galley, files: Path, name: str, kind: str = "disk") -> Path:
    out = files / f"{name}.out.raw"
    galley(kind, "download", "-g", RG, "-n", name, "--file", out)
    return out


def covered(writes, start: int, end: int) -> bool:
    """Some write touched [start, end)."""
    return any(offset < end and start < offset + length for offset, length in writes)


# -- the pieces an image is cut into -----------------------------------------------------------


def test_pieces_stay_in_4_mib_cells_and_cover_only_data():
    extents = [(0, 100, True), (100, 5 * MiB - 100, False), (5 * MiB, 4 * MiB, True), (9 * MiB, 3 * MiB, False),
               (12 * MiB, 1024, True), (12 * MiB + 1024, 4 * MiB - 1024, False)]
    pieces = list(data_pieces(extents, 16 * MiB))
    assert pieces == [(0, 512), (5 * MiB, 8 * MiB), (8 * MiB, 9 * MiB), (12 * MiB, 12 * MiB + 1024)]
    assert list(data_pieces([(0, 16 * MiB, False)], 16 * MiB)) == []


def test_gaps_are_what_the_written_pages_leave_out():
    written = WrittenPages([(0, 1024), (4096, 8192), (10000 // 512 * 512, 12288)])
    assert written.gaps(0, 1024) == []
    assert written.gaps(512, 6000) == [(1024, 4096)]
    assert written.gaps(0, 16384) == [(1024, 4096), (8192, 9728), (12288, 16384)]
    assert WrittenPages([]).gaps(5, 9) == [(5, 9)]
    assert written.total() == 1024 + 4096 + 12288 - 9728


# -- uploads through the CLI -------------------------------------------------------------------


def test_sparse_raw_sends_only_its_data_and_comes_back_identical(galley, files, received):
    galley("group", "create", "-n", RG, "-l", "eastus")
    raw = make_raw(files / "sparse.raw", seed=1)
    disk = galley("disk", "upload", "-g", RG, "-n", "sparse", "--file", raw, "--os-type", "Linux").json()
    props = disk["properties"]
    assert props["creationData"] == {"createOption": "Upload", "uploadSizeBytes": SIZE + 512}
    assert props["diskState"] == "Unattached" and props["diskSizeBytes"] == SIZE and props["osType"] == "Linux"
    assert sha256(download(galley, files, "sparse")) == sha256(raw)

    # What arrived: pieces within 4 MiB cells, each overlapping data, the footer last; no write in
    # the explicit zeros nor in the holes.
    assert received[-1] == (SIZE, 512)
    data_writes = received[:-1]
    assert all(offset // (4 * MiB) == (offset + length - 1) // (4 * MiB) for offset, length in data_writes)
    for offset, length in data_writes:
        assert any(offset < a + n and a < offset + length for a, n in DATA), (offset, length)
    assert not covered(data_writes, ZEROS[0], ZEROS[0] + ZEROS[1])
    assert not covered(data_writes, 10 * MiB, 20 * MiB) and not covered(data_writes, 28 * MiB, SIZE - 4 * MiB)
    assert sum(length for _, length in data_writes) < 14 * MiB  # 9 MiB of data, within its cells


@pytest.mark.parametrize("fmt,options", [("vpc", ("-o", "subformat=fixed,force_size=on")),
                                         ("vpc", ("-o", "subformat=dynamic,force_size=on")),
                                         ("qcow2", ())], ids=["vhd-fixed", "vhd-dynamic", "qcow2"])
def test_vhd_and_qcow2_images_come_back_identical(galley, files, received, fmt, options):
    galley("group", "create", "-n", RG, "-l", "eastus")
    raw = make_raw(files / "src.raw", seed=2)
    image = convert(raw, files / f"src.{fmt}", fmt, *options)
    disk = galley("disk", "upload", "-g", RG, "-n", "img", "--file", image).json()
    assert disk["properties"]["creationData"]["uploadSizeBytes"] == SIZE + 512
    assert disk["properties"]["diskSizeBytes"] == SIZE
    assert sha256(download(galley, files, "img")) == sha256(raw)
    assert received and received[-1] == (SIZE, 512)
    assert not covered(received[:-1], ZEROS[0], ZEROS[0] + ZEROS[1])
    footer = VhdFooter.parse(received.footers[-1])
    assert footer.disk_type == 2 and footer.current_size == SIZE  # a fixed-disk footer, whatever the source
    if fmt == "vpc" and "subformat=fixed" in options[-1]:  # a fixed VHD's own footer, as in the file
        assert received.footers[-1] == image.read_bytes()[-512:]


def test_snapshot_upload_takes_the_same_path(galley, files, received):
    galley("group", "create", "-n", RG, "-l", "eastus")
    raw = make_raw(files / "snap.raw", seed=3)
    snap = galley("snapshot", "upload", "-g", RG, "-n", "snap", "--file", raw).json()
    assert snap["properties"]["creationData"]["createOption"] == "Upload"
    assert received and received[-1] == (SIZE, 512)
    assert sha256(download(galley, files, "snap", kind="snapshot")) == sha256(raw)


def test_an_image_under_20_mib_goes_through_the_put_route_and_keeps_its_size(galley, files, received):
    galley("group", "create", "-n", RG, "-l", "eastus")
    small = make_raw(files / "small.raw", seed=4, size=2 * MiB, data=((0, MiB),), zeros=None)
    disk = galley("disk", "upload", "-g", RG, "-n", "small", "--file", small).json()
    assert disk["properties"]["diskSizeBytes"] == 2 * MiB
    assert received == []  # no SAS session: Galley's own PUT …/upload
    assert sha256(download(galley, files, "small")) == sha256(small)


def test_a_bad_image_is_refused_before_anything_is_created(galley, files):
    galley("group", "create", "-n", RG, "-l", "eastus")
    odd = files / "odd.raw"
    odd.write_bytes(os.urandom(21 * MiB + 100))
    failed = galley("disk", "upload", "-g", RG, "-n", "odd", "--file", odd, check=False)
    assert failed.code == 1 and "InvalidDiskImage" in failed.stderr and "512-byte sectors" in failed.stderr
    assert galley("disk", "show", "-g", RG, "-n", "odd", check=False).code == 1


# -- resuming ------------------------------------------------------------------------------------


def test_an_interrupted_upload_resumes_with_only_the_missing_pages(galley, files, received, monkeypatch):
    galley("group", "create", "-n", RG, "-l", "eastus")
    raw = make_raw(files / "resume.raw", seed=5, data=((0, SIZE - 4 * MiB),), zeros=None)
    real_put = page_upload.SasPageBlob.put_page
    calls, lock = [], threading.Lock()

    def dies_after_four(self, offset, data):
        with lock:
            calls.append(offset)
            if len(calls) > 4:
                raise KeyboardInterrupt  # as a user's Ctrl-C (or a killed process) stops it
        return real_put(self, offset, data)

    monkeypatch.setattr(page_upload.SasPageBlob, "put_page", dies_after_four)
    stopped = galley("disk", "upload", "-g", RG, "-n", "resumed", "--file", raw, check=False)
    assert stopped.code == 130 and "run the same command again" in stopped.stderr
    first = list(received)
    assert len(first) == 4 and all(length == 4 * MiB for _, length in first)
    shown = galley("disk", "show", "-g", RG, "-n", "resumed").json()
    assert shown["properties"]["diskState"] == "ActiveUpload"

    monkeypatch.setattr(page_upload.SasPageBlob, "put_page", real_put)
    received.clear()
    resumed = galley("disk", "upload", "-g", RG, "-n", "resumed", "--file", raw, check=False)
    assert resumed.code == 0, resumed.stderr
    assert "resuming the upload" in resumed.stderr
    again = {offset for offset, _ in received}
    assert not again & {offset for offset, _ in first}  # nothing sent twice
    cells = {offset for offset in range(0, SIZE - 4 * MiB, 4 * MiB)}
    assert again | {offset for offset, _ in first} == cells | {SIZE}  # every data cell, and the footer
    assert resumed.json()["properties"]["diskState"] == "Unattached"
    assert sha256(download(galley, files, "resumed")) == sha256(raw)


@pytest.mark.slow
def test_pages_written_before_are_trusted_not_rewritten(galley, files, received):
    """A page written through the SAS before `disk upload` runs stays as written (the resume
    trusts written ranges); every other page comes from the file."""
    galley("group", "create", "-n", RG, "-l", "eastus")
    raw = make_raw(files / "trust.raw", seed=6)
    galley("disk", "create", "-g", RG, "-n", "trusted", "--upload-type", "Upload",
           "--upload-size-bytes", SIZE + 512)
    sas = galley("disk", "grant-access", "-g", RG, "-n", "trusted", "--access-level", "Write").json()["accessSAS"]
    marker = b"\xab" * (4 * MiB)
    put = httpx.put(sas + "&comp=page", content=marker, headers={
        "x-ms-page-write": "update", "x-ms-range": f"bytes=0-{4 * MiB - 1}", "x-ms-version": "2021-08-06"})
    assert put.status_code == 201, put.text
    received.clear()

    resumed = galley("disk", "upload", "-g", RG, "-n", "trusted", "--file", raw, check=False)
    assert resumed.code == 0 and "resuming the upload into disk 'trusted': 4.0 MiB written" in resumed.stderr
    assert not covered(received, 0, 4 * MiB)  # the cell written before was not sent again
    assert received[-1] == (SIZE, 512)
    got = download(galley, files, "trusted").read_bytes()
    expected = raw.read_bytes()
    assert got[:4 * MiB] == marker and got[4 * MiB:] == expected[4 * MiB:]


def test_a_4_gib_sparse_image_sends_its_8_mib_of_data(galley, files, received):
    galley("group", "create", "-n", RG, "-l", "eastus")
    size = 4 * 1024 * MiB
    raw = make_raw(files / "big.raw", seed=7, size=size, data=((0, 4 * MiB), (size // 2, 4 * MiB)), zeros=None)
    disk = galley("disk", "upload", "-g", RG, "-n", "big", "--file", raw).json()
    assert disk["properties"]["diskSizeBytes"] == size
    assert sum(length for _, length in received) == 8 * MiB + 512
