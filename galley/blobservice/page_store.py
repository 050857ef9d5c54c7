"""The pages of a disk Write session, durable from the moment a Put Page is acknowledged.

A session's blob is split into the chunk store's 1 MiB chunks. Each chunk is in one of two modes:

- manifest mode (the default): its bytes are a chunk of the session's content in the chunk
  store (a content in state "writing", held by a disk_contents row under a key no resource has,
  so garbage collection leaves it be), or zeros when the manifest has no entry for it. A Put Page
  that covers a whole chunk stores it there directly (a whole chunk of zeros removes the entry:
  zeros are never stored as data);
- overlay mode: its bytes are the same 1 MiB region of the session's sparse overlay file
  (`overlay` in the session folder), where partial writes land; cleared or zero pages are holes
  punched into it.

A ledger (`ledger`, an append-only text file in the session folder, fdatasync'ed before a write is
acknowledged) records the valid page ranges and each chunk's mode: `S a b` / `C a b` set / clear
[a, b), `O i` / `M i` chunk i goes to overlay / manifest mode, `R` resets the blob. Replaying it
after a crash (kill -9) gives back the acknowledged state; a torn last line is a write that was
never acknowledged. A manifest entry whose chunk never reached the store (a crash between the
two) is dropped on reopen. Valid pages are the written, non-zero ones (pages written as zeros are
reported like cleared ones by Get Page Ranges).

A write holds the locks of all the chunks it touches (taken in ascending order) until it is
committed, so overlapping writers give the result of some order of their writes, never a mix
inside a page. Its whole chunks are hashed and written to the store unless its rows already list
them (and, in a folder store, their files are there; each object written is fdatasync'ed and its
folder fsync'ed, as the write is acknowledged alone); then one transaction registers the objects
written and records the manifest entries (touching the digests, so garbage collection keeps them:
a digest that vanished in between is written again before the write is acknowledged), and the
ledger lines follow with one fdatasync.
The commit is a group commit (group_commit.py): concurrent writers share one transaction and one
fdatasync rather than queueing one by one for SQLite's write lock.
`fold()` (at endGetAccess) stores every overlay chunk into the content and returns it; the
caller finishes it as the disk's content. Memory held is a write's body plus a chunk or two.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from bisect import bisect_left, bisect_right
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from ..content import chunks
from ..content.chunks import CHUNK_SIZE
from ..content.object_store import FolderStore
from .group_commit import GroupCommit

PAGE = 512
_ZERO_PAGE = bytes(PAGE)
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_PUNCH_HOLE = 0x01 | 0x02  # FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE
FOLD_BATCH = 16  # overlay chunks stored per commit at endGetAccess


class PageSet:
    """Disjoint, sorted [start, end) runs."""

    def __init__(self) -> None:
        self.starts: list[int] = []
        self.ends: list[int] = []

    def add(self, a: int, b: int) -> None:
        i = bisect_left(self.ends, a)
        j = bisect_right(self.starts, b)
        if i < j:
            a, b = min(a, self.starts[i]), max(b, self.ends[j - 1])
        self.starts[i:j], self.ends[i:j] = [a], [b]

    def remove(self, a: int, b: int) -> None:
        i = bisect_right(self.ends, a)
        j = bisect_left(self.starts, b)
        keep_s, keep_e = [], []
        if i < j:
            if self.starts[i] < a:
                keep_s.append(self.starts[i]), keep_e.append(a)
            if self.ends[j - 1] > b:
                keep_s.append(b), keep_e.append(self.ends[j - 1])
            self.starts[i:j], self.ends[i:j] = keep_s, keep_e

    def runs(self, a: int, b: int) -> list[tuple[int, int]]:
        i = bisect_right(self.ends, a)
        out = []
        while i < len(self.starts) and self.starts[i] < b:
            out.append((max(a, self.starts[i]), min(b, self.ends[i])))
            i += 1
        return out

    def clear(self) -> None:
        self.starts, self.ends = [], []


def _data_runs(data: bytes, a: int, b: int, base: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(non-zero runs, zero runs) of the 512-byte pages of data[a:b], as absolute [x, y) offsets
    (data[a] is at `base`). Nothing is copied."""
    view = memoryview(data)[a:b]
    if chunks.is_zero(view):
        return [], [(base, base + len(view))]
    if data.find(_ZERO_PAGE, a, b) < 0:
        return [(base, base + len(view))], []  # no run of 512 zeros anywhere: all data (the usual case)
    runs: tuple[list, list] = ([], [])
    current, run_start = None, 0
    for offset in range(0, len(view), PAGE):
        kind = 1 if view[offset:offset + PAGE] == _ZERO_PAGE else 0
        if kind != current:
            if current is not None:
                runs[current].append((base + run_start, base + offset))
            current, run_start = kind, offset
    runs[current].append((base + run_start, base + len(view)))
    return runs


