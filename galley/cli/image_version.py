"""`galley sig image-version …`: gallery image versions.

The JSON body is built by plain functions (`target_region`, `publishing_profile`,
`storage_profile`, `version_body`) so that it can be tested without a server."""

from typing import Annotated, Optional

import typer

from galley.cli import paths
from galley.cli.client import API_GALLERY, ArmError
from galley.cli.common import (
    EndOfLifeOpt, LocationOpt, NoWaitOpt, ResourceGroupOpt, Session, TagsOpt, arm_command, given,
    patch_body, three_state_option, usage_error, with_tags,
)
from galley.cli.image_definition import DEFINITION, DefinitionOpt
from galley.cli.kinds import RESOURCE_GROUP, Kind, option
from galley.cli.output import LOCATION, NAME, STATE, field
from galley.cli.sig import GALLERY, GalleryOpt, gallery_location
from galley.cli.sources import resolve_source
from galley.cli.transfer import DOWNLOAD_COLUMNS, DownloadFormatOpt, LunOpt, OutFileOpt, download_resource

app = typer.Typer(help="Manage gallery image versions.", no_args_is_help=True)


def target_regions_cell(version: dict) -> str:
    regions = field("properties.publishingProfile.targetRegions")(version) or []
    parts = []
    for region in regions:
        count = region.get("regionalReplicaCount")
        parts.append(f"{region.get('name')}={count}" if count is not None else str(region.get("name")))
    return ", ".join(parts)


COLUMNS = (
    NAME, LOCATION, STATE,
    ("ExcludeFromLatest", field("properties.publishingProfile.excludeFromLatest")),
    ("EndOfLife", field("properties.publishingProfile.endOfLifeDate")),
    ("TargetRegions", target_regions_cell),
)

VersionOpt = Annotated[str, typer.Option("--gallery-image-version", "-e", help="Version number, MAJOR.MINOR.PATCH.")]
TargetRegionsOpt = Annotated[
    Optional[list[str]],
    typer.Option("--target-regions", help="Space-separated regions to replicate to: "
                 "REGION[=REPLICA_COUNT[=STORAGE_ACCOUNT_TYPE]] ..."),
]
ReplicaCountOpt = Annotated[Optional[int], typer.Option("--replica-count", min=1, help="Default replica count per region.")]
ExcludeFromLatestOpt = Annotated[
    Optional[str],  # parsed into a bool by parse_bool_word
    three_state_option("--exclude-from-latest", help="Whether `latest` must skip this version."),
]

VERSIONS = Kind(app, API_GALLERY, COLUMNS, keys=(RESOURCE_GROUP, GALLERY, DEFINITION, option("version", VersionOpt)),
                path=paths.image_version)


# -- body building -----------------------------------------------------------------


def target_region(text: str) -> dict:
    """'eastus=1=standard_zrs' -> {'name': 'eastus', 'regionalReplicaCount': 1,
    'storageAccountType': 'standard_zrs'}. Count and storage type are optional;
    the storage type is kept as typed (the server normalizes its case)."""
    parts = text.split("=")
    if len(parts) > 3 or not parts[0].strip():
        raise usage_error(f"--target-regions: expected REGION[=COUNT[=STORAGE_TYPE]], not {text!r}.")
    region: dict = {"name": parts[0].strip()}
    if len(parts) > 1 and parts[1].strip():
        try:
            count = int(parts[1])
        except ValueError:
            raise usage_error(f"--target-regions: replica count must be a whole number in {text!r}.") from None
        if count < 1:
            raise usage_error(f"--target-regions: replica count must be at least 1 in {text!r}.")
        region["regionalReplicaCount"] = count
    if len(parts) > 2 and parts[2].strip():
        region["storageAccountType"] = parts[2].strip()
    return region


def target_regions(values: Optional[list[str]]) -> Optional[list[dict]]:
    """Parsed --target-regions; None when not given. Values may also be
    space-separated inside one argument ("eastus westus2=2")."""
    if values is None:
        return None
    items = [item for value in values for item in value.split()]
    return [target_region(item) for item in items] or None


def publishing_profile(
    *, regions: Optional[list[dict]] = None, replica_count: Optional[int] = None,
    exclude_from_latest: Optional[bool] = None, end_of_life_date: Optional[str] = None,
    storage_account_type: Optional[str] = None,
) -> dict:
    return given(targetRegions=regions, replicaCount=replica_count, excludeFromLatest=exclude_from_latest,
                 endOfLifeDate=end_of_life_date, storageAccountType=storage_account_type)


