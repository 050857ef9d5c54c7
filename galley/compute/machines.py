"""Virtual machines as QEMU processes on this host, one folder per machine.

    root/<key>/  qemu.pid  machine.json  serial.log  qmp.sock  qga.sock  [uefi-vars.fd]  lock

QEMU is started with -daemonize in a session of its own, so it outlives the Galley process that
started it (a kill -9 of `galley serve` leaves the VMs running) and a later Galley adopts it:
a machine is running when its pidfile names a live process whose command line names the
machine's pidfile path, so a pid the kernel reused for something else is never mistaken for it.

Limits: the user-mode network forwards 127.0.0.1:<ssh_port> to the guest's port 22 and binds
nothing else; the QMP and guest-agent sockets are only reachable by this user (mode 0600 in a
0700 folder). The serial log is trimmed to its last SERIAL_LOG_KEEP bytes when it passes
SERIAL_LOG_CAP (at start, and whenever it is read or the machines are listed); a trim while QEMU
writes may drop the few bytes written in between.
"""
from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..builder import boot
from . import guest_agent, qmp
from .guest_agent import CommandResult, CommandTimeout, GuestAgentError, GuestAgentUnavailable
from .qemu_command import (
    OVMF_CODE,
    OVMF_VARS,
    PIDFILE,
    QEMU,
    QGA_SOCKET,
    QMP_SOCKET,
    SERIAL_LOG,
    UEFI_VARS,
    DiskSpec,
    MachineSpec,
    qemu_argv,
)

__all__ = [
    "CommandResult",
    "CommandTimeout",
    "DiskSpec",
    "GuestAgentError",
    "GuestAgentUnavailable",
    "MachineNotRunning",
    "MachineSpec",
    "MachineStartError",
    "MachineState",
    "Machines",
]

STATE_FILE = "machine.json"
SERIAL_LOG_CAP = 8 << 20
SERIAL_LOG_KEEP = 2 << 20
START_TIMEOUT = 60.0
EXIT_WAIT = 10.0          # after SIGKILL
PORT_ATTEMPTS = 3         # another process may take the free port between probe and QEMU's bind


class MachineStartError(RuntimeError):
    """QEMU did not start; the message carries its error output. Nothing is left running."""


@dataclass(frozen=True)
class MachineState:
    key: str
    pid: int
    ssh_port: int
    started_at: float       # time.time() when QEMU was started
    accel: str              # "kvm" | "tcg"


