"""Gallery image versions: Major.Minor.Patch, a source, and the regions they are replicated to."""

from __future__ import annotations

from . import enums, fields, limits, sources, virtual_machine
from .errors import Conflict, InvalidParameter
from .ids import (DISK_TYPE, IMAGE_VERSION_TYPE, MANAGED_IMAGE_TYPE, SNAPSHOT_TYPE, VIRTUAL_MACHINE_TYPE, key_of,
                  parent_id)
from .names import parse_version_name
from .ports import Context
from .regions import normalize_region
from .resource import Resource, TargetRegion, iso, sortable_time, utc_now
from .updates import reject_source_change

TYPE = IMAGE_VERSION_TYPE
KIND = "image version"
UPDATABLE = frozenset({
    "publishingProfile.targetRegions",
    "publishingProfile.replicaCount",
    "publishingProfile.excludeFromLatest",
    "publishingProfile.endOfLifeDate",
    "safetyProfile",
})
READ_ONLY = frozenset({"provisioningState", "replicationStatus", "publishingProfile.publishedDate"})
check_name = parse_version_name
DEFAULT_STORAGE_ACCOUNT_TYPE = "Standard_LRS"


def normalize(ctx: Context, resource: Resource, props: dict, existing: Resource | None) -> dict:
    publishing = _publishing_profile(ctx, resource, props, existing)
    if existing is not None:
        storage = existing.properties["storageProfile"]
        reject_source_change(storage, props.get("storageProfile"), "properties.storageProfile", KIND)
    else:
        storage = _storage_profile(ctx, resource, props)
    result = {"publishingProfile": publishing, "storageProfile": storage}
    safety = fields.obj(props, "safetyProfile", "properties.safetyProfile")
    if safety is not None:
        result["safetyProfile"] = fields.drop_nones({"allowDeletionOfReplicatedLocations": fields.boolean(
            safety, "allowDeletionOfReplicatedLocations",
            "properties.safetyProfile.allowDeletionOfReplicatedLocations")})
    resource.version = parse_version_name(resource.name)
    resource.exclude_from_latest = publishing["excludeFromLatest"]
    end_of_life = publishing.get("endOfLifeDate")
    resource.end_of_life = sortable_time(end_of_life) if end_of_life else None
    return result


def target_regions(props: dict) -> list[TargetRegion]:
    return [TargetRegion(region=t["name"], replica_count=t["regionalReplicaCount"],
                         storage_account_type=t["storageAccountType"],
                         exclude_from_latest=t.get("excludeFromLatest", False))
            for t in props["publishingProfile"]["targetRegions"]]


def aggregated_state(regions: list[TargetRegion]) -> str:
    states = {r.state for r in regions}
    if not states:
        return "Unknown"
    if "Failed" in states:
        return "Failed"
    return "Completed" if states == {"Completed"} else "InProgress"


def remaining_seconds(regions: list[TargetRegion], elapsed: float) -> float | None:
    """The replication time still to come, at the pace so far: the regions' mean progress
    (a region Completed or Failed counts as done) over the `elapsed` seconds of the operation.
    None before any progress is recorded (the source is still being copied in)."""
    if not regions or elapsed <= 0:
        return None
    done = sum(100 if r.state in ("Completed", "Failed") else r.progress for r in regions) / (100 * len(regions))
    if done <= 0:
        return None
    return elapsed * (1 - done) / done if done < 1 else 0.0


def _publishing_profile(ctx: Context, resource: Resource, props: dict,
                        existing: Resource | None) -> dict:
    profile = fields.obj(props, "publishingProfile", "properties.publishingProfile") or {}
    limit = ctx.settings.limits.replicas_per_region
    replica_count = fields.integer(profile, "replicaCount", "properties.publishingProfile.replicaCount",
                                   minimum=1, maximum=limit) or 1
    default_storage = enums.normalize(
        profile.get("storageAccountType"), enums.GALLERY_STORAGE_ACCOUNT_TYPES,
        "properties.publishingProfile.storageAccountType", default=DEFAULT_STORAGE_ACCOUNT_TYPE)
    raw_targets = fields.array(profile, "targetRegions", "properties.publishingProfile.targetRegions",
                               max_items=limits.MAX_TARGET_REGIONS)
    if not raw_targets:
        raw_targets = [{"name": resource.location}]
    targets, seen = [], set()
    for i, raw in enumerate(raw_targets):
        target = f"properties.publishingProfile.targetRegions[{i}]"
        if not isinstance(raw, dict):
            raise InvalidParameter(f"{target} must be an object with a name.", target=target)
        region = normalize_region(raw.get("name"), ctx.settings.region_set, f"{target}.name")
        if region in seen:
            raise InvalidParameter(f"Region '{region}' is listed twice in targetRegions.",
                                   target=f"{target}.name")
        seen.add(region)
        entry = {
            "name": region,
            "regionalReplicaCount": fields.integer(
                raw, "regionalReplicaCount", f"{target}.regionalReplicaCount", minimum=1,
                maximum=limit) or replica_count,
            "storageAccountType": enums.normalize(
                raw.get("storageAccountType"), enums.GALLERY_STORAGE_ACCOUNT_TYPES,
                f"{target}.storageAccountType", default=default_storage),
        }
        exclude = fields.boolean(raw, "excludeFromLatest", f"{target}.excludeFromLatest")
        if exclude is not None:
            entry["excludeFromLatest"] = exclude
        if isinstance(raw.get("encryption"), dict):
            entry["encryption"] = raw["encryption"]
        targets.append(entry)
    if resource.location not in seen:
        raise InvalidParameter(
            f"The version's location '{resource.location}' (its source region) must be one of its "
            f"target regions; targetRegions lists: {', '.join(sorted(seen))}.",
            target="properties.publishingProfile.targetRegions")
    published = (existing.properties["publishingProfile"]["publishedDate"] if existing is not None
                 else iso(utc_now()))
    return fields.drop_nones({
        "targetRegions": targets,
        "replicaCount": replica_count,
        "excludeFromLatest": bool(fields.boolean(
            profile, "excludeFromLatest", "properties.publishingProfile.excludeFromLatest")),
        "endOfLifeDate": fields.timestamp(profile, "endOfLifeDate",
                                          "properties.publishingProfile.endOfLifeDate"),
        "storageAccountType": default_storage,
        "publishedDate": published,
    })


