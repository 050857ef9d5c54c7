"""ARM resource paths, spelled exactly as Azure spells them."""

from typing import Optional

COMPUTE = "Microsoft.Compute"


def resource_group(sub: str, rg: Optional[str] = None) -> str:
    """`/subscriptions/{sub}/resourcegroups[/{rg}]` (ARM uses lower case here)."""
    base = f"/subscriptions/{sub}/resourcegroups"
    return f"{base}/{rg}" if rg else base


def compute(sub: str, rg: str, collection: str, name: Optional[str] = None) -> str:
    """A Microsoft.Compute resource (or its collection) in a resource group."""
    base = f"/subscriptions/{sub}/resourceGroups/{rg}/providers/{COMPUTE}/{collection}"
    return f"{base}/{name}" if name else base


def compute_collection(sub: str, rg: Optional[str], collection: str) -> str:
    """The list path: by resource group when one is given, else by subscription."""
    if rg:
        return compute(sub, rg, collection)
    return f"/subscriptions/{sub}/providers/{COMPUTE}/{collection}"


def gallery(sub: str, rg: str, name: Optional[str] = None) -> str:
    return compute(sub, rg, "galleries", name)


def image_definition(sub: str, rg: str, gallery_name: str, definition: Optional[str] = None) -> str:
    base = f"{gallery(sub, rg, gallery_name)}/images"
    return f"{base}/{definition}" if definition else base


def image_version(sub: str, rg: str, gallery_name: str, definition: str, version: Optional[str] = None) -> str:
    base = f"{image_definition(sub, rg, gallery_name, definition)}/versions"
    return f"{base}/{version}" if version else base


def latest_version(sub: str, rg: str, gallery_name: str, definition: str) -> str:
    """Galley extension: the version `latest` resolves to."""
    return f"{image_definition(sub, rg, gallery_name, definition)}/latestVersion"


def resource_group_of(resource_id: Optional[str]) -> str:
    """The resource group named in an ARM id ('' when there is none)."""
    parts = (resource_id or "").split("/")
    for i, part in enumerate(parts[:-1]):
        if part.lower() == "resourcegroups":
            return parts[i + 1]
    return ""


def is_resource_id(value: str) -> bool:
    return value.startswith("/subscriptions/")


def compute_types(resource_id: str) -> Optional[list[str]]:
    """The resource type words of a Microsoft.Compute id, lower case: ['images'],
    ['galleries', 'images', 'versions'], ...; None for other ids."""
    parts = resource_id.split("/")
    if len(parts) < 9 or len(parts) % 2 == 0 or [p.lower() for p in parts[5:7]] != ["providers", "microsoft.compute"]:
        return None
    return [part.lower() for part in parts[7::2]]
