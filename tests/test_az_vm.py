"""The real `az vm …`, `az image create --source <vm>` and `az sig image-version create
--virtual-machine` against `galley serve` over HTTPS (see test_az_cli.py for how az is run).

The VM here runs an image that boots nothing (QEMU's firmware finds no boot loader), which is
enough for everything but a guest's answers; those are in test_vm_guests.py. The VM itself is
made with `az rest` (`az vm create` deploys an ARM template: test_deployments.py).
"""

from __future__ import annotations

import json
import os

import httpx
import pytest

from .servers import kill_machines_under
from .test_az_cli import SUBSCRIPTION_A, HttpsServer, compute_id, new_az

pytestmark = pytest.mark.slow  # a galley serve, az's start-up per command


@pytest.fixture(scope="module")
def vm_az(tmp_path_factory):
    saved = dict(os.environ)
    # This image boots nothing: no provisioning to wait for, and no guest to answer ACPI.
    os.environ.update(GALLEY_QEMU_ACCEL="tcg", GALLEY_VM_PROVISIONING_TIMEOUT="0", GALLEY_VM_STOP_GRACE="2")
    try:
        server = HttpsServer(tmp_path_factory.mktemp("az-vm-home")).start()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    az = new_az(server, tmp_path_factory.mktemp("az-vm"), server.credentials)
    yield server, az
    server.stop()
    assert not kill_machines_under(server.home), "a VM was left running"


def test_az_vm_commands_drive_a_galley_vm(vm_az):
    server, az = vm_az
    az.json("group", "create", "-n", "vmRG", "-l", "eastus")
    disk = az.json("disk", "create", "-g", "vmRG", "-n", "osdisk", "--size-gb", "1", "--os-type", "Linux")
    az.json("sig", "create", "-g", "vmRG", "-r", "gal")
    az.json("sig", "image-definition", "create", "-g", "vmRG", "-r", "gal", "-i", "gen", "--publisher", "p",
            "--offer", "o", "--sku", "s", "--os-type", "Linux", "--os-state", "Generalized")
    version = az.json("sig", "image-version", "create", "-g", "vmRG", "-r", "gal", "-i", "gen", "-e", "1.0.0",
                      "--os-snapshot", disk["id"])
    vm_id = compute_id(SUBSCRIPTION_A, "vmRG", "virtualMachines", "vm1")
    body = {"location": "eastus", "properties": {
        "hardwareProfile": {"vmSize": "Standard_B1ls"},
        "storageProfile": {"imageReference": {"id": version["id"]}},
        "osProfile": {"adminUsername": "azureuser", "linuxConfiguration": {"ssh": {"publicKeys": [{
            "path": "/home/azureuser/.ssh/authorized_keys",
            "keyData": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl t@g"}]}}}}}
    az.json("rest", "--method", "put", "--url", f"{vm_id}?api-version=2024-07-01", "--body", json.dumps(body))
    az.run("vm", "wait", "--created", "-g", "vmRG", "-n", "vm1", "--timeout", "60")

    listed = az.json("vm", "list", "-d", "-g", "vmRG")
    assert [(vm["name"], vm["powerState"]) for vm in listed] == [("vm1", "VM running")]
    shown = az.json("vm", "show", "-d", "-g", "vmRG", "-n", "vm1")
    assert shown["powerState"] == "VM running" and shown["storageProfile"]["imageReference"]["id"] == version["id"]
    view = az.json("vm", "get-instance-view", "-g", "vmRG", "-n", "vm1")
    assert any(s["code"] == "Galley/SshEndpoint" for s in view["instanceView"]["statuses"])
    # The serial console (empty here: SeaBIOS writes to the screen, and nothing boots), read through
    # the signed URL that az fetches without a token; test_vm_guests.py reads a booted guest's.
    log = az.run("vm", "boot-diagnostics", "get-boot-log", "-g", "vmRG", "-n", "vm1").stdout
    uris = az.json("vm", "boot-diagnostics", "get-boot-log-uris", "-g", "vmRG", "-n", "vm1")
    direct = httpx.get(uris["serialConsoleLogBlobUri"], verify=server.tls(), timeout=30)
    assert direct.status_code == 200 and direct.text.startswith(json.loads(log))  # the log only grows
    forged = uris["serialConsoleLogBlobUri"].replace("sig=", "sig=0")
    assert httpx.get(forged, verify=server.tls(), timeout=30).status_code == 403

    az.run("vm", "stop", "-g", "vmRG", "-n", "vm1", "--skip-shutdown")
    assert az.json("vm", "show", "-d", "-g", "vmRG", "-n", "vm1")["powerState"] == "VM stopped"
    assert "only on a running VM" in az.fails("vm", "run-command", "invoke", "-g", "vmRG", "-n", "vm1",
                                     "--command-id", "RunShellScript", "--scripts", "true")
    az.run("vm", "start", "-g", "vmRG", "-n", "vm1")
    az.run("vm", "deallocate", "-g", "vmRG", "-n", "vm1")
    assert az.json("vm", "show", "-d", "-g", "vmRG", "-n", "vm1")["powerState"] == "VM deallocated"
    az.run("vm", "generalize", "-g", "vmRG", "-n", "vm1")

    image = az.json("image", "create", "-g", "vmRG", "-n", "fromVm", "--source", "vm1")
    assert image["sourceVirtualMachine"]["id"].lower() == vm_id.lower()
    captured = az.json("sig", "image-version", "create", "-g", "vmRG", "-r", "gal", "-i", "gen", "-e", "2.0.0",
                       "--virtual-machine", vm_id)
    assert captured["provisioningState"] == "Succeeded"
    assert captured["storageProfile"]["source"]["virtualMachineId"].lower() == vm_id.lower()

    sizes = {s["name"]: s for s in az.json("vm", "list-sizes", "-l", "eastus")}
    assert sizes["Standard_B1ls"]["memoryInMB"] == 512
    usage = {u["name"]["value"]: u for u in az.json("vm", "list-usage", "-l", "eastus")}
    assert usage["cores"]["currentValue"] == "0"  # deallocated VMs hold no cores (az prints strings)

    az.run("vm", "delete", "-g", "vmRG", "-n", "vm1", "--yes")
    assert az.json("vm", "list", "-g", "vmRG") == []
