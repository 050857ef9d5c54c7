"""qcow2 images, through the real ``qemu-img``.

``qemu-img info`` gives the virtual size, ``qemu-img map`` the allocated extents, and data is
read from a sparse raw copy made by ``qemu-img convert`` on first use (in ``tmp_dir``). Every
qemu-img call names its input format with ``-f`` so nothing is ever probed. Images with a
backing file or an external data file are refused: following them would read files the image's
author chose, not the image.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import weakref
from typing import Iterator

from .disk_image import DiskFormatError, DiskImage, Extent, ImageSource, merge_extents, pread_exact
from .raw import write_raw

MAGIC = b"QFI\xfb"


class QemuImgError(RuntimeError):
    """qemu-img is missing or failed for a reason other than a bad input image."""


def qemu_img() -> str:
    path = shutil.which("qemu-img")
    if path is None:
        raise QemuImgError("qemu-img is not installed (apt-get install -y qemu-utils)")
    return path


def _run(args: list[str]) -> subprocess.CompletedProcess:
    env = dict(os.environ, LC_ALL="C")
    return subprocess.run([qemu_img(), *args], capture_output=True, text=True, env=env,
                          stdin=subprocess.DEVNULL)


def _qemu_message(proc: subprocess.CompletedProcess) -> str:
    text = (proc.stderr or proc.stdout or "").strip()
    lines = [line.removeprefix("qemu-img: ") for line in text.splitlines() if line.strip()]
    return "; ".join(lines) or f"qemu-img exited with status {proc.returncode}"


def _run_on_image(args: list[str]) -> str:
    proc = _run(args)
    if proc.returncode != 0:
        raise DiskFormatError(f"invalid qcow2 image: {_qemu_message(proc)}")
    return proc.stdout


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _release(state: dict) -> None:
    """Close and delete the raw copy (also run when an unclosed image is garbage-collected)."""
    if state["fd"] >= 0:
        os.close(state["fd"])
        state["fd"] = -1
    if state["path"] is not None:
        _remove(state["path"])
        state["path"] = None


class Qcow2Image(DiskImage):
    format = "qcow2"

    def __init__(self, path: str | os.PathLike, *, tmp_dir: str | os.PathLike | None = None):
        self.path = os.fspath(path)
        self._tmp_dir = os.fspath(tmp_dir) if tmp_dir is not None else None
        # the raw copy made on first read: {"fd", "path"}, released by close() or the finalizer
        self._raw = {"fd": -1, "path": None}
        self._finalizer = weakref.finalize(self, _release, self._raw)
        with open(self.path, "rb") as f:
            magic = f.read(4)
        if magic != MAGIC:
            raise DiskFormatError(f"not a qcow2 image: magic is {magic!r} (expected {MAGIC!r})")
        info = json.loads(_run_on_image(["info", "-f", "qcow2", "--output=json", self.path]))
        if info.get("backing-filename") or info.get("full-backing-filename"):
            raise DiskFormatError(
                f"qcow2 images with a backing file are not supported (backing file "
                f"{info.get('backing-filename')!r}); flatten it with qemu-img convert first"
            )
        specific = (info.get("format-specific") or {}).get("data") or {}
        if specific.get("data-file"):
            raise DiskFormatError(
                f"qcow2 images with an external data file are not supported ({specific['data-file']!r})"
            )
        if specific.get("corrupt"):
            raise DiskFormatError("qcow2 image is marked corrupt; repair it with qemu-img check -r all")
        self.virtual_size = int(info["virtual-size"])
        self._map: list[Extent] | None = None

    def extents(self) -> Iterator[Extent]:
        if self._map is None:
            self._map = list(self._load_map())
        return iter(self._map)

    def _load_map(self) -> Iterator[Extent]:
        entries = json.loads(_run_on_image(["map", "-f", "qcow2", "--output=json", self.path]))
        pos = 0
        out = []
        for entry in entries:
            start, length = int(entry["start"]), int(entry["length"])
            if start != pos:
                raise DiskFormatError(f"qemu-img map skipped from {pos} to {start}")
            has_data = bool(entry.get("data")) and not entry.get("zero") and entry.get("present", True)
            out.append((start, length, has_data))
            pos = start + length
        if pos != self.virtual_size:
            raise DiskFormatError(f"qemu-img map covers {pos} bytes of a {self.virtual_size}-byte image")
        return merge_extents(out)

    def _raw_fd(self) -> int:
        if self._raw["fd"] < 0:
            if not self._finalizer.alive:
                raise ValueError("read from a closed disk image")
            fd, raw_path = tempfile.mkstemp(prefix="galley-qcow2-", suffix=".raw", dir=self._tmp_dir)
            os.close(fd)
            self._raw["path"] = raw_path
            proc = _run(["convert", "-f", "qcow2", "-O", "raw", self.path, raw_path])
            if proc.returncode != 0:
                _release(self._raw)
                raise DiskFormatError(f"invalid qcow2 image: {_qemu_message(proc)}")
            self._raw["fd"] = os.open(raw_path, os.O_RDONLY | os.O_CLOEXEC)
        return self._raw["fd"]

    def read(self, offset: int, length: int) -> bytes:
        self._check_range(offset, length)
        if length == 0:
            return b""
        return pread_exact(self._raw_fd(), offset, length, "converted qcow2 data")

    def close(self) -> None:
        self._finalizer()


def write_qcow2(source: ImageSource, path: str | os.PathLike, *,
                tmp_dir: str | os.PathLike | None = None) -> None:
    """Write a sparse raw copy in ``tmp_dir``, then ``qemu-img convert -f raw -O qcow2``."""
    fd, raw_path = tempfile.mkstemp(prefix="galley-export-", suffix=".raw",
                                    dir=os.fspath(tmp_dir) if tmp_dir is not None else None)
    os.close(fd)
    try:
        write_raw(source, raw_path, sync=False)
        proc = _run(["convert", "-f", "raw", "-O", "qcow2", raw_path, os.fspath(path)])
        if proc.returncode != 0:
            raise QemuImgError(f"qemu-img convert to qcow2 failed: {_qemu_message(proc)}")
    finally:
        _remove(raw_path)
