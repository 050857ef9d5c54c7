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

Writes to one chunk are serialized by a per-chunk lock (several chunks: in ascending order), so
overlapping writers give the result of some order of their writes, never a mix inside a page.
`fold()` (at endGetAccess) stores every overlay chunk into the content and returns it; the
caller finishes it as the disk's content. Memory held is a write's body plus a chunk or two.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from bisect import bisect_left, bisect_right
from pathlib import Path

from ..content import chunks
from ..content.chunks import CHUNK_SIZE

PAGE = 512
_ZERO_PAGE = bytes(PAGE)
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
_PUNCH_HOLE = 0x01 | 0x02  # FALLOC_FL_KEEP_SIZE | FALLOC_FL_PUNCH_HOLE


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


def _data_runs(data, base: int) -> tuple[list[tuple[int, int]], list[tuple[int, int]]]:
    """(non-zero runs, zero runs) of 512-byte pages of `data`, as absolute [a, b) offsets."""
    view = memoryview(data)
    if chunks.is_zero(view) if len(view) <= CHUNK_SIZE else not any(view):
        return [], [(base, base + len(view))]
    if _ZERO_PAGE not in (data if isinstance(data, bytes) else view.tobytes()):
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


class PageStore:
    def __init__(self, folder: Path, size: int, content, content_id: str, store_id: str) -> None:
        self.folder, self.size = folder, size
        self.content, self.content_id, self.store_id = content, content_id, store_id
        self.store = content.locations.open(store_id)
        self.valid = PageSet()
        self.overlay_chunks: set[int] = set()
        self._locks: dict[int, threading.Lock] = {}
        self._guard = threading.Lock()
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
        self._apply(offset, len(data), memoryview(data))

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
            self._log("R\n")
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
        for idx in sorted(self.overlay_chunks):
            with self._lock(idx):
                start = idx * CHUNK_SIZE
                data = os.pread(self._overlay, min(CHUNK_SIZE, self.size - start), start)
                self._store_whole(idx, data)
        tail = virtual_size // CHUNK_SIZE
        if virtual_size % CHUNK_SIZE and tail in self.manifest:
            data = self.read(tail * CHUNK_SIZE, virtual_size - tail * CHUNK_SIZE)
            if chunks.is_zero(data):
                self.content.repo.drop_chunks(self.content_id, [tail])
            else:
                self._put_chunk(tail, data)
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

    def _apply(self, offset: int, length: int, data: memoryview | None) -> None:
        end = offset + length
        for idx in range(offset // CHUNK_SIZE, (end - 1) // CHUNK_SIZE + 1):
            start = idx * CHUNK_SIZE
            chunk_end = min(start + CHUNK_SIZE, self.size)
            lo, hi = max(offset, start), min(end, chunk_end)
            piece = data[lo - offset:hi - offset] if data is not None else None
            with self._lock(idx):
                if lo == start and hi == chunk_end:
                    self._store_whole(idx, piece)
                else:
                    self._write_partial(idx, lo, piece, hi - lo)
        os.fdatasync(self._ledger)

    def _store_whole(self, idx: int, data) -> None:
        start = idx * CHUNK_SIZE
        if data is None or chunks.is_zero(data):
            if idx in self.manifest:
                self.content.repo.drop_chunks(self.content_id, [idx])
                del self.manifest[idx]
            nonzero, zero = [], [(start, start + len(data) if data is not None else self.size - start)]
        else:
            data = bytes(data)
            self._put_chunk(idx, data)
            nonzero, zero = _data_runs(data, start)
        lines = [f"M {idx}\n"] if idx in self.overlay_chunks else []
        if idx in self.overlay_chunks:
            self.overlay_chunks.discard(idx)
            self._punch(start, min(CHUNK_SIZE, self.size - start))
        self._record(lines, nonzero, zero)

    def _put_chunk(self, idx: int, data: bytes) -> None:
        """Chunk `idx` of the content is `data`: referenced first, then stored if the store lacks
        it (the order ContentEngine.write_batch keeps for garbage collection's sake)."""
        digest = chunks.digest_of(data)
        if not self.content.repo.set_chunk(self.content_id, self.store_id, idx, digest, len(data)):
            codec, payload = chunks.encode_parts(data)
            if hasattr(self.store, "put_parts"):
                self.store.put_parts(digest, (codec, payload))
            else:
                self.store.put(digest, codec + bytes(payload))
            self.content.repo.register_stored(self.store_id, [(digest, 1 + len(payload), len(data))])
        self.manifest[idx] = (digest, len(data))

    def _write_partial(self, idx: int, offset: int, data, length: int) -> None:
        lines = []
        if idx not in self.overlay_chunks:
            start = idx * CHUNK_SIZE
            self._punch(start, min(CHUNK_SIZE, self.size - start))
            if idx in self.manifest:
                os.pwrite(self._overlay, self._chunk_bytes(idx), start)
            os.fdatasync(self._overlay)
            self._log(f"O {idx}\n")  # from here on the overlay holds this chunk
            self.overlay_chunks.add(idx)
        if data is None:
            nonzero, zero = [], [(offset, offset + length)]
        else:
            nonzero, zero = _data_runs(data, offset)
        for a, b in nonzero:
            os.pwrite(self._overlay, data[a - offset:b - offset], a)
        for a, b in zero:
            self._punch(a, b - a)
        os.fdatasync(self._overlay)
        self._record(lines, nonzero, zero)

    def _record(self, lines: list[str], nonzero, zero) -> None:
        lines += [f"S {a} {b}\n" for a, b in nonzero] + [f"C {a} {b}\n" for a, b in zero]
        with self._guard:
            self._log("".join(lines))
            for a, b in nonzero:
                self.valid.add(a, b)
            for a, b in zero:
                self.valid.remove(a, b)

    def _log(self, text: str) -> None:
        if text:
            os.write(self._ledger, text.encode())

    def _chunk_bytes(self, idx: int) -> bytes:
        size = min(CHUNK_SIZE, self.size - idx * CHUNK_SIZE)
        entry = self.manifest.get(idx)
        if entry is None:
            return bytes(size)
        return self.content.fetch(entry[0], [self.store_id])[1]

    def _punch(self, offset: int, length: int) -> None:
        if _libc.fallocate(self._overlay, _PUNCH_HOLE, ctypes.c_long(offset), ctypes.c_long(length)) != 0:
            os.pwrite(self._overlay, bytes(length), offset)  # a file system without hole punching
