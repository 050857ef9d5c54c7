"""`galley store gc --grace-seconds N`: what a dead writer left goes as soon as its lease ran out,
what a live writer (one holding a lease) is writing stays whatever the grace, and a collector
stopped between deleting an object and its row leaves nothing a writer would rely on."""

from __future__ import annotations

import os
import random
import threading
import time
import uuid

import pytest
from sqlalchemy import func, insert, select, update

from galley.content import chunks
from galley.domain.resource import IN_PROGRESS
from galley.store.content_repository import DOOMED
from galley.store.tables import content_chunks, contents, operations, store_chunks

from . import admin_http as httpx
from .data_helpers import (
    DISK_API,
    MiB,
    compute_client,
    create_upload_disk,
    download_sha,
    sha256_file,
    upload_ok,
)
from .sdk_helpers import make_group
from .store_audit import audit, server_objects


def _block(seed: int) -> bytes:
    return random.Random(seed).randbytes(MiB)


class Scene:
    """A server's content engine, its eastus store, and ways to leave writes behind."""

    def __init__(self, server) -> None:
        self.url = server.url
        self.engine = server.app.state.content
        self.repo = self.engine.repo
        self.store_id = self.engine.locations.home_store("eastus")
        self.store = self.engine.locations.open(self.store_id)

    def half_written(self, seed: int, age: float = 0.0) -> tuple[str, str]:
        """A content whose writer stored one chunk and died: (content id, digest)."""
        writer = self.engine.writer(self.store_id, MiB)
        data = _block(seed)
        writer.add(0, data)
        writer._flush()
        writer._drain()
        if age:
            with self.repo.sql.write() as tx:
                tx.c.execute(update(contents).where(contents.c.id == writer.content_id)
                             .values(created_at=time.time() - age))
        return writer.content_id, chunks.digest_of(data)

    def stray(self, seed: int, age: float = 0.0) -> str:
        """An object a writer stored and never recorded (killed in between)."""
        data = _block(seed)
        digest = chunks.digest_of(data)
        codec, payload = chunks.encode_parts(data)
        self.store.put(digest, codec + bytes(payload))
        if age:
            path = self.store._path(digest)
            os.utime(path, (time.time() - age, time.time() - age))
        return digest

    def has_object(self, digest: str) -> bool:
        return self.store._path(digest).exists()

    def content_exists(self, content_id: str) -> bool:
        with self.repo.sql.read() as tx:
            return tx.c.execute(select(func.count()).select_from(contents)
                                .where(contents.c.id == content_id)).scalar() == 1

    def gc(self, grace: str | None = None) -> dict:
        answer = httpx.post(f"{self.url}/galley/store/gc",
                            params={} if grace is None else {"graceSeconds": grace})
        assert answer.status_code == 200, answer.text
        return answer.json()

    def live_operation(self, lease_seconds: float = 30.0) -> str:
        """An operation a worker holds now (claimed, lease running): a live writer."""
        operation_id = str(uuid.uuid4())
        now = time.time()
        with self.repo.sql.write() as tx:
            tx.c.execute(insert(operations).values(
                id=operation_id, resource_key="/x", resource_id="/x", resource_type="t",
                subscription_id="s", action="galleytest", region="eastus", status=IN_PROGRESS,
                start_time=time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + "Z",
                lease_owner="elsewhere.worker", lease_until=now + lease_seconds, attempts=1))
        return operation_id

    def end_lease(self, operation_id: str) -> None:
        """Its node died and the operation was failed once its lease ran out (here at once: left
        InProgress with an expired lease, this server's own worker would claim it)."""
        with self.repo.sql.write() as tx:
            tx.c.execute(update(operations).where(operations.c.id == operation_id)
                         .values(status="Failed", lease_until=time.time() - 1))


