"""What finishing each queued operation means.

Metadata changes are single transactions; content work (copying a disk's chunks, replicating a
version to its regions) runs in steps that record their progress, so that a restarted worker
resumes instead of starting over.
"""

from __future__ import annotations

import shutil

from ..domain.ids import (DISK_TYPE, IMAGE_DEFINITION_TYPE, IMAGE_TEMPLATE_TYPE, IMAGE_VERSION_TYPE,
                          MANAGED_IMAGE_TYPE, RESOURCE_GROUP_TYPE, SNAPSHOT_TYPE, STORAGE_ACCOUNT_TYPE,
                          VIRTUAL_MACHINE_TYPE)
from ..blobservice import account_blobs
from ..domain.resource import FAILED, SUCCEEDED, Operation
from . import content_work, vm_work
from .build import log_segments, workspace
from .build.distribute import TEMPLATE_TAG
from .context import JobContext

# Deepest first, so that a resource group's contents go before what contains them (and a VM
# before the disks it holds).
_DELETE_ORDER = {VIRTUAL_MACHINE_TYPE: -1, IMAGE_VERSION_TYPE: 0, IMAGE_DEFINITION_TYPE: 1}


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
    elif resource.type == VIRTUAL_MACHINE_TYPE and operation.action == "create":
        vm_work.create(ctx, resource)
    with ctx.sql.write() as tx:
        current = tx.get(operation.resource_id)
        failed = [r.region for r in tx.target_regions(current.id) if r.state == "Failed"]
        current.provisioning_state = FAILED if failed else SUCCEEDED
        tx.save(current)


def _delete(ctx: JobContext, operation: Operation) -> None:
    with ctx.sql.read() as tx:
        resource = tx.get(operation.resource_id)
        in_group = [] if resource is None or resource.type != RESOURCE_GROUP_TYPE else \
            tx.resources_in_group(resource.subscription_id, resource.resource_group)
    vm_disks: list = []
    if resource is not None:  # machines stop, and their disks are freed or go too, before any record goes
        group_keys = {r.key for r in in_group}
        for vm in [r for r in [resource, *in_group] if r.type == VIRTUAL_MACHINE_TYPE]:
            vm_disks += vm_work.tear_down(ctx, vm, deleting_disks=group_keys)
    with ctx.sql.write() as tx:
        resource = tx.get(operation.resource_id)
        if resource is None:
            return
        doomed = []
        if resource.type == RESOURCE_GROUP_TYPE:
            contents = tx.resources_in_group(resource.subscription_id, resource.resource_group)
            for template in [r for r in contents if r.type == IMAGE_TEMPLATE_TYPE]:
                contents += _staging_leftovers(tx, template)
                tx.drop_run_outputs(template.id)
            unique = {r.key: r for r in contents + vm_disks if r.key != resource.key}
            doomed = sorted(unique.values(), key=lambda r: _DELETE_ORDER.get(r.type, 2))
        elif resource.type == IMAGE_TEMPLATE_TYPE:
            doomed = _staging_leftovers(tx, resource)
            tx.drop_run_outputs(resource.id)
        elif resource.type == VIRTUAL_MACHINE_TYPE:
            doomed = vm_disks
        for item in [*doomed, resource]:
            tx.delete(item.id)
    for item in [*doomed, resource]:
        if item.type == IMAGE_TEMPLATE_TYPE:
            log_segments.forget(ctx.locations, item)
        if item.type == IMAGE_TEMPLATE_TYPE and ctx.home is not None:
            shutil.rmtree(workspace.run_dir(ctx.home, item.id), ignore_errors=True)
        ctx.content.repo.drop_resource(item.key)
        if item.type == STORAGE_ACCOUNT_TYPE:
            ctx.content.repo.drop_prefix(item.key + "/containers/")
            account_blobs.forget(ctx.home, ctx.content, item)
    ctx.content.collect_garbage()


def _staging_leftovers(tx, template) -> list:
    """What a template's runs made in its staging resource group (its VHDs; snapshots left by a
    crash): the whole group when Galley created it for the template, else only what is tagged."""
    group_id = template.properties.get("exactStagingResourceGroup")
    group = tx.get(group_id) if group_id else None
    if group is None:
        return []
    made = [r for r in tx.resources_in_group(group.subscription_id, group.resource_group)
            if (r.tags or {}).get(TEMPLATE_TAG, "").lower() == template.id.lower()]
    if (group.tags or {}).get(TEMPLATE_TAG, "").lower() == template.id.lower():
        return [*made, group]
    return made
