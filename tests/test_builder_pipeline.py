"""The Image Builder's build pipeline: a real Debian image customized in the sandbox, generalized,
checked file by file (debugfs, no mount) and booted.

The slow tests need root and build from the Debian 12 image that tests/debian_base.py makes once
per machine; the apt-get customizers reach deb.debian.org (through the sandbox's slirp4netns).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest

from .debian_base import debian_base_image

from galley.builder.boot import boot_test
from galley.builder.customize import (FILE_MAX_BYTES, CustomizerInputError, InvalidCustomizer, destination_problem,
                                      parse_customizers, plan_customizer)
from galley.builder.cgroups import PREFIX as CGROUP_PREFIX, Limits, SandboxCgroup
from galley.builder.generalize import added_users
from galley.builder.pipeline import (BuildCancelled, BuildSpec, BuildTimedOut, CustomizerFailed, InvalidBuildSpec,
                                     run_build, sandbox_limits)
from galley.builder.sandbox_network import blocked_networks, nft_rules
from galley.domain.vm_sizes import DEFAULT_VM_SIZE, UnknownVmSize, vm_size

GIB = 1024 ** 3
PARTITION_OFFSET = 1024 * 1024
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z \[")


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# --------------------------------------------------------------------------- fixtures and helpers

@pytest.fixture(scope="session")
def base_image():
    return debian_base_image()


@pytest.fixture
def work_dir(tmp_path):
    work = tmp_path / "work"
    yield work
    if not any(str(work) in line for line in Path("/proc/self/mounts").read_text().splitlines()):
        shutil.rmtree(work, ignore_errors=True)  # images are big: do not keep them around


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """A temporary folder of its own for the build: it must stay empty (all goes to work_dir)."""
    folder = tmp_path / "tmpdir"
    folder.mkdir()
    monkeypatch.setenv("TMPDIR", str(folder))
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    yield folder
    assert list(folder.iterdir()) == [], "the build left files outside its work folder"


class Recorder:
    """A log sink and phase callback that keep what they got."""

    def __init__(self):
        self.lines: list[str] = []
        self.phases: list[tuple[str, str]] = []
        self.seen = threading.Event()
        self.wanted: str | None = None

    def log(self, line: str) -> None:
        self.lines.append(line)
        if self.wanted and self.wanted in line:
            self.seen.set()

    def phase(self, state: str, sub_state: str) -> None:
        self.phases.append((state, sub_state))

    @property
    def text(self) -> str:
        return "\n".join(self.lines)


def _fetcher(blobs: dict[str, bytes]):
    def fetch(uri: str) -> bytes:
        return blobs[uri]
    return fetch


def _debugfs(image: Path, request: str) -> str:
    done = subprocess.run(["debugfs", "-R", request, f"{image}?offset={PARTITION_OFFSET}"],
                          capture_output=True, text=True, check=True)
    return done.stdout + done.stderr


def _exists(image: Path, path: str) -> bool:
    return "File not found" not in _debugfs(image, f"stat {path}")


def _cat(image: Path, path: str) -> str:
    return subprocess.run(["debugfs", "-R", f"cat {path}", f"{image}?offset={PARTITION_OFFSET}"],
                          capture_output=True, text=True, check=True).stdout


def _size(image: Path, path: str) -> int:
    return int(re.search(r"Size: (\d+)", _debugfs(image, f"stat {path}")).group(1))


def _listing(image: Path, path: str) -> list[str]:
    names = []
    for line in _debugfs(image, f"ls -l {path}").splitlines():
        parts = line.split()
        if len(parts) >= 9 and parts[-1] not in (".", ".."):
            names.append(parts[-1])
    return names


def _processes_matching(*needles: bytes) -> list[str]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if any(n in cmdline for n in needles):
            found.append(entry + ": " + cmdline.replace(b"\0", b" ").decode(errors="replace"))
    return found


def sandbox_cgroups() -> list[str]:
    """The build sandbox cgroups this process made that still exist (in every cgroup hierarchy)."""
    mine = f"{CGROUP_PREFIX}{os.getpid()}-"
    found = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        if line.partition(" - ")[2].split()[:1] in (["cgroup"], ["cgroup2"]):
            for folder, subfolders, _ in os.walk(line.split()[4]):
                found += [os.path.join(folder, name) for name in subfolders if name.startswith(mine)]
    return found


def slirp_children() -> list[int]:
    """slirp4netns processes this process started that are still there."""
    found = []
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            name, _, rest = stat_file.read_text().rpartition(")")
        except OSError:
            continue
        if name.endswith("(slirp4netns") and int(rest.split()[1]) == os.getpid():
            found.append(int(stat_file.parent.name))
    return found


def host_addresses() -> list[str]:
    """The host's own addresses but loopback and link-local IPv6 (IPv4 and IPv6), from `ip -j addr`."""
    done = subprocess.run(["ip", "-j", "addr", "show"], capture_output=True, text=True, check=True)
    found = []
    for link in json.loads(done.stdout):
        for info in link.get("addr_info", []):
            if info.get("scope") == "global" or (info.get("family") == "inet" and info.get("scope") != "host"):
                found.append(info["local"])
    return found


