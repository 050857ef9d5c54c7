"""A disk image received as a stream of bytes, stored as it arrives: no spool file.

Raw disks and fixed VHDs are read front to back, so their chunks can be stored as soon as they
are complete. A fixed VHD is the disk followed by a 512-byte footer, and whether the body is one
is known only at its end, so the last 512 bytes received are always held back: at the end they
are either the footer (checked, then dropped) or the disk's last bytes.

Dynamic VHDs (a footer copy at offset 0, blocks found through a table) and qcow2 (magic
"QFI\\xfb") need random access; `needs_random_access` tells the caller to spool those to a file
and ingest that as before.

    image = StreamingImage(writer, declared_format)   # after needs_random_access(head, fmt) is False
    image.feed(piece) ...                              # in order, any sizes
    fmt, virtual_size = image.finish()                 # DiskFormatError if the body is not usable
"""

from __future__ import annotations

from collections import deque
from typing import Iterable

from .chunks import CHUNK_SIZE
from .disk_image import DiskFormatError
from .formats import check_disk_size
from .qcow2 import MAGIC as QCOW2_MAGIC
from .vhd import DISK_FIXED, DISK_TYPE_NAMES, FOOTER_COOKIE, FOOTER_SIZE, VhdFooter
from .writer import ContentWriter

STREAMED_FORMATS = (None, "raw", "vhd", "vhd-fixed")
HEAD_BYTES = max(len(QCOW2_MAGIC), len(FOOTER_COOKIE))


def detected_at_head(head: bytes) -> str | None:
    """The format the first bytes prove: "qcow2", "vhd" (a dynamic VHD's footer copy) or None."""
    if head[:len(QCOW2_MAGIC)] == QCOW2_MAGIC:
        return "qcow2"
    if head[:len(FOOTER_COOKIE)] == FOOTER_COOKIE:
        return "vhd"
    return None


def needs_random_access(head: bytes, fmt: str | None) -> bool:
    """True when the body must be spooled: a declared or detected dynamic VHD or qcow2.

    A body declared raw that starts like a VHD or qcow2 is refused at once."""
    found = detected_at_head(head)
    if fmt == "raw" and found is not None:
        raise DiskFormatError(f"declared raw, but the file is a {found} image")
    return fmt not in STREAMED_FORMATS or found is not None


class StreamingImage:
    def __init__(self, writer: ContentWriter, fmt: str | None, whole_sectors: bool = True) -> None:
        """`whole_sectors`: refuse what is not a disk of whole 512-byte sectors (formats.check_disk_size)."""
        if fmt not in STREAMED_FORMATS:
            raise ValueError(f"a {fmt} image cannot be streamed")
        self.writer = writer
        self.fmt = fmt
        self.whole_sectors = whole_sectors
        self.received = 0
        # What is not a whole chunk yet, and the last FOOTER_SIZE bytes: views of the pieces fed,
        # so a chunk within one piece is stored without a copy and one across pieces with one.
        self._pieces: deque[memoryview] = deque()
        self._held = 0
        self._next = 0  # index of the next chunk

    def feed(self, data: bytes) -> None:
        self.feed_all((data,))

    def feed_all(self, pieces: Iterable[bytes]) -> None:
        """Take the next pieces of the body (bytes: they are kept as they are, not copied)."""
        for piece in pieces:
            if piece:
                self._pieces.append(memoryview(piece if type(piece) is bytes else bytes(piece)))
                self._held += len(piece)
                self.received += len(piece)
        while self._held >= CHUNK_SIZE + FOOTER_SIZE:
            self.writer.add(self._next, self._take(CHUNK_SIZE))
            self._next += 1

    def finish(self) -> tuple[str, int]:
        """Store the rest; (format, virtual size). Raises DiskFormatError for a body that is not
        a whole raw disk or fixed VHD (the caller then aborts the writer)."""
        held = bytearray().join(self._pieces)  # less than a chunk and a footer
        self._pieces.clear()
        tail = bytes(held[-FOOTER_SIZE:])
        is_vhd = tail[:len(FOOTER_COOKIE)] == FOOTER_COOKIE and len(tail) == FOOTER_SIZE
        if self.fmt == "raw" and is_vhd:
            raise DiskFormatError("declared raw, but the file is a vhd image")
        if self.fmt in ("vhd", "vhd-fixed") and not is_vhd:
            raise DiskFormatError(f"not a VHD: footer cookie is {tail[:len(FOOTER_COOKIE)]!r} "
                                  f"(expected {FOOTER_COOKIE!r})")
        if is_vhd:
            virtual_size = self._check_footer(VhdFooter.parse(tail))
            del held[-FOOTER_SIZE:]
            fmt = "vhd-fixed"
        else:
            virtual_size, fmt = self.received, "raw"
        if self.whole_sectors:
            check_disk_size(_Received(held, fmt, virtual_size))
        with memoryview(held) as view:
            for start in range(0, len(held), CHUNK_SIZE):
                self.writer.add(self._next, bytes(view[start:start + CHUNK_SIZE]))
                self._next += 1
        return fmt, virtual_size

    def _check_footer(self, footer: VhdFooter) -> int:
        data = self.received - FOOTER_SIZE
        if footer.disk_type != DISK_FIXED:
            name = DISK_TYPE_NAMES.get(footer.disk_type, "unknown")
            raise DiskFormatError(f"the footer at the end describes a {name} VHD, but the file does not start "
                                  "with the footer copy such a VHD has: it is damaged or cut short")
        if footer.current_size != data:
            problem = "file is truncated" if footer.current_size > data else "fixed VHD size mismatch"
            raise DiskFormatError(f"{problem}: the fixed VHD's footer says {footer.current_size} bytes of data, "
                                  f"but {data} precede the footer")
        return data

    def _take(self, length: int):
        """The next `length` held bytes (`length` <= what is held): a view of one piece when they
        lie within it, else the pieces' parts joined."""
        self._held -= length
        pieces = self._pieces
        first = pieces[0]
        if len(first) >= length:
            if len(first) == length:
                return pieces.popleft()
            pieces[0] = first[length:]
            return first[:length]
        parts = []
        while length:
            piece = pieces.popleft()
            if len(piece) > length:
                pieces.appendleft(piece[length:])
                piece = piece[:length]
            parts.append(piece)
            length -= len(piece)
        return b"".join(parts)


class _Received:
    """The image received so far, as the disk size rule (formats.check_disk_size) reads it: only
    the bytes still held (the last ones) can be read."""

    def __init__(self, held: bytearray, fmt: str, virtual_size: int) -> None:
        self.format, self.virtual_size = fmt, virtual_size
        self._held, self._held_from = held, virtual_size - len(held)

    def read(self, offset: int, length: int) -> bytes:
        start = offset - self._held_from
        return bytes(self._held[start:start + length])
