"""ARM resource ids: building them, keying them (ARM ids compare case-insensitively), parsing them."""

from __future__ import annotations

from dataclasses import dataclass

from .errors import InvalidParameter

RESOURCE_GROUP_TYPE = "Microsoft.Resources/resourceGroups"
GALLERY_TYPE = "Microsoft.Compute/galleries"
IMAGE_DEFINITION_TYPE = "Microsoft.Compute/galleries/images"
IMAGE_VERSION_TYPE = "Microsoft.Compute/galleries/images/versions"
MANAGED_IMAGE_TYPE = "Microsoft.Compute/images"
DISK_TYPE = "Microsoft.Compute/disks"
SNAPSHOT_TYPE = "Microsoft.Compute/snapshots"
STORAGE_ACCOUNT_TYPE = "Microsoft.Storage/storageAccounts"
IMAGE_TEMPLATE_TYPE = "Microsoft.VirtualMachineImages/imageTemplates"
USER_IDENTITY_TYPE = "Microsoft.ManagedIdentity/userAssignedIdentities"
VIRTUAL_MACHINE_TYPE = "Microsoft.Compute/virtualMachines"

# The collection segment of each type under the Microsoft.Compute provider.
COMPUTE_COLLECTIONS = {"galleries": GALLERY_TYPE, "images": MANAGED_IMAGE_TYPE,
                       "disks": DISK_TYPE, "snapshots": SNAPSHOT_TYPE,
                       "virtualMachines": VIRTUAL_MACHINE_TYPE}


def key_of(resource_id: str) -> str:
    return resource_id.rstrip("/").lower()


def blob_key(account_id: str, container: str, blob: str) -> str:
    """Where a blob's content is recorded; blob names are matched case-insensitively here."""
    return f"{key_of(account_id)}/containers/{container}/blobs/{blob}".lower()


def subscription_id(sub: str) -> str:
    return f"/subscriptions/{sub}"


def resource_group_id(sub: str, rg: str) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{rg}"


def compute_id(sub: str, rg: str, collection: str, name: str) -> str:
    return f"{resource_group_id(sub, rg)}/providers/Microsoft.Compute/{collection}/{name}"


def image_definition_id(sub: str, rg: str, gallery: str, definition: str) -> str:
    return f"{compute_id(sub, rg, 'galleries', gallery)}/images/{definition}"


def image_version_id(sub: str, rg: str, gallery: str, definition: str, version: str) -> str:
    return f"{image_definition_id(sub, rg, gallery, definition)}/versions/{version}"


def parent_id(resource_id: str) -> str:
    """The id of the resource that owns this one: a nested resource's parent, else its group."""
    parts = resource_id.rstrip("/").split("/")
    lowered = [p.lower() for p in parts]
    if "providers" in lowered:
        after = len(parts) - lowered.index("providers") - 1
        # providers/Namespace/collection/name is top level: its parent is the resource group.
        if after <= 3:
            return "/".join(parts[: lowered.index("providers")])
    return "/".join(parts[:-2])


@dataclass(frozen=True)
class ParsedId:
    subscription: str
    resource_group: str
    type: str  # ARM type in Azure's spelling, e.g. Microsoft.Compute/galleries/images/versions
    names: tuple[str, ...]

    @property
    def id(self) -> str:
        return normalize_id(self)


def normalize_id(parsed: ParsedId) -> str:
    segments = parsed.type.split("/")[1:]
    tail = "/".join(f"{seg}/{name}" for seg, name in zip(segments, parsed.names))
    return f"{resource_group_id(parsed.subscription, parsed.resource_group)}/providers/{parsed.type.split('/')[0]}/{tail}"


_KNOWN_TYPES = {t.lower(): t for t in (GALLERY_TYPE, IMAGE_DEFINITION_TYPE, IMAGE_VERSION_TYPE,
                                        MANAGED_IMAGE_TYPE, DISK_TYPE, SNAPSHOT_TYPE, STORAGE_ACCOUNT_TYPE,
                                        "Microsoft.Compute/virtualMachines", USER_IDENTITY_TYPE)}


def parse_resource_id(value: object, target: str) -> ParsedId:
    """Parse a full ARM id of a Microsoft.Compute resource, as sources are given."""
    if not isinstance(value, str) or not value.startswith("/"):
        raise InvalidParameter(f"'{value}' is not a valid Azure resource id; expected "
                               "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/...",
                               target=target, code="InvalidResourceId" if isinstance(value, str) else None)
    parts = value.strip("/").split("/")
    if (len(parts) < 8 or len(parts) % 2 != 0 or parts[0].lower() != "subscriptions"
            or parts[2].lower() != "resourcegroups" or parts[4].lower() != "providers"):
        raise InvalidParameter(f"'{value}' is not a valid Azure resource id; expected "
                               "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/...",
                               target=target, code="InvalidResourceId")
    type_parts = [parts[5]] + parts[6::2]
    names = tuple(parts[7::2])
    canonical_type = _KNOWN_TYPES.get("/".join(type_parts).lower())
    if canonical_type is None:
        raise InvalidParameter(f"'{value}' names a resource type Galley does not hold: "
                               f"{'/'.join(type_parts)}.", target=target, code="InvalidResourceId")
    return ParsedId(parts[1], parts[3], canonical_type, names)
