"""The content side of operations: a disk's bytes, an image's capture, a version's replication."""

from __future__ import annotations

from ..content.engine import ReplicationProgress
from ..content.store_outage import store_unavailable
from ..domain.ids import STORAGE_ACCOUNT_TYPE, blob_key, key_of
from ..domain.sources import parse_blob_uri
from ..domain.image_version import target_regions
from ..domain.resource import Operation, Resource
from ..observability.metrics import ReplicationMeter
from ..store.outage import database_unavailable
from .context import JobContext

OS_LUN = -1


class ReplicationFailed(Exception):
    pass


def copy_into(ctx: JobContext, content_id: str, target_store: str, attach: tuple[str, int],
              subscription_id: str) -> str:
    """Copy a content for another resource into `target_store` (chunks already there are shared)."""
    repo = ctx.content.repo
    stores = repo.placements(content_id)
    if target_store in stores:
        return repo.copy_content(content_id, target_store, attach)
    same_region = [s for s in stores if ctx.locations.region_of(s) == ctx.locations.region_of(target_store)]
    sources = same_region + [s for s in stores if s not in same_region]
    new_id = repo.copy_content(content_id, sources[0], attach)
    progress = ctx.content.replicate([new_id], sources, target_store, lambda p: ctx.heartbeat())
    repo.unplace(new_id, sources[0])
    if ctx.locations.region_of(sources[0]) != ctx.locations.region_of(target_store):
        repo.record_transfer(subscription_id, attach[0], ctx.locations.region_of(sources[0]),
                             ctx.locations.region_of(target_store), progress.bytes_moved)
    return new_id


def blob_content_key(ctx: JobContext, uri: str) -> str:
    account_name, container, blob = parse_blob_uri(uri, "uri")
    with ctx.sql.read() as tx:
        account = tx.find_named(STORAGE_ACCOUNT_TYPE, account_name)
    if account is None:
        raise LookupError(f"storage account {account_name} no longer exists")
    return blob_key(account.id, container, blob)


def _contents_of(ctx: JobContext, resource_id: str) -> dict[int, str]:
    found = ctx.content.repo.disk_contents(key_of(resource_id))
    if not found:
        raise LookupError(f"{resource_id} holds no disk content")
    return found


def materialize_disk(ctx: JobContext, resource: Resource, action: str) -> None:
    """Give a disk or snapshot its content: empty, a copy of another disk, or an image's OS disk."""
    repo = ctx.content.repo
    props = resource.properties
    home = ctx.locations.home_store(resource.location)
    current = repo.disk_contents(resource.key)
    if OS_LUN in current:
        content = repo.content(current[OS_LUN])
        if content and props["diskSizeBytes"] > content["virtual_size"]:
            repo.resize(current[OS_LUN], props["diskSizeBytes"])
        return
    creation = props["creationData"]
    source_id = creation.get("sourceResourceId") or creation.get("imageReference", {}).get("id")
    if creation["createOption"] == "Import":
        source_id = blob_content_key(ctx, creation["sourceUri"])
    attach = (resource.key, OS_LUN)
    if creation["createOption"] in ("Copy", "FromImage", "Import") and source_id:
        copy_into(ctx, _contents_of(ctx, source_id)[OS_LUN], home, attach, resource.subscription_id)
        content_id = repo.disk_contents(resource.key)[OS_LUN]
        if props["diskSizeBytes"] > repo.content(content_id)["virtual_size"]:
            repo.resize(content_id, props["diskSizeBytes"])
    else:
        ctx.content.empty_content(props["diskSizeBytes"], home, attach)


def capture_image(ctx: JobContext, resource: Resource) -> None:
    storage = resource.properties["storageProfile"]
    home = ctx.locations.home_store(resource.location)
    disks = [(OS_LUN, storage["osDisk"])] + [(d["lun"], d) for d in storage.get("dataDisks", [])]
    have = ctx.content.repo.disk_contents(resource.key)
    for lun, disk in disks:
        if lun in have:
            continue
        source = (disk.get("snapshot") or disk.get("managedDisk") or {}).get("id")
        if source is None:
            source = blob_content_key(ctx, disk["blobUri"])
        copy_into(ctx, _contents_of(ctx, source)[OS_LUN], home, (resource.key, lun), resource.subscription_id)


def _version_sources(ctx: JobContext, resource: Resource) -> dict[int, tuple[str, int]]:
    """lun → (source resource id, lun within that source) for every disk of the version."""
    storage = resource.properties["storageProfile"]
    found: dict[int, tuple[str, int]] = {}
    if storage.get("source", {}).get("id"):
        # A managed image or another version: all of its disks.
        found["image"] = (storage["source"]["id"], None)  # type: ignore[index]
    os_source = storage.get("osDiskImage", {}).get("source", {})
    if os_source.get("id"):
        found[OS_LUN] = (os_source["id"], OS_LUN)
    elif os_source.get("uri"):
        found[OS_LUN] = (blob_content_key(ctx, os_source["uri"]), OS_LUN)
    for disk in storage.get("dataDiskImages", []):
        source = disk["source"]
        found[disk["lun"]] = (source["id"] if source.get("id") else blob_content_key(ctx, source["uri"]), OS_LUN)
    return found


