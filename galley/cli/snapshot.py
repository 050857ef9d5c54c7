"""`galley snapshot …`: snapshots of managed disks (bodies shared with disk.py)."""

from typing import Annotated

import typer

from galley.cli import disk_access
from galley.cli.client import API_DISK
from galley.cli.common import LocationOpt, NameOpt, NoWaitOpt, ResourceGroupOpt, Session, TagsOpt, arm_command, parse_tags
from galley.cli.disk import (
    HyperVOpt, OsTypeOpt, SizeOpt, SkuOpt, SourceOpt, disk_columns, patch_disk, put_disk, upload_disk,
)
from galley.cli.kinds import compute_kind
from galley.cli.output import field
from galley.cli.transfer import (
    InFileOpt, UploadFormatOpt,
)

app = typer.Typer(help="Manage snapshots of managed disks.", no_args_is_help=True)

COLUMNS = disk_columns("Incremental", field("properties.incremental"))
SNAPSHOTS = compute_kind(app, "snapshots", API_DISK, COLUMNS)


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
    return put_disk(session, SNAPSHOTS, resource_group, name, location, source=source, size_gb=size_gb,
                    os_type=os_type, hyper_v_generation=hyper_v_generation, sku=sku, tags=tags, no_wait=no_wait,
                    extra={"incremental": True} if incremental else None)


SNAPSHOTS.add_show("Show a snapshot.")
SNAPSHOTS.add_list("List snapshots in a resource group, or in the subscription without -g.")


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
    return patch_disk(session, SNAPSHOTS, resource_group, name, no_wait, sku=sku, tags=parse_tags(tags))


SNAPSHOTS.add_delete("Delete a snapshot.")
disk_access.add_commands(app, SNAPSHOTS)


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
    """Upload a disk image (VHD, raw or qcow2) into a snapshot, creating the snapshot if needed.

    The same way as `galley disk upload` (see its help): a Write SAS and parallel page writes of
    the image's data, resumable by running the command again; images under 20 MiB and snapshots
    with content go through Galley's own PUT …/upload. The snapshot takes the image's exact
    virtual size; progress shows on stderr."""
    return upload_disk(session, SNAPSHOTS, resource_group, name, file, fmt, location=location, os_type=os_type,
                       hyper_v_generation=hyper_v_generation, sku=sku, tags=tags)


SNAPSHOTS.add_download("Download a snapshot's content as raw, VHD or qcow2.")
