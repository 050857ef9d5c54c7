"""`galley image …`: managed images (Microsoft.Compute/images)."""

from typing import Annotated, Optional

import typer

from galley.cli import paths
from galley.cli.client import API_GROUP, API_IMAGE
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
from galley.cli.sources import image_disk_reference, os_type_of, resolve_source

app = typer.Typer(help="Manage managed images.", no_args_is_help=True)

COLUMNS = (
    NAME, GROUP, LOCATION,
    ("OsType", field("properties.storageProfile.osDisk.osType")),
    ("HyperVGeneration", field("properties.hyperVGeneration")),
    STATE,
)


def image_properties(
    os_source: str, os_type: str, data_sources: Optional[list[str]] = None,
    hyper_v_generation: Optional[str] = None,
) -> dict:
    """properties of a managed image built from disk/snapshot ids (or blob URIs)."""
    os_disk = {"osType": os_type, "osState": "Generalized", **image_disk_reference(os_source)}
    storage: dict = {"osDisk": os_disk}
    if data_sources:
        storage["dataDisks"] = [{"lun": lun, **image_disk_reference(src)} for lun, src in enumerate(data_sources)]
    props: dict = {"storageProfile": storage}
    if hyper_v_generation:
        props["hyperVGeneration"] = hyper_v_generation
    return props


@arm_command(app, "create", COLUMNS)
def create(
    session: Session,
    *,
    resource_group: ResourceGroupOpt,
    name: NameOpt,
    source: Annotated[str, typer.Option("--source", help="OS disk source: id (or name in -g) of a snapshot or managed disk.")],
    os_type: Annotated[Optional[OsType], typer.Option("--os-type", case_sensitive=False, help="Defaults to the source's osType.")] = None,
    hyper_v_generation: Annotated[Optional[HyperVGeneration], typer.Option("--hyper-v-generation", case_sensitive=False)] = None,
    data_disk_sources: Annotated[Optional[list[str]], typer.Option("--data-disk-sources", help="Data disk sources (snapshot or disk ids), LUN 0, 1, ... in order.")] = None,
    location: LocationOpt = None,
    tags: TagsOpt = None,
    no_wait: NoWaitOpt = False,
):
    """Create a generalized managed image from a disk or snapshot."""
    sub = session.subscription
    source = resolve_source(session, resource_group, source)
    data = [resolve_source(session, resource_group, s) for s in data_disk_sources or []]
    os_name = enum_value(os_type) or os_type_of(session, source)
    if not os_name:
        raise usage_error("--os-type is required: the source does not record its OS type.")
    location = location or location_of(session, paths.resource_group(sub, resource_group), API_GROUP)
    body: dict = {
        "location": location,
        "properties": image_properties(source, os_name, data, enum_value(hyper_v_generation)),
    }
    if tags is not None:
        body["tags"] = parse_tags(tags)
    path = paths.compute(sub, resource_group, "images", name)
    return session.client.put(path, API_IMAGE, body, no_wait=no_wait)


@arm_command(app, "show", COLUMNS)
def show(session: Session, *, resource_group: ResourceGroupOpt, name: NameOpt):
    """Show a managed image."""
    return session.client.get(paths.compute(session.subscription, resource_group, "images", name), API_IMAGE)


@arm_command(app, "list", COLUMNS)
def list_(session: Session, *, resource_group: OptionalResourceGroupOpt = None):
    """List managed images in a resource group, or in the subscription without -g."""
    return session.client.list(paths.compute_collection(session.subscription, resource_group, "images"), API_IMAGE)


@arm_command(app, "update", COLUMNS)
def update(
    session: Session, *, resource_group: ResourceGroupOpt, name: NameOpt, tags: TagsOpt = None,
    no_wait: NoWaitOpt = False,
):
    """Update a managed image's tags."""
    body = {"tags": parse_tags(tags)} if tags is not None else {}
    path = paths.compute(session.subscription, resource_group, "images", name)
    return session.client.patch(path, API_IMAGE, body, no_wait=no_wait)


@arm_command(app, "delete")
def delete(session: Session, *, resource_group: ResourceGroupOpt, name: NameOpt, no_wait: NoWaitOpt = False):
    """Delete a managed image."""
    path = paths.compute(session.subscription, resource_group, "images", name)
    return session.client.delete(path, API_IMAGE, no_wait=no_wait)
