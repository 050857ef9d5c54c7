"""Virtual machines through the real SDK and raw ARM: create from images, the seed's rules, power
operations, disks that are real managed disks, capture into images and versions, delete.

The image here is a small raw disk with no boot loader: QEMU really runs for each VM (its firmware
finds nothing to boot), which is all these tests need; what a booted guest does is in
test_vm_guests.py. Power-offs use skipShutdown, since such a guest cannot answer ACPI.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from azure.mgmt.compute import models as m

from . import admin_http as httpx
from .conftest import sdk_client
from .sdk_helpers import (COMPUTE_API, DISK_API, GALLERY_API, RG, assert_arm_error, compute_url, make_group,
                          quick_polls, resource_id, sdk_rejects)
from .servers import ThreadServer

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl test@galley"
MIB = 1024 * 1024


@pytest.fixture(scope="module")
def vm_server(tmp_path_factory):
    home = tmp_path_factory.mktemp("vms")
    os.environ.setdefault("GALLEY_QEMU_ACCEL", "tcg")
    # These guests boot nothing: a create waits for no provisioning, powerOff and deallocate kill
    # them after 2 s (they cannot answer ACPI).
    with ThreadServer(home, vm_stop_grace=2.0, vm_provisioning_timeout=0) as server:
        yield server
        machines = server.app.state.compute.machines
        leftover = machines.running()
        for key in leftover:
            machines.forget(key)
        assert not leftover, f"VMs left running by the tests: {leftover}"


@pytest.fixture(scope="module")
def chain(vm_server):
    """A gallery with a generalized and a specialized definition, each with version 1.0.0 of a 64 MiB
    disk (in eastus only), and the SDK client."""
    url = vm_server.url
    c = quick_polls(sdk_client(url))
    make_group(url)
    disk = c.disks.begin_create_or_update(RG, "src", m.Disk(
        location="eastus", creation_data=m.CreationData(create_option="Empty"), disk_size_gb=1,
        os_type="Linux")).result()
    data = bytearray(64 * MIB)
    data[MIB:MIB + 4096] = os.urandom(4096)
    assert httpx.put(f"{url}{disk.id}/upload?api-version={DISK_API}", content=bytes(data)).status_code == 200
    c.galleries.begin_create_or_update(RG, "gal", m.Gallery(location="eastus")).result()
    versions = {}
    for name, state in (("gen", "Generalized"), ("spec", "Specialized")):
        c.gallery_images.begin_create_or_update(RG, "gal", name, m.GalleryImage(
            location="eastus", os_type="Linux", os_state=state,
            identifier=m.GalleryImageIdentifier(publisher="p", offer=name, sku="s"),
            recommended=m.RecommendedMachineConfiguration(v_cp_us=m.ResourceRange(min=1, max=2)),
            disallowed=m.Disallowed(disk_types=["Premium_LRS"]))).result()
        versions[name] = c.gallery_image_versions.begin_create_or_update(RG, "gal", name, "1.0.0", m.GalleryImageVersion(
            location="eastus", storage_profile=m.GalleryImageVersionStorageProfile(
                os_disk_image=m.GalleryOSDiskImage(source=m.GalleryDiskImageSource(id=disk.id))))).result()
    return c, versions


def vm_body(image_id: str | None, *, size: str = "Standard_B1ls", os_profile: bool = True, location: str = "eastus",
            **extra) -> dict:
    body = {"location": location, "properties": {
        "hardwareProfile": {"vmSize": size},
        "storageProfile": {"imageReference": {"id": image_id}} if image_id else {},
    }}
    if os_profile:
        body["properties"]["osProfile"] = {"adminUsername": "azureuser", "linuxConfiguration": {
            "ssh": {"publicKeys": [{"path": "/home/azureuser/.ssh/authorized_keys", "keyData": KEY}]}}}
    for key, value in extra.items():
        body["properties"][key] = value
    return body


def put_vm(url: str, name: str, body: dict):
    return httpx.put(f"{compute_url(url, 'virtualMachines/' + name)}?api-version={COMPUTE_API}", json=body)


def create_vm(c, url: str, name: str, body: dict):
    """PUT the VM (raw ARM) and wait for its create to end, as the SDK's poller would."""
    response = put_vm(url, name, body)
    assert response.status_code in (200, 201), response.text
    deadline = time.monotonic() + 60
    vm = c.virtual_machines.get(RG, name)
    while vm.provisioning_state == "Creating" and time.monotonic() < deadline:
        time.sleep(0.1)
        vm = c.virtual_machines.get(RG, name)
    assert vm.provisioning_state == "Succeeded", vm
    return vm


