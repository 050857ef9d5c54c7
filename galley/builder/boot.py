"""Boot a disk image under QEMU and run a validation script inside it.

The script goes on a small ext4 disk labelled GALLEYVAL (made with `mkfs.ext4 -d`, no mount)
that is attached read-only next to the image. Images built by `galley.builder.debian` carry
the `galley-validate` hook: it sees the disk, runs `validate.sh` as root under a timeout,
writes the output and the exit code between markers to the serial console, and powers off.
Here the serial console is a file that is read until the markers show up.

The tested image is attached with `snapshot=on`: the guest's writes go to a temporary overlay
and the image file is never modified (unless a caller asks for `snapshot=False` on a copy it owns).
"""
from __future__ import annotations

import functools
import logging
import os
import re
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .debian import EXIT_PREFIX, OUTPUT_BEGIN, OUTPUT_END, VALIDATE_LABEL

log = logging.getLogger("galley.builder.boot")

MIB = 1024 ** 2
QEMU = "qemu-system-x86_64"
# QEMU's -drive format names for the disk formats Galley stores.
DRIVE_FORMATS = {"raw": "raw", "qcow2": "qcow2", "vhd": "vpc", "vpc": "vpc", "vhdx": "vhdx", "vmdk": "vmdk"}
POWEROFF_GRACE_SECONDS = 20.0

_RESULT = re.compile(
    rf"^{re.escape(OUTPUT_END)} bytes=(\d+)===\n{re.escape(EXIT_PREFIX)}(\d+)\n", re.MULTILINE)
_BEGIN = re.compile(rf"^{re.escape(OUTPUT_BEGIN)}\n", re.MULTILINE)


@dataclass(frozen=True)
class BootResult:
    exit_code: int          # validate.sh's exit code (124: it hit its timeout inside the guest)
    output: str             # its standard output and error, as written between the markers
    serial_log: str         # the whole serial console, from firmware to power-off
    seconds: float          # from QEMU's start to the result
    accel: str = "tcg"      # "tcg" or "kvm"
    powered_off: bool = True  # the guest powered itself off after the result

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


class BootTestError(RuntimeError):
    """The VM never reported a result (QEMU failed, the guest crashed or powered off)."""

    def __init__(self, message: str, *, serial_log: str = "", seconds: float = 0.0):
        tail = "\n".join(serial_log.splitlines()[-40:])
        super().__init__(f"{message}\n--- serial console (last lines) ---\n{tail}" if tail else message)
        self.serial_log = serial_log
        self.seconds = seconds


class BootTimeout(BootTestError, TimeoutError):
    """No result before the timeout; QEMU was killed."""


class BootCancelled(BootTestError):
    """The cancel event was set; QEMU was killed."""


def boot_test(
    image_path: str | os.PathLike,
    script: str,
    *,
    fmt: str = "raw",
    timeout: float = 300,
    memory_mib: int = 1024,
    extra_files: Mapping[str, str | bytes | os.PathLike] | None = None,
    script_timeout: int | None = None,
    cpus: int | None = None,
    accel: str | None = None,
    work_dir: str | os.PathLike | None = None,
    cancel: threading.Event | None = None,
    extra_drives: Sequence[tuple[str | os.PathLike, str]] = (),
    qemu_args: Sequence[str] = (),
    snapshot: bool = True,
) -> BootResult:
    """Boot `image_path`, run `script` in it as root, and return its exit code and output.

    `timeout` bounds the whole run (boot included, and a first KVM attempt that stalled);
    past it QEMU is killed and BootTimeout raised with the serial log's tail. Inside the guest the script itself gets
    `script_timeout` seconds (default: 60 % of `timeout`). `extra_files` maps names on the
    validation disk (next to validate.sh, the script's working folder) to their content or a
    host file. `accel` forces "kvm" or "tcg"; by default KVM is used only if it really boots.
    Setting `cancel` kills QEMU and raises BootCancelled.
    `extra_drives` (path, format) are attached read-only after the validation disk (a seed
    disk, for instance); `qemu_args` are appended to QEMU's command line. With
    `snapshot=False` the guest writes to `image_path` itself: only for a copy the caller owns.
    """
    image = Path(image_path).resolve()
    if not image.is_file():
        raise FileNotFoundError(image)
    try:
        drive_format = DRIVE_FORMATS[fmt]
    except KeyError:
        raise ValueError(f"fmt={fmt!r}: one of {', '.join(DRIVE_FORMATS)}") from None
    if shutil.which(QEMU) is None:
        raise BootTestError(f"{QEMU} is not installed (Debian: qemu-system-x86)")
    forced = accel or os.environ.get("GALLEY_QEMU_ACCEL") or None
    if forced not in (None, "kvm", "tcg"):
        raise ValueError(f"accel={forced!r}: 'kvm' or 'tcg'")
    cpus = cpus or min(2, os.cpu_count() or 1)
    if script_timeout is None:
        script_timeout = max(10, int(timeout * 0.6))

    deadline = time.monotonic() + timeout  # a failed KVM probe's seconds count too
    with tempfile.TemporaryDirectory(prefix="galley-boot-", dir=work_dir) as tmp:
        tmp = Path(tmp)
        validation_disk = tmp / "validate.img"
        make_validation_disk(validation_disk, script, extra_files=extra_files,
                             settings={"TIMEOUT": str(script_timeout)}, work=tmp)
        run = functools.partial(_run_vm, image=image, drive_format=drive_format, validation_disk=validation_disk,
                                tmp=tmp, timeout=timeout, deadline=deadline, memory_mib=memory_mib, cpus=cpus,
                                cancel=cancel or threading.Event(),
                                extra=_extra_drive_options(extra_drives) + list(qemu_args), snapshot=snapshot)
        if forced is not None:
            return run(accel=forced, probe=False)
        if kvm_usable():
            try:
                return run(accel="kvm", probe=_kvm_verdict is None)
            except _KvmStalled as stalled:
                _set_kvm_verdict(False)
                log.warning("KVM does not boot this kernel here (%s); using TCG from now on", stalled)
        return run(accel="tcg", probe=False)


