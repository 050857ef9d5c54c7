"""The Image Builder's build: a source raw image in, a customized, generalized raw image out.

One pipeline of named steps, each small enough to read at once (and each timed):

    copy        `cp --sparse=always` the source image into the work folder
    grow        when osDiskSizeGB asks for more: extend the file and the root partition (sfdisk)
    attach      a loop device on the root partition (`losetup --offset --sizelimit`)
    resize      grow the ext2/3/4 filesystem to fill the partition (e2fsck, resize2fs)
    mount       the root filesystem on a private folder in the work folder
    prepare     keep package installs from starting services (policy-rc.d); note /etc/passwd
    customize   each Shell and File customizer in order, in the build sandbox
    generalize  /tmp/DeprovisioningScript.sh if a customizer left one, else the default
                deprovisioning (as `waagent -deprovision+user`), in the sandbox
    trim        `fstrim` the filesystem, so freed blocks become holes in the image file
    release     unmount, detach the loop device, check that nothing is left

The sandbox (`galley.builder.sandbox`): a new mount, PID, UTS, IPC and network namespace,
pivot_root into the image, reduced capabilities, outbound network to the internet only (not the
host, not its private networks), and a cgroup whose memory, process and CPU limits come from
`vmProfile.vmSize` (`galley.domain.vm_sizes`). `customize` says what template customizers mean,
`generalize` what deprovisioning does.

Progress goes to `on_phase(runState, runSubState)` as Azure reports it: ("Running",
"Building") while the image is prepared, ("Running", "Customizing") from the first customizer
to the end of generalization. Validation and distribution, and the final runState, are the
caller's. Everything the customizers print goes, line by line as it comes, with a timestamp
and the customizer's name, to `log` and to customization.log in the work folder.

Nothing is left behind whatever happens (failure, timeout, cancel, an exception): sandbox
processes are killed, then the filesystem unmounted and the loop device detached, through a
cleanup stack. A failed build removes its partial image and keeps the log. No HTTP, no
database: the caller decides how URIs are fetched (`BuildSpec.fetch`).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO

from .customize import (PREPARE, UNPREPARE, Customizer, CustomizerInputError, Fetch, InvalidCustomizer,
                        SandboxCommand, parse_customizers, plan_customizer)
from .generalize import (DEPROVISIONING_SCRIPT, added_users, custom_deprovisioning, default_deprovisioning,
                         unsafe_user_names)
from ..domain.vm_sizes import UnknownVmSize, vm_size
from .cgroups import Limits
from .sandbox import (SandboxCancelled, SandboxError, SandboxLimitExceeded, SandboxTimeout, entry_kind_in_root,
                      read_file_in_root, run_in_sandbox)

GIB = 1024 ** 3
SECTOR = 512
DEFAULT_TIMEOUT_MINUTES = 240  # Image Builder's default buildTimeoutInMinutes (0 means it too)
IMAGE_NAME = "image.raw"
LOG_NAME = "customization.log"
REQUIRED_TOOLS = ("cp", "sfdisk", "losetup", "blkid", "mount", "umount", "e2fsck", "resize2fs", "unshare", "ip",
                  "slirp4netns", "nft")
GROWABLE_FILESYSTEMS = ("ext2", "ext3", "ext4")
# Partition types that hold a Linux root: MBR 83, GPT "Linux filesystem", GPT root x86-64 / arm64.
LINUX_PARTITION_TYPES = {"83", "0FC63DAF-8483-4772-8E79-3D69D8477DE4", "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709",
                         "B921B045-1DF0-41C3-AF44-4C6F280D3FAE"}

LogSink = Callable[[str], None] | IO[str] | None
PhaseCallback = Callable[[str, str], None]


# --------------------------------------------------------------------------- what goes in and out

@dataclass
class BuildSpec:
    source_image_path: str | os.PathLike
    customizers: list[dict] = field(default_factory=list)  # the template's `customize`, as is
    os_disk_size_gib: int = 0                               # vmProfile.osDiskSizeGB; 0 keeps the size
    timeout_minutes: float = DEFAULT_TIMEOUT_MINUTES        # buildTimeoutInMinutes; 0 means 240
    fetch: Fetch | None = None                              # fetch(uri) -> bytes, for scriptUri and sourceUri
    vm_size: str | None = None                              # vmProfile.vmSize: the sandbox's limits


@dataclass
class BuildResult:
    image_path: Path
    virtual_size: int
    steps: dict[str, float]              # seconds per pipeline step (copy, grow, …, release)
    phases: dict[str, float]             # seconds per reported runSubState (Building, Customizing)
    log_path: Path
    customizers_run: list[str]
    customizer_seconds: dict[str, float]
    deprovisioning: str                  # "default" or "custom" (/tmp/DeprovisioningScript.sh)
    seconds: float


class BuildError(RuntimeError):
    """The build failed; `step` names where. The caller reports runState Failed with `str(e)`."""

    def __init__(self, message: str, *, step: str | None = None):
        super().__init__(message)
        self.step = step
        self.log_path: Path | None = None
        self.customizers_run: list[str] = []


class InvalidBuildSpec(BuildError, ValueError):
    """The spec was rejected before any work was done."""


class CustomizerFailed(BuildError):
    """A customizer exited non-zero (`exit_code`) or what it needed could not be had (exit_code None)."""

    def __init__(self, message: str, *, customizer: str, customizer_type: str, exit_code: int | None):
        super().__init__(message, step="customize")
        self.customizer = customizer
        self.customizer_type = customizer_type
        self.exit_code = exit_code


class DeprovisioningFailed(BuildError):
    def __init__(self, message: str, *, exit_code: int):
        super().__init__(message, step="generalize")
        self.exit_code = exit_code


class BuildTimedOut(BuildError, TimeoutError):
    """buildTimeoutInMinutes passed; everything the build ran was stopped."""


class BuildCancelled(BuildError):
    """The cancel event was set; everything the build ran was stopped."""


# --------------------------------------------------------------------------- the pipeline

def run_build(spec: BuildSpec, *, work_dir: str | os.PathLike, log: LogSink = None,
              cancel: threading.Event | None = None, on_phase: PhaseCallback | None = None) -> BuildResult:
    """Build `spec` in `work_dir`: the result image is `work_dir/image.raw`.

    Raises InvalidBuildSpec before doing anything when the spec is not acceptable;
    CustomizerFailed, DeprovisioningFailed, BuildTimedOut, BuildCancelled or BuildError
    (all BuildError) when the build stops, with every mount, loop device and process it made
    gone, the partial image removed and the log kept (`error.log_path`).
    """
    customizers, limits = _check_spec(spec)
    work = Path(work_dir).resolve()
    if Path(spec.source_image_path).resolve() == work / IMAGE_NAME:
        raise InvalidBuildSpec(f"the source image is {work / IMAGE_NAME}, where the result goes: use another "
                               "work folder", step="check")
    work.mkdir(parents=True, exist_ok=True)
    b = _Build(spec, customizers, limits, work, log, cancel or threading.Event(), on_phase)
    try:
        with b.cleanup:
            b.say(f"building from {spec.source_image_path}: {len(customizers)} customizer(s), "
                  f"timeout {b.timeout_minutes:g} min")
            b.say(f"sandbox limits: {limits.describe()}")
            for sub_state, steps in PIPELINE:
                b.phase(sub_state)
                for name, step in steps:
                    with b.step(name):
                        step(b)
    except BaseException as failed:
        error = b.failure(failed)
        _remove(b.image)
        b.say(f"build failed: {error}")
        b.log.close()
        if error is failed:
            raise
        raise error from failed
    b.end_phase()
    result = BuildResult(image_path=b.image, virtual_size=b.image.stat().st_size, steps=dict(b.steps),
                         phases=dict(b.phases), log_path=b.log.path, customizers_run=list(b.customizers_run),
                         customizer_seconds=dict(b.customizer_seconds), deprovisioning=b.deprovisioning or "",
                         seconds=round(time.monotonic() - b.started, 2))
    b.say(f"build succeeded in {result.seconds:.1f} s: {result.image_path} ({result.virtual_size:,} bytes); "
          f"steps: {json.dumps(result.steps)}")
    b.log.close()
    return result


def sandbox_limits(size_name: str | None) -> Limits:
    """The sandbox's limits for vmProfile.vmSize `size_name` (None: the default size); its vCPUs
    are capped at this server's. Raises UnknownVmSize."""
    size = vm_size(size_name)
    return Limits(memory_bytes=size.memory_bytes, pids=size.pids, cpus=min(size.vcpus, os.cpu_count() or 1),
                  source=f"vmProfile.vmSize {size.name}")


