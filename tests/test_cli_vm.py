"""`galley vm …` (and the VM sources of `galley image create` and `galley sig image-version create`)
against a real server, with VMs that really start a QEMU process but boot nothing: their image is
64 MiB of almost nothing (no boot sector), so no test waits for a guest. VMs are powered off with
--skip-shutdown (a guest that never booted cannot answer ACPI) and deleted before each test ends.

run-command's request and output are checked against a scripted server (it needs a booted guest's
agent for real; the end-to-end tests boot one)."""

from __future__ import annotations

import json
import os

import pytest
from azure.mgmt.compute import models as m

from galley.cli import vm_commands

from . import admin_http as httpx
from .cli_runner import galley  # noqa: F401 (fixture)
from .conftest import sdk_client
from .sdk_helpers import RG, SUBSCRIPTION, make_group, quick_polls
from .test_cli_unit import fake, ok, run  # noqa: F401 (fixture)

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl test@x"
COMPUTE = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RG}/providers/Microsoft.Compute"
DEFINITION = f"{COMPUTE}/galleries/gal/images/def"
VM_ARGS = ("-g", RG, "--size", "Standard_B1ls", "--ssh-key-values", KEY)


@pytest.fixture(autouse=True)
def tcg(monkeypatch):
    """These guests never boot: the first KVM start of a process would watch ~30 s for a kernel."""
    monkeypatch.setenv("GALLEY_QEMU_ACCEL", "tcg")


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A home of the test's own: no ~/.ssh key of the developer's is found or written."""
    folder = tmp_path / "home"
    folder.mkdir()
    monkeypatch.setenv("HOME", str(folder))
    return folder


def tiny_image(server, tmp_path) -> str:
    """A generalized definition `def` with version 1.0.0 of a 64 MiB raw disk `src`; returns the version id."""
    raw = tmp_path / "disk.raw"
    with open(raw, "wb") as f:
        f.truncate(64 * 1024 * 1024)
        f.seek(1024 * 1024)
        f.write(os.urandom(4096))
    compute = quick_polls(sdk_client(server.url))
    make_group(server.url)
    disk = compute.disks.begin_create_or_update(RG, "src", m.Disk(
        location="eastus", creation_data=m.CreationData(create_option="Empty"), disk_size_gb=1, os_type="Linux")).result()
    response = httpx.put(f"{server.url}{disk.id}/upload?api-version=2023-04-02", content=raw.read_bytes(), timeout=120)
    assert response.status_code in (200, 201), response.text
    compute.galleries.begin_create_or_update(RG, "gal", m.Gallery(location="eastus")).result()
    compute.gallery_images.begin_create_or_update(RG, "gal", "def", m.GalleryImage(
        location="eastus", os_type="Linux", os_state="Generalized",
        identifier=m.GalleryImageIdentifier(publisher="p", offer="o", sku="s"))).result()
    version = compute.gallery_image_versions.begin_create_or_update(RG, "gal", "def", "1.0.0", m.GalleryImageVersion(
        location="eastus", storage_profile=m.GalleryImageVersionStorageProfile(
            os_disk_image=m.GalleryOSDiskImage(source=m.GalleryDiskImageSource(id=disk.id))))).result()
    assert version.provisioning_state == "Succeeded"
    return version.id


def qemu_processes(server) -> list[str]:
    """Command lines of the QEMU processes running for this server's home."""
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmdline = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if "qemu-system" in cmdline and str(server.home) in cmdline:
                found.append(cmdline)
    return found


@pytest.fixture
def cleanup(galley, cli_server):  # noqa: F811
    """Every VM is deleted when the test ends, whatever happened, and no QEMU process is left."""
    yield
    for name in galley("vm", "list", "--query", "[].name", check=False).json():
        galley("vm", "stop", "-g", RG, "-n", name, "--skip-shutdown", check=False)
        galley("vm", "delete", "-g", RG, "-n", name, "--yes", check=False)
    assert qemu_processes(cli_server) == []


