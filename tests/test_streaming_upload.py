"""Uploads of raw disks and fixed VHDs are stored as they arrive, with no spool file
(galley/content/streaming.py, content/writer.py): byte-identical round trips, bodies that end
early, VHDs whose footer was cut off, and a server killed in the middle of an upload."""

from __future__ import annotations

import os
import random
import shutil
import socket
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest

from galley.api.routes import content as content_routes
from galley.config import load_settings
from galley.content.engine import ContentEngine
from galley.content.locations import Locations
from galley.domain.service import ResourceService
from galley.store.content_repository import ContentRepository
from galley.store.database import make_engine
from galley.store.sql_store import SqlStore

from . import admin_http as httpx
from .data_helpers import (MiB, chunk_digests, chunk_files, compute_client, convert, create_upload_disk,
                           download_sha, gallery_chain, random_raw, sha256_file, store_dir, upload, upload_ok)
from .sdk_helpers import RG, assert_arm_error
from .servers import ProcessServer

pytestmark = pytest.mark.skipif(shutil.which("qemu-img") is None,
                                reason="qemu-img not installed (apt-get install -y qemu-utils)")

DISK_API = "2025-01-02"
# Not a whole number of 1 MiB chunks; data, a hole of whole chunks and a piece crossing chunk borders.
ODD_SIZE = 21 * MiB + 3 * 512
PIECES = [(0, 3 * MiB), (5 * MiB + 4096, 2 * MiB), (12 * MiB, 512 * 1024), (20 * MiB, MiB + 3 * 512)]


@pytest.fixture
def images(tmp_path) -> Path:
    folder = tmp_path / "images"
    folder.mkdir()
    return folder


@pytest.fixture
def no_spooling(monkeypatch):
    """Any spool file during these uploads is a failure."""
    def refuse(*args, **kwargs):
        raise AssertionError("a raw or fixed VHD upload was spooled to a file")
    monkeypatch.setattr(content_routes, "_spool", refuse)


def _home(server) -> Path:
    return server.app.state.settings.home


def _leftovers(home: Path) -> list[str]:
    """Temporary files of uploads and half-written chunk objects anywhere in the home."""
    found = []
    for dirpath, _dirs, names in os.walk(home):
        found += [os.path.join(dirpath, n) for n in names if n.startswith((".incoming-", "upload-"))]
    return found


def _pieces(path: Path, seed: int):
    """The file in pieces of random sizes (1 byte to 300 KiB), sent chunked: no Content-Length."""
    rng = random.Random(seed)
    with open(path, "rb") as handle:
        while piece := handle.read(rng.choice([1, 511, 513, 4096, 65536, 300 * 1024])):
            yield piece


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["raw", "vhd-fixed"])
def test_raw_and_fixed_vhd_round_trip_byte_identical(sqlite_server, images, no_spooling, fmt):
    url = sqlite_server.url
    compute = compute_client(url)
    gallery_chain(compute, url)
    raw = random_raw(images / "in.raw", ODD_SIZE, seed=41, pieces=PIECES)
    body = raw if fmt == "raw" else convert(raw, images / "in.vhd", "vpc", "subformat=fixed,force_size=on")
    disk = create_upload_disk(compute, "d1", ODD_SIZE)

    uploaded = upload_ok(url, disk.id, body)  # format detected
    assert uploaded["properties"]["diskSizeBytes"] == ODD_SIZE
    assert download_sha(url, disk.id, images / "out.raw") == sha256_file(raw)
    # Only chunks with data are stored; all-zero ones (the hole) are not.
    assert set(chunk_files(store_dir(_home(sqlite_server), "eastus"))) == set(chunk_digests(raw))

    # The same body in pieces of odd sizes, chunked (no Content-Length), format declared.
    again = httpx.put(f"{url}{disk.id}/upload", params={"api-version": DISK_API, "format": fmt},
                      content=_pieces(body, seed=42), timeout=120)
    assert again.status_code == 200, again.text
    assert again.json()["properties"]["diskSizeBytes"] == ODD_SIZE
    assert download_sha(url, disk.id, images / "out.raw") == sha256_file(raw)
    assert _leftovers(_home(sqlite_server)) == []


