"""A cgroup per build sandbox: the memory, process and CPU limits of what a customizer runs.

`SandboxCgroup.create(limits)` makes one cgroup for one sandbox run, named
`galley-sandbox-<server pid>-<n>`, and sets its limits; `add(pid)` moves the sandbox's init
into it before the init starts the command (everything the command starts inherits it);
`remove()` takes it away once the sandbox's processes are gone.

cgroup v2 (one unified hierarchy: what Debian 12 and systemd set up)
    the cgroup goes under the server's own cgroup when the memory and pids controllers are
    (or can be) enabled for its children there, e.g. when systemd delegates it; otherwise under
    `galley/` at the top of the hierarchy (as Docker's cgroupfs driver does). Files:
    memory.max, memory.swap.max = 0, pids.max, cpu.max; memory.events (oom_kill) and
    pids.events (max) say when a limit was hit.
cgroup v1 (separate memory, pids and cpu hierarchies; this is also what "hybrid" systems use
    when the controllers sit in v1 hierarchies)
    the cgroup goes under the server's own cgroup in each hierarchy. Files:
    memory.limit_in_bytes and memory.memsw.limit_in_bytes (no swap, when swap is accounted),
    pids.max, cpu.cfs_quota_us; memory.oom_control (oom_kill) and pids.events (max).

The memory and pids controllers are required (SandboxCgroupError when they cannot be had);
the cpu controller is used when it is there. Inside the limits the kernel acts alone: at the
memory limit its OOM killer kills a process of this cgroup only; at the process limit fork()
fails in this cgroup only. The sandbox (galley.builder.sandbox) reads the counters to say so.

A cgroup left by a server that died (its PID is gone) is emptied and removed when the next one
is made beside it.
"""

from __future__ import annotations

import errno
import itertools
import os
import re
import signal
import threading
import time
from dataclasses import dataclass
from pathlib import Path

CGROUP_MOUNT = "/sys/fs/cgroup"
PREFIX = "galley-sandbox-"
FALLBACK_PARENT = "galley"          # v2: below the hierarchy's top when the own cgroup cannot be used
CPU_PERIOD_US = 100_000
REMOVE_SECONDS = 15.0
_NAME = re.compile(rf"^{re.escape(PREFIX)}(\d+)-\d+$")
_counter = itertools.count(1)
_counter_lock = threading.Lock()


@dataclass(frozen=True)
class Limits:
    """What one sandbox run may use. `source` says what chose the limits, for messages."""
    memory_bytes: int
    pids: int
    cpus: float | None = None
    source: str = ""

    def describe(self) -> str:
        parts = [f"memory {format_bytes(self.memory_bytes)} (no swap)",
                 f"{self.pids} processes and threads"]
        if self.cpus:
            parts.append(f"{self.cpus:g} CPU{'s' if self.cpus != 1 else ''}")
        return ", ".join(parts) + (f" ({self.source})" if self.source else "")


class SandboxCgroupError(RuntimeError):
    """The cgroup could not be made, given its limits, joined or removed."""


def format_bytes(n: int) -> str:
    for unit, size in (("GiB", 1024 ** 3), ("MiB", 1024 ** 2), ("KiB", 1024)):
        if n >= size:
            value = n / size
            return f"{value:g} {unit}" if value == round(value, 1) else f"{value:.2f} {unit}"
    return f"{n} bytes"


# --------------------------------------------------------------------------- finding the hierarchies

@dataclass(frozen=True)
class _Mount:
    point: Path
    root: str           # the mount's root inside the hierarchy (not "/" in a cgroup namespace)
    fstype: str         # "cgroup" or "cgroup2"
    controllers: frozenset[str]   # v1: the controllers of this hierarchy


def _mounts(mountinfo: str) -> list[_Mount]:
    found = []
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
            continue
        point = fields[4].replace("\\040", " ")
        controllers = frozenset(tail[2].split(",")) if tail[0] == "cgroup" else frozenset()
        found.append(_Mount(Path(point), fields[3], tail[0], controllers))
    return found


def _own_paths(self_cgroup: str) -> dict[str, str]:
    """/proc/self/cgroup as {controller: path}; "" is the v2 hierarchy's entry."""
    paths = {}
    for line in self_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if not controllers:
            paths[""] = path
        for controller in controllers.split(","):
            if controller:
                paths[controller] = path
    return paths