class HostListeners:
    """TCP listeners on every address of the host (IPv4 and IPv6), standing in for Galley's API,
    PostgreSQL and the S3 server; each counts the connections it accepts."""

    def __init__(self, names: tuple[str, ...]):
        self.names = names
        self.sockets = [socket.create_server(("", 0), family=socket.AF_INET6, dualstack_ipv6=True) for _ in names]
        self.ports = [s.getsockname()[1] for s in self.sockets]
        self.accepted = [0] * len(names)
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._serve, args=(i,), daemon=True) for i in range(len(names))]
        for thread in self.threads:
            thread.start()

    def _serve(self, i: int) -> None:
        server = self.sockets[i]
        server.settimeout(0.2)
        while not self.stopping.is_set():
            try:
                connection, _ = server.accept()
            except OSError:
                continue
            self.accepted[i] += 1
            with connection:
                connection.sendall(b"hello from the host\n")

    def close(self) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join()
        for server in self.sockets:
            server.close()


class Heartbeat:
    """The host keeps serving: a listener answers in a thread of this process, and another thread
    connects to it every 0.1 s and times each answer."""

    def __enter__(self) -> Heartbeat:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.server.settimeout(0.2)
        self.address = self.server.getsockname()
        self.stopping = threading.Event()
        self.seconds: list[float] = []
        self.failures: list[str] = []
        self.threads = [threading.Thread(target=self._serve, daemon=True),
                        threading.Thread(target=self._beat, daemon=True)]
        for thread in self.threads:
            thread.start()
        return self

    def _serve(self) -> None:
        while not self.stopping.is_set():
            try:
                connection, _ = self.server.accept()
            except OSError:
                continue
            with connection:
                connection.sendall(b"ok\n")

    def _beat(self) -> None:
        while not self.stopping.is_set():
            started = time.monotonic()
            try:
                with socket.create_connection(self.address, timeout=30) as connection:
                    assert connection.recv(3) == b"ok\n"
                self.seconds.append(time.monotonic() - started)
            except (OSError, AssertionError) as failed:
                self.failures.append(repr(failed))
            time.sleep(0.1)

    def __exit__(self, *exc) -> None:
        self.stopping.set()
        for thread in self.threads:
            thread.join()
        self.server.close()

    def assert_served(self, at_least: int) -> None:
        assert not self.failures, self.failures
        assert len(self.seconds) >= at_least, len(self.seconds)
        print(f"host answered {len(self.seconds)} times during the build; slowest {max(self.seconds) * 1000:.0f} ms")


def assert_no_leftovers(work: Path, *process_needles: bytes) -> None:
    mounts = [line for line in Path("/proc/self/mounts").read_text().splitlines() if str(work) in line]
    assert not mounts, mounts
    attached = subprocess.run(["losetup", "-a"], check=False, capture_output=True, text=True).stdout
    loops = [line for line in attached.splitlines() if str(work) in line]
    assert not loops, loops
    # the sandbox's unshare and init carry the image's mount point (under `work`) on their command line
    processes = _processes_matching(str(work).encode(), *process_needles)
    assert not processes, processes
    assert not list(work.glob(".stdin-*"))
    assert not [p for p in work.glob("root-*")], "mount point folders are removed"
    assert sandbox_cgroups() == [], "the sandbox's cgroups are removed"
    assert slirp_children() == [], "slirp4netns is stopped"


# --------------------------------------------------------------------------- fast: no image

def test_parse_customizers_takes_the_template_shapes():
    parsed = parse_customizers([
        {"type": "Shell", "name": "a", "inline": ["echo 1", "echo 2"]},
        {"type": "Shell", "name": "b", "scriptUri": "https://x/s.sh", "sha256Checksum": "A" * 64},
        {"type": "File", "name": "c", "sourceUri": "https://x/f", "destination": "/tmp/f"},
        {"type": "shell", "inline": "echo one line"},
    ])
    assert [(c.type, c.name) for c in parsed] == [("Shell", "a"), ("Shell", "b"), ("File", "c"), ("Shell", "shell-4")]
    assert parsed[1].sha256 == "a" * 64
    assert parsed[3].inline == ("echo one line",)