def _check_spec(spec: BuildSpec) -> tuple[list[Customizer], Limits]:
    try:
        customizers = parse_customizers(spec.customizers)
    except InvalidCustomizer as bad:
        raise InvalidBuildSpec(str(bad), step="check") from None
    source = Path(spec.source_image_path)
    if not source.is_file():
        raise InvalidBuildSpec(f"source image {source} is not a file", step="check")
    size = source.stat().st_size
    if size == 0 or size % SECTOR:
        raise InvalidBuildSpec(f"source image {source} is {size} bytes: not a raw disk image "
                               "(a whole number of 512-byte sectors)", step="check")
    gib = spec.os_disk_size_gib or 0
    if isinstance(gib, float) and gib.is_integer():
        gib = int(gib)
    if not isinstance(gib, int) or isinstance(gib, bool) or gib < 0:
        raise InvalidBuildSpec(f"osDiskSizeGB must be a whole number of GiB, 0 or more (got {gib!r})", step="check")
    if gib and gib * GIB < size:
        raise InvalidBuildSpec(f"osDiskSizeGB {gib} is smaller than the source image ({size / GIB:.2f} GiB): "
                               "a disk can grow, not shrink; use 0 to keep its size", step="check")
    minutes = spec.timeout_minutes
    if not isinstance(minutes, (int, float)) or isinstance(minutes, bool) or minutes < 0:
        raise InvalidBuildSpec(f"buildTimeoutInMinutes must be 0 or more (got {minutes!r})", step="check")
    try:
        limits = sandbox_limits(spec.vm_size)
    except UnknownVmSize as unknown:
        raise InvalidBuildSpec(str(unknown), step="check") from None
    if os.geteuid() != 0:
        raise BuildError("building needs root (loop devices, mount, namespaces, cgroups)", step="check")
    missing = [tool for tool in REQUIRED_TOOLS if shutil.which(tool) is None]
    if missing:
        raise BuildError(f"missing host tools: {', '.join(missing)} (Debian: coreutils fdisk mount e2fsprogs "
                         "util-linux iproute2 slirp4netns nftables)", step="check")
    return customizers, limits


