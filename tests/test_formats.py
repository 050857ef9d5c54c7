"""Disk formats (galley.content.formats): real images made on the fly, cross-checked with qemu."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import struct
import subprocess

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from galley.content import vhd
from galley.content.formats import DiskFormatError, detect_format, open_disk, write_image

MiB = 1024 * 1024
GiB = 1024 * MiB

needs_qemu = pytest.mark.skipif(
    shutil.which("qemu-img") is None or shutil.which("qemu-io") is None,
    reason="qemu-img/qemu-io not installed (apt-get install -y qemu-utils)",
)


# -- helpers --------------------------------------------------------------------------------

def qemu(*args: str) -> str:
    proc = subprocess.run(args, capture_output=True, text=True)
    assert proc.returncode == 0, f"{' '.join(args)} failed: {proc.stderr or proc.stdout}"
    return proc.stdout


def qemu_size(path, fmt: str) -> int:
    return json.loads(qemu("qemu-img", "info", "-f", fmt, "--output=json", str(path)))["virtual-size"]


def make_raw(path, size: int, pieces: list[tuple[int, int]], seed: int = 1) -> None:
    """A sparse raw file of ``size`` bytes with pseudo-random data at each (offset, length)."""
    rng = __import__("random").Random(seed)
    with open(path, "wb") as f:
        f.truncate(size)
        for offset, length in pieces:
            f.seek(offset)
            f.write(rng.randbytes(length))


def sha_of(image) -> str:
    h = hashlib.sha256()
    for offset in range(0, image.virtual_size, 8 * MiB):
        h.update(image.read(offset, min(8 * MiB, image.virtual_size - offset)))
    return h.hexdigest()


def sha_file(path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def data_ranges(image) -> list[tuple[int, int]]:
    return [(o, n) for o, n, has_data in image.extents() if has_data]


def assert_covers(image, offset: int, length: int) -> None:
    """[offset, offset+length) lies inside the image's data extents."""
    pos, end = offset, offset + length
    for o, n in data_ranges(image):
        if o <= pos < o + n:
            pos = o + n
        if pos >= end:
            return
    pytest.fail(f"bytes {pos}..{end} are not in a data extent: {list(image.extents())}")


def check_extents_shape(image) -> None:
    pos = 0
    previous = None
    for offset, length, has_data in image.extents():
        assert offset == pos and length > 0
        assert has_data is not previous, "adjacent extents of the same kind are merged"
        previous = has_data
        pos += length
    assert pos == image.virtual_size


def rewrite_footer(path, **changes) -> None:
    """Change footer fields (checksum recomputed) at the end and, for dynamic VHDs, at 0."""
    with open(path, "r+b") as f:
        size = f.seek(0, os.SEEK_END)
        f.seek(size - 512)
        footer = vhd.VhdFooter.parse(f.read(512))
        packed = dataclasses.replace(footer, **changes).pack()
        f.seek(size - 512)
        f.write(packed)
        f.seek(0)
        if f.read(8) == b"conectix":
            f.seek(0)
            f.write(packed)


class MemorySource:
    """A DiskImage look-alike held in memory: what write_image needs and nothing more."""

    def __init__(self, size: int, chunks: dict[int, bytes]):
        self.virtual_size = size
        self.buf = bytearray(size)
        self.chunks = sorted(chunks.items())
        for offset, data in self.chunks:
            self.buf[offset : offset + len(data)] = data

    def extents(self):
        pos = 0
        for offset, data in self.chunks:
            if offset > pos:
                yield pos, offset - pos, False
            start = max(offset, pos)
            if offset + len(data) > start:
                yield start, offset + len(data) - start, True
                pos = offset + len(data)
        if pos < self.virtual_size:
            yield pos, self.virtual_size - pos, False

    def read(self, offset, length):
        return bytes(self.buf[offset : offset + length])


# 24 MiB + 3 sectors: neither a multiple of the 2 MiB block nor of any CHS cylinder.
SIZE = 24 * MiB + 3 * 512
PIECES = [(0, 4096), (1 * MiB + 512, 300_000), (5 * MiB, 2 * MiB + 4096),
          (16 * MiB - 512, 1024), (SIZE - 1024, 1024)]