@pytest.mark.parametrize("entry, message", [
    ({"type": "File", "name": "f", "sourceUri": "u", "destination": "/etc/motd"}, "only write to a file under /tmp"),
    ({"type": "File", "name": "f", "sourceUri": "u", "destination": "/tmp"}, "only write to a file under /tmp"),
    ({"type": "File", "name": "f", "sourceUri": "u", "destination": "/tmp/../etc/passwd"}, "plain absolute"),
    ({"type": "File", "name": "f", "sourceUri": "u", "destination": "tmp/x"}, "only write to a file under /tmp"),
    ({"type": "File", "name": "f", "sourceUri": "u", "destination": "/var/tmp/x"}, "only write to a file under /tmp"),
    ({"type": "PowerShell", "name": "p", "inline": ["x"]}, "for Windows images"),
    ({"type": "Shell", "name": "s", "inline": ["x"], "scriptUri": "u"}, "exactly one of"),
    ({"type": "Shell", "name": "s", "scriptUri": "u", "sha256Checksum": "abc"}, "64 hexadecimal"),
    ({"type": "Shell", "name": "s", "inline": []}, "non-empty list"),
    ({"type": "Nope", "name": "s"}, "not supported"),
])
def test_parse_customizers_rejects(entry, message):
    with pytest.raises(InvalidCustomizer) as raised:
        parse_customizers([{"type": "Shell", "name": "first", "inline": ["true"]}, entry])
    assert message in str(raised.value)
    assert str(raised.value).startswith("customize[1]:")


def test_destination_problem():
    assert destination_problem("/tmp/x") is None
    assert destination_problem("/tmp/sub/dir/x.tar.gz") is None
    assert "under /tmp" in destination_problem("/etc/x")
    assert destination_problem("/tmp/x/") is not None
    assert destination_problem("//tmp/x") is not None


def test_run_build_rejects_a_destination_outside_tmp_before_any_work(tmp_path):
    source = tmp_path / "source.raw"
    with open(source, "wb") as f:
        f.truncate(2 * GIB)
    spec = BuildSpec(source, customizers=[{"type": "File", "name": "motd", "sourceUri": "https://x/motd",
                                           "destination": "/etc/motd"}])
    with pytest.raises(InvalidBuildSpec) as raised:
        run_build(spec, work_dir=tmp_path / "work")
    assert "customizer 'motd' (File): destination '/etc/motd' is not allowed" in str(raised.value)
    assert not (tmp_path / "work").exists()
    with pytest.raises(InvalidBuildSpec, match="a disk can grow, not shrink"):
        run_build(BuildSpec(source, os_disk_size_gib=1), work_dir=tmp_path / "work")


def test_script_sha256_mismatch_names_both_hashes():
    (c,) = parse_customizers([{"type": "Shell", "name": "setup", "scriptUri": "https://x/setup.sh",
                               "sha256Checksum": "0" * 64}])
    script = b"#!/bin/sh\necho hi\n"
    with pytest.raises(CustomizerInputError) as raised:
        plan_customizer(c, _fetcher({"https://x/setup.sh": script}))
    assert "0" * 64 in str(raised.value) and _sha256(script) in str(raised.value)
    assert "customizer 'setup' (Shell)" in str(raised.value)


def test_file_over_20_mb_is_rejected():
    big = b"x" * (FILE_MAX_BYTES + 1)
    (c,) = parse_customizers([{"type": "File", "name": "big", "sourceUri": "https://x/big", "destination": "/tmp/big"}])
    with pytest.raises(CustomizerInputError, match="20 MB"):
        plan_customizer(c, _fetcher({"https://x/big": big}))
    (ok,) = plan_customizer(c, _fetcher({"https://x/big": big[:FILE_MAX_BYTES]}))
    assert ok.stdin == big[:FILE_MAX_BYTES] and ok.argv[-1] == "/tmp/big"


def test_vm_sizes_set_the_sandbox_limits():
    assert DEFAULT_VM_SIZE == "Standard_D1_v2"
    default = sandbox_limits(None)
    assert default == sandbox_limits("standard_d1_V2")
    assert (default.memory_bytes, default.pids, default.cpus) == (3584 * 1024 ** 2, 3072, 1)
    assert default.source == "vmProfile.vmSize Standard_D1_v2"
    assert default.describe() == ("memory 3.5 GiB (no swap), 3072 processes and threads, 1 CPU "
                                  "(vmProfile.vmSize Standard_D1_v2)")
    assert (vm_size("Standard_B1s").memory_mib, vm_size("Standard_B1s").pids) == (1024, 2048)
    assert (vm_size("Standard_D2s_v3").vcpus, vm_size("Standard_D2s_v3").memory_mib) == (2, 8192)
    assert (vm_size("Standard_E4s_v5").vcpus, vm_size("Standard_E4s_v5").memory_mib) == (4, 32768)
    assert vm_size("Standard_B1ls").pids == 1024  # at most 2 per MiB: a fork bomb meets it before memory
    assert sandbox_limits("Standard_F16s_v2").cpus == min(16, os.cpu_count())
    with pytest.raises(UnknownVmSize, match="Standard_D1_v2"):
        vm_size("Standard_Q7_v9")