class _Build:
    """One build's state: what the steps share, the timers, the log and the cleanup stack."""

    def __init__(self, spec: BuildSpec, customizers: list[Customizer], limits: Limits, work: Path, sink: LogSink,
                 cancel: threading.Event, on_phase: PhaseCallback | None):
        self.spec = spec
        self.customizers = customizers
        self.limits = limits
        self.work = work
        self.cancel = cancel
        self.on_phase = on_phase
        self.log = BuildLog(work / LOG_NAME, sink)
        self.cleanup = ExitStack()
        self.started = time.monotonic()
        self.timeout_minutes = spec.timeout_minutes or DEFAULT_TIMEOUT_MINUTES
        self.deadline = self.started + self.timeout_minutes * 60
        self.steps: dict[str, float] = {}
        self.phases: dict[str, float] = {}
        self._phase: tuple[str, float] | None = None
        self.current_step = "check"
        self.running: str | None = None       # what is running in the sandbox, for messages
        self.image = work / IMAGE_NAME
        self.partition: _Partition | None = None
        self.filesystem = ""
        self.grown = False
        self.loop: str | None = None
        self.root: Path | None = None
        self.passwd_before: str | None = None
        self.customizers_run: list[str] = []
        self.customizer_seconds: dict[str, float] = {}
        self.deprovisioning: str | None = None
        self.release_problems: list[str] = []

    # ---- progress

    def say(self, text: str) -> None:
        self.log.write("galley", text)

    def phase(self, sub_state: str) -> None:
        self.end_phase()
        self._phase = (sub_state, time.monotonic())
        self.say(f"runState Running, runSubState {sub_state}")
        if self.on_phase is not None:
            self.on_phase("Running", sub_state)

    def end_phase(self) -> None:
        if self._phase is not None:
            name, since = self._phase
            self.phases[name] = round(self.phases.get(name, 0.0) + time.monotonic() - since, 2)
            self._phase = None

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        self.current_step = name
        self.check()
        t0 = time.monotonic()
        yield
        self.steps[name] = round(time.monotonic() - t0, 2)
        self.say(f"step {name}: done in {self.steps[name]:.2f} s")

    def check(self) -> None:
        if self.cancel.is_set():
            raise BuildCancelled(f"the build was cancelled during step {self.current_step}", step=self.current_step)
        if time.monotonic() >= self.deadline:
            raise self._timed_out(f"step {self.current_step}")

    def _timed_out(self, what: str) -> BuildTimedOut:
        return BuildTimedOut(f"the build timed out: buildTimeoutInMinutes is {self.timeout_minutes:g} and {what} "
                             "was still running; it was stopped", step=self.current_step)

    def failure(self, failed: BaseException) -> BaseException:
        """The error to raise for `failed`, with the build's log and progress attached."""
        self.end_phase()
        if isinstance(failed, SandboxTimeout):
            error: BaseException = self._timed_out(self.running or f"step {self.current_step}")
        elif isinstance(failed, SandboxCancelled):
            error = BuildCancelled(f"the build was cancelled while {self.running or self.current_step} was running; "
                                   "it was stopped", step=self.current_step)
        elif isinstance(failed, SandboxLimitExceeded):
            error = BuildError(f"step {self.current_step}: {self.running or 'the sandbox'} {failed}",
                               step=self.current_step)
        elif isinstance(failed, SandboxError):
            error = BuildError(f"step {self.current_step}: {failed}", step=self.current_step)
        else:
            error = failed
        if isinstance(error, BuildError):
            error.log_path = self.log.path
            error.customizers_run = list(self.customizers_run)
        return error

    # ---- running things

    def tool(self, step: str, argv: list[str], *, input: str | None = None, interruptible: bool = True,
             ok_codes: tuple[int, ...] = (0,)) -> str:
        """Run a host tool; its output goes to the log. Stops it on cancel or timeout."""
        process = subprocess.Popen(argv, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                   env={"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
                                        "LC_ALL": "C.UTF-8"})
        pending_input = input
        while True:
            try:
                output, _ = process.communicate(pending_input, timeout=0.2 if interruptible else 600)
                break
            except subprocess.TimeoutExpired:
                pending_input = None
                if not interruptible or self.cancel.is_set() or time.monotonic() >= self.deadline:
                    process.kill()
                    process.communicate()
                    self.check()
                    raise BuildError(f"step {step}: {argv[0]} took too long", step=step) from None
        for line in output.splitlines():
            if line.strip():
                self.log.write(argv[0], line)
        if process.returncode not in ok_codes:
            tail = " / ".join(output.strip().splitlines()[-5:])
            raise BuildError(f"step {step}: {' '.join(argv[:2])} … failed with exit code {process.returncode}"
                             + (f": {tail}" if tail else ""), step=step)
        return output

    def sandbox(self, source: str, command: SandboxCommand, *, dns: bool = True) -> int:
        """Run `command` in the image; its output goes to the log as `[source] line`."""
        assert self.root is not None
        stdin_path = None
        if command.stdin is not None:
            fd, stdin_path = tempfile.mkstemp(prefix=".stdin-", dir=self.work)
            with os.fdopen(fd, "wb") as f:
                f.write(command.stdin)
        try:
            return run_in_sandbox(self.root, command.argv, on_line=lambda line: self.log.write(source, line),
                                  limits=self.limits, cancel=self.cancel, deadline=self.deadline,
                                  stdin_path=stdin_path, resolv_conf=dns)
        finally:
            if stdin_path is not None:
                _remove(Path(stdin_path))


