"""A VM's actions beside create/update/delete: power operations, generalize, run-command, and
what its instance view reports. Each action checks the VM's state, records the transition and
queues the work (jobs/vm_work.py), in one transaction, like ResourceService does for resources."""

from __future__ import annotations

from . import fields, limits, virtual_machine as vm_rules
from .errors import Conflict, InvalidParameter, OperationNotAllowed
from .ports import Context
from .resource import Operation, Resource
from .service import Accepted, ResourceService

RUN_SHELL_SCRIPT = "RunShellScript"
MAX_SCRIPT_BYTES = 256 * 1024
MAX_RUN_SECONDS = 90 * 60  # Azure's run-command limit


class VmService:
    def __init__(self, resources: ResourceService) -> None:
        self.resources = resources

    def get(self, vm_id: str) -> Resource:
        return self.resources.get(vm_id, vm_rules.TYPE)

    def begin(self, vm_id: str, action: str, *, skip_shutdown: bool = False) -> Accepted:
        """Queue a power operation (start, powerOff, restart, deallocate); `skip_shutdown` (powerOff)
        cuts the power at once instead of asking the guest to shut down."""
        with self.resources._writing() as tx:
            vm = self._vm(tx, vm_id)
            if action == "deallocate" and vm.properties.get(vm_rules.POWER) == vm_rules.DEALLOCATED:
                return Accepted(vm, None, created=False)  # already there: Azure answers at once too
            vm_rules.check_action(vm, action)
            if action == "start":
                for _lun, disk_id in vm_rules.attached_disk_ids(vm):
                    building = tx.versions_building_from(disk_id)
                    if building:
                        raise Conflict(
                            f"Image version '{building[0].id}' is being created from this VM's disks; start "
                            "the VM once that creation ends.", target=vm.id, code="OperationNotAllowed")
                vm_rules.check_capacity(Context(tx, self.resources.settings), vm, vm_rules.vm_size_of(vm),
                                        exclude=vm.key)
            vm.properties[vm_rules.POWER] = vm_rules.transitional_state(action)
            tx.save(vm)
            operation = _operation(vm, action)
            if skip_shutdown and action == "powerOff":
                operation.payload = {"skipShutdown": True}
            tx.add_operation(operation)
            return Accepted(vm, operation, created=False)

    def generalize(self, vm_id: str) -> Resource:
        """Mark the VM generalized: its guest was deprovisioned, and it may be captured as a
        generalized image. It cannot be started again (as in Azure)."""
        with self.resources._writing() as tx:
            vm = self._vm(tx, vm_id)
            vm_rules.check_generalize(vm)
            vm.properties[vm_rules.GENERALIZED] = True
            tx.save(vm)
            return vm

    def run_command(self, vm_id: str, body: dict) -> Accepted:
        command = fields.string(body, "commandId", "commandId", required=True)
        if command.lower() != RUN_SHELL_SCRIPT.lower():
            raise InvalidParameter(f"commandId '{command}' is not supported: Galley runs Linux guests, use "
                                   f"{RUN_SHELL_SCRIPT}.", target="commandId")
        lines = fields.array(body, "script", "script", max_items=10_000) or []
        if not lines or not all(isinstance(line, str) for line in lines):
            raise InvalidParameter("script must be a non-empty list of lines (strings).", target="script")
        script = "\n".join(lines) + "\n"
        if len(script.encode()) > MAX_SCRIPT_BYTES:
            raise InvalidParameter(f"The script is longer than {MAX_SCRIPT_BYTES:,} bytes.", target="script")
        parameters = []
        for i, item in enumerate(fields.array(body, "parameters", "parameters") or []):
            target = f"parameters[{i}]"
            if not isinstance(item, dict):
                raise InvalidParameter(f"{target} must be an object with name and value.", target=target)
            name = fields.string(item, "name", f"{target}.name", required=True)
            if not name.isidentifier() or not name.isascii():
                raise InvalidParameter(f"{target}.name '{name}' is not a shell variable name.", target=f"{target}.name")
            parameters.append((name, fields.string(item, "value", f"{target}.value") or ""))
        limits.check_storable({"script": script})
        with self.resources._writing() as tx:
            vm = self._vm(tx, vm_id)
            if vm.properties.get(vm_rules.POWER) != vm_rules.RUNNING:
                raise OperationNotAllowed(
                    f"Run command is possible only on a running VM; '{vm.name}' is "
                    f"{vm.properties.get(vm_rules.POWER)}.", target=vm.id, code="OperationNotAllowed")
            operation = _operation(vm, "runCommand")
            operation.payload = {"script": script, "parameters": parameters}
            tx.add_operation(operation)
            return Accepted(vm, operation, created=False)

    def _vm(self, tx, vm_id: str) -> Resource:
        vm = tx.get(vm_id)
        if vm is None or vm.type != vm_rules.TYPE:
            raise self.resources._not_found(vm_id, vm_rules.TYPE)
        return vm


