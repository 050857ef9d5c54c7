"""Disk and snapshot SAS access as Azure has it: beginGetAccess / endGetAccess through the SDK,
page writes and reads through azure-storage-blob against Galley's Blob endpoint, refusals,
state transitions, crash recovery of a Write session, overlapping writers."""

from __future__ import annotations

import os
import subprocess
import threading
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute import models as m
from azure.storage.blob import BlobClient

from . import admin_http as httpx
from .conftest import sdk_client
from .sdk_helpers import DISK_API, compute_url, make_group, quick_polls, resource_id
from .servers import ProcessServer

MIB = 1024 * 1024
SIZE = 20 * MIB  # the disk; the blob is one VHD footer longer


def upload_disk(compute, name: str, size: int = SIZE, kind: str = "disks"):
    body = m.Disk(location="eastus", creation_data=m.CreationData(create_option="Upload", upload_size_bytes=size + 512))
    if kind == "disks":
        return compute.disks.begin_create_or_update("rg", name, body).result()
    return compute.snapshots.begin_create_or_update("rg", name, m.Snapshot(
        location="eastus", creation_data=body.creation_data)).result()


def grant(compute, name: str, access: str = "Write", seconds: int = 3600, kind: str = "disks") -> str:
    operations = compute.disks if kind == "disks" else compute.snapshots
    return operations.begin_grant_access("rg", name, m.GrantAccessData(
        access=access, duration_in_seconds=seconds)).result().access_sas


def revoke(compute, name: str, kind: str = "disks") -> None:
    operations = compute.disks if kind == "disks" else compute.snapshots
    operations.begin_revoke_access("rg", name).result()


def blob(sas: str) -> BlobClient:
    return BlobClient.from_blob_url(sas, max_page_size=4 * MIB)


def footer(size: int) -> bytes:
    from galley.content.vhd import VhdFooter
    return VhdFooter.new(2, size).pack()


def download_raw(url: str, kind: str, name: str) -> bytes:
    response = httpx.get(compute_url(url, f"{kind}/{name}/download"), params={"api-version": DISK_API,
                                                                               "format": "raw"})
    assert response.status_code == 200, response.text
    return response.content


@pytest.fixture
def sdk(sqlite_server):
    make_group(sqlite_server.url)
    return quick_polls(sdk_client(sqlite_server.url))


def test_upload_through_write_sas_becomes_the_disk(sdk, sqlite_server):
    disk = upload_disk(sdk, "up")
    assert disk.disk_state == "ReadyToUpload"
    assert disk.creation_data.upload_size_bytes == SIZE + 512
    sas = grant(sdk, "up")
    assert "/md-" in sas and "sig=" in sas and "sp=rw" in sas
    assert sdk.disks.get("rg", "up").disk_state == "ActiveUpload"
    data = bytearray(SIZE)
    data[0:4096] = os.urandom(4096)
    data[5 * MIB:7 * MIB] = os.urandom(2 * MIB)
    data[SIZE - 512:] = b"\x07" * 512
    client = blob(sas)
    client.upload_blob(bytes(data) + footer(SIZE), blob_type="PageBlob", overwrite=True, max_concurrency=8)
    props = client.get_blob_properties()
    assert props.blob_type == "PageBlob" and props.size == SIZE + 512
    assert client.download_blob(max_concurrency=8).readall()[:SIZE] == bytes(data)
    revoke(sdk, "up")
    after = sdk.disks.get("rg", "up")
    assert after.disk_state == "Unattached" and after.disk_size_bytes == SIZE
    assert download_raw(sqlite_server.url, "disks", "up") == bytes(data)
    # A Read SAS gives the disk back as a fixed VHD blob.
    read_sas = grant(sdk, "up", "Read")
    assert sdk.disks.get("rg", "up").disk_state == "ActiveSAS"
    got = blob(read_sas).download_blob(max_concurrency=8).readall()
    assert got[:SIZE] == bytes(data) and got[SIZE:SIZE + 8] == b"conectix"
    revoke(sdk, "up")
    assert sdk.disks.get("rg", "up").disk_state == "Unattached"


def _tampered(sas: str, **changes) -> str:
    parts = urlsplit(sas)
    query = dict(parse_qsl(parts.query))
    query.update(changes)
    return urlunsplit(parts._replace(query=urlencode(query)))


def _code(error: HttpResponseError) -> str:
    return error.response.headers.get("x-ms-error-code")


