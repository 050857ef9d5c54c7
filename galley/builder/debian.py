"""Build a real, bootable Debian raw disk image, without mounting anything.

One pipeline of named steps, each small enough to read at once:

    bootstrap   debootstrap into a temporary root folder, or unpack the cached result
    configure   fstab, hostname, locked root password, serial console, DHCP networking,
                the GRUB configuration, the `galley-validate` hook, Galley's provisioning
                agent and `galley-deprovision` (galley.builder.provisioning)
    generalize  empty machine-id, no SSH host keys, no apt lists, logs or caches
    mkfs        `mkfs.ext4 -d <root folder>` on a separate file (no mount)
    partition   `sfdisk` on the raw file: one bootable Linux partition at 1 MiB
    copy        `dd` the filesystem into the partition's offset (sparse, notrunc)
    bootloader  GRUB for BIOS (i386-pc): `grub-mkimage` builds core.img, which is written
                into the gap between the MBR and the partition, and GRUB's boot.img into the
                MBR's code area (the partition table is left as sfdisk wrote it)

Host requirements (Debian packages): debootstrap, e2fsprogs, fdisk, coreutils, tar, zstd
(optional, faster cache), grub-pc-bin and grub-common (grub-mkimage and the i386-pc modules).
Runs as root (debootstrap and chroot need it).

The image boots on its own under any BIOS machine (QEMU's SeaBIOS included): GRUB finds the
root filesystem by UUID and loads `/vmlinuz` and `/initrd.img`, the symlinks Debian keeps
pointing at the newest kernel, so a kernel upgrade inside the guest stays bootable.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import re
import shutil
import struct
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from . import provisioning

log = logging.getLogger("galley.builder.debian")

GIB = 1024 ** 3
MIB = 1024 ** 2
SECTOR = 512
PARTITION_START_SECTOR = 2048  # 1 MiB: room for GRUB's core.img between MBR and partition

DEFAULT_MIRROR = "http://deb.debian.org/debian"
ROOT_LABEL = "galley-root"

# Kept small: a kernel, systemd as init, udev, networkd's DHCP and resolved's DNS (which needs
# a D-Bus system bus), e2fsprogs for fsck at boot, zstd for a faster initramfs; what a VM needs:
# SSH (host keys are made on each machine's first boot by Galley's provisioning agent), QEMU's
# guest agent (run-command; udev starts it when the virtio port org.qemu.guest_agent.0 appears)
# and sudo for the provisioned admin user.
DEFAULT_PACKAGES = (
    "linux-image-amd64",
    "systemd-sysv",
    "udev",
    "dbus",
    "systemd-resolved",
    "e2fsprogs",
    "iproute2",
    "zstd",
    "openssh-server",
    "qemu-guest-agent",
    "sudo",
)

# Bump when what goes into the cached debootstrap tarball changes meaning.
_CACHE_FORMAT = 1

GRUB_PLATFORM_DIR = Path("/usr/lib/grub/i386-pc")
# Embedded in core.img; grub-mkimage adds their dependencies itself.
GRUB_CORE_MODULES = (
    "biosdisk", "part_msdos", "ext2", "search_fs_uuid", "normal", "linux",
    "echo", "test", "configfile", "serial", "terminal",
)

VALIDATE_LABEL = "GALLEYVAL"
VALIDATE_SCRIPT_PATH = "usr/local/sbin/galley-validate"
VALIDATE_UNIT_NAME = "galley-validate.service"
# Markers the hook writes to the serial console; galley.builder.boot parses them.
OUTPUT_BEGIN = "===GALLEY-VALIDATE-OUTPUT-BEGIN==="
OUTPUT_END = "===GALLEY-VALIDATE-OUTPUT-END"
EXIT_PREFIX = "GALLEY-VALIDATE-EXIT="


class BuildError(RuntimeError):
    """A build step failed; `step` names it and the message carries the tool's output tail."""

    def __init__(self, step: str, message: str):
        super().__init__(f"{step}: {message}")
        self.step = step


# --------------------------------------------------------------------------- the pipeline