def copy_version_sources(ctx: JobContext, resource: Resource) -> None:
    """Copy the sources' content into the version, in its source region, once per disk."""
    home = ctx.locations.home_store(resource.location)
    have = ctx.content.repo.disk_contents(resource.key)
    for lun, (source_id, source_lun) in _version_sources(ctx, resource).items():
        source_contents = _contents_of(ctx, source_id)
        pairs = source_contents.items() if lun == "image" else [(lun, source_contents[source_lun])]
        for target_lun, content_id in pairs:
            if target_lun not in have:
                copy_into(ctx, content_id, home, (resource.key, target_lun), resource.subscription_id)


def replicate_version(ctx: JobContext, resource: Resource, operation: Operation) -> None:
    repo = ctx.content.repo
    copy_version_sources(ctx, resource)
    content_ids = list(repo.disk_contents(resource.key).values())
    source_home = ctx.locations.home_store(resource.location)
    wanted = {t.region: ctx.locations.replica_stores(t.region, t.replica_count, t.storage_account_type)
              for t in target_regions(resource.properties)}
    _drop_unwanted_replicas(ctx, resource, content_ids, wanted)
    regions = [operation.region] if operation.action == "replicate" else sorted(
        wanted, key=lambda region: region != resource.location)
    failures = []
    for region in regions:
        try:
            _replicate_region(ctx, resource, content_ids, region, wanted[region], source_home)
        except Exception as error:  # one region's failure must not stop the others
            if database_unavailable(error) or store_unavailable(error):
                raise  # not the region's failure: the whole operation is taken up again later
            failures.append(f"{region}: {error}")
            with ctx.sql.write() as tx:
                tx.set_region_state(resource.id, region, "Failed", 0, str(error))
    if failures:
        raise ReplicationFailed("replication failed in " + "; ".join(failures))


def _drop_unwanted_replicas(ctx: JobContext, resource: Resource, content_ids: list[str],
                            wanted: dict[str, list[str]]) -> None:
    repo = ctx.content.repo
    dropped = False
    for replica in repo.replicas_of(resource.key):
        stores = wanted.get(replica["region"], [])
        if replica["slot"] >= len(stores) or stores[replica["slot"]] != replica["store"]:
            for content_id in content_ids:
                if replica["store"] != ctx.locations.home_store(resource.location):
                    repo.unplace(content_id, replica["store"])
            repo.drop_replica(resource.key, replica["region"], replica["slot"])
            dropped = True
    if dropped:
        ctx.content.collect_garbage()


def _replicate_region(ctx: JobContext, resource: Resource, content_ids: list[str], region: str,
                      stores: list[str], source_home: str) -> None:
    repo = ctx.content.repo
    done: dict[int, ReplicationProgress] = {}
    completed: list[str] = []
    for slot, store in enumerate(stores):
        # Later replicas copy from a replica already in the region: no traffic between regions.
        sources = completed + [source_home]
        recorded = [0]
        meter = ReplicationMeter(ctx.locations.region_of(sources[0]), region)

        def record_egress(progress: ReplicationProgress, sources=sources, recorded=recorded) -> None:
            # Step by step, so the bytes a run moved before a crash are accounted for too.
            if ctx.locations.region_of(sources[0]) != region and progress.bytes_moved > recorded[0]:
                repo.record_transfer(resource.subscription_id, resource.key,
                                     ctx.locations.region_of(sources[0]), region,
                                     progress.bytes_moved - recorded[0])
                recorded[0] = progress.bytes_moved

        def report(progress: ReplicationProgress, slot=slot, store=store, meter=meter) -> None:
            record_egress(progress)
            meter.update(progress.bytes_moved)
            done[slot] = progress
            repo.save_replica(resource.key, region, slot, store, "Replicating", progress.bytes_done,
                              progress.bytes_total)
            total = sum(p.bytes_total for p in done.values()) / len(done) * len(stores)
            percent = int(100 * sum(p.bytes_done for p in done.values()) / total) if total else 0
            with ctx.sql.write() as tx:
                tx.set_region_state(resource.id, region, "Replicating", min(percent, 99))
            ctx.heartbeat()

        progress = ctx.content.replicate(content_ids, sources, store, report)
        done[slot] = progress
        repo.save_replica(resource.key, region, slot, store, "Completed", progress.bytes_done,
                          progress.bytes_total)
        record_egress(progress)
        meter.finish(progress.bytes_moved)
        completed.append(store)
    with ctx.sql.write() as tx:
        tx.set_region_state(resource.id, region, "Completed", 100)