def test_run_build_rejects_an_unknown_vm_size_before_any_work(tmp_path):
    source = tmp_path / "source.raw"
    with open(source, "wb") as f:
        f.truncate(GIB)
    with pytest.raises(InvalidBuildSpec, match="vmSize 'Standard_Q7_v9' is not a VM size"):
        run_build(BuildSpec(source, vm_size="Standard_Q7_v9"), work_dir=tmp_path / "work")
    assert not (tmp_path / "work").exists()


def test_the_network_filter_blocks_private_and_host_networks():
    blocked = blocked_networks(["192.0.2.2/32", "192.0.2.0/24", "10.1.2.3/32", "203.0.113.9/32"])
    for network in ("10.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12", "192.168.0.0/16",
                    "100.64.0.0/10", "192.0.2.0/24", "203.0.113.9/32"):
        assert network in blocked, (network, blocked)
    assert "10.1.2.3/32" not in blocked  # merged into 10.0.0.0/8: nft refuses overlapping elements
    rules = nft_rules(blocked)
    assert "policy drop" in rules and 'oifname "lo" accept' in rules
    assert "ip daddr 10.0.2.3 udp dport 53 accept" in rules
    assert rules.index("dport 53 accept") < rules.index("ip daddr @blocked reject")


def test_cgroup_v2_layout_in_a_fake_hierarchy(tmp_path):
    """The v2 file layout (the kernel's rules are the slow tests' business, on v1 or v2)."""
    top = tmp_path / "cgroup"
    own = top / "system.slice" / "galley.service"
    own.mkdir(parents=True)
    (top / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (own / "cgroup.subtree_control").write_text("cpu memory pids\n")
    mountinfo = f"30 23 0:26 / {top} rw,nosuid - cgroup2 cgroup2 rw\n"
    limits = Limits(memory_bytes=GIB, pids=2048, cpus=1.5, source="vmProfile.vmSize test")
    stale = own / f"{CGROUP_PREFIX}999999999-1"  # a dead server's
    stale.mkdir()
    original_mkdir = Path.mkdir

    def mkdir_with_files(self, *args, **kwargs):  # the kernel fills a new cgroup with its files
        original_mkdir(self, *args, **kwargs)
        for name in ("cgroup.procs", "memory.max", "memory.swap.max", "pids.max", "cpu.max"):
            (self / name).write_text("")

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Path, "mkdir", mkdir_with_files)
        cgroup = SandboxCgroup.create(limits, mountinfo=mountinfo, self_cgroup="0::/system.slice/galley.service\n")
    d = cgroup.directories[""]
    assert d.parent == own and d.name.startswith(f"{CGROUP_PREFIX}{os.getpid()}-")
    assert (d / "memory.max").read_text() == str(GIB)
    assert (d / "memory.swap.max").read_text() == "0"
    assert (d / "pids.max").read_text() == "2048"
    assert (d / "cpu.max").read_text() == "150000 100000"
    assert not stale.exists(), "a dead server's cgroup is removed"
    (d / "pids.events").write_text("max 3\n")
    (d / "memory.events").write_text("low 0\nhigh 0\nmax 9\noom 2\noom_kill 2\n")
    assert (cgroup.pids_limit_hits(), cgroup.oom_kills()) == (3, 2)


def test_added_users_are_new_regular_accounts():
    before = "root:x:0:0:root:/root:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
    after = before + ("builder:x:1000:1000::/home/builder:/bin/sh\n"
                      "_svc:x:999:999::/var/lib/svc:/usr/sbin/nologin\n"
                      "ops:x:1001:1001::/home/ops:/bin/sh\n")
    assert added_users(before, after) == ["builder", "ops"]
    assert added_users(after, after) == []


# --------------------------------------------------------------------------- slow: real images