def test_refused_sas_changes_nothing(sdk, sqlite_server):
    upload_disk(sdk, "a")
    upload_disk(sdk, "b")
    sas_a, sas_b = grant(sdk, "a"), grant(sdk, "b")
    page = os.urandom(512)
    blob(sas_a).upload_page(page, offset=0, length=512)
    other_disk = urlsplit(sas_a)._replace(query=urlsplit(sas_b).query).geturl()  # b's SAS on a's blob
    for bad in (_tampered(sas_a, sig="A" * 43 + "="), _tampered(sas_a, se="2030-01-01T00:00:00Z"),
                _tampered(sas_a, sp="rwd"), other_disk):
        with pytest.raises(HttpResponseError) as refused:
            blob(bad).upload_page(b"\x01" * 512, offset=0, length=512)
        assert refused.value.status_code == 403 and _code(refused.value) == "AuthenticationFailed"
        assert b"<Code>AuthenticationFailed</Code>" in refused.value.response.body()
    assert blob(sas_a).download_blob(offset=0, length=512).readall() == page
    # Misaligned and out-of-range page writes get Storage's codes.
    response = httpx.put(sas_a + "&comp=page", content=b"x" * 100,
                         headers={"x-ms-page-write": "update", "x-ms-range": "bytes=0-99", "x-ms-version": "2025-11-05"})
    assert response.status_code == 416 and response.headers["x-ms-error-code"] == "InvalidPageRange"
    assert response.headers["x-ms-version"] and response.headers["x-ms-request-id"]
    with pytest.raises(HttpResponseError) as beyond:
        blob(sas_a).upload_page(b"\x01" * 1024, offset=SIZE, length=1024)
    assert _code(beyond.value) == "InvalidPageRange"
    bad_md5 = httpx.put(sas_a + "&comp=page", content=b"\x02" * 512, headers={
        "x-ms-page-write": "update", "x-ms-range": "bytes=0-511", "Content-MD5": "AAAAAAAAAAAAAAAAAAAAAA=="})
    assert bad_md5.status_code == 400 and bad_md5.headers["x-ms-error-code"] == "Md5Mismatch"
    assert blob(sas_a).download_blob(offset=0, length=512).readall() == page
    # Revoked: the SAS is dead, the pages written are the disk.
    revoke(sdk, "a")
    with pytest.raises(HttpResponseError) as revoked:
        blob(sas_a).upload_page(b"\x01" * 512, offset=0, length=512)
    assert revoked.value.status_code == 403 and _code(revoked.value) == "AuthenticationFailed"
    assert download_raw(sqlite_server.url, "disks", "a")[:512] == page
    # A Read SAS cannot write.
    read_sas = grant(sdk, "a", "Read")
    with pytest.raises(HttpResponseError) as read_only:
        blob(read_sas).upload_page(b"\x01" * 512, offset=0, length=512)
    assert read_only.value.status_code == 403 and _code(read_only.value) == "AuthorizationPermissionMismatch"
    revoke(sdk, "a")
    assert download_raw(sqlite_server.url, "disks", "a")[:512] == page


def test_active_sas_blocks_use_as_source_and_delete(sdk):
    upload_disk(sdk, "src")
    grant(sdk, "src")
    snapshot = m.Snapshot(location="eastus", creation_data=m.CreationData(
        create_option="Copy", source_resource_id=resource_id("disks/src")))
    with pytest.raises(HttpResponseError) as refused:
        sdk.snapshots.begin_create_or_update("rg", "snap", snapshot).result()
    assert refused.value.status_code == 409 and refused.value.error.code == "OperationNotAllowed"
    with pytest.raises(HttpResponseError) as delete:
        sdk.disks.begin_delete("rg", "src").result()
    assert delete.value.status_code == 409
    # Write access needs ReadyToUpload; Read access needs content.
    with pytest.raises(HttpResponseError) as twice:
        grant(sdk, "src", "Read")
    assert twice.value.status_code == 409
    revoke(sdk, "src")
    assert sdk.disks.get("rg", "src").disk_state == "Unattached"
    with pytest.raises(HttpResponseError) as write_again:
        grant(sdk, "src", "Write")
    assert write_again.value.status_code == 409
    sdk.snapshots.begin_create_or_update("rg", "snap", snapshot).result()


