"""The work behind a VM's operations: give its disks their content, boot it, stop it, capture what
its guest wrote back into its disks, run commands in it, tear it down.

A VM's disks are managed disks whose content lives in the chunk store. While the VM exists, each
disk also has a copy-on-write file (compute/disk_files.py) over that content: the machine runs on
it, and stopping the machine captures it back into the disk's content (chunks already stored are
shared, so this costs only what the guest changed). Provisioning a generalized image is a NoCloud
seed disk (compute/seed.py) made once, when the VM is first booted.
"""

from __future__ import annotations

import base64
import logging
import shlex
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from ..compute.disk_files import DiskFileError, DiskFiles
from ..compute.machines import CommandTimeout, DiskSpec, GuestAgentUnavailable, Machines, MachineSpec
from ..compute import seed
from ..domain import platform_images, virtual_machine as vm_rules
from ..domain.ids import key_of
from ..domain.resource import CREATING, FAILED, SUCCEEDED, Operation, Resource
from ..domain.vm_service import run_command_result
from ..domain.vm_sizes import vm_size
from .content_work import OS_LUN, copy_into
from .context import JobContext


log = logging.getLogger("galley.jobs.vm")

STOP_GRACE_SECONDS = 60.0
# A deleted VM's machine is powered off at once, as Azure's delete does: no guest shutdown.
DELETE_GRACE_SECONDS = 0.0
CAPTURE_LOCK_WAIT = 15.0
RUN_COMMAND_SECONDS = 90 * 60  # Azure's limit for one run-command
BOOTED = ("command -v systemctl >/dev/null 2>&1 && "
          "timeout 300 systemctl is-system-running --wait >/dev/null 2>&1\n")


@dataclass
class Compute:
    """The host side of VMs a job works with: QEMU machines and the disks' files."""

    machines: Machines
    disks: DiskFiles
    root: Path
    stop_grace: float = STOP_GRACE_SECONDS  # how long a guest may take to shut down before it is killed
    provisioning_timeout: float = 600.0  # how long a create waits for a generalized guest to provision

    @classmethod
    def at(cls, home: Path, engine, accel: str | None = None, stop_grace: float = STOP_GRACE_SECONDS,
           provisioning_timeout: float = 600.0) -> "Compute":
        root = home / "compute"
        return cls(Machines(root / "machines", accel=accel), DiskFiles(root, engine), root, stop_grace,
                   provisioning_timeout)


def compute_of(ctx: JobContext) -> Compute:
    if ctx.compute is None:
        raise RuntimeError("this server runs no virtual machines (no compute host configured)")
    return ctx.compute


# ---- create -----------------------------------------------------------------------------------------

def create(ctx: JobContext, vm: Resource) -> None:
    """Give the VM's new disks their content, then boot it."""
    for lun, disk_id in vm_rules.attached_disk_ids(vm):
        with ctx.sql.read() as tx:
            disk = tx.get(disk_id)
        if disk is None:
            raise LookupError(f"disk {disk_id} of {vm.id} disappeared")
        if disk.provisioning_state == CREATING:
            _give_content(ctx, disk, lun)
            with ctx.sql.write() as tx:
                current = tx.get(disk_id)
                current.provisioning_state = SUCCEEDED
                tx.save(current)
        ctx.heartbeat()
    boot(ctx, vm)
    if vm.properties.get("osProfile"):
        _wait_provisioned(ctx, vm)


class ProvisioningTimedOut(Exception):
    code = "OSProvisioningTimedOut"


def _wait_provisioned(ctx: JobContext, vm: Resource) -> None:
    """As Azure's create ends when the guest has provisioned itself: wait for the guest agent to
    answer and systemd's boot (Galley's provisioning agent or cloud-init included) to end."""
    compute = compute_of(ctx)
    timeout = compute.provisioning_timeout
    if timeout <= 0:
        return
    started = time.monotonic()
    key = machine_key(vm)
    if not while_alive(ctx, compute.machines.wait_guest_agent, key, timeout=timeout):
        raise ProvisioningTimedOut(
            f"VM '{vm.name}' did not finish provisioning within {timeout:g} s: its guest agent (qemu-guest-agent) "
            "never answered. The VM is running; see its serial log (az vm boot-diagnostics get-boot-log).")
    left = max(10.0, timeout - (time.monotonic() - started))
    try:
        while_alive(ctx, compute.machines.run_command, key, BOOTED, timeout=left)
    except (GuestAgentUnavailable, CommandTimeout) as error:
        raise ProvisioningTimedOut(f"VM '{vm.name}' did not finish booting: {error}") from None