@pytest.mark.slow
def test_build_customizes_generalizes_and_boots(base_image, work_dir, private_tmp):
    payload = b"payload for the image\n"
    blobs = {"https://artifacts.example/payload.txt": payload}
    customizers = [
        {"type": "Shell", "name": "setup", "inline": [
            "echo built-by-galley > /etc/galley-built",
            "useradd --create-home --shell /bin/sh builder",
            "id builder",
            "echo 0123456789abcdef0123456789abcdef > /etc/machine-id",
            "mkdir -p /etc/ssh && echo not-a-real-key > /etc/ssh/ssh_host_ed25519_key",
            "echo 'ls /' > /root/.bash_history",
            "mkdir -p /var/lib/cloud/instance && echo done > /var/lib/cloud/instance/boot-finished",
            "echo noise >> /var/log/galley-test.log",
            "echo \"hostname in the sandbox: $(hostname)\"",
        ]},
        {"type": "Shell", "name": "install-hello", "inline": [
            "apt-get update",
            "apt-get install -y --no-install-recommends hello",
        ]},
        {"type": "File", "name": "payload", "sourceUri": "https://artifacts.example/payload.txt",
         "destination": "/tmp/x", "sha256Checksum": _sha256(payload)},
        {"type": "Shell", "name": "use-payload", "inline": ["cp /tmp/x /etc/galley-payload"]},
    ]
    recorder = Recorder()
    result = run_build(BuildSpec(base_image, customizers=customizers, os_disk_size_gib=3, timeout_minutes=20,
                                 fetch=_fetcher(blobs)),
                       work_dir=work_dir, log=recorder.log, on_phase=recorder.phase)
    print(f"\nsteps (s): {json.dumps(result.steps)}\nphases (s): {json.dumps(result.phases)}\n"
          f"customizers (s): {json.dumps(result.customizer_seconds)}\nin all: {result.seconds} s")

    assert recorder.phases == [("Running", "Building"), ("Running", "Customizing")]
    assert result.customizers_run == ["setup", "install-hello", "payload", "use-payload"]
    assert result.deprovisioning == "default"
    assert list(result.steps) == ["copy", "grow", "attach", "resize", "mount", "prepare", "customize", "generalize",
                                  "trim", "release"]
    assert set(result.phases) == {"Building", "Customizing"}
    image = result.image_path
    assert image == work_dir / "image.raw"
    assert result.virtual_size == 3 * GIB == image.stat().st_size
    block_count = int(re.search(r"Block count:\s+(\d+)", _debugfs(image, "stats")).group(1))
    assert block_count * 4096 > 2.9 * GIB  # the filesystem grew with the disk

    # the log: every line timestamped, each customizer's output under its name, as it came
    assert recorder.lines and all(STAMP.match(line) for line in recorder.lines)
    assert "[install-hello] Setting up hello" in recorder.text
    assert "[setup] uid=1000(builder)" in recorder.text
    assert "[setup] hostname in the sandbox: debian" in recorder.text
    assert result.log_path.read_text().count("\n") == len(recorder.lines)

    # the customizations are in the image
    assert _cat(image, "/etc/galley-built") == "built-by-galley\n"
    assert _exists(image, "/usr/bin/hello")
    assert _cat(image, "/etc/galley-payload") == payload.decode()
    # and it is generalized
    assert "builder:" not in _cat(image, "/etc/passwd")
    assert "builder" not in _listing(image, "/home")
    assert _size(image, "/etc/machine-id") == 0
    assert not [name for name in _listing(image, "/etc/ssh") if name.startswith("ssh_host_")]
    assert not _exists(image, "/root/.bash_history")
    assert _listing(image, "/var/lib/cloud") == []
    assert _size(image, "/var/log/galley-test.log") == 0
    assert _listing(image, "/tmp") == []
    assert not _exists(image, "/usr/sbin/policy-rc.d")
    # the sandbox's DNS came through /run (a tmpfs): the image's resolv.conf link is untouched
    assert "Type: symlink" in _debugfs(image, "stat /etc/resolv.conf")
    assert_no_leftovers(work_dir)

    # it boots, and has the customization
    booted = boot_test(image, "test -f /etc/galley-built && hello && ! id builder", timeout=300)
    print(f"boot test: {booted.seconds} s ({booted.accel})")
    assert booted.exit_code == 0, booted.output + "\n" + booted.serial_log[-3000:]
    assert "Hello, world!" in booted.output


@pytest.mark.slow
def test_a_failing_customizer_stops_the_build(base_image, work_dir, private_tmp):
    script = b"#!/bin/sh\necho \"fetched script runs as uid $(id -u)\"\n"
    customizers = [
        {"type": "Shell", "name": "fetched", "scriptUri": "https://scripts.example/ok.sh",
         "sha256Checksum": _sha256(script)},
        {"type": "Shell", "name": "install-nginx", "inline": [
            "echo about to fail",
            "echo complaint on stderr >&2",
            "exit 100",
            "echo never printed",
        ]},
        {"type": "Shell", "name": "later", "inline": ["echo later-ran > /etc/later-ran"]},
    ]
    recorder = Recorder()
    with pytest.raises(CustomizerFailed) as raised:
        run_build(BuildSpec(base_image, customizers=customizers,
                            fetch=_fetcher({"https://scripts.example/ok.sh": script})),
                  work_dir=work_dir, log=recorder.log)
    error = raised.value
    assert error.exit_code == 100
    assert error.customizer == "install-nginx" and error.customizer_type == "Shell"
    assert str(error) == "customizer 'install-nginx' (Shell) failed with exit code 100; see the log"
    assert error.customizers_run == ["fetched"]
    assert error.log_path == work_dir / "customization.log"
    log = error.log_path.read_text()
    assert "[fetched] fetched script runs as uid 0" in log
    assert "[install-nginx] about to fail" in log
    assert "[install-nginx] complaint on stderr" in log
    assert "never printed" not in log
    assert "customizer 'later'" not in log and "later-ran" not in log
    assert "build failed: customizer 'install-nginx' (Shell) failed with exit code 100" in log
    assert not (work_dir / "image.raw").exists()  # a failed build keeps its log, not its image
    assert_no_leftovers(work_dir)


