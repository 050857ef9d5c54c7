"""What finishing each queued operation means. Each runs in one write transaction."""

from __future__ import annotations

from ..domain.ids import IMAGE_VERSION_TYPE, RESOURCE_GROUP_TYPE
from ..domain.image_version import target_regions
from ..domain.ports import Writer
from ..domain.resource import SUCCEEDED, Operation

# Deepest first, so that a resource group's contents go before what contains them.
_DELETE_ORDER = {IMAGE_VERSION_TYPE: 0, "Microsoft.Compute/galleries/images": 1}


def finish(tx: Writer, operation: Operation) -> None:
    resource = tx.get(operation.resource_id)
    if operation.action == "delete":
        if resource is None:
            return
        if resource.type == RESOURCE_GROUP_TYPE:
            contents = tx.resources_in_group(resource.subscription_id, resource.resource_group)
            for item in sorted(contents, key=lambda r: _DELETE_ORDER.get(r.type, 2)):
                tx.delete(item.id)
        tx.delete(resource.id)
        return
    if resource is None:
        raise LookupError(f"{operation.resource_id} disappeared before its {operation.action} finished")
    if resource.type == IMAGE_VERSION_TYPE:
        _place_version(tx, resource.id, resource.properties)
    resource.provisioning_state = SUCCEEDED
    tx.save(resource)


def _place_version(tx: Writer, version_id: str, properties: dict) -> None:
    """Record the version in each target region.

    The version's metadata is what exists so far; the content copy per region plugs in here
    (data-plane issue), and a region is reported Completed only once its step has run.
    """
    current = {r.region: r for r in tx.target_regions(version_id)}
    placed = []
    for wanted in target_regions(properties):
        region = current.get(wanted.region, wanted)
        region.replica_count = wanted.replica_count
        region.storage_account_type = wanted.storage_account_type
        region.exclude_from_latest = wanted.exclude_from_latest
        region.state, region.progress, region.details = "Completed", 100, ""
        placed.append(region)
    tx.save_target_regions(version_id, placed)