def compute_id(sub: str, rg: str, collection: str, value: str) -> str:
    """A resource id as given, or the id of the named resource in `rg`."""
    return value if paths.is_resource_id(value) else paths.compute(sub, rg, collection, value)


def storage_account_id(sub: str, rg: str, value: str) -> str:
    if paths.is_resource_id(value):
        return value
    return f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Storage/storageAccounts/{value}"


def luns_for(sources: list, luns: Optional[list[int]], sources_opt: str, luns_opt: str) -> list[int]:
    if not luns:
        return list(range(len(sources)))
    if len(luns) != len(sources):
        raise usage_error(f"{sources_opt} and {luns_opt} must have the same number of values.")
    return list(luns)


def storage_profile(
    sub: str, rg: str, *,
    managed_image: Optional[str] = None,
    virtual_machine: Optional[str] = None,
    os_snapshot: Optional[str] = None,
    os_vhd_uri: Optional[str] = None,
    os_vhd_storage_account: Optional[str] = None,
    data_snapshots: Optional[list[str]] = None,
    data_snapshot_luns: Optional[list[int]] = None,
    data_vhds_uris: Optional[list[str]] = None,
    data_vhds_luns: Optional[list[int]] = None,
    data_vhds_sa: Optional[str] = None,
) -> dict:
    """The storageProfile of an image version: exactly one OS source (managed
    image / VM / other version, VM, OS snapshot or disk, or VHD), plus data disks."""
    os_sources = [opt for opt, value in (("--managed-image", managed_image), ("--virtual-machine", virtual_machine),
                                         ("--os-snapshot", os_snapshot), ("--os-vhd-uri", os_vhd_uri)) if value]
    if len(os_sources) != 1:
        raise usage_error("give exactly one OS source: --managed-image, --virtual-machine, --os-snapshot or "
                          "--os-vhd-uri" + (f" (got {', '.join(os_sources)})." if os_sources else "."))
    from_vm = virtual_machine or (managed_image if "/virtualmachines/" in (managed_image or "").lower() else None)
    if from_vm and (data_snapshots or data_vhds_uris):
        raise usage_error("a VM source brings its own data disks: --data-snapshots and --data-vhds-uris do not apply.")
    profile: dict = {}
    if virtual_machine:
        profile["source"] = {"virtualMachineId": compute_id(sub, rg, "virtualMachines", virtual_machine)}
    elif managed_image:
        profile["source"] = {"id": compute_id(sub, rg, "images", managed_image)}
    elif os_snapshot:
        profile["osDiskImage"] = {"source": {"id": compute_id(sub, rg, "snapshots", os_snapshot)}}
    else:
        if not os_vhd_storage_account:
            raise usage_error("--os-vhd-uri needs --os-vhd-storage-account.")
        profile["osDiskImage"] = {
            "source": {"uri": os_vhd_uri, "storageAccountId": storage_account_id(sub, rg, os_vhd_storage_account)}
        }
    if data_snapshot_luns and not data_snapshots:
        raise usage_error("--data-snapshot-luns needs --data-snapshots.")
    if data_vhds_luns and not data_vhds_uris:
        raise usage_error("--data-vhds-luns needs --data-vhds-uris.")
    data: list[dict] = []
    if data_snapshots:
        luns = luns_for(data_snapshots, data_snapshot_luns, "--data-snapshots", "--data-snapshot-luns")
        data += [{"lun": lun, "source": {"id": compute_id(sub, rg, "snapshots", s)}}
                 for lun, s in zip(luns, data_snapshots)]
    if data_vhds_uris:
        if not data_vhds_sa:
            raise usage_error("--data-vhds-uris needs --data-vhds-sa.")
        luns = luns_for(data_vhds_uris, data_vhds_luns, "--data-vhds-uris", "--data-vhds-luns")
        account = storage_account_id(sub, rg, data_vhds_sa)
        data += [{"lun": lun, "source": {"uri": uri, "storageAccountId": account}}
                 for lun, uri in zip(luns, data_vhds_uris)]
    if len({d["lun"] for d in data}) != len(data):
        raise usage_error("data disk LUNs must be unique.")
    if data:
        profile["dataDiskImages"] = data
    return profile