def test_a_streamed_upload_keeps_its_lease_and_its_content_alive(sqlite_server, images, no_spooling, monkeypatch):
    """While data keeps arriving, the upload's lease is renewed and its half-written content is
    marked fresh, so neither a second upload nor garbage collection takes it for abandoned."""
    url = sqlite_server.url
    compute = compute_client(url)
    gallery_chain(compute, url)
    renewed, kept = [], []
    monkeypatch.setattr(content_routes, "RENEW_EVERY_BYTES", 4 * MiB)
    monkeypatch.setattr(ResourceService, "renew_upload",
                        lambda self, *args: renewed.append(args))
    monkeypatch.setattr(ContentRepository, "keep_writing", lambda self, content_id: kept.append(content_id))
    raw = random_raw(images / "in.raw", 24 * MiB, seed=45)
    disk = create_upload_disk(compute, "d1", 24 * MiB)
    upload_ok(url, disk.id, raw)
    assert len(renewed) >= 4 and {args[0] for args in renewed} == {disk.id}
    assert len(kept) == len(renewed) and len(set(kept)) == 1  # one content, kept alive each time
    assert download_sha(url, disk.id, images / "out.raw") == sha256_file(raw)


def _raw_put(url: str, path: str, length: int, body: bytes, fmt: str = "raw") -> None:
    """A PUT that declares `length` bytes, sends `body` (fewer), then goes away."""
    host, port = url.removeprefix("http://").split(":")
    token = httpx.token_for(url)
    head = (f"PUT {path}/upload?api-version={DISK_API}&format={fmt} HTTP/1.1\r\nHost: {host}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Length: {length}\r\n\r\n").encode()
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(head + body)
        time.sleep(0.5)  # the server stores what came; then the client is gone
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")


def _wait_unattached(compute, name: str, timeout: float = 30.0) -> None:
    deadline = time.time() + timeout
    while compute.disks.get(RG, name).disk_state != "Unattached":
        assert time.time() < deadline, "the disk stayed in ActiveUpload after the client left"
        time.sleep(0.1)


@pytest.mark.slow
def test_a_body_that_ends_early_leaves_the_disk_unchanged(sqlite_server, images, no_spooling):
    url = sqlite_server.url
    home = _home(sqlite_server)
    compute = compute_client(url)
    gallery_chain(compute, url)
    old = random_raw(images / "old.raw", 24 * MiB, seed=51)
    disk = create_upload_disk(compute, "d1", 64 * MiB)
    upload_ok(url, disk.id, old)

    new = random_raw(images / "new.raw", 64 * MiB, seed=52).read_bytes()
    _raw_put(url, disk.id, len(new), new[:40 * MiB + 100])  # more than a batch of chunks was stored
    _wait_unattached(compute, "d1")

    assert compute.disks.get(RG, "d1").disk_size_bytes == 24 * MiB
    assert download_sha(url, disk.id, images / "out.raw") == sha256_file(old)
    assert _leftovers(home) == []
    # What the broken upload stored is gone already (the abort deletes its unreferenced chunks).
    assert set(chunk_files(store_dir(home, "eastus"))) == set(chunk_digests(old))
    # And the disk takes a whole upload afterwards.
    (images / "new.raw").write_bytes(new)
    upload_ok(url, disk.id, images / "new.raw")
    assert download_sha(url, disk.id, images / "out.raw") == sha256_file(images / "new.raw")


