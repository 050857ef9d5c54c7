#!/usr/bin/env python
"""VM create (issue 12), through the unmodified SDK against an in-process Galley, each figure beside
its baseline, in one run:

1. Create-to-`PowerState/running` (what Galley itself costs: disks made from the version's chunks,
   the provisioning seed, copy-on-write files, QEMU started), beside `qemu-img create -b` of an
   overlay plus starting a bare `qemu-system-x86_64` on it (to its process running).
2. Create-to-SSH-reachable (an SSH banner on the forwarded port) and create-to-provisioned (the
   SDK's create returning), beside the same bare QEMU boot to an SSH banner. Under TCG on this
   machine the guest's boot dominates both.
3. Stored bytes: a VM from a sparse 30 GiB image holding 1 GiB of random data (goal: < 50 MiB added
   until the guest writes), the chunk store's bytes before and after, and the host-local base and
   overlay files (compute/bases, compute/disks), which are a cache shared by every VM of that content.

Run from the repository root (as root; builds the Debian test image once if it is not cached):

    python benchmarks/vm_create.py
    python benchmarks/vm_create.py --size-gib 4 --data-gib 0.25     # a quicker step 3
"""
from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("GALLEY_QEMU_ACCEL", "tcg")

from azure.mgmt.compute import models as m  # noqa: E402

from tests import admin_http as httpx  # noqa: E402
from tests.conftest import sdk_client  # noqa: E402
from tests.debian_base import debian_base_image  # noqa: E402
from tests.sdk_helpers import DISK_API, RG, make_group, quick_polls  # noqa: E402
from tests.servers import ThreadServer, free_port  # noqa: E402

GIB = 1 << 30
MIB = 1 << 20
KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl bench@galley"


def ssh_banner(port: int, deadline: float) -> float | None:
    """Seconds until an SSH server answers with its banner on 127.0.0.1:port (None: never)."""
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
                conn.settimeout(5)
                if conn.recv(64).startswith(b"SSH-"):
                    return time.monotonic()
        except OSError:
            pass
        time.sleep(0.5)
    return None