# ---- argument handling: nothing is created ---------------------------------------------------------

def test_create_refuses_bad_arguments_clearly(galley, cli_server, home):  # noqa: F811
    make_group(cli_server.url)
    disk_id = f"{COMPUTE}/disks/src"
    cases = [
        (("--image", disk_id), 2, "is not an image id"),
        (("--image", "Debian:debian-12:12"), 2, "is not a URN Publisher:Offer:Sku:Version"),
        (("--image", "Debian::12:latest"), 2, "is not a URN"),
        (("--image", "no-such-image"), 1, "(ImageNotFound) there is no managed image named 'no-such-image'"),
        (("--image", "Nobody:nothing:1:latest"), 1, "PlatformImageNotFound"),
        (("--image", "Nobody:nothing:1:latest", "--size", "Standard_Huge_v9"), 1, "Standard_Huge_v9"),
        ((), 2, "give --image or --attach-os-disk"),
        (("--image", "a:b:c:d", "--attach-os-disk", "d"), 2, "give --image or --attach-os-disk"),
        (("--image", "a:b:c:d", "--os-disk-delete-option", "Keep"), 2, "must be Delete or Detach"),
        (("--attach-os-disk", "d"), 2, "specialized disk as it was captured (its users, keys and host name "
                                       "included): --ssh-key-values do not apply"),
        (("--image", "a:b:c:d", "--specialized"), 2, "--ssh-key-values do not apply"),
    ]
    for extra, code, message in cases:
        args = ["-g", RG, "--ssh-key-values", KEY] if "--size" in extra else list(VM_ARGS)
        result = galley("vm", "create", "-n", "vm1", *args, *extra, check=False)
        assert result.code == code and message in result.stderr, (extra, result)
    no_key = galley("vm", "create", "-g", RG, "-n", "vm1", "--image", "Nobody:nothing:1:latest", check=False)
    assert no_key.code == 2 and "give --ssh-key-values, --generate-ssh-keys or --admin-password" in no_key.stderr
    not_a_key = galley("vm", "create", "-g", RG, "-n", "vm1", "--image", "a:b:c:d", "--ssh-key-values", "nonsense",
                       check=False)
    assert not_a_key.code == 2 and "neither a public key file nor an OpenSSH public key" in not_a_key.stderr
    assert galley("vm", "list", "-g", RG).json() == []
    assert not (home / ".ssh").exists()


def test_generate_ssh_keys_makes_a_key_only_when_there_is_none(home):
    from galley.cli.vm_create import ssh_keys

    made = ssh_keys([], generate=True)
    assert made[0].startswith("ssh-ed25519 ") and (home / ".ssh" / "id_ed25519").stat().st_mode & 0o777 == 0o600
    assert (home / ".ssh" / "id_ed25519.pub").read_text().strip() == made[0]
    assert ssh_keys([], generate=True) == made  # found, not made again
    key_file = home / "keys.pub"
    key_file.write_text(KEY + "\n\n" + KEY.replace("test@x", "other") + "\n")
    assert ssh_keys([str(key_file), KEY], generate=False) == [KEY, KEY.replace("test@x", "other"), KEY]


def test_list_sizes_and_usage(galley, cli_server):  # noqa: F811
    sizes = galley("vm", "list-sizes", "-l", "eastus").json()
    smallest = next(size for size in sizes if size["name"] == "Standard_B1ls")
    assert (smallest["numberOfCores"], smallest["memoryInMB"]) == (1, 512)
    table = galley("vm", "list-sizes", "-l", "eastus", "-o", "table").stdout
    assert table.split()[:6] == ["MaxDataDiskCount", "MemoryInMb", "Name", "NumberOfCores", "OsDiskSizeInMb",
                                 "ResourceDiskSizeInMb"]
    usage = galley("vm", "list-usage", "-l", "eastus").json()
    cores = next(item for item in usage if item["name"]["value"] == "cores")
    assert (cores["currentValue"], cores["limit"]) == (0, 20)
    assert "Total Regional vCPUs" in galley("vm", "list-usage", "-l", "eastus", "-o", "table").stdout
    bad = galley("vm", "list-sizes", "-l", "atlantis", check=False)
    assert bad.code == 1 and "atlantis" in bad.stderr