@pytest.mark.slow
def test_script_checksum_mismatch_fails_naming_both_hashes(base_image, work_dir):
    script = b"echo should not run\n"
    wrong = "f" * 64
    with pytest.raises(CustomizerFailed) as raised:
        run_build(BuildSpec(base_image, customizers=[
            {"type": "Shell", "name": "setup", "scriptUri": "https://scripts.example/setup.sh",
             "sha256Checksum": wrong}], fetch=_fetcher({"https://scripts.example/setup.sh": script})),
            work_dir=work_dir)
    message = str(raised.value)
    assert wrong in message and _sha256(script) in message
    assert "sha256 mismatch" in message and raised.value.exit_code is None
    assert "should not run" not in (work_dir / "customization.log").read_text()
    assert_no_leftovers(work_dir)


@pytest.mark.slow
def test_file_customizer_over_20_mb_fails_the_build(base_image, work_dir):
    big = b"\0" * (FILE_MAX_BYTES + 1)
    with pytest.raises(CustomizerFailed, match="20 MB"):
        run_build(BuildSpec(base_image, customizers=[
            {"type": "File", "name": "big", "sourceUri": "https://x/big.bin", "destination": "/tmp/big.bin"}],
            fetch=_fetcher({"https://x/big.bin": big})), work_dir=work_dir)
    assert_no_leftovers(work_dir)


@pytest.mark.slow
def test_customizers_cannot_touch_the_host(base_image, work_dir, tmp_path):
    token = uuid.uuid4().hex[:12]
    marker = tmp_path / "host-marker"
    marker.write_text("original\n")
    host_root_marker = Path(f"/host-marker-{token}")
    hostname = socket.gethostname()
    core_pattern = Path("/proc/sys/kernel/core_pattern").read_text()

    def attempt(what: str, command: str) -> str:
        return f"if {command}; then echo 'ESCAPED: {what}'; else echo 'blocked: {what}'; fi"

    inline = [
        attempt("write /host-marker (lands in the image)", f"echo pwned > /host-marker-{token}"),
        attempt("write the host marker by path", f"echo pwned > {marker}"),
        attempt("write through /proc/1/root", f"echo pwned > /proc/1/root{marker}"),
        attempt("list /proc/1/root", "ls /proc/1/root/ >/dev/null"),
        attempt("read /proc/1/exe", "readlink /proc/1/exe"),
        attempt("bind-mount /", "mount --bind / /mnt"),
        attempt("mount a devtmpfs", "mount -t devtmpfs none /mnt"),
        attempt("mount a tmpfs", "mount -t tmpfs none /mnt"),
        attempt("make a block device", "mknod /tmp/disk b 254 0"),
        attempt("write /proc/sys", f"echo '|/bin/sh -c \"echo pwned > {marker}\"' > /proc/sys/kernel/core_pattern"),
        attempt("remount /proc/sys", "mount -o remount,rw /proc/sys"),
        attempt("write /sys", "echo /bin/true > /sys/kernel/uevent_helper"),
        attempt("set the hostname", "hostname pwned"),
        attempt("signal the host's processes", f"kill -0 {os.getpid()}"),
        attempt("see the host's processes", "test $(ls /proc | grep -c '^[0-9]') -gt 10"),
        # the classic chroot escape: chroot deeper without chdir, climb out, chroot there
        attempt("chroot escape", "perl -e 'mkdir \"/tmp/esc\"; chroot \"/tmp/esc\" or die; "
                                 "chdir \"..\" for 1..64; chroot \".\" or die; "
                                 f"open(F, \">\", \"{marker}\") or die; print F \"pwned\\n\"; close F or die;'"),
        "echo attempts done",
    ]
    recorder = Recorder()
    try:
        result = run_build(BuildSpec(base_image, customizers=[{"type": "Shell", "name": "escape", "inline": inline}]),
                           work_dir=work_dir, log=recorder.log)
    finally:
        escaped_core_pattern = Path("/proc/sys/kernel/core_pattern").read_text()
        if escaped_core_pattern != core_pattern:  # undo the damage before failing
            Path("/proc/sys/kernel/core_pattern").write_text(core_pattern)
        if host_root_marker.exists():
            host_root_marker.unlink()
            pytest.fail(f"a customizer wrote {host_root_marker} on the host")
    output = "\n".join(line.split("[escape] ", 1)[1] for line in recorder.lines if "[escape] " in line)
    assert "attempts done" in output
    assert output.count("ESCAPED") == 1, output
    assert "ESCAPED: write /host-marker (lands in the image)" in output
    assert escaped_core_pattern == core_pattern
    assert marker.read_text() == "original\n"
    assert socket.gethostname() == hostname
    # the one write that worked went into the image
    assert _cat(result.image_path, f"/host-marker-{token}") == "pwned\n"
    assert_no_leftovers(work_dir)


