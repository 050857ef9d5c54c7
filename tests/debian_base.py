"""One bootable Debian 12 raw image for the tests that build from it, made once per machine.

It is kept in $GALLEY_TEST_CACHE (default /var/cache/galley-tests) under a name that carries a
digest of galley/builder/debian.py and the modules whose files it bakes in (IMAGE_MODULES), so a
change to the image builder makes a new one; a file
lock lets parallel test workers share it. Tests must only read it (builds copy their source).
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import shutil
from pathlib import Path

import pytest

import galley.builder.debian as debian
import galley.builder.generalize as generalize
import galley.builder.provisioning as provisioning

BUILD_TOOLS = ("debootstrap", "mkfs.ext4", "sfdisk", "grub-mkimage", "qemu-system-x86_64", "debugfs", "unshare",
               "losetup", "resize2fs")
SIZE_GIB = 2
# The modules whose text ends up in the image: a change to any of them makes a new image.
IMAGE_MODULES = (debian, provisioning, generalize)


def cache_dir() -> Path:
    return Path(os.environ.get("GALLEY_TEST_CACHE", "/var/cache/galley-tests"))


def require_build_tools() -> None:
    """Skip (fail under CI) when this machine cannot build and boot images."""
    missing = [tool for tool in BUILD_TOOLS if shutil.which(tool) is None]
    if not Path("/usr/lib/grub/i386-pc/boot.img").is_file():
        missing.append("grub-pc-bin")
    if os.geteuid() != 0:
        missing.append("root")
    if missing:
        message = f"building images needs {', '.join(missing)}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def debian_base_image() -> Path:
    require_build_tools()
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256(b"".join(Path(module.__file__).read_bytes() for module in IMAGE_MODULES)).hexdigest()[:12]
    image = cache / f"debian12-{SIZE_GIB}g-{digest}.raw"
    with open(cache / "debian12-image.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not image.exists():
            for old in cache.glob(f"debian12-{SIZE_GIB}g-*.raw"):
                old.unlink()
            partial = image.with_suffix(".partial")
            debian.build_debian_image(partial, cache_dir=cache, size_gib=SIZE_GIB)
            partial.rename(image)
    return image
