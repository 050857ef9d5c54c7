"""Disk image formats: detect, open as extents, write.

    image = open_disk(path)               # raw, VHD (fixed/dynamic) or qcow2, detected
    for offset, length, has_data in image.extents(): ...
    data = image.read(offset, length)     # zeros where nothing is allocated
    write_image(image, "vhd-dynamic", out_path)

Formats: "raw", "vhd-fixed", "vhd-dynamic", "qcow2" ("vhd" means either VHD when reading and
a fixed VHD when writing, which is what Azure accepts for upload).
"""

from __future__ import annotations

import os
import uuid

from .disk_image import DiskFormatError, DiskImage, Extent, ImageSource
from .qcow2 import MAGIC as QCOW2_MAGIC
from .qcow2 import Qcow2Image, QemuImgError, write_qcow2
from .raw import RawImage, write_raw
from .vhd import FOOTER_COOKIE, FOOTER_SIZE, VhdImage, write_vhd_dynamic, write_vhd_fixed

SECTOR = 512

__all__ = [
    "DiskFormatError", "DiskImage", "Extent", "ImageSource", "QemuImgError",
    "READ_FORMATS", "WRITE_FORMATS", "check_disk_size", "detect_format", "open_disk", "write_image",
]

READ_FORMATS = ("raw", "vhd", "vhd-fixed", "vhd-dynamic", "qcow2")
WRITE_FORMATS = ("raw", "vhd", "vhd-fixed", "vhd-dynamic", "qcow2")


def detect_format(path: str | os.PathLike) -> str:
    """ "qcow2" (magic QFI\\xfb), "vhd" (a "conectix" footer at the end, or at the start: a
    dynamic VHD whose end is missing) or "raw"."""
    with open(path, "rb") as f:
        head = f.read(FOOTER_SIZE)
        size = f.seek(0, os.SEEK_END)
        if size >= FOOTER_SIZE:
            f.seek(size - FOOTER_SIZE)
            tail = f.read(FOOTER_SIZE)
        else:
            tail = b""
    if head[:4] == QCOW2_MAGIC:
        return "qcow2"
    if tail[:8] == FOOTER_COOKIE or head[:8] == FOOTER_COOKIE:
        return "vhd"
    return "raw"


def open_disk(path: str | os.PathLike, fmt: str | None = None, *,
              tmp_dir: str | os.PathLike | None = None) -> DiskImage:
    """Open a disk image for reading. ``fmt`` None detects the format; a declared ``fmt``
    the file contradicts raises :class:`DiskFormatError`. ``tmp_dir`` holds the raw copy a
    qcow2 image is read through."""
    detected = detect_format(path)
    if fmt is None:
        fmt = detected
    if fmt not in READ_FORMATS:
        raise DiskFormatError(f"unknown disk format {fmt!r} (expected one of {', '.join(READ_FORMATS)})")
    if fmt == "raw":
        if detected != "raw":
            raise DiskFormatError(f"declared raw, but the file is a {detected} image")
        return RawImage(path)
    if fmt == "qcow2":
        return Qcow2Image(path, tmp_dir=tmp_dir)
    return VhdImage(path, expect=None if fmt == "vhd" else fmt)


def check_disk_size(image: DiskImage) -> None:
    """A disk holds whole 512-byte sectors, at least one: what a VHD can carry and a VM can read.
    Raises :class:`DiskFormatError` otherwise, saying so when the file looks like a fixed VHD whose
    footer was cut short (its data, then the start of a footer)."""
    size = image.virtual_size
    if size == 0:
        raise DiskFormatError("the image is empty (0 bytes); a disk holds at least one 512-byte sector")
    partial = size % SECTOR
    if not partial:
        return
    cut_vhd = image.format == "raw" and image.read(size - partial, min(partial, 8)) == FOOTER_COOKIE[:min(partial, 8)]
    hint = (f"; it ends with {partial} bytes of a VHD footer: a fixed VHD whose last {SECTOR - partial} "
            "bytes were cut off (upload the whole file)") if cut_vhd else ""
    raise DiskFormatError(f"the image is {size:,} bytes, not a whole number of {SECTOR}-byte sectors{hint}")


def write_image(source: ImageSource, fmt: str, out_path: str | os.PathLike, *,
                tmp_dir: str | os.PathLike | None = None) -> None:
    """Write ``source`` (anything with ``virtual_size``, ``extents()`` and ``read()``) as
    ``fmt`` to ``out_path``. The file appears only when complete (written beside it under a
    temporary name, then renamed). Holes in the source stay holes; VHD needs a virtual size
    that is a multiple of 512 (else :class:`DiskFormatError`)."""
    writers = {
        "raw": write_raw,
        "vhd": write_vhd_fixed,
        "vhd-fixed": write_vhd_fixed,
        "vhd-dynamic": write_vhd_dynamic,
        "qcow2": lambda src, path: write_qcow2(src, path, tmp_dir=tmp_dir),
    }
    writer = writers.get(fmt)
    if writer is None:
        raise ValueError(f"cannot write disk format {fmt!r} (expected one of {', '.join(WRITE_FORMATS)})")
    out_path = os.fspath(out_path)
    partial = os.path.join(os.path.dirname(os.path.abspath(out_path)),
                           f".{os.path.basename(out_path)}.{uuid.uuid4().hex[:12]}.partial")
    os.close(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666))
    try:
        writer(source, partial)
        os.replace(partial, out_path)
    except BaseException:
        try:
            os.unlink(partial)
        except FileNotFoundError:
            pass
        raise