def _legacy_source(props: dict) -> dict | None:
    """API 2018-06-01 put the managed image under publishingProfile.source.managedImage.id."""
    profile = props.get("publishingProfile")
    if isinstance(profile, dict) and isinstance(profile.get("source"), dict):
        managed = profile["source"].get("managedImage")
        if isinstance(managed, dict) and managed.get("id"):
            return {"id": managed["id"]}
    return None


def _storage_profile(ctx: Context, resource: Resource, props: dict) -> dict:
    storage = fields.obj(props, "storageProfile", "properties.storageProfile") or {}
    definition = ctx.tx.get(parent_id(resource.id))
    expected_os = definition.properties["osType"] if definition else None
    result: dict = {}
    primary: Resource | None = None
    data_luns: dict[int, int | None] = {}

    source = fields.obj(storage, "source", "properties.storageProfile.source") or _legacy_source(props)
    captured = _virtual_machine_source(ctx, resource, source, definition)
    if captured is not None:  # a VM's disks, as they were when it stopped
        vm, storage, source = captured[0], captured[1], None
    if source is not None and source.get("id"):
        primary = sources.resolve(ctx.tx, source["id"], "properties.storageProfile.source.id",
                                  (MANAGED_IMAGE_TYPE, IMAGE_VERSION_TYPE))
        result["source"] = {"id": primary.id}
        data_luns.update(sources.data_disk_sizes_gb(primary))

    os_disk = fields.obj(storage, "osDiskImage", "properties.storageProfile.osDiskImage") or {}
    os_source = fields.obj(os_disk, "source", "properties.storageProfile.osDiskImage.source")
    os_entry = {"hostCaching": enums.normalize(os_disk.get("hostCaching"), enums.HOST_CACHING,
                                                "properties.storageProfile.osDiskImage.hostCaching",
                                                default="ReadWrite")}
    if os_source:
        if primary is not None:
            raise InvalidParameter("A version has one OS source: give storageProfile.source (a managed "
                                   "image or version) or storageProfile.osDiskImage.source, not both.",
                                   target="properties.storageProfile.osDiskImage.source")
        os_entry["source"], disk = _disk_source(ctx, resource, os_source, "properties.storageProfile.osDiskImage.source")
        primary = disk
        if disk is not None:
            os_entry["sizeInGB"] = sources.size_gb_of(disk)
    elif primary is not None:
        os_entry["sizeInGB"] = sources.size_gb_of(primary)
    else:
        raise InvalidParameter(
            "The version needs a source: storageProfile.source.id (a managed image or another image "
            "version), or storageProfile.osDiskImage.source (a snapshot, disk or VHD URI).",
            target="properties.storageProfile")
    result["osDiskImage"] = fields.drop_nones(os_entry)

    if primary is not None:
        _check_source_region(ctx, resource, primary, "properties.storageProfile")
        actual_os = sources.os_type_of(ctx.tx, primary)
        if expected_os and actual_os and actual_os.lower() != expected_os.lower():
            raise InvalidParameter(
                f"The source '{primary.id}' holds a {actual_os} OS disk but image definition "
                f"'{definition.name}' is for {expected_os}.", target="properties.storageProfile",
                code="InvalidParameter")
        _refuse_busy_source(ctx, resource, primary, "properties.storageProfile")
        resource.source_key = primary.key

    data_images = []
    for lun, raw, target in fields.disks_by_lun(storage, "dataDiskImages", "properties.storageProfile.dataDiskImages",
                                                "an object with lun and source"):
        if lun in data_luns:
            raise InvalidParameter(f"LUN {lun} is used by more than one data disk; LUNs must be unique.",
                                   target=f"{target}.lun")
        source_ref = fields.obj(raw, "source", f"{target}.source", required=True)
        entry_source, disk = _disk_source(ctx, resource, source_ref, f"{target}.source")
        if disk is not None:
            _check_source_region(ctx, resource, disk, f"{target}.source.id")
            _refuse_busy_source(ctx, resource, disk, f"{target}.source.id")
        size = sources.size_gb_of(disk) if disk is not None else None
        data_luns[lun] = size
        data_images.append(fields.drop_nones({
            "lun": lun, "sizeInGB": size, "source": entry_source,
            "hostCaching": enums.normalize(raw.get("hostCaching"), enums.HOST_CACHING,
                                           f"{target}.hostCaching", default="None"),
        }))
    limit_gb = ctx.settings.limits.data_disk_max_gb
    for lun, size in data_luns.items():
        if size is not None and size > limit_gb:
            raise InvalidParameter(f"The data disk at LUN {lun} is {size} GB; data disks of an image "
                                   f"version may be at most {limit_gb} GB (1 TB).",
                                   target="properties.storageProfile.dataDiskImages")
    if data_images:
        result["dataDiskImages"] = data_images
    if captured is not None:
        result["source"] = {"virtualMachineId": vm.id}
    return result