def test_gc_grace_seconds_is_checked(sqlite_server):
    scene = Scene(sqlite_server)
    content, digest = scene.half_written(seed=1, age=10)
    for bad in ("-1", "abc", "1.5", "99999999999", ""):
        answer = httpx.post(f"{scene.url}/galley/store/gc", params={"graceSeconds": bad})
        assert answer.status_code == 400, (bad, answer.text)
        error = answer.json()["error"]
        assert error["code"] == "InvalidParameter" and error["target"] == "graceSeconds", error
    assert scene.content_exists(content) and scene.has_object(digest)  # nothing changed
    assert scene.gc()["contents_dropped"] == 0  # the default grace is an hour
    assert scene.content_exists(content)
    assert scene.gc("5") == {"contents_dropped": 1, "chunks_deleted": 1, "log_segments_deleted": 0}
    assert not scene.content_exists(content) and not scene.has_object(digest)


def test_a_short_grace_spares_what_a_live_writer_is_writing(sqlite_server):
    scene = Scene(sqlite_server)
    dead_content, dead_chunk = scene.half_written(seed=2, age=120)
    dead_stray = scene.stray(seed=3, age=120)
    operation = scene.live_operation()
    live_content, live_chunk = scene.half_written(seed=4)  # after the live writer began
    live_stray = scene.stray(seed=5)

    assert scene.gc("0") == {"contents_dropped": 1, "chunks_deleted": 2, "log_segments_deleted": 0}
    assert not scene.content_exists(dead_content)
    assert not scene.has_object(dead_chunk) and not scene.has_object(dead_stray)
    assert scene.content_exists(live_content)
    assert scene.has_object(live_chunk) and scene.has_object(live_stray)

    scene.end_lease(operation)  # its node died: once the lease runs out, all of it is garbage
    assert scene.gc("0") == {"contents_dropped": 1, "chunks_deleted": 2, "log_segments_deleted": 0}
    assert not scene.content_exists(live_content)
    assert not scene.has_object(live_chunk) and not scene.has_object(live_stray)


def test_a_short_grace_spares_an_upload_being_received(sqlite_server, tmp_path):
    """An upload lease (the disk is receiving bytes) protects like an operation's."""
    scene = Scene(sqlite_server)
    compute = compute_client(scene.url)
    make_group(scene.url)
    disk = create_upload_disk(compute, "d1", 4 * MiB)
    service = sqlite_server.app.state.service
    service.begin_upload(disk.id, "Microsoft.Compute/disks", "elsewhere:4242", 60.0, lambda owner: True)
    content, digest = scene.half_written(seed=6)
    stray = scene.stray(seed=7)
    assert scene.gc("0") == {"contents_dropped": 0, "chunks_deleted": 0, "log_segments_deleted": 0}
    assert scene.content_exists(content) and scene.has_object(digest) and scene.has_object(stray)


def test_a_collector_stopped_after_deleting_an_object_leaves_no_row_a_writer_trusts(sqlite_server, tmp_path):
    """The collector dies after deleting a chunk's object, before its row is gone: the row stays
    doomed, a writer that wants the same bytes stores them again, and the next collection (the
    chunk still unused) deletes the row."""
    scene = Scene(sqlite_server)
    content, digest = scene.half_written(seed=8, age=120)
    scene.repo.discard_content(content)  # its chunk is garbage now

    def delete_then_die() -> None:
        scene.store.delete(digest)
        raise SystemExit("killed")

    with pytest.raises(SystemExit):
        scene.repo.delete_if_unreferenced(scene.store_id, digest, time.time() + 1, delete_then_die)
    assert not scene.has_object(digest)
    with scene.repo.sql.read() as tx:
        assert tx.c.execute(select(store_chunks.c.last_seen).where(store_chunks.c.digest == digest)).scalar() == DOOMED
    assert (scene.store_id, digest) not in scene.repo.store_rows(doomed=False)  # verify skips it

    # A writer with the same bytes: the doomed row counts as absent, so it stores the object again.
    raw = tmp_path / "same.raw"
    raw.write_bytes(_block(8))
    make_group(scene.url)
    disk = create_upload_disk(compute_client(scene.url), "same", MiB)
    upload_ok(scene.url, disk.id, raw)
    assert scene.has_object(digest)
    with scene.repo.sql.read() as tx:
        assert tx.c.execute(select(store_chunks.c.last_seen).where(store_chunks.c.digest == digest)).scalar() > 0
        assert tx.c.execute(select(func.count()).select_from(content_chunks)
                            .where(content_chunks.c.digest == digest)).scalar() == 1
    report = httpx.post(f"{scene.url}/galley/store/verify", params={"repair": "false"}).json()
    assert report["damaged"] == [] and report["lost"] == [] and report["checked"] == 1, report