def machine_running(server, vm) -> bool:
    return server.app.state.compute.machines.state(vm.vm_id) is not None


def power_state(c, name: str) -> str:
    statuses = c.virtual_machines.instance_view(RG, name).statuses
    return next(s.code for s in statuses if s.code.startswith("PowerState/"))


def delete_vm(c, name: str) -> None:
    c.virtual_machines.begin_delete(RG, name).result()


@pytest.mark.slow  # QEMU machines started and stopped: seconds of CPU
def test_vm_from_latest_version_runs_on_a_real_managed_disk_and_goes_through_its_power_states(vm_server, chain):
    c, versions = chain
    definition = versions["gen"].id.rsplit("/versions/", 1)[0]
    vm = c.virtual_machines.begin_create_or_update(RG, "vm-life", m.VirtualMachine(
        location="eastus", hardware_profile=m.HardwareProfile(vm_size="Standard_B1ls"),
        storage_profile=m.StorageProfile(image_reference=m.ImageReference(id=definition + "/versions/latest")),
        os_profile=m.OSProfile(admin_username="azureuser", linux_configuration=m.LinuxConfiguration(
            ssh=m.SshConfiguration(public_keys=[m.SshPublicKey(
                path="/home/azureuser/.ssh/authorized_keys", key_data=KEY)]))))).result()
    try:
        assert vm.provisioning_state == "Succeeded"
        assert vm.storage_profile.image_reference.exact_version == "1.0.0"
        assert vm.os_profile.admin_password is None and vm.os_profile.custom_data is None
        disk = c.disks.get(RG, vm.storage_profile.os_disk.name)
        assert disk.managed_by == vm.id and disk.disk_state == "Attached"
        assert disk.disk_size_gb == 1  # the image's size in GB, as Azure makes it
        assert machine_running(vm_server, vm)
        assert power_state(c, "vm-life") == "PowerState/running"
        view = c.virtual_machines.get(RG, "vm-life", expand="instanceView").instance_view
        assert any(s.code == "Galley/SshEndpoint" and s.display_status.startswith("127.0.0.1:") for s in view.statuses)
        # A disk that belongs to a VM cannot be deleted or uploaded to.
        assert_arm_error(httpx.delete(f"{vm_server.url}{disk.id}?api-version={DISK_API}"), 409, "OperationNotAllowed")

        c.virtual_machines.begin_power_off(RG, "vm-life", skip_shutdown=True).result()
        assert power_state(c, "vm-life") == "PowerState/stopped"
        assert not machine_running(vm_server, vm)
        sdk_rejects(lambda: c.virtual_machines.begin_power_off(RG, "vm-life").result(), 409, "OperationNotAllowed")
        c.virtual_machines.begin_start(RG, "vm-life").result()
        assert power_state(c, "vm-life") == "PowerState/running" and machine_running(vm_server, vm)
        c.virtual_machines.begin_deallocate(RG, "vm-life").result()
        assert power_state(c, "vm-life") == "PowerState/deallocated" and not machine_running(vm_server, vm)
    finally:
        delete_vm(c, "vm-life")
    assert not machine_running(vm_server, vm)
    after = c.disks.get(RG, vm.storage_profile.os_disk.name)  # deleteOption Detach (Azure's default)
    assert after.managed_by is None and after.disk_state == "Unattached"
    c.disks.begin_delete(RG, after.name).result()


def test_delete_option_delete_takes_the_disks_with_the_vm_and_empty_data_disks_are_real(vm_server, chain):
    c, versions = chain
    body = vm_body(versions["gen"].id, storageProfile={
        "imageReference": {"id": versions["gen"].id},
        "osDisk": {"createOption": "FromImage", "deleteOption": "Delete", "name": "del-os"},
        "dataDisks": [{"lun": 2, "createOption": "Empty", "diskSizeGB": 4, "deleteOption": "Delete", "name": "del-data"}]})
    vm = create_vm(c, vm_server.url, "vm-del", body)
    data = c.disks.get(RG, "del-data")
    assert data.disk_size_gb == 4 and data.managed_by == vm.id
    assert [(d.lun, d.name) for d in vm.storage_profile.data_disks] == [(2, "del-data")]
    delete_vm(c, "vm-del")
    names = {d.name for d in c.disks.list_by_resource_group(RG)}
    assert "del-os" not in names and "del-data" not in names