def _give_content(ctx: JobContext, disk: Resource, lun: int) -> None:
    repo = ctx.content.repo
    if OS_LUN in repo.disk_contents(disk.key):
        return  # a retried create: this disk got its content before the crash
    home = ctx.locations.home_store(disk.location)
    creation = disk.properties["creationData"]
    attach = (disk.key, OS_LUN)
    if creation["createOption"] == "Empty":
        ctx.content.empty_content(disk.properties["diskSizeBytes"], home, attach)
        return
    source_key, source_lun = _image_content(creation, lun)
    contents = repo.disk_contents(source_key)
    if source_lun not in contents:
        raise LookupError(f"the image {source_key} holds no disk at LUN {source_lun}")
    content_id = copy_into(ctx, contents[source_lun], home, attach, disk.subscription_id)
    if disk.properties["diskSizeBytes"] > repo.content(content_id)["virtual_size"]:
        repo.resize(content_id, disk.properties["diskSizeBytes"])
    else:  # the image's exact size (a disk rounded up to whole GB is no smaller)
        with ctx.sql.write() as tx:
            current = tx.get(disk.id)
            current.properties["diskSizeBytes"] = repo.content(content_id)["virtual_size"]
            tx.save(current)


def _image_content(creation: dict, lun: int) -> tuple[str, int]:
    """(content key, LUN) of the image disk a VM's disk is made from."""
    reference = creation.get("galleryImageReference") or creation.get("imageReference") or {}
    source_id = reference["id"]
    source_lun = OS_LUN if lun == OS_LUN else reference.get("lun", lun)
    platform = platform_images.parse_version_id(source_id)
    if platform is not None:
        return platform_images.content_key(*platform), OS_LUN
    return key_of(source_id), source_lun


# ---- power ---------------------------------------------------------------------------------------------

def boot(ctx: JobContext, vm: Resource) -> None:
    compute = compute_of(ctx)
    repo = ctx.content.repo
    specs = []
    for lun, disk in disks_of(ctx, vm):
        content_id = repo.disk_contents(disk.key).get(OS_LUN)
        if content_id is None:
            raise LookupError(f"disk {disk.id} holds no content")
        path = compute.disks.open(disk_file_key(disk), content_id, repo.placements(content_id))
        specs.append(DiskSpec(path=path, lun=None if lun == OS_LUN else lun))
    size = vm_size(vm.properties["hardwareProfile"]["vmSize"])
    generation = vm.properties.get(vm_rules.GENERATION, "V1")
    spec = MachineSpec(key=machine_key(vm), name=vm.name, vcpus=size.vcpus, memory_mib=size.memory_mib,
                       firmware="uefi" if generation == "V2" else "bios", disks=tuple(specs),
                       seed=_seed(compute, vm))
    compute.machines.start(spec)
    _set_power(ctx, vm.id, vm_rules.RUNNING)


def _seed(compute: Compute, vm: Resource) -> Path | None:
    """The VM's NoCloud seed, made on first boot: only VMs from generalized images have one."""
    profile = vm.properties.get("osProfile")
    if not profile:
        return None
    path = compute.root / "seeds" / f"{machine_key(vm)}.img"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    provisioning = vm.properties.get(vm_rules.PROVISIONING) or {}
    custom = provisioning.get("customData")
    keys = [key["keyData"] for key in profile.get("linuxConfiguration", {}).get("ssh", {}).get("publicKeys", [])]
    partial = path.with_suffix(".partial")
    seed.make_seed(partial, instance_id=vm.properties["vmId"], hostname=profile["computerName"],
                   admin_username=profile["adminUsername"], ssh_public_keys=keys,
                   password_hash=provisioning.get("passwordHash"),
                   custom_data=base64.b64decode(custom) if custom else None)
    partial.rename(path)
    return path


def handle(ctx: JobContext, operation: Operation) -> None:
    """The VM worker's handler: a VM's create, update and delete (the common path, which calls
    `create` and `tear_down`), and its power operations and run-commands."""
    from .handlers import finish  # handlers imports this module
    if operation.action in ("create", "update", "delete"):
        finish(ctx, operation)
    else:
        power(ctx, operation)


