"""glibc's allocator, tuned for a process that churns through 1 MiB buffers.

By default glibc serves each 1 MiB allocation with a fresh mmap and returns it with munmap, so
every chunk read, hashed and written costs page faults and zeroing in the kernel: measured on a
1 GiB ingest, 4.6 s of system time against 1.0 s with the buffers kept in the heap for reuse.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
_tuned = False


def keep_chunk_buffers_in_heap(mmap_threshold: int = 32 << 20, trim_threshold: int = 128 << 20) -> bool:
    """Serve allocations below `mmap_threshold` from the heap; give memory back above `trim_threshold`."""
    global _tuned
    if _tuned:
        return True
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name)
        _tuned = bool(libc.mallopt(M_MMAP_THRESHOLD, mmap_threshold)) and bool(
            libc.mallopt(M_TRIM_THRESHOLD, trim_threshold))
    except (OSError, AttributeError):  # not glibc: nothing to tune
        logging.getLogger("galley.content").debug("mallopt unavailable; allocator left as it is")
    return _tuned