@pytest.fixture
def source_raw(tmp_path):
    path = tmp_path / "source.raw"
    make_raw(path, SIZE, PIECES)
    return path


# -- raw ------------------------------------------------------------------------------------

def test_raw_extents_follow_holes(source_raw):
    with open_disk(source_raw) as image:
        assert image.format == "raw" and image.virtual_size == SIZE
        check_extents_shape(image)
        for offset, length in PIECES:
            assert_covers(image, offset, length)
        assert sum(n for _, n in data_ranges(image)) < 4 * MiB
        assert image.read(20 * MiB, 4096) == bytes(4096)
        assert sha_of(image) == sha_file(source_raw)


def test_detect_format(tmp_path, source_raw):
    assert detect_format(source_raw) == "raw"
    write_image(open_disk(source_raw), "vhd-dynamic", tmp_path / "d.vhd")
    write_image(open_disk(source_raw), "vhd-fixed", tmp_path / "f.vhd")
    assert detect_format(tmp_path / "d.vhd") == "vhd"
    assert detect_format(tmp_path / "f.vhd") == "vhd"
    (tmp_path / "tiny").write_bytes(b"abc")
    assert detect_format(tmp_path / "tiny") == "raw"
    with open_disk(tmp_path / "tiny") as tiny:
        assert tiny.virtual_size == 3 and tiny.read(0, 3) == b"abc"


def test_write_raw_is_sparse_and_exact(tmp_path, source_raw):
    write_image(open_disk(source_raw), "raw", tmp_path / "copy.raw")
    assert os.path.getsize(tmp_path / "copy.raw") == SIZE
    assert sha_file(tmp_path / "copy.raw") == sha_file(source_raw)
    assert os.stat(tmp_path / "copy.raw").st_blocks * 512 < 6 * MiB
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy.raw", "source.raw"]


# -- round trips through every writer -------------------------------------------------------

@needs_qemu
@pytest.mark.parametrize("fmt", ["vhd-fixed", "vhd-dynamic", "qcow2"])
def test_round_trip(tmp_path, source_raw, fmt):
    out = tmp_path / f"out.{fmt}"
    with open_disk(source_raw) as source:
        write_image(source, fmt, out, tmp_dir=tmp_path)
    with open_disk(out, tmp_dir=tmp_path) as image:
        assert image.format == fmt
        assert image.virtual_size == SIZE
        check_extents_shape(image)
        for offset, length in PIECES:
            assert_covers(image, offset, length)
        assert sum(n for _, n in data_ranges(image)) <= 12 * MiB
        assert sha_of(image) == sha_file(source_raw)

    qemu_fmt = "qcow2" if fmt == "qcow2" else "vpc"
    assert qemu_size(out, qemu_fmt) == SIZE
    qemu("qemu-img", "convert", "-f", qemu_fmt, "-O", "raw", str(out), str(tmp_path / "back.raw"))
    assert sha_file(tmp_path / "back.raw") == sha_file(source_raw)
    assert "identical" in qemu("qemu-img", "compare", "-f", "raw", "-F", qemu_fmt, str(source_raw), str(out))
    leftovers = {p.name for p in tmp_path.iterdir()} - {"source.raw", out.name, "back.raw"}
    assert not leftovers, "temporary files are cleaned up"


@needs_qemu
def test_vhd_footer_gives_qemu_the_exact_size(tmp_path, source_raw):
    """qemu sizes a VHD by its CHS geometry unless the creator app is one it trusts ("win ",
    "qem2", ...). Galley writes "win ", so qemu sees the exact size; an unknown creator such as
    "galy" would make qemu see a smaller disk. This test pins both facts down."""
    out = tmp_path / "d.vhd"
    write_image(open_disk(source_raw), "vhd-dynamic", out)
    with open_disk(out) as image:
        footer = image.footer
    assert footer.creator_app == b"win " and footer.creator_host_os == b"Wi2k"
    assert footer.current_size == footer.original_size == SIZE
    assert (footer.cylinders, footer.heads, footer.sectors_per_track) == vhd.chs_geometry(SIZE)
    assert qemu_size(out, "vpc") == SIZE

    rewrite_footer(out, creator_app=b"galy")
    chs_size = footer.cylinders * footer.heads * footer.sectors_per_track * 512
    assert chs_size < SIZE
    assert qemu_size(out, "vpc") == chs_size
    with open_disk(out) as image:  # Galley itself always trusts current size
        assert image.virtual_size == SIZE