def test_expired_upload_session_leaves_nothing(sdk, sqlite_server):
    upload_disk(sdk, "late")
    sas = grant(sdk, "late")
    blob(sas).upload_page(os.urandom(MIB), offset=0, length=MIB)
    grant(sdk, "late", seconds=1)  # the same session, now running out in a second
    import time
    deadline = time.monotonic() + 30
    while sdk.disks.get("rg", "late").disk_state != "ReadyToUpload":
        assert time.monotonic() < deadline, "the upload session did not expire 1 s after its last grant"
        time.sleep(0.1)
    with pytest.raises(HttpResponseError) as expired:  # even with the first SAS, valid for an hour
        blob(sas).upload_page(b"\x01" * 512, offset=0, length=512)
    assert expired.value.status_code == 403 and _code(expired.value) == "AuthenticationFailed"
    disk = sdk.disks.get("rg", "late")
    assert disk.disk_state == "ReadyToUpload"
    assert not any(download_raw(sqlite_server.url, "disks", "late"))


def test_snapshot_upload_and_page_ranges(sdk, sqlite_server):
    upload_disk(sdk, "snapup", kind="snapshots")
    sas = grant(sdk, "snapup", kind="snapshots")
    client = blob(sas)
    client.upload_page(b"\x05" * 1024, offset=MIB + 512, length=1024)
    client.upload_page(b"\x06" * MIB, offset=3 * MIB, length=MIB)
    client.upload_page(bytes(512), offset=3 * MIB, length=512)  # zeros are not data
    ranges, _ = client.get_page_ranges()
    assert [(r["start"], r["end"]) for r in ranges] == [(MIB + 512, MIB + 1535), (3 * MIB + 512, 4 * MIB - 1)]
    client.clear_page(offset=MIB + 512, length=512)
    revoke(sdk, "snapup", kind="snapshots")
    assert sdk.snapshots.get("rg", "snapup").disk_state == "Unattached"
    raw = download_raw(sqlite_server.url, "snapshots", "snapup")
    assert len(raw) == SIZE + 512  # no VHD footer was written: the whole blob is the disk
    expected = bytearray(SIZE + 512)
    expected[MIB + 1024:MIB + 1536] = b"\x05" * 512
    expected[3 * MIB + 512:4 * MIB] = b"\x06" * (MIB - 512)
    assert raw == bytes(expected)


def test_out_of_bound_ranges_are_storage_errors_and_change_nothing(sdk, sqlite_server):
    """Range numbers too long for int() or in non-ASCII digits: Storage's 400, never a 500 (the
    ARM download routes read ranges through the same pattern)."""
    upload_disk(sdk, "ranged")
    sas = grant(sdk, "ranged")
    blob(sas).upload_page(b"\x07" * 512, offset=0, length=512)
    endless = "9" * 5000
    for name, value in (("x-ms-range", f"bytes={endless}-"), ("x-ms-range", f"bytes=0-{endless}"),
                        ("Range", f"bytes={endless}-{endless}"), ("x-ms-range", "bytes=-512")):
        read = httpx.get(sas, headers={name: value})
        assert read.status_code == 400 and read.headers["x-ms-error-code"] == "InvalidHeaderValue", read.text
        write = httpx.put(sas + "&comp=page", content=bytes(512),
                          headers={name: value, "x-ms-page-write": "update", "x-ms-version": "2025-11-05"})
        assert write.status_code == 400 and write.headers["x-ms-error-code"] == "InvalidHeaderValue", write.text
    assert [(r["start"], r["end"]) for r in blob(sas).get_page_ranges()[0]] == [(0, 511)]


def test_overlapping_writers_never_mix_a_page(sdk, sqlite_server):
    upload_disk(sdk, "race")
    client = blob(grant(sdk, "race"))
    # Writers of different lengths over the same pages, each with its own byte value.
    jobs = [(bytes([v]) * n, off) for v, (n, off) in enumerate(
        [(4 * MIB, 0), (2 * MIB + 512, 512), (MIB, MIB), (3 * MIB, 1024 * 3), (512 * 7, 2 * MIB - 512)] * 2, 1)]
    threads = [threading.Thread(target=client.upload_page, args=(data, off, len(data))) for data, off in jobs]
    [t.start() for t in threads]
    [t.join() for t in threads]
    revoke(sdk, "race")
    raw = download_raw(sqlite_server.url, "disks", "race")
    for page in range(0, 4 * MIB + 3 * 1024, 512):
        chunk = raw[page:page + 512]
        assert chunk == chunk[:1] * 512, f"page at {page} mixes writes"
        writers = {v for v, (data, off) in enumerate(jobs, 1) if off <= page < off + len(data)}
        assert chunk[0] in (writers or {0})


