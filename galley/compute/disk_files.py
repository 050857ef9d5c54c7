"""Copy-on-write disk files for running machines, over the chunk store.

    root/bases/<content_id>.raw          read-only, sparse: a content's data chunks, written once
    root/disks/<disk_key>/overlay.qcow2  the machine's writes (qcow2, backing file = a base)
    root/disks/<disk_key>/state.json     {"content_id": what the overlay represents, "base": its base}

A base is shared by every overlay over the same content, so a VM from a 30 GiB image with
1 GiB of data costs that 1 GiB once on this host plus what its guest writes. Capture reads only
what the guest changed (the overlay's own clusters, found with `qemu-img map`); every other
chunk keeps the digest it had in the content the overlay started from, so capturing an
unchanged disk stores nothing new. A capture while QEMU has the overlay open is refused (QEMU
holds its write lock), so the disk must be stopped first.
"""
from __future__ import annotations

import fcntl
import json
import os
import shutil
import subprocess
from contextlib import contextmanager
from pathlib import Path

from ..content.chunks import CHUNK_SIZE
from ..content.disk_image import pread_exact, pwrite_sparse
from ..content.engine import ContentEngine
from ..content.qcow2 import qemu_img

OVERLAY = "overlay.qcow2"
STATE = "state.json"


class DiskFileError(RuntimeError):
    """qemu-img failed on a disk file, or the disk is in use by a running machine."""


