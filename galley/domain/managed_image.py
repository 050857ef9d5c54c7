"""Managed images (Microsoft.Compute/images): an OS disk and data disks captured from disks or snapshots."""

from __future__ import annotations

from . import enums, fields, limits, sources, virtual_machine
from .errors import InvalidParameter
from .ids import DISK_TYPE, MANAGED_IMAGE_TYPE, SNAPSHOT_TYPE, VIRTUAL_MACHINE_TYPE
from .names import check_compute_resource_name
from .ports import Context
from .resource import Resource

TYPE = MANAGED_IMAGE_TYPE
KIND = "managed image"
UPDATABLE: frozenset[str] = frozenset()
READ_ONLY = frozenset({"provisioningState"})


def check_name(name: str) -> None:
    check_compute_resource_name(name, "imageName")


def normalize(ctx: Context, resource: Resource, props: dict, existing: Resource | None) -> dict:
    source_vm = _source_virtual_machine(ctx, resource, props)
    storage = fields.obj(props, "storageProfile", "properties.storageProfile", required=source_vm is None)
    if source_vm is not None:
        storage = _captured_storage(source_vm, storage or {})
    os_disk = _disk(ctx, resource, fields.obj(storage, "osDisk", "properties.storageProfile.osDisk",
                                              required=True),
                    "properties.storageProfile.osDisk", os_disk=True)
    data_disks, luns = [], set()
    for i, raw in enumerate(fields.array(storage, "dataDisks", "properties.storageProfile.dataDisks",
                                         max_items=limits.MAX_DATA_DISKS) or []):
        target = f"properties.storageProfile.dataDisks[{i}]"
        if not isinstance(raw, dict):
            raise InvalidParameter(f"{target} must be an object.", target=target)
        disk = _disk(ctx, resource, raw, target, os_disk=False)
        if disk["lun"] in luns:
            raise InvalidParameter(f"LUN {disk['lun']} is used by more than one data disk.",
                                   target=f"{target}.lun")
        luns.add(disk["lun"])
        data_disks.append(disk)
    return fields.drop_nones({
        "sourceVirtualMachine": {"id": source_vm.id} if source_vm is not None else None,
        "storageProfile": fields.drop_nones({
            "osDisk": os_disk, "dataDisks": data_disks,
            "zoneResilient": fields.boolean(storage, "zoneResilient",
                                            "properties.storageProfile.zoneResilient") or False,
        }),
        "hyperVGeneration": enums.normalize(props.get("hyperVGeneration"), enums.HYPERV_GENERATIONS,
                                            "properties.hyperVGeneration",
                                            default=source_vm.properties.get(virtual_machine.GENERATION, "V1")
                                            if source_vm is not None else "V1"),
    })


def _source_virtual_machine(ctx: Context, resource: Resource, props: dict) -> Resource | None:
    """The VM an image is captured from (`az image create --source <vm>`): it must be generalized
    and deallocated or stopped, in the image's region."""
    ref = fields.obj(props, "sourceVirtualMachine", "properties.sourceVirtualMachine")
    if not ref:
        return None
    target = "properties.sourceVirtualMachine.id"
    vm = sources.resolve(ctx.tx, ref.get("id"), target, (VIRTUAL_MACHINE_TYPE,))
    if vm.location != resource.location:
        raise InvalidParameter(f"VM '{vm.id}' is in {vm.location}; a managed image must be in the same region as "
                               f"its source ({resource.location}).", target=target)
    virtual_machine.check_capturable(vm, generalized=True, target=target)
    return vm


def _captured_storage(vm: Resource, asked: dict) -> dict:
    """The image's disks are the VM's: its OS disk (generalized) and every data disk at its LUN (a
    "VM image" in seed 000's words). storageProfile.dataDisks: [] keeps the OS disk only (an "OS image")."""
    disks = virtual_machine.attached_disk_ids(vm)
    os_disk = vm.properties["storageProfile"]["osDisk"]
    data = [{"lun": lun, "managedDisk": {"id": disk_id}} for lun, disk_id in disks[1:]]
    if isinstance(asked.get("dataDisks"), list) and not asked["dataDisks"]:
        data = []
    return {"osDisk": {"osType": os_disk["osType"], "osState": "Generalized", "managedDisk": {"id": disks[0][1]}},
            "dataDisks": data, "zoneResilient": asked.get("zoneResilient", False)}


def _disk(ctx: Context, resource: Resource, raw: dict, target: str, *, os_disk: bool) -> dict:
    entry: dict = {}
    if os_disk:
        entry["osType"] = enums.normalize(raw.get("osType"), enums.OS_TYPES, f"{target}.osType",
                                          required=True)
        entry["osState"] = enums.normalize(raw.get("osState"), enums.OS_STATES, f"{target}.osState",
                                           default="Generalized")
    else:
        lun = fields.integer(raw, "lun", f"{target}.lun", minimum=0, maximum=63)
        if lun is None:
            raise InvalidParameter(f"Required parameter 'lun' is missing in {target}.", target=f"{target}.lun")
        entry["lun"] = lun
    origin = None
    for field_name, allowed in (("snapshot", (SNAPSHOT_TYPE,)), ("managedDisk", (DISK_TYPE,))):
        ref = fields.obj(raw, field_name, f"{target}.{field_name}")
        if ref and ref.get("id"):
            if origin is not None:
                raise InvalidParameter(f"{target} gives more than one source.", target=target)
            origin = sources.resolve(ctx.tx, ref["id"], f"{target}.{field_name}.id", allowed)
            if origin.location != resource.location:
                raise InvalidParameter(
                    f"The source '{origin.id}' is in {origin.location}; a managed image must be in the "
                    f"same region as its sources ({resource.location}).", target=f"{target}.{field_name}.id")
            entry[field_name] = {"id": origin.id}
    blob = raw.get("blobUri")
    if blob is not None:
        if origin is not None:
            raise InvalidParameter(f"{target} gives more than one source.", target=target)
        account = sources.resolve_blob(ctx.tx, blob, f"{target}.blobUri")
        if account.location != resource.location:
            raise InvalidParameter(
                f"The blob's storage account is in {account.location}; a managed image must be in the "
                f"same region as its sources ({resource.location}).", target=f"{target}.blobUri")
        entry["blobUri"] = blob
    elif origin is None:
        raise InvalidParameter(f"{target} needs a source: snapshot.id, managedDisk.id or blobUri.",
                               target=target)
    size = fields.integer(raw, "diskSizeGB", f"{target}.diskSizeGB", minimum=1, maximum=32_767)
    entry["diskSizeGB"] = size or (sources.size_gb_of(origin) if origin is not None else None)
    entry["caching"] = enums.normalize(raw.get("caching"), enums.HOST_CACHING, f"{target}.caching",
                                       default="ReadWrite" if os_disk else "None")
    if raw.get("storageAccountType") is not None:
        entry["storageAccountType"] = enums.normalize(raw["storageAccountType"], enums.DISK_SKUS,
                                                      f"{target}.storageAccountType")
    return fields.drop_nones(entry)
