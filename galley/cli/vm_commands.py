"""`galley vm …` for virtual machines (Microsoft.Compute/virtualMachines), shaped like `az vm`:
create, list, show, get-instance-view, the power operations, generalize, delete, list-sizes,
list-usage, run-command invoke, boot-diagnostics get-boot-log and ssh. Registered on vm.py's app
(beside boot-test); the create body is built in vm_create.py.

Galley's VMs have no public address: SSH reaches the guest through a port on the server's loopback
(QEMU user-mode networking), which the instance view reports as the status `Galley/SshEndpoint`.
`-d/--show-details` and create's output add it as `sshEndpoint`, beside az's `powerState`."""

import os
import shutil
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from galley.cli import paths
from galley.cli.client import API_VM, ArmError
from galley.cli.common import (
    LocationOpt, NameOpt, NoWaitOpt, OptionalResourceGroupOpt, ResourceGroupOpt, Session, TagsOpt, arm_command,
    group_location, usage_error, with_tags,
)
from galley.cli.output import GROUP, LOCATION, NAME, STATE, field
from galley.cli.vm import app
from galley.cli.vm_create import data_disks, disk_id, os_profile, resolve_image, ssh_keys

PRIVATE_IP = "10.0.2.15"  # every guest's address on QEMU's user-mode network
SSH_STATUS = "Galley/SshEndpoint"

COLUMNS = (
    NAME, GROUP, LOCATION, ("VmSize", field("properties.hardwareProfile.vmSize")),
    ("PowerState", field("powerState")), ("SshEndpoint", field("sshEndpoint")), STATE,
)
SIZE_COLUMNS = tuple((header, field(key)) for header, key in (
    ("MaxDataDiskCount", "maxDataDiskCount"), ("MemoryInMb", "memoryInMB"), ("Name", "name"),
    ("NumberOfCores", "numberOfCores"), ("OsDiskSizeInMb", "osDiskSizeInMB"),
    ("ResourceDiskSizeInMb", "resourceDiskSizeInMB")))
USAGE_COLUMNS = (("CurrentValue", field("currentValue")), ("Limit", field("limit")),
                 ("LocalName", field("name.localizedValue")))

ShowDetailsOpt = Annotated[bool, typer.Option("--show-details", "-d", help="Add powerState and sshEndpoint "
                                              "(from each VM's instance view).")]
RequiredLocationOpt = Annotated[str, typer.Option("--location", "-l", help="Region.")]


def vm_path(session: Session, resource_group: str, name: str) -> str:
    return paths.compute(session.subscription, resource_group, "virtualMachines", name)


# -- what the instance view says -------------------------------------------------------------


def status_of(view: dict, prefix: str) -> Optional[dict]:
    for status in view.get("statuses") or []:
        if str(status.get("code", "")).startswith(prefix):
            return status
    return None


def with_details(vm: dict, view: dict) -> dict:
    """The VM as `az vm show -d` prints it: its power state and how to reach it added at the top."""
    power = status_of(view, "PowerState/")
    ssh = status_of(view, SSH_STATUS)
    return {**vm, "powerState": power.get("displayStatus") if power else None,
            "privateIps": PRIVATE_IP, "sshEndpoint": ssh.get("displayStatus") if ssh else None}


def instance_view(session: Session, path: str) -> dict:
    return session.client.get(path + "/instanceView", API_VM) or {}


def warn_statuses(session: Session, view: dict) -> None:
    """Warnings the server left in the instance view (a source version past its end of life)."""
    for status in view.get("statuses") or []:
        if status.get("level") == "Warning":
            session.warn(status.get("message") or status.get("displayStatus") or str(status.get("code")))


# -- create ----------------------------------------------------------------------------------------


