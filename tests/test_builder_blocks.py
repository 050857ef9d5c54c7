"""The builder's building blocks: a real Debian 12 image built, booted and validated under QEMU.

The slow tests build one image per session; the debootstrap result is cached under
$GALLEY_TEST_CACHE (default /var/cache/galley-tests) so a rerun skips the download.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest

from galley.builder.boot import BootTimeout, boot_test, make_validation_disk, parse_validation_result
from galley.builder.debian import EXIT_PREFIX, OUTPUT_BEGIN, OUTPUT_END, build_debian_image

GIB = 1024 ** 3
BLOB = bytes(range(256)) * 64
HOST_TOOLS = ("debootstrap", "mkfs.ext4", "sfdisk", "grub-mkimage", "qemu-system-x86_64")


def _missing_requirements() -> list[str]:
    missing = [tool for tool in HOST_TOOLS if shutil.which(tool) is None]
    if not Path("/usr/lib/grub/i386-pc/boot.img").is_file():
        missing.append("grub-pc-bin")
    if os.geteuid() != 0:
        missing.append("root")
    return missing


@pytest.fixture(scope="session")
def debian_image(tmp_path_factory):
    missing = _missing_requirements()
    if missing:
        message = f"the image builder needs {', '.join(missing)}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    cache = Path(os.environ.get("GALLEY_TEST_CACHE", "/var/cache/galley-tests"))
    out = tmp_path_factory.mktemp("builder") / "debian12.raw"
    metadata = build_debian_image(out, cache_dir=cache, size_gib=2)
    print(f"\nbuilt {out}: {json.dumps(metadata)}")
    return out, metadata


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(4 * 1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


# --------------------------------------------------------------------------- slow: real images

@pytest.mark.slow
def test_built_image_layout(debian_image):
    image, metadata = debian_image
    assert metadata["virtual_size"] == 2 * GIB == image.stat().st_size
    assert metadata["kernel_version"].startswith("6.1.")
    assert metadata["packages_count"] > 50
    assert set(metadata["steps"]) == {"bootstrap", "configure", "generalize", "mkfs", "partition", "copy", "bootloader",
                                      "cleanup"}
    table = json.loads(subprocess.run(["sfdisk", "--json", str(image)], capture_output=True, text=True,
                                      check=True).stdout)["partitiontable"]
    assert table["label"] == "dos"
    (root,) = table["partitions"]
    assert root["start"] == 2048 and root["type"] == "83" and root.get("bootable") is True
    with open(image, "rb") as f:
        mbr = f.read(512)
        core = f.read(512)
    assert mbr[510:] == b"\x55\xaa"
    assert mbr[0:440] == Path("/usr/lib/grub/i386-pc/boot.img").read_bytes()[0:440]
    start, count, _ = struct.unpack_from("<QHH", core, 500)
    assert start == 2 and count > 0  # core.img's block list points right behind its first sector

    def debugfs(request: str) -> str:
        done = subprocess.run(["debugfs", "-R", request, f"{image}?offset={metadata['partition_offset']}"],
                              capture_output=True, text=True, check=True)
        return done.stdout

    assert "Size: 0" in debugfs("stat /etc/machine-id")  # generalized: empty, made at first boot
    assert f"UUID={metadata['filesystem_uuid']}" in debugfs("cat /etc/fstab")
    assert "galley-validate" in debugfs("cat /etc/systemd/system/galley-validate.service")
    assert "search --no-floppy --fs-uuid" in debugfs("cat /boot/grub/grub.cfg")


@pytest.mark.slow
def test_image_boots_and_runs_the_validation_script(debian_image):
    image, metadata = debian_image
    script = r"""