# KVM may be present and still unable to run a stock kernel (a nested host hiding CPU
# features: SeaBIOS runs, then GRUB or the kernel hangs). The first KVM boot of a
# process is watched; if the kernel never announces itself, KVM is dropped for good.
_kvm_verdict: bool | None = None
KVM_PROBE_SECONDS = 30.0             # from QEMU's start to the kernel's "Linux version" line
KVM_PROBE_AFTER_BOOT_SECONDS = 12.0  # from the firmware handing over to the disk to that line
# Console lines that say the firmware has handed over to the disk's boot loader (SeaBIOS),
# or that the kernel is about to run (GRUB, as Galley's and Debian's grub.cfg print it; the
# kernel's real-mode setup). Under a working KVM the kernel announces itself a few seconds
# later; where KVM cannot run protected-mode code, GRUB or the kernel stalls silently.
_BOOTING_MARKERS = ("Booting from Hard Disk", "Loading initial ramdisk", "Probing EDD")


class _KvmStalled(Exception):
    pass


def _set_kvm_verdict(works: bool) -> None:
    global _kvm_verdict
    _kvm_verdict = works


def kvm_usable() -> bool:
    """KVM can be opened and has not been seen failing to boot a kernel in this process."""
    return _kvm_verdict is not False and os.access("/dev/kvm", os.R_OK | os.W_OK)


def kvm_unproven() -> bool:
    """No KVM boot has been watched in this process yet: the next one should be probed."""
    return _kvm_verdict is None


class KvmProbe:
    """Watches a KVM boot's console from QEMU's start: `observe` says True once the kernel has
    announced itself, False when it stalled (KVM is then dropped for this process), else None."""

    def __init__(self, started: float) -> None:
        self.started = started
        self.booting_seen_at: float | None = None

    def observe(self, console: str, now: float) -> bool | None:
        if "Linux version" in console:
            _set_kvm_verdict(True)
            return True
        if self.booting_seen_at is None and any(marker in console for marker in _BOOTING_MARKERS):
            self.booting_seen_at = now
        if now - self.started > KVM_PROBE_SECONDS or (
                self.booting_seen_at is not None and now - self.booting_seen_at > KVM_PROBE_AFTER_BOOT_SECONDS):
            _set_kvm_verdict(False)
            return False
        return None


def _run_vm(*, accel: str, probe: bool, image: Path, drive_format: str, validation_disk: Path, tmp: Path,
            timeout: float, deadline: float, memory_mib: int, cpus: int, cancel: threading.Event,
            extra: list[str], snapshot: bool) -> BootResult:
    serial = tmp / f"serial-{accel}.log"
    qemu_errors = tmp / f"qemu-{accel}.stderr"
    command = [
        QEMU, "-accel", accel, "-smp", str(cpus), "-m", str(memory_mib),
        "-nographic", "-monitor", "none", "-serial", f"file:{serial}", "-no-reboot",
        "-drive", f"file={_drive_path(image)},format={drive_format},if=virtio,snapshot={'on' if snapshot else 'off'}",
        "-drive", f"file={_drive_path(validation_disk)},format=raw,if=virtio,readonly=on",
        "-netdev", "user,id=net0", "-device", "virtio-net-pci,netdev=net0",
        *extra,
    ]
    log.info("boot test: %s", " ".join(command))
    started = time.monotonic()
    with open(qemu_errors, "wb") as errors:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=errors, stderr=errors)
    try:
        return _wait_for_result(process, serial, qemu_errors, started, timeout, deadline, accel, probe, cancel)
    finally:
        _stop(process)