def test_chs_geometry_matches_the_specification():
    # Values from the VHD specification's algorithm, worked by hand.
    assert vhd.chs_geometry(24 * MiB) == (722, 4, 17)
    assert vhd.chs_geometry(64 * MiB) == (963, 8, 17)
    assert vhd.chs_geometry(1 * GiB) == (2080, 16, 63)
    assert vhd.chs_geometry(30 * GiB) == (62415, 16, 63)
    assert vhd.chs_geometry(200 * GiB) == (65535, 16, 255)


@needs_qemu
@pytest.mark.parametrize("size", ["24M", "64M", "1G", "30G", "200G"])
def test_chs_geometry_agrees_with_qemu(tmp_path, size):
    """qemu (without force_size) rounds a size up to whole cylinders and writes that CHS and
    size; computing the geometry of qemu's size must give qemu's CHS back."""
    path = tmp_path / "g.vhd"
    qemu("qemu-img", "create", "-q", "-f", "vpc", "-o", "subformat=dynamic", str(path), size)
    with open_disk(path) as image:
        footer = image.footer
        assert image.virtual_size == qemu_size(path, "vpc")
    assert vhd.chs_geometry(footer.current_size) == (footer.cylinders, footer.heads, footer.sectors_per_track)


def test_vhd_needs_a_whole_number_of_sectors(tmp_path):
    source = MemorySource(1000, {0: b"x" * 100})
    for fmt in ("vhd", "vhd-fixed", "vhd-dynamic"):
        with pytest.raises(DiskFormatError, match="multiple of 512"):
            write_image(source, fmt, tmp_path / "x.vhd")
    assert list(tmp_path.iterdir()) == [], "a failed write leaves nothing behind"
    write_image(source, "raw", tmp_path / "x.raw")
    assert (tmp_path / "x.raw").read_bytes() == source.read(0, 1000)


def test_dynamic_vhd_allocates_only_blocks_with_data(tmp_path):
    size = 40 * MiB
    source = MemorySource(size, {
        3 * MiB: b"\x01" * 512,            # block 1
        10 * MiB - 256: b"\x02" * 512,     # straddles blocks 4 and 5
        20 * MiB: bytes(MiB),              # block 10: declared data, but all zero → not stored
    })
    out = tmp_path / "d.vhd"
    write_image(source, "vhd-dynamic", out)
    with open_disk(out) as image:
        allocated = [i for i, sector in enumerate(image._bat) if sector != vhd.UNALLOCATED]
        assert allocated == [1, 4, 5]
        assert image.block_size == 2 * MiB
        # sector bitmaps say which sectors hold data: 1 sector, then 1 + 1 across the boundary
        assert data_ranges(image) == [(3 * MiB, 512), (10 * MiB - 512, 1024)]
        assert image.read(0, size) == source.read(0, size)
    assert os.path.getsize(out) == 512 + 1024 + 512 + 3 * (512 + 2 * MiB) + 512


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    sectors=st.integers(min_value=1, max_value=200),
    writes=st.lists(st.tuples(st.integers(0, 199 * 512), st.integers(1, 6000)), max_size=6),
    block_size=st.sampled_from([512, 4096, 16384]),
)
def test_dynamic_vhd_round_trip_any_layout(tmp_path, sectors, writes, block_size):
    size = sectors * 512
    chunks = {}
    for offset, length in writes:
        offset = min(offset, size - 1)
        length = min(length, size - offset)
        chunks[offset] = bytes([offset % 251 + 1]) * length
    source = MemorySource(size, chunks)
    out = tmp_path / "h.vhd"
    vhd.write_vhd_dynamic(source, out, block_size=block_size)
    with open_disk(out, "vhd-dynamic") as image:
        check_extents_shape(image)
        assert image.read(0, size) == source.read(0, size)
        for offset in range(0, size, 700):
            assert image.read(offset, min(1234, size - offset)) == source.read(offset, min(1234, size - offset))
        for offset, length, has_data in image.extents():
            if not has_data:
                assert image.read(offset, length) == bytes(length)


