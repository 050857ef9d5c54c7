"""VHD (Microsoft Virtual Hard Disk) images, fixed and dynamic.

Layout, from the VHD image format specification (all integers big-endian):

* fixed: the virtual disk's bytes, then a 512-byte footer.
* dynamic: a copy of the footer at offset 0, a 1024-byte dynamic disk header at the footer's
  ``data offset``, the block allocation table (BAT: one uint32 sector number per block,
  0xFFFFFFFF = not allocated), the blocks (each a sector bitmap padded to 512 bytes and then
  ``block size`` bytes of data), and the footer at the end of the file.

Sector bitmaps are honoured: a sector whose bit is 0 is not stored and reads as zeros.

About sizes and qemu: qemu's ``vpc`` driver takes a VHD's size from the CHS geometry in the
footer unless the creator application is one it knows to use ``current size`` (``win ``,
``qem2``, ``d2v ``, ``CTXS``, ``tap\\0``) or the geometry is the maximum one. CHS can only
express multiples of ``sectors per track * heads``, so with any other creator qemu would see a
disk smaller than the real one. Galley therefore writes the creator application ``win `` with
host OS ``Wi2k`` (what Hyper-V writes), and always reads ``current size`` itself.
"""

from __future__ import annotations

import os
import struct
import time
from array import array
from dataclasses import dataclass
from typing import Iterator

from .disk_image import (
    SECTOR,
    DiskFormatError,
    DiskImage,
    Extent,
    ImageSource,
    checked_extents,
    is_zero,
    merge_extents,
    pread_exact,
    pwrite_all,
    pwrite_sparse,
)
from .raw import file_extents, write_raw_fd

FOOTER_SIZE = 512
HEADER_SIZE = 1024
FOOTER_COOKIE = b"conectix"
HEADER_COOKIE = b"cxsparse"
DISK_FIXED, DISK_DYNAMIC, DISK_DIFFERENCING = 2, 3, 4
DISK_TYPE_NAMES = {0: "none", 1: "reserved (deprecated)", 2: "fixed", 3: "dynamic", 4: "differencing",
                   5: "reserved (deprecated)", 6: "reserved (deprecated)"}
NO_DATA_OFFSET = 0xFFFFFFFFFFFFFFFF
UNALLOCATED = 0xFFFFFFFF
DEFAULT_BLOCK_SIZE = 2 * 1024 * 1024
# The largest VHD Hyper-V and qemu accept: 0xFF000000 sectors = 2040 GiB.
MAX_VIRTUAL_SIZE = 0xFF000000 * SECTOR
VHD_EPOCH = 946684800  # 2000-01-01T00:00:00Z as a Unix time

CREATOR_APP = b"win "
CREATOR_VERSION = 0x000A0000
CREATOR_HOST_OS = b"Wi2k"

# cookie, features, format version, data offset, timestamp, creator app, creator version,
# creator host OS, original size, current size, cylinders, heads, sectors/track, disk type,
# checksum, unique id, saved state, reserved
_FOOTER = struct.Struct(">8sIIQI4sI4sQQHBBII16sB427s")
_FOOTER_CHECKSUM_AT = 64
# cookie, data offset, table offset, header version, max table entries, block size, checksum,
# parent unique id, parent timestamp, reserved, parent unicode name, parent locators, reserved
_HEADER = struct.Struct(">8sQQIIII16sI4s512s192s256s")
_HEADER_CHECKSUM_AT = 36
assert _FOOTER.size == FOOTER_SIZE and _HEADER.size == HEADER_SIZE


def vhd_checksum(data: bytes, checksum_at: int) -> int:
    """Ones' complement of the byte sum, with the 4-byte checksum field counted as zero."""
    total = sum(data) - sum(data[checksum_at : checksum_at + 4])
    return ~total & 0xFFFFFFFF