def _directory(mount: _Mount, own: str) -> Path:
    relative = own
    if mount.root != "/" and (own == mount.root or own.startswith(mount.root.rstrip("/") + "/")):
        relative = own[len(mount.root.rstrip("/")):]
    return mount.point / relative.lstrip("/")


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _write(path: Path, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _counter_in(path: Path, key: str) -> int:
    for line in _read(path).splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == key and parts[1].isdigit():
            return int(parts[1])
    return 0


# --------------------------------------------------------------------------- the cgroup

class SandboxCgroup:
    def __init__(self, version: int, directories: dict[str, Path], limits: Limits):
        self.version = version
        self.directories = directories   # v2: {"": dir}; v1: {"memory": dir, "pids": dir, maybe "cpu": dir}
        self.limits = limits
        self.name = next(iter(directories.values())).name

    # ---- making it

    @classmethod
    def create(cls, limits: Limits, *, mountinfo: str | None = None, self_cgroup: str | None = None) -> SandboxCgroup:
        mountinfo = Path("/proc/self/mountinfo").read_text() if mountinfo is None else mountinfo
        self_cgroup = Path("/proc/self/cgroup").read_text() if self_cgroup is None else self_cgroup
        mounts, own = _mounts(mountinfo), _own_paths(self_cgroup)
        with _counter_lock:
            name = f"{PREFIX}{os.getpid()}-{next(_counter)}"
        unified = next((m for m in mounts if m.fstype == "cgroup2"
                        and {"memory", "pids"} <= set(_read(m.point / "cgroup.controllers").split())), None)
        if unified is not None and "" in own:
            parent = _v2_parent(unified, _directory(unified, own[""]))
            cgroup = cls(2, {"": parent / name}, limits)
        else:
            directories = {}
            for controller in ("memory", "pids", "cpu"):
                mount = next((m for m in mounts if m.fstype == "cgroup" and controller in m.controllers), None)
                if mount is None or controller not in own:
                    if controller == "cpu":
                        continue
                    raise SandboxCgroupError(
                        f"no cgroup hierarchy with the {controller} controller is mounted: builds need the memory "
                        "and pids controllers (cgroup v2 at /sys/fs/cgroup, or cgroup v1 memory and pids "
                        "hierarchies)")
                directories[controller] = _directory(mount, own[controller]) / name
            cgroup = cls(1, directories, limits)
        cgroup._sweep()
        try:
            cgroup._make()
        except OSError as failed:
            cgroup.remove()
            raise SandboxCgroupError(f"cannot make the build's cgroup {cgroup.describe_path()}: {failed}") from None
        return cgroup

    def _make(self) -> None:
        limits = self.limits
        for directory in self.directories.values():
            directory.mkdir()
        if self.version == 2:
            d = self.directories[""]
            _write(d / "memory.max", str(limits.memory_bytes))
            if (d / "memory.swap.max").exists():
                _write(d / "memory.swap.max", "0")
            _write(d / "pids.max", str(limits.pids))
            if limits.cpus and (d / "cpu.max").exists():
                _write(d / "cpu.max", f"{max(1000, int(limits.cpus * CPU_PERIOD_US))} {CPU_PERIOD_US}")
            return
        memory = self.directories["memory"]
        _write(memory / "memory.limit_in_bytes", str(limits.memory_bytes))
        if (memory / "memory.memsw.limit_in_bytes").exists():
            _write(memory / "memory.memsw.limit_in_bytes", str(limits.memory_bytes))
        if (memory / "memory.swappiness").exists():
            try:
                _write(memory / "memory.swappiness", "0")
            except OSError:
                pass
        _write(self.directories["pids"] / "pids.max", str(limits.pids))
        cpu = self.directories.get("cpu")
        if cpu is not None and limits.cpus and (cpu / "cpu.cfs_quota_us").exists():
            _write(cpu / "cpu.cfs_period_us", str(CPU_PERIOD_US))
            _write(cpu / "cpu.cfs_quota_us", str(max(1000, int(limits.cpus * CPU_PERIOD_US))))

    def _sweep(self) -> None:
        """Empty and remove the cgroups beside this one that servers now dead left behind."""
        for directory in self.directories.values():
            try:
                siblings = list(directory.parent.iterdir())
            except OSError:
                continue
            for sibling in siblings:
                found = _NAME.match(sibling.name)
                if found is None or not sibling.is_dir() or _alive(int(found.group(1))):
                    continue
                _empty(sibling, give_up=time.monotonic() + 2)
                try:
                    sibling.rmdir()
                except OSError:
                    pass

    # ---- using it

    def add(self, pid: int) -> None:
        """Move process `pid` (and only it: its threads come along) into the cgroup."""
        try:
            for directory in self.directories.values():
                _write(directory / "cgroup.procs", str(pid))
        except OSError as failed:
            raise SandboxCgroupError(f"cannot move process {pid} into the build's cgroup "
                                     f"{self.describe_path()}: {failed}") from None

    def oom_kills(self) -> int:
        """Processes the kernel's OOM killer killed in this cgroup at its memory limit."""
        if self.version == 2:
            return _counter_in(self.directories[""] / "memory.events", "oom_kill")
        return _counter_in(self.directories["memory"] / "memory.oom_control", "oom_kill")

    def pids_limit_hits(self) -> int:
        """fork()s and clone()s refused because the cgroup had reached pids.max."""
        directory = self.directories["" if self.version == 2 else "pids"]
        return _counter_in(directory / "pids.events", "max")

    def processes(self) -> list[int]:
        found: set[int] = set()
        for directory in self.directories.values():
            found.update(int(p) for p in _read(directory / "cgroup.procs").split() if p.isdigit())
        return sorted(found)

    def describe_path(self) -> str:
        return ", ".join(str(d) for d in self.directories.values())

    # ---- removing it

    def remove(self) -> None:
        """Kill what is left in the cgroup (normally nothing: the sandbox is gone) and remove it."""
        give_up = time.monotonic() + REMOVE_SECONDS
        problems = []
        for directory in self.directories.values():
            if not directory.exists():
                continue
            _empty(directory, give_up)
            while True:
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError as failed:
                    if failed.errno != errno.EBUSY or time.monotonic() > give_up:
                        problems.append(f"{directory}: {failed.strerror}")
                        break
                    _empty(directory, give_up)
                    time.sleep(0.05)
        if problems:
            raise SandboxCgroupError(f"the build's cgroup could not be removed: {'; '.join(problems)}")


def _v2_parent(mount: _Mount, own: Path) -> Path:
    """Where a v2 sandbox cgroup goes: see the module's docstring."""
    wanted = {"memory", "pids"}
    optional = {"cpu"} & set(_read(mount.point / "cgroup.controllers").split())
    if _enable(own, wanted, optional):
        return own
    top = mount.point
    fallback = top / FALLBACK_PARENT
    try:
        if not _enable(top, wanted, optional):
            raise OSError(errno.EBUSY, "the controllers cannot be enabled at the top of the hierarchy")
        fallback.mkdir(exist_ok=True)
        if not _enable(fallback, wanted, optional):
            raise OSError(errno.EBUSY, f"the controllers cannot be enabled in {fallback}")
    except OSError as failed:
        raise SandboxCgroupError(
            f"cannot enable the memory and pids controllers for the build's cgroup, neither below the server's "
            f"own cgroup {own} (it has processes of its own: delegate a cgroup to the server, e.g. systemd's "
            f"Delegate=yes) nor in {fallback}: {failed.strerror or failed}") from None
    return fallback


def _enable(directory: Path, wanted: set[str], optional: set[str]) -> bool:
    """Whether `wanted` controllers are (or could be made) enabled for `directory`'s children."""
    enabled = set(_read(directory / "cgroup.subtree_control").split())
    if wanted <= enabled:
        if optional - enabled:
            try:
                _write(directory / "cgroup.subtree_control", " ".join(f"+{c}" for c in optional - enabled))
            except OSError:
                pass
        return True
    try:
        _write(directory / "cgroup.subtree_control", " ".join(f"+{c}" for c in sorted(wanted - enabled)))
    except OSError:
        return False
    for controller in optional - enabled:
        try:
            _write(directory / "cgroup.subtree_control", f"+{controller}")
        except OSError:
            pass
    return wanted <= set(_read(directory / "cgroup.subtree_control").replace("+", "").split())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _empty(directory: Path, give_up: float) -> None:
    """SIGKILL every process of cgroup `directory` until none is left (or time is up)."""
    kill_file = directory / "cgroup.kill"
    while True:
        pids = [int(p) for p in _read(directory / "cgroup.procs").split() if p.isdigit()]
        if not pids or time.monotonic() > give_up:
            return
        if kill_file.exists():
            try:
                _write(kill_file, "1")
            except OSError:
                pass
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.05)