@arm_command(app, "create", COLUMNS)
def create(
    session: Session,
    *,
    resource_group: ResourceGroupOpt,
    name: NameOpt,
    image: Annotated[Optional[str], typer.Option(
        "--image", help="A gallery image version id, an image definition id (its latest version), …/versions/latest, "
        "a managed image id or name in -g, or a URN Publisher:Offer:Sku:Version|latest.")] = None,
    size: Annotated[str, typer.Option("--size", help="VM size (galley vm list-sizes).")] = "Standard_B1s",
    admin_username: Annotated[str, typer.Option("--admin-username", help="The admin user made on first boot.")]
    = "azureuser",
    ssh_key_values: Annotated[Optional[list[str]], typer.Option(
        "--ssh-key-values", help="Public keys, or files holding them. Default: ~/.ssh/id_ed25519.pub or id_rsa.pub.")]
    = None,
    generate_ssh_keys: Annotated[bool, typer.Option(
        "--generate-ssh-keys", help="Make ~/.ssh/id_ed25519 when you have no key in ~/.ssh.")] = False,
    admin_password: Annotated[Optional[str], typer.Option("--admin-password", help="Password of the admin user.")]
    = None,
    custom_data: Annotated[Optional[str], typer.Option(
        "--custom-data", help="A file (or text) given to the guest on first boot: cloud-init user-data.")] = None,
    computer_name: Annotated[Optional[str], typer.Option("--computer-name", help="Host name. Default: the VM's name.")]
    = None,
    os_disk_size_gb: Annotated[Optional[int], typer.Option("--os-disk-size-gb", min=1, help="Grow the OS disk.")]
    = None,
    data_disk_sizes_gb: Annotated[Optional[list[int]], typer.Option(
        "--data-disk-sizes-gb", help="New empty data disks, sizes in GiB.")] = None,
    attach_os_disk: Annotated[Optional[str], typer.Option(
        "--attach-os-disk", help="Boot this existing OS disk (id or name in -g) as it is, instead of --image.")] = None,
    attach_data_disks: Annotated[Optional[list[str]], typer.Option(
        "--attach-data-disks", help="Existing data disks to attach (ids or names in -g).")] = None,
    os_disk_delete_option: Annotated[Optional[str], typer.Option(
        "--os-disk-delete-option", help="Delete or Detach: what deleting the VM does to its OS disk (default Detach).")]
    = None,
    data_disk_delete_option: Annotated[Optional[str], typer.Option(
        "--data-disk-delete-option", help="Delete or Detach: what deleting the VM does to its data disks.")] = None,
    specialized: Annotated[bool, typer.Option(
        "--specialized", help="The image is specialized: boot it as captured, with no admin user or keys.")] = False,
    os_type: Annotated[Optional[str], typer.Option("--os-type", help="With --attach-os-disk: Linux or Windows, when "
                                                   "the disk does not record it.")] = None,
    location: LocationOpt = None,
    tags: TagsOpt = None,
    no_wait: NoWaitOpt = False,
):
    """Create a VM from an image (or an existing OS disk) and start it.

    Prints the VM with its powerState and sshEndpoint (`galley vm ssh` connects there)."""
    if (image is None) == (attach_os_disk is None):
        raise usage_error("give --image or --attach-os-disk (one of them).")
    for option, value in (("--os-disk-delete-option", os_disk_delete_option),
                          ("--data-disk-delete-option", data_disk_delete_option)):
        if value is not None and value.lower() not in ("delete", "detach"):
            raise usage_error(f"{option} must be Delete or Detach, not {value!r}.")
    location = location or group_location(session, resource_group)
    storage: dict = {}
    os_disk: dict = {}
    if attach_os_disk is not None:
        choice_specialized, taken = True, set()
        os_disk = {"createOption": "Attach", "managedDisk": {"id": disk_id(session, resource_group, attach_os_disk)}}
        if os_type:
            os_disk["osType"] = os_type
    else:
        choice = resolve_image(session, resource_group, image, location)
        storage["imageReference"] = choice.reference
        choice_specialized, taken = specialized or bool(choice.specialized), choice.data_luns
        os_disk = {"createOption": "FromImage"}
    if os_disk_size_gb is not None:
        os_disk["diskSizeGB"] = os_disk_size_gb
    if os_disk_delete_option is not None:
        os_disk["deleteOption"] = os_disk_delete_option
    storage["osDisk"] = os_disk
    disks = data_disks(session, resource_group, data_disk_sizes_gb or [], attach_data_disks or [], taken,
                       data_disk_delete_option)
    if disks:
        storage["dataDisks"] = disks
    properties: dict = {"hardwareProfile": {"vmSize": size}, "storageProfile": storage}
    given_profile = [option for option, value in (
        ("--ssh-key-values", ssh_key_values), ("--admin-password", admin_password), ("--custom-data", custom_data),
        ("--computer-name", computer_name), ("--generate-ssh-keys", generate_ssh_keys or None)) if value is not None]
    if choice_specialized:
        if given_profile:
            raise usage_error(f"the VM boots a specialized {'disk' if attach_os_disk else 'image'} as it was captured "
                              f"(its users, keys and host name included): {', '.join(given_profile)} do not apply.")
    else:
        keys = ssh_keys(ssh_key_values or [], generate_ssh_keys)
        if not keys and admin_password is None:
            raise usage_error("the admin user needs a way to sign in: give --ssh-key-values, --generate-ssh-keys "
                              "or --admin-password (no key found in ~/.ssh).")
        properties["osProfile"] = os_profile(name, admin_username, keys, admin_password, computer_name, custom_data)
    body = with_tags({"location": location, "properties": properties}, tags)
    path = vm_path(session, resource_group, name)
    vm = session.client.put(path, API_VM, body, no_wait=no_wait)
    if no_wait:
        return vm
    view = instance_view(session, path)
    warn_statuses(session, view)
    return with_details(vm, view)