set -e
cat /etc/os-release
# generalized: the image's /etc/machine-id was empty, so systemd made one at this first boot
# (and committed it to the snapshot once / was writable)
dmesg | grep "Initializing machine ID from random generator" >/dev/null && echo machine-id-made-at-first-boot
test -s /etc/machine-id
grep -q '^root:\*:' /etc/shadow && echo root-password-locked
echo "fstab: $(grep -v '^#' /etc/fstab)"
echo "hostname: $(cat /etc/hostname)"
echo "kernel: $(uname -r)"
echo "cmdline: $(cat /proc/cmdline)"
echo "whoami: $(id -u)"
findmnt -n -o SOURCE,FSTYPE,OPTIONS /
ip -4 -o addr show scope global
systemctl is-active systemd-networkd
# extra files sit next to validate.sh, in the working folder
cat payload/hello.txt
sha256sum blob.bin
"""
    result = boot_test(image, script, timeout=300,
                       extra_files={"payload/hello.txt": "hello from the host\n", "blob.bin": BLOB})
    print(f"\nboot to validation result: {result.seconds} s ({result.accel})\n{result.output}")
    assert result.exit_code == 0, result.output + "\n" + result.serial_log[-3000:]
    assert "Debian GNU/Linux 12" in result.output
    assert "root-password-locked" in result.output
    assert "machine-id-made-at-first-boot" in result.output
    assert "whoami: 0" in result.output
    assert f"kernel: {metadata['kernel_version']}" in result.output
    assert f"root=UUID={metadata['filesystem_uuid']}" in result.output
    assert "console=ttyS0" in result.output
    assert "inet 10.0.2.15/" in result.output  # DHCP from QEMU's user network via networkd
    assert "hello from the host" in result.output
    assert f"{hashlib.sha256(BLOB).hexdigest()}  blob.bin" in result.output
    assert result.powered_off
    assert "GRUB" in result.serial_log or "Booting" in result.serial_log


@pytest.fixture(scope="module")
def failing_run_that_writes(debian_image):
    image, _ = debian_image
    before = _sha256(image)
    script = """
echo "writing to the root filesystem"
echo scribble > /galley-was-here && sync
rm -rf /usr/share/doc && sync
dd if=/dev/urandom of=/var/tmp/noise bs=1M count=8 status=none && sync
ls -la /galley-was-here
echo "about to fail" >&2
exit 7
"""
    result = boot_test(image, script, timeout=300)
    after = _sha256(image)
    return result, before, after


@pytest.mark.slow
def test_failing_script_returns_its_exit_code(failing_run_that_writes):
    result, _, _ = failing_run_that_writes
    assert result.exit_code == 7, result.serial_log[-3000:]
    assert "about to fail" in result.output
    assert "/galley-was-here" in result.output  # the write itself worked inside the guest


@pytest.mark.slow
def test_guest_writes_do_not_change_the_image(failing_run_that_writes):
    _, before, after = failing_run_that_writes
    assert before == after


@pytest.mark.slow
def test_no_result_before_the_timeout_kills_qemu(debian_image):
    image, _ = debian_image
    with pytest.raises(BootTimeout) as raised:
        boot_test(image, "true", timeout=4)
    assert raised.value.seconds < 30
    assert "no validation result within 4 s" in str(raised.value)


# --------------------------------------------------------------------------- fast: no VM

def _console(output: str, code: int) -> str:
    return (f"[  OK  ] Started something.\n\n{OUTPUT_BEGIN}\n{output}\n"
            f"{OUTPUT_END} bytes={len(output)}===\n{EXIT_PREFIX}{code}\nreboot: Power down\n")


def test_parse_validation_result():
    assert parse_validation_result("SeaBIOS\nLinux version 6.1\n") is None
    assert parse_validation_result(_console("PRETTY_NAME=Debian\nline 2\n", 0)) == (0, "PRETTY_NAME=Debian\nline 2\n")
    assert parse_validation_result(_console("no newline at the end", 3)) == (3, "no newline at the end")
    assert parse_validation_result(_console("", 0)) == (0, "")
    # half-written marker: not a result yet
    assert parse_validation_result(_console("x", 12)[:-len("\nreboot: Power down\n") - 1]) is None


def test_parse_ignores_markers_printed_by_the_script():
    fake = f"{OUTPUT_END} bytes=1===\n{EXIT_PREFIX}0\n"
    code, output = parse_validation_result(_console(fake + "real tail", 5))
    assert code == 5
    assert output == fake + "real tail"


def test_validation_disk_is_labelled_ext4_with_the_script(tmp_path):
    if shutil.which("mkfs.ext4") is None or shutil.which("debugfs") is None:
        pytest.skip("needs e2fsprogs")
    disk = tmp_path / "val.img"
    make_validation_disk(disk, "echo hi\n", extra_files={"sub/data.txt": "payload"}, settings={"TIMEOUT": "9"})
    label = subprocess.run(["e2label", str(disk)], capture_output=True, text=True, check=True).stdout.strip()
    assert label == "GALLEYVAL"

    def cat(name: str) -> str:
        return subprocess.run(["debugfs", "-R", f"cat /{name}", str(disk)], capture_output=True, text=True,
                              check=True).stdout

    assert cat("validate.sh") == "echo hi\n"
    assert cat("sub/data.txt") == "payload"
    assert cat("galley-validate.conf") == "TIMEOUT=9\n"
    with pytest.raises(ValueError):
        make_validation_disk(tmp_path / "bad.img", "true", extra_files={"../escape": "x"})
