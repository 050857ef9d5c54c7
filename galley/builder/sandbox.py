"""Run one command inside a mounted disk image's root filesystem, isolated from the host.

    unshare --mount --pid --uts --ipc --net --fork --kill-child --propagation private \\
        python -I -S sandbox.py --init ...

starts this very file as the sandbox's init: PID 1 of a new PID namespace, in a private mount
namespace, with its own hostname, System V IPC and network. The init, still holding all
capabilities:

  1. reports its host PID (so the host can kill it) on a status pipe, and waits until the host
     has moved it into the build's cgroup (`galley.builder.cgroups`: memory without swap, a
     number of processes and threads, CPU; made its OOM score 1000, the first the kernel
     kills when the host runs out of memory) and attached slirp4netns to its network namespace
     (`galley.builder.sandbox_network`)
  2. loads the nftables filter into its network namespace: only loopback, DNS through
     slirp4netns and the public internet can be reached, not the host (on any of its
     addresses), its private networks or link-local addresses
  3. `pivot_root`s into the image's root and detaches the host's tree: unlike a plain chroot,
     which a root process can leave again, nothing of the host stays reachable
  4. mounts what programs expect: a fresh /proc that shows only the sandbox's processes
     (/proc/sys, /proc/sysrq-trigger, /proc/irq, /proc/bus, /proc/fs read-only; /proc/kcore and
     friends masked), /sys read-only, a small /dev (null, zero, full, random, urandom, tty, a
     private devpts and /dev/shm) and a tmpfs on /run with a resolv.conf naming slirp4netns's
     DNS relay (10.0.2.3)
  5. forks the command in a session keyring of its own (the host's may hold secrets), with
     Docker's default capability set minus CAP_MKNOD and CAP_NET_RAW: no CAP_SYS_ADMIN (no
     mount, umount or remount), no CAP_SYS_MODULE, CAP_SYS_RAWIO, CAP_NET_ADMIN (the filter
     and routes stay), CAP_NET_RAW (no packet socket around the filter), CAP_SYS_RESOURCE
     (the OOM score stays), CAP_DAC_READ_SEARCH, CAP_SYS_PTRACE … — which also keeps it from
     looking into the init through /proc/1
  6. reaps every process until the command exits, then exits with its status; the kernel then
     kills whatever the command left running in the namespace.

Reachable over the network: the internet (package mirrors), and DNS queries (port 53 only) to
the host's resolver through slirp4netns, wherever that resolver is: the one deliberate hole.
Not reachable: anything on the host's loopback or its other addresses (Galley's API,
PostgreSQL, an S3 server), its abstract Unix sockets (they belong to the network namespace),
the private (RFC 1918, CGNAT) and link-local networks (169.254.169.254) — so also a package
mirror or proxy on a private network. Limits: the command and everything it starts share the
cgroup's memory (the kernel's OOM killer kills in the sandbox only), process count (reaching
it kills the whole sandbox: a fork bomb stops there) and CPU; `SandboxLimitExceeded` says
which limit was hit.

Not isolated (known limits): root's user keyring; the host's kernel, with no seccomp filter
(a kernel bug reachable through a system call is reachable from the sandbox); slirp4netns
runs on the host as root to relay the sandbox's traffic (in its own mount namespace, with its
capabilities dropped and a seccomp filter); disk space and I/O bandwidth (the image file's
size bounds the one, nothing bounds the other); the cgroup paths the sandbox can read in
/proc/self/cgroup.

These mounts live only in the sandbox's mount namespace: they vanish with its last process.
The host side (`run_in_sandbox`) streams the output line by line and, on a deadline, a cancel
or the process limit, kills the init (SIGKILL to a PID namespace's init kills every process in
it) and waits until no process of that namespace is left; then it stops slirp4netns and
removes the cgroup.

Only the standard library is used by the init: it runs this file with `python -I -S` (the
host side's helpers are imported only when this file is imported as a module).
"""
from __future__ import annotations

import ctypes
import json
import os
import platform
import select
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path, PurePosixPath