@pytest.mark.slow
def test_customizers_reach_the_mirror_but_nothing_on_the_host(base_image, work_dir, private_tmp):
    """The sandbox's own network: apt-get reaches its mirror, while services of the host (stood in
    for by listeners on all its addresses) cannot be reached on loopback, on its other addresses,
    through slirp4netns's gateway or DNS relay, nor the link-local metadata address."""
    # no quotes in the labels: they go into the shell
    listeners = HostListeners(("the Galley API", "PostgreSQL", "the S3 server"))
    try:
        addresses = host_addresses()
        assert addresses, "the host has no address but loopback"
        # each listener answers the host itself on each address: the attempts below are not vacuous
        for address in ["127.0.0.1", *addresses]:
            for port in listeners.ports:
                with socket.create_connection((address, port), timeout=5) as connection:
                    assert connection.recv(5) == b"hello"
        answered_the_host = list(listeners.accepted)

        def attempt(what: str, address: str, port: int) -> str:
            return (f"if timeout 5 bash -c 'exec 3<>/dev/tcp/{address}/{port}' 2>/dev/null; "
                    f"then echo 'REACHED: {what}'; else echo 'blocked: {what}'; fi")

        inline = []
        for name, port in zip(listeners.names, listeners.ports):
            for address in ["127.0.0.1", "10.0.2.2", "10.0.2.3", *addresses]:
                inline.append(attempt(f"{name} on {address}:{port}", address, port))
        inline += [
            attempt("the metadata service 169.254.169.254:80", "169.254.169.254", 80),
            attempt("a link-local address 169.254.1.1:80", "169.254.1.1", 80),
            "echo attempts done",
            "getent hosts deb.debian.org",
            "apt-get update",
            "echo apt-get update worked",
        ]
        recorder = Recorder()
        started = time.monotonic()
        run_build(BuildSpec(base_image, customizers=[{"type": "Shell", "name": "network", "inline": inline}]),
                  work_dir=work_dir, log=recorder.log)
        print(f"\nbuild with {len(inline) - 4} connection attempts and apt-get update: "
              f"{time.monotonic() - started:.1f} s")
    finally:
        listeners.close()
    output = "\n".join(line.split("[network] ", 1)[1] for line in recorder.lines if "[network] " in line)
    assert "attempts done" in output and "apt-get update worked" in output, output
    assert "REACHED" not in output, output
    assert output.count("blocked: ") == 3 * (3 + len(addresses)) + 2, output
    assert listeners.accepted == answered_the_host, "a connection from the sandbox reached a host listener"
    assert re.search(r"^(Hit|Get):\d+ http://deb\.debian\.org/debian bookworm", output, re.M), output
    assert "sandbox limits: memory 3.5 GiB (no swap), 3072 processes and threads, 1 CPU " \
           "(vmProfile.vmSize Standard_D1_v2)" in recorder.text
    assert_no_leftovers(work_dir)


@pytest.mark.slow
def test_a_memory_hog_fails_its_build_alone(base_image, work_dir, private_tmp):
    recorder = Recorder()
    started = time.monotonic()
    with Heartbeat() as heartbeat:
        with pytest.raises(CustomizerFailed) as raised:
            run_build(BuildSpec(base_image, vm_size="Standard_B1s", customizers=[
                {"type": "Shell", "name": "hog", "inline": [
                    "echo eating memory",
                    "head -c 6G /dev/zero | tail",  # tail keeps the one endless line in memory
                    "echo never printed",
                ]}]), work_dir=work_dir, log=recorder.log)
    elapsed = time.monotonic() - started
    print(f"\nmemory hog build failed after {elapsed:.1f} s: {raised.value}")
    error = raised.value
    assert str(error).startswith("customizer 'hog' (Shell) ran out of memory: the kernel killed 1 process at the "
                                 "build's memory limit of 1 GiB (vmProfile.vmSize Standard_B1s); "
                                 "it exited with code 137"), str(error)
    assert "a larger vmProfile.vmSize" in str(error)
    assert error.exit_code == 137 and error.customizer == "hog"
    assert "[hog] eating memory" in recorder.text and "never printed" not in recorder.text
    heartbeat.assert_served(at_least=5)
    assert_no_leftovers(work_dir)


