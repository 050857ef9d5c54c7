"""`galley image …`: managed images (Microsoft.Compute/images)."""

from typing import Annotated, Optional

import typer

from galley.cli.client import API_IMAGE
from galley.cli.common import (
    HyperVGeneration, LocationOpt, NameOpt, NoWaitOpt, OsType, ResourceGroupOpt, Session, TagsOpt, arm_command,
    enum_value, group_location, usage_error, with_tags,
)
from galley.cli.kinds import compute_kind
from galley.cli.output import GROUP, LOCATION, NAME, STATE, field
from galley.cli.sources import image_disk_reference, os_type_of, resolve_source

app = typer.Typer(help="Manage managed images.", no_args_is_help=True)

COLUMNS = (
    NAME, GROUP, LOCATION,
    ("OsType", field("properties.storageProfile.osDisk.osType")),
    ("HyperVGeneration", field("properties.hyperVGeneration")),
    STATE,
)
IMAGES = compute_kind(app, "images", API_IMAGE, COLUMNS)


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
    source = resolve_source(session, resource_group, source)
    data = [resolve_source(session, resource_group, s) for s in data_disk_sources or []]
    os_name = enum_value(os_type) or os_type_of(session, source)
    if not os_name:
        raise usage_error("--os-type is required: the source does not record its OS type.")
    body = with_tags({
        "location": location or group_location(session, resource_group),
        "properties": image_properties(source, os_name, data, enum_value(hyper_v_generation)),
    }, tags)
    path = IMAGES.path(session.subscription, resource_group, name)
    return session.client.put(path, API_IMAGE, body, no_wait=no_wait)


IMAGES.add_show("Show a managed image.")
IMAGES.add_list("List managed images in a resource group, or in the subscription without -g.")


@arm_command(app, "update", COLUMNS)
def update(
    session: Session, *, resource_group: ResourceGroupOpt, name: NameOpt, tags: TagsOpt = None,
    no_wait: NoWaitOpt = False,
):
    """Update a managed image's tags."""
    path = IMAGES.path(session.subscription, resource_group, name)
    return session.client.patch(path, API_IMAGE, with_tags({}, tags), no_wait=no_wait)


IMAGES.add_delete("Delete a managed image.")


IMAGES.add_download("Download one disk of a managed image (the OS disk unless --lun) as raw, VHD or qcow2.",
                    with_lun=True)
