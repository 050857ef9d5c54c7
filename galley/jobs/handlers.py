"""What finishing each queued operation means.

Metadata changes are single transactions; content work (copying a disk's chunks, replicating a
version to its regions) runs in steps that record their progress, so that a restarted worker
resumes instead of starting over.
"""

from __future__ import annotations

from ..domain.ids import (DISK_TYPE, IMAGE_DEFINITION_TYPE, IMAGE_VERSION_TYPE, MANAGED_IMAGE_TYPE,
                          RESOURCE_GROUP_TYPE, SNAPSHOT_TYPE, STORAGE_ACCOUNT_TYPE)
from ..domain.resource import FAILED, SUCCEEDED, Operation
from . import content_work
from .context import JobContext

# Deepest first, so that a resource group's contents go before what contains them.
_DELETE_ORDER = {IMAGE_VERSION_TYPE: 0, IMAGE_DEFINITION_TYPE: 1}


def finish(ctx: JobContext, operation: Operation) -> None:
    if operation.action == "delete":
        _delete(ctx, operation)
        return
    with ctx.sql.read() as tx:
        resource = tx.get(operation.resource_id)
    if resource is None:
        raise LookupError(f"{operation.resource_id} disappeared before its {operation.action} finished")
    if resource.type in (DISK_TYPE, SNAPSHOT_TYPE):
        content_work.materialize_disk(ctx, resource, operation.action)
    elif resource.type == MANAGED_IMAGE_TYPE and operation.action == "create":
        content_work.capture_image(ctx, resource)
    elif resource.type == IMAGE_VERSION_TYPE:
        content_work.replicate_version(ctx, resource, operation)
    with ctx.sql.write() as tx:
        current = tx.get(operation.resource_id)
        failed = [r.region for r in tx.target_regions(current.id) if r.state == "Failed"]
        current.provisioning_state = FAILED if failed else SUCCEEDED
        tx.save(current)


def _delete(ctx: JobContext, operation: Operation) -> None:
    with ctx.sql.write() as tx:
        resource = tx.get(operation.resource_id)
        if resource is None:
            return
        doomed = []
        if resource.type == RESOURCE_GROUP_TYPE:
            contents = tx.resources_in_group(resource.subscription_id, resource.resource_group)
            doomed = sorted(contents, key=lambda r: _DELETE_ORDER.get(r.type, 2))
        for item in [*doomed, resource]:
            tx.delete(item.id)
    for item in [*doomed, resource]:
        ctx.content.repo.drop_resource(item.key)
        if item.type == STORAGE_ACCOUNT_TYPE:
            ctx.content.repo.drop_prefix(item.key + "/containers/")
    ctx.content.collect_garbage()