def _wait_for_result(process: subprocess.Popen, serial: Path, qemu_errors: Path,
                     started: float, timeout: float, deadline: float, accel: str, probe: bool,
                     cancel: threading.Event) -> BootResult:
    watch = KvmProbe(started) if probe else None
    while True:
        text = _read_console(serial)
        parsed = parse_validation_result(text)
        if parsed is not None:
            seconds = round(time.monotonic() - started, 2)
            exit_code, output = parsed
            powered_off = _wait_exit(process, POWEROFF_GRACE_SECONDS)
            return BootResult(exit_code=exit_code, output=output, serial_log=_read_console(serial),
                              seconds=seconds, accel=accel, powered_off=powered_off)
        now = time.monotonic()
        if watch is not None:
            verdict = watch.observe(text, now)
            if verdict is False:
                _stop(process)
                raise _KvmStalled(f"no kernel output {now - started:.0f} s after QEMU started")
            if verdict:
                watch = None
        if process.poll() is not None:
            text = _read_console(serial)
            parsed = parse_validation_result(text)
            if parsed is not None:
                continue
            stderr = qemu_errors.read_text(errors="replace").strip()
            raise BootTestError(f"QEMU ({accel}) exited with code {process.returncode} before the validation result"
                                + (f": {stderr}" if stderr else ""),
                                serial_log=text, seconds=round(now - started, 2))
        if cancel.is_set():
            _stop(process)
            raise BootCancelled(f"the boot test was cancelled after {now - started:.0f} s; QEMU was killed",
                                serial_log=_read_console(serial), seconds=round(now - started, 2))
        if now >= deadline:
            _stop(process)
            raise BootTimeout(f"no validation result within {timeout:.0f} s ({accel}); QEMU was killed",
                              serial_log=_read_console(serial), seconds=round(time.monotonic() - started, 2))
        time.sleep(0.25)


def parse_validation_result(console: str) -> tuple[int, str] | None:
    """(exit code, output) from a serial console's text, or None while it is not there yet.

    The result is the last END/EXIT marker pair (a script may print marker-like text itself;
    it cannot print after the hook's own markers), and the output starts after the first
    BEGIN marker line.
    """
    results = list(_RESULT.finditer(console))
    if not results:
        return None
    last = results[-1]
    begin = _BEGIN.search(console, 0, last.start())
    if begin is None:
        return None
    output = console[begin.end():last.start()]
    if output.endswith("\n"):
        output = output[:-1]  # the hook puts a newline before the END marker
    return int(last.group(2)), output


def make_validation_disk(path: Path, script: str, *, extra_files: Mapping[str, str | bytes | os.PathLike] | None = None,
                         settings: Mapping[str, str] | None = None, work: Path | None = None) -> None:
    """An ext4 image labelled GALLEYVAL with validate.sh (and extra files), without mounting."""
    with tempfile.TemporaryDirectory(prefix="galley-val-", dir=work) as content:
        content = Path(content)
        (content / "validate.sh").write_text(script)
        os.chmod(content / "validate.sh", 0o755)
        if settings:
            (content / "galley-validate.conf").write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
        for name, data in (extra_files or {}).items():
            relative = PurePosixPath(name)
            if relative.is_absolute() or ".." in relative.parts or not relative.parts:
                raise ValueError(f"extra file name {name!r} must be a relative path inside the disk")
            target = content.joinpath(*relative.parts)
            target.parent.mkdir(parents=True, exist_ok=True)
            if isinstance(data, bytes):
                target.write_bytes(data)
            elif isinstance(data, str):
                target.write_text(data)
            else:
                shutil.copyfile(data, target)
                shutil.copymode(data, target)
        used = sum(f.stat().st_size for f in content.rglob("*") if f.is_file())
        size = max(16 * MIB, -(-(used * 2 + 8 * MIB) // MIB) * MIB)
        with open(path, "wb") as f:
            f.truncate(size)
        done = subprocess.run(["mkfs.ext4", "-q", "-F", "-L", VALIDATE_LABEL, "-O", "^has_journal",
                               "-d", str(content), str(path)], capture_output=True, text=True)
        if done.returncode != 0:
            raise BootTestError(f"mkfs.ext4 for the validation disk failed: {done.stderr.strip()}")


def _extra_drive_options(drives: Sequence[tuple[str | os.PathLike, str]]) -> list[str]:
    options = []
    for path, fmt in drives:
        if fmt not in DRIVE_FORMATS:
            raise ValueError(f"extra drive format {fmt!r}: one of {', '.join(DRIVE_FORMATS)}")
        options += ["-drive", f"file={_drive_path(Path(path).resolve())},format={DRIVE_FORMATS[fmt]},if=virtio,readonly=on"]
    return options


def _drive_path(path: Path) -> str:
    # QEMU's option syntax doubles commas inside values.
    return str(path).replace(",", ",,")


def _read_console(serial: Path) -> str:
    try:
        data = serial.read_bytes()
    except FileNotFoundError:
        return ""
    return data.decode("utf-8", errors="replace").replace("\r\n", "\n").replace("\r", "")


def _wait_exit(process: subprocess.Popen, seconds: float) -> bool:
    try:
        process.wait(timeout=seconds)
        return True
    except subprocess.TimeoutExpired:
        return False


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