def power(ctx: JobContext, operation: Operation) -> None:
    """Start, powerOff, restart, deallocate, runCommand."""
    with ctx.sql.read() as tx:
        vm = tx.get(operation.resource_id)
    if vm is None:
        raise LookupError(f"{operation.resource_id} no longer exists")
    if operation.action == "runCommand":
        _run_command(ctx, vm, operation)
        return
    try:
        if operation.action == "start":
            boot(ctx, vm)
        elif operation.action == "restart":
            compute_of(ctx).machines.reboot(machine_key(vm))
            _set_power(ctx, vm.id, vm_rules.RUNNING)
        else:
            skip = bool((operation.payload or {}).get("skipShutdown"))
            stop(ctx, vm, deallocate=operation.action == "deallocate", grace=0.0 if skip else compute_of(ctx).stop_grace)
    except Exception:
        running = compute_of(ctx).machines.state(machine_key(vm)) is not None
        _set_power(ctx, vm.id, vm_rules.RUNNING if running else vm_rules.STOPPED)
        raise


def stop(ctx: JobContext, vm: Resource, *, deallocate: bool, grace: float) -> None:
    """Power the machine off (ACPI, then killed after `grace`), capture its disks' writes into their
    content; deallocating also frees the disks' files."""
    compute = compute_of(ctx)
    while_alive(ctx, compute.machines.stop, machine_key(vm), grace=grace)
    capture_disks(ctx, vm)
    if deallocate:
        for _lun, disk in disks_of(ctx, vm):
            if disk is not None:
                compute.disks.drop(disk_file_key(disk))
    _set_power(ctx, vm.id, vm_rules.DEALLOCATED if deallocate else vm_rules.STOPPED)


def capture_disks(ctx: JobContext, vm: Resource) -> None:
    compute = compute_of(ctx)
    for _lun, disk in disks_of(ctx, vm):
        if disk is None or not compute.disks.has(disk_file_key(disk)):
            continue
        home = ctx.locations.home_store(disk.location)
        while_alive(ctx, _capture_when_released, compute, disk_file_key(disk), home, (disk.key, OS_LUN))


def _capture_when_released(compute: Compute, disk_key: str, store: str, attach: tuple[str, int]) -> str:
    """Capture a disk file once QEMU's lock on it is gone: a killed QEMU may take a moment to
    release its files after it stopped being listed as running."""
    deadline = time.monotonic() + CAPTURE_LOCK_WAIT
    while True:
        try:
            return compute.disks.capture(disk_key, store, attach)
        except DiskFileError as error:
            if "in use" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def while_alive(ctx: JobContext, work, *args, **kwargs):
    """Run `work` and keep the operation's lease renewed while it runs (a guest's shutdown or a
    run-command can take minutes; a lapsed lease would let another worker run it a second time)."""
    outcome: dict = {}

    def run() -> None:
        try:
            outcome["value"] = work(*args, **kwargs)
        except BaseException as error:  # noqa: BLE001 - re-raised in the caller's thread
            outcome["error"] = error

    thread = threading.Thread(target=run, name="galley-vm-work", daemon=True)
    thread.start()
    while thread.is_alive():
        thread.join(1.0)
        ctx.heartbeat()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")


def _run_command(ctx: JobContext, vm: Resource, operation: Operation) -> None:
    payload = operation.payload or {}
    # Like Azure's agent, run only once the guest has booted: systemd's boot (provisioning included)
    # is waited for, within bounds; guests without systemd go on at once.
    prelude = BOOTED + "".join(f"{name}={shlex.quote(value)}\nexport {name}\n"
                               for name, value in payload.get("parameters", []))
    machines = compute_of(ctx).machines
    key = machine_key(vm)
    if not while_alive(ctx, machines.wait_guest_agent, key, timeout=180):
        operation.result = run_command_result(None, "", "", "the guest agent (qemu-guest-agent) did not answer: "
                                              "the guest may still be booting, or its image has no agent")
        return
    try:
        result = while_alive(ctx, machines.run_command, key, prelude + payload.get("script", ""),
                             timeout=float(payload.get("timeout", RUN_COMMAND_SECONDS)))
    except (GuestAgentUnavailable, CommandTimeout) as error:
        operation.result = run_command_result(None, "", "", str(error))
        return
    operation.result = run_command_result(result.exit_code, result.stdout, result.stderr)


def _set_power(ctx: JobContext, vm_id: str, state: str) -> None:
    with ctx.sql.write() as tx:
        current = tx.get(vm_id)
        if current is not None:
            current.properties[vm_rules.POWER] = state
            tx.save(current)


