"""Chunks: 1 MiB pieces of a virtual disk, named by their BLAKE3 hash, stored zstd-compressed.

A stored chunk is one codec byte and a payload: 0 = the bytes as they are (incompressible
data), 1 = a zstd frame. Reading always verifies the hash, so a damaged chunk is an error,
never wrong bytes.
"""

from __future__ import annotations

import blake3
import zstandard

CHUNK_SIZE = 1024 * 1024
_RAW, _ZSTD = b"\x00", b"\x01"
_ZERO_CHUNK = bytes(CHUNK_SIZE)


class ChunkCorrupt(Exception):
    def __init__(self, store: str, digest: str, reason: str) -> None:
        super().__init__(f"chunk {digest} in store {store} is damaged: {reason}")
        self.store, self.digest = store, digest


def digest_of(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()


def is_zero(data: bytes) -> bool:
    return data == _ZERO_CHUNK if len(data) == CHUNK_SIZE else not any(data)


def encode(data: bytes) -> bytes:
    compressed = zstandard.ZstdCompressor(level=1).compress(data)
    if len(compressed) < len(data):
        return _ZSTD + compressed
    return _RAW + data


def decode(blob: bytes, digest: str, store: str) -> bytes:
    codec, payload = blob[:1], blob[1:]
    if codec == _RAW:
        data = payload
    elif codec == _ZSTD:
        try:
            data = zstandard.ZstdDecompressor().decompress(payload, max_output_size=CHUNK_SIZE)
        except zstandard.ZstdError as error:
            raise ChunkCorrupt(store, digest, f"zstd frame unreadable ({error})") from None
    else:
        raise ChunkCorrupt(store, digest, f"unknown codec byte {codec!r}")
    if digest_of(data) != digest:
        raise ChunkCorrupt(store, digest, "content does not match its BLAKE3 hash")
    return data
