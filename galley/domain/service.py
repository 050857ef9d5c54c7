"""The decisions behind every request: validate, apply the seed's rules, record, and queue the work."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Callable

from ..config import Settings
from . import disk_access, fields, image_version, limits
from . import gallery as gallery_rules
from .disk import check_not_attached
from .errors import (ArmError, Conflict, InvalidParameter, NotFound, ParentNotFound,
                     PropertyChangeNotAllowed, QuotaExceeded, ResourceGroupNotFound)
from .ids import (GALLERY_TYPE, IMAGE_DEFINITION_TYPE, IMAGE_VERSION_TYPE, RESOURCE_GROUP_TYPE,
                  parent_id, resource_group_id)
from .kinds import PARENT_TYPES, kind_of
from .names import check_resource_group_name, check_subscription_id
from .ports import Context, DuplicateResource, Page, Store, Writer
from .regions import normalize_region
from .resource import (CREATING, HIDDEN_PREFIX, DELETING, IN_PROGRESS, SUCCEEDED, TRANSITIONAL_STATES, UPDATING,
                       Operation, Resource, TargetRegion, iso, utc_now)
from .updates import merge, reject_frozen_changes, strip_paths


@dataclass(frozen=True)
class ResourceRef:
    """Where a request points: the resource's canonical id and what the path says about it."""

    id: str
    type: str
    name: str
    subscription_id: str
    resource_group: str


@dataclass(frozen=True)
class Accepted:
    resource: Resource
    operation: Operation | None
    created: bool


_QUOTAS = {GALLERY_TYPE: "galleries", IMAGE_DEFINITION_TYPE: "image_definitions",
           IMAGE_VERSION_TYPE: "image_versions"}


def _type_label(resource_type: str) -> str:
    return resource_type.split("/", 1)[1]