def test_sector_bitmap_is_honoured(tmp_path):
    """Data in an allocated block whose bitmap bit is clear is not part of the disk."""
    out = tmp_path / "d.vhd"
    write_image(MemorySource(4 * MiB, {0: b"\x07" * (2 * MiB)}), "vhd-dynamic", out)
    with open_disk(out) as image:
        bitmap_at = image._bat[0] * 512
    with open(out, "r+b") as f:
        f.seek(bitmap_at + 1)
        f.write(b"\x0f")  # sectors 8..11 absent, 12..15 present
    with open_disk(out) as image:
        assert data_ranges(image) == [(0, 8 * 512), (12 * 512, 2 * MiB - 12 * 512)]
        data = image.read(0, 16 * 512)
        assert data == b"\x07" * 4096 + bytes(2048) + b"\x07" * 2048


# -- images made by qemu --------------------------------------------------------------------

QEMU_INPUTS = {
    "vhd-dynamic": ("vpc", ["-o", "subformat=dynamic,force_size=on"]),
    "vhd-fixed": ("vpc", ["-o", "subformat=fixed,force_size=on"]),
    "qcow2": ("qcow2", []),
}


@needs_qemu
@pytest.mark.parametrize("fmt", list(QEMU_INPUTS))
def test_reads_qemu_made_images(tmp_path, fmt):
    qfmt, opts = QEMU_INPUTS[fmt]
    path = tmp_path / "q.img"
    qemu("qemu-img", "create", "-q", "-f", qfmt, *opts, str(path), "64M")
    qemu("qemu-io", "-f", qfmt, "-c", "write -P 0xab 1M 3M", "-c", "write -P 0x5c 40M 4k", str(path))
    qemu("qemu-img", "convert", "-f", qfmt, "-O", "raw", str(path), str(tmp_path / "q.raw"))

    with open_disk(path, tmp_dir=tmp_path) as image:
        assert image.format == fmt
        assert image.virtual_size == 64 * MiB == qemu_size(path, qfmt)
        check_extents_shape(image)
        assert_covers(image, 1 * MiB, 3 * MiB)
        assert_covers(image, 40 * MiB, 4096)
        data = data_ranges(image)
        # dynamic VHD: blocks 0, 1 and 20 at most; qcow2: clusters; fixed: file system holes
        assert sum(n for _, n in data) <= 3 * 2 * MiB
        assert not any(o < 32 * MiB and o + n > 8 * MiB for o, n in data), "the holes are holes"
        assert image.read(1 * MiB, 3 * MiB) == b"\xab" * (3 * MiB)
        assert image.read(40 * MiB - 512, 1024) == bytes(512) + b"\x5c" * 512
        assert sha_of(image) == sha_file(tmp_path / "q.raw")


@needs_qemu
def test_reads_qemu_vhd_converted_from_raw_and_without_force_size(tmp_path, source_raw):
    exact = tmp_path / "exact.vhd"
    qemu("qemu-img", "convert", "-f", "raw", "-O", "vpc", "-o", "subformat=dynamic,force_size=on",
         str(source_raw), str(exact))
    with open_disk(exact) as image:
        assert image.virtual_size == SIZE
        assert sha_of(image) == sha_file(source_raw)

    # Without force_size qemu rounds the size to whole CHS cylinders (creator "qemu", sized by
    # CHS); Galley reads current size, which qemu sets to that same rounded size.
    rounded = tmp_path / "rounded.vhd"
    qemu("qemu-img", "create", "-q", "-f", "vpc", "-o", "subformat=dynamic", str(rounded), "30M")
    with open_disk(rounded) as image:
        assert image.footer.creator_app == b"qemu"
        assert image.virtual_size == qemu_size(rounded, "vpc") != 30 * MiB