def _virtual_machine_source(ctx: Context, resource: Resource, source: dict | None,
                            definition: Resource | None) -> tuple[Resource, dict] | None:
    """A version made from a VM (source.virtualMachineId, or source.id naming a VM as `az sig
    image-version create --managed-image <vm id>` sends it): the storage profile of its disks."""
    if not source:
        return None
    target = "properties.storageProfile.source"
    named = source.get("virtualMachineId")
    if named is None and isinstance(source.get("id"), str) and "/virtualmachines/" in source["id"].lower():
        named = source["id"]
    if named is None:
        return None
    vm = sources.resolve(ctx.tx, named, f"{target}.virtualMachineId", (VIRTUAL_MACHINE_TYPE,))
    if vm.location != resource.location:
        raise InvalidParameter(f"VM '{vm.id}' is in {vm.location}; create the version in {vm.location} (its "
                               "source region) and list other regions in its target regions.",
                               target=f"{target}.virtualMachineId")
    generalized = definition is not None and definition.properties.get("osState") == "Generalized"
    virtual_machine.check_capturable(vm, generalized=generalized, target=f"{target}.virtualMachineId")
    disks = virtual_machine.attached_disk_ids(vm)
    storage = {"osDiskImage": {"source": {"id": disks[0][1]}},
               "dataDiskImages": [{"lun": lun, "source": {"id": disk_id}} for lun, disk_id in disks[1:]]}
    return vm, storage


def _refuse_busy_source(ctx: Context, resource: Resource, source: Resource, target: str) -> None:
    building = [v for v in ctx.tx.versions_building_from(source.id) if v.key != resource.key]
    if building:
        raise Conflict(
            f"Image version '{building[0].id}' is still being created from '{source.id}'. Wait "
            "until that creation ends before creating another version from the same source.",
            target=target, code="OperationNotAllowed")


def data_disk_source_keys(version: Resource) -> set[str]:
    """The disks and snapshots a version's data disks are made from (by key)."""
    images = version.properties.get("storageProfile", {}).get("dataDiskImages", [])
    return {key_of(d["source"]["id"]) for d in images if d.get("source", {}).get("id")}


def _check_source_region(ctx: Context, resource: Resource, source: Resource, target: str) -> None:
    """The version is created in its source's region, then replicated from there."""
    if source.type == IMAGE_VERSION_TYPE:
        completed = {r.region for r in ctx.tx.target_regions(source.id) if r.state == "Completed"}
        if resource.location not in completed:
            raise InvalidParameter(
                f"The source version '{source.id}' is not replicated to {resource.location}; create this "
                f"version in one of its regions ({', '.join(sorted(completed)) or 'none yet'}) or "
                "replicate the source there first.", target=target)
    elif source.location != resource.location:
        raise InvalidParameter(
            f"The source '{source.id}' is in {source.location}, but the version's location (its source "
            f"region) is {resource.location}. Create the version in {source.location} and list "
            f"{resource.location} in its target regions instead.", target=target)


def _disk_source(ctx: Context, resource: Resource, raw: dict, target: str) -> tuple[dict, Resource | None]:
    if raw.get("id"):
        disk = sources.resolve(ctx.tx, raw["id"], f"{target}.id", (SNAPSHOT_TYPE, DISK_TYPE))
        return {"id": disk.id}, disk
    if raw.get("uri"):
        account_id = fields.string(raw, "storageAccountId", f"{target}.storageAccountId") or None
        account = sources.resolve_blob(ctx.tx, raw["uri"], f"{target}.uri", account_id,
                                       f"{target}.storageAccountId")
        _check_source_region(ctx, resource, account, f"{target}.uri")
        entry = {"uri": raw["uri"]}
        if account_id:
            entry["storageAccountId"] = account_id
        return entry, None
    raise InvalidParameter(f"{target} needs an id (snapshot or disk) or a uri (VHD).", target=target)