@pytest.mark.slow
def test_kill_9_mid_session_keeps_acknowledged_pages(tmp_path):
    server = ProcessServer(tmp_path).start()
    try:
        make_group(server.url)
        sdk = quick_polls(sdk_client(server.url))
        upload_disk(sdk, "crash")
        sas = grant(sdk, "crash")
        first = os.urandom(MIB)
        partial = os.urandom(4096)
        blob(sas).upload_page(first, offset=2 * MIB, length=MIB)
        blob(sas).upload_page(partial, offset=512, length=4096)
        server.kill()
        server.start()
        sas = sas.replace(urlsplit(sas).netloc, urlsplit(server.url).netloc)
        ranges, _ = blob(sas).get_page_ranges()
        assert [(r["start"], r["end"]) for r in ranges] == [(512, 4607), (2 * MIB, 3 * MIB - 1)]
        second = os.urandom(MIB)
        blob(sas).upload_page(second, offset=5 * MIB, length=MIB)
        blob(sas).upload_page(footer(SIZE), offset=SIZE, length=512)
        revoke(sdk, "crash")
        expected = bytearray(SIZE)
        expected[512:4608] = partial
        expected[2 * MIB:3 * MIB] = first
        expected[5 * MIB:6 * MIB] = second
        assert download_raw(server.url, "disks", "crash") == bytes(expected)
    finally:
        server.stop()


@pytest.fixture
def cli_server(sqlite_server):
    return sqlite_server


def test_cli_create_upload_grant_write_revoke(galley, cli_server):
    galley("group", "create", "-n", "rg", "-l", "eastus")
    made = galley("disk", "create", "-g", "rg", "-n", "cli", "--upload-type", "Upload",
                  "--upload-size-bytes", SIZE + 512).json()
    assert made["properties"]["diskState"] == "ReadyToUpload"
    sas = galley("disk", "grant-access", "-g", "rg", "-n", "cli", "--access-level", "Write",
                 "--duration-in-seconds", 600).json()["accessSAS"]
    assert galley("disk", "show", "-g", "rg", "-n", "cli").json()["properties"]["diskState"] == "ActiveUpload"
    data = os.urandom(MIB)
    blob(sas).upload_page(data, offset=MIB, length=MIB)
    galley("disk", "revoke-access", "-g", "rg", "-n", "cli")
    assert galley("disk", "show", "-g", "rg", "-n", "cli").json()["properties"]["diskState"] == "Unattached"
    assert download_raw(cli_server.url, "disks", "cli")[MIB:2 * MIB] == data


@pytest.mark.slow
def test_one_gib_image_with_holes_round_trips_as_vhd_raw_and_qcow2(sdk, sqlite_server, tmp_path):
    size = 1024 * MIB
    source = tmp_path / "source.raw"
    with open(source, "wb") as handle:
        handle.truncate(size)
        for offset, length in ((0, 3 * MIB + 4096), (100 * MIB + 512, 64 * MIB), (700 * MIB, 512),
                               (size - 40 * MIB, 40 * MIB)):
            handle.seek(offset)
            handle.write(os.urandom(length))
    upload_disk(sdk, "big", size)
    client = blob(grant(sdk, "big"))
    with open(source, "rb") as handle:
        client.upload_blob(_Concat(handle, footer(size), size), blob_type="PageBlob", length=size + 512,
                           overwrite=True, max_concurrency=8)
    downloaded = tmp_path / "sas.vhd"
    with open(downloaded, "wb") as handle:
        client.download_blob(max_concurrency=8).readinto(handle)
    revoke(sdk, "big")
    _same(source, downloaded, "vpc")
    for fmt, qemu in (("raw", "raw"), ("vhd", "vpc"), ("qcow2", "qcow2")):
        target = tmp_path / f"disk.{fmt}"
        with httpx.stream("GET", compute_url(sqlite_server.url, "disks/big/download"),
                          params={"api-version": DISK_API, "format": fmt}, timeout=600) as response:
            assert response.status_code == 200
            with open(target, "wb") as handle:
                for piece in response.iter_bytes(4 * MIB):
                    handle.write(piece)
        _same(source, target, qemu)


def _same(source, other, fmt: str) -> None:
    done = subprocess.run(["qemu-img", "compare", "-f", "raw", "-F", fmt, str(source), str(other)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


class _Concat:
    """A file followed by a trailer, read as one stream (the VHD the SDK uploads)."""

    def __init__(self, handle, trailer: bytes, size: int) -> None:
        self.handle, self.trailer, self.size, self.position = handle, trailer, size, 0

    def read(self, n: int = -1) -> bytes:
        if self.position < self.size:
            data = self.handle.read(min(n, self.size - self.position) if n >= 0 else self.size - self.position)
        else:
            start = self.position - self.size
            data = self.trailer[start:start + n if n >= 0 else None]
        self.position += len(data)
        return data