# -- commands ----------------------------------------------------------------------


@arm_command(app, "create", COLUMNS)
def create(
    session: Session,
    *,
    resource_group: ResourceGroupOpt,
    gallery: GalleryOpt,
    definition: DefinitionOpt,
    version: VersionOpt,
    location: LocationOpt = None,
    regions: TargetRegionsOpt = None,
    replica_count: ReplicaCountOpt = None,
    exclude_from_latest: ExcludeFromLatestOpt = None,
    end_of_life_date: EndOfLifeOpt = None,
    storage_account_type: Annotated[Optional[str], typer.Option("--storage-account-type", help="Default storage type: Standard_LRS, Standard_ZRS or Premium_LRS.")] = None,
    managed_image: Annotated[Optional[str], typer.Option("--managed-image", help="Source: id (or name in -g) of a managed image, VM or image version.")] = None,
    virtual_machine: Annotated[Optional[str], typer.Option("--virtual-machine", help="Source: id (or name in -g) of a stopped or deallocated VM: its OS disk and data disks.")] = None,
    os_snapshot: Annotated[Optional[str], typer.Option("--os-snapshot", help="Source: id (or name in -g) of an OS snapshot or managed disk.")] = None,
    data_snapshots: Annotated[Optional[list[str]], typer.Option("--data-snapshots", help="Ids (or names in -g) of data-disk snapshots or managed disks.")] = None,
    data_snapshot_luns: Annotated[Optional[list[int]], typer.Option("--data-snapshot-luns", help="LUNs of --data-snapshots, in order.")] = None,
    os_vhd_uri: Annotated[Optional[str], typer.Option("--os-vhd-uri", help="Source: URI of an OS disk VHD.")] = None,
    os_vhd_storage_account: Annotated[Optional[str], typer.Option("--os-vhd-storage-account", help="Storage account (id or name in -g) of --os-vhd-uri.")] = None,
    data_vhds_uris: Annotated[Optional[list[str]], typer.Option("--data-vhds-uris", help="URIs of data disk VHDs.")] = None,
    data_vhds_luns: Annotated[Optional[list[int]], typer.Option("--data-vhds-luns", help="LUNs of --data-vhds-uris, in order.")] = None,
    data_vhds_sa: Annotated[Optional[str], typer.Option("--data-vhds-sa", help="Storage account (id or name in -g) of --data-vhds-uris.")] = None,
    tags: TagsOpt = None,
    no_wait: NoWaitOpt = False,
):
    """Create an image version and replicate it to its target regions.

    The location defaults to the gallery's; the target regions default to the location."""
    sub = session.subscription
    # bare names of snapshots or disks are looked up (snapshot first), as az does
    if os_snapshot:
        os_snapshot = resolve_source(session, resource_group, os_snapshot)
    data_snapshots = [resolve_source(session, resource_group, s) for s in data_snapshots] if data_snapshots else None
    storage = storage_profile(
        sub, resource_group, managed_image=managed_image, virtual_machine=virtual_machine, os_snapshot=os_snapshot, os_vhd_uri=os_vhd_uri,
        os_vhd_storage_account=os_vhd_storage_account, data_snapshots=data_snapshots,
        data_snapshot_luns=data_snapshot_luns, data_vhds_uris=data_vhds_uris, data_vhds_luns=data_vhds_luns,
        data_vhds_sa=data_vhds_sa,
    )
    regions = target_regions(regions)  # parse before any request, so bad input fails fast
    location = location or gallery_location(session, resource_group, gallery)
    body = with_tags({
        "location": location,
        "properties": {
            "publishingProfile": publishing_profile(
                regions=regions or [{"name": location}], replica_count=replica_count,
                exclude_from_latest=exclude_from_latest, end_of_life_date=end_of_life_date,
                storage_account_type=storage_account_type,
            ),
            "storageProfile": storage,
        },
    }, tags)
    path = paths.image_version(sub, resource_group, gallery, definition, version)
    return session.client.put(path, API_GALLERY, body, no_wait=no_wait)


