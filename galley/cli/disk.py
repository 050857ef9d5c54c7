"""`galley disk …`: managed disks. Snapshots (snapshot.py) share the bodies built here."""

from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from galley.cli import disk_access, page_upload
from galley.cli.client import API_DISK, ArmError, json_body
from galley.cli.common import (
    HyperVGeneration, LocationOpt, NameOpt, NoWaitOpt, OsType, ResourceGroupOpt, Session, TagsOpt, arm_command,
    enum_value, group_location, parse_tags, usage_error,
)
from galley.cli.kinds import Kind, compute_kind
from galley.cli.output import GROUP, LOCATION, NAME, STATE, Getter, field
from galley.cli.sources import creation_data, resolve_source, source_kind
from galley.cli.transfer import (
    InFileOpt, UploadFormat, UploadFormatOpt, upload_file, upload_size_bytes,
)

app = typer.Typer(help="Manage managed disks.", no_args_is_help=True)


class UploadType(str, Enum):
    Upload = "Upload"


def disk_columns(header: str, getter: Getter) -> tuple:
    """Table columns of disks and snapshots, which differ in one column."""
    return (NAME, GROUP, LOCATION, ("Sku", field("sku.name")), ("SizeGb", field("properties.diskSizeGB")),
            ("OsType", field("properties.osType")), (header, getter), STATE)


COLUMNS = disk_columns("DiskState", field("properties.diskState"))
DISKS = compute_kind(app, "disks", API_DISK, COLUMNS)

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
    return {"properties": props, **update_body(sku=sku, tags=tags)}


def update_body(*, size_gb: Optional[int] = None, sku: Optional[str] = None, tags: Optional[dict] = None) -> dict:
    """PATCH body of disks and snapshots."""
    body: dict = {}
    if size_gb is not None:
        body["properties"] = {"diskSizeGB": size_gb}
    if sku:
        body["sku"] = {"name": sku}
    if tags is not None:
        body["tags"] = tags
    return body


def put_disk(
    session: Session, kind: Kind, resource_group: str, name: str, location: Optional[str], *,
    source: Optional[str], size_gb: Optional[int], os_type: Optional[OsType],
    hyper_v_generation: Optional[HyperVGeneration], sku: Optional[str], tags: Optional[list[str]],
    no_wait: bool, gallery_image: Optional[str] = None, extra: Optional[dict] = None,
) -> Any:
    """Create a disk or snapshot: a copy of --source (id, or a name looked up in -g), from a
    gallery image version, or empty. The location defaults to the resource group's."""
    if source:
        source = resolve_source(session, resource_group, source)
    body = disk_body(
        source=source, gallery_image=gallery_image, size_gb=size_gb, os_type=enum_value(os_type),
        hyper_v_generation=enum_value(hyper_v_generation), sku=sku, tags=parse_tags(tags), extra=extra,
    )
    body = {"location": location or group_location(session, resource_group), **body}
    return session.client.put(kind.path(session.subscription, resource_group, name), kind.api, body, no_wait=no_wait)


def patch_disk(session: Session, kind: Kind, resource_group: str, name: str, no_wait: bool, **fields: Any) -> Any:
    """PATCH a disk or snapshot with update_body(**fields)."""
    path = kind.path(session.subscription, resource_group, name)
    return session.client.patch(path, kind.api, update_body(**fields), no_wait=no_wait)


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
    upload_type: Annotated[Optional[UploadType], typer.Option("--upload-type", help="Upload: an empty disk to fill through grant-access --access-level Write.")] = None,
    upload_size_bytes: Annotated[Optional[int], typer.Option("--upload-size-bytes", min=1, help="With --upload-type: the VHD's size, the disk plus its 512-byte footer.")] = None,
    tags: TagsOpt = None,
    no_wait: NoWaitOpt = False,
):
    """Create a managed disk: empty (--size-gb), a copy (--source), from a gallery image version,
    or ready for an upload (--upload-type Upload --upload-size-bytes N)."""
    if upload_type is not None or upload_size_bytes is not None:
        if upload_size_bytes is None or upload_type is None:
            raise usage_error("--upload-type Upload and --upload-size-bytes go together.")
        body = {"location": location or group_location(session, resource_group),
                "properties": {"creationData": {"createOption": "Upload", "uploadSizeBytes": upload_size_bytes},
                               **({"osType": enum_value(os_type)} if os_type else {}),
                               **({"hyperVGeneration": enum_value(hyper_v_generation)} if hyper_v_generation else {})},
                **update_body(sku=sku, tags=parse_tags(tags))}
        return session.client.put(DISKS.path(session.subscription, resource_group, name), DISKS.api, body,
                                  no_wait=no_wait)
    return put_disk(session, DISKS, resource_group, name, location, source=source, gallery_image=gallery_image,
                    size_gb=size_gb, os_type=os_type, hyper_v_generation=hyper_v_generation, sku=sku, tags=tags,
                    no_wait=no_wait)