# ---- a VM's life ------------------------------------------------------------------------------------

@pytest.mark.slow  # QEMU machines started and stopped: seconds of CPU
def test_create_list_show_power_and_delete(galley, cli_server, tmp_path, monkeypatch, cleanup):  # noqa: F811
    version_id = tiny_image(cli_server, tmp_path)
    created = galley("vm", "create", "-n", "vm1", *VM_ARGS, "--image", DEFINITION, "--data-disk-sizes-gb", "1",
                     "--os-disk-delete-option", "Delete", "--data-disk-delete-option", "Delete",
                     "--tags", "team=web").json()
    vm_id = f"{COMPUTE}/virtualMachines/vm1"
    assert created["id"] == vm_id and created["location"] == "eastus" and created["tags"] == {"team": "web"}
    assert created["powerState"] == "VM running" and created["sshEndpoint"].startswith("127.0.0.1:")
    props = created["properties"]
    assert props["storageProfile"]["imageReference"]["exactVersion"] == "1.0.0"
    assert props["osProfile"]["adminUsername"] == "azureuser"
    assert props["osProfile"]["linuxConfiguration"]["ssh"]["publicKeys"][0]["keyData"] == KEY
    [data] = props["storageProfile"]["dataDisks"]
    assert (data["lun"], data["createOption"], data["diskSizeGB"], data["deleteOption"]) == (0, "Empty", 1, "Delete")
    os_disk = props["storageProfile"]["osDisk"]["name"]
    assert len(qemu_processes(cli_server)) == 1

    assert [vm["name"] for vm in galley("vm", "list", "-g", RG).json()] == ["vm1"]
    assert "powerState" not in galley("vm", "list").json()[0]
    [detailed] = galley("vm", "list", "-d").json()
    assert (detailed["powerState"], detailed["sshEndpoint"]) == ("VM running", created["sshEndpoint"])
    table = galley("vm", "list", "-d", "-o", "table").stdout
    assert "PowerState" in table and "VM running" in table and created["sshEndpoint"] in table
    shown = galley("vm", "show", "-g", RG, "-n", "vm1", "-d").json()
    assert shown["powerState"] == "VM running" and "instanceView" not in shown["properties"]
    assert galley("vm", "show", "-g", RG, "-n", "vm1", "--query", "hardwareProfile.vmSize").json() == "Standard_B1ls"
    view = galley("vm", "get-instance-view", "-g", RG, "-n", "vm1").json()["properties"]["instanceView"]
    codes = [status["code"] for status in view["statuses"]]
    assert "PowerState/running" in codes and "Galley/SshEndpoint" in codes

    # ssh: the command line it would run (the guest never boots, so nothing answers there)
    ran = []
    monkeypatch.setattr(vm_commands.os, "execvp", lambda file, argv: ran.append(argv))
    galley("vm", "ssh", "-g", RG, "-n", "vm1", "--", "-i", "key", "uptime")
    port = created["sshEndpoint"].rsplit(":", 1)[1]
    assert ran == [["ssh", "-p", port, "-o", "StrictHostKeyChecking=accept-new", "azureuser@127.0.0.1",
                    "-i", "key", "uptime"]]
    log = galley("vm", "boot-diagnostics", "get-boot-log", "-g", RG, "-n", "vm1")
    assert log.stdout == cli_server.app.state.compute.machines.serial_log(props["vmId"])

    running_again = galley("vm", "start", "-g", RG, "-n", "vm1", check=False)
    assert running_again.code == 1 and "not allowed" in running_again.stderr
    assert galley("vm", "restart", "-g", RG, "-n", "vm1").stdout == ""
    assert galley("vm", "show", "-g", RG, "-n", "vm1", "-d", "--query", "powerState").json() == "VM running"
    assert galley("vm", "stop", "-g", RG, "-n", "vm1", "--skip-shutdown").stdout == ""
    assert galley("vm", "show", "-g", RG, "-n", "vm1", "-d", "--query", "[powerState, sshEndpoint]").json() == \
        ["VM stopped", None]
    assert qemu_processes(cli_server) == []
    stopped = galley("vm", "ssh", "-g", RG, "-n", "vm1", check=False)
    assert stopped.code == 1 and "has no SSH endpoint: it is stopped" in stopped.stderr
    galley("vm", "start", "-g", RG, "-n", "vm1")
    assert galley("vm", "show", "-g", RG, "-n", "vm1", "-d", "--query", "powerState").json() == "VM running"
    cores = lambda: next(u["currentValue"] for u in galley("vm", "list-usage", "-l", "eastus").json()  # noqa: E731
                         if u["name"]["value"] == "cores")
    assert cores() == 1
    galley("vm", "stop", "-g", RG, "-n", "vm1", "--skip-shutdown")
    galley("vm", "deallocate", "-g", RG, "-n", "vm1")
    assert galley("vm", "list", "-d", "--query", "[].powerState").json() == ["VM deallocated"]
    assert cores() == 0

    unasked = galley("vm", "delete", "-g", RG, "-n", "vm1", check=False)
    assert unasked.code == 2 and "--yes" in unasked.stderr
    assert galley("vm", "delete", "-g", RG, "-n", "vm1", "--yes").stdout == ""
    assert galley("vm", "list").json() == []
    assert galley("disk", "list", "-g", RG, "--query", "[].name").json() == ["src"]  # its disks went with it
    assert os_disk not in galley("disk", "list", "--query", "[].name").stdout
    assert version_id.endswith("/1.0.0")