class ResourceService:
    def __init__(self, store: Store, settings: Settings,
                 on_queued: Callable[[], None] = lambda: None) -> None:
        self.store = store
        self.settings = settings
        self._on_queued = on_queued

    # ---- reads -------------------------------------------------------------------------------

    def get(self, resource_id: str, resource_type: str) -> Resource:
        with self.store.read_one() as tx:
            found = tx.get(resource_id)
        if found is None or found.type != resource_type:
            raise self._not_found(resource_id, resource_type)
        return found

    def get_with_regions(self, resource_id: str) -> tuple[Resource, list[TargetRegion]]:
        with self.store.read() as tx:
            found = tx.get(resource_id)
            if found is None or found.type != IMAGE_VERSION_TYPE:
                raise self._not_found(resource_id, IMAGE_VERSION_TYPE)
            return found, tx.target_regions(resource_id)

    def list(self, resource_type: str, subscription_id: str, *, resource_group: str | None = None,
             parent: str | None = None, after: str | None = None) -> Page:
        check_subscription_id(subscription_id)
        with self.store.read() as tx:
            if resource_group is not None and tx.get(resource_group_id(subscription_id, resource_group)) is None:
                raise ResourceGroupNotFound(f"Resource group '{resource_group}' could not be found.",
                                            target="resourceGroupName")
            if parent is not None and tx.get(parent) is None:
                raise ParentNotFound(f"The parent resource '{parent}' was not found.", target=parent)
            return tx.list_page(resource_type=resource_type, subscription_id=subscription_id,
                                resource_group=resource_group, parent_id=parent, after=after,
                                limit=self.settings.page_size)

    def latest_version(self, definition_id: str, region: str | None = None) -> Resource:
        """The newest usable version by Major, Minor, Patch; skips excludeFromLatest and past end of life."""
        if region is not None:
            region = normalize_region(region, self.settings.region_set, "region")
        with self.store.read_one() as tx:  # two independent single-row reads
            definition = tx.get(definition_id)
            if definition is None or definition.type != IMAGE_DEFINITION_TYPE:
                raise self._not_found(definition_id, IMAGE_DEFINITION_TYPE)
            found = tx.latest_version(definition_id, iso(utc_now()), region)
        if found is None:
            where = f" in region '{region}'" if region else ""
            raise NotFound(f"Image definition '{definition.name}' has no version that can be used as "
                           f"latest{where}: none has finished provisioning there, or all are excluded "
                           "from latest or past their end-of-life date.", code="NotFound",
                           target=definition_id)
        return found

    def in_subscriptions(self, subscription_ids: list[str]) -> list[Resource]:
        """Every resource of these subscriptions, resource groups included (Resource Graph's rows)."""
        with self.store.read() as tx:
            return tx.resources_in_subscriptions(subscription_ids)

    def operation(self, operation_id: str, subscription_id: str | None = None) -> Operation:
        """The operation, if it belongs to `subscription_id` (when given): an operation id from
        another subscription is not found, whoever guessed it."""
        with self.store.read() as tx:
            found = tx.get_operation(operation_id)
        if found is None or (subscription_id is not None
                             and found.subscription_id.lower() != subscription_id.lower()):
            raise NotFound(f"Operation '{operation_id}' was not found.", code="OperationNotFound")
        return found

    def expected_remaining_seconds(self, operation: Operation) -> float | None:
        """How long the operation should still take, when that can be told: a version's
        replication, from its regions' progress so far. None otherwise."""
        if operation.resource_type != IMAGE_VERSION_TYPE or operation.status != IN_PROGRESS \
                or operation.action not in ("create", "update", "replicate"):
            return None
        with self.store.read_one() as tx:
            regions = tx.target_regions(operation.resource_id)
        if operation.action == "replicate":
            regions = [r for r in regions if r.region == operation.region]
        started = datetime.fromisoformat(operation.start_time.replace("Z", "+00:00"))
        return image_version.remaining_seconds(regions, (utc_now() - started).total_seconds())

    # ---- resource groups ---------------------------------------------------------------------

    def put_resource_group(self, subscription_id: str, name: str, body: dict) -> Accepted:
        check_subscription_id(subscription_id)
        check_resource_group_name(name)
        location = normalize_region(body.get("location"), self.settings.region_set)
        tags = fields.tags(body)
        group_id = resource_group_id(subscription_id, name)
        with self._writing() as tx:
            existing = tx.get(group_id)
            if existing is not None:
                if existing.provisioning_state == DELETING:
                    raise Conflict(f"Resource group '{name}' is being deleted.", code="ResourceGroupBeingDeleted")
                if existing.location != location:
                    raise Conflict(f"Invalid resource group location '{location}'. The resource group "
                                   f"already exists in location '{existing.location}'.",
                                   code="InvalidResourceGroupLocation", target="location")
                if tags is not None:
                    existing.tags = tags
                    tx.save(existing)
                return Accepted(existing, None, created=False)
            group = Resource(id=group_id, type=RESOURCE_GROUP_TYPE, name=name,
                             subscription_id=subscription_id.lower(), resource_group=name,
                             location=location, tags=tags or {}, provisioning_state=SUCCEEDED)
            tx.insert(group)
            return Accepted(group, None, created=True)

    def delete_resource_group(self, subscription_id: str, name: str) -> Operation | None:
        check_subscription_id(subscription_id)
        check_resource_group_name(name)
        group_id = resource_group_id(subscription_id, name)
        with self._writing() as tx:
            group = tx.get(group_id)
            if group is None:
                return None
            busy = [r for r in tx.resources_in_group(subscription_id, name)
                    if r.provisioning_state in (CREATING, UPDATING)]
            if busy:
                raise Conflict(f"Resource group '{name}' cannot be deleted while '{busy[0].id}' is "
                               f"{busy[0].provisioning_state}; try again when it finishes.")
            return self._queue_delete(tx, group)

    # ---- resources ---------------------------------------------------------------------------

    def put(self, ref: ResourceRef, body: dict, *, patch: bool = False, create_only: bool = False) -> Accepted:
        """Create or update (merge) the resource; with `create_only`, an existing one is a
        conflict (code ResourceExists) and stays as it is."""
        kind = kind_of(ref.type)
        check_subscription_id(ref.subscription_id)
        check_resource_group_name(ref.resource_group)
        kind.check_name(ref.name)
        body_props = fields.obj(body, "properties", "properties") or {}
        body_props = strip_paths(body_props, kind.READ_ONLY)
        body_props = {k: v for k, v in body_props.items() if not k.startswith(HIDDEN_PREFIX)}
        tags = fields.tags(body)
        with self._writing() as tx:
            ctx = Context(tx, self.settings)
            existing = tx.get(ref.id)
            if existing is not None and existing.type != ref.type:
                existing = None
            if existing is None:
                if patch:
                    raise self._not_found(ref.id, ref.type)
                resource = self._create(ctx, kind, ref, body, body_props, tags)
                action = "create"
            elif create_only:
                raise Conflict(f"{kind.KIND.capitalize()} '{existing.id}' already exists.", code="ResourceExists",
                               target=existing.id)
            else:
                resource = self._update(ctx, kind, existing, body, body_props, tags)
                action = "update"
            operation = Operation(resource_id=resource.id, resource_type=resource.type, action=action,
                                  region=resource.location or "global",
                                  subscription_id=resource.subscription_id)
            tx.add_operation(operation)
            return Accepted(resource, operation, created=action == "create")

    def delete(self, resource_id: str, resource_type: str) -> Operation | None:
        with self._writing() as tx:
            resource = tx.get(resource_id)
            if resource is None or resource.type != resource_type:
                return None
            if resource.type in PARENT_TYPES:
                children = tx.child_names(resource.id)
                if children:
                    raise Conflict(
                        f"{kind_of(resource.type).KIND.capitalize()} '{resource.name}' still contains "
                        f"{', '.join(children)}. Delete those first; then this delete succeeds at once.",
                        code="CannotDeleteResource",
                        target=resource.id)
            check_delete = getattr(kind_of(resource.type), "check_delete", None)
            if check_delete is not None:  # a kind's own reason to refuse (a template's running build)
                check_delete(resource)
            building = tx.versions_building_from(resource.id)
            if building:
                raise Conflict(f"Image version '{building[0].id}' is being created from '{resource.name}'; "
                               "delete it after that creation ends.", target=resource.id)
            return self._queue_delete(tx, resource)

    def retry_replication(self, version_id: str, region: str) -> Accepted:
        """Replicate a version to one region again (after that region failed), leaving the others be."""
        region = normalize_region(region, self.settings.region_set, "region")
        with self._writing() as tx:
            version = tx.get(version_id)
            if version is None or version.type != IMAGE_VERSION_TYPE:
                raise self._not_found(version_id, IMAGE_VERSION_TYPE)
            if version.provisioning_state in TRANSITIONAL_STATES:
                raise Conflict(f"'{version.name}' is {version.provisioning_state}; retry once that finishes.",
                               code="OperationNotAllowed", target=version.id)
            targets = {r.region: r for r in tx.target_regions(version_id)}
            if region not in targets:
                raise InvalidParameter(f"Region '{region}' is not a target region of '{version.name}' "
                                       f"({', '.join(sorted(targets))}).", target="region")
            tx.set_region_state(version_id, region, "Replicating", 0)
            version.provisioning_state = UPDATING
            tx.save(version)
            operation = Operation(resource_id=version.id, resource_type=version.type, action="replicate",
                                  region=region, subscription_id=version.subscription_id)
            tx.add_operation(operation)
            return Accepted(version, operation, created=False)

    def share_gallery(self, gallery_id: str, body: dict) -> dict:
        """A gallery's share action (Add/Remove/Reset subscriptions and tenants, EnableCommunity):
        done at once, so access given or taken away holds from the next request."""
        with self._writing() as tx:
            gallery = tx.get(gallery_id)
            if gallery is None or gallery.type != GALLERY_TYPE:
                raise self._not_found(gallery_id, GALLERY_TYPE)
            gallery.properties, answer = gallery_rules.apply_share(gallery.properties, body)
            tx.save(gallery)
            return answer

    def versions_in_subscription(self, subscription_id: str) -> list[Resource]:
        check_subscription_id(subscription_id)
        items, token = [], None
        while True:
            page = self.list(IMAGE_VERSION_TYPE, subscription_id, after=token)
            items.extend(page.items)
            token = page.next_token
            if token is None:
                return items

    # ---- disk content uploads ------------------------------------------------------------------

    def begin_upload(self, resource_id: str, resource_type: str, owner: str, lease_seconds: float,
                     owner_alive: Callable[[str], bool]) -> Resource:
        """Lease a disk or snapshot to one upload; a second upload at once is refused.

        A lease whose owner died (a crashed server) or whose time ran out no longer counts."""
        with self._writing() as tx:
            resource = tx.get(resource_id)
            if resource is None or resource.type != resource_type:
                raise self._not_found(resource_id, resource_type)
            if resource.provisioning_state != SUCCEEDED:
                raise Conflict(f"'{resource.name}' is {resource.provisioning_state}; upload once it has "
                               "succeeded.", target=resource.id)
            lease = tx.upload_lease(resource_id)
            if lease is not None and lease[1] > time.time() and owner_alive(lease[0]):
                raise Conflict(f"Another upload to '{resource.name}' is in progress; it must finish "
                               "(or fail) before a new one starts.", code="OperationNotAllowed",
                               target=resource.id)
            if lease is not None and resource.properties.get("diskState") == "ActiveUpload":
                # The upload died with its node (on another machine, or one not restarted since):
                # the disk is as it was before that upload began.
                resource.properties["diskState"] = tx.upload_state_before(resource_id) or "Unattached"
            building = tx.versions_building_from(resource.id)
            if building:
                raise Conflict(f"Image version '{building[0].id}' is being created from '{resource.name}'; "
                               "upload after that creation ends.", target=resource.id)
            disk_access.check_not_in_use(resource, "uploaded to")  # an open SAS session
            check_not_attached(resource, "uploaded to")
            tx.set_upload_lease(resource_id, owner, time.time() + lease_seconds,
                                state_before=resource.properties.get("diskState") or "Unattached")
            resource.properties["diskState"] = "ActiveUpload"
            tx.save(resource)
            return resource

    def renew_upload(self, resource_id: str, owner: str, lease_seconds: float) -> None:
        with self.store.write() as tx:
            tx.set_upload_lease(resource_id, owner, time.time() + lease_seconds)

    def release_dead_uploads(self, owner_alive: Callable[[str], bool]) -> int:
        """Clear the uploads that died with their process (run when a server starts)."""
        released = 0
        with self._writing() as tx:
            for key, owner, _until in tx.upload_leases():
                if owner_alive(owner):
                    continue
                state_before = tx.upload_state_before(key) or "Unattached"
                tx.drop_upload_lease(key)
                resource = tx.get(key)
                if resource is not None and resource.properties.get("diskState") == "ActiveUpload":
                    resource.properties["diskState"] = state_before
                    tx.save(resource)
                released += 1
        return released

    def end_upload(self, resource_id: str, virtual_size: int | None) -> Resource:
        """Record the uploaded size (None: the upload failed and the disk keeps its content)."""
        with self._writing() as tx:
            resource = tx.get(resource_id)
            state_before = tx.upload_state_before(resource_id) or "Unattached"
            tx.drop_upload_lease(resource_id)
            # A failed upload leaves the disk as it was (an Upload disk stays ReadyToUpload).
            resource.properties["diskState"] = "Unattached" if virtual_size is not None else state_before
            if virtual_size is not None:
                disk_access.record_content_size(resource.properties, virtual_size)
            tx.save(resource)
            return resource

    # ---- internals ---------------------------------------------------------------------------

    def _writing(self):
        return _NotifyingWrite(self.store, self._on_queued)

    def _create(self, ctx: Context, kind, ref: ResourceRef, body: dict, props: dict,
                tags: dict | None) -> Resource:
        tx = ctx.tx
        group = tx.get(resource_group_id(ref.subscription_id, ref.resource_group))
        if group is None:
            raise ResourceGroupNotFound(f"Resource group '{ref.resource_group}' could not be found.",
                                        target="resourceGroupName")
        parent = tx.get(parent_id(ref.id))
        if parent is None:
            raise ParentNotFound(f"Can not perform requested operation on nested resource. Parent "
                                 f"resource '{parent_id(ref.id)}' not found.", target=parent_id(ref.id))
        if parent.provisioning_state == DELETING:
            raise Conflict(f"'{parent.id}' is being deleted; nothing new can be created in it.",
                           target=parent.id)
        location = normalize_region(body.get("location"), self.settings.region_set)
        resource = Resource(id=ref.id, type=ref.type, name=ref.name,
                            subscription_id=ref.subscription_id.lower(), resource_group=ref.resource_group,
                            location=location, tags=tags or {}, provisioning_state=CREATING)
        resource.properties = kind.normalize(ctx, resource, props, None)
        limits.check_storable(resource.properties)
        if hasattr(kind, "normalize_sku"):
            resource.sku = kind.normalize_sku(body, None)
        self._check_quota(tx, resource)
        try:
            tx.insert(resource)
        except DuplicateResource:
            raise Conflict(f"'{ref.id}' is being created by another request.",
                           target=ref.id) from None
        if ref.type == IMAGE_VERSION_TYPE:
            tx.save_target_regions(resource.id, image_version.target_regions(resource.properties))
        on_created = getattr(kind, "on_created", None)
        if on_created is not None:  # what a new resource brings with it (a VM's disks)
            on_created(ctx, resource)
        return resource

    def _update(self, ctx: Context, kind, existing: Resource, body: dict, props: dict,
                tags: dict | None) -> Resource:
        if existing.provisioning_state in TRANSITIONAL_STATES:
            raise Conflict(f"'{existing.id}' is {existing.provisioning_state}; wait for that operation "
                           "to finish before changing it.", code="OperationNotAllowed", target=existing.id)
        if body.get("location") is not None:
            location = normalize_region(body.get("location"), self.settings.region_set)
            if location != existing.location:
                raise PropertyChangeNotAllowed(
                    f"Changing property 'location' of an existing {kind.KIND} is not allowed "
                    f"(it is '{existing.location}').", target="location")
        merged = merge(existing.properties, props)
        updated = Resource(**{**existing.__dict__})
        updated.properties = kind.normalize(ctx, updated, merged, existing)
        limits.check_storable(updated.properties)
        reject_frozen_changes(strip_paths(existing.properties, kind.READ_ONLY),
                              strip_paths(updated.properties, kind.READ_ONLY), kind.UPDATABLE, kind.KIND)
        if hasattr(kind, "normalize_sku"):
            updated.sku = kind.normalize_sku(body, existing)
        if tags is not None:
            updated.tags = tags
        updated.provisioning_state = UPDATING
        ctx.tx.save(updated)
        if existing.type == IMAGE_VERSION_TYPE:
            ctx.tx.save_target_regions(updated.id, _carry_status(
                ctx.tx.target_regions(updated.id), image_version.target_regions(updated.properties)))
        return updated

    def _check_quota(self, tx: Writer, resource: Resource) -> None:
        quota_name = _QUOTAS.get(resource.type)
        if quota_name is None:
            return
        limit = getattr(self.settings.limits, quota_name)
        tx.lock(f"quota/{resource.subscription_id}/{resource.type}/{resource.location}".lower())
        used = tx.count_in_region(resource.subscription_id, resource.type, resource.location)
        if used >= limit:
            raise QuotaExceeded(
                f"Subscription {resource.subscription_id} already has {used} "
                f"{_type_label(resource.type)} in region {resource.location}; the limit is {limit} per "
                "subscription per region.", target=resource.id)

    def _queue_delete(self, tx: Writer, resource: Resource) -> Operation:
        if resource.provisioning_state in (CREATING, UPDATING):
            raise Conflict(f"'{resource.id}' is {resource.provisioning_state}; delete it once that "
                           "operation finishes.", code="OperationNotAllowed", target=resource.id)
        operation = Operation(resource_id=resource.id, resource_type=resource.type, action="delete",
                              region=resource.location or "global", subscription_id=resource.subscription_id)
        if resource.provisioning_state != DELETING:
            resource.provisioning_state = DELETING
            tx.save(resource)
        tx.add_operation(operation)
        return operation

    def _not_found(self, resource_id: str, resource_type: str) -> ArmError:
        return NotFound(f"The resource '{_type_label(resource_type)}' '{resource_id}' was not found.",
                        target=resource_id)


def _carry_status(current: list[TargetRegion], wanted: list[TargetRegion]) -> list[TargetRegion]:
    """Keep the replication status of regions that stay; new or grown regions start replicating."""
    by_region = {r.region: r for r in current}
    result = []
    for target in wanted:
        before = by_region.get(target.region)
        if before is not None and before.state == "Completed" and before.replica_count >= target.replica_count \
                and before.storage_account_type == target.storage_account_type:
            target.state, target.progress = before.state, before.progress
        result.append(target)
    return result


class _NotifyingWrite:
    """A write transaction that wakes the job worker once it has committed."""

    def __init__(self, store: Store, notify: Callable[[], None]) -> None:
        self._context = store.write()
        self._notify = notify

    def __enter__(self) -> Writer:
        return self._context.__enter__()

    def __exit__(self, *exc) -> bool | None:
        result = self._context.__exit__(*exc)
        if exc[0] is None:
            self._notify()
        return result
