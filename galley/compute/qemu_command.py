"""The qemu-system-x86_64 command line of a virtual machine.

QEMU runs with the machine's folder as its working directory; its sockets are named relative
to it (see unix_socket.py) and every other file by absolute path, so /proc/<pid>/cmdline names
the folder (that is how a live QEMU is recognized as this machine's, see machines.py).
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

QEMU = "qemu-system-x86_64"
OVMF_CODE = Path("/usr/share/OVMF/OVMF_CODE_4M.fd")
OVMF_VARS = Path("/usr/share/OVMF/OVMF_VARS_4M.fd")
FIRMWARES = ("bios", "uefi")

PIDFILE = "qemu.pid"
QMP_SOCKET = "qmp.sock"
QGA_SOCKET = "qga.sock"
SERIAL_LOG = "serial.log"
UEFI_VARS = "uefi-vars.fd"
GUEST_AGENT_PORT = "org.qemu.guest_agent.0"


@dataclass(frozen=True)
class DiskSpec:
    path: Path          # the disk file QEMU opens (a qcow2 overlay from disk_files.py)
    lun: int | None     # None: the OS disk; data disks: their LUN (guest: /dev/disk/by-id/virtio-lun-<n>)
    fmt: str = "qcow2"


@dataclass(frozen=True)
class MachineSpec:
    key: str            # the machine's folder name: the VM's vmId
    name: str           # shown in `ps` and as QEMU's -name
    vcpus: int
    memory_mib: int
    firmware: str       # "bios" (hyperVGeneration V1) | "uefi" (V2, OVMF)
    disks: tuple[DiskSpec, ...]   # the OS disk first
    seed: Path | None = None      # NoCloud seed image (raw vfat), attached read-only

    def __post_init__(self) -> None:
        if not self.key or "/" in self.key or self.key in (".", ".."):
            raise ValueError(f"machine key {self.key!r} must be a plain folder name")
        if self.firmware not in FIRMWARES:
            raise ValueError(f"firmware {self.firmware!r}: one of {', '.join(FIRMWARES)}")
        if self.vcpus < 1 or self.memory_mib < 64:
            raise ValueError("a machine needs at least 1 vCPU and 64 MiB of memory")
        if not self.disks or self.disks[0].lun is not None:
            raise ValueError("the OS disk (lun None) comes first")
        luns = [disk.lun for disk in self.disks[1:]]
        if None in luns or len(set(luns)) != len(luns):
            raise ValueError("data disks need distinct LUNs")


def qemu_argv(spec: MachineSpec, folder: Path, accel: str, ssh_port: int) -> list[str]:
    folder = folder.resolve()
    argv = [
        QEMU, "-name", f"guest={_escape(spec.name)}",
        "-accel", accel, "-smp", str(spec.vcpus), "-m", str(spec.memory_mib),
        "-display", "none", "-monitor", "none", "-parallel", "none",
        "-chardev", f"file,id=console,path={_escape(str(folder / SERIAL_LOG))},append=on",
        "-serial", "chardev:console",
        "-chardev", f"socket,id=qmp,path={QMP_SOCKET},server=on,wait=off",
        "-mon", "chardev=qmp,mode=control",
        "-device", "virtio-serial-pci,id=virtio-serial0",
        "-chardev", f"socket,id=qga,path={QGA_SOCKET},server=on,wait=off",
        "-device", f"virtserialport,bus=virtio-serial0.0,chardev=qga,name={GUEST_AGENT_PORT}",
        "-netdev", f"user,id=net0,hostfwd=tcp:127.0.0.1:{ssh_port}-:22",
        "-device", "virtio-net-pci,netdev=net0",
        "-pidfile", str(folder / PIDFILE), "-daemonize",
    ]
    if _is_uuid(spec.key):
        argv += ["-uuid", spec.key]  # the guest's SMBIOS system UUID is its vmId, as on Azure
    if spec.firmware == "uefi":
        argv += ["-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={_escape(str(OVMF_CODE))}",
                 "-drive", f"if=pflash,format=raw,unit=1,file={_escape(str(folder / UEFI_VARS))}"]
    for index, disk in enumerate(spec.disks):
        drive = f"disk{index}"
        options = "cache=writeback,discard=unmap,detect-zeroes=unmap"
        argv += ["-drive", f"file={_escape(str(Path(disk.path).resolve()))},format={disk.fmt},if=none,id={drive},{options}"]
        device = f"virtio-blk-pci,drive={drive}"
        if disk.lun is None:
            device += ",bootindex=0"
        else:
            device += f",serial=lun-{disk.lun}"
        argv += ["-device", device]
    if spec.seed is not None:
        argv += ["-drive", f"file={_escape(str(Path(spec.seed).resolve()))},format=raw,if=none,id=seed,readonly=on",
                 "-device", "virtio-blk-pci,drive=seed,serial=cidata"]
    return argv


def _escape(value: str) -> str:
    # QEMU's option syntax doubles commas inside values.
    return value.replace(",", ",,")


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True