@pytest.mark.slow  # QEMU machines started and stopped: seconds of CPU
def test_create_from_each_image_form(galley, cli_server, tmp_path, home, cleanup):  # noqa: F811
    version_id = tiny_image(cli_server, tmp_path)
    galley("image", "create", "-g", RG, "-n", "img", "--source", "src", "--tags", "ImageFamily=web")
    key_file = home / ".ssh" / "id_rsa.pub"
    key_file.parent.mkdir()
    key_file.write_text(KEY + "\n")
    forms = {"byversion": version_id, "bylatest": DEFINITION + "/versions/latest", "byname": "img",
             "byimageid": f"{COMPUTE}/images/img"}
    for name, image in forms.items():  # the default key: ~/.ssh/id_rsa.pub
        created = galley("vm", "create", "-g", RG, "-n", name, "--size", "Standard_B1ls", "--image", image,
                         "--admin-username", "alice", "--computer-name", f"{name}-host",
                         "--custom-data", "#cloud-config\n{}").json()
        assert created["powerState"] == "VM running", name
        profile = created["properties"]["osProfile"]
        assert (profile["adminUsername"], profile["computerName"]) == ("alice", f"{name}-host")
        assert profile["linuxConfiguration"]["ssh"]["publicKeys"][0]["keyData"] == KEY
        galley("vm", "stop", "-g", RG, "-n", name, "--skip-shutdown")
    galley("disk", "create", "-g", RG, "-n", "osdisk", "--source", "src")
    attached = galley("vm", "create", "-g", RG, "-n", "byattach", "--size", "Standard_B1ls",
                      "--attach-os-disk", "osdisk").json()
    assert "osProfile" not in attached["properties"] and attached["powerState"] == "VM running"
    assert attached["properties"]["storageProfile"]["osDisk"]["createOption"] == "Attach"
    no_user = galley("vm", "ssh", "-g", RG, "-n", "byattach", check=False)
    assert no_user.code == 2 and "has no admin user on record" in no_user.stderr
    forms["byattach"] = "osdisk"
    assert galley("vm", "show", "-g", RG, "-n", "byname",
                  "--query", "storageProfile.imageReference.id").json() == f"{COMPUTE}/images/img"
    assert sorted(galley("vm", "list", "--query", "[].name").json()) == sorted(forms)