@pytest.mark.parametrize("change, status, code, mentions", [
    (lambda b, v: b["properties"]["hardwareProfile"].update(vmSize="Standard_Huge"), 400, "InvalidParameter", "vmSize"),
    (lambda b, v: b["properties"].pop("osProfile"), 400, "InvalidParameter", "osProfile"),
    (lambda b, v: b["properties"]["osProfile"].update(adminUsername="root"), 400, "InvalidParameter", "reserved"),
    # the guest's provisioning agent refuses these too: they must not be accepted and fail at boot
    (lambda b, v: b["properties"]["osProfile"].update(adminUsername="sync"), 400, "InvalidParameter", "reserved"),
    (lambda b, v: b["properties"]["osProfile"].update(adminUsername="_svc"), 400, "InvalidParameter",
     "starting with a letter"),
    (lambda b, v: b["properties"]["osProfile"]["linuxConfiguration"]["ssh"]["publicKeys"][0].update(keyData="nope"),
     400, "InvalidParameter", "OpenSSH"),
    (lambda b, v: b["properties"]["osProfile"].update(customData="not base64!"), 400, "InvalidParameter", "base64"),
    (lambda b, v: b["properties"]["osProfile"].update(adminPassword="Two\nLines1!"), 400, "InvalidParameter",
     "Control characters"),
    (lambda b, v: b["properties"]["hardwareProfile"].update(vmSize="Standard_D4s_v3"), 400, "VMSizeNotRecommended",
     "recommended"),
    (lambda b, v: b["properties"]["storageProfile"].update(osDisk={"managedDisk": {"storageAccountType": "Premium_LRS"}}),
     400, "DiskTypeNotAllowed", "Premium_LRS"),
    (lambda b, v: b.update(location="westus2"), 409, "ImageVersionNotInRegion", "westus2"),
    (lambda b, v: b["properties"]["storageProfile"].update(imageReference={"publisher": "Nobody", "offer": "o",
                                                                            "sku": "s", "version": "latest"}),
     404, "PlatformImageNotFound", "Nobody"),
])
def test_bad_vm_requests_are_refused_and_leave_nothing(vm_server, chain, change, status, code, mentions):
    c, versions = chain
    body = vm_body(versions["gen"].id)
    change(body, versions)
    disks_before = {d.name for d in c.disks.list_by_resource_group(RG)}
    assert_arm_error(put_vm(vm_server.url, "vm-bad", body), status, code, mentions=mentions)
    assert "vm-bad" not in {vm.name for vm in c.virtual_machines.list(RG)}
    assert {d.name for d in c.disks.list_by_resource_group(RG)} == disks_before


def test_specialized_images_refuse_an_os_profile_and_boot_as_captured(vm_server, chain):
    c, versions = chain
    assert_arm_error(put_vm(vm_server.url, "vm-spec", vm_body(versions["spec"].id)), 400, "InvalidParameter",
                     mentions="specialized")
    vm = create_vm(c, vm_server.url, "vm-spec", vm_body(versions["spec"].id, os_profile=False))
    try:
        assert vm.os_profile is None
    finally:
        delete_vm(c, "vm-spec")