@pytest.mark.slow
def test_a_fork_bomb_fails_its_build_alone(base_image, work_dir, private_tmp):
    recorder = Recorder()
    started = time.monotonic()
    with Heartbeat() as heartbeat:
        with pytest.raises(CustomizerFailed) as raised:
            run_build(BuildSpec(base_image, vm_size="Standard_B1s", customizers=[
                {"type": "Shell", "name": "bomb", "inline": [
                    "echo forking",
                    "bomb() { bomb | bomb & }; bomb",
                    "sleep 641",
                ]}]), work_dir=work_dir, log=recorder.log)
    elapsed = time.monotonic() - started
    print(f"\nfork bomb build failed after {elapsed:.1f} s: {raised.value}")
    error = raised.value
    assert str(error).startswith("customizer 'bomb' (Shell) reached the build's limit of 2048 processes and threads "
                                 "(vmProfile.vmSize Standard_B1s): every process of it was killed"), str(error)
    assert error.exit_code is None and error.customizer == "bomb"
    assert "[bomb] forking" in recorder.text
    heartbeat.assert_served(at_least=5)
    assert_no_leftovers(work_dir, b"sleep\x00641")


@pytest.mark.slow
def test_timeout_kills_the_customizer_and_cleans_up(base_image, work_dir, private_tmp):
    recorder = Recorder()
    # the deadline counts from the build's start, so it covers copying and mounting the image too:
    # 30 s leaves room for that on a loaded machine, and the customizer sleeps far longer
    with pytest.raises(BuildTimedOut) as raised:
        run_build(BuildSpec(base_image, timeout_minutes=0.5, customizers=[
            {"type": "Shell", "name": "sleepy", "inline": [
                "echo sleeping",
                "sleep 613 &",
                "setsid sleep 614 &",
                "sleep 615",
            ]}]), work_dir=work_dir, log=recorder.log)
    assert "[sleepy] sleeping" in recorder.text  # the time ran out in the customizer, not before
    assert "timed out" in str(raised.value) and "customizer 'sleepy' (Shell)" in str(raised.value)
    assert raised.value.step == "customize"
    assert not (work_dir / "image.raw").exists()
    assert_no_leftovers(work_dir, b"sleep\x00613", b"sleep\x00614", b"sleep\x00615")


@pytest.mark.slow
def test_cancel_stops_the_build_within_seconds(base_image, work_dir, private_tmp):
    recorder = Recorder()
    recorder.wanted = "[sleepy] sleeping"
    cancel = threading.Event()
    cancelled_at: list[float] = []

    def cancel_when_sleeping():
        if recorder.seen.wait(120):
            time.sleep(0.5)
            cancelled_at.append(time.monotonic())
            cancel.set()

    canceller = threading.Thread(target=cancel_when_sleeping, daemon=True)
    canceller.start()
    with pytest.raises(BuildCancelled) as raised:
        run_build(BuildSpec(base_image, customizers=[
            {"type": "Shell", "name": "sleepy", "inline": ["echo sleeping", "sleep 623 & sleep 624"]}]),
            work_dir=work_dir, log=recorder.log, cancel=cancel)
    print(f"\nbuild stopped {time.monotonic() - cancelled_at[0]:.1f} s after the cancel")
    assert "cancelled" in str(raised.value)
    assert_no_leftovers(work_dir, b"sleep\x00623", b"sleep\x00624")


@pytest.mark.slow
def test_deprovisioning_script_replaces_the_default(base_image, work_dir):
    machine_id = "0123456789abcdef0123456789abcdef"
    # a script without a #! line runs with /bin/sh
    script = (b"echo \"plain script runs as $0\"\n"
              b"printf 'echo custom deprovisioning runs\\ntouch /etc/custom-deprov\\n' > /tmp/DeprovisioningScript.sh\n")
    sink = io.StringIO()
    result = run_build(BuildSpec(base_image, customizers=[
        {"type": "Shell", "name": "custom", "inline": [
            f"echo {machine_id} > /etc/machine-id",
            "useradd --create-home keeper",
            "echo kept > /var/log/galley-kept.log",
        ]},
        {"type": "Shell", "name": "write-deprov-script", "scriptUri": "https://scripts.example/deprov.sh",
         "sha256Checksum": _sha256(script)},
    ], fetch=_fetcher({"https://scripts.example/deprov.sh": script})), work_dir=work_dir, log=sink)
    image = result.image_path
    assert result.deprovisioning == "custom"
    assert "[write-deprov-script] plain script runs as /tmp/galley-customizer-02.sh" in sink.getvalue()
    assert "[deprovision] custom deprovisioning runs" in sink.getvalue()
    assert _exists(image, "/etc/custom-deprov")
    # the default deprovisioning did not run
    assert _cat(image, "/etc/machine-id") == machine_id + "\n"
    assert "keeper:" in _cat(image, "/etc/passwd")
    assert _cat(image, "/var/log/galley-kept.log") == "kept\n"
    assert not _exists(image, "/tmp/DeprovisioningScript.sh")
    assert_no_leftovers(work_dir)