# ---- capture ----------------------------------------------------------------------------------------

@pytest.mark.slow  # QEMU machines started and stopped: seconds of CPU
def test_capture_a_vm_into_images_and_versions(galley, cli_server, tmp_path, cleanup):  # noqa: F811
    tiny_image(cli_server, tmp_path)
    vm_id = f"{COMPUTE}/virtualMachines/vm1"
    galley("vm", "create", "-n", "vm1", *VM_ARGS, "--image", DEFINITION, "--data-disk-sizes-gb", "1",
           "--os-disk-delete-option", "Delete", "--data-disk-delete-option", "Delete")
    running = galley("image", "create", "-g", RG, "-n", "whole", "--source", "vm1", check=False)
    assert running.code == 1 and "is running" in running.stderr
    galley("vm", "stop", "-g", RG, "-n", "vm1", "--skip-shutdown")
    galley("vm", "deallocate", "-g", RG, "-n", "vm1")
    not_generalized = galley("image", "create", "-g", RG, "-n", "whole", "--source", "vm1", check=False)
    assert not_generalized.code == 1 and "not generalized" in not_generalized.stderr
    galley("vm", "generalize", "-g", RG, "-n", "vm1")
    mixed = galley("image", "create", "-g", RG, "-n", "whole", "--source", "vm1", "--os-type", "Linux",
                   check=False)
    assert mixed.code == 2 and "a VM source brings its own" in mixed.stderr

    whole = galley("image", "create", "-g", RG, "-n", "whole", "--source", "vm1",
                   "--tags", "ImageFamily=web").json()
    assert whole["properties"]["sourceVirtualMachine"]["id"].lower() == vm_id.lower()
    storage = whole["properties"]["storageProfile"]
    assert storage["osDisk"]["osState"] == "Generalized" and [d["lun"] for d in storage["dataDisks"]] == [0]
    os_only = galley("image", "create", "-g", RG, "-n", "osonly", "--source", vm_id, "--os-disk-only").json()
    assert os_only["properties"]["storageProfile"].get("dataDisks", []) == []

    galley("sig", "image-version", "create", "-g", RG, "-r", "gal", "-i", "def", "-e", "2.0.0",
           "--virtual-machine", vm_id)
    galley("sig", "image-version", "create", "-g", RG, "-r", "gal", "-i", "def", "-e", "3.0.0",
           "--managed-image", vm_id)
    sources = galley("sig", "image-version", "list", "-g", RG, "-r", "gal", "-i", "def",
                     "--query", "[].[name, properties.storageProfile.source.virtualMachineId]").json()
    assert sorted(sources) == [["1.0.0", None], ["2.0.0", vm_id], ["3.0.0", vm_id]]
    both = galley("sig", "image-version", "create", "-g", RG, "-r", "gal", "-i", "def", "-e", "4.0.0",
                  "--virtual-machine", vm_id, "--data-snapshots", "src", check=False)
    assert both.code == 2 and "a VM source brings its own data disks" in both.stderr

    # image families: the ImageFamily tag of managed images, the definition of gallery versions
    table = galley("image", "list", "-g", RG, "-o", "table").stdout.splitlines()
    assert table[0].split()[:4] == ["Name", "ResourceGroup", "Location", "Family"]
    assert any(line.split()[:4] == ["whole", RG, "eastus", "web"] for line in table)
    assert galley("image", "list", "--family", "web", "--query", "[].name").json() == ["whole"]
    everything = galley("image", "list", "--include-gallery", "-o", "table").stdout
    assert sum(line.split()[3:4] == ["def"] for line in everything.splitlines()) == 3
    assert galley("image", "list", "--include-gallery", "--family", "DEF", "--query", "[].name").json() == \
        ["1.0.0", "2.0.0", "3.0.0"]