class Machines:
    def __init__(self, root: Path, accel: str | None = None) -> None:
        self.root = Path(root)
        forced = accel or os.environ.get("GALLEY_QEMU_ACCEL") or None
        if forced not in (None, "kvm", "tcg"):
            raise ValueError(f"accelerator {forced!r}: 'kvm' or 'tcg'")
        self.forced_accel = forced
        self._locks: dict[str, threading.Lock] = {}
        self._agent_locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    # ---- lifecycle ------------------------------------------------------------------------------
    def start(self, spec: MachineSpec) -> MachineState:
        """Start the machine (or return it as it is when it already runs); returns once QEMU runs,
        before the guest has booted. The first KVM start of a process watches the kernel come up
        (galley.builder.boot.KvmProbe, up to ~30 s) and falls back to TCG where KVM stalls."""
        with self._exclusive(spec.key):
            current = self.state(spec.key)
            if current is not None:
                return current
            if shutil.which(QEMU) is None:
                raise MachineStartError(f"{QEMU} is not installed (Debian: qemu-system-x86)")
            folder = self._folder(spec.key)
            self._prepare(spec, folder)
            accel = self._accel()
            state = self._launch(spec, folder, accel)
            if accel == "kvm" and boot.kvm_unproven() and not self._kvm_boots(state):
                self._kill_pid(state.pid)
                state = self._launch(spec, folder, "tcg")
            return state

    def state(self, key: str) -> MachineState | None:
        """The live QEMU of machine `key`, or None."""
        folder = self._folder(key)
        pid = self._live_pid(folder)
        if pid is None:
            return None
        try:
            info = json.loads((folder / STATE_FILE).read_text())
        except (FileNotFoundError, ValueError):
            info = {}
        return MachineState(key=key, pid=pid, ssh_port=int(info.get("ssh_port", 0)),
                            started_at=float(info.get("started_at", 0.0)), accel=info.get("accel", "tcg"))

    def running(self) -> dict[str, MachineState]:
        """Every live machine under root (what a restarted Galley adopts)."""
        found = {}
        if not self.root.is_dir():
            return found
        for folder in sorted(self.root.iterdir()):
            if folder.is_dir():
                state = self.state(folder.name)
                if state is not None:
                    _trim_log(folder / SERIAL_LOG)
                    found[folder.name] = state
        return found

    def stop(self, key: str, grace: float = 60.0) -> None:
        """Press the ACPI power button and wait up to `grace` seconds; then kill QEMU."""
        state = self.state(key)
        if state is None:
            return
        try:
            qmp.execute(self._folder(key) / QMP_SOCKET, "system_powerdown")
        except qmp.QmpError:
            grace = 0.0  # its monitor is gone: nothing can ask the guest to power off
        if not _wait_gone(state.pid, self._folder(key), grace):
            self._kill_pid(state.pid)

    def kill(self, key: str) -> None:
        state = self.state(key)
        if state is not None:
            self._kill_pid(state.pid)

    def reboot(self, key: str) -> None:
        """Reset the machine (like pressing its reset button); the guest boots again."""
        if self.state(key) is None:
            raise MachineNotRunning(key)
        qmp.execute(self._folder(key) / QMP_SOCKET, "system_reset")

    def forget(self, key: str) -> None:
        """Kill the machine and remove its folder (its serial log and UEFI variables too)."""
        with self._exclusive(key):
            self.kill(key)
            shutil.rmtree(self._folder(key), ignore_errors=True)
        (self.root / f".{key}.lock").unlink(missing_ok=True)

    # ---- console and guest channel ----------------------------------------------------------------
    def serial_log(self, key: str, max_bytes: int = 1 << 20) -> str:
        """The last `max_bytes` of the machine's serial console, across its restarts ("" if none)."""
        path = self._folder(key) / SERIAL_LOG
        _trim_log(path)
        try:
            with open(path, "rb") as log:
                size = log.seek(0, os.SEEK_END)
                log.seek(max(0, size - max_bytes))
                data = log.read(max_bytes)
        except FileNotFoundError:
            return ""
        return data.decode("utf-8", errors="replace")

    def wait_guest_agent(self, key: str, timeout: float) -> bool:
        """Wait until the guest agent answers; False when it did not within `timeout` (or QEMU is gone)."""
        deadline = time.monotonic() + timeout
        socket_path = self._folder(key) / QGA_SOCKET
        while True:
            if self.state(key) is None:
                return False
            with self._agent_lock(key):
                if guest_agent.ping(socket_path, timeout=max(0.5, min(3.0, deadline - time.monotonic()))):
                    return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(min(1.0, max(0.0, deadline - time.monotonic())))

    def run_command(self, key: str, script: str, timeout: float = 90) -> CommandResult:
        """Run a shell script as root in the guest through the guest agent.

        Raises GuestAgentUnavailable (machine stopped, still booting, no agent) or CommandTimeout."""
        if self.state(key) is None:
            raise GuestAgentUnavailable(f"machine {key} is not running")
        with self._agent_lock(key):
            return guest_agent.run_script(self._folder(key) / QGA_SOCKET, script, timeout)

    # ---- internals --------------------------------------------------------------------------------
    def _folder(self, key: str) -> Path:
        if not key or "/" in key or key in (".", ".."):
            raise ValueError(f"machine key {key!r} must be a plain folder name")
        return self.root / key

    def _accel(self) -> str:
        if self.forced_accel:
            return self.forced_accel
        return "kvm" if boot.kvm_usable() else "tcg"

    def _prepare(self, spec: MachineSpec, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        os.chmod(folder, 0o700)
        for name in (PIDFILE, QMP_SOCKET, QGA_SOCKET, STATE_FILE):
            (folder / name).unlink(missing_ok=True)
        _trim_log(folder / SERIAL_LOG)
        missing = [str(disk.path) for disk in spec.disks if not Path(disk.path).is_file()]
        if spec.seed is not None and not Path(spec.seed).is_file():
            missing.append(str(spec.seed))
        if missing:
            raise MachineStartError(f"disk files missing: {', '.join(missing)}")
        if spec.firmware == "uefi":
            if not OVMF_CODE.is_file() or not OVMF_VARS.is_file():
                raise MachineStartError(f"UEFI firmware {OVMF_CODE} is not installed (Debian: ovmf)")
            variables = folder / UEFI_VARS
            if not variables.exists():  # the machine's own NVRAM, kept across its restarts
                shutil.copyfile(OVMF_VARS, variables)
                os.chmod(variables, 0o600)

    def _launch(self, spec: MachineSpec, folder: Path, accel: str) -> MachineState:
        error = ""
        for _attempt in range(PORT_ATTEMPTS):
            port = _free_port()
            argv = qemu_argv(spec, folder, accel, port)
            started_at = time.time()
            try:
                done = subprocess.run(argv, cwd=folder, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                                      start_new_session=True, umask=0o077, timeout=START_TIMEOUT)
            except subprocess.TimeoutExpired:
                self._cleanup_failed(folder)
                raise MachineStartError(f"QEMU did not finish starting within {START_TIMEOUT:.0f} s") from None
            pid = _read_pid(folder)
            if done.returncode == 0 and pid is not None:
                for name in (QMP_SOCKET, QGA_SOCKET, SERIAL_LOG):
                    _chmod_quietly(folder / name, 0o600)  # -daemonize sets its own umask (027)
                (folder / STATE_FILE).write_text(json.dumps(
                    {"name": spec.name, "ssh_port": port, "started_at": started_at, "accel": accel}))
                return MachineState(key=spec.key, pid=pid, ssh_port=port, started_at=started_at, accel=accel)
            self._cleanup_failed(folder)
            error = (done.stderr or done.stdout or "").strip() or f"exit status {done.returncode}"
            if "host forwarding" not in error:
                break
        raise MachineStartError(f"QEMU failed to start machine {spec.key}: {error}")

    def _cleanup_failed(self, folder: Path) -> None:
        pid = self._live_pid(folder)
        if pid is not None:
            self._kill_pid(pid)
        for name in (PIDFILE, QMP_SOCKET, QGA_SOCKET):
            (folder / name).unlink(missing_ok=True)

    def _kvm_boots(self, state: MachineState) -> bool:
        """Watch the first KVM boot of this process (see galley.builder.boot.KvmProbe)."""
        folder = self._folder(state.key)
        log_path = folder / SERIAL_LOG
        offset = log_path.stat().st_size if log_path.exists() else 0
        probe = boot.KvmProbe(time.monotonic())
        while self._live_pid(folder) == state.pid:
            try:
                with open(log_path, "rb") as log:
                    log.seek(offset)
                    console = log.read().decode("utf-8", errors="replace")
            except FileNotFoundError:
                console = ""
            verdict = probe.observe(console, time.monotonic())
            if verdict is not None:
                return verdict
            time.sleep(0.5)
        return True  # it exited on its own (a guest that powered off): nothing to say against KVM

    def _live_pid(self, folder: Path) -> int | None:
        pid = _read_pid(folder)
        if pid is None:
            return None
        return pid if _is_machine_process(pid, folder) else None

    def _kill_pid(self, pid: int) -> None:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + EXIT_WAIT
        while _process_alive(pid) and time.monotonic() < deadline:
            time.sleep(0.05)

    @contextmanager
    def _exclusive(self, key: str):
        """One start/forget of a machine at a time, across threads and processes."""
        with self._locks_guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            self.root.mkdir(parents=True, exist_ok=True)
            with open(self.root / f".{key}.lock", "w") as lock_file:
                fcntl.flock(lock_file, fcntl.LOCK_EX)
                yield

    def _agent_lock(self, key: str) -> threading.Lock:
        # QEMU serves one client at a time on the guest agent's socket.
        with self._locks_guard:
            return self._agent_locks.setdefault(key, threading.Lock())


class MachineNotRunning(RuntimeError):
    def __init__(self, key: str) -> None:
        super().__init__(f"machine {key} is not running")


def _chmod_quietly(path: Path, mode: int) -> None:
    try:
        os.chmod(path, mode)
    except FileNotFoundError:
        pass


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _read_pid(folder: Path) -> int | None:
    try:
        return int((folder / PIDFILE).read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _is_machine_process(pid: int, folder: Path) -> bool:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return False
    return os.fsencode(folder.resolve() / PIDFILE) in argv and _process_alive(pid)


def _process_alive(pid: int) -> bool:
    """The process exists and is not a zombie waiting for its parent."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat.rsplit(")", 1)[-1].split()[0] not in ("Z", "X")


def _wait_gone(pid: int, folder: Path, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while _is_machine_process(pid, folder):
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.2)
    return True


def _trim_log(path: Path) -> None:
    """Keep the last SERIAL_LOG_KEEP bytes of a log that grew past SERIAL_LOG_CAP (in place:
    QEMU appends with O_APPEND, so it goes on writing at the new end)."""
    try:
        with open(path, "r+b") as log:
            size = log.seek(0, os.SEEK_END)
            if size <= SERIAL_LOG_CAP:
                return
            log.seek(size - SERIAL_LOG_KEEP)
            tail = log.read()
            log.seek(0)
            log.truncate(0)
            log.write(tail)
    except FileNotFoundError:
        return
    except OSError as error:
        if error.errno != errno.ENOENT:
            raise