# -- reading ---------------------------------------------------------------------------------------


@arm_command(app, "list", COLUMNS)
def list_vms(session: Session, *, resource_group: OptionalResourceGroupOpt = None,
             show_details: ShowDetailsOpt = False):
    """List VMs in a resource group, or in the subscription without -g."""
    vms = session.client.list(paths.compute_collection(session.subscription, resource_group, "virtualMachines"),
                              API_VM)
    if not show_details:
        return vms
    return [with_details(vm, instance_view(session, vm["id"])) for vm in vms]


@arm_command(app, "show", COLUMNS)
def show(session: Session, *, resource_group: ResourceGroupOpt, name: NameOpt, show_details: ShowDetailsOpt = False):
    """Show a VM (-d: with its powerState and sshEndpoint)."""
    path = vm_path(session, resource_group, name)
    if not show_details:
        return session.client.get(path, API_VM)
    vm = session.client.get(path, API_VM, params={"$expand": "instanceView"})
    view = (vm.get("properties") or {}).pop("instanceView", None) or {}
    return with_details(vm, view)


@arm_command(app, "get-instance-view", COLUMNS)
def get_instance_view(session: Session, *, resource_group: ResourceGroupOpt, name: NameOpt):
    """Show a VM with its instance view (power state, disks, SSH endpoint) in properties.instanceView."""
    return session.client.get(vm_path(session, resource_group, name), API_VM, params={"$expand": "instanceView"})


# -- power and lifecycle -----------------------------------------------------------------------------


def power_command(action: str, url_word: str, doc: str) -> None:
    def command(session: Session, *, resource_group: ResourceGroupOpt, name: NameOpt, no_wait: NoWaitOpt = False):
        session.client.post(f"{vm_path(session, resource_group, name)}/{url_word}", API_VM, no_wait=no_wait)

    command.__name__ = command.__qualname__ = action.replace("-", "_")
    command.__doc__ = doc
    arm_command(app, action)(command)


power_command("start", "start", "Start a stopped or deallocated VM.")
power_command("restart", "restart", "Restart a running VM (its guest is asked to reboot).")
power_command("deallocate", "deallocate", "Stop a VM and release its CPU and memory (they no longer count "
              "against the quota); its disks hold what it wrote.")


