"""Chunks: 1 MiB pieces of a virtual disk, named by their BLAKE3 hash, stored zstd-compressed.

A stored chunk is one codec byte and a payload: 0 = the bytes as they are (incompressible
data), 1 = a zstd frame. Reading always verifies the hash, so a damaged chunk is an error,
never wrong bytes.
"""

from __future__ import annotations

import threading

import blake3
import zstandard

CHUNK_SIZE = 1024 * 1024
_RAW, _ZSTD = b"\x00", b"\x01"
_ZERO_CHUNK = bytes(CHUNK_SIZE)
# A chunk is compressed only when three 16 KiB samples of it (start, middle, end) shrink by more
# than this: random or already-compressed data (most of a real disk's used space) skips zstd.
_SAMPLE = 16 * 1024
_WORTH_COMPRESSING = 0.97
_codecs = threading.local()  # a zstd context per thread: making one per chunk cost more than compressing


def _compressor() -> zstandard.ZstdCompressor:
    if not hasattr(_codecs, "compressor"):
        _codecs.compressor = zstandard.ZstdCompressor(level=1)
        _codecs.decompressor = zstandard.ZstdDecompressor()
    return _codecs.compressor


def _decompressor() -> zstandard.ZstdDecompressor:
    _compressor()
    return _codecs.decompressor


class ChunkCorrupt(Exception):
    def __init__(self, store: str, digest: str, reason: str) -> None:
        super().__init__(f"chunk {digest} in store {store} is damaged: {reason}")
        self.store, self.digest = store, digest


def digest_of(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()


def is_zero(data: bytes) -> bool:
    """True for all-zero data (bytes or a memoryview; startswith compares any buffer with memcmp)."""
    if len(data) <= CHUNK_SIZE:
        return _ZERO_CHUNK.startswith(data)
    return not any(data)


def _compressible(data: bytes) -> bool:
    if len(data) <= 3 * _SAMPLE:
        return True
    view = memoryview(data)
    middle = len(data) // 2
    # The samples compressed as one frame: one call into zstd (each call releases and retakes the
    # GIL, a wait behind the event loop for a storing thread) instead of three.
    samples = b"".join((view[:_SAMPLE], view[middle:middle + _SAMPLE], view[-_SAMPLE:]))
    return len(_compressor().compress(samples)) < _WORTH_COMPRESSING * len(samples)


def encode_parts(data: bytes) -> tuple[bytes, bytes]:
    """(codec byte, payload): a stored chunk without joining them (a store can write both at once)."""
    if _compressible(data):
        compressed = _compressor().compress(data)
        if len(compressed) < len(data):
            return _ZSTD, compressed
    return _RAW, data


def encode(data: bytes) -> bytes:
    return b"".join(encode_parts(data))


def decode(blob: bytes, digest: str, store: str) -> bytes:
    data = decode_view(blob, digest, store)
    return data if type(data) is bytes else bytes(data)


def decode_view(blob: bytes, digest: str, store: str) -> bytes | memoryview:
    """As decode, but a chunk stored as it is comes back as a view of `blob`: no copy."""
    codec, payload = blob[:1], memoryview(blob)[1:]
    if codec == _RAW:
        data = payload
    elif codec == _ZSTD:
        try:
            data = _decompressor().decompress(payload, max_output_size=CHUNK_SIZE)
        except zstandard.ZstdError as error:
            raise ChunkCorrupt(store, digest, f"zstd frame unreadable ({error})") from None
    else:
        raise ChunkCorrupt(store, digest, f"unknown codec byte {codec!r}")
    if digest_of(data) != digest:
        raise ChunkCorrupt(store, digest, "content does not match its BLAKE3 hash")
    return data