@dataclass(frozen=True)
class _Partition:
    number: int | None     # None: the whole disk is the filesystem
    offset: int
    size: int
    label: str | None      # "dos", "gpt", or None


# --------------------------------------------------------------------------- the steps

def copy_source(b: _Build) -> None:
    _remove(b.image)
    b.tool("copy", ["cp", "--sparse=always", str(Path(b.spec.source_image_path).resolve()), str(b.image)])
    os.chmod(b.image, 0o644)


def grow_disk(b: _Build) -> None:
    b.partition = _root_partition(b)
    b.filesystem = _filesystem_type(b, b.partition)
    want = int(b.spec.os_disk_size_gib or 0) * GIB
    size = b.image.stat().st_size
    if not want or want == size:
        b.say(f"keeping the disk's size: {size / GIB:.2f} GiB")
        return
    if b.filesystem not in GROWABLE_FILESYSTEMS:
        raise BuildError(f"step grow: the root filesystem is {b.filesystem or 'unknown'}; only "
                         f"{'/'.join(GROWABLE_FILESYSTEMS)} can be grown here (use osDiskSizeGB 0)", step="grow")
    os.truncate(b.image, want)
    if b.partition.number is not None:
        if b.partition.label == "gpt":
            b.tool("grow", ["sfdisk", "--relocate", "gpt-bak-std", str(b.image)])
        b.tool("grow", ["sfdisk", "--no-reread", "--no-tell-kernel", "--wipe", "never", "--wipe-partitions", "never",
                        "-N", str(b.partition.number), str(b.image)], input=", +\n")
        before = b.partition
        b.partition = _root_partition(b)
        if b.partition.offset != before.offset:
            raise BuildError("step grow: sfdisk moved the root partition", step="grow")
    else:
        b.partition = _Partition(None, 0, want, None)
    b.grown = True
    b.say(f"disk grown from {size / GIB:.2f} GiB to {want / GIB:.2f} GiB; root partition now "
          f"{b.partition.size / GIB:.2f} GiB")