@arm_command(app, "stop")
def stop(session: Session, *, resource_group: ResourceGroupOpt, name: NameOpt,
         skip_shutdown: Annotated[bool, typer.Option("--skip-shutdown", help="Cut the power at once instead of "
                                                     "asking the guest to shut down.")] = False,
         no_wait: NoWaitOpt = False):
    """Power off a VM. It still holds its vCPU quota: deallocate to release it."""
    params = {"skipShutdown": "true"} if skip_shutdown else None
    session.client.post(vm_path(session, resource_group, name) + "/powerOff", API_VM, params=params, no_wait=no_wait)


@arm_command(app, "generalize")
def generalize(session: Session, *, resource_group: ResourceGroupOpt, name: NameOpt):
    """Mark a stopped or deallocated VM generalized (after `galley-deprovision` ran in its guest), so that it
    can be captured as a generalized image (galley image create --source VM). It cannot start again."""
    session.client.post(vm_path(session, resource_group, name) + "/generalize", API_VM)


@arm_command(app, "delete")
def delete(session: Session, *, resource_group: ResourceGroupOpt, name: NameOpt,
           yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
           no_wait: NoWaitOpt = False):
    """Delete a VM: its machine is stopped; its disks are deleted or kept (detached) per their deleteOption."""
    if not yes:
        if not sys.stdin.isatty():
            raise usage_error("unable to prompt for confirmation as no tty is available: use --yes.")
        if not typer.confirm(f"Delete VM '{name}' in resource group '{resource_group}'?"):
            raise typer.Exit(1)
    return session.client.delete(vm_path(session, resource_group, name), API_VM, no_wait=no_wait)


# -- the region --------------------------------------------------------------------------------------


def location_path(session: Session, location: str, what: str) -> str:
    return f"/subscriptions/{session.subscription}/providers/Microsoft.Compute/locations/{location}/{what}"


@arm_command(app, "list-sizes", SIZE_COLUMNS)
def list_sizes(session: Session, *, location: RequiredLocationOpt):
    """List the VM sizes a region offers (vCPUs and memory)."""
    return session.client.list(location_path(session, location, "vmSizes"), API_VM)


@arm_command(app, "list-usage", USAGE_COLUMNS)
def list_usage(session: Session, *, location: RequiredLocationOpt):
    """List the region's vCPU and VM usage against the subscription's quota."""
    return session.client.list(location_path(session, location, "usages"), API_VM)


# -- inside the guest ------------------------------------------------------------------------------------

run_command_app = typer.Typer(help="Run scripts inside a running VM (through the QEMU guest agent).",
                              no_args_is_help=True)
app.add_typer(run_command_app, name="run-command")


def script_lines(scripts: list[str]) -> list[str]:
    """--scripts values as script lines; `@FILE` stands for a file's lines."""
    lines: list[str] = []
    for value in scripts:
        if value.startswith("@"):
            path = Path(value[1:]).expanduser()
            if not path.is_file():
                raise usage_error(f"--scripts {value!r}: no such file.")
            lines += path.read_text().splitlines()
        else:
            lines.append(value)
    return lines


def run_parameters(values: list[str]) -> list[dict]:
    """--parameters as az sends them: name=value, or a bare value named arg1, arg2, …"""
    parameters, unnamed = [], 0
    for value in values:
        if "=" in value:
            name, _, text = value.partition("=")
        else:
            unnamed += 1
            name, text = f"arg{unnamed}", value
        parameters.append({"name": name, "value": text})
    return parameters


