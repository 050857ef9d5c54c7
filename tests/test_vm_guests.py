"""The seeds' loop with real guests: publish → deploy → change → capture → publish → deploy.

A real Debian image (tests/debian_base.py, built with Galley's provisioning agent, SSH and QEMU's
guest agent) is published as a gallery version; VMs are deployed from it under QEMU (TCG), reached
through run-command (the guest agent) and SSH (the forwarded loopback port), captured back as
generalized and specialized versions, and deployed again. Each boot takes tens of seconds: slow.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from azure.mgmt.compute import models as m

from . import admin_http as httpx
from .conftest import sdk_client
from .debian_base import debian_base_image
from .sdk_helpers import DISK_API, RG, make_group, quick_polls
from .servers import ProcessServer, ThreadServer, kill_machines_under, machines_under

pytestmark = pytest.mark.slow
GIB = 1024 ** 3


@pytest.fixture(scope="module")
def guests(tmp_path_factory):
    """A server with the Debian image published as version 1.0.0 of a generalized definition (gen)
    and a specialized definition (spec) to capture into, and an SSH key pair."""
    os.environ.setdefault("GALLEY_QEMU_ACCEL", "tcg")
    image = debian_base_image()
    home = tmp_path_factory.mktemp("guests")
    key = home / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)], check=True)
    with ThreadServer(home) as server:
        c = quick_polls(sdk_client(server.url), longest=1.0)
        make_group(server.url)
        disk = c.disks.begin_create_or_update(RG, "debian", m.Disk(
            location="eastus", creation_data=m.CreationData(create_option="Empty"),
            disk_size_gb=image.stat().st_size // GIB, os_type="Linux")).result()
        with open(image, "rb") as body:
            response = httpx.put(f"{server.url}{disk.id}/upload?api-version={DISK_API}", content=body, timeout=600)
        assert response.status_code == 200, response.text
        c.galleries.begin_create_or_update(RG, "gal", m.Gallery(location="eastus")).result()
        for name, state in (("gen", "Generalized"), ("spec", "Specialized")):
            c.gallery_images.begin_create_or_update(RG, "gal", name, m.GalleryImage(
                location="eastus", os_type="Linux", os_state=state,
                identifier=m.GalleryImageIdentifier(publisher="galley", offer=name, sku="12"))).result()
        c.gallery_image_versions.begin_create_or_update(RG, "gal", "gen", "1.0.0", m.GalleryImageVersion(
            location="eastus", storage_profile=m.GalleryImageVersionStorageProfile(
                os_disk_image=m.GalleryOSDiskImage(source=m.GalleryDiskImageSource(id=disk.id))))).result()
        yield server, c, key
        machines = server.app.state.compute.machines
        leftover = list(machines.running())
        for machine in leftover:
            machines.forget(machine)
        assert not leftover, f"VMs left running: {leftover}"


def version_id(c, definition: str, version: str) -> str:
    return c.gallery_image_versions.get(RG, "gal", definition, version).id


def deploy(c, name: str, image_id: str, *, user: str | None = None, key: Path | None = None,
           computer: str | None = None, custom_data: str | None = None, data_disks=None) -> m.VirtualMachine:
    os_profile = None
    if user:
        os_profile = m.OSProfile(admin_username=user, computer_name=computer, custom_data=custom_data,
                                 linux_configuration=m.LinuxConfiguration(ssh=m.SshConfiguration(public_keys=[
                                     m.SshPublicKey(path=f"/home/{user}/.ssh/authorized_keys",
                                                    key_data=key.with_suffix(".pub").read_text().strip())])))
    return c.virtual_machines.begin_create_or_update(RG, name, m.VirtualMachine(
        location="eastus", hardware_profile=m.HardwareProfile(vm_size="Standard_B1s"),
        storage_profile=m.StorageProfile(image_reference=m.ImageReference(id=image_id), data_disks=data_disks),
        os_profile=os_profile)).result()


def run(c, vm: str, script: str) -> str:
    """Run a script through run-command; returns its stdout (the test fails on a non-zero exit)."""
    result = c.virtual_machines.begin_run_command(RG, vm, m.RunCommandInput(
        command_id="RunShellScript", script=script.splitlines())).result()
    status = result.value[0]
    assert status.code == "ProvisioningState/succeeded", status.message
    stdout = status.message.split("[stdout]\n", 1)[1].split("\n[stderr]\n", 1)[0]
    exit_code = (status.as_dict() if hasattr(status, "as_dict") else dict(status)).get("exitCode")
    assert exit_code == 0, status.message
    return stdout


def ssh_endpoint(c, vm: str) -> tuple[str, int]:
    statuses = c.virtual_machines.instance_view(RG, vm).statuses
    found = next(s.display_status for s in statuses if s.code == "Galley/SshEndpoint")
    host, port = found.rsplit(":", 1)
    return host, int(port)


def ssh(c, vm: str, user: str, key: Path, command: str, timeout: float = 180) -> str:
    host, port = ssh_endpoint(c, vm)
    deadline = time.monotonic() + timeout
    while True:
        done = subprocess.run(["ssh", "-i", str(key), "-p", str(port), "-o", "StrictHostKeyChecking=no",
                               "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "ConnectTimeout=10",
                               f"{user}@{host}", command], capture_output=True, text=True)
        if done.returncode == 0:
            return done.stdout
        if time.monotonic() > deadline:
            raise AssertionError(f"ssh to {vm} failed: {done.stderr}")
        time.sleep(3)


IDENTITY = "hostname; cat /etc/machine-id; cut -d' ' -f2 /etc/ssh/ssh_host_ed25519_key.pub"


@pytest.mark.skipif(shutil.which("ssh") is None, reason="needs the ssh client (openssh-client)")
def test_generalized_round_trip_gives_the_new_vm_its_own_identity(guests):
    server, c, key = guests
    custom = "IyEvYmluL3NoCmVjaG8gY3VzdG9tLXJhbiA+IC92YXIvdG1wL2N1c3RvbS1tYXJrZXIK"  # echo custom-ran > /var/tmp/custom-marker
    a = deploy(c, "vm-a", version_id(c, "gen", "1.0.0"), user="alice", key=key, computer="alpha", custom_data=custom)
    b = None
    try:
        first = run(c, "vm-a", IDENTITY + "\nid -u alice\ncat /var/tmp/custom-marker\necho kept > /root/marker\n"
                                          "echo 'ls /secret' > /home/alice/.bash_history").split()
        assert first[0] == "alpha" and len(first[1]) == 32 and first[4] == "custom-ran"
        assert ssh(c, "vm-a", "alice", key, "hostname; sudo -n id -u").split() == ["alpha", "0"]

        run(c, "vm-a", "galley-deprovision +user")  # the guest's half of generalizing, as waagent's
        c.virtual_machines.begin_deallocate(RG, "vm-a").result()
        c.virtual_machines.generalize(RG, "vm-a")
        captured = c.gallery_image_versions.begin_create_or_update(RG, "gal", "gen", "2.0.0", m.GalleryImageVersion(
            location="eastus", storage_profile=m.GalleryImageVersionStorageProfile(
                source=m.GalleryArtifactVersionFullSource(virtual_machine_id=a.id)))).result()
        assert captured.provisioning_state == "Succeeded"

        b = deploy(c, "vm-b", captured.id, user="bob", key=key, computer="bravo")
        second = run(c, "vm-b", IDENTITY + "\ncat /root/marker\nid -u alice >/dev/null 2>&1 || echo no-alice\n"
                                           "test -e /home/alice || echo no-home").split()
        assert second[0] == "bravo"
        assert second[1] != first[1] and len(second[1]) == 32  # a fresh machine-id
        assert second[2] != first[2]  # fresh SSH host keys
        assert second[3:] == ["kept", "no-alice", "no-home"]  # the change survived; A's user did not
        assert ssh(c, "vm-b", "bob", key, "hostname").strip() == "bravo"
        log = c.virtual_machines.retrieve_boot_diagnostics_data(RG, "vm-b").serial_console_log_blob_uri
        assert "galley-provision" in httpx.get(log).text  # the signed URL needs no token
    finally:
        c.virtual_machines.begin_delete(RG, "vm-a").result()
        if b is not None:
            c.virtual_machines.begin_delete(RG, "vm-b").result()
    assert not server.app.state.compute.machines.running()


def test_specialized_capture_keeps_the_machine_and_its_data_disk(guests):
    server, c, key = guests
    c_vm = deploy(c, "vm-c", version_id(c, "gen", "1.0.0"), user="carol", key=key, computer="charlie",
                  data_disks=[m.DataDisk(lun=1, create_option="Empty", disk_size_gb=1, delete_option="Delete")])
    d_vm = None
    try:
        before = run(c, "vm-c", IDENTITY + "\n"
                     "mkfs.ext4 -q -L data /dev/disk/by-id/virtio-lun-1 && mkdir -p /mnt/data && "
                     "mount /dev/disk/by-id/virtio-lun-1 /mnt/data && echo on-the-data-disk > /mnt/data/file && "
                     "umount /mnt/data && echo formatted").split()
        assert before[-1] == "formatted"
        c.virtual_machines.begin_deallocate(RG, "vm-c").result()
        captured = c.gallery_image_versions.begin_create_or_update(RG, "gal", "spec", "1.0.0", m.GalleryImageVersion(
            location="eastus", storage_profile=m.GalleryImageVersionStorageProfile(
                source=m.GalleryArtifactVersionFullSource(virtual_machine_id=c_vm.id)))).result()
        assert [d.lun for d in captured.storage_profile.data_disk_images] == [1]

        d_vm = deploy(c, "vm-d", captured.id)  # specialized: no osProfile; the data disk comes at LUN 1
        assert [d.lun for d in d_vm.storage_profile.data_disks] == [1]
        after = run(c, "vm-d", IDENTITY + "\nmkdir -p /mnt/data && mount /dev/disk/by-id/virtio-lun-1 /mnt/data && "
                    "cat /mnt/data/file").split()
        assert after[:3] == before[:3]  # same host name, machine-id and host key: the machine as it was
        assert after[3] == "on-the-data-disk"
    finally:
        c.virtual_machines.begin_delete(RG, "vm-c").result()
        if d_vm is not None:
            c.virtual_machines.begin_delete(RG, "vm-d").result()


def test_vms_survive_a_killed_server_and_a_restart_and_delete_leaves_nothing(tmp_path):
    """kill -9 of `galley serve` with two VMs: their QEMU processes run on and are adopted; a clean
    shutdown stops them and the next start boots the one whose power state is running."""
    env = {"GALLEY_QEMU_ACCEL": "tcg", "GALLEY_VM_STOP_GRACE": "2"}
    server = ProcessServer(tmp_path, extra_env=env).start()
    try:
        c = quick_polls(sdk_client(server.url))
        make_group(server.url)
        disk = c.disks.begin_create_or_update(RG, "src", m.Disk(location="eastus", creation_data=m.CreationData(
            create_option="Empty"), disk_size_gb=1, os_type="Linux")).result()
        c.images.begin_create_or_update(RG, "img", m.Image(location="eastus", storage_profile=m.ImageStorageProfile(
            os_disk=m.ImageOSDisk(os_type="Linux", os_state="Specialized", managed_disk=m.SubResource(id=disk.id))))).result()
        image = c.images.get(RG, "img").id
        for name in ("one", "two"):
            c.virtual_machines.begin_create_or_update(RG, name, m.VirtualMachine(
                location="eastus", hardware_profile=m.HardwareProfile(vm_size="Standard_B1ls"),
                storage_profile=m.StorageProfile(image_reference=m.ImageReference(id=image), os_disk=m.OSDisk(
                    create_option="FromImage", delete_option="Delete")))).result()
        c.virtual_machines.begin_power_off(RG, "two", skip_shutdown=True).result()
        running = machines_under(tmp_path)
        assert len(running) == 1

        server.kill()
        assert machines_under(tmp_path) == running  # the machine did not die with the server
        server.start()
        c = quick_polls(sdk_client(server.url))
        states = {name: next(s.code for s in c.virtual_machines.instance_view(RG, name).statuses
                             if s.code.startswith("PowerState/")) for name in ("one", "two")}
        assert states == {"one": "PowerState/running", "two": "PowerState/stopped"}
        assert machines_under(tmp_path) == running  # adopted, not started twice

        server.process.terminate()  # a clean shutdown stops the machines...
        server.process.wait(timeout=60)
        assert not machines_under(tmp_path)
        server.start()  # ...and the next start boots the one that should run
        c = quick_polls(sdk_client(server.url))
        deadline = time.monotonic() + 30
        while len(machines_under(tmp_path)) != 1 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert len(machines_under(tmp_path)) == 1
        for name in ("one", "two"):
            c.virtual_machines.begin_delete(RG, name).result()
        assert not machines_under(tmp_path)
        assert {d.name for d in c.disks.list_by_resource_group(RG)} == {"src"}  # deleteOption Delete
        assert not list((tmp_path / "compute" / "machines").glob("*/qemu.pid"))
    finally:
        server.stop()
        kill_machines_under(tmp_path)