@pytest.mark.slow
def test_a_fixed_vhd_with_a_cut_off_footer_is_refused(sqlite_server, images, no_spooling):
    url = sqlite_server.url
    home = _home(sqlite_server)
    compute = compute_client(url)
    gallery_chain(compute, url)
    old = random_raw(images / "old.raw", 24 * MiB, seed=61)
    disk = create_upload_disk(compute, "d1", 32 * MiB)
    upload_ok(url, disk.id, old)

    vhd = convert(random_raw(images / "new.raw", 24 * MiB, seed=62), images / "new.vhd", "vpc",
                  "subformat=fixed,force_size=on")
    cut = images / "cut.vhd"
    cut.write_bytes(vhd.read_bytes()[:-300])  # 212 of the footer's 512 bytes are left
    error = assert_arm_error(upload(url, disk.id, cut), 400, "InvalidDiskImage")  # detected: raw
    assert "cut off" in error["message"], error
    error = assert_arm_error(upload(url, disk.id, cut, fmt="vhd"), 400, "InvalidDiskImage")
    assert "footer cookie" in error["message"], error
    # A whole footer that does not match the data before it.
    longer = images / "longer.vhd"
    longer.write_bytes(vhd.read_bytes()[:-512] + bytes(512) + vhd.read_bytes()[-512:])
    error = assert_arm_error(upload(url, disk.id, longer), 400, "InvalidDiskImage")
    assert "size mismatch" in error["message"], error

    assert compute.disks.get(RG, "d1").disk_size_bytes == 24 * MiB
    assert download_sha(url, disk.id, images / "out.raw") == sha256_file(old)
    assert set(chunk_files(store_dir(home, "eastus"))) == set(chunk_digests(old))
    assert _leftovers(home) == []


def _content_engine(home: Path) -> tuple[ContentEngine, object]:
    settings = replace(load_settings(), home=home, database_url=f"sqlite:///{home / 'galley.db'}")
    database = make_engine(settings.database_url)
    return ContentEngine(ContentRepository(SqlStore(database)), Locations(settings)), database


@pytest.mark.slow
def test_kill_9_in_the_middle_of_an_upload_keeps_the_old_content(tmp_path, images):
    home = tmp_path / "home"
    home.mkdir()
    server = ProcessServer(home).start()
    try:
        compute = compute_client(server.url)
        gallery_chain(compute, server.url)
        old = random_raw(images / "old.raw", 24 * MiB, seed=71)
        disk = create_upload_disk(compute, "d1", 64 * MiB)
        upload_ok(server.url, disk.id, old)
        new = random_raw(images / "new.raw", 64 * MiB, seed=72).read_bytes()

        sent = threading.Event()

        def body():
            yield new[:40 * MiB]
            sent.set()
            time.sleep(60)  # the server is killed meanwhile
            yield new[40 * MiB:]

        def send():
            try:
                httpx.put(f"{server.url}{disk.id}/upload", params={"api-version": DISK_API, "format": "raw"},
                          headers={"Content-Length": str(len(new))}, content=body(), timeout=90)
            except httpx.TransportError:
                pass

        sender = threading.Thread(target=send, daemon=True)
        sender.start()
        assert sent.wait(60)
        deadline = time.time() + 30
        while len(chunk_files(store_dir(home, "eastus"))) < 24 + 16:
            assert time.time() < deadline, "the streamed chunks never reached the store"
            time.sleep(0.1)
        server.kill()
    finally:
        server.stop()

    again = ProcessServer(home).start()
    try:
        compute = compute_client(again.url)
        restarted = compute.disks.get(RG, "d1")
        assert restarted.disk_state == "Unattached"
        assert restarted.disk_size_bytes == 24 * MiB
        assert download_sha(again.url, disk.id, images / "out.raw") == sha256_file(old)
    finally:
        again.stop()
    # The half-written content is garbage once it is stale: collected, only the old chunks stay.
    engine, database = _content_engine(home)
    try:
        assert engine.collect_garbage(stale_after=3600)["contents_dropped"] == 0  # not stale yet
        assert engine.collect_garbage(stale_after=0)["contents_dropped"] == 1
    finally:
        database.dispose()
    assert set(chunk_files(store_dir(home, "eastus"))) == set(chunk_digests(images / "old.raw"))