@arm_command(app, "show", COLUMNS)
def show(
    session: Session,
    *,
    resource_group: ResourceGroupOpt,
    gallery: GalleryOpt,
    definition: DefinitionOpt,
    version: Annotated[Optional[str], typer.Option("--gallery-image-version", "-e", help="Version number (not with --latest).")] = None,
    expand: Annotated[Optional[str], typer.Option("--expand", help="ReplicationStatus: add per-region replication status.")] = None,
    latest: Annotated[bool, typer.Option("--latest", help="Show the version `latest` resolves to.")] = False,
    location: Annotated[Optional[str], typer.Option("--location", "-l", help="With --latest: the latest version available in this region.")] = None,
):
    """Show an image version, or with --latest the newest one not excluded from latest."""
    sub = session.subscription
    params = {"$expand": expand} if expand else {}
    if latest:
        if version:
            raise usage_error("give either --gallery-image-version/-e or --latest, not both.")
        if location:
            params["region"] = location
        path = paths.latest_version(sub, resource_group, gallery, definition)
        return session.client.get(path, API_GALLERY, params=params)
    if not version:
        raise usage_error("--gallery-image-version/-e is required (or use --latest).")
    if location:
        raise usage_error("--location only applies with --latest.")
    path = paths.image_version(sub, resource_group, gallery, definition, version)
    return session.client.get(path, API_GALLERY, params=params)


VERSIONS.add_list("List the versions of an image definition.")


@arm_command(app, "update", COLUMNS)
def update(
    session: Session,
    *,
    resource_group: ResourceGroupOpt,
    gallery: GalleryOpt,
    definition: DefinitionOpt,
    version: VersionOpt,
    regions: TargetRegionsOpt = None,
    replica_count: ReplicaCountOpt = None,
    exclude_from_latest: ExcludeFromLatestOpt = None,
    end_of_life_date: EndOfLifeOpt = None,
    tags: TagsOpt = None,
    no_wait: NoWaitOpt = False,
):
    """Update an image version's replication, latest-exclusion, end of life or tags (PATCH).

    --target-regions replaces the whole list of target regions."""
    profile = publishing_profile(
        regions=target_regions(regions), replica_count=replica_count,
        exclude_from_latest=exclude_from_latest, end_of_life_date=end_of_life_date,
    )
    body = patch_body({"publishingProfile": profile} if profile else {}, tags)
    path = paths.image_version(session.subscription, resource_group, gallery, definition, version)
    return session.client.patch(path, API_GALLERY, body, no_wait=no_wait)


VERSIONS.add_delete("Delete an image version and its replicas.")


@arm_command(app, "download", DOWNLOAD_COLUMNS)
def download(
    session: Session,
    *,
    resource_group: ResourceGroupOpt,
    gallery: GalleryOpt,
    definition: DefinitionOpt,
    version: VersionOpt,
    file: OutFileOpt,
    fmt: DownloadFormatOpt = None,
    lun: LunOpt = None,
    location: Annotated[Optional[str], typer.Option("--location", "-l", help="Read from this region's completed replicas (default: wherever the content is).")] = None,
):
    """Download one disk of an image version (the OS disk unless --lun) as raw, VHD or qcow2."""
    path = paths.image_version(session.subscription, resource_group, gallery, definition, version)
    label = version if lun is None else f"{version} LUN {lun}"
    return download_resource(session, path, API_GALLERY, file, fmt, label, lun=lun, region=location)


@arm_command(app, "retry-replication", COLUMNS)
def retry_replication(
    session: Session,
    *,
    resource_group: ResourceGroupOpt,
    gallery: GalleryOpt,
    definition: DefinitionOpt,
    version: VersionOpt,
    region: Annotated[str, typer.Option("--region", help="The target region to replicate to again (one whose replication failed).")],
    no_wait: NoWaitOpt = False,
):
    """Replicate an image version to one target region again, leaving its other regions be.

    Waits for the replication and prints the version with its replication status."""
    path = paths.image_version(session.subscription, resource_group, gallery, definition, version)
    accepted = session.client.post(path + "/retryReplication", API_GALLERY, params={"region": region},
                                   no_wait=no_wait)
    if no_wait:
        return accepted
    result = session.client.get(path, API_GALLERY, params={"$expand": "ReplicationStatus"})
    wanted = region.replace(" ", "").lower()
    for entry in field("properties.replicationStatus.summary")(result) or []:
        if str(entry.get("region", "")).lower() == wanted and str(entry.get("state", "")).lower() == "failed":
            raise ArmError("ReplicationFailed", f"replication of {version} to {entry.get('region')} failed again"
                           + (f": {entry['details']}" if entry.get("details") else "."), target=path)
    return result
