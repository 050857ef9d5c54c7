"""`galley image …`: managed images (Microsoft.Compute/images), made from disks, snapshots or a VM.

`list` shows each image's family (seed 000's ImageFamily): the `ImageFamily` tag of a managed
image, and with --include-gallery also the gallery image versions, whose family is their image
definition's name."""

from typing import Annotated, Optional

import typer

from galley.cli import paths
from galley.cli.client import API_GALLERY, API_IMAGE, API_VM
from galley.cli.common import (
    HyperVGeneration, LocationOpt, NameOpt, NoWaitOpt, OptionalResourceGroupOpt, OsType, ResourceGroupOpt, Session,
    TagsOpt, arm_command, enum_value, group_location, usage_error, with_tags,
)
from galley.cli.kinds import compute_kind
from galley.cli.output import GROUP, LOCATION, NAME, STATE, field
from galley.cli.sources import image_disk_reference, os_type_of, resolve_source

app = typer.Typer(help="Manage managed images.", no_args_is_help=True)

FAMILY_TAG = "ImageFamily"


def family(image: dict) -> Optional[str]:
    """An image's family: a gallery image version's definition name, a managed image's ImageFamily tag."""
    kind = paths.compute_types(image.get("id") or "")
    if kind == ["galleries", "images", "versions"]:
        return image["id"].split("/")[-3]
    return next((value for key, value in (image.get("tags") or {}).items() if key.lower() == FAMILY_TAG.lower()),
                None)


COLUMNS = (
    NAME, GROUP, LOCATION, ("Family", family),
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
    source: Annotated[str, typer.Option("--source", help="Source: id (or name in -g) of a VM (its OS disk and data "
                                        "disks), or of the OS disk's snapshot or managed disk.")],
    os_type: Annotated[Optional[OsType], typer.Option("--os-type", case_sensitive=False, help="Defaults to the source's osType.")] = None,
    hyper_v_generation: Annotated[Optional[HyperVGeneration], typer.Option("--hyper-v-generation", case_sensitive=False)] = None,
    data_disk_sources: Annotated[Optional[list[str]], typer.Option("--data-disk-sources", help="Data disk sources (snapshot or disk ids), LUN 0, 1, ... in order.")] = None,
    os_disk_only: Annotated[bool, typer.Option("--os-disk-only", help="With a VM source: its OS disk only, not its "
                                               "data disks.")] = False,
    location: LocationOpt = None,
    tags: TagsOpt = None,
    no_wait: NoWaitOpt = False,
):
    """Create a generalized managed image from a VM (deallocated and generalized: galley vm deallocate,
    galley vm generalize), or from a disk or snapshot."""
    vm = source_vm(session, resource_group, source)
    if vm is not None:
        if os_type or data_disk_sources:
            raise usage_error("a VM source brings its own OS type and data disks: --os-type and --data-disk-sources "
                              "do not apply (--os-disk-only leaves the data disks out).")
        properties: dict = {"sourceVirtualMachine": {"id": vm["id"]}}
        if os_disk_only:
            properties["storageProfile"] = {"dataDisks": []}
        if hyper_v_generation:
            properties["hyperVGeneration"] = enum_value(hyper_v_generation)
        body = with_tags({"location": location or vm["location"], "properties": properties}, tags)
        return session.client.put(IMAGES.path(session.subscription, resource_group, name), API_IMAGE, body,
                                  no_wait=no_wait)
    if os_disk_only:
        raise usage_error("--os-disk-only is for a VM source.")
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


def source_vm(session: Session, resource_group: str, source: str) -> Optional[dict]:
    """The VM --source names (its id, or a VM's name in -g, looked up first as az does), else None."""
    if paths.is_resource_id(source):
        return session.client.get(source, API_VM) if paths.compute_types(source) == ["virtualmachines"] else None
    if "/" in source or source.startswith(("http://", "https://")):
        return None
    path = paths.compute(session.subscription, resource_group, "virtualMachines", source)
    found = session.client.send("GET", path, API_VM, allow=(404,))
    return found.json() if found.status_code == 200 else None


IMAGES.add_show("Show a managed image.")


@arm_command(app, "list", COLUMNS)
def list_images(
    session: Session,
    *,
    resource_group: OptionalResourceGroupOpt = None,
    include_gallery: Annotated[bool, typer.Option("--include-gallery", help="Also list gallery image versions "
                                                  "(their family is their image definition's name).")] = False,
    image_family: Annotated[Optional[str], typer.Option("--family", help="Only images of this family.")] = None,
):
    """List managed images in a resource group, or in the subscription without -g, with their family
    (the ImageFamily tag)."""
    found = session.client.list(paths.compute_collection(session.subscription, resource_group, "images"), API_IMAGE)
    if include_gallery:
        found += gallery_versions(session, resource_group)
    if image_family is not None:
        found = [image for image in found if (family(image) or "").lower() == image_family.lower()]
    return found


def gallery_versions(session: Session, resource_group: Optional[str]) -> list:
    """Every image version of every gallery in the group (or subscription)."""
    versions: list = []
    for gallery in session.client.list(paths.compute_collection(session.subscription, resource_group, "galleries"),
                                       API_GALLERY):
        for definition in session.client.list(gallery["id"] + "/images", API_GALLERY):
            versions += session.client.list(definition["id"] + "/versions", API_GALLERY)
    return versions


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