def attach_disk(b: _Build) -> None:
    p = b.partition
    assert p is not None
    argv = ["losetup", "--find", "--show"]
    if p.number is not None:
        argv += ["--offset", str(p.offset), "--sizelimit", str(p.size)]
    device = b.tool("attach", argv + [str(b.image)], interruptible=False).strip().splitlines()[-1]
    if not device.startswith("/dev/loop"):
        raise BuildError(f"step attach: losetup printed {device!r}, not a loop device", step="attach")
    b.loop = device
    b.cleanup.callback(_detach, b, device)
    b.say(f"root filesystem ({b.filesystem or 'unknown type'}) on {device}")


def resize_filesystem(b: _Build) -> None:
    if not b.grown:
        return
    assert b.loop is not None
    # e2fsck: 0 clean, 1 errors corrected, 2 corrected (reboot advised); more is a failure
    b.tool("resize", ["e2fsck", "-f", "-p", b.loop], ok_codes=(0, 1, 2))
    b.tool("resize", ["resize2fs", b.loop])


def mount_root(b: _Build) -> None:
    assert b.loop is not None
    root = Path(tempfile.mkdtemp(prefix="root-", dir=b.work))
    b.cleanup.callback(_remove_dir, root)
    argv = ["mount", "-o", "nodev"] + (["-t", b.filesystem] if b.filesystem else []) + [b.loop, str(root)]
    b.tool("mount", argv, interruptible=False)
    b.root = root
    b.cleanup.callback(_unmount, b, root)


def prepare_image(b: _Build) -> None:
    assert b.root is not None
    data = read_file_in_root(b.root, "etc/passwd")
    b.passwd_before = data.decode("utf-8", "replace") if data is not None else None
    b.running = "preparing the image"
    code = b.sandbox("galley", PREPARE)
    if code:
        raise BuildError(f"step prepare: the image's /bin/sh exited {code}: is this a Linux image with a shell?",
                         step="prepare")