@needs_qemu
def test_sparse_proportionality_30g(tmp_path):
    path = tmp_path / "big.vhd"
    qemu("qemu-img", "create", "-q", "-f", "vpc", "-o", "subformat=dynamic,force_size=on", str(path), "30G")
    qemu("qemu-io", "-f", "vpc", "-c", "write -P 0xcd 7G 4M", str(path))
    with open_disk(path) as image:
        assert image.virtual_size == 30 * GiB
        data = data_ranges(image)
        assert sum(n for _, n in data) <= 6 * MiB
        assert_covers(image, 7 * GiB, 4 * MiB)
        assert image.read(7 * GiB, 4 * MiB) == b"\xcd" * (4 * MiB)
        assert image.read(20 * GiB, MiB) == bytes(MiB)

        # ...and it exports as sparsely as it reads
        write_image(image, "vhd-dynamic", tmp_path / "copy.vhd")
    assert os.path.getsize(tmp_path / "copy.vhd") < 5 * MiB
    assert qemu_size(tmp_path / "copy.vhd", "vpc") == 30 * GiB
    assert "identical" in qemu("qemu-img", "compare", "-f", "vpc", "-F", "vpc", str(path), str(tmp_path / "copy.vhd"))


@needs_qemu
def test_qcow2_to_vhd_export_matches_qemu(tmp_path):
    src = tmp_path / "s.qcow2"
    qemu("qemu-img", "create", "-q", "-f", "qcow2", str(src), "20M")
    qemu("qemu-io", "-f", "qcow2", "-c", "write -P 0x11 3M 1M", "-c", "write -P 0x22 19M 512k", str(src))
    with open_disk(src, tmp_dir=tmp_path) as image:
        write_image(image, "vhd-dynamic", tmp_path / "d.vhd", tmp_dir=tmp_path)
        write_image(image, "vhd", tmp_path / "f.vhd", tmp_dir=tmp_path)
    for out in ("d.vhd", "f.vhd"):
        assert "identical" in qemu("qemu-img", "compare", "-f", "qcow2", "-F", "vpc", str(src), str(tmp_path / out))
    assert open_disk(tmp_path / "f.vhd").format == "vhd-fixed"


# -- damaged and mislabelled files ----------------------------------------------------------

@pytest.mark.parametrize("fmt", ["vhd-fixed", "vhd-dynamic"])
def test_footer_checksum_is_verified(tmp_path, source_raw, fmt):
    out = tmp_path / "x.vhd"
    write_image(open_disk(source_raw), fmt, out)
    with open(out, "r+b") as f:
        f.seek(-512 + 70, os.SEEK_END)  # inside the unique id
        byte = f.read(1)
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([byte[0] ^ 0x40]))
    with pytest.raises(DiskFormatError, match=r"VHD footer checksum mismatch: stored 0x[0-9a-f]{8}, computed 0x"):
        open_disk(out)


def test_dynamic_header_checksum_is_verified(tmp_path, source_raw):
    out = tmp_path / "x.vhd"
    write_image(open_disk(source_raw), "vhd-dynamic", out)
    with open(out, "r+b") as f:
        f.seek(512 + 40)  # parent unique id: unused, but covered by the checksum
        f.write(b"\x01")
    with pytest.raises(DiskFormatError, match="dynamic disk header checksum mismatch"):
        open_disk(out)


@needs_qemu
def test_truncated_dynamic_vhd(tmp_path):
    path = tmp_path / "t.vhd"
    qemu("qemu-img", "create", "-q", "-f", "vpc", "-o", "subformat=dynamic,force_size=on", str(path), "16M")
    qemu("qemu-io", "-f", "vpc", "-c", "write -P 0xab 1M 3M", str(path))
    with open_disk(path) as image:
        last_block_at = max(s for s in image._bat if s != vhd.UNALLOCATED) * 512
    with open(path, "r+b") as f:
        f.truncate(last_block_at + MiB)  # in the middle of the last block
    assert detect_format(path) == "vhd"
    with pytest.raises(DiskFormatError, match="file is truncated: the footer at the end of the file is missing"):
        open_disk(path)

    # Cut short and then given its footer back: the BAT now points past the end.
    with open(path, "r+b") as f:
        f.seek(0)
        footer = f.read(512)
        f.seek(0, os.SEEK_END)
        f.write(footer)
    with pytest.raises(DiskFormatError, match="file is truncated: the BAT points past the end of the file"):
        open_disk(path)


