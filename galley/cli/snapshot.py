"""`galley snapshot …`: snapshots of managed disks."""

from typing import Annotated

import typer

from galley.cli import paths
from galley.cli.client import API_DISK, API_GROUP
from galley.cli.common import (
    LocationOpt,
    NameOpt,
    NoWaitOpt,
    OptionalResourceGroupOpt,
    ResourceGroupOpt,
    Session,
    TagsOpt,
    arm_command,
    enum_value,
    location_of,
    parse_tags,
)
from galley.cli.disk import HyperVOpt, OsTypeOpt, SizeOpt, SkuOpt, SourceOpt, disk_body, update_body
from galley.cli.output import GROUP, LOCATION, NAME, STATE, field
from galley.cli.sources import resolve_source

app = typer.Typer(help="Manage snapshots of managed disks.", no_args_is_help=True)

COLUMNS = (
    NAME, GROUP, LOCATION,
    ("Sku", field("sku.name")),
    ("SizeGb", field("properties.diskSizeGB")),
    ("OsType", field("properties.osType")),
    ("Incremental", field("properties.incremental")),
    STATE,
)


@arm_command(app, "create", COLUMNS)
def create(
    session: Session,
    *,
    resource_group: ResourceGroupOpt,
    name: NameOpt,
    location: LocationOpt = None,
    source: SourceOpt = None,
    size_gb: SizeOpt = None,
    os_type: OsTypeOpt = None,
    hyper_v_generation: HyperVOpt = None,
    sku: SkuOpt = None,
    incremental: Annotated[bool, typer.Option("--incremental", help="Store only the changes since the last snapshot of the disk.")] = False,
    tags: TagsOpt = None,
    no_wait: NoWaitOpt = False,
):
    """Create a snapshot of a disk or snapshot (--source), or an empty one (--size-gb)."""
    sub = session.subscription
    if source:
        source = resolve_source(session, resource_group, source)
    body = disk_body(
        source=source, size_gb=size_gb, os_type=enum_value(os_type),
        hyper_v_generation=enum_value(hyper_v_generation), sku=sku, tags=parse_tags(tags),
        extra={"incremental": True} if incremental else None,
    )
    location = location or location_of(session, paths.resource_group(sub, resource_group), API_GROUP)
    body = {"location": location, **body}
    path = paths.compute(sub, resource_group, "snapshots", name)
    return session.client.put(path, API_DISK, body, no_wait=no_wait)


@arm_command(app, "show", COLUMNS)
def show(session: Session, *, resource_group: ResourceGroupOpt, name: NameOpt):
    """Show a snapshot."""
    return session.client.get(paths.compute(session.subscription, resource_group, "snapshots", name), API_DISK)


@arm_command(app, "list", COLUMNS)
def list_(session: Session, *, resource_group: OptionalResourceGroupOpt = None):
    """List snapshots in a resource group, or in the subscription without -g."""
    return session.client.list(paths.compute_collection(session.subscription, resource_group, "snapshots"), API_DISK)


@arm_command(app, "update", COLUMNS)
def update(
    session: Session,
    *,
    resource_group: ResourceGroupOpt,
    name: NameOpt,
    sku: SkuOpt = None,
    tags: TagsOpt = None,
    no_wait: NoWaitOpt = False,
):
    """Change a snapshot's storage type or tags (PATCH)."""
    body = update_body(sku=sku, tags=parse_tags(tags))
    path = paths.compute(session.subscription, resource_group, "snapshots", name)
    return session.client.patch(path, API_DISK, body, no_wait=no_wait)


@arm_command(app, "delete")
def delete(session: Session, *, resource_group: ResourceGroupOpt, name: NameOpt, no_wait: NoWaitOpt = False):
    """Delete a snapshot."""
    path = paths.compute(session.subscription, resource_group, "snapshots", name)
    return session.client.delete(path, API_DISK, no_wait=no_wait)