@dataclass
class _Commit:
    """What one write makes durable, in this order: database rows (objects it stored, chunks it
    dropped or recorded: ContentRepository.record_page_writes), then ledger lines."""
    stored: list[tuple[str, int, int]] = field(default_factory=list)
    dropped: list[int] = field(default_factory=list)
    entries: list[tuple[int, str, int]] = field(default_factory=list)
    ledger: list[str] = field(default_factory=list)


@dataclass
class _Write:
    """One write (or clear) under way: what it commits and what changes in memory once it has."""
    commit: _Commit = field(default_factory=_Commit)
    set_runs: list[tuple[int, int]] = field(default_factory=list)
    clear_runs: list[tuple[int, int]] = field(default_factory=list)
    to_manifest: list[int] = field(default_factory=list)  # overlay chunks now whole in the manifest
    to_overlay: list[int] = field(default_factory=list)
    pieces: dict[str, object] = field(default_factory=dict)  # digest -> bytes, until committed

    def runs(self, nonzero, zero) -> None:
        self.set_runs += nonzero
        self.clear_runs += zero


class PageStore:
    def __init__(self, folder: Path, size: int, content, content_id: str, store_id: str) -> None:
        self.folder, self.size = folder, size
        self.content, self.content_id, self.store_id = content, content_id, store_id
        self.store = content.locations.open(store_id)
        self.valid = PageSet()
        self.overlay_chunks: set[int] = set()
        self._locks: dict[int, threading.Lock] = {}
        self._guard = threading.Lock()
        self._commits: GroupCommit[_Commit, set[str]] = GroupCommit(self._commit_batch)
        folder.mkdir(parents=True, exist_ok=True)
        self._overlay = os.open(folder / "overlay", os.O_RDWR | os.O_CREAT, 0o600)
        os.ftruncate(self._overlay, size)
        self._replay()
        self._ledger = os.open(folder / "ledger", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        self.manifest = dict(content.repo.manifest(content_id))
        self._drop_unstored()

    # ---- recovery ---------------------------------------------------------------------------------
    def _replay(self) -> None:
        path = self.folder / "ledger"
        if not path.exists():
            return
        for line in path.read_text().split("\n")[:-1]:  # the part after the last newline is torn
            op, *args = line.split()
            numbers = [int(a) for a in args]
            if op == "S":
                self.valid.add(*numbers)
            elif op == "C":
                self.valid.remove(*numbers)
            elif op == "O":
                self.overlay_chunks.add(numbers[0])
            elif op == "M":
                self.overlay_chunks.discard(numbers[0])
            elif op == "R":
                self.valid.clear()
                self.overlay_chunks.clear()

    def _drop_unstored(self) -> None:
        digests = sorted({d for d, _ in self.manifest.values()})
        present = self.content.repo.touch(self.store_id, digests) if digests else set()
        lost = [i for i, (d, _) in self.manifest.items() if d not in present]
        if lost:
            self.content.repo.drop_chunks(self.content_id, lost)
            for idx in lost:
                del self.manifest[idx]

    # ---- page operations ----------------------------------------------------------------------------
    def write_pages(self, offset: int, data: bytes) -> None:
        self._apply(offset, len(data), data if isinstance(data, (bytes, bytearray)) else bytes(data))

    def clear_pages(self, offset: int, length: int) -> None:
        self._apply(offset, length, None)

    def read(self, offset: int, length: int) -> bytes:
        parts = []
        end = offset + length
        for idx in range(offset // CHUNK_SIZE, (end - 1) // CHUNK_SIZE + 1):
            start = idx * CHUNK_SIZE
            lo, hi = max(offset, start), min(end, start + CHUNK_SIZE)
            with self._lock(idx):
                if idx in self.overlay_chunks:
                    parts.append(os.pread(self._overlay, hi - lo, lo))
                else:
                    parts.append(self._chunk_bytes(idx)[lo - start:hi - start])
        return b"".join(parts)

    def page_ranges(self, start: int, end: int) -> list[tuple[int, int]]:
        with self._guard:
            return self.valid.runs(start, end)

    def reset(self) -> None:
        """Put Blob: the blob starts over, empty."""
        with self._guard:
            os.write(self._ledger, b"R\n")
            self.content.repo.drop_chunks(self.content_id)
            self.manifest.clear()
            self.overlay_chunks.clear()
            self.valid.clear()
            os.ftruncate(self._overlay, 0)
            os.ftruncate(self._overlay, self.size)
            os.fdatasync(self._ledger)

    def fold(self, virtual_size: int) -> str:
        """Store every overlay chunk in the content, the chunk that ends at `virtual_size` cut
        there (a VHD footer after it is not disk data); the content id."""
        overlay = sorted(self.overlay_chunks)
        for n in range(0, len(overlay), FOLD_BATCH):
            indexes = overlay[n:n + FOLD_BATCH]
            with self._locked(indexes):
                self._commit_write(self._whole_chunks([
                    (idx, os.pread(self._overlay, min(CHUNK_SIZE, self.size - idx * CHUNK_SIZE), idx * CHUNK_SIZE))
                    for idx in indexes], _Write()))
        tail = virtual_size // CHUNK_SIZE
        if virtual_size % CHUNK_SIZE and tail in self.manifest:
            with self._locked([tail]):
                data = self._chunk_bytes(tail)[:virtual_size - tail * CHUNK_SIZE]
                if chunks.is_zero(data):
                    self.content.repo.drop_chunks(self.content_id, [tail])
                    del self.manifest[tail]
                else:
                    write = _Write()
                    self._store_chunks([(tail, data)], write)
                    self._commit_write(write)
        if hasattr(self.store, "sync"):
            self.store.sync()
        return self.content_id

    def close(self) -> None:
        for fd in (self._overlay, self._ledger):
            try:
                os.close(fd)
            except OSError:
                pass

    # ---- internals -------------------------------------------------------------------------------------
    def _lock(self, idx: int) -> threading.Lock:
        with self._guard:
            lock = self._locks.get(idx)
            if lock is None:
                lock = self._locks[idx] = threading.Lock()
            return lock

    @contextmanager
    def _locked(self, indexes):
        """The locks of chunks `indexes` (ascending), held together for a whole write."""
        held = []
        try:
            for idx in indexes:
                lock = self._lock(idx)
                lock.acquire()
                held.append(lock)
            yield
        finally:
            for lock in reversed(held):
                lock.release()

    def _apply(self, offset: int, length: int, data: bytes | None) -> None:
        end = offset + length
        first, last = offset // CHUNK_SIZE, (end - 1) // CHUNK_SIZE
        with self._locked(range(first, last + 1)):
            write, whole = _Write(), []
            try:
                for idx in range(first, last + 1):
                    start = idx * CHUNK_SIZE
                    chunk_end = min(start + CHUNK_SIZE, self.size)
                    lo, hi = max(offset, start), min(end, chunk_end)
                    piece = memoryview(data)[lo - offset:hi - offset] if data is not None else None
                    if lo == start and hi == chunk_end:
                        whole.append((idx, piece))
                    else:
                        self._write_partial(idx, lo, hi, data, lo - offset, write)
                self._commit_write(self._whole_chunks(whole, write, data, offset))
            except BaseException:
                self.overlay_chunks.difference_update(write.to_overlay)  # their "O" lines were not written
                raise

    def _whole_chunks(self, whole: list, write: _Write, data: bytes | None = None, offset: int = 0) -> _Write:
        """Whole chunks `whole` ((index, bytes or a view of `data`, or None to clear)) are stored in
        the content (their manifest entries take effect at once, the rest once `write` is
        committed). `data` and `offset`: the write's body and where it starts, searched for zero
        pages without copying; without them each item's bytes are."""
        stored = []
        for idx, piece in whole:
            start = idx * CHUNK_SIZE
            length = len(piece) if piece is not None else min(CHUNK_SIZE, self.size - start)
            if piece is None or chunks.is_zero(piece):
                if idx in self.manifest:
                    write.commit.dropped.append(idx)
                write.runs([], [(start, start + length)])
            else:
                stored.append((idx, piece))
                source, base = (data, offset) if data is not None else (piece, start)
                write.runs(*_data_runs(source, start - base, start - base + length, start))
            if idx in self.overlay_chunks:
                write.commit.ledger.append(f"M {idx}\n")
                write.to_manifest.append(idx)
        self._store_chunks(stored, write)
        return write

    def _store_chunks(self, items: list[tuple[int, memoryview]], write: _Write) -> None:
        """Chunks `items` ((index, bytes)) are stored where the store lacks them and go into
        `write`'s commit: the objects to register and the manifest entries."""
        digests = [chunks.digest_of(piece) for _, piece in items]
        wanted = sorted(set(digests))
        if isinstance(self.store, FolderStore):
            # A chunk whose file is not in the folder is written whatever the rows say: only the
            # digests with a file need the database's word (for new data, no read transaction).
            wanted = [d for d in wanted if self.store.exists(d)]
        skip = self.content.repo.held(self.store_id, wanted) if wanted else set()
        for (idx, piece), digest in zip(items, digests):
            write.commit.entries.append((idx, digest, len(piece)))
            write.pieces[digest] = piece
            if digest not in skip:
                skip.add(digest)
                write.commit.stored.append(self._put_object(digest, piece))

    def _put_object(self, digest: str, data) -> tuple[str, int, int]:
        codec, payload = chunks.encode_parts(data)
        if hasattr(self.store, "put_parts"):
            # On disk before the write is acknowledged: the ledger and the database rows that
            # point at it are made durable by the commit that follows, the object by itself.
            self.store.put_parts(digest, (codec, payload), durable=True)
        else:
            self.store.put(digest, codec + bytes(payload))
        return digest, 1 + len(payload), len(data)

    def _write_partial(self, idx: int, lo: int, hi: int, data: bytes | None, at: int, write: _Write) -> None:
        """Pages [lo, hi) of chunk `idx` (data[at:] or zeros) go to the overlay (durable at once)."""
        if idx not in self.overlay_chunks:
            start = idx * CHUNK_SIZE
            self._punch(start, min(CHUNK_SIZE, self.size - start))
            if idx in self.manifest:
                os.pwrite(self._overlay, self._chunk_bytes(idx), start)
            os.fdatasync(self._overlay)
            write.commit.ledger.append(f"O {idx}\n")  # from here on the overlay holds this chunk
            self.overlay_chunks.add(idx)
            write.to_overlay.append(idx)
        if data is None:
            nonzero, zero = [], [(lo, hi)]
        else:
            nonzero, zero = _data_runs(data, at, at + hi - lo, lo)
        for a, b in nonzero:
            os.pwrite(self._overlay, memoryview(data)[at + a - lo:at + b - lo], a)
        for a, b in zero:
            self._punch(a, b - a)
        os.fdatasync(self._overlay)
        write.runs(nonzero, zero)

    def _commit_write(self, write: _Write) -> None:
        """Make `write` durable (one group commit with the writes running beside it), then visible."""
        write.commit.ledger += [f"S {a} {b}\n" for a, b in write.set_runs]
        write.commit.ledger += [f"C {a} {b}\n" for a, b in write.clear_runs]
        lost = self._commits.run(write.commit)
        if lost:  # skipped as held, deleted by garbage collection since: referenced now, written again
            self._commits.run(_Commit(stored=[self._put_object(d, write.pieces[d]) for d in sorted(lost)],
                                      ledger=write.commit.ledger))
        for idx, digest, length in write.commit.entries:
            self.manifest[idx] = (digest, length)
        for idx in write.commit.dropped:
            self.manifest.pop(idx, None)
        for idx in write.to_manifest:
            self.overlay_chunks.discard(idx)
            start = idx * CHUNK_SIZE
            self._punch(start, min(CHUNK_SIZE, self.size - start))
        with self._guard:
            for a, b in write.set_runs:
                self.valid.add(a, b)
            for a, b in write.clear_runs:
                self.valid.remove(a, b)

    def _commit_batch(self, batch: list[_Commit]) -> list[set[str]]:
        """GroupCommit's work: one transaction for the database rows of the whole batch, then its
        ledger lines with one fdatasync. Each caller gets the digests of its entries the store does
        not hold (see ContentRepository.record_page_writes); its ledger lines wait until it has
        stored them."""
        stored = [s for c in batch for s in c.stored]
        dropped = [i for c in batch for i in c.dropped]
        entries = [e for c in batch for e in c.entries]
        present: set[str] = set()
        if stored or dropped or entries:
            present = self.content.repo.record_page_writes(self.content_id, self.store_id, stored, dropped, entries)
        lost = [{digest for _, digest, _ in c.entries if digest not in present} for c in batch]
        lines = "".join(line for c, missing in zip(batch, lost) if not missing for line in c.ledger)
        if lines:
            os.write(self._ledger, lines.encode())
            os.fdatasync(self._ledger)
        return lost

    def _chunk_bytes(self, idx: int) -> bytes:
        size = min(CHUNK_SIZE, self.size - idx * CHUNK_SIZE)
        entry = self.manifest.get(idx)
        if entry is None:
            return bytes(size)
        return self.content.fetch(entry[0], [self.store_id])[1]

    def _punch(self, offset: int, length: int) -> None:
        if _libc.fallocate(self._overlay, _PUNCH_HOLE, ctypes.c_long(offset), ctypes.c_long(length)) != 0:
            os.pwrite(self._overlay, bytes(length), offset)  # a file system without hole punching