def build_debian_image(
    out_path: str | os.PathLike,
    *,
    suite: str = "bookworm",
    size_gib: int | float = 2,
    mirror: str | None = None,
    cache_dir: str | os.PathLike | None = None,
    packages: Iterable[str] = DEFAULT_PACKAGES,
    hostname: str = "debian",
    work_dir: str | os.PathLike | None = None,
    progress: Callable[[str], None] | None = None,
) -> dict:
    """Build a bootable, generalized Debian raw disk image at `out_path`.

    `cache_dir` keeps the downloaded .debs and a tarball of the debootstrap result keyed by
    suite, mirror and package list, so a second build skips debootstrap. `progress` is called
    with one line per step (for a job log). Returns metadata: virtual_size, kernel_version,
    packages_count, filesystem_uuid, partition_offset, bootloader, cache_hit, steps (seconds
    per step) and seconds in all.
    """
    if os.geteuid() != 0:
        raise BuildError("preflight", "building an image needs root (debootstrap, chroot)")
    _require_tools("debootstrap", "chroot", "tar", "mkfs.ext4", "sfdisk", "dd", "grub-mkimage")
    if not (GRUB_PLATFORM_DIR / "boot.img").is_file():
        raise BuildError("preflight", f"{GRUB_PLATFORM_DIR}/boot.img is missing: install grub-pc-bin")
    out_path = Path(out_path)
    size_bytes = int(size_gib * GIB) // MIB * MIB
    if size_bytes < 1 * GIB:
        raise BuildError("preflight", f"size_gib={size_gib}: at least 1 GiB is needed")
    mirror = (mirror or os.environ.get("GALLEY_DEBIAN_MIRROR") or DEFAULT_MIRROR).rstrip("/")
    packages = tuple(sorted({p.strip() for p in packages if p.strip()}))
    cache = Path(cache_dir) if cache_dir is not None else None
    say = progress or (lambda line: None)

    steps: dict[str, float] = {}
    started = time.monotonic()

    @contextmanager
    def step(name: str) -> Iterator[None]:
        t0 = time.monotonic()
        say(f"{name}: started")
        log.info("step %s started", name)
        yield
        steps[name] = round(time.monotonic() - t0, 2)
        say(f"{name}: done in {steps[name]:.1f} s")
        log.info("step %s done in %.1f s", name, steps[name])

    work = Path(tempfile.mkdtemp(prefix="galley-debian-", dir=work_dir))
    root = work / "root"
    fs_image = work / "rootfs.ext4"
    fs_uuid = str(uuid.uuid4())
    try:
        with step("bootstrap"):
            cache_hit = _bootstrap(root, suite=suite, mirror=mirror, packages=packages, cache=cache, say=say)
        with step("configure"):
            kernel_version = _configure(root, suite=suite, mirror=mirror, hostname=hostname, fs_uuid=fs_uuid)
        with step("generalize"):
            _generalize(root)
        packages_count = _installed_package_count(root)
        partition_bytes = size_bytes - PARTITION_START_SECTOR * SECTOR
        with step("mkfs"):
            _make_filesystem(root, fs_image, partition_bytes, fs_uuid)
        tmp_out = out_path.with_name(f".{out_path.name}.partial")
        with step("partition"):
            _partition(tmp_out, size_bytes)
        with step("copy"):
            _copy_into_partition(fs_image, tmp_out)
        with step("bootloader"):
            _install_grub(tmp_out, fs_uuid)
        os.replace(tmp_out, out_path)
    finally:
        t0 = time.monotonic()
        _remove_tree(work)
        steps["cleanup"] = round(time.monotonic() - t0, 2)
        leftover = out_path.with_name(f".{out_path.name}.partial")
        if leftover.exists():
            leftover.unlink()

    return {
        "path": str(out_path),
        "format": "raw",
        "virtual_size": out_path.stat().st_size,
        "suite": suite,
        "kernel_version": kernel_version,
        "packages_count": packages_count,
        "filesystem_uuid": fs_uuid,
        "partition_offset": PARTITION_START_SECTOR * SECTOR,
        "bootloader": "grub-i386-pc",
        "cache_hit": cache_hit,
        "steps": steps,
        "seconds": round(time.monotonic() - started, 2),
    }


# --------------------------------------------------------------------------- bootstrap

def bootstrap_cache_key(suite: str, mirror: str, packages: Iterable[str]) -> str:
    """The name part that identifies one debootstrap result in the cache."""
    described = json.dumps({"format": _CACHE_FORMAT, "suite": suite, "mirror": mirror.rstrip("/"),
                            "variant": "minbase", "arch": "amd64",
                            "packages": sorted(set(packages))}, sort_keys=True)
    return hashlib.sha256(described.encode()).hexdigest()[:16]