def chs_geometry(virtual_size: int) -> tuple[int, int, int]:
    """(cylinders, heads, sectors per track) per the algorithm in the VHD specification."""
    total = virtual_size // SECTOR
    if total > 65535 * 16 * 255:
        total = 65535 * 16 * 255
    if total >= 65535 * 16 * 63:
        spt, heads = 255, 16
        cyl_heads = total // spt
    else:
        spt = 17
        cyl_heads = total // spt
        heads = max((cyl_heads + 1023) // 1024, 4)
        if cyl_heads >= heads * 1024 or heads > 16:
            spt, heads = 31, 16
            cyl_heads = total // spt
        if cyl_heads >= heads * 1024:
            spt, heads = 63, 16
            cyl_heads = total // spt
    return cyl_heads // heads, heads, spt


@dataclass(frozen=True)
class VhdFooter:
    disk_type: int
    current_size: int
    original_size: int
    data_offset: int
    cylinders: int
    heads: int
    sectors_per_track: int
    creator_app: bytes = CREATOR_APP
    creator_version: int = CREATOR_VERSION
    creator_host_os: bytes = CREATOR_HOST_OS
    timestamp: int = 0
    unique_id: bytes = bytes(16)
    features: int = 2
    format_version: int = 0x00010000
    saved_state: int = 0

    @classmethod
    def parse(cls, raw: bytes, where: str = "footer") -> "VhdFooter":
        if len(raw) < FOOTER_SIZE or raw[:8] != FOOTER_COOKIE:
            raise DiskFormatError(f"not a VHD: {where} cookie is {bytes(raw[:8])!r} (expected {FOOTER_COOKIE!r})")
        (_cookie, features, version, data_offset, timestamp, creator_app, creator_version, host_os,
         original_size, current_size, cyl, heads, spt, disk_type, checksum, unique_id, saved_state,
         _reserved) = _FOOTER.unpack(raw[:FOOTER_SIZE])
        computed = vhd_checksum(raw[:FOOTER_SIZE], _FOOTER_CHECKSUM_AT)
        if computed != checksum:
            raise DiskFormatError(
                f"VHD {where} checksum mismatch: stored 0x{checksum:08x}, computed 0x{computed:08x}"
            )
        return cls(disk_type=disk_type, current_size=current_size, original_size=original_size,
                   data_offset=data_offset, cylinders=cyl, heads=heads, sectors_per_track=spt,
                   creator_app=creator_app, creator_version=creator_version, creator_host_os=host_os,
                   timestamp=timestamp, unique_id=unique_id, features=features,
                   format_version=version, saved_state=saved_state)

    def pack(self) -> bytes:
        fields = (FOOTER_COOKIE, self.features, self.format_version, self.data_offset, self.timestamp,
                  self.creator_app, self.creator_version, self.creator_host_os, self.original_size,
                  self.current_size, self.cylinders, self.heads, self.sectors_per_track,
                  self.disk_type)
        unsummed = _FOOTER.pack(*fields, 0, self.unique_id, self.saved_state, bytes(427))
        return _FOOTER.pack(*fields, vhd_checksum(unsummed, _FOOTER_CHECKSUM_AT), self.unique_id,
                            self.saved_state, bytes(427))

    @classmethod
    def new(cls, disk_type: int, virtual_size: int) -> "VhdFooter":
        cyl, heads, spt = chs_geometry(virtual_size)
        return cls(disk_type=disk_type, current_size=virtual_size, original_size=virtual_size,
                   data_offset=FOOTER_SIZE if disk_type == DISK_DYNAMIC else NO_DATA_OFFSET,
                   cylinders=cyl, heads=heads, sectors_per_track=spt,
                   timestamp=max(0, int(time.time()) - VHD_EPOCH) & 0xFFFFFFFF,
                   unique_id=os.urandom(16))


@dataclass(frozen=True)
class DynamicHeader:
    table_offset: int
    max_table_entries: int
    block_size: int

    @classmethod
    def parse(cls, raw: bytes) -> "DynamicHeader":
        if raw[:8] != HEADER_COOKIE:
            raise DiskFormatError(
                f"not a dynamic VHD: dynamic disk header cookie is {bytes(raw[:8])!r} (expected {HEADER_COOKIE!r})"
            )
        fields = _HEADER.unpack(raw[:HEADER_SIZE])
        checksum = fields[6]
        computed = vhd_checksum(raw[:HEADER_SIZE], _HEADER_CHECKSUM_AT)
        if computed != checksum:
            raise DiskFormatError(
                f"VHD dynamic disk header checksum mismatch: stored 0x{checksum:08x}, computed 0x{computed:08x}"
            )
        return cls(table_offset=fields[2], max_table_entries=fields[4], block_size=fields[5])

    def pack(self) -> bytes:
        def fields(checksum):
            return (HEADER_COOKIE, NO_DATA_OFFSET, self.table_offset, 0x00010000,
                    self.max_table_entries, self.block_size, checksum, bytes(16), 0, bytes(4),
                    bytes(512), bytes(192), bytes(256))
        unsummed = _HEADER.pack(*fields(0))
        return _HEADER.pack(*fields(vhd_checksum(unsummed, _HEADER_CHECKSUM_AT)))


def bitmap_size(block_size: int) -> int:
    """Bytes of the sector bitmap before each block: one bit a sector, padded to a sector."""
    nbytes = -(-(block_size // SECTOR) // 8)
    return -(-nbytes // SECTOR) * SECTOR


def bitmap_runs(bitmap: bytes, sectors: int) -> list[tuple[int, int, bool]]:
    """``(first sector, sector count, present)`` runs of the first ``sectors`` bits (MSB first)."""
    full, rest = divmod(sectors, 8)
    head = bitmap[:full]
    tail_bits = (bitmap[full] >> (8 - rest)) if rest else 0
    if head.count(0xFF) == full and tail_bits == (1 << rest) - 1:
        return [(0, sectors, True)]
    if head.count(0) == full and tail_bits == 0:
        return [(0, sectors, False)]
    runs: list[list] = []

    def add(first: int, count: int, present: bool) -> None:
        if runs and runs[-1][2] is present:
            runs[-1][1] += count
        else:
            runs.append([first, count, present])

    for i in range(full):
        byte = bitmap[i]
        if byte == 0xFF or byte == 0:
            add(i * 8, 8, byte == 0xFF)
        else:
            for bit in range(8):
                add(i * 8 + bit, 1, bool(byte & (0x80 >> bit)))
    for bit in range(rest):
        add(full * 8 + bit, 1, bool(bitmap[full] & (0x80 >> bit)))
    return [tuple(r) for r in runs]


class VhdImage(DiskImage):
    """A fixed or dynamic VHD opened for reading. ``format`` is "vhd-fixed" or "vhd-dynamic"."""

    def __init__(self, path: str | os.PathLike, expect: str | None = None):
        self.path = os.fspath(path)
        self._fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            self._load()
            if expect is not None and expect != self.format:
                raise DiskFormatError(f"declared {expect} but the file is a {self.format} VHD")
        except BaseException:
            self.close()
            raise

    # -- opening ---------------------------------------------------------------------------

    def _load(self) -> None:
        fd = self._fd
        self.file_size = file_size = os.fstat(fd).st_size
        tail = os.pread(fd, FOOTER_SIZE, max(0, file_size - FOOTER_SIZE))
        if tail[:8] != FOOTER_COOKIE:
            self._explain_missing_footer(tail)
        self.footer = footer = VhdFooter.parse(tail)
        if footer.disk_type == DISK_DIFFERENCING:
            raise DiskFormatError("differencing VHDs are not supported")
        if footer.disk_type not in (DISK_FIXED, DISK_DYNAMIC):
            name = DISK_TYPE_NAMES.get(footer.disk_type, "unknown")
            raise DiskFormatError(f"unsupported VHD disk type {footer.disk_type} ({name})")
        size = footer.current_size
        if size % SECTOR:
            raise DiskFormatError(f"VHD current size {size} is not a multiple of {SECTOR} bytes")
        self.virtual_size = size
        self._data_end = file_size - FOOTER_SIZE  # where the footer starts
        if footer.disk_type == DISK_FIXED:
            self.format = "vhd-fixed"
            if file_size < size + FOOTER_SIZE:
                raise DiskFormatError(
                    f"file is truncated: the fixed VHD's footer says {size} bytes of data, "
                    f"but only {self._data_end} precede the footer"
                )
            if file_size > size + FOOTER_SIZE:
                raise DiskFormatError(
                    f"fixed VHD size mismatch: the footer says {size} bytes of data, but "
                    f"{self._data_end} precede the footer"
                )
        else:
            self.format = "vhd-dynamic"
            self._load_dynamic()

    def _explain_missing_footer(self, tail: bytes) -> None:
        """No footer at the end: a dynamic VHD cut short still has its footer copy at offset 0."""
        head = os.pread(self._fd, FOOTER_SIZE, 0)
        if head[:8] == FOOTER_COOKIE and len(head) == FOOTER_SIZE:
            try:
                copy = VhdFooter.parse(head, "footer copy")
            except DiskFormatError:
                copy = None
            if copy is not None and copy.disk_type in (DISK_DYNAMIC, DISK_DIFFERENCING):
                raise DiskFormatError(
                    f"file is truncated: the footer at the end of the file is missing (the footer "
                    f"copy at offset 0 describes a {DISK_TYPE_NAMES[copy.disk_type]} VHD of "
                    f"{copy.current_size} bytes; the file is {self.file_size} bytes)"
                )
        raise DiskFormatError(f"not a VHD: footer cookie is {bytes(tail[:8])!r} (expected {FOOTER_COOKIE!r})")

    def _load_dynamic(self) -> None:
        fd, footer, size = self._fd, self.footer, self.virtual_size
        hdr_at = footer.data_offset
        if hdr_at == NO_DATA_OFFSET or hdr_at + HEADER_SIZE > self._data_end:
            raise DiskFormatError(
                f"file is truncated: the dynamic disk header offset {hdr_at} points past the end "
                f"of the data ({self._data_end} bytes before the footer)"
            )
        self.header = header = DynamicHeader.parse(pread_exact(fd, hdr_at, HEADER_SIZE, "dynamic disk header"))
        bs = header.block_size
        if bs < SECTOR or bs & (bs - 1):
            raise DiskFormatError(f"dynamic VHD block size {bs} is not a power of two of at least {SECTOR}")
        self.block_size = bs
        self.bitmap_size = bitmap_size(bs)
        self.block_count = -(-size // bs)
        if header.max_table_entries < self.block_count:
            raise DiskFormatError(
                f"dynamic VHD BAT too small: {header.max_table_entries} entries of {bs} bytes "
                f"cannot hold the {size}-byte disk"
            )
        bat_end = header.table_offset + 4 * self.block_count
        if bat_end > self._data_end:
            raise DiskFormatError(
                f"file is truncated: the BAT at offset {header.table_offset} extends past the end "
                f"of the data ({self._data_end} bytes before the footer)"
            )
        bat = array("I")
        bat.frombytes(pread_exact(fd, header.table_offset, 4 * self.block_count, "BAT"))
        if bat.itemsize != 4:  # pragma: no cover - every platform Python runs on has 4-byte "I"
            raise RuntimeError("unsigned int is not 4 bytes on this platform")
        if struct.pack("=I", 1) != struct.pack(">I", 1):
            bat.byteswap()
        self._bat = bat
        for index, sector in enumerate(bat):
            if sector == UNALLOCATED:
                continue
            start = sector * SECTOR
            end = start + self.bitmap_size + min(bs, size - index * bs)
            if end > self._data_end:
                raise DiskFormatError(
                    f"file is truncated: the BAT points past the end of the file (block {index} "
                    f"at offset {start} needs bytes up to {end}, but the data ends at {self._data_end})"
                )
        self._runs: dict[int, list[tuple[int, int, bool]]] = {}

    # -- reading ---------------------------------------------------------------------------

    def _block_runs(self, index: int) -> list[tuple[int, int, bool]]:
        """Byte runs ``(offset in block, length, present)`` of an allocated block."""
        runs = self._runs.get(index)
        if runs is None:
            at = self._bat[index] * SECTOR
            sectors = min(self.block_size, self.virtual_size - index * self.block_size) // SECTOR
            bitmap = pread_exact(self._fd, at, self.bitmap_size, f"sector bitmap of block {index}")
            runs = [(first * SECTOR, count * SECTOR, present)
                    for first, count, present in bitmap_runs(bitmap, sectors)]
            if len(self._runs) > 65536:
                self._runs.clear()
            self._runs[index] = runs
        return runs

    def extents(self) -> Iterator[Extent]:
        if self.format == "vhd-fixed":
            return file_extents(self._fd, 0, self.virtual_size)
        return merge_extents(self._dynamic_extents())

    def _dynamic_extents(self) -> Iterator[Extent]:
        bs, size = self.block_size, self.virtual_size
        for index, sector in enumerate(self._bat):
            start = index * bs
            if sector == UNALLOCATED:
                yield start, min(bs, size - start), False
            else:
                for offset, length, present in self._block_runs(index):
                    yield start + offset, length, present

    def read(self, offset: int, length: int) -> bytes:
        self._check_range(offset, length)
        if self.format == "vhd-fixed":
            return pread_exact(self._fd, offset, length, "VHD data")
        out = bytearray(length)
        bs = self.block_size
        pos, end = offset, offset + length
        while pos < end:
            index, in_block = divmod(pos, bs)
            n = min(bs - in_block, end - pos)
            sector = self._bat[index]
            if sector != UNALLOCATED:
                for r_off, r_len, present in self._block_runs(index):
                    lo, hi = max(r_off, in_block), min(r_off + r_len, in_block + n)
                    if present and lo < hi:
                        at = sector * SECTOR + self.bitmap_size + lo
                        out[pos - offset + lo - in_block : pos - offset + hi - in_block] = pread_exact(
                            self._fd, at, hi - lo, f"data of block {index}")
            pos += n
        return bytes(out)

    def close(self) -> None:
        if getattr(self, "_fd", -1) >= 0:
            os.close(self._fd)
            self._fd = -1


# -- writing -------------------------------------------------------------------------------

def _check_vhd_size(size: int) -> None:
    if size % SECTOR:
        raise DiskFormatError(
            f"a VHD's virtual size must be a multiple of {SECTOR} bytes; {size} is not "
            f"(round it up to {-(-size // SECTOR) * SECTOR})"
        )
    if size > MAX_VIRTUAL_SIZE:
        raise DiskFormatError(f"virtual size {size} exceeds the VHD maximum of {MAX_VIRTUAL_SIZE} bytes (2040 GiB)")


def write_vhd_fixed(source: ImageSource, path: str | os.PathLike) -> None:
    """Raw data (sparse) followed by a fixed-disk footer."""
    size = source.virtual_size
    _check_vhd_size(size)
    fd = os.open(os.fspath(path), os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        write_raw_fd(source, fd)
        pwrite_all(fd, size, VhdFooter.new(DISK_FIXED, size).pack())
        os.fsync(fd)
    finally:
        os.close(fd)


def _set_bits(bitmap: bytearray, first: int, end: int) -> None:
    """Set bits ``[first, end)`` (MSB first within each byte)."""
    while first < end and first % 8:
        bitmap[first // 8] |= 0x80 >> (first % 8)
        first += 1
    whole = (end - first) // 8
    if whole > 0:
        bitmap[first // 8 : first // 8 + whole] = b"\xff" * whole
        first += whole * 8
    while first < end:
        bitmap[first // 8] |= 0x80 >> (first % 8)
        first += 1


def _block_bitmaps(source: ImageSource, block_size: int, bmp_size: int) -> dict[int, bytearray]:
    """Sector bitmaps of the blocks the source's data extents touch."""
    per_block = block_size // SECTOR
    bitmaps: dict[int, bytearray] = {}
    for offset, length, has_data in checked_extents(source):
        if not has_data:
            continue
        first, end = offset // SECTOR, -(-(offset + length) // SECTOR)
        while first < end:
            index = first // per_block
            stop = min(end, (index + 1) * per_block)
            bitmap = bitmaps.get(index)
            if bitmap is None:
                bitmap = bitmaps[index] = bytearray(bmp_size)
            _set_bits(bitmap, first - index * per_block, stop - index * per_block)
            first = stop
    return bitmaps


def write_vhd_dynamic(source: ImageSource, path: str | os.PathLike, *,
                      block_size: int = DEFAULT_BLOCK_SIZE) -> None:
    """A dynamic VHD: only blocks holding non-zero data are allocated.

    File layout: footer copy (0), dynamic header (512), BAT (1536), blocks, footer.
    """
    size = source.virtual_size
    _check_vhd_size(size)
    if block_size < SECTOR or block_size & (block_size - 1):
        raise ValueError(f"block size {block_size} is not a power of two of at least {SECTOR}")
    bmp_size = bitmap_size(block_size)
    count = -(-size // block_size)
    table_offset = FOOTER_SIZE + HEADER_SIZE
    bat = array("I", [UNALLOCATED]) * count
    bitmaps = _block_bitmaps(source, block_size, bmp_size)
    footer = VhdFooter.new(DISK_DYNAMIC, size).pack()
    fd = os.open(os.fspath(path), os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC, 0o666)
    try:
        os.ftruncate(fd, 0)
        next_at = table_offset + -(-(4 * count) // SECTOR) * SECTOR
        for index in sorted(bitmaps):
            start = index * block_size
            data = source.read(start, min(block_size, size - start))
            if is_zero(data):
                continue
            if next_at // SECTOR >= UNALLOCATED:
                raise DiskFormatError("dynamic VHD would exceed the 2 TiB of file a BAT can address")
            bat[index] = next_at // SECTOR
            pwrite_all(fd, next_at, bitmaps[index])
            pwrite_sparse(fd, next_at + bmp_size, data)
            next_at += bmp_size + block_size
        os.ftruncate(fd, next_at)
        pwrite_all(fd, next_at, footer)
        if struct.pack("=I", 1) != struct.pack(">I", 1):
            bat.byteswap()
        bat_bytes = bat.tobytes()
        pwrite_all(fd, table_offset, bat_bytes + b"\xff" * (-len(bat_bytes) % SECTOR))
        header = DynamicHeader(table_offset=table_offset, max_table_entries=count, block_size=block_size)
        pwrite_all(fd, FOOTER_SIZE, header.pack())
        pwrite_all(fd, 0, footer)
        os.fsync(fd)
    finally:
        os.close(fd)