# ---- run-command, against a scripted server ---------------------------------------------------------

SUB_PATH = f"/subscriptions/{SUBSCRIPTION}"


def test_run_command_invoke_sends_the_script_and_prints_the_result(fake, tmp_path):  # noqa: F811
    vm = f"{SUB_PATH}/resourceGroups/rg/providers/Microsoft.Compute/virtualMachines/vm1"
    result_body = {"value": [{"code": "ProvisioningState/succeeded", "message": "Enable succeeded: \n[stdout]\nhi\n"
                              "\n[stderr]\n\n", "exitCode": 0}]}
    server = fake({
        ("POST", vm + "/runCommand"): ok(None, 202, {"Azure-AsyncOperation": "http://srv/ops/1",
                                                     "Location": "http://srv/results/1"}),
        ("GET", "/ops/1"): [ok({"status": "InProgress"}), ok({"status": "Succeeded"})],
        ("GET", "/results/1"): ok(result_body),
    })
    script = tmp_path / "s.sh"
    script.write_text("echo from-file\nexit 0\n")
    out = run("vm", "run-command", "invoke", "-g", "rg", "-n", "vm1", "--command-id", "RunShellScript",
              "--scripts", "echo $greeting", f"@{script}", "--parameters", "greeting=hi there", "bare",
              "--server", "http://srv")
    assert out.exit_code == 0, out.output
    assert server.bodies("POST") == [{"commandId": "RunShellScript",
                                      "script": ["echo $greeting", "echo from-file", "exit 0"],
                                      "parameters": [{"name": "greeting", "value": "hi there"},
                                                     {"name": "arg1", "value": "bare"}]}]
    assert json.loads(out.stdout) == result_body
    missing = run("vm", "run-command", "invoke", "-g", "rg", "-n", "vm1", "--command-id", "RunShellScript",
                  "--server", "http://srv")
    assert missing.exit_code == 2


def test_ssh_needs_a_running_vm_and_a_user():
    vm = {"name": "vm1", "properties": {}}
    running = {"statuses": [{"code": "PowerState/running", "displayStatus": "VM running"},
                            {"code": "Galley/SshEndpoint", "displayStatus": "127.0.0.1:40022"}]}
    assert vm_commands.ssh_argv(vm, running, "bob", []) == [
        "ssh", "-p", "40022", "-o", "StrictHostKeyChecking=accept-new", "bob@127.0.0.1"]
    with pytest.raises(Exception, match="give --user"):
        vm_commands.ssh_argv(vm, running, None, [])
    with pytest.raises(Exception, match="it is deallocated"):
        vm_commands.ssh_argv(vm, {"statuses": [{"code": "PowerState/deallocated",
                                                "displayStatus": "VM deallocated"}]}, "bob", [])


def test_os_profile_body(tmp_path):
    from galley.cli.vm_create import os_profile

    script = tmp_path / "init.yaml"
    script.write_text("#cloud-config\nruncmd: [touch /x]\n")
    assert os_profile("vm1", "bob", [KEY], "Pa55word!", None, str(script)) == {
        "computerName": "vm1", "adminUsername": "bob", "adminPassword": "Pa55word!",
        "linuxConfiguration": {"disablePasswordAuthentication": False, "ssh": {"publicKeys": [
            {"path": "/home/bob/.ssh/authorized_keys", "keyData": KEY}]}},
        "customData": "I2Nsb3VkLWNvbmZpZwpydW5jbWQ6IFt0b3VjaCAveF0K",
    }
    assert os_profile("vm1", "bob", [KEY], None, "host", "echo hi") == {
        "computerName": "host", "adminUsername": "bob", "customData": "ZWNobyBoaQ==",
        "linuxConfiguration": {"disablePasswordAuthentication": True, "ssh": {"publicKeys": [
            {"path": "/home/bob/.ssh/authorized_keys", "keyData": KEY}]}},
    }