class DiskFiles:
    def __init__(self, root: Path, engine: ContentEngine) -> None:
        self.root = Path(root)
        self.engine = engine
        self.bases = self.root / "bases"
        self.disks = self.root / "disks"

    # ---- public ---------------------------------------------------------------------------------
    def open(self, disk_key: str, content_id: str, stores: list[str]) -> Path:
        """The qcow2 overlay for the disk, over a base made from `content_id`; an overlay that
        already represents `content_id` is kept as it is (with whatever the guest wrote since)."""
        folder = self._disk_folder(disk_key)
        overlay = folder / OVERLAY
        with self._locked(folder.parent / f".{disk_key}.lock"):
            state = self._state(disk_key)
            if state and state.get("content_id") == content_id and overlay.is_file():
                return overlay
            base = self._base(content_id, stores)
            folder.mkdir(parents=True, exist_ok=True)
            partial = folder / f"{OVERLAY}.partial"
            partial.unlink(missing_ok=True)
            _qemu_img(["create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(base.resolve()), str(partial)])
            os.replace(partial, overlay)
            self._write_state(disk_key, {"content_id": content_id, "base": content_id})
        if state and state.get("base") != content_id:
            self._drop_unused_base(state.get("base"))
        return overlay

    def capture(self, disk_key: str, store_id: str, attach: tuple[str, int]) -> str:
        """Store the disk's current bytes as a new content attached to `attach`; returns its id."""
        folder = self._disk_folder(disk_key)
        with self._locked(folder.parent / f".{disk_key}.lock"):
            state = self._state(disk_key)
            if not state or not (folder / OVERLAY).is_file():
                raise DiskFileError(f"disk {disk_key} has no overlay to capture")
            content_id = self._capture(folder / OVERLAY, self.bases / f"{state['base']}.raw",
                                       state["content_id"], store_id, attach)
            self._write_state(disk_key, {**state, "content_id": content_id})
            return content_id

    def drop(self, disk_key: str) -> None:
        """Remove the disk's overlay, and its base when no other overlay uses it."""
        folder = self._disk_folder(disk_key)
        with self._locked(folder.parent / f".{disk_key}.lock"):
            state = self._state(disk_key)
            shutil.rmtree(folder, ignore_errors=True)
        (folder.parent / f".{disk_key}.lock").unlink(missing_ok=True)
        if state:
            self._drop_unused_base(state.get("base"))

    def has(self, disk_key: str) -> bool:
        """Whether the disk has an overlay here (a machine ran on it since it was last dropped)."""
        return (self._disk_folder(disk_key) / OVERLAY).is_file()

    def usage(self) -> dict:
        """Bytes allocated on this host by bases and by overlays (not their apparent sizes)."""
        def allocated(paths):
            return sum(path.stat().st_blocks * 512 for path in paths if path.is_file())
        bases = list(self.bases.glob("*.raw")) if self.bases.is_dir() else []
        overlays = list(self.disks.glob(f"*/{OVERLAY}")) if self.disks.is_dir() else []
        return {"bases": len(bases), "base_bytes": allocated(bases),
                "overlays": len(overlays), "overlay_bytes": allocated(overlays)}

    # ---- bases ------------------------------------------------------------------------------------
    def _base(self, content_id: str, stores: list[str]) -> Path:
        path = self.bases / f"{_plain(content_id)}.raw"
        if path.is_file():
            return path
        self.bases.mkdir(parents=True, exist_ok=True)
        with self._locked(self.bases / f".{content_id}.lock"):
            if path.is_file():
                return path
            reader = self.engine.reader(content_id, stores)
            partial = path.with_suffix(".partial")
            fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
            try:
                os.ftruncate(fd, reader.virtual_size)
                for first, last in _runs(sorted(reader.manifest)):
                    position = first * CHUNK_SIZE
                    for piece in reader.pieces(position, (last + 1) * CHUNK_SIZE):
                        pwrite_sparse(fd, position, piece)
                        position += len(piece)
                os.fsync(fd)
            except BaseException:
                os.close(fd)
                partial.unlink(missing_ok=True)
                raise
            os.close(fd)
            os.chmod(partial, 0o444)
            os.replace(partial, path)
        return path

    def _drop_unused_base(self, content_id: str | None) -> None:
        if not content_id:
            return
        if self.disks.is_dir():
            for state_file in self.disks.glob(f"*/{STATE}"):
                try:
                    if json.loads(state_file.read_text()).get("base") == content_id:
                        return
                except (OSError, ValueError):
                    return  # unreadable: keep the base rather than pull it from under a disk
        (self.bases / f"{_plain(content_id)}.raw").unlink(missing_ok=True)
        (self.bases / f".{content_id}.lock").unlink(missing_ok=True)

    # ---- capture ------------------------------------------------------------------------------------
    def _capture(self, overlay: Path, base: Path, previous: str, store_id: str, attach: tuple[str, int]) -> str:
        size = int(json.loads(_qemu_img(["info", "-f", "qcow2", "--output=json", str(overlay)]))["virtual-size"])
        layout = json.loads(_qemu_img(["map", "-f", "qcow2", "--output=json", str(overlay)]))
        repo = self.engine.repo
        old = repo.content(previous)
        old_manifest = repo.manifest(previous) if old else {}
        old_size = old["virtual_size"] if old else 0
        # A chunk is dirty when the guest wrote into it (overlay clusters, depth 0) or it lies
        # where the disk grew; the others are, byte for byte, the previous content's chunks.
        dirty, holding_data = set(), set()
        for entry in layout:
            span = range(entry["start"] // CHUNK_SIZE, (entry["start"] + entry["length"] - 1) // CHUNK_SIZE + 1)
            if entry["depth"] == 0:
                dirty.update(span)
            if entry.get("data") and not entry.get("zero"):
                holding_data.update(span)
        if old_size != size:
            dirty.update(range(min(old_size, size) // CHUNK_SIZE, -(-size // CHUNK_SIZE)))
        if not old:
            dirty.update(range(-(-size // CHUNK_SIZE)))
        clean = {idx: entry for idx, entry in old_manifest.items() if idx not in dirty and idx * CHUNK_SIZE < size}

        writer = self.engine.writer(store_id, size)
        try:
            held = repo.held(store_id, sorted({digest for digest, _ in clean.values()}))
            reused = [(idx, digest, length) for idx, (digest, length) in sorted(clean.items()) if digest in held]
            present = repo.add_chunks(writer.content_id, store_id, reused) if reused else set()
            if present != {digest for _, digest, _ in reused}:
                raise _Retry()
            # a chunk that overlaps no data in the map is all zeros: nothing to read or store
            to_read = sorted((dirty & holding_data) | {idx for idx, (digest, _) in clean.items() if digest not in held})
            with _OverlayReader(overlay, base, layout, size) as source:
                for idx in to_read:
                    start = idx * CHUNK_SIZE
                    writer.add(idx, source.read(start, min(CHUNK_SIZE, size - start)))
            return writer.finish(attach)
        except _Retry:
            writer.abort()
            return self._capture(overlay, base, "", store_id, attach)  # nothing reused: read it all
        except BaseException:
            writer.abort()
            raise

    # ---- small helpers ----------------------------------------------------------------------------------
    def _disk_folder(self, disk_key: str) -> Path:
        return self.disks / _plain(disk_key)

    def _state(self, disk_key: str) -> dict | None:
        try:
            return json.loads((self._disk_folder(disk_key) / STATE).read_text())
        except (FileNotFoundError, ValueError):
            return None

    def _write_state(self, disk_key: str, state: dict) -> None:
        path = self._disk_folder(disk_key) / STATE
        partial = path.with_suffix(".partial")
        partial.write_text(json.dumps(state))
        os.replace(partial, path)

    @contextmanager
    def _locked(self, path: Path):
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            yield


class _Retry(Exception):
    """A chunk to reuse went from the store between looking and recording."""


class _OverlayReader:
    """The bytes a guest sees, read straight from the overlay's own clusters and the raw base,
    as `qemu-img map` places them (depth 0: the overlay file, depth 1: the base; zero: zeros)."""

    def __init__(self, overlay: Path, base: Path, layout: list[dict], size: int) -> None:
        self.layout = layout
        self.size = size
        self.files = [os.open(overlay, os.O_RDONLY | os.O_CLOEXEC)]
        self.files.append(os.open(base, os.O_RDONLY | os.O_CLOEXEC) if base.is_file() else -1)

    def read(self, offset: int, length: int) -> bytes:
        out = bytearray(length)
        end = offset + length
        for entry in self._entries(offset, end):
            if not entry.get("data") or entry.get("zero"):
                continue
            if "offset" not in entry or entry["depth"] > 1:
                raise DiskFileError(f"cannot read the overlay directly at {entry['start']} (compressed or nested)")
            lo, hi = max(offset, entry["start"]), min(end, entry["start"] + entry["length"])
            fd = self.files[entry["depth"]]
            out[lo - offset:hi - offset] = pread_exact(fd, entry["offset"] + lo - entry["start"], hi - lo, "disk data")
        return bytes(out)

    def _entries(self, start: int, end: int):
        # layout is sorted by start; bisect to the first entry that reaches `start`
        lo, hi = 0, len(self.layout)
        while lo < hi:
            mid = (lo + hi) // 2
            if self.layout[mid]["start"] + self.layout[mid]["length"] <= start:
                lo = mid + 1
            else:
                hi = mid
        for entry in self.layout[lo:]:
            if entry["start"] >= end:
                break
            yield entry

    def __enter__(self) -> _OverlayReader:
        return self

    def __exit__(self, *exc_info) -> None:
        for fd in self.files:
            if fd >= 0:
                os.close(fd)


def _runs(indexes: list[int]):
    """(first, last) of each run of consecutive integers."""
    first = last = None
    for idx in indexes:
        if last is not None and idx == last + 1:
            last = idx
            continue
        if first is not None:
            yield first, last
        first = last = idx
    if first is not None:
        yield first, last


def _plain(name: str) -> str:
    if not name or "/" in name or name.startswith("."):
        raise ValueError(f"{name!r} is not a plain file name")
    return name


def _qemu_img(args: list[str]) -> str:
    done = subprocess.run([qemu_img(), *args], capture_output=True, text=True, stdin=subprocess.DEVNULL,
                          env=dict(os.environ, LC_ALL="C"))
    if done.returncode != 0:
        message = (done.stderr or done.stdout).strip().removeprefix("qemu-img: ")
        if "lock" in message:
            raise DiskFileError(f"the disk file is in use by a running machine: {message}")
        raise DiskFileError(f"qemu-img {args[0]} failed: {message}")
    return done.stdout