def run_customizers(b: _Build) -> None:
    for c in b.customizers:
        b.check()
        t0 = time.monotonic()
        b.say(f"{c.label} started: {c.describe()}")
        b.running = c.label
        try:
            commands = plan_customizer(c, b.spec.fetch)
        except CustomizerInputError as bad:
            raise CustomizerFailed(f"{bad}; see the log", customizer=c.name, customizer_type=c.type,
                                   exit_code=None) from None
        for command in commands:
            try:
                code = b.sandbox(c.name, command)
            except SandboxLimitExceeded as hit:
                advice = ("use fewer processes or a larger vmProfile.vmSize" if hit.limit == "pids"
                          else "use less memory or a larger vmProfile.vmSize")
                raise CustomizerFailed(f"{c.label} {hit}; {advice}; see the log", customizer=c.name,
                                       customizer_type=c.type, exit_code=hit.exit_code) from None
            if code != 0:
                raise CustomizerFailed(f"{c.label} failed with exit code {code}; see the log",
                                       customizer=c.name, customizer_type=c.type, exit_code=code)
        b.customizer_seconds[c.name] = round(time.monotonic() - t0, 2)
        b.customizers_run.append(c.name)
        b.say(f"{c.label} finished in {b.customizer_seconds[c.name]:.1f} s")
    b.running = "cleaning up after the customizers"
    b.sandbox("galley", UNPREPARE)


def generalize_image(b: _Build) -> None:
    assert b.root is not None
    if entry_kind_in_root(b.root, DEPROVISIONING_SCRIPT) in ("file", "symlink"):
        b.deprovisioning = "custom"
        b.running = f"the deprovisioning script {DEPROVISIONING_SCRIPT}"
        code = b.sandbox("deprovision", custom_deprovisioning(), dns=False)
        if code:
            raise DeprovisioningFailed(f"the deprovisioning script {DEPROVISIONING_SCRIPT} failed with exit code "
                                       f"{code}; see the log", exit_code=code)
        return
    b.deprovisioning = "default"
    users: list[str] = []
    after = read_file_in_root(b.root, "etc/passwd")
    if b.passwd_before is None or after is None:
        b.say("warning: /etc/passwd is missing or not a plain file; no users are deleted")
    else:
        users = added_users(b.passwd_before, after.decode("utf-8", "replace"))
        for name in unsafe_user_names(users):
            b.say(f"warning: not deleting user {name!r}: not a valid user name")
    b.running = "the default deprovisioning"
    code = b.sandbox("deprovision", default_deprovisioning(users), dns=False)
    if code:
        raise DeprovisioningFailed(f"the default deprovisioning (as waagent -deprovision+user) failed with exit "
                                   f"code {code}; see the log", exit_code=code)


def trim_filesystem(b: _Build) -> None:
    assert b.root is not None
    if shutil.which("fstrim") is None:
        return
    try:
        b.tool("trim", ["fstrim", "-v", str(b.root)])
    except BuildError as failed:  # an image without holes is still a correct image
        if isinstance(failed, (BuildTimedOut, BuildCancelled)):
            raise
        b.say(f"warning: {failed}")


def release(b: _Build) -> None:
    """Unmount and detach (the cleanup stack, run now), then make sure nothing is left."""
    b.cleanup.close()
    problems = list(b.release_problems)
    if b.root is not None and _is_mounted(b.root):
        problems.append(f"{b.root} is still mounted")
    if _loops_of(b.image):
        problems.append(f"loop devices {', '.join(_loops_of(b.image))} still use the image")
    if problems:
        raise BuildError("step release: " + "; ".join(problems), step="release")


# The runSubState reported to on_phase, and the steps run in it.
PIPELINE: tuple[tuple[str, tuple[tuple[str, Callable[[_Build], None]], ...]], ...] = (
    ("Building", (("copy", copy_source), ("grow", grow_disk), ("attach", attach_disk),
                  ("resize", resize_filesystem), ("mount", mount_root))),
    ("Customizing", (("prepare", prepare_image), ("customize", run_customizers), ("generalize", generalize_image),
                     ("trim", trim_filesystem), ("release", release))),
)


# --------------------------------------------------------------------------- disk helpers