def _bootstrap(root: Path, *, suite: str, mirror: str, packages: tuple[str, ...],
               cache: Path | None, say: Callable[[str], None]) -> bool:
    """Fill `root` with a minimal Debian; True when it came from the cached tarball."""
    if cache is None:
        _debootstrap(root, suite=suite, mirror=mirror, packages=packages, deb_cache=None)
        return False
    cache.mkdir(parents=True, exist_ok=True)
    key = bootstrap_cache_key(suite, mirror, packages)
    stem = cache / f"debootstrap-{suite}-{key}"
    # One builder at a time fills a given cache entry; the others wait and then reuse it.
    with open(cache / f".lock-{key}", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for tarball in (stem.with_suffix(".tar.zst"), stem.with_suffix(".tar.gz")):
            if tarball.is_file():
                say(f"bootstrap: unpacking cached {tarball.name}")
                root.mkdir()
                try:
                    _run("bootstrap", ["tar", "--numeric-owner", "--xattrs", "--xattrs-include=*",
                                       *_tar_compression(tarball), "-xpf", str(tarball), "-C", str(root)])
                    return True
                except BuildError as broken:  # a damaged cache entry: drop it and bootstrap anew
                    say(f"bootstrap: cached {tarball.name} is unusable, bootstrapping anew ({broken})")
                    tarball.unlink()
                    _remove_tree(root)
        deb_cache = cache / "debs"
        deb_cache.mkdir(exist_ok=True)
        _debootstrap(root, suite=suite, mirror=mirror, packages=packages, deb_cache=deb_cache)
        tarball = stem.with_suffix(".tar.zst" if shutil.which("zstd") else ".tar.gz")
        partial = tarball.with_name(tarball.name + ".partial")
        say(f"bootstrap: caching the result as {tarball.name}")
        _run("bootstrap", ["tar", "--numeric-owner", "--xattrs", "--xattrs-include=*", "--one-file-system",
                           *_tar_compression(tarball), "-cf", str(partial), "-C", str(root), "."])
        os.replace(partial, tarball)
        return False


def _tar_compression(tarball: Path) -> list[str]:
    return ["-I", "zstd -T0 -3"] if tarball.name.endswith(".zst") else ["-z"]


def _debootstrap(root: Path, *, suite: str, mirror: str, packages: tuple[str, ...],
                 deb_cache: Path | None) -> None:
    command = ["debootstrap", "--variant=minbase", "--arch=amd64", "--components=main",
               f"--include={','.join(packages)}"]
    if deb_cache is not None:
        command.append(f"--cache-dir={deb_cache}")
    command += [suite, str(root), mirror]
    try:
        _run("bootstrap", command, timeout=3600)
    finally:
        _unmount_below(root)  # debootstrap mounts /proc (and more) inside the target
    # Leftovers debootstrap keeps when a package's configuration was retried.
    for stale in (root / "boot").glob("*.dpkg-bak"):
        stale.unlink()
    for stale in (root / "boot").glob("initrd.img-*.new"):
        stale.unlink()


# --------------------------------------------------------------------------- configure

def _configure(root: Path, *, suite: str, mirror: str, hostname: str, fs_uuid: str) -> str:
    """Write the image's configuration into `root`; returns the kernel version."""
    kernel_version = _kernel_version(root)
    etc = root / "etc"

    _write(etc / "hostname", f"{hostname}\n")
    _write(etc / "hosts", f"127.0.0.1\tlocalhost\n127.0.1.1\t{hostname}\n"
                          "::1\tlocalhost ip6-localhost ip6-loopback\nff02::1\tip6-allnodes\nff02::2\tip6-allrouters\n")
    _write(etc / "fstab", "# <file system>  <mount point>  <type>  <options>  <dump>  <pass>\n"
                          f"UUID={fs_uuid}  /  ext4  errors=remount-ro  0  1\n")
    _lock_root_password(etc / "shadow")
    _write_apt_sources(root, suite, mirror)

    # Networking: systemd-networkd asks DHCP on every wired interface; resolved takes the DNS.
    _write(etc / "systemd/network/80-galley-dhcp.network",
           "[Match]\nName=en* eth*\n\n[Network]\nDHCP=yes\n\n[DHCPv4]\nUseDomains=yes\n")
    resolv = etc / "resolv.conf"
    if (root / "lib/systemd/systemd-resolved").exists() or (root / "usr/lib/systemd/systemd-resolved").exists():
        if resolv.exists() or resolv.is_symlink():
            resolv.unlink()
        resolv.symlink_to("../run/systemd/resolve/stub-resolv.conf")
        units = ["systemd-networkd.service", "systemd-resolved.service"]
    else:
        _write(resolv, "")
        units = ["systemd-networkd.service"]

    # The validation hook used by `galley vm boot-test`.
    _write(root / VALIDATE_SCRIPT_PATH, VALIDATE_HOOK, mode=0o755)
    _write(etc / "systemd/system" / VALIDATE_UNIT_NAME, VALIDATE_UNIT)
    units.append(VALIDATE_UNIT_NAME)

    # Galley's provisioning agent (SSH host keys, osProfile from a CIDATA seed) and galley-deprovision.
    for path, (text, mode) in provisioning.guest_files().items():
        _write(root / path, text, mode=mode)
    units += provisioning.GUEST_UNITS

    _run("configure", ["chroot", str(root), "systemctl", "enable", *units])

    _write_grub_config(root, fs_uuid, suite)
    return kernel_version


def _kernel_version(root: Path) -> str:
    versions = [p.name.removeprefix("vmlinuz-") for p in (root / "boot").glob("vmlinuz-*")]
    if not versions:
        raise BuildError("configure", "no kernel in /boot: is linux-image-amd64 in the package list?")
    missing = [v for v in versions if not (root / "boot" / f"initrd.img-{v}").is_file()]
    if missing:
        raise BuildError("configure", f"no initramfs for kernel {', '.join(missing)}")
    return max(versions, key=_version_sort_key)


def _version_sort_key(version: str) -> list:
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"[.\-+~]", version)]


