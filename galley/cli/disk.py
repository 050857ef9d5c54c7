"""`galley disk …`: managed disks."""

from typing import Annotated, Optional

import typer

from galley.cli import paths
from galley.cli.client import API_DISK, API_GROUP
from galley.cli.common import (
    HyperVGeneration,
    LocationOpt,
    NameOpt,
    NoWaitOpt,
    OptionalResourceGroupOpt,
    OsType,
    ResourceGroupOpt,
    Session,
    TagsOpt,
    arm_command,
    enum_value,
    location_of,
    parse_tags,
    usage_error,
)
from galley.cli.output import GROUP, LOCATION, NAME, STATE, field
from galley.cli.sources import creation_data, resolve_source

app = typer.Typer(help="Manage managed disks.", no_args_is_help=True)

COLUMNS = (
    NAME, GROUP, LOCATION,
    ("Sku", field("sku.name")),
    ("SizeGb", field("properties.diskSizeGB")),
    ("OsType", field("properties.osType")),
    ("DiskState", field("properties.diskState")),
    STATE,
)

SizeOpt = Annotated[Optional[int], typer.Option("--size-gb", "-z", min=1, help="Size in GiB.")]
SkuOpt = Annotated[Optional[str], typer.Option("--sku", help="Storage type, e.g. Standard_LRS, Premium_LRS, StandardSSD_LRS.")]
OsTypeOpt = Annotated[Optional[OsType], typer.Option("--os-type", case_sensitive=False, help="OS type, for OS disks.")]
HyperVOpt = Annotated[Optional[HyperVGeneration], typer.Option("--hyper-v-generation", case_sensitive=False, help="VM generation, for OS disks.")]
SourceOpt = Annotated[Optional[str], typer.Option("--source", help="Copy this disk or snapshot (id, or name in -g).")]


def disk_body(
    *, source: Optional[str] = None, gallery_image: Optional[str] = None,
    size_gb: Optional[int] = None, os_type: Optional[str] = None, hyper_v_generation: Optional[str] = None,
    sku: Optional[str] = None, tags: Optional[dict] = None, extra: Optional[dict] = None,
) -> dict:
    """PUT body shared by disks and snapshots, without its location."""
    props: dict = {"creationData": creation_data(source, gallery_image)}
    if props["creationData"]["createOption"] == "Empty" and not size_gb:
        raise usage_error("--size-gb is required without --source.")
    for key, value in (("diskSizeGB", size_gb), ("osType", os_type), ("hyperVGeneration", hyper_v_generation)):
        if value is not None:
            props[key] = value
    props.update(extra or {})
    body: dict = {"properties": props}
    if sku:
        body["sku"] = {"name": sku}
    if tags is not None:
        body["tags"] = tags
    return body


def update_body(*, size_gb: Optional[int] = None, sku: Optional[str] = None, tags: Optional[dict] = None) -> dict:
    body: dict = {}
    if size_gb is not None:
        body["properties"] = {"diskSizeGB": size_gb}
    if sku:
        body["sku"] = {"name": sku}
    if tags is not None:
        body["tags"] = tags
    return body


@arm_command(app, "create", COLUMNS)
def create(
    session: Session,
    *,
    resource_group: ResourceGroupOpt,
    name: NameOpt,
    location: LocationOpt = None,
    size_gb: SizeOpt = None,
    os_type: OsTypeOpt = None,
    hyper_v_generation: HyperVOpt = None,
    sku: SkuOpt = None,
    source: SourceOpt = None,
    gallery_image: Annotated[Optional[str], typer.Option("--gallery-image-reference", help="Create from this gallery image version id.")] = None,
    tags: TagsOpt = None,
    no_wait: NoWaitOpt = False,
):
    """Create a managed disk: empty (--size-gb), a copy (--source), or from a gallery image version."""
    sub = session.subscription
    if source:
        source = resolve_source(session, resource_group, source)
    body = disk_body(
        source=source, gallery_image=gallery_image, size_gb=size_gb, os_type=enum_value(os_type),
        hyper_v_generation=enum_value(hyper_v_generation), sku=sku, tags=parse_tags(tags),
    )
    location = location or location_of(session, paths.resource_group(sub, resource_group), API_GROUP)
    body = {"location": location, **body}
    path = paths.compute(sub, resource_group, "disks", name)
    return session.client.put(path, API_DISK, body, no_wait=no_wait)


@arm_command(app, "show", COLUMNS)
def show(session: Session, *, resource_group: ResourceGroupOpt, name: NameOpt):
    """Show a managed disk."""
    return session.client.get(paths.compute(session.subscription, resource_group, "disks", name), API_DISK)


@arm_command(app, "list", COLUMNS)
def list_(session: Session, *, resource_group: OptionalResourceGroupOpt = None):
    """List managed disks in a resource group, or in the subscription without -g."""
    return session.client.list(paths.compute_collection(session.subscription, resource_group, "disks"), API_DISK)


@arm_command(app, "update", COLUMNS)
def update(
    session: Session,
    *,
    resource_group: ResourceGroupOpt,
    name: NameOpt,
    size_gb: SizeOpt = None,
    sku: SkuOpt = None,
    tags: TagsOpt = None,
    no_wait: NoWaitOpt = False,
):
    """Grow a disk, change its storage type, or set its tags (PATCH)."""
    body = update_body(size_gb=size_gb, sku=sku, tags=parse_tags(tags))
    path = paths.compute(session.subscription, resource_group, "disks", name)
    return session.client.patch(path, API_DISK, body, no_wait=no_wait)


@arm_command(app, "delete")
def delete(session: Session, *, resource_group: ResourceGroupOpt, name: NameOpt, no_wait: NoWaitOpt = False):
    """Delete a managed disk."""
    path = paths.compute(session.subscription, resource_group, "disks", name)
    return session.client.delete(path, API_DISK, no_wait=no_wait)