def publish(c, url: str, image: Path, definition: str, state: str) -> str:
    disk = c.disks.begin_create_or_update(RG, f"{definition}-src", m.Disk(
        location="eastus", creation_data=m.CreationData(create_option="Empty"),
        disk_size_gb=-(-image.stat().st_size // GIB), os_type="Linux")).result()
    with open(image, "rb") as body:
        response = httpx.put(f"{url}{disk.id}/upload?api-version={DISK_API}", content=body, timeout=1800)
    assert response.status_code == 200, response.text
    c.gallery_images.begin_create_or_update(RG, "gal", definition, m.GalleryImage(
        location="eastus", os_type="Linux", os_state=state,
        identifier=m.GalleryImageIdentifier(publisher="bench", offer=definition, sku="1"))).result()
    return c.gallery_image_versions.begin_create_or_update(RG, "gal", definition, "1.0.0", m.GalleryImageVersion(
        location="eastus", storage_profile=m.GalleryImageVersionStorageProfile(
            os_disk_image=m.GalleryOSDiskImage(source=m.GalleryDiskImageSource(id=disk.id))))).result().id


def galley_create(c, version: str, name: str, timeout: float) -> dict:
    body = m.VirtualMachine(location="eastus", hardware_profile=m.HardwareProfile(vm_size="Standard_B1s"),
                            storage_profile=m.StorageProfile(image_reference=m.ImageReference(id=version)),
                            os_profile=m.OSProfile(admin_username="azureuser", linux_configuration=m.LinuxConfiguration(
                                ssh=m.SshConfiguration(public_keys=[m.SshPublicKey(
                                    path="/home/azureuser/.ssh/authorized_keys", key_data=KEY)]))))
    times: dict = {}
    start = time.monotonic()
    poller = c.virtual_machines.begin_create_or_update(RG, name, body)

    def watch() -> None:
        while "running" not in times and time.monotonic() - start < timeout:
            try:
                statuses = c.virtual_machines.instance_view(RG, name).statuses or []
            except Exception:  # noqa: BLE001 - not there yet
                statuses = []
            for status in statuses:
                if status.code == "PowerState/running":
                    times["running"] = time.monotonic() - start
                if status.code == "Galley/SshEndpoint":
                    times["port"] = int(status.display_status.rsplit(":", 1)[1])
            time.sleep(0.05)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    poller.result()
    times["provisioned"] = time.monotonic() - start
    watcher.join(timeout)
    banner = ssh_banner(times["port"], start + timeout)
    times["ssh"] = banner - start if banner else None
    c.virtual_machines.begin_delete(RG, name).result()
    return times


def bare_qemu(image: Path, work: Path, timeout: float) -> dict:
    overlay = work / "bare.qcow2"
    port = free_port()
    start = time.monotonic()
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "raw", "-b", str(image), str(overlay)], check=True)
    process = subprocess.Popen(["qemu-system-x86_64", "-accel", "tcg", "-m", "1024", "-smp", "1", "-display", "none",
                                "-serial", f"file:{work / 'bare-serial.log'}", "-monitor", "none",
                                "-drive", f"file={overlay},format=qcow2,if=virtio",
                                "-netdev", f"user,id=n0,hostfwd=tcp:127.0.0.1:{port}-:22",
                                "-device", "virtio-net-pci,netdev=n0"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    running = time.monotonic() - start  # the process exists (what `qemu-img create` + exec costs)
    banner = ssh_banner(port, start + timeout)
    process.kill()
    process.wait()
    return {"running": running, "ssh": banner - start if banner else None}


def allocated(folder: Path) -> int:
    return sum(p.stat().st_blocks * 512 for p in folder.rglob("*") if p.is_file()) if folder.exists() else 0


def sparse_image(path: Path, size_gib: float, data_gib: float) -> None:
    with open(path, "wb") as out:
        out.truncate(int(size_gib * GIB))
        pieces = 4
        piece = int(data_gib * GIB) // pieces
        for i in range(pieces):
            out.seek(int(i * size_gib * GIB / pieces))
            left = piece
            while left:
                block = os.urandom(min(left, 16 * MIB))
                out.write(block)
                left -= len(block)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-gib", type=float, default=30)
    parser.add_argument("--data-gib", type=float, default=1)
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()
    load_start = os.getloadavg()[0]
    image = debian_base_image()
    with tempfile.TemporaryDirectory(prefix="galley-vm-bench-") as tmp:
        work = Path(tmp)
        print(f"Galley VM create benchmark: {os.cpu_count()} CPUs, accel {os.environ['GALLEY_QEMU_ACCEL']}, "
              f"Debian test image {image.stat().st_size / GIB:.0f} GiB; temp dir {work}")
        print(f"load average (1 min) at start {load_start:.2f}")
        with ThreadServer(work / "home") as server:
            c = quick_polls(sdk_client(server.url), longest=0.2)
            make_group(server.url)
            c.galleries.begin_create_or_update(RG, "gal", m.Gallery(location="eastus")).result()
            version = publish(c, server.url, image, "debian", "Generalized")
            galley = galley_create(c, version, "bench-vm", args.timeout)
            bare = bare_qemu(image, work, args.timeout)

            print("\n  step                                              Galley   baseline (qemu-img create -b + bare QEMU)")
            print(f"  create -> PowerState/running (Galley's own cost)  {galley['running']:6.2f} s  {bare['running']:6.2f} s"
                  " (process started)")
            ssh = f"{galley['ssh']:6.1f} s" if galley["ssh"] else "  never"
            bare_ssh = f"{bare['ssh']:6.1f} s" if bare["ssh"] else "  never"
            print(f"  create -> SSH banner on the forwarded port        {ssh}  {bare_ssh}")
            print(f"  create -> provisioned (the SDK's create returns)  {galley['provisioned']:6.1f} s")

            sparse = work / "sparse.raw"
            sparse_image(sparse, args.size_gib, args.data_gib)
            big = publish(c, server.url, sparse, "sparse", "Specialized")
            stores = work / "home" / "stores"
            compute = work / "home" / "compute"
            before = allocated(stores)
            vm = c.virtual_machines.begin_create_or_update(RG, "sparse-vm", m.VirtualMachine(
                location="eastus", hardware_profile=m.HardwareProfile(vm_size="Standard_B1ls"),
                storage_profile=m.StorageProfile(image_reference=m.ImageReference(id=big)))).result()
            after = allocated(stores)
            bases = allocated(compute / "bases")
            overlays = allocated(compute / "disks")
            c.virtual_machines.begin_power_off(RG, "sparse-vm", skip_shutdown=True).result()
            captured = allocated(stores)
            c.virtual_machines.begin_delete(RG, vm.name).result()
            print(f"\n  a VM from a {args.size_gib:g} GiB image holding {args.data_gib:g} GiB of data "
                  f"(`cp --sparse` of it would allocate {allocated_of(sparse) / MIB:,.0f} MiB):")
            print(f"    chunk store added by the create        {(after - before) / MIB:8.1f} MiB   (goal < 50 MiB)")
            print(f"    chunk store added by powerOff's capture {(captured - after) / MIB:7.1f} MiB   (nothing written)")
            print(f"    host-local base (shared by every VM of this content) {bases / MIB:,.0f} MiB; "
                  f"overlay {overlays / MIB:.1f} MiB")
    print(f"\nload average (1 min) at start {load_start:.2f}, at end {os.getloadavg()[0]:.2f}")


def allocated_of(path: Path) -> int:
    return path.stat().st_blocks * 512


if __name__ == "__main__":
    main()