def _lock_root_password(shadow: Path) -> None:
    lines = shadow.read_text().splitlines()
    for i, line in enumerate(lines):
        fields = line.split(":")
        if fields[0] == "root":
            fields[1] = "*"  # no password can match: root logs in by key or not at all
            lines[i] = ":".join(fields)
    _write(shadow, "\n".join(lines) + "\n", mode=0o640, keep_owner=True)


def _write_apt_sources(root: Path, suite: str, mirror: str) -> None:
    security = re.sub(r"/debian$", "/debian-security", mirror) if mirror.endswith("/debian") else None
    stanzas = [f"Types: deb\nURIs: {mirror}\nSuites: {suite} {suite}-updates\nComponents: main\n"
               "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n"]
    if security:
        stanzas.append(f"Types: deb\nURIs: {security}\nSuites: {suite}-security\nComponents: main\n"
                       "Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg\n")
    _write(root / "etc/apt/sources.list.d/debian.sources", "\n".join(stanzas))
    legacy = root / "etc/apt/sources.list"
    if legacy.exists():
        legacy.unlink()


def kernel_command_line(fs_uuid: str) -> str:
    # The last console= is /dev/console, where systemd writes and a serial getty starts.
    # panic=10: a kernel that cannot boot reboots, which ends a QEMU run with -no-reboot.
    return f"root=UUID={fs_uuid} ro console=tty0 console=ttyS0,115200n8 panic=10"


def _write_grub_config(root: Path, fs_uuid: str, suite: str) -> None:
    grub = root / "boot/grub"
    platform = grub / "i386-pc"
    platform.mkdir(parents=True, exist_ok=True)
    for module in GRUB_PLATFORM_DIR.iterdir():
        if module.suffix in (".mod", ".lst"):
            shutil.copyfile(module, platform / module.name)
    _write(grub / "grub.cfg", f"""\
# Written by Galley's Debian image builder. GRUB lives outside the image's package set:
# /vmlinuz and /initrd.img are Debian's symlinks to the newest kernel.
serial --unit=0 --speed=115200 --word=8 --parity=no --stop=1
terminal_input serial console
terminal_output serial console
set timeout=1
set default=0
insmod part_msdos
insmod ext2
search --no-floppy --fs-uuid --set=root {fs_uuid}
menuentry 'Debian GNU/Linux ({suite})' --id debian {{
    echo 'Loading Linux ...'
    linux /vmlinuz {kernel_command_line(fs_uuid)}
    echo 'Loading initial ramdisk ...'
    initrd /initrd.img
}}
menuentry 'Debian GNU/Linux ({suite}, previous kernel)' --id debian-old {{
    echo 'Loading Linux ...'
    linux /vmlinuz.old {kernel_command_line(fs_uuid)}
    echo 'Loading initial ramdisk ...'
    initrd /initrd.img.old
}}
""")