# ---- delete ------------------------------------------------------------------------------------------

def tear_down(ctx: JobContext, vm: Resource, *, deleting_disks: set[str]) -> list[Resource]:
    """Before a VM's record goes: stop its machine, and per each disk's deleteOption either free it
    (Detach: its content is what the guest last wrote) or return it for deletion with the VM.
    `deleting_disks`: keys of disks deleted anyway (a resource group's)."""
    compute = ctx.compute
    if compute is not None:
        while_alive(ctx, compute.machines.stop, machine_key(vm), grace=DELETE_GRACE_SECONDS)
    storage = vm.properties["storageProfile"]
    options = {storage["osDisk"]["managedDisk"]["id"].lower(): storage["osDisk"].get("deleteOption", "Detach")}
    options.update({d["managedDisk"]["id"].lower(): d.get("deleteOption", "Detach") for d in storage.get("dataDisks", [])})
    doomed = []
    for disk_key, option in options.items():
        with ctx.sql.read() as tx:
            disk = tx.get(disk_key)
        if disk is None:
            continue
        if option == "Delete" or disk_key in deleting_disks or disk.provisioning_state in (CREATING, FAILED):
            doomed.append(disk)
        elif compute is not None and compute.disks.has(disk_file_key(disk)):
            while_alive(ctx, _capture_when_released, compute, disk_file_key(disk),
                        ctx.locations.home_store(disk.location), (disk.key, OS_LUN))
        if compute is not None:
            compute.disks.drop(disk_file_key(disk))
        if disk not in doomed:
            with ctx.sql.write() as tx:
                current = tx.get(disk.id)
                current.properties.pop("managedBy", None)
                current.properties["diskState"] = "Unattached"
                tx.save(current)
    if compute is not None:
        compute.machines.forget(machine_key(vm))
        (compute.root / "seeds" / f"{machine_key(vm)}.img").unlink(missing_ok=True)
    return doomed


# ---- a server's start and stop ------------------------------------------------------------------------

def reconcile(ctx: JobContext) -> dict:
    """After a start (a restart, or a crash of the previous server): machines still running are
    adopted, machines whose VM is gone are killed, VMs that should run and do not are queued to start."""
    compute = compute_of(ctx)
    live = compute.machines.running()
    with ctx.sql.read() as tx:
        vms = tx.all_of_type(vm_rules.TYPE)
    keys = {machine_key(vm): vm for vm in vms}
    killed = [key for key in live if key not in keys]
    for key in killed:
        compute.machines.forget(key)
    restarted = []
    with ctx.sql.write() as tx:
        for vm in vms:
            state = vm.properties.get(vm_rules.POWER)
            if vm.provisioning_state != SUCCEEDED or machine_key(vm) in live:
                continue
            if state in (vm_rules.RUNNING, vm_rules.STARTING) and not tx.open_operations(vm.id, "start"):
                current = tx.get(vm.id)
                current.properties[vm_rules.POWER] = vm_rules.STARTING
                tx.save(current)
                tx.add_operation(Operation(resource_id=vm.id, resource_type=vm.type, action="start",
                                           region=vm.location, subscription_id=vm.subscription_id))
                restarted.append(vm.name)
    return {"adopted": sorted(set(live) - set(killed)), "killed": killed, "restarted": restarted}


def shut_down(compute: Compute) -> None:
    """Stop every machine of this host (in parallel, ACPI then killed after the stop grace, at most
    30 s: a service manager does not wait for ever); their VMs keep their power state, so the next
    start boots them again."""
    grace = min(compute.stop_grace, 30.0)
    threads = [threading.Thread(target=compute.machines.stop, args=(key, grace), daemon=True)
               for key in compute.machines.running()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(grace + 10)


# ---- names ---------------------------------------------------------------------------------------------

def disks_of(ctx: JobContext, vm: Resource) -> list[tuple[int, Resource | None]]:
    """(LUN, disk record or None if it is gone) of each of the VM's disks, the OS disk (LUN -1) first."""
    with ctx.sql.read() as tx:
        return [(lun, tx.get(disk_id)) for lun, disk_id in vm_rules.attached_disk_ids(vm)]


def machine_key(vm: Resource) -> str:
    return vm.properties["vmId"]


def disk_file_key(disk: Resource) -> str:
    return disk.properties["uniqueId"]