@pytest.mark.slow  # QEMU machines started and stopped: seconds of CPU
def test_quota_and_host_memory_are_enforced(tmp_path, chain):
    from galley.config import Limits
    with ThreadServer(tmp_path, limits=Limits(regional_vcpus=1), vm_memory_mib=1024, vm_stop_grace=2.0,
                      vm_provisioning_timeout=0) as server:
        c = quick_polls(sdk_client(server.url))
        make_group(server.url)
        disk = c.disks.begin_create_or_update(RG, "src", m.Disk(location="eastus", creation_data=m.CreationData(
            create_option="Empty"), disk_size_gb=1, os_type="Linux")).result()
        c.images.begin_create_or_update(RG, "img", m.Image(location="eastus", storage_profile=m.ImageStorageProfile(
            os_disk=m.ImageOSDisk(os_type="Linux", os_state="Generalized",
                                  managed_disk=m.SubResource(id=disk.id))))).result()
        image_id = resource_id("images/img")
        assert_arm_error(put_vm(server.url, "big", vm_body(image_id, size="Standard_B2s")), 409, "OperationNotAllowed",
                         mentions="quota")
        assert_arm_error(put_vm(server.url, "fat", vm_body(image_id, size="Standard_B1ms")), 409, "AllocationFailed",
                         mentions="memory")
        create_vm(c, server.url, "ok", vm_body(image_id))
        usage = {u.name.value: (u.current_value, u.limit) for u in c.usage.list("eastus")}
        assert usage["cores"] == (1, 1)
        assert_arm_error(put_vm(server.url, "second", vm_body(image_id)), 409, "OperationNotAllowed", mentions="quota")
        c.virtual_machines.begin_deallocate(RG, "ok").result()  # deallocated VMs do not count
        assert {u.name.value: u.current_value for u in c.usage.list("eastus")}["cores"] == 0
        c.virtual_machines.begin_delete(RG, "ok").result()
        assert not server.app.state.compute.machines.running()


@pytest.mark.slow  # QEMU machines started and stopped: seconds of CPU
def test_capture_needs_a_stopped_generalized_vm_and_makes_images_and_versions(vm_server, chain):
    c, versions = chain
    body = vm_body(versions["gen"].id, storageProfile={
        "imageReference": {"id": versions["gen"].id},
        "dataDisks": [{"lun": 0, "createOption": "Empty", "diskSizeGB": 2}]})
    vm = create_vm(c, vm_server.url, "vm-cap", body)
    try:
        image = {"location": "eastus", "properties": {"sourceVirtualMachine": {"id": vm.id}}}
        image_url = f"{compute_url(vm_server.url, 'images/from-vm')}?api-version={COMPUTE_API}"
        assert_arm_error(httpx.put(image_url, json=image), 409, "OperationNotAllowed", mentions="deallocate")
        sdk_rejects(lambda: c.virtual_machines.generalize(RG, "vm-cap"), 409, "OperationNotAllowed")
        c.virtual_machines.begin_deallocate(RG, "vm-cap").result()
        assert_arm_error(httpx.put(image_url, json=image), 409, "OperationNotAllowed", mentions="not generalized")
        version_body = {"location": "eastus", "properties": {"storageProfile": {"source": {"virtualMachineId": vm.id}}}}
        version_url = (f"{compute_url(vm_server.url, 'galleries/gal/images/gen/versions/2.0.0')}"
                       f"?api-version={GALLERY_API}")
        assert_arm_error(httpx.put(version_url, json=version_body), 409, "OperationNotAllowed", mentions="generalized")
        c.virtual_machines.generalize(RG, "vm-cap")
        sdk_rejects(lambda: c.virtual_machines.begin_start(RG, "vm-cap").result(), 409, mentions="generalized")
        made = c.images.begin_create_or_update(RG, "from-vm", m.Image(
            location="eastus", source_virtual_machine=m.SubResource(id=vm.id))).result()
        assert made.provisioning_state == "Succeeded"
        assert made.storage_profile.os_disk.os_state == "Generalized"
        assert [d.lun for d in made.storage_profile.data_disks] == [0]  # a VM image: its data disk too
        os_only = c.images.begin_create_or_update(RG, "os-only", m.Image(
            location="eastus", source_virtual_machine=m.SubResource(id=vm.id),
            storage_profile=m.ImageStorageProfile(data_disks=[]))).result()
        assert not os_only.storage_profile.data_disks  # an OS image
        version = c.gallery_image_versions.begin_create_or_update(RG, "gal", "gen", "2.0.0", m.GalleryImageVersion(
            location="eastus", storage_profile=m.GalleryImageVersionStorageProfile(
                source=m.GalleryArtifactVersionFullSource(virtual_machine_id=vm.id)))).result()
        assert version.provisioning_state == "Succeeded"
        assert version.storage_profile.source.virtual_machine_id == vm.id
        assert [d.lun for d in version.storage_profile.data_disk_images] == [0]
        # The captured OS disk holds the image's bytes.
        got = httpx.get(f"{vm_server.url}{version.id}/download?api-version={GALLERY_API}&format=raw")
        source = httpx.get(f"{vm_server.url}{versions['gen'].id}/download?api-version={GALLERY_API}&format=raw")
        assert got.status_code == 200 and got.content[:64 * MIB] == source.content[:64 * MIB]
        assert any(got.content[MIB:MIB + 4096])
    finally:
        delete_vm(c, "vm-cap")