# --------------------------------------------------------------------------- generalize

def _generalize(root: Path) -> None:
    """Remove what makes one machine itself, so every VM made from the image is new."""
    _write(root / "etc/machine-id", "", mode=0o444)  # empty: systemd makes one on first boot
    for path in ("var/lib/dbus/machine-id", "var/lib/systemd/random-seed",
                 "var/lib/systemd/credential.secret", "root/.bash_history"):
        p = root / path
        if p.is_file() and not p.is_symlink():
            p.unlink()
    for key in (root / "etc/ssh").glob("ssh_host_*"):
        key.unlink()
    for pattern in ("var/lib/apt/lists/*", "var/cache/apt/*.bin", "var/cache/apt/archives/*.deb",
                    "var/cache/debconf/*-old", "var/lib/dpkg/*-old", "tmp/*", "var/tmp/*"):
        for p in root.glob(pattern):
            if p.is_dir() and not p.is_symlink():
                if p.name != "partial":
                    shutil.rmtree(p)
            elif p.name != "lock":
                p.unlink()
    for logfile in (root / "var/log").rglob("*"):
        if logfile.is_file() and not logfile.is_symlink():
            logfile.write_bytes(b"")


def _installed_package_count(root: Path) -> int:
    status = (root / "var/lib/dpkg/status").read_text(errors="replace")
    return len(re.findall(r"^Status: install ok installed$", status, flags=re.MULTILINE))


# --------------------------------------------------------------------------- disk

def _make_filesystem(root: Path, fs_image: Path, size: int, fs_uuid: str) -> None:
    with open(fs_image, "wb") as f:
        f.truncate(size)
    _run("mkfs", ["mkfs.ext4", "-q", "-F", "-L", ROOT_LABEL, "-U", fs_uuid, "-d", str(root), str(fs_image)])


def _partition(disk: Path, size: int) -> None:
    with open(disk, "wb") as f:
        f.truncate(size)
    sectors = size // SECTOR - PARTITION_START_SECTOR
    label_id = "0x" + os.urandom(4).hex()
    script = (f"label: dos\nlabel-id: {label_id}\nunit: sectors\n\n"
              f"start={PARTITION_START_SECTOR}, size={sectors}, type=83, bootable\n")
    _run("partition", ["sfdisk", "--no-reread", "--no-tell-kernel", "--quiet", str(disk)], input=script)
    table = json.loads(_run("partition", ["sfdisk", "--json", str(disk)]))["partitiontable"]
    (only,) = table["partitions"]
    if only["start"] != PARTITION_START_SECTOR or only["size"] != sectors:
        raise BuildError("partition", f"sfdisk made {only}, wanted start={PARTITION_START_SECTOR} size={sectors}")


def _copy_into_partition(fs_image: Path, disk: Path) -> None:
    _run("copy", ["dd", f"if={fs_image}", f"of={disk}", "bs=1M", f"seek={PARTITION_START_SECTOR * SECTOR // MIB}",
                  "conv=notrunc,sparse", "status=none"])