def _root_partition(b: _Build) -> _Partition:
    done = subprocess.run(["sfdisk", "--json", str(b.image)], check=False, capture_output=True, text=True)
    if done.returncode != 0:  # no partition table: a filesystem on the whole disk
        return _Partition(None, 0, b.image.stat().st_size, None)
    table = json.loads(done.stdout)["partitiontable"]
    sector = int(table.get("sectorsize", SECTOR))
    partitions = table.get("partitions", [])
    linux = [p for p in partitions if str(p.get("type", "")).upper() in LINUX_PARTITION_TYPES] or partitions
    if not linux:
        raise BuildError("step grow: the image's partition table has no partitions", step="grow")
    best = max(linux, key=lambda p: int(p["size"]))
    suffix = best["node"][len(str(b.image)):].lstrip("p")
    if not suffix.isdigit():
        raise BuildError(f"step grow: cannot tell the partition number of {best['node']}", step="grow")
    return _Partition(int(suffix), int(best["start"]) * sector, int(best["size"]) * sector, table.get("label"))


def _filesystem_type(b: _Build, p: _Partition) -> str:
    argv = ["blkid", "-p", "-o", "value", "-s", "TYPE"]
    if p.number is not None:
        argv += ["-O", str(p.offset)]
    done = subprocess.run(argv + [str(b.image)], check=False, capture_output=True, text=True)
    return done.stdout.strip() if done.returncode == 0 else ""


def mount_points() -> list[str]:
    with open("/proc/self/mountinfo") as f:
        return [line.split()[4].replace("\\040", " ") for line in f]


def loop_backing_files() -> dict[str, str]:
    """Each attached loop device (/dev/loopN) and its backing file (also when deleted meanwhile)."""
    found = {}
    for backing in Path("/sys/block").glob("loop*/loop/backing_file"):
        try:
            found["/dev/" + backing.parent.parent.name] = backing.read_text().strip().removesuffix(" (deleted)")
        except OSError:
            continue
    return found


def _is_mounted(path: Path) -> bool:
    return str(path) in mount_points()


def _loops_of(image: Path) -> list[str]:
    return [device for device, name in loop_backing_files().items() if name == str(image)]


def _unmount(b: _Build, mount_point: Path) -> None:
    for _ in range(40):
        if not _is_mounted(mount_point):
            return
        done = subprocess.run(["umount", str(mount_point)], check=False, capture_output=True, text=True)
        if done.returncode == 0:
            return
        time.sleep(0.25)
    subprocess.run(["umount", "--lazy", str(mount_point)], check=False, capture_output=True)
    b.release_problems.append(f"{mount_point} was busy and had to be unmounted lazily")
    b.say(f"warning: {mount_point} was busy; unmounted lazily")


def _detach(b: _Build, device: str) -> None:
    name = device.removeprefix("/dev/")
    backing = Path("/sys/block") / name / "loop" / "backing_file"
    subprocess.run(["losetup", "--detach", device], check=False, capture_output=True)
    give_up = time.monotonic() + 10
    while backing.exists() and time.monotonic() < give_up:
        time.sleep(0.1)
        subprocess.run(["losetup", "--detach", device], check=False, capture_output=True)
    if backing.exists():
        b.release_problems.append(f"{device} is still attached")
        b.say(f"warning: {device} could not be detached")


def _remove_dir(path: Path) -> None:
    if path.is_dir() and not _is_mounted(path):
        try:
            path.rmdir()
        except OSError:
            pass


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


# --------------------------------------------------------------------------- the log

class BuildLog:
    """customization.log in the work folder, and the caller's sink (a callable or a text file)."""

    def __init__(self, path: Path, sink: LogSink):
        self.path = path
        self.sink = sink
        self._file = open(path, "a", encoding="utf-8")
        self._lock = threading.Lock()

    def write(self, source: str, text: str) -> None:
        stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        line = f"{stamp} [{source}] {text}"
        with self._lock:
            if not self._file.closed:
                self._file.write(line + "\n")
                self._file.flush()
        if self.sink is None:
            return
        if callable(self.sink):
            self.sink(line)
        else:
            self.sink.write(line + "\n")
            flush = getattr(self.sink, "flush", None)
            if flush is not None:
                flush()

    def close(self) -> None:
        with self._lock:
            self._file.close()
