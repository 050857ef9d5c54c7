"""The compute runtime: QEMU machines (galley.compute.machines) and copy-on-write disk files
(galley.compute.disk_files). The fast tests boot nothing; the slow ones boot the test image."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from galley.compute import disk_files as disk_files_module
from galley.compute import machines as machines_module
from galley.compute.disk_files import DiskFileError, DiskFiles
from galley.compute.machines import (
    CommandTimeout,
    DiskSpec,
    GuestAgentUnavailable,
    Machines,
    MachineSpec,
    MachineStartError,
)
from galley.compute.qemu_command import qemu_argv
from galley.config import DEFAULT_REGIONS, Settings
from galley.content.engine import ContentEngine
from galley.content.locations import Locations
from galley.content.raw import RawImage
from galley.store.content_repository import ContentRepository
from galley.store.database import make_engine, migrate
from galley.store.sql_store import SqlStore

MIB = 1 << 20
VM_ID = "0b7f1c1e-1111-4222-8333-444455556666"
STORE = "eastus/1/r0"
needs_qemu = pytest.mark.skipif(shutil.which("qemu-system-x86_64") is None or shutil.which("qemu-img") is None,
                                reason="needs qemu-system-x86 and qemu-utils")


def _spec(tmp_path: Path, **changes) -> MachineSpec:
    values = dict(key=VM_ID, name="vm1", vcpus=2, memory_mib=512, firmware="bios",
                  disks=(DiskSpec(tmp_path / "os.qcow2", None),))
    values.update(changes)
    return MachineSpec(**values)


# ---- the command line ---------------------------------------------------------------------------
def test_qemu_argv_has_the_machine_s_devices_and_binds_only_loopback(tmp_path):
    folder = tmp_path / "machines" / VM_ID
    spec = _spec(tmp_path, name="web,1", firmware="uefi", seed=tmp_path / "seed.img",
                 disks=(DiskSpec(tmp_path / "os.qcow2", None), DiskSpec(tmp_path / "d3.qcow2", 3)))
    argv = qemu_argv(spec, folder, "tcg", 2222)
    joined = " ".join(argv)
    assert argv[0] == "qemu-system-x86_64"
    assert argv[argv.index("-accel") + 1] == "tcg"
    assert argv[argv.index("-smp") + 1] == "2" and argv[argv.index("-m") + 1] == "512"
    assert "guest=web,,1" in argv                                  # commas doubled
    assert "user,id=net0,hostfwd=tcp:127.0.0.1:2222-:22" in argv
    assert "-daemonize" in argv and argv[argv.index("-pidfile") + 1] == str(folder.resolve() / "qemu.pid")
    assert argv[argv.index("-display") + 1] == "none" and "-vnc" not in argv and "stdio" not in joined
    assert argv[argv.index("-uuid") + 1] == VM_ID
    assert "if=pflash,format=raw,unit=0,readonly=on,file=/usr/share/OVMF/OVMF_CODE_4M.fd" in argv
    assert f"if=pflash,format=raw,unit=1,file={folder.resolve()}/uefi-vars.fd" in argv
    assert "virtio-blk-pci,drive=disk0,bootindex=0" in argv
    assert "virtio-blk-pci,drive=disk1,serial=lun-3" in argv
    assert any(a.startswith(f"file={tmp_path}/d3.qcow2,format=qcow2,if=none,id=disk1") for a in argv)
    assert any("id=seed,readonly=on" in a and a.startswith(f"file={tmp_path}/seed.img,format=raw") for a in argv)
    assert "socket,id=qga,path=qga.sock,server=on,wait=off" in argv
    assert "virtserialport,bus=virtio-serial0.0,chardev=qga,name=org.qemu.guest_agent.0" in argv
    assert f"file,id=console,path={folder.resolve()}/serial.log,append=on" in argv


def test_machine_spec_rejects_what_qemu_could_not_run(tmp_path):
    with pytest.raises(ValueError, match="firmware"):
        _spec(tmp_path, firmware="coreboot")
    with pytest.raises(ValueError, match="OS disk"):
        _spec(tmp_path, disks=(DiskSpec(tmp_path / "d.qcow2", 0),))
    with pytest.raises(ValueError, match="LUN"):
        _spec(tmp_path, disks=(DiskSpec(tmp_path / "o", None), DiskSpec(tmp_path / "a", 1), DiskSpec(tmp_path / "b", 1)))
    with pytest.raises(ValueError, match="folder name"):
        _spec(tmp_path, key="../x")
    with pytest.raises(ValueError):
        Machines(tmp_path, accel="hvf")


# ---- recognizing live machines --------------------------------------------------------------------
def _fake_qemu(root: Path, key: str) -> subprocess.Popen:
    """A long-running process whose command line names the machine's pidfile, as QEMU's does."""
    folder = root / key
    folder.mkdir(parents=True)
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)", "-pidfile",
                                str(folder.resolve() / "qemu.pid")])
    while b"-pidfile" not in Path(f"/proc/{process.pid}/cmdline").read_bytes():
        time.sleep(0.01)  # until the exec has happened
    (folder / "qemu.pid").write_text(f"{process.pid}\n")
    (folder / "machine.json").write_text(json.dumps({"ssh_port": 40022, "started_at": 1.0, "accel": "tcg"}))
    return process


def test_a_second_machines_object_adopts_live_machines_and_ignores_reused_pids(tmp_path):
    root = tmp_path / "machines"
    process = _fake_qemu(root, VM_ID)
    try:
        stale = root / "stale"
        stale.mkdir()
        (stale / "qemu.pid").write_text(f"{os.getpid()}\n")  # a live pid that is not its QEMU
        (root / "never-started").mkdir()
        state = Machines(root).state(VM_ID)
        assert state is not None and (state.pid, state.ssh_port, state.accel) == (process.pid, 40022, "tcg")
        assert Machines(root).state("stale") is None
        assert set(Machines(root).running()) == {VM_ID}
        Machines(root).kill(VM_ID)
        assert process.wait(timeout=10) == -9
        assert Machines(root).state(VM_ID) is None and Machines(root).running() == {}
        Machines(root).kill(VM_ID)          # idempotent
        Machines(root).stop(VM_ID, grace=1)
        Machines(root).forget(VM_ID)
        assert not (root / VM_ID).exists()
    finally:
        process.kill()
        process.wait()


def test_serial_log_is_capped_and_keeps_its_tail(tmp_path, monkeypatch):
    monkeypatch.setattr(machines_module, "SERIAL_LOG_CAP", 1000)
    monkeypatch.setattr(machines_module, "SERIAL_LOG_KEEP", 300)
    folder = tmp_path / VM_ID
    folder.mkdir()
    (folder / "serial.log").write_bytes(b"x" * 5000 + b"the end\n")
    machines = Machines(tmp_path)
    assert machines.serial_log(VM_ID, max_bytes=8) == "the end\n"
    assert (folder / "serial.log").stat().st_size == 300
    assert machines.serial_log("unknown") == ""


def test_run_command_on_a_stopped_machine_is_a_clear_error(tmp_path):
    with pytest.raises(GuestAgentUnavailable, match="not running"):
        Machines(tmp_path).run_command(VM_ID, "true")
    assert Machines(tmp_path).wait_guest_agent(VM_ID, timeout=0.1) is False


@needs_qemu
def test_a_qemu_that_cannot_start_raises_its_error_and_leaves_nothing_running(tmp_path, monkeypatch):
    bad = tmp_path / "os.qcow2"
    bad.write_bytes(b"QFI\xfb" + bytes(100))   # a qcow2 magic with a broken header
    machines = Machines(tmp_path / "machines", accel="tcg")
    with pytest.raises(MachineStartError, match="os.qcow2") as raised:
        machines.start(_spec(tmp_path))
    assert "qcow2" in str(raised.value)
    assert machines.state(VM_ID) is None and machines.running() == {}
    monkeypatch.setattr(machines_module, "OVMF_CODE", tmp_path / "missing.fd")
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(bad), "64M"], check=True)
    with pytest.raises(MachineStartError, match="ovmf"):
        machines.start(_spec(tmp_path, firmware="uefi"))
    with pytest.raises(MachineStartError, match="missing"):
        machines.start(_spec(tmp_path, disks=(DiskSpec(tmp_path / "none.qcow2", None),)))


@needs_qemu
@pytest.mark.skipif(not Path("/usr/share/OVMF/OVMF_CODE_4M.fd").is_file(), reason="needs ovmf")
@pytest.mark.slow  # OVMF under TCG: seconds of CPU
def test_uefi_machine_runs_ovmf_with_its_own_variables(tmp_path):
    disk = tmp_path / "blank.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", str(disk), "64M"], check=True)
    machines = Machines(tmp_path / "machines", accel="tcg")
    spec = _spec(tmp_path, firmware="uefi", memory_mib=256, vcpus=1, disks=(DiskSpec(disk, None),))
    state = machines.start(spec)
    try:
        deadline = time.monotonic() + 90
        while "BdsDxe" not in machines.serial_log(VM_ID):      # OVMF's boot manager on the serial console
            assert time.monotonic() < deadline, machines.serial_log(VM_ID)[-2000:]
            time.sleep(0.5)
        assert (machines.root / VM_ID / "uefi-vars.fd").stat().st_size == Path("/usr/share/OVMF/OVMF_VARS_4M.fd").stat().st_size
    finally:
        machines.forget(VM_ID)
    _reaped(state.pid)


# ---- copy-on-write disk files -------------------------------------------------------------------------
@pytest.fixture
def engine(tmp_path):
    settings = Settings(home=tmp_path, database_url=f"sqlite:///{tmp_path / 'galley.db'}", regions=DEFAULT_REGIONS)
    database = make_engine(settings.database_url)
    migrate(database)
    yield ContentEngine(ContentRepository(SqlStore(database)), Locations(settings))
    database.dispose()


def _ingest(engine: ContentEngine, path: Path, attach=("disk/src", -1)) -> str:
    image = RawImage(path)
    try:
        return engine.ingest(image, STORE, attach)
    finally:
        image.close()


def _content_bytes(engine: ContentEngine, content_id: str) -> bytes:
    reader = engine.reader(content_id, [STORE])
    return reader.read(0, reader.virtual_size)


def _qemu_io(path: Path, *commands: str) -> None:
    argv = ["qemu-io", "-f", "qcow2"]
    for command in commands:
        argv += ["-c", command]
    subprocess.run([*argv, str(path)], check=True, capture_output=True)


@needs_qemu
def test_disk_files_open_capture_drop_round_trip(tmp_path, engine):
    source = tmp_path / "source.raw"
    with open(source, "wb") as f:          # 64 MiB, data in chunks 1, 2 and 40 only
        f.truncate(64 * MIB)
        f.seek(1 * MIB)
        f.write(os.urandom(2 * MIB))
        f.seek(40 * MIB + 5)
        f.write(b"the end of the data")
    content = _ingest(engine, source)
    disks = DiskFiles(tmp_path / "compute", engine)

    overlay = disks.open("disk-a", content, [STORE])
    assert overlay == tmp_path / "compute" / "disks" / "disk-a" / "overlay.qcow2"
    base = tmp_path / "compute" / "bases" / f"{content}.raw"
    assert base.read_bytes() == source.read_bytes()
    assert base.stat().st_blocks * 512 < 4 * MIB             # sparse: only the data was written
    info = json.loads(subprocess.run(["qemu-img", "info", "-f", "qcow2", "--output=json", str(overlay)],
                                     check=True, capture_output=True, text=True).stdout)
    assert info["backing-filename"] == str(base.resolve()) and info["backing-filename-format"] == "raw"
    second = disks.open("disk-b", content, [STORE])           # one base for both
    assert len(list(base.parent.glob("*.raw"))) == 1 and second != overlay

    # the guest writes into chunk 2 and chunk 50, and zeroes chunk 40
    _qemu_io(overlay, "write -P 0x61 2M 4k", "write -P 0x62 50M 64k", "write -z 40M 1M")
    expected = bytearray(source.read_bytes())
    expected[2 * MIB:2 * MIB + 4096] = b"a" * 4096
    expected[50 * MIB:50 * MIB + 65536] = b"b" * 65536
    expected[40 * MIB:41 * MIB] = bytes(MIB)
    captured = disks.capture("disk-a", STORE, ("disk/a", -1))
    assert captured != content
    assert _content_bytes(engine, captured) == bytes(expected)
    before, after = engine.repo.manifest(content), engine.repo.manifest(captured)
    assert sorted(after) == [1, 2, 50]
    assert after[1] == before[1] and after[2] != before[2]    # the untouched chunk was not read again
    assert engine.repo.disk_contents("disk/a") == {-1: captured}

    assert disks.open("disk-a", captured, [STORE]) == overlay  # the overlay represents it: kept
    _qemu_io(overlay, "read -P 0x62 50M 64k")
    again = disks.capture("disk-a", STORE, ("disk/a", -1))     # nothing changed since: same chunks
    assert engine.repo.manifest(again) == after

    usage = disks.usage()
    assert usage["bases"] == 1 and usage["overlays"] == 2 and 0 < usage["overlay_bytes"] < 4 * MIB

    disks.drop("disk-a")
    assert not overlay.exists() and base.exists()              # disk-b still uses it
    disks.drop("disk-b")
    assert not base.exists() and disks.usage()["bases"] == 0
    disks.drop("disk-b")                                       # idempotent


@needs_qemu
def test_reopening_with_other_content_replaces_the_overlay(tmp_path, engine):
    first = tmp_path / "one.raw"
    first.write_bytes(b"1" * MIB)
    other = tmp_path / "two.raw"
    other.write_bytes(b"2" * (2 * MIB))
    one, two = _ingest(engine, first, ("disk/1", -1)), _ingest(engine, other, ("disk/2", -1))
    disks = DiskFiles(tmp_path / "compute", engine)
    overlay = disks.open("d", one, [STORE])
    _qemu_io(overlay, "write -P 0x33 0 4k")
    disks.open("d", two, [STORE])
    assert not (tmp_path / "compute" / "bases" / f"{one}.raw").exists()   # nothing uses it any more
    captured = disks.capture("d", STORE, ("disk/d", -1))
    assert _content_bytes(engine, captured) == b"2" * (2 * MIB)


@needs_qemu
def test_capture_without_an_overlay_is_refused(tmp_path, engine):
    with pytest.raises(DiskFileError, match="no overlay"):
        DiskFiles(tmp_path, engine).capture("nothing", STORE, ("disk/x", -1))


# ---- booting the test image (slow) ----------------------------------------------------------------------
def _booted(machines: Machines, key: str, timeout: float = 240, after: int = 0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = machines.serial_log(key)
        if re.search(r"login: *$", log[after:], re.MULTILINE):
            return log
        assert machines.state(key) is not None, f"QEMU exited:\n{log[-2000:]}"
        time.sleep(1)
    raise AssertionError(f"no login prompt within {timeout} s:\n{machines.serial_log(key)[-2000:]}")


def _reaped(pid: int) -> None:
    """The process is gone (its zombie reaped by init, which takes a moment)."""
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists():
        assert time.monotonic() < deadline, f"process {pid} is still there"
        time.sleep(0.1)


@pytest.fixture
def os_overlay(tmp_path):
    from .debian_base import debian_base_image
    base = debian_base_image()
    overlay = tmp_path / "os.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(base), str(overlay)],
                   check=True)
    return overlay


@pytest.fixture
def machines(tmp_path):
    machines = Machines(tmp_path / "compute" / "machines")
    yield machines
    for key in list(machines.running()):
        machines.forget(key)


@pytest.mark.slow
def test_machine_lifecycle_boot_stop_start_kill_adopt(tmp_path, os_overlay, machines):
    spec = _spec(tmp_path, disks=(DiskSpec(os_overlay, None),), memory_mib=768)
    state = machines.start(spec)
    assert machines.start(spec) == state                    # idempotent
    assert Path(f"/proc/{state.pid}").exists() and 1024 <= state.ssh_port < 65536
    folder = machines.root / VM_ID
    assert (folder / "qmp.sock").stat().st_mode & 0o777 == 0o600
    assert os.getsid(state.pid) != os.getsid(0)              # its own session: outlives Galley
    _booted(machines, VM_ID)
    assert Machines(machines.root).running() == {VM_ID: state}   # a restarted Galley adopts it

    with pytest.raises(DiskFileError, match="in use"):       # a running disk cannot be captured
        disk_files_module._qemu_img(["map", "-f", "qcow2", "--output=json", str(os_overlay)])

    machines.stop(VM_ID, grace=90)
    assert machines.state(VM_ID) is None
    _reaped(state.pid)
    first_boot = machines.serial_log(VM_ID)
    assert "Power-Off" in first_boot or "reboot: Power down" in first_boot   # the guest powered off by itself

    again = machines.start(spec)
    assert again.pid != state.pid
    _booted(machines, VM_ID, after=len(first_boot))
    assert machines.serial_log(VM_ID).startswith(first_boot[:200])   # the log is kept across restarts
    machines.kill(VM_ID)
    assert machines.state(VM_ID) is None
    _reaped(again.pid)
    machines.forget(VM_ID)
    assert not folder.exists()


def _image_has_guest_agent() -> bool:
    from galley.builder import debian
    return "qemu-guest-agent" in Path(debian.__file__).read_text()


@pytest.mark.slow
@pytest.mark.skipif(not _image_has_guest_agent(), reason="the test image has no qemu-guest-agent yet")
def test_run_command_through_the_guest_agent(tmp_path, os_overlay, machines):
    spec = _spec(tmp_path, disks=(DiskSpec(os_overlay, None),), memory_mib=768)
    machines.start(spec)
    assert machines.wait_guest_agent(VM_ID, timeout=300), machines.serial_log(VM_ID)[-2000:]
    result = machines.run_command(VM_ID, "echo out $(id -u)\necho err >&2\ncat /sys/class/dmi/id/product_uuid\nexit 3\n")
    assert result.exit_code == 3
    assert result.stdout.splitlines() == ["out 0", VM_ID]
    assert result.stderr == "err\n"
    with pytest.raises(CommandTimeout):
        machines.run_command(VM_ID, "sleep 30", timeout=2)
    assert machines.run_command(VM_ID, "echo still here").stdout == "still here\n"
    boot_id = machines.run_command(VM_ID, "cat /proc/sys/kernel/random/boot_id").stdout
    machines.reboot(VM_ID)
    assert machines.wait_guest_agent(VM_ID, timeout=300), machines.serial_log(VM_ID)[-2000:]
    assert machines.run_command(VM_ID, "cat /proc/sys/kernel/random/boot_id").stdout != boot_id
    machines.kill(VM_ID)
    with pytest.raises(GuestAgentUnavailable):
        machines.run_command(VM_ID, "true")