def test_the_next_collection_finishes_what_a_stopped_one_began(sqlite_server):
    scene = Scene(sqlite_server)
    content, digest = scene.half_written(seed=9, age=120)
    scene.repo.discard_content(content)

    def die_first() -> None:
        raise SystemExit("killed")

    with pytest.raises(SystemExit):
        scene.repo.delete_if_unreferenced(scene.store_id, digest, time.time() + 1, die_first)
    assert scene.has_object(digest)  # the row is doomed, the object still there
    assert scene.gc("0")["chunks_deleted"] == 1
    assert not scene.has_object(digest) and scene.repo.store_rows() == []


def test_the_store_audit_sees_strays_missing_chunks_and_leases(sqlite_server, tmp_path):
    """tests/store_audit.py, the check the cluster tests end with, finds each kind of dirt."""
    scene = Scene(sqlite_server)
    check = lambda: audit(scene.repo.sql.engine, server_objects(sqlite_server.app))
    make_group(scene.url)
    disk = create_upload_disk(compute_client(scene.url), "d1", 2 * MiB)
    raw = tmp_path / "d1.raw"
    raw.write_bytes(_block(10) + _block(11))
    upload_ok(scene.url, disk.id, raw)
    assert check().clean, check()

    stray = scene.stray(seed=12)
    _abandoned, abandoned_chunk = scene.half_written(seed=13)  # its writer died: nothing needs it
    lost = chunks.digest_of(_block(10))
    scene.store.delete(lost)
    operation = scene.live_operation()
    sqlite_server.app.state.service.begin_upload(disk.id, "Microsoft.Compute/disks", "elsewhere:1", 60.0,
                                                 lambda owner: True)
    report = check()
    assert set(report.unreferenced) == {(scene.store_id, stray), (scene.store_id, abandoned_chunk)}, report
    assert report.missing == [(scene.store_id, lost)], report
    assert [row["id"] for row in report.operation_leases] == [operation], report
    assert len(report.upload_leases) == 1 and report.upload_leases[0]["owner"] == "elsewhere:1", report
    assert not report.clean


def test_galley_store_gc_grace_seconds(galley, cli_server):
    scene = Scene(cli_server)
    content, digest = scene.half_written(seed=14, age=30)
    assert galley("store", "gc").json() == {"contents_dropped": 0, "chunks_deleted": 0, "log_segments_deleted": 0}
    assert galley("store", "gc", "--grace-seconds", "60").json() == {
        "contents_dropped": 0, "chunks_deleted": 0, "log_segments_deleted": 0}
    refused = galley("store", "gc", "--grace-seconds", "-5", check=False)
    assert refused.code != 0 and "grace-seconds" in refused.stderr, refused
    assert scene.content_exists(content)
    table = galley("store", "gc", "--grace-seconds", "10", "-o", "table").stdout
    assert table.split()[:3] == ["ContentsDropped", "ChunksDeleted", "LogSegmentsDeleted"], table
    assert table.split()[-3:] == ["1", "1", "0"], table
    assert not scene.content_exists(content) and not scene.has_object(digest)


