"""The disk SAS page store on its own (galley/blobservice/page_store.py): group-committed writes,
what a reopen (after kill -9) finds, whole-chunk clears, and a chunk garbage collection deletes
between a writer's check and its commit."""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from galley.blobservice import page_store
from galley.blobservice.group_commit import GroupCommit
from galley.blobservice.page_store import PageStore
from galley.config import DEFAULT_REGIONS, Settings
from galley.content.chunks import CHUNK_SIZE
from galley.content.engine import ContentEngine
from galley.content.locations import Locations
from galley.store.content_repository import ContentRepository
from galley.store.database import make_engine, migrate
from galley.store.sql_store import SqlStore

STORE = "eastus/1/r0"
SIZE = 8 * CHUNK_SIZE


@pytest.fixture
def content(tmp_path):
    settings = Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path / 'galley.db'}", regions=DEFAULT_REGIONS)
    engine = make_engine(settings.database_url)
    migrate(engine)
    yield ContentEngine(ContentRepository(SqlStore(engine)), Locations(settings))
    engine.dispose()


def _open(content, tmp_path, content_id=None) -> PageStore:
    if content_id is None:
        content_id = content.repo.new_content(SIZE, CHUNK_SIZE, STORE)
        content.repo.hold_content(content_id, "test/hold")
    return PageStore(tmp_path / "session", SIZE, content, content_id, STORE)


def _chunk(n: int) -> bytes:
    return n.to_bytes(8, "little") * (CHUNK_SIZE // 8)


def test_each_write_is_one_commit_and_a_reopen_finds_every_acknowledged_write(content, tmp_path, monkeypatch):
    commits = []
    original = PageStore._commit_batch
    monkeypatch.setattr(PageStore, "_commit_batch",
                        lambda self, batch: commits.append(len(batch)) or original(self, batch))
    pages = _open(content, tmp_path)
    release = threading.Barrier(4)

    def write(n: int) -> None:
        release.wait()
        pages.write_pages(2 * n * CHUNK_SIZE, _chunk(2 * n + 1) + _chunk(2 * n + 2))

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(write, range(4)))
    pages.close()
    assert sum(commits) == 4  # one commit item per write, whatever the number of chunks
    again = _open(content, tmp_path, pages.content_id)  # as after kill -9: ledger and database only
    assert again.page_ranges(0, SIZE) == [(0, SIZE)]
    assert again.read(0, SIZE) == b"".join(_chunk(n + 1) for n in range(8))
    again.close()


def test_a_whole_chunk_cleared_clears_only_that_chunk(content, tmp_path):
    pages = _open(content, tmp_path)
    pages.write_pages(0, b"".join(_chunk(n + 1) for n in range(8)))
    pages.clear_pages(2 * CHUNK_SIZE, CHUNK_SIZE)
    pages.write_pages(5 * CHUNK_SIZE, bytes(CHUNK_SIZE))  # zeros written: not stored, reported as cleared
    assert pages.page_ranges(0, SIZE) == [(0, 2 * CHUNK_SIZE), (3 * CHUNK_SIZE, 5 * CHUNK_SIZE),
                                          (6 * CHUNK_SIZE, SIZE)]
    assert sorted(pages.manifest) == [0, 1, 3, 4, 6, 7]
    assert pages.read(2 * CHUNK_SIZE, CHUNK_SIZE) == bytes(CHUNK_SIZE)
    pages.close()


def test_a_chunk_collected_between_check_and_commit_is_written_again(content, tmp_path, monkeypatch):
    pages = _open(content, tmp_path)
    data = _chunk(7)
    digest = page_store.chunks.digest_of(data)
    # The rows list the digest when the writer looks, and garbage collection removes it before its commit.
    monkeypatch.setattr(content.repo, "held", lambda store, digests: {digest} & set(digests))
    pages.write_pages(CHUNK_SIZE, data)
    monkeypatch.undo()
    assert content.repo.held(STORE, [digest]) == {digest}
    assert content.locations.open(STORE).exists(digest)
    pages.close()
    again = _open(content, tmp_path, pages.content_id)
    assert again.read(CHUNK_SIZE, CHUNK_SIZE) == data
    assert again.page_ranges(0, SIZE) == [(CHUNK_SIZE, 2 * CHUNK_SIZE)]
    again.close()


def test_group_commit_hands_each_caller_its_result_and_every_caller_a_failure():
    seen = []

    def apply(items):
        seen.append(list(items))
        if "bad" in items:
            raise OSError("disk full")
        return [item.upper() for item in items]

    commits = GroupCommit(apply)
    assert commits.run("a") == "A"
    with pytest.raises(OSError):
        commits.run("bad")
    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(commits.run, [f"w{n}" for n in range(32)]))
    assert results == [f"W{n}" for n in range(32)]
    assert sum(len(batch) for batch in seen) == 34


def test_a_writes_chunk_objects_are_on_disk_before_its_commit(content, tmp_path, monkeypatch):
    """A Put Page is acknowledged once its commit returns: by then every chunk object it wrote has
    had its data fdatasync'ed and its name's folder fsync'ed (the upload path's final sync does not
    run for page writes)."""
    from galley.content import object_store

    events = []
    real_fdatasync, real_fsync = object_store.os.fdatasync, object_store.os.fsync

    def fdatasync(fd):
        events.append(("data", os.readlink(f"/proc/self/fd/{fd}")))
        real_fdatasync(fd)

    def fsync(fd):
        events.append(("name", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    monkeypatch.setattr(object_store.os, "fdatasync", fdatasync)
    monkeypatch.setattr(object_store.os, "fsync", fsync)
    original = PageStore._commit_batch
    monkeypatch.setattr(PageStore, "_commit_batch",
                        lambda self, batch: events.append(("commit", len(batch))) or original(self, batch))
    pages = _open(content, tmp_path)
    pages.write_pages(CHUNK_SIZE, _chunk(1) + _chunk(2))
    pages.close()
    store_root = str(content.locations.open(STORE).root)
    synced = [path for kind, path in events[:events.index(("commit", 1))] if kind == "data"]
    folders = [path for kind, path in events[:events.index(("commit", 1))] if kind == "name"]
    digests = sorted(digest for digest, _ in (pages.manifest[1], pages.manifest[2]))
    assert len(synced) == 2 and all(path.startswith(store_root) for path in synced)
    assert sorted(folders) == sorted(f"{store_root}/{d[:2]}" for d in digests)