DISKS.add_show("Show a managed disk.")
DISKS.add_list("List managed disks in a resource group, or in the subscription without -g.")


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
    return patch_disk(session, DISKS, resource_group, name, no_wait, size_gb=size_gb, sku=sku, tags=parse_tags(tags))


DISKS.add_delete("Delete a managed disk.")
disk_access.add_commands(app, DISKS)


# -- disk content ----------------------------------------------------------------------


def upload_disk(
    session: Session, kind: Kind, resource_group: str, name: str, file: Path, fmt: Optional[UploadFormat], *,
    location: Optional[str], os_type: Optional[OsType], hyper_v_generation: Optional[HyperVGeneration],
    sku: Optional[str], tags: Optional[list[str]],
) -> Any:
    """Upload an image into a disk or snapshot, first creating it (createOption Upload, sized
    from the image) when it does not exist. Returns the resource as the upload left it.

    Azure's way (page_upload.py: Write SAS, parallel page writes of the data only, resumable)
    when the disk is new and the image at least 20 MiB, or the disk waits for an upload of
    exactly this image's size; else Galley's own PUT …/upload (a smaller image, a disk that
    holds content already, a qcow2 this machine has no qemu-img to read)."""
    path = kind.path(session.subscription, resource_group, name)
    word = "snapshot" if source_kind(path) == "snapshots" else "disk"
    chosen = enum_value(fmt)

    def create_body(upload_size: int) -> dict:
        properties = {"creationData": {"createOption": "Upload", "uploadSizeBytes": upload_size}}
        for key, value in (("osType", enum_value(os_type)), ("hyperVGeneration", enum_value(hyper_v_generation))):
            if value is not None:
                properties[key] = value
        return {"location": location or group_location(session, resource_group), "properties": properties,
                **update_body(sku=sku, tags=parse_tags(tags))}

    with page_upload.local_image(file, chosen) as image:
        found = session.client.send("GET", path, kind.api, allow=(404,))
        existing = None if found.status_code == 404 else (json_body(found) or {})
        if existing is not None:
            ignored = [opt for opt, value in (("--location", location), ("--os-type", os_type),
                                              ("--hyper-v-generation", hyper_v_generation), ("--sku", sku),
                                              ("--tags", tags)) if value is not None]
            if ignored:
                session.warn(f"{word} '{name}' exists already; uploading into it ({', '.join(ignored)} ignored).")
        if image is not None and page_upload.takes_sas_path(existing, page_upload.blob_size(image)):
            return page_upload.upload_through_sas(session, kind, resource_group, name, file, image, existing,
                                                  create_body)
    created = False
    if existing is None:
        # Galley's own route takes an image smaller than the declared size (the disk gets the
        # image's size), so a small image is declared as Azure's smallest upload.
        size = max(upload_size_bytes(file, chosen), page_upload.MIN_UPLOAD_SIZE_BYTES)
        session.client.put(path, kind.api, create_body(size))
        created = True
    try:
        return upload_file(session, path + "/upload", kind.api, file, {"format": chosen} if chosen else None,
                           label=name)
    except ArmError as error:
        if created and error.status in REFUSED_UPLOAD:
            error.message = f"{error.message.rstrip()} {discard_created(session, kind, path, word, name)}"
        raise


# The server refused the image (unusable, too large, no space): the disk is as it was created.
REFUSED_UPLOAD = (400, 413, 507)


def discard_created(session: Session, kind: Kind, path: str, word: str, name: str) -> str:
    """Delete the empty disk or snapshot made for an upload the server refused, so that a
    failed upload leaves nothing behind (best effort). Returns what to tell the user."""
    try:
        session.client.delete(path, kind.api, no_wait=True)
    except ArmError as error:
        return f"(The {word} '{name}' created for this upload is left empty: {error})"
    return f"(The {word} '{name}' created for this upload was deleted.)"


@arm_command(app, "upload", COLUMNS)
def upload(
    session: Session,
    *,
    resource_group: ResourceGroupOpt,
    name: NameOpt,
    file: InFileOpt,
    fmt: UploadFormatOpt = None,
    location: LocationOpt = None,
    os_type: OsTypeOpt = None,
    hyper_v_generation: HyperVOpt = None,
    sku: SkuOpt = None,
    tags: TagsOpt = None,
):
    """Upload a disk image (VHD, raw or qcow2) into a managed disk, creating the disk if needed.

    As Azure's tools do: the disk is created with --upload-type Upload and the image's size as a
    fixed VHD, a Write SAS is granted, 8 writers send only the image's data (holes and zeros are
    skipped; raw and qcow2 get a VHD footer computed here), then access is revoked. Interrupted,
    the same command run again within 24 hours sends only the pages still missing (those already
    written are kept, not compared). The disk takes the image's exact virtual size.

    Images under 20 MiB (Azure's smallest upload) and disks that hold content already go through
    Galley's own PUT …/upload instead, in one stream. Progress shows on stderr."""
    return upload_disk(session, DISKS, resource_group, name, file, fmt, location=location, os_type=os_type,
                       hyper_v_generation=hyper_v_generation, sku=sku, tags=tags)


DISKS.add_download("Download a managed disk's content as raw, VHD or qcow2.")
