"""The NoCloud seed disk that provisions a VM made from a generalized image.

A small vfat filesystem labelled CIDATA (made with `mkfs.vfat` and filled with `mcopy`, no mount)
holding what both kinds of guest read on their first boot:

    meta-data            instance-id and local-hostname (cloud-init's NoCloud data source)
    user-data            the VM's customData, decoded, or an empty #cloud-config
    vendor-data          a #cloud-config with the admin user and its SSH keys (images with cloud-init)
    galley/admin-username, galley/authorized_keys, galley/password-hash (optional, SHA-512 crypt),
    galley/custom-data   (optional, raw bytes): read by Galley's provisioning agent, baked into
                         the images Galley builds (galley.builder.provisioning)

A new instance id makes the guest provision again; the same one leaves it as it is.
The seed holds a password's hash, never the password; it is written 0600.

Host requirements (Debian packages): dosfstools (mkfs.vfat), mtools (mcopy, mmd). The password's
hash is made when the VM is created (galley.domain.virtual_machine.hash_password).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

from galley.builder.provisioning import (
    ADMIN_USERNAME_FILE,
    AUTHORIZED_KEY_PATTERN,
    AUTHORIZED_KEYS_FILE,
    CUSTOM_DATA_FILE,
    HOSTNAME_PATTERN,
    INSTANCE_ID_PATTERN,
    META_DATA,
    PASSWORD_HASH_FILE,
    PASSWORD_HASH_PATTERN,
    SEED_LABEL,
    USER_DATA,
    VENDOR_DATA,
    admin_username_problem,
)

MIB = 1024 ** 2
EMPTY_CLOUD_CONFIG = b"#cloud-config\n{}\n"


class SeedError(RuntimeError):
    """The seed disk could not be written (a host tool is missing or failed)."""


def make_seed(
    path: str | os.PathLike,
    *,
    instance_id: str,
    hostname: str,
    admin_username: str,
    ssh_public_keys: Sequence[str],
    password_hash: str | None = None,
    custom_data: bytes | None = None,
) -> Path:
    """Write the CIDATA seed image at `path` (replacing it) and return the path.

    Values are checked the way the guest's agent checks them (ValueError says which is wrong),
    so a seed Galley writes is never one the agent refuses.
    """
    files = seed_files(instance_id=instance_id, hostname=hostname, admin_username=admin_username,
                       ssh_public_keys=ssh_public_keys, password_hash=password_hash, custom_data=custom_data)
    missing = [tool for tool in ("mkfs.vfat", "mcopy", "mmd") if shutil.which(tool) is None]
    if missing:
        raise SeedError(f"missing host tools: {', '.join(missing)} (Debian: dosfstools mtools)")
    path = Path(path)
    partial = path.with_name(f".{path.name}.partial")
    with tempfile.TemporaryDirectory(prefix="galley-seed-") as content:  # 0700: customData may be secret
        content = Path(content)
        for name, data in files.items():
            target = content / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
        used = sum(len(data) for data in files.values())
        size = max(2 * MIB, -(-(used * 2 + MIB) // MIB) * MIB)
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.ftruncate(fd, size)
        finally:
            os.close(fd)
        try:
            _run(["mkfs.vfat", "-n", SEED_LABEL, str(partial)])
            for folder in sorted({Path(name).parent for name in files} - {Path(".")}):
                _run(["mmd", "-i", str(partial), f"::{folder.as_posix()}"])
            for name in files:
                _run(["mcopy", "-i", str(partial), str(content / name), f"::{name}"])
            os.replace(partial, path)
        finally:
            partial.unlink(missing_ok=True)
    return path


def seed_files(
    *,
    instance_id: str,
    hostname: str,
    admin_username: str,
    ssh_public_keys: Sequence[str],
    password_hash: str | None = None,
    custom_data: bytes | None = None,
) -> dict[str, bytes]:
    """The seed's files (name -> content), after checking every value."""
    if not INSTANCE_ID_PATTERN.fullmatch(instance_id):
        raise ValueError(f"instance_id {instance_id!r}: 1 to 128 letters, digits, '.', '_', ':' or '-'")
    if len(hostname) > 253 or not HOSTNAME_PATTERN.fullmatch(hostname):
        raise ValueError(f"hostname {hostname!r} is not a valid host name")
    problem = admin_username_problem(admin_username)
    if problem:
        raise ValueError(problem)
    keys = [key.strip() for key in ssh_public_keys]
    for key in keys:
        if not AUTHORIZED_KEY_PATTERN.fullmatch(key):
            raise ValueError(f"not an OpenSSH public key line: {key[:40]!r}…")
    if password_hash is not None and not PASSWORD_HASH_PATTERN.fullmatch(password_hash):
        raise ValueError("password_hash is not a crypt(3) hash (see galley.domain.virtual_machine.hash_password)")

    user: dict = {"name": admin_username, "groups": ["sudo"], "shell": "/bin/bash",
                  "sudo": ["ALL=(ALL) NOPASSWD:ALL"], "ssh_authorized_keys": keys}
    if password_hash is None:
        user["lock_passwd"] = True
    else:
        user["lock_passwd"] = False
        user["hashed_passwd"] = password_hash
    files = {
        META_DATA: f"instance-id: {instance_id}\nlocal-hostname: {hostname}\n".encode(),
        USER_DATA: custom_data if custom_data is not None else EMPTY_CLOUD_CONFIG,
        # JSON is YAML: no quoting rules to get wrong.
        VENDOR_DATA: b"#cloud-config\n" + json.dumps({"users": ["default", user]}, indent=1).encode() + b"\n",
        ADMIN_USERNAME_FILE: f"{admin_username}\n".encode(),
        AUTHORIZED_KEYS_FILE: "".join(f"{key}\n" for key in keys).encode(),
    }
    if password_hash is not None:
        files[PASSWORD_HASH_FILE] = f"{password_hash}\n".encode()
    if custom_data is not None:
        files[CUSTOM_DATA_FILE] = custom_data
    return files


def _run(command: list[str]) -> None:
    done = subprocess.run(command, capture_output=True, text=True, timeout=60,
                          env={**os.environ, "MTOOLS_SKIP_CHECK": "1", "LC_ALL": "C.UTF-8"})
    if done.returncode != 0:
        raise SeedError(f"{command[0]} exited {done.returncode}: {(done.stdout + done.stderr).strip()[-500:]}")