def test_gc_with_no_grace_all_the_time_spares_uploads_in_progress(sqlite_server, tmp_path):
    """Collections with graceSeconds=0 back to back while slow uploads stream in: every upload
    completes and reads back byte-identical (their leases keep their chunks), and once they are
    done a last collection leaves the stores clean."""
    scene = Scene(sqlite_server)
    compute = compute_client(scene.url)
    make_group(scene.url)
    images = {f"d{n}": tmp_path / f"d{n}.raw" for n in range(2)}
    for n, path in enumerate(images.values()):
        path.write_bytes(b"".join(_block(100 * n + i) for i in range(24)))
    disks = {name: create_upload_disk(compute, name, 24 * MiB).id for name in images}
    stop = threading.Event()
    collected: list[dict] = []
    failures: list[str] = []  # what went wrong in a thread, for the test to report

    def collect() -> None:
        try:
            while not stop.is_set():
                collected.append(scene.gc("0"))
        except Exception as error:  # noqa: BLE001 - reported below
            failures.append(f"collection: {error!r}")

    pieces = 12

    def slow_body(path):
        """Each piece, then a whole collection pass while the upload is still coming in."""
        with open(path, "rb") as f:
            while piece := f.read(24 * MiB // pieces):
                yield piece
                passes = len(collected)
                deadline = time.monotonic() + 60
                while len(collected) <= passes:
                    assert not failures and time.monotonic() < deadline, f"no collection ran: {failures}"
                    time.sleep(0.01)

    answers: dict[str, int | str] = {}

    def send(name: str) -> None:
        try:
            answers[name] = httpx.put(f"{scene.url}{disks[name]}/upload", params={"api-version": DISK_API},
                                      content=slow_body(images[name]), timeout=120).status_code
        except Exception as error:  # noqa: BLE001 - reported below
            answers[name] = repr(error)

    collector = threading.Thread(target=collect)
    senders = [threading.Thread(target=send, args=(name,)) for name in images]
    collector.start()
    for sender in senders:
        sender.start()
    for sender in senders:
        sender.join(timeout=120)
    stop.set()
    collector.join(timeout=60)
    assert failures == [] and not collector.is_alive(), failures
    assert answers == {name: 200 for name in images}, answers
    assert len(collected) >= pieces, collected
    for name, path in images.items():
        assert download_sha(scene.url, disks[name], tmp_path / "out.raw") == sha256_file(path), name
    scene.gc("0")
    report = audit(scene.repo.sql.engine, server_objects(sqlite_server.app))
    assert report.clean, report


def test_a_stray_a_writer_stores_again_while_the_sweep_runs_is_kept(sqlite_server, tmp_path, monkeypatch):
    """A sweep lists an old unrecorded object (a dead writer's); before it gets to it, an upload
    with the same bytes finds no row, writes the object anew and records it. The sweep, working
    from its earlier listing, must not delete that object (it did: the upload's disk then read
    back as a missing chunk)."""
    scene = Scene(sqlite_server)
    digest = scene.stray(seed=11, age=600)
    make_group(scene.url)
    disk = create_upload_disk(compute_client(scene.url), "again", MiB)
    raw = tmp_path / "again.raw"
    raw.write_bytes(_block(11))
    listed = type(scene.store).old_keys

    def list_then_let_a_writer_in(store, older_than):
        keys = list(listed(store, older_than))
        if store.url == scene.store.url:
            assert digest in keys
            upload_ok(scene.url, disk.id, raw)  # no row: the object is written again, then recorded
        return iter(keys)

    original_rows = scene.repo.store_rows
    monkeypatch.setattr(scene.repo, "store_rows",  # the sweep's snapshot, taken before the upload
                        lambda store=None, doomed=True: [r for r in original_rows(store, doomed) if r[1] != digest])
    monkeypatch.setattr(type(scene.store), "old_keys", list_then_let_a_writer_in)
    assert scene.gc("0")["chunks_deleted"] == 0
    monkeypatch.undo()

    assert scene.has_object(digest)
    assert download_sha(scene.url, disk.id, tmp_path / "back.raw") == sha256_file(raw)
    report = httpx.post(f"{scene.url}/galley/store/verify", params={"repair": "false"}).json()
    assert report["damaged"] == [] and report["lost"] == [], report


def test_an_old_stray_nobody_records_is_deleted_and_nothing_is_left_aside(sqlite_server):
    scene = Scene(sqlite_server)
    digest = scene.stray(seed=12, age=600)
    assert scene.gc("0")["chunks_deleted"] == 1
    assert not scene.has_object(digest)
    assert not [p for p in scene.store.root.rglob(".stray-*")]