def _operation(vm: Resource, action: str) -> Operation:
    return Operation(resource_id=vm.id, resource_type=vm.type, action=action, region=vm.location,
                     subscription_id=vm.subscription_id)


def run_command_result(exit_code: int | None, stdout: str, stderr: str, error: str | None = None) -> dict:
    """The RunCommandResult body Azure returns for RunShellScript: one status whose message holds
    the output, as `az vm run-command invoke` prints it."""
    message = f"Enable succeeded: \n[stdout]\n{stdout}\n[stderr]\n{stderr}\n"
    if error is not None:
        message = f"Enable failed: {error}\n[stdout]\n{stdout}\n[stderr]\n{stderr}\n"
    return {"value": [{
        "code": "ProvisioningState/succeeded" if error is None else "ProvisioningState/failed",
        "level": "Info" if error is None else "Error",
        "displayStatus": "Provisioning succeeded" if error is None else "Provisioning failed",
        "message": message,
        "exitCode": exit_code,
    }]}


def instance_view(vm: Resource, *, running: bool, ssh_port: int | None, queued: bool,
                  disks: list[Resource], computer_name: str | None = None) -> dict:
    """The VM's instance view. The power state reported is the machine's, not only what was asked:
    a VM recorded as running whose QEMU process is gone (and that is not being restarted) is
    reported stopped."""
    recorded = vm.properties.get(vm_rules.POWER)
    state = recorded
    if recorded == vm_rules.RUNNING and not running and not queued:
        state = vm_rules.STOPPED
    elif recorded in (vm_rules.STOPPED, vm_rules.DEALLOCATED) and running:
        state = vm_rules.RUNNING
    provisioning = vm.provisioning_state
    statuses = [{
        "code": f"ProvisioningState/{provisioning.lower()}",
        "level": "Info" if provisioning != "Failed" else "Error",
        "displayStatus": f"Provisioning {provisioning.lower()}",
    }]
    if state:
        statuses.append({"code": f"PowerState/{state}", "level": "Info",
                         "displayStatus": vm_rules.POWER_DISPLAY[state]})
    for warning in vm.properties.get(vm_rules.WARNINGS) or []:
        statuses.append({"code": "Galley/ImageDeprecated", "level": "Warning", "displayStatus": "Image deprecated",
                         "message": warning})
    if ssh_port and state == vm_rules.RUNNING:
        statuses.append({"code": "Galley/SshEndpoint", "level": "Info", "displayStatus": f"127.0.0.1:{ssh_port}",
                         "message": f"SSH to the guest through 127.0.0.1 port {ssh_port} (galley vm ssh)."})
    view = {
        "computerName": computer_name or (vm.properties.get("osProfile") or {}).get("computerName"),
        "osName": None,
        "hyperVGeneration": vm.properties.get(vm_rules.GENERATION, "V1"),
        "disks": [{"name": disk.name, "statuses": [{
            "code": f"ProvisioningState/{disk.provisioning_state.lower()}", "level": "Info",
            "displayStatus": f"Provisioning {disk.provisioning_state.lower()}"}]} for disk in disks],
        "bootDiagnostics": {},
        "statuses": statuses,
    }
    return fields.drop_nones(view)

