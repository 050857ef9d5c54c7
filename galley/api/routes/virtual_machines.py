"""A VM's actions and views beside its CRUD (resources.py): start, powerOff, restart, deallocate,
generalize, runCommand, instanceView, boot diagnostics; and the region's VM sizes and usages."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from pathlib import Path
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from ...domain import virtual_machine as vm_rules, vm_service, vm_sizes
from ...domain.errors import ArmError
from ...domain.ids import VIRTUAL_MACHINE_TYPE
from ...domain.regions import normalize_region
from ...identity.secrets import same_text
from .. import answers
from ..api_versions import compute_api
from ..wire import json_body, json_response, render
from .resources import COMPUTE, SUB

router = APIRouter(tags=["VirtualMachines"])
VM = COMPUTE + "/virtualmachines/{vmName}"
LOCATION = SUB + "/providers/microsoft.compute/locations/{location}"
DIAGNOSTICS_PATH = "/galley/boot-diagnostics"
DIAGNOSTICS_SECONDS = 120 * 60
POWER_STATUS = 202  # Azure answers power operations 202 + Azure-AsyncOperation (200 when already done)


def vm_id(subscriptionId: str, resourceGroupName: str, vmName: str) -> str:
    return f"/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/Microsoft.Compute/" \
           f"virtualMachines/{vmName}"


def vms_of(request: Request) -> vm_service.VmService:
    return request.app.state.vm_service


def render_vm(request: Request, vm, expand: str | None) -> dict:
    body = render(vm)
    if expand is not None:
        if expand.lower() not in ("instanceview", "userdata"):
            raise ArmError(f"$expand value '{expand}' is not supported; use instanceView.", code="InvalidParameter",
                           target="$expand")
        if expand.lower() == "instanceview":
            body["properties"]["instanceView"] = instance_view(request, vm)
    return body


def instance_view(request: Request, vm) -> dict:
    state = request.app.state
    machine = state.compute.machines.state(vm.properties["vmId"])
    with state.store.read() as tx:
        queued = bool(tx.open_operations(vm.id, "start"))
        disks = [d for d in (tx.get(disk_id) for _lun, disk_id in vm_rules.attached_disk_ids(vm)) if d is not None]
    return vm_service.instance_view(vm, running=machine is not None, ssh_port=machine.ssh_port if machine else None,
                                    queued=queued, disks=disks)


def _wait(request: Request, accepted) -> bool:
    """Whether the action ended (succeeded) within the quick-answer budget."""
    return accepted.operation is None or answers.finished_in_time(request, accepted.operation)


def _power(action: str):
    def handler(request: Request, subscriptionId: str, resourceGroupName: str, vmName: str,
                api_version: str = Depends(compute_api),
                skipShutdown: bool = Query(False, description="powerOff: cut the power without the guest's "
                                                            "shutdown")) -> Response:
        accepted = vms_of(request).begin(vm_id(subscriptionId, resourceGroupName, vmName), action,
                                         skip_shutdown=skipShutdown)
        if _wait(request, accepted):
            return Response(status_code=200)
        return answers.accepted(request, None, accepted.operation, api_version, POWER_STATUS)
    handler.__name__ = f"vm_{action}"
    return handler


for _action, _word in (("start", "start"), ("powerOff", "poweroff"), ("restart", "restart"),
                       ("deallocate", "deallocate")):
    router.add_api_route(f"{VM}/{_word}", _power(_action), methods=["POST"],
                         operation_id=f"VirtualMachines_{_action[0].upper()}{_action[1:]}")


@router.post(VM + "/generalize", operation_id="VirtualMachines_Generalize")
def generalize(request: Request, subscriptionId: str, resourceGroupName: str, vmName: str,
               api_version: str = Depends(compute_api)) -> Response:
    vms_of(request).generalize(vm_id(subscriptionId, resourceGroupName, vmName))
    return Response(status_code=200)


@router.post(VM + "/runcommand", operation_id="VirtualMachines_RunCommand")
async def run_command(request: Request, subscriptionId: str, resourceGroupName: str, vmName: str,
                      api_version: str = Depends(compute_api)) -> Response:
    body = await json_body(request)
    accepted = vms_of(request).run_command(vm_id(subscriptionId, resourceGroupName, vmName), body)
    return answers.accepted(request, None, accepted.operation, api_version, 202)


@router.get(VM + "/instanceview", operation_id="VirtualMachines_InstanceView")
def get_instance_view(request: Request, subscriptionId: str, resourceGroupName: str, vmName: str,
                      api_version: str = Depends(compute_api)) -> Response:
    vm = vms_of(request).get(vm_id(subscriptionId, resourceGroupName, vmName))
    return json_response(instance_view(request, vm))


@router.post(VM + "/retrievebootdiagnosticsdata", operation_id="VirtualMachines_RetrieveBootDiagnosticsData")
def retrieve_boot_diagnostics(request: Request, subscriptionId: str, resourceGroupName: str, vmName: str,
                              api_version: str = Depends(compute_api),
                              minutes: int = Query(DIAGNOSTICS_SECONDS // 60, alias="sasUriExpirationTimeInMinutes",
                                                   ge=1, le=1440)) -> Response:
    """Like Azure's managed boot diagnostics: a URL that reads the serial console log for a while,
    signed (HMAC) so that a plain HTTP client (az uses `requests.get`) needs no token."""
    vm = vms_of(request).get(vm_id(subscriptionId, resourceGroupName, vmName))
    expiry = int(time.time()) + minutes * 60
    machine = vm.properties["vmId"]
    query = urlencode({"se": expiry, "sig": _diagnostics_signature(request, machine, expiry)})
    base = str(request.base_url).rstrip("/")
    return json_response({"consoleScreenshotBlobUri": None,
                          "serialConsoleLogBlobUri": f"{base}{DIAGNOSTICS_PATH}/{quote(machine)}/serial.log?{query}"})


@router.get(DIAGNOSTICS_PATH + "/{machine}/serial.log", operation_id="Galley_BootDiagnosticsSerialLog",
            tags=["Galley"])
def serial_log(request: Request, machine: str, se: int = Query(...), sig: str = Query(...)) -> Response:
    if se < time.time() or not same_text(sig, _diagnostics_signature(request, machine, se)):
        raise ArmError("The boot diagnostics URL is invalid or has expired; ask for a new one "
                       "(az vm boot-diagnostics get-boot-log).", code="AuthenticationFailed", status=403)
    text = request.app.state.compute.machines.serial_log(machine)
    return Response(text, media_type="text/plain; charset=utf-8")


def _diagnostics_signature(request: Request, machine: str, expiry: int) -> str:
    key = _diagnostics_key(request.app.state.settings.home)
    return hmac.new(key, f"{machine}\n{expiry}".encode(), hashlib.sha256).hexdigest()


def _diagnostics_key(home: Path) -> bytes:
    path = home / "compute" / "diagnostics.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        partial.write_bytes(secrets.token_bytes(32))
        partial.chmod(0o600)
        partial.replace(path)
    return path.read_bytes()


# ---- the region's sizes and usages -----------------------------------------------------------------------

@router.get(LOCATION + "/vmsizes", operation_id="VirtualMachineSizes_List")
def list_sizes(request: Request, subscriptionId: str, location: str,
               api_version: str = Depends(compute_api)) -> Response:
    normalize_region(location, request.app.state.settings.region_set, "location")
    return json_response({"value": [{
        "name": size.name, "numberOfCores": size.vcpus, "memoryInMB": size.memory_mib,
        "maxDataDiskCount": min(64, 2 * size.vcpus + 2), "osDiskSizeInMB": 1_047_552,
        "resourceDiskSizeInMB": 0,
    } for size in sorted(vm_sizes.SIZES.values(), key=lambda s: (s.vcpus, s.memory_mib, s.name))]})


@router.get(LOCATION + "/usages", operation_id="Usage_List")
def list_usages(request: Request, subscriptionId: str, location: str,
                api_version: str = Depends(compute_api)) -> Response:
    state = request.app.state
    region = normalize_region(location, state.settings.region_set, "location")
    with state.store.read() as tx:
        vms = [vm for vm in tx.all_of_type(VIRTUAL_MACHINE_TYPE)
               if vm.subscription_id == subscriptionId.lower() and vm.location == region]
    counted = [vm for vm in vms if vm.properties.get(vm_rules.POWER) != vm_rules.DEALLOCATED]
    families: dict[str, int] = {}
    for vm in counted:
        family = _family(vm_rules.vm_size_of(vm).name)
        families[family] = families.get(family, 0) + vm_rules.vm_size_of(vm).vcpus
    limit = state.settings.limits.regional_vcpus
    usage = [
        _usage("cores", "Total Regional vCPUs", sum(vm_rules.vm_size_of(vm).vcpus for vm in counted), limit),
        _usage("virtualMachines", "Virtual Machines", len(vms), 25_000),
    ] + [_usage(name, name, used, limit) for name, used in sorted(families.items())]
    return json_response({"value": usage})


def _family(size_name: str) -> str:
    """Azure's quota family of a size, roughly: standardBSFamily, standardDSv3Family, …"""
    core = size_name.split("_", 1)[1] if "_" in size_name else size_name
    letters = "".join(ch for ch in core.split("_")[0] if ch.isalpha()).upper()
    version = core.split("_")[1] if "_" in core else ""
    return f"standard{letters}{version}Family"


def _usage(name: str, display: str, current: int, limit: int) -> dict:
    return {"unit": "Count", "currentValue": current, "limit": limit,
            "name": {"value": name, "localizedValue": display}}