@arm_command(run_command_app, "invoke")
def run_command_invoke(
    session: Session,
    *,
    resource_group: ResourceGroupOpt,
    name: NameOpt,
    command_id: Annotated[str, typer.Option("--command-id", help="RunShellScript (Galley runs Linux guests).")],
    scripts: Annotated[Optional[list[str]], typer.Option("--scripts", help="Script lines, or @FILE.")] = None,
    parameters: Annotated[Optional[list[str]], typer.Option(
        "--parameters", help="name=value pairs (bare values are named arg1, arg2, …), set as environment variables.")]
    = None,
):
    """Run a shell script as root inside a running VM; prints its output and exit code as a RunCommandResult."""
    lines = script_lines(scripts or [])
    if not lines:
        raise usage_error("--scripts is required.")
    body = {"commandId": command_id, "script": lines, "parameters": run_parameters(parameters or [])}
    return session.client.post_for_result(vm_path(session, resource_group, name) + "/runCommand", API_VM, body=body)


diagnostics_app = typer.Typer(help="Read a VM's boot diagnostics (its serial console).", no_args_is_help=True)
app.add_typer(diagnostics_app, name="boot-diagnostics")


@arm_command(diagnostics_app, "get-boot-log-uris")
def get_boot_log_uris(session: Session, *, resource_group: ResourceGroupOpt, name: NameOpt):
    """Print a signed URL of the VM's serial console log (readable without signing in, for 2 hours)."""
    return session.client.post(vm_path(session, resource_group, name) + "/retrieveBootDiagnosticsData", API_VM)


@arm_command(diagnostics_app, "get-boot-log")
def get_boot_log(session: Session, *, resource_group: ResourceGroupOpt, name: NameOpt):
    """Print the VM's serial console log."""
    uris = session.client.post(vm_path(session, resource_group, name) + "/retrieveBootDiagnosticsData", API_VM) or {}
    uri = uris.get("serialConsoleLogBlobUri")
    if not uri:
        raise ArmError("BootDiagnosticsNotAvailable", f"VM '{name}' has no serial console log.")
    sys.stdout.write(session.client.send("GET", uri).text)
    sys.stdout.flush()


def ssh_argv(vm: dict, view: dict, user: Optional[str], extra: list[str]) -> list[str]:
    """The ssh command line that reaches the VM's guest through its forwarded loopback port."""
    endpoint = status_of(view, SSH_STATUS)
    if endpoint is None:
        power = status_of(view, "PowerState/")
        state = power.get("displayStatus") if power else "in no known power state"
        raise ArmError("VMNotRunning", f"VM '{vm.get('name')}' has no SSH endpoint: it is "
                       f"{str(state).removeprefix('VM ')}. Start it with `galley vm start`.")
    host, _, port = str(endpoint.get("displayStatus")).rpartition(":")
    user = user or ((vm.get("properties") or {}).get("osProfile") or {}).get("adminUsername")
    if not user:
        raise usage_error(f"VM '{vm.get('name')}' has no admin user on record (it boots a specialized image): "
                          "give --user.")
    return ["ssh", "-p", port, "-o", "StrictHostKeyChecking=accept-new", f"{user}@{host}", *extra]


@arm_command(app, "ssh")
def ssh(
    session: Session,
    extra: Annotated[Optional[list[str]], typer.Argument(help="Arguments for ssh, after `--` (a remote command, "
                                                         "-i KEY, …).", show_default=False)] = None,
    *,
    resource_group: ResourceGroupOpt,
    name: NameOpt,
    user: Annotated[Optional[str], typer.Option("--user", help="User to sign in as. Default: the VM's admin user.")]
    = None,
):
    """SSH into a running VM through the loopback port the server forwards to its guest (run it on the server's
    machine): `galley vm ssh -g RG -n VM [-- ssh arguments]`."""
    path = vm_path(session, resource_group, name)
    vm = session.client.get(path, API_VM, params={"$expand": "instanceView"})
    view = (vm.get("properties") or {}).get("instanceView") or {}
    argv = ssh_argv(vm, view, user, list(extra or []))
    if shutil.which("ssh") is None:
        raise ArmError("SshNotFound", "no `ssh` command on this machine: install OpenSSH's client.")
    session.close()
    os.execvp(argv[0], argv)