def test_truncated_fixed_vhd(tmp_path):
    out = tmp_path / "f.vhd"
    write_image(MemorySource(MiB, {0: b"\x01" * 4096}), "vhd-fixed", out)
    with open(out, "r+b") as f:
        f.seek(-512, os.SEEK_END)
        footer = f.read()
        f.truncate(MiB // 2)
        f.seek(0, os.SEEK_END)
        f.write(footer)
    with pytest.raises(DiskFormatError, match="file is truncated"):
        open_disk(out)


def test_fixed_vhd_with_extra_data_before_the_footer(tmp_path):
    out = tmp_path / "f.vhd"
    write_image(MemorySource(MiB, {0: b"\x01" * 4096}), "vhd-fixed", out)
    footer = out.read_bytes()[-512:]
    with open(out, "r+b") as f:
        f.truncate(2 * MiB)
        f.seek(0, os.SEEK_END)
        f.write(footer)
    with pytest.raises(DiskFormatError, match="fixed VHD size mismatch"):
        open_disk(out)


def test_garbage_declared_vhd_names_the_cookie(tmp_path):
    path = tmp_path / "junk.vhd"
    path.write_bytes(b"hello world " * 1000)
    with pytest.raises(DiskFormatError, match=r"not a VHD: footer cookie is b'.*' \(expected b'conectix'\)"):
        open_disk(path, "vhd")
    with pytest.raises(DiskFormatError, match="cookie"):
        open_disk(path, "vhd-dynamic")
    assert open_disk(path).format == "raw"


def test_differencing_vhd_is_refused(tmp_path, source_raw):
    out = tmp_path / "d.vhd"
    write_image(open_disk(source_raw), "vhd-dynamic", out)
    rewrite_footer(out, disk_type=vhd.DISK_DIFFERENCING)
    with pytest.raises(DiskFormatError, match="differencing VHDs are not supported"):
        open_disk(out)


@needs_qemu
def test_declared_format_must_match(tmp_path, source_raw):
    write_image(open_disk(source_raw), "vhd-dynamic", tmp_path / "d.vhd")
    write_image(open_disk(source_raw), "qcow2", tmp_path / "q.qcow2", tmp_dir=tmp_path)
    with pytest.raises(DiskFormatError, match="declared vhd-fixed but the file is a vhd-dynamic VHD"):
        open_disk(tmp_path / "d.vhd", "vhd-fixed")
    with pytest.raises(DiskFormatError, match="declared raw, but the file is a qcow2 image"):
        open_disk(tmp_path / "q.qcow2", "raw")
    with pytest.raises(DiskFormatError, match="declared raw, but the file is a vhd image"):
        open_disk(tmp_path / "d.vhd", "raw")
    with pytest.raises(DiskFormatError, match=r"not a qcow2 image: magic is b'.*' \(expected b'QFI\\xfb'\)"):
        open_disk(tmp_path / "d.vhd", "qcow2")
    with pytest.raises(DiskFormatError, match="not a VHD"):
        open_disk(tmp_path / "q.qcow2", "vhd")
    with pytest.raises(DiskFormatError, match="unknown disk format 'vmdk'"):
        open_disk(source_raw, "vmdk")
    assert open_disk(tmp_path / "d.vhd", "vhd-dynamic").format == "vhd-dynamic"


@needs_qemu
@pytest.mark.parametrize("field,offset,value,message", [
    ("version", 4, 99, "qcow2 version"),
    ("cluster_bits", 20, 40, "[Cc]luster size"),
    ("l1_table_offset", 40, 0x7FFFFF00, "L1 table"),
])
def test_corrupt_qcow2_header(tmp_path, field, offset, value, message):
    path = tmp_path / "c.qcow2"
    qemu("qemu-img", "create", "-q", "-f", "qcow2", str(path), "8M")
    qemu("qemu-io", "-f", "qcow2", "-c", "write -P 0xab 0 1M", str(path))
    with open(path, "r+b") as f:
        f.seek(offset)
        f.write(struct.pack(">Q" if field == "l1_table_offset" else ">I", value))
    with pytest.raises(DiskFormatError, match="invalid qcow2 image: .*" + message) as err:
        image = open_disk(path, tmp_dir=tmp_path)
        list(image.extents())
        image.read(0, 4096)
    assert "c.qcow2" in str(err.value), "qemu-img's own message, naming the file"


@needs_qemu
def test_qcow2_with_backing_file_is_refused(tmp_path, source_raw):
    path = tmp_path / "overlay.qcow2"
    qemu("qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(source_raw), str(path))
    with pytest.raises(DiskFormatError, match="backing file"):
        open_disk(path)