def _install_grub(disk: Path, fs_uuid: str) -> None:
    """Make the disk boot on BIOS machines with GRUB, writing only the first 1 MiB.

    core.img (diskboot.img + the GRUB kernel + modules) goes to sectors 1..; boot.img's
    default pointer (LBA 1) and diskboot's default block list (from LBA 2, length set by
    grub-mkimage) already describe that place, so nothing needs patching beyond a check.
    boot.img's code goes to the first 440 bytes of the MBR, leaving the disk signature and
    the partition table alone.
    """
    with tempfile.TemporaryDirectory(prefix="galley-grub-") as tmp:
        embedded = Path(tmp) / "embedded.cfg"
        core = Path(tmp) / "core.img"
        embedded.write_text(f"search.fs_uuid {fs_uuid} root\nset prefix=($root)/boot/grub\n")
        _run("bootloader", ["grub-mkimage", "-O", "i386-pc", "-d", str(GRUB_PLATFORM_DIR),
                            "-c", str(embedded), "-p", "/boot/grub", "-o", str(core), *GRUB_CORE_MODULES])
        core_bytes = core.read_bytes()
    boot_img = (GRUB_PLATFORM_DIR / "boot.img").read_bytes()
    if len(boot_img) != SECTOR or boot_img[510:512] != b"\x55\xaa":
        raise BuildError("bootloader", "unexpected boot.img")
    core_sectors = -(-len(core_bytes) // SECTOR)
    if core_sectors > PARTITION_START_SECTOR - 1:
        raise BuildError("bootloader", f"core.img is {len(core_bytes)} bytes: no room before the partition")
    # boot.img: LBA of core.img's first sector, a little-endian u64 at 0x5c.
    (kernel_sector,) = struct.unpack_from("<Q", boot_img, 0x5C)
    # diskboot.img ends with a block list: u64 start LBA, u16 sector count, u16 load segment.
    start, count, _segment = struct.unpack_from("<QHH", core_bytes, SECTOR - 12)
    if kernel_sector != 1 or start != 2 or count != core_sectors - 1:
        raise BuildError("bootloader", f"GRUB images do not have the expected defaults "
                                       f"(kernel_sector={kernel_sector}, blocklist={start}+{count}, "
                                       f"core.img={core_sectors} sectors)")
    with open(disk, "r+b") as f:
        mbr = bytearray(f.read(SECTOR))
        mbr[0:440] = boot_img[0:440]
        f.seek(0)
        f.write(mbr)
        f.seek(SECTOR)
        f.write(core_bytes)


# --------------------------------------------------------------------------- helpers

def _require_tools(*names: str) -> None:
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        raise BuildError("preflight", f"missing host tools: {', '.join(missing)} "
                                      "(Debian: debootstrap e2fsprogs fdisk grub-pc-bin grub-common)")


def _run(step: str, command: list[str], *, input: str | None = None, timeout: float = 1800) -> str:
    log.debug("run %s", " ".join(command))
    try:
        done = subprocess.run(command, input=input, capture_output=True, text=True, timeout=timeout,
                              env={**os.environ, "LC_ALL": "C.UTF-8", "DEBIAN_FRONTEND": "noninteractive"})
    except subprocess.TimeoutExpired:
        raise BuildError(step, f"{command[0]} took more than {timeout:.0f} s") from None
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).strip().splitlines()[-25:])
        raise BuildError(step, f"{' '.join(command[:3])}… exited {done.returncode}:\n{tail}")
    return done.stdout


