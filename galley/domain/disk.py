"""Managed disks and snapshots: the sources a version or image can be made from."""

from __future__ import annotations

import uuid

from . import disk_access, enums, fields, limits, sources
from .errors import Conflict, InvalidParameter
from .ids import DISK_TYPE, IMAGE_VERSION_TYPE, MANAGED_IMAGE_TYPE, SNAPSHOT_TYPE
from .names import check_compute_resource_name
from .ports import Context
from .resource import Resource, iso, utc_now
from .updates import reject_source_change

GIB = 1024 ** 3
MAX_DISK_GB = 32_767


class _DiskLike:
    """Rules shared by disks and snapshots; only the type, SKUs and a few defaults differ."""

    UPDATABLE = frozenset({"diskSizeGB", "diskSizeBytes", "osType", "hyperVGeneration"})
    READ_ONLY = frozenset({"provisioningState", "uniqueId", "timeCreated", "diskState",
                           "diskSizeBytes", "managedBy"})

    def __init__(self, arm_type: str, kind: str, skus: tuple[str, ...], name_target: str) -> None:
        self.TYPE = arm_type
        self.KIND = kind
        self.SKUS = skus
        self._name_target = name_target

    def check_name(self, name: str) -> None:
        check_compute_resource_name(name, self._name_target)

    def normalize_sku(self, body: dict, existing: Resource | None) -> dict:
        sku = fields.obj(body, "sku", "sku")
        if sku is None:
            return existing.sku if existing is not None and existing.sku else {"name": "Standard_LRS"}
        return {"name": enums.normalize(sku.get("name"), self.SKUS, "sku.name", default="Standard_LRS")}

    def normalize(self, ctx: Context, resource: Resource, props: dict, existing: Resource | None) -> dict:
        creation = fields.obj(props, "creationData", "properties.creationData", required=True)
        option = enums.normalize(creation.get("createOption"), enums.DISK_CREATE_OPTIONS,
                                 "properties.creationData.createOption", required=True)
        size = fields.integer(props, "diskSizeGB", "properties.diskSizeGB", minimum=1, maximum=MAX_DISK_GB)
        os_type = enums.normalize(props.get("osType"), enums.OS_TYPES, "properties.osType")
        generation = enums.normalize(props.get("hyperVGeneration"), enums.HYPERV_GENERATIONS,
                                     "properties.hyperVGeneration")
        creation_out = {"createOption": option}
        exact_bytes = None
        if existing is not None:
            creation_out = existing.properties["creationData"]
            reject_source_change(creation_out, creation, "properties.creationData", self.KIND)
        elif option == "Copy":
            origin = sources.resolve(ctx.tx, creation.get("sourceResourceId"),
                                     "properties.creationData.sourceResourceId", (DISK_TYPE, SNAPSHOT_TYPE))
            creation_out["sourceResourceId"] = origin.id
            size = size or origin.properties.get("diskSizeGB")
            exact_bytes = origin.properties.get("diskSizeBytes")
            os_type = os_type or origin.properties.get("osType")
            generation = generation or origin.properties.get("hyperVGeneration")
        elif option == "FromImage":
            ref = (fields.obj(creation, "galleryImageReference", "properties.creationData.galleryImageReference")
                   or fields.obj(creation, "imageReference", "properties.creationData.imageReference") or {})
            named = ref.get("id") or ref.get("sharedGalleryImageId") or ref.get("communityGalleryImageId")
            origin = sources.resolve(ctx.tx, named, "properties.creationData.imageReference.id",
                                     (IMAGE_VERSION_TYPE, MANAGED_IMAGE_TYPE))
            creation_out["imageReference"] = {"id": origin.id}
            size = size or sources.size_gb_of(origin)
            os_type = os_type or sources.os_type_of(ctx.tx, origin)
        elif option == "Import":
            account_id = fields.string(creation, "storageAccountId",
                                       "properties.creationData.storageAccountId") or None
            account, blob_disk_bytes = sources.resolve_blob_disk(ctx.tx, creation.get("sourceUri"),
                                                                 "properties.creationData.sourceUri", account_id,
                                                                 "properties.creationData.storageAccountId")
            if size is None:  # as Azure does: the VHD's own size when none is asked for
                size, exact_bytes = -(-blob_disk_bytes // GIB), blob_disk_bytes
            elif size * GIB < blob_disk_bytes:
                raise InvalidParameter(f"The blob holds a disk of {blob_disk_bytes:,} bytes, more than diskSizeGB "
                                       f"{size}; ask for at least {-(-blob_disk_bytes // GIB)} GB or leave "
                                       "diskSizeGB out.", target="properties.diskSizeGB")
            if account.location != resource.location:
                raise InvalidParameter(f"The blob's storage account is in {account.location}; import it into "
                                       f"a {self.KIND} in the same region.", target="properties.creationData.sourceUri")
            creation_out["sourceUri"] = creation["sourceUri"]
            if account_id:
                creation_out["storageAccountId"] = account_id
        elif option == "Upload":
            upload = fields.integer(creation, "uploadSizeBytes", "properties.creationData.uploadSizeBytes",
                                    minimum=limits.MIN_UPLOAD_SIZE_BYTES, maximum=limits.MAX_UPLOAD_SIZE_BYTES)
            if upload is not None and upload % limits.SECTOR:
                raise InvalidParameter(
                    f"uploadSizeBytes {upload:,} is not a whole number of 512-byte sectors: it is the disk's "
                    "size, a multiple of 512, plus the 512-byte VHD footer.",
                    target="properties.creationData.uploadSizeBytes")
            if upload is None and size is not None:
                upload = size * GIB + limits.SECTOR  # `az snapshot create --for-upload --size-gb N` sends only the size
            if upload is None:
                raise InvalidParameter("createOption Upload needs creationData.uploadSizeBytes (the VHD "
                                       "size including its 512-byte footer) or diskSizeGB.",
                                       target="properties.creationData.uploadSizeBytes")
            creation_out["uploadSizeBytes"] = upload
            size = size or -(-(upload - 512) // GIB)
            exact_bytes = upload - 512
        if size is None:
            raise InvalidParameter(f"A {self.KIND} created with createOption {option} needs "
                                   "properties.diskSizeGB.", target="properties.diskSizeGB")
        if existing is not None and size != existing.properties["diskSizeGB"]:
            disk_access.check_not_in_use(existing, "resized")  # the session's blob has the old size
        if existing is not None and size < existing.properties["diskSizeGB"]:
            raise InvalidParameter(f"A {self.KIND} cannot shrink: it is {existing.properties['diskSizeGB']} GB, "
                                   f"asked for {size} GB.", target="properties.diskSizeGB")
        kept = existing.properties if existing is not None else {
            "uniqueId": str(uuid.uuid4()), "timeCreated": iso(utc_now())}
        size_bytes = size * GIB
        if existing is not None and size == existing.properties["diskSizeGB"]:
            size_bytes = existing.properties["diskSizeBytes"]  # an upload's exact size stays exact
        elif exact_bytes is not None and -(-exact_bytes // GIB) == size:
            size_bytes = exact_bytes
        result = fields.drop_nones({
            "creationData": creation_out,
            "diskSizeGB": size,
            "diskSizeBytes": size_bytes,
            "osType": os_type,
            "hyperVGeneration": generation,
            "uniqueId": kept["uniqueId"],
            "timeCreated": kept["timeCreated"],
            "diskState": existing.properties.get("diskState", "Unattached") if existing else
            ("ReadyToUpload" if option == "Upload" else "Unattached"),
            "managedBy": existing.properties.get("managedBy") if existing else None,
        })
        if self.TYPE == SNAPSHOT_TYPE:
            result["incremental"] = bool(fields.boolean(props, "incremental", "properties.incremental"))
        return result

    def check_delete(self, resource: Resource) -> None:
        disk_access.check_not_in_use(resource, "deleted")
        check_not_attached(resource, "deleted")


def check_not_attached(resource: Resource, doing: str) -> None:
    """A disk attached to a VM belongs to it: detach it (or delete the VM) first."""
    owner = resource.properties.get("managedBy")
    if owner:
        raise Conflict(f"Disk '{resource.name}' is attached to VM '{owner}' and cannot be {doing}; detach it or "
                       "delete the VM first.", code="OperationNotAllowed", target=resource.id)


DISK = _DiskLike(DISK_TYPE, "disk", enums.DISK_SKUS, "diskName")
SNAPSHOT = _DiskLike(SNAPSHOT_TYPE, "snapshot", enums.SNAPSHOT_SKUS, "snapshotName")