def test_run_command_needs_a_running_vm(vm_server, chain):
    c, versions = chain
    create_vm(c, vm_server.url, "vm-rc", vm_body(versions["gen"].id))
    try:
        c.virtual_machines.begin_power_off(RG, "vm-rc", skip_shutdown=True).result()
        sdk_rejects(lambda: c.virtual_machines.begin_run_command(RG, "vm-rc", m.RunCommandInput(
            command_id="RunShellScript", script=["true"])).result(), 409, "OperationNotAllowed")
        sdk_rejects(lambda: c.virtual_machines.begin_run_command(RG, "vm-rc", m.RunCommandInput(
            command_id="RunPowerShellScript", script=["true"])).result(), 400, "InvalidParameter")
    finally:
        delete_vm(c, "vm-rc")


def test_sizes_catalog_lists_what_vms_may_ask_for(vm_server, chain):
    c, _ = chain
    sizes = {s.name: s for s in c.virtual_machine_sizes.list("eastus")}
    assert sizes["Standard_B1s"].number_of_cores == 1 and sizes["Standard_B1s"].memory_in_mb == 1024
    assert sizes["Standard_D2s_v3"].number_of_cores == 2


@pytest.mark.slow  # QEMU machines started and stopped: seconds of CPU
def test_end_of_life_warns_v2_boots_uefi_and_arm64_is_refused(vm_server, chain):
    c, versions = chain
    source = versions["gen"].storage_profile.os_disk_image.source.id
    for name, generation, architecture in (("v2", "V2", "x64"), ("arm", "V1", "Arm64")):
        c.gallery_images.begin_create_or_update(RG, "gal", name, m.GalleryImage(
            location="eastus", os_type="Linux", os_state="Specialized", hyper_v_generation=generation,
            architecture=architecture, identifier=m.GalleryImageIdentifier(publisher="p", offer=name, sku="s"))).result()
        c.gallery_image_versions.begin_create_or_update(RG, "gal", name, "1.0.0", m.GalleryImageVersion(
            location="eastus", publishing_profile=m.GalleryImageVersionPublishingProfile(
                end_of_life_date="2020-01-01T00:00:00Z"),
            storage_profile=m.GalleryImageVersionStorageProfile(
                os_disk_image=m.GalleryOSDiskImage(source=m.GalleryDiskImageSource(id=source))))).result()
    arm_version = c.gallery_image_versions.get(RG, "gal", "arm", "1.0.0").id
    assert_arm_error(put_vm(vm_server.url, "vm-arm", vm_body(arm_version, os_profile=False)), 400,
                     "InvalidParameter", mentions="x64")
    v2_version = c.gallery_image_versions.get(RG, "gal", "v2", "1.0.0").id
    vm = create_vm(c, vm_server.url, "vm-v2", vm_body(v2_version, os_profile=False))
    try:
        warnings = [s for s in c.virtual_machines.instance_view(RG, "vm-v2").statuses if s.level == "Warning"]
        assert warnings and "end of life" in warnings[0].message
        state = vm_server.app.state.compute.machines.state(vm.vm_id)
        cmdline = Path(f"/proc/{state.pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        assert "OVMF" in cmdline  # hyperVGeneration V2: UEFI firmware
        assert c.virtual_machines.instance_view(RG, "vm-v2").hyper_v_generation == "V2"
    finally:
        delete_vm(c, "vm-v2")


def test_a_network_interface_that_does_not_exist_is_refused(vm_server, chain):
    c, versions = chain
    missing = f"/subscriptions/{vm_server.app.state.settings.default_subscription_id}/resourceGroups/{RG}" \
              "/providers/Microsoft.Network/networkInterfaces/nowhere"
    body = vm_body(versions["gen"].id, networkProfile={"networkInterfaces": [{"id": missing}]})
    assert_arm_error(put_vm(vm_server.url, "vm-nic", body), 404, "NotFound", mentions="nowhere")
    assert "vm-nic" not in {vm.name for vm in c.virtual_machines.list(RG)}