def _write(path: Path, text: str, *, mode: int = 0o644, keep_owner: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    owner = path.stat() if keep_owner and path.exists() else None
    if path.is_symlink():
        path.unlink()
    path.write_text(text)
    os.chmod(path, mode)
    if owner is not None:
        os.chown(path, owner.st_uid, owner.st_gid)


def _mounts_below(path: Path) -> list[str]:
    prefix = str(path.resolve()).rstrip("/") + "/"
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mount_point = line.split()[4].replace("\\040", " ")
            if mount_point.startswith(prefix) or mount_point == prefix.rstrip("/"):
                found.append(mount_point)
    return found


def _unmount_below(path: Path) -> None:
    for mount_point in sorted(_mounts_below(path), key=len, reverse=True):
        subprocess.run(["umount", "-l", mount_point], capture_output=True)


def _remove_tree(path: Path) -> None:
    """Delete a work folder, never following into a mount (a bound /dev, a /proc)."""
    if not path.exists():
        return
    _unmount_below(path)
    if _mounts_below(path):
        log.warning("leaving %s in place: something is still mounted below it", path)
        return
    shutil.rmtree(path, ignore_errors=True)


# --------------------------------------------------------------------------- guest files

VALIDATE_UNIT = f"""\
[Unit]
Description=Galley image validation hook (runs validate.sh from a disk labelled {VALIDATE_LABEL})
# Started by the disk's appearance (see [Install]); runs once the system is up.
ConditionPathExists=/dev/disk/by-label/{VALIDATE_LABEL}
After=multi-user.target

[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/{VALIDATE_SCRIPT_PATH}
TimeoutStartSec=infinity
StandardOutput=journal

[Install]
WantedBy=dev-disk-by\\x2dlabel-{VALIDATE_LABEL}.device
"""

VALIDATE_HOOK = f"""\
#!/bin/sh
# Galley validation hook: when a disk labelled {VALIDATE_LABEL} is attached, mount it read-only,
# run validate.sh from it as root under a timeout, write its exit code and output to the
# serial console between markers, and power off. Settings may come from galley-validate.conf
# on that disk: TIMEOUT=<seconds> (default 600), POWEROFF=0|1, WAIT_ONLINE=<seconds>.
# Only the last MiB of output is written (the serial line is slow).
set -u
DEVICE=/dev/disk/by-label/{VALIDATE_LABEL}
MOUNT=/run/galley-validate
OUT=/run/galley-validate.out
CONSOLE=/dev/ttyS0
[ -e "$DEVICE" ] || exit 0

TIMEOUT=600
MAX_OUTPUT=1048576
POWEROFF=1
WAIT_ONLINE=20
code=0
mkdir -p "$MOUNT"
if ! mount -o ro "$DEVICE" "$MOUNT"; then
    echo "cannot mount $DEVICE" > "$OUT"
    code=125
else
    if [ -r "$MOUNT/galley-validate.conf" ]; then
        value=$(sed -n 's/^TIMEOUT=\\([0-9][0-9]*\\)$/\\1/p' "$MOUNT/galley-validate.conf" | tail -n 1)
        [ -n "$value" ] && TIMEOUT=$value
        value=$(sed -n 's/^POWEROFF=\\([01]\\)$/\\1/p' "$MOUNT/galley-validate.conf" | tail -n 1)
        [ -n "$value" ] && POWEROFF=$value
        value=$(sed -n 's/^WAIT_ONLINE=\\([0-9][0-9]*\\)$/\\1/p' "$MOUNT/galley-validate.conf" | tail -n 1)
        [ -n "$value" ] && WAIT_ONLINE=$value
    fi
    # Give DHCP a moment so a script can check the network; never fatal.
    if [ "$WAIT_ONLINE" -gt 0 ] && [ -x /lib/systemd/systemd-networkd-wait-online ]; then
        /lib/systemd/systemd-networkd-wait-online --any --timeout="$WAIT_ONLINE" >/dev/null 2>&1 || true
    fi
    if [ ! -f "$MOUNT/validate.sh" ]; then
        echo "no validate.sh on $DEVICE" > "$OUT"
        code=127
    else
        cd "$MOUNT"
        if [ -x validate.sh ] && [ "$(head -c 2 validate.sh)" = "#!" ]; then
            timeout --kill-after=10 "$TIMEOUT" "$MOUNT/validate.sh" > "$OUT" 2>&1 < /dev/null
        else
            timeout --kill-after=10 "$TIMEOUT" /bin/sh "$MOUNT/validate.sh" > "$OUT" 2>&1 < /dev/null
        fi
        code=$?
        cd /
    fi
fi

# Keep the console to ourselves while the result is written: kernel messages off, systemd's
# status lines off (SIGRTMIN+21, i.e. signal 55 with glibc), and the serial getty stopped,
# which would otherwise print its prompt in the middle and, stopped by the power-off,
# hang up the line and throw away what the UART has not sent yet.
dmesg -n 1 2>/dev/null || true
kill -55 1 2>/dev/null || true
systemctl stop serial-getty@ttyS0.service 2>/dev/null || true
# In a subshell: this script is a session leader, and opening the tty here would make it its
# controlling terminal, hung up (and flushed) when the script exits.
(
    {{
        printf '\n{OUTPUT_BEGIN}\n'
        size=$(wc -c < "$OUT")
        if [ "$size" -gt "$MAX_OUTPUT" ]; then
            # keep the end, where the errors usually are
            printf '[galley-validate: %s bytes of output, the last %s follow]\n' "$size" "$MAX_OUTPUT"
            tail -c "$MAX_OUTPUT" "$OUT"
        else
            cat "$OUT"
        fi
        printf '\n{OUTPUT_END} bytes=%s===\n' "$size"
        printf '{EXIT_PREFIX}%s\n' "$code"
    }} > "$CONSOLE"
    # Setting the line's own settings again is a tcsetattr(TCSADRAIN): it returns once the
    # UART has sent everything above.
    stty -F "$CONSOLE" "$(stty -F "$CONSOLE" -g)" 2>/dev/null || sleep 2
)
umount "$MOUNT" 2>/dev/null || true
if [ "$POWEROFF" = 1 ]; then
    systemctl --no-block poweroff
else
    kill -54 1 2>/dev/null || true  # SIGRTMIN+20: status lines back on
    systemctl start serial-getty@ttyS0.service 2>/dev/null || true
fi
exit 0
"""