if __name__ != "__main__":  # the host side; the init (this file run as a script) has only the standard library
    from .cgroups import Limits, SandboxCgroup, SandboxCgroupError, format_bytes
    from .sandbox_network import (RESOLV_CONF, SandboxNetworkError, Slirp, blocked_networks, host_networks,
                                  nft_rules, required_tools)

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/run/galley/bin"
DEFAULT_ENV = {
    "PATH": DEFAULT_PATH,
    "HOME": "/root",
    "USER": "root",
    "LOGNAME": "root",
    "LANG": "C.UTF-8",
    "TERM": "dumb",
    "DEBIAN_FRONTEND": "noninteractive",
}
# How long the host waits for the processes of a killed sandbox to disappear.
REAP_SECONDS = 15.0
MAX_LINE = 64 * 1024

_INIT_FLAG = "--galley-sandbox-init"


class SandboxError(RuntimeError):
    """The sandbox could not be set up, or its processes could not be stopped."""


class SandboxInterrupted(Exception):
    """The command was killed before it finished (see the subclasses)."""


class SandboxTimeout(SandboxInterrupted):
    """The deadline passed; every process of the sandbox was killed."""


class SandboxCancelled(SandboxInterrupted):
    """The cancel event was set; every process of the sandbox was killed."""


class SandboxLimitExceeded(SandboxInterrupted):
    """The command hit its cgroup's memory ("memory") or process ("pids") limit and failed:
    `exit_code` is its exit code, None when the sandbox had to be killed."""

    def __init__(self, message: str, *, limit: str, exit_code: int | None):
        super().__init__(message)
        self.limit = limit
        self.exit_code = exit_code


# --------------------------------------------------------------------------- host side

