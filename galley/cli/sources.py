"""Turning a `--source` value (disk or snapshot id, or a bare name) into what
the request bodies of images, disks and snapshots need."""

from typing import Optional

from galley.cli import paths
from galley.cli.client import API_DISK, ArmError
from galley.cli.common import Session, usage_error


def source_kind(resource_id: str) -> Optional[str]:
    """'snapshots' or 'disks' for such ids, else None."""
    lowered = resource_id.lower()
    if "/providers/microsoft.compute/snapshots/" in lowered:
        return "snapshots"
    if "/providers/microsoft.compute/disks/" in lowered:
        return "disks"
    return None


def resolve_source(session: Session, rg: str, value: str) -> str:
    """A disk or snapshot id as given; a bare name is looked up in `rg`,
    first as a snapshot, then as a disk (as az does)."""
    if paths.is_resource_id(value) or value.startswith(("http://", "https://")):
        return value
    for collection in ("snapshots", "disks"):
        candidate = paths.compute(session.subscription, rg, collection, value)
        if session.client.exists(candidate, API_DISK):
            return candidate
    raise ArmError("ResourceNotFound", f"no snapshot or disk named {value!r} in resource group {rg!r}.",
                   target="--source")


def image_disk_reference(source: str) -> dict:
    """The part of a managed image's osDisk/dataDisks entry naming its source:
    {'snapshot': {'id'}}, {'managedDisk': {'id'}} or {'blobUri': uri}."""
    if source.startswith(("http://", "https://")):
        return {"blobUri": source}
    kind = source_kind(source)
    if kind == "snapshots":
        return {"snapshot": {"id": source}}
    if kind == "disks":
        return {"managedDisk": {"id": source}}
    raise usage_error(f"{source!r} is neither a disk nor a snapshot id.")


def os_type_of(session: Session, source: str) -> Optional[str]:
    """The osType recorded on a source disk or snapshot, if any."""
    if not source_kind(source):
        return None
    resource = session.client.get(source, API_DISK)
    return (resource.get("properties") or {}).get("osType")


def creation_data(source: Optional[str], gallery_image: Optional[str] = None) -> dict:
    """creationData of a disk or snapshot: a copy of `source`, a disk made
    from a gallery image version, or an empty one."""
    if source and gallery_image:
        raise usage_error("give either --source or --gallery-image-reference, not both.")
    if source:
        return {"createOption": "Copy", "sourceResourceId": source}
    if gallery_image:
        return {"createOption": "FromImage", "galleryImageReference": {"id": gallery_image}}
    return {"createOption": "Empty"}