def run_in_sandbox(
    root: str | os.PathLike,
    argv: Sequence[str],
    *,
    on_line: Callable[[str], None],
    limits: Limits,
    cancel: threading.Event | None = None,
    deadline: float | None = None,
    stdin_path: str | os.PathLike | None = None,
    env: Mapping[str, str] | None = None,
    hostname: str | None = None,
    resolv_conf: bool = True,
) -> int:
    """Run `argv` (an absolute path first) as root inside `root`, a mounted image's root.

    Standard output and error go to `on_line`, one line at a time, as they come. `limits` are
    the cgroup's (memory, processes, CPU). `stdin_path` is a host file given to the command as
    standard input (default: /dev/null). `deadline` is a `time.monotonic()` value.
    `resolv_conf=False` leaves the image's /etc/resolv.conf as it is (by default it names
    slirp4netns's DNS relay: see `_install_resolv_conf`).

    Returns the exit code (128 + N when killed by signal N); raises SandboxTimeout or
    SandboxCancelled after killing every process of the sandbox, SandboxLimitExceeded when the
    command failed at a limit of its cgroup, SandboxError when the sandbox could not be set up.
    """
    root = os.path.realpath(root)
    if not os.path.ismount(root):
        raise SandboxError(f"{root} is not a mount point: mount the image's root filesystem there first")
    if not argv or not str(argv[0]).startswith("/"):
        raise ValueError("argv[0] must be an absolute path inside the image")
    try:
        tools = required_tools()
        rules = nft_rules(blocked_networks(host_networks()))
    except SandboxNetworkError as failed:
        raise SandboxError(str(failed)) from None
    spec = {"root": root, "argv": [str(a) for a in argv], "env": dict(env or DEFAULT_ENV),
            "hostname": hostname or _image_hostname(root), "resolv_conf": resolv_conf, "resolv": RESOLV_CONF,
            "nft": tools["nft"], "nft_rules": rules}
    try:
        cgroup = SandboxCgroup.create(limits)
    except SandboxCgroupError as failed:
        raise SandboxError(str(failed)) from None
    try:
        out_r, out_w = os.pipe()
        status_r, status_w = os.pipe()
        go_r, go_w = os.pipe()
    except OSError:
        cgroup.remove()
        raise
    slirp = Slirp(tools["slirp4netns"])
    command = ["unshare", "--mount", "--pid", "--uts", "--ipc", "--net", "--fork", "--kill-child",
               "--propagation", "private", "--",
               sys.executable, "-I", "-S", str(Path(__file__).resolve()), _INIT_FLAG, str(status_w), str(go_r),
               json.dumps(spec)]
    process = None
    watch = _Watch()
    host = _HostSide(cgroup, slirp, go_w, limits)
    finished = False
    try:
        try:
            with open(stdin_path if stdin_path is not None else os.devnull, "rb") as stdin:
                process = subprocess.Popen(command, stdin=stdin, stdout=out_w, stderr=out_w,
                                           pass_fds=(status_w, go_r), cwd="/", start_new_session=True,
                                           env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"})
        finally:
            os.close(out_w)
            os.close(status_w)
            os.close(go_r)
        watch.process = process
        code = _supervise(process, watch, host, out_r, status_r, on_line, cancel, deadline)
        finished = True
        return code
    finally:
        try:
            if process is not None and (process.poll() is None or watch.namespace is not None):
                watch.kill_all()
        finally:
            host.close_go()
            slirp.stop()
            watch.close()
            os.close(out_r)
            os.close(status_r)
            try:
                cgroup.remove()
            except SandboxCgroupError as failed:
                if finished:  # else the error on its way matters more
                    raise SandboxError(str(failed)) from None


class _HostSide:
    """What the host does once the init's PID is known, before the init may go on."""

    def __init__(self, cgroup: SandboxCgroup, slirp: Slirp, go_w: int, limits: Limits):
        self.cgroup = cgroup
        self.slirp = slirp
        self.go_w: int | None = go_w
        self.limits = limits
        self.started = False

    def start(self, pid: int) -> None:
        """Put the init in the cgroup, make it the OOM killer's first choice, give it a network, let it go."""
        self.started = True
        try:
            self.cgroup.add(pid)
            with open(f"/proc/{pid}/oom_score_adj", "w") as f:
                f.write("1000")
            self.slirp.start(pid)
        except (SandboxCgroupError, SandboxNetworkError, OSError) as failed:
            raise SandboxError(f"the sandbox could not be set up: {failed}") from None
        assert self.go_w is not None
        os.write(self.go_w, b"go\n")
        self.close_go()

    def close_go(self) -> None:
        """Without "go" the init exits as soon as this end closes."""
        if self.go_w is not None:
            os.close(self.go_w)
            self.go_w = None

    def limit_hit(self, code: int | None) -> SandboxLimitExceeded | None:
        """The limit the command ran into, if any: `code` is its exit code (None: still running)."""
        if self.cgroup.pids_limit_hits():
            how = "every process of it was killed" if code is None else f"it exited with code {code}"
            return SandboxLimitExceeded(f"reached {self._pids_limit()}: {how}", limit="pids", exit_code=code)
        kills = self.cgroup.oom_kills() if code is not None else 0
        if kills:
            return SandboxLimitExceeded(f"ran out of memory: {self._oom(kills)}; it exited with code {code}",
                                        limit="memory", exit_code=code)
        return None

    def warnings(self) -> list[str]:
        """What hit a limit although the command succeeded."""
        found = []
        if self.cgroup.pids_limit_hits():
            found.append(f"a fork() failed at {self._pids_limit()}")
        kills = self.cgroup.oom_kills()
        if kills:
            found.append(self._oom(kills))
        return found

    def _source(self) -> str:
        return f" ({self.limits.source})" if self.limits.source else ""

    def _pids_limit(self) -> str:
        return f"the build's limit of {self.limits.pids} processes and threads{self._source()}"

    def _oom(self, kills: int) -> str:
        return (f"the kernel killed {kills} process{'es' if kills != 1 else ''} at the build's memory limit of "
                f"{format_bytes(self.limits.memory_bytes)}{self._source()}")


def _supervise(process: subprocess.Popen, watch: _Watch, host: _HostSide, out_r: int, status_r: int,
               on_line: Callable[[str], None], cancel: threading.Event | None, deadline: float | None) -> int:
    lines = _LineSplitter(on_line)
    status_text = b""
    open_fds = [out_r, status_r]

    def check() -> None:
        if cancel is not None and cancel.is_set():
            watch.kill_all()
            lines.flush()
            raise SandboxCancelled("cancelled; every process of the sandbox was killed")
        if deadline is not None and time.monotonic() >= deadline:
            watch.kill_all()
            lines.flush()
            raise SandboxTimeout("deadline passed; every process of the sandbox was killed")
        if host.started:
            hit = host.limit_hit(None)
            if hit is not None:  # a fork bomb, say: it would retry for ever
                watch.kill_all()
                lines.flush()
                raise hit

    while open_fds:
        check()
        wait = 0.2 if deadline is None else max(0.0, min(0.2, deadline - time.monotonic()))
        ready, _, _ = select.select(open_fds, [], [], wait)
        for fd in ready:
            data = os.read(fd, 65536)
            if fd == out_r:
                if data:
                    lines.feed(data)
                else:
                    open_fds.remove(fd)
                    lines.flush()
            else:
                if data:
                    status_text += data
                    watch.note_status(status_text)
                    if not host.started and watch.namespace is not None:
                        if watch.init_pid is not None:
                            host.start(watch.init_pid)
                        else:  # the init is already gone (its error follows) or not ours: let it go no further
                            host.close_go()
                else:
                    open_fds.remove(fd)
    while process.poll() is None:
        check()
        time.sleep(0.02)
    # The init has exited, so the kernel is killing what was left in the namespace: wait for it.
    watch.wait_namespace_empty()
    status = status_text.decode("utf-8", "replace")
    for line in status.splitlines():
        if line.startswith("error "):
            raise SandboxError(f"the sandbox could not be set up: {line[6:]}")
    if "\nready" not in "\n" + status:
        raise SandboxError(f"the sandbox's init exited ({process.returncode}) before it was ready")
    code = process.returncode
    code = 128 - code if code < 0 else code
    if code != 0:
        hit = host.limit_hit(code)
        if hit is not None:
            raise hit
    else:
        for warning in host.warnings():
            on_line(f"galley-sandbox: warning: {warning}; the command succeeded all the same")
    return code


class _LineSplitter:
    def __init__(self, on_line: Callable[[str], None]):
        self.on_line = on_line
        self.pending = b""

    def feed(self, data: bytes) -> None:
        self.pending += data
        while True:
            cut = self.pending.find(b"\n")
            if cut < 0:
                if len(self.pending) > MAX_LINE:
                    self._emit(self.pending[:MAX_LINE])
                    self.pending = self.pending[MAX_LINE:]
                    continue
                return
            self._emit(self.pending[:cut])
            self.pending = self.pending[cut + 1:]

    def flush(self) -> None:
        if self.pending:
            self._emit(self.pending)
            self.pending = b""

    def _emit(self, raw: bytes) -> None:
        text = raw.decode("utf-8", "replace").rstrip("\r")
        # progress output redraws with carriage returns: keep what was last drawn
        self.on_line(text.rsplit("\r", 1)[-1] if "\r" in text else text)


class _Watch:
    """The sandbox's init as the host sees it: its PID (held by a pidfd) and PID namespace."""

    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None
        self.pidfd: int | None = None
        self.init_pid: int | None = None
        self.namespace: str | None = None

    def note_status(self, text: bytes) -> None:
        if self.pidfd is not None:
            return
        for line in text.decode("utf-8", "replace").split("\n")[:-1]:  # complete lines only
            parts = line.split()
            if len(parts) == 3 and parts[0] == "pid":
                pid, namespace = int(parts[1]), parts[2]
                try:
                    pidfd = os.pidfd_open(pid)
                except ProcessLookupError:
                    self.namespace = namespace
                    return
                # the pidfd now pins this very process: check it is the sandbox's init
                if _pid_namespace(pid) != namespace:
                    os.close(pidfd)
                    self.namespace = namespace
                    return
                self.pidfd, self.init_pid, self.namespace = pidfd, pid, namespace

    def kill_all(self) -> None:
        """SIGKILL the init (the kernel then kills the whole namespace) and wait for all to go."""
        if self.pidfd is not None:
            try:
                signal.pidfd_send_signal(self.pidfd, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self.process is not None:
            # unshare reaps the init and exits; if it does not (or the init's PID never came),
            # kill it: it was started with --kill-child, so its death takes the init along.
            try:
                self.process.wait(timeout=2 if self.pidfd is not None else 0)
            except subprocess.TimeoutExpired:
                self.process.kill()
                try:
                    self.process.wait(timeout=REAP_SECONDS)
                except subprocess.TimeoutExpired:
                    raise SandboxError(f"unshare (pid {self.process.pid}) did not exit after SIGKILL") from None
        self.wait_namespace_empty()

    def wait_namespace_empty(self) -> None:
        if self.namespace is None:
            return
        give_up = time.monotonic() + REAP_SECONDS
        while True:
            left = _processes_in_namespace(self.namespace)
            if not left:
                self.namespace = None
                return
            if time.monotonic() > give_up:
                raise SandboxError(f"processes {left} of the sandbox are still running {REAP_SECONDS:.0f} s "
                                   "after it was killed")
            for pid in left:
                _kill_if_in_namespace(pid, self.namespace)
            time.sleep(0.05)

    def close(self) -> None:
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None


def _pid_namespace(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def _processes_in_namespace(namespace: str) -> list[int]:
    """Live processes of a PID namespace (zombies hold no mounts and no files: left out)."""
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit() and _pid_namespace(int(entry)) == namespace:
            try:
                with open(f"/proc/{entry}/stat", "rb") as f:
                    state = f.read().rsplit(b")", 1)[1].split()[0]
            except (OSError, IndexError):
                continue
            if state not in (b"Z", b"X"):
                found.append(int(entry))
    return found


def _kill_if_in_namespace(pid: int, namespace: str) -> None:
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return
    try:
        if _pid_namespace(pid) == namespace:
            signal.pidfd_send_signal(pidfd, signal.SIGKILL)
    except OSError:
        pass
    finally:
        os.close(pidfd)


def _image_hostname(root: str) -> str:
    """The image's own /etc/hostname (sudo and friends find it in the image's /etc/hosts)."""
    data = read_file_in_root(root, "etc/hostname", max_bytes=256)
    name = data.decode("ascii", "replace").strip().splitlines()[0].strip() if data and data.strip() else ""
    if not name or len(name) > 64 or not all(c.isalnum() or c in "-." for c in name):
        return "localhost"
    return name


# --------------------------------------------------------------------------- reading an image safely

def read_file_in_root(root: str | os.PathLike, path: str, *, max_bytes: int = 16 * 1024 * 1024) -> bytes | None:
    """The content of regular file `path` below `root`, never following a symlink on the way.

    None when it is missing, or it or a folder on its way is a symlink or not what it should
    be: an image's symlinks are meant for the image, and followed on the host they could
    point anywhere.
    """
    fd = _open_parent_in_root(root, path)
    if fd is None:
        return None
    try:
        try:
            file_fd = os.open(PurePosixPath(path).name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY,
                              dir_fd=fd)
        except OSError:
            return None
        with os.fdopen(file_fd, "rb") as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                return None
            return f.read(max_bytes)
    finally:
        os.close(fd)


def entry_kind_in_root(root: str | os.PathLike, path: str) -> str | None:
    """"file", "symlink", "dir" or "other" for `path` below `root` (no symlink followed), or None."""
    fd = _open_parent_in_root(root, path)
    if fd is None:
        return None
    try:
        mode = os.stat(PurePosixPath(path).name, dir_fd=fd, follow_symlinks=False).st_mode
    except OSError:
        return None
    finally:
        os.close(fd)
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISREG(mode):
        return "file"
    if stat.S_ISDIR(mode):
        return "dir"
    return "other"


def _open_parent_in_root(root: str | os.PathLike, path: str) -> int | None:
    parts = PurePosixPath("/" + path.lstrip("/")).parts[1:]
    if not parts or any(p in (".", "..") for p in parts):
        raise ValueError(f"{path!r}: a plain path inside the image is needed")
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
    for part in parts[:-1]:
        try:
            next_fd = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=fd)
        except OSError:
            os.close(fd)
            return None
        os.close(fd)
        fd = next_fd
    return fd


# --------------------------------------------------------------------------- the init (inside)

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC = 32, 4096, 16384
MNT_DETACH = 2
PR_CAPBSET_DROP, PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL = 24, 47, 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217}
SYS_KEYCTL = {"x86_64": 250, "aarch64": 219, "riscv64": 219, "ppc64le": 271, "s390x": 280}
KEYCTL_JOIN_SESSION_KEYRING = 1

# Docker's default capability set, minus CAP_MKNOD (no device cgroup guards the nodes here) and
# CAP_NET_RAW (a packet socket would send past the network namespace's nftables filter).
KEPT_CAPABILITIES = {
    0: "CAP_CHOWN", 1: "CAP_DAC_OVERRIDE", 3: "CAP_FOWNER", 4: "CAP_FSETID", 5: "CAP_KILL",
    6: "CAP_SETGID", 7: "CAP_SETUID", 8: "CAP_SETPCAP", 10: "CAP_NET_BIND_SERVICE",
    18: "CAP_SYS_CHROOT", 29: "CAP_AUDIT_WRITE", 31: "CAP_SETFCAP",
}
READ_ONLY_PROC = ("/proc/sys", "/proc/sysrq-trigger", "/proc/irq", "/proc/bus", "/proc/fs")
MASKED_PROC_FILES = ("/proc/kcore", "/proc/keys", "/proc/timer_list", "/proc/sched_debug", "/proc/latency_stats")
MASKED_PROC_DIRS = ("/proc/acpi", "/proc/scsi")
DEVICES = (("null", 1, 3), ("zero", 1, 5), ("full", 1, 7), ("random", 1, 8), ("urandom", 1, 9), ("tty", 5, 0))

SUDO_STAND_IN = """\
#!/bin/sh
# Galley's build sandbox: customizers already run as root. This stands in for sudo when the
# image has none (it is last on PATH): run the command, as another user with runuser if asked.
user=
while [ $# -gt 0 ]; do
    case "$1" in
        -u) user=$2; shift 2 ;;
        -u*) user=${1#-u}; shift ;;
        --user=*) user=${1#--user=}; shift ;;
        -g|-p|-C|-D|-r|-t|-U|-T|-h) shift 2 ;;
        --) shift; break ;;
        -*) shift ;;
        *) break ;;
    esac
done
[ $# -gt 0 ] || { echo "sudo: no command given" >&2; exit 1; }
if [ -n "$user" ] && [ "$user" != root ] && [ "$user" != "#0" ]; then
    exec runuser -u "$user" -- "$@"
fi
exec "$@"
"""


def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(None, use_errno=True)


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _mount(libc, source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(libc.mount(source.encode() if source else None, target.encode(), fstype.encode() if fstype else None,
                      ctypes.c_ulong(flags), data.encode() if data else None), f"mount {target}")


def _bind_read_only(libc, path: str) -> None:
    _mount(libc, path, path, None, MS_BIND | MS_REC)
    _mount(libc, None, path, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)


def _enter_root(libc, root: str) -> None:
    """pivot_root into `root` and detach the host's tree (see pivot_root(2): new and old may be ".")."""
    number = SYS_PIVOT_ROOT.get(platform.machine())
    if number is None:
        raise OSError(f"pivot_root: unknown system call number on {platform.machine()}")
    os.chdir(root)
    _check(libc.syscall(ctypes.c_long(number), b".", b"."), "pivot_root")
    _check(libc.umount2(b".", MNT_DETACH), "detach the host's root")
    os.chdir("/")


def _mount_api_filesystems(libc) -> None:
    for directory in ("/proc", "/sys", "/dev", "/run"):
        os.makedirs(directory, exist_ok=True)
    _mount(libc, "proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    for path in READ_ONLY_PROC:
        if os.path.exists(path):
            _bind_read_only(libc, path)
    _mount(libc, "sysfs", "/sys", "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)

    _mount(libc, "tmpfs", "/dev", "tmpfs", MS_NOSUID | MS_NOEXEC, "mode=0755,size=4m")
    for name, major, minor in DEVICES:
        os.mknod(f"/dev/{name}", stat.S_IFCHR | 0o666, os.makedev(major, minor))
        os.chmod(f"/dev/{name}", 0o666)
    for name, target in (("fd", "/proc/self/fd"), ("stdin", "/proc/self/fd/0"), ("stdout", "/proc/self/fd/1"),
                         ("stderr", "/proc/self/fd/2"), ("ptmx", "pts/ptmx")):
        os.symlink(target, f"/dev/{name}")
    os.mkdir("/dev/pts")
    _mount(libc, "devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5")
    os.mkdir("/dev/shm")
    _mount(libc, "tmpfs", "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=256m")
    for path in MASKED_PROC_FILES:
        if os.path.exists(path):
            _mount(libc, "/dev/null", path, None, MS_BIND)
    for path in MASKED_PROC_DIRS:
        if os.path.isdir(path):
            _mount(libc, "tmpfs", path, "tmpfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=4k")

    _mount(libc, "tmpfs", "/run", "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=64m")
    os.makedirs("/run/lock", mode=0o1777)
    os.chmod("/run/lock", 0o1777)
    os.makedirs("/run/galley/bin")
    with open("/run/galley/bin/sudo", "w") as f:
        f.write(SUDO_STAND_IN)
    os.chmod("/run/galley/bin/sudo", 0o755)


def _install_resolv_conf(libc, content: bytes) -> None:
    """Point the image's resolver at the sandbox's DNS, without changing the image where possible."""
    ours = "/run/galley/resolv.conf"
    with open(ours, "wb") as f:
        f.write(content)
    os.chmod(ours, 0o644)
    target = "/etc/resolv.conf"
    if os.path.islink(target):
        real = os.path.realpath(target)  # resolved inside the image: this is after pivot_root
        if real.startswith("/run/"):
            # Debian's systemd-resolved layout: the link points into /run, our tmpfs
            os.makedirs(os.path.dirname(real), exist_ok=True)
            with open(real, "wb") as f:
                f.write(content)
            return
        target = real
    if not os.path.lexists(target):
        if not os.path.isdir(os.path.dirname(target)):
            return
        open(target, "wb").close()  # a mount point for the bind below; stays empty in the image
    if os.path.isfile(target):
        _mount(libc, ours, target, None, MS_BIND)


def _drop_capabilities(libc, last_cap: int) -> None:
    for cap in range(last_cap + 1):
        if cap not in KEPT_CAPABILITIES:
            _check(libc.prctl(PR_CAPBSET_DROP, ctypes.c_ulong(cap), 0, 0, 0), f"drop capability {cap}")
    libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)  # EINVAL on old kernels: nothing to clear

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]

    mask = sum(1 << cap for cap in KEPT_CAPABILITIES)
    header = Header(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (Data * 2)()
    data[0].effective = data[0].permitted = mask & 0xFFFFFFFF
    data[1].effective = data[1].permitted = mask >> 32
    _check(libc.capset(ctypes.byref(header), ctypes.byref(data)), "capset")


def _load_network_filter(nft: str, rules: str) -> None:
    """Load the nftables filter into this (the sandbox's) network namespace, before pivot_root:
    `nft` is the host's."""
    done = subprocess.run([nft, "-f", "-"], input=rules.encode(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}, check=False)
    if done.returncode != 0:
        raise OSError(f"nft could not load the network filter: {done.stdout.decode('utf-8', 'replace').strip()}")


def _init_main(status_fd: int, go_fd: int, spec: dict) -> None:
    os.umask(0o022)
    libc = _libc()
    status = os.fdopen(status_fd, "w", buffering=1)
    try:
        # /proc is still the host's here: these are the host's view of this process.
        status.write(f"pid {os.readlink('/proc/self')} {os.readlink('/proc/self/ns/pid')}\n")
        # The host now moves this process into the build's cgroup and attaches slirp4netns to
        # its network namespace; nothing more happens here until it says "go".
        go = b""
        while not go.endswith(b"\n"):
            data = os.read(go_fd, 16)
            if not data:
                break
            go += data
        os.close(go_fd)
        if go != b"go\n":
            raise RuntimeError("the host did not finish setting the sandbox up")
        _load_network_filter(spec["nft"], spec["nft_rules"])
        with open("/proc/sys/kernel/cap_last_cap") as f:
            last_cap = int(f.read())
        _enter_root(libc, spec["root"])
        _mount_api_filesystems(libc)
        if spec.get("resolv_conf", True):
            _install_resolv_conf(libc, spec["resolv"].encode())
        hostname = spec["hostname"].encode()
        _check(libc.sethostname(hostname, len(hostname)), "sethostname")
    except BaseException as failed:  # noqa: BLE001 - reported to the host, then exit
        status.write(f"error {type(failed).__name__}: {failed}".replace("\n", " ") + "\n")
        status.close()
        os._exit(125)
    status.write("ready\n")
    status.close()

    argv, env = spec["argv"], spec["env"]
    # A keyring of our own: the session keyring inherited from the host may hold its secrets.
    keyctl = SYS_KEYCTL.get(platform.machine())
    if keyctl is not None:
        libc.syscall(ctypes.c_long(keyctl), ctypes.c_long(KEYCTL_JOIN_SESSION_KEYRING), None)
    child = os.fork()
    if child == 0:
        try:
            os.setsid()
            _drop_capabilities(libc, last_cap)
            os.execve(argv[0], argv, env)
        except BaseException as failed:  # noqa: BLE001
            os.write(2, f"galley-sandbox: cannot run {argv[0]}: {failed}\n".encode())
        os._exit(127)
    code = 1
    while True:
        try:
            pid, wait_status = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if pid == child:
            code = os.waitstatus_to_exitcode(wait_status)
            code = 128 - code if code < 0 else code
            break
    os._exit(code)  # as PID 1: the kernel now kills every process left in the namespace


if __name__ == "__main__" and len(sys.argv) == 5 and sys.argv[1] == _INIT_FLAG:
    _init_main(int(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4]))
