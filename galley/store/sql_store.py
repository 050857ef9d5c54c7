"""The domain's Store port over SQLAlchemy Core: one transaction per `read()` / `write()`."""

from __future__ import annotations

import base64
import time
from contextlib import contextmanager
from typing import Iterator

import orjson
from sqlalchemy import Connection, Engine, and_, bindparam, delete, func, insert, or_, select, text, update
from sqlalchemy.exc import IntegrityError

from ..domain.ids import IMAGE_VERSION_TYPE, RESOURCE_GROUP_TYPE, key_of, parent_id
from ..domain.ports import DuplicateResource, Page
from ..domain.resource import (CREATING, IN_PROGRESS, SUCCEEDED, UPDATING, Operation, Resource,
                               TargetRegion, iso, utc_now)
from ..domain.image_template import RunOutput
from ..domain.image_version import data_disk_source_keys
from ..domain.platform_images import PlatformImage
from .tables import (contents, disk_contents, operations, platform_images, resources, run_outputs, subscriptions,
                     target_regions, upload_leases)

_R = resources.c
_T = target_regions.c
_O = operations.c
_RO = run_outputs.c
_PI = platform_images.c
# Image template runs are claimed only by the build worker (builds take minutes and must not hold
# up other operations). A cancel is never claimed: the run it stops closes it when the run ends.
BUILD_ACTIONS: tuple[str, ...] = ("run",)
# A VM's power operations and run-commands: the VM worker's (they can wait for a guest).
VM_ACTIONS: tuple[str, ...] = ("start", "powerOff", "restart", "deallocate", "runCommand")
# Every operation on these types is the VM worker's: a VM's create waits for its guest to boot.
VM_TYPES: tuple[str, ...] = ("Microsoft.Compute/virtualMachines",)
UNCLAIMED_ACTIONS: tuple[str, ...] = BUILD_ACTIONS + VM_ACTIONS + ("cancel",)
USABLE_STATES = (SUCCEEDED, UPDATING)
_RENDERED = (_R.id, _R.type, _R.name, _R.subscription_id, _R.location, _R.properties, _R.tags, _R.sku,
             _R.provisioning_state)
# Built once: SQLAlchemy then reuses the compiled statement instead of rebuilding it per call.
_GET_BY_KEY = select(resources).where(_R.key == bindparam("key"))
_NEWEST_FIRST = (_R.version_major.desc(), _R.version_minor.desc(), _R.version_patch.desc())
# "latest": provisioned, not excluded, not past end of life; newest by Major, Minor, Patch.
_LATEST = (select(resources).where(
    _R.parent_key == bindparam("parent"), _R.type == IMAGE_VERSION_TYPE,
    _R.provisioning_state.in_(USABLE_STATES), _R.exclude_from_latest.is_(False),
    or_(_R.end_of_life.is_(None), _R.end_of_life > bindparam("now")))
    .order_by(*_NEWEST_FIRST).limit(1))
# ... and, in one region, only versions whose replication there has completed.
_LATEST_IN_REGION = _LATEST.join(target_regions, and_(
    _T.version_key == _R.key, _T.region == bindparam("region"), _T.state == "Completed",
    _T.exclude_from_latest.is_(False)))


def _sort_key(resource: Resource) -> str:
    if resource.version is not None:
        return ".".join(f"{part:010d}" for part in resource.version)
    return resource.name.lower()


def _row_values(resource: Resource) -> dict:
    now = iso(utc_now())
    version = resource.version or (None, None, None)
    return {
        "key": resource.key,
        "id": resource.id,
        "type": resource.type,
        "subscription_id": resource.subscription_id.lower(),
        "resource_group": resource.resource_group.lower() if resource.resource_group else None,
        "parent_key": key_of(parent_id(resource.id)),
        "name": resource.name,
        "sort_key": _sort_key(resource),
        "location": resource.location,
        "properties": orjson.dumps(resource.properties).decode(),
        "tags": orjson.dumps(resource.tags).decode(),
        "sku": orjson.dumps(resource.sku).decode() if resource.sku is not None else None,
        "provisioning_state": resource.provisioning_state,
        "identity_key": resource.identity_key,
        "version_major": version[0],
        "version_minor": version[1],
        "version_patch": version[2],
        "exclude_from_latest": resource.exclude_from_latest,
        "end_of_life": resource.end_of_life,
        "source_key": resource.source_key,
        "created_at": resource.created_at or now,
        "updated_at": now,
    }


def _to_resource(row) -> Resource:
    m = row._mapping
    return Resource(
        id=m["id"], type=m["type"], name=m["name"], subscription_id=m["subscription_id"],
        resource_group=_group_display(m["id"]), location=m["location"],
        properties=orjson.loads(m["properties"]), tags=orjson.loads(m["tags"]),
        sku=orjson.loads(m["sku"]) if m["sku"] else None, provisioning_state=m["provisioning_state"],
        identity_key=m["identity_key"],
        version=(m["version_major"], m["version_minor"], m["version_patch"])
        if m["version_major"] is not None else None,
        exclude_from_latest=m["exclude_from_latest"], end_of_life=m["end_of_life"],
        source_key=m["source_key"], created_at=m["created_at"], updated_at=m["updated_at"])


def _group_display(resource_id: str) -> str | None:
    parts = resource_id.split("/")
    return parts[4] if len(parts) > 4 else None


def _to_operation(row) -> Operation:
    m = row._mapping
    return Operation(id=m["id"], resource_id=m["resource_id"], resource_type=m["resource_type"],
                     action=m["action"], region=m["region"], subscription_id=m["subscription_id"],
                     status=m["status"], error=orjson.loads(m["error"]) if m["error"] else None,
                     start_time=m["start_time"], end_time=m["end_time"], attempts=m["attempts"] or 0,
                     payload=orjson.loads(m["payload"]) if m["payload"] else None,
                     result=orjson.loads(m["result"]) if m["result"] else None)


def _to_run_output(row) -> RunOutput:
    m = row._mapping
    return RunOutput(name=m["name"], provisioning_state=m["provisioning_state"],
                     artifact_id=m["artifact_id"], artifact_uri=m["artifact_uri"])


def _to_platform_image(row) -> PlatformImage:
    m = row._mapping
    return PlatformImage(publisher=m["publisher"], offer=m["offer"], sku=m["sku"], version=m["version"],
                         os_type=m["os_type"], hyper_v_generation=m["hyper_v_generation"],
                         architecture=m["architecture"], virtual_size=m["virtual_size"],
                         created_at=m["created_at"])


def encode_token(sort_key: str, key: str) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([sort_key, key])).decode().rstrip("=")


def decode_token(token: str) -> tuple[str, str] | None:
    try:
        sort_key, key = orjson.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        return str(sort_key), str(key)
    except Exception:
        return None


class SqlTransaction:
    def __init__(self, connection: Connection) -> None:
        self.c = connection

    # ---- reads -----------------------------------------------------------------------------
    def get(self, resource_id: str) -> Resource | None:
        row = self.c.execute(_GET_BY_KEY, {"key": key_of(resource_id)}).first()
        return _to_resource(row) if row else None

    def child_names(self, parent_id_: str, limit: int = 10) -> list[str]:
        rows = self.c.execute(select(_R.name, _R.type).where(_R.parent_key == key_of(parent_id_))
                              .order_by(_R.sort_key).limit(limit))
        return [f"{row.type.rsplit('/', 1)[-1].rstrip('s')} '{row.name}'" for row in rows]

    def version_names(self, definition_id: str) -> list[str]:
        return list(self.c.execute(select(_R.name).where(_R.parent_key == key_of(definition_id),
                                                         _R.type == IMAGE_VERSION_TYPE)).scalars())

    def lock(self, name: str) -> None:
        """Hold the lock `name` until this transaction ends. PostgreSQL needs it for a count-then-
        insert (a quota); SQLite writers are serialized already (BEGIN IMMEDIATE)."""
        if self.c.dialect.name == "postgresql":
            self.c.execute(text("SELECT pg_advisory_xact_lock(hashtextextended(:name, 0))"), {"name": name})

    def count_in_region(self, subscription_id: str, resource_type: str, location: str) -> int:
        return self.c.execute(select(func.count()).select_from(resources).where(
            _R.subscription_id == subscription_id.lower(), _R.type == resource_type,
            _R.location == location)).scalar_one()

    def find_identity(self, parent_id_: str, identity_key: str) -> Resource | None:
        row = self.c.execute(select(resources).where(_R.parent_key == key_of(parent_id_),
                                                     _R.identity_key == identity_key)).first()
        return _to_resource(row) if row else None

    def versions_building_from(self, source_id: str) -> list[Resource]:
        """Versions being created whose OS disk (indexed by source_key) or a data disk comes from
        `source_id`; data disks are looked up among the few versions being created."""
        key = key_of(source_id)
        rows = self.c.execute(select(resources).where(_R.type == IMAGE_VERSION_TYPE,
                                                      _R.provisioning_state == CREATING))
        creating = [_to_resource(r) for r in rows]
        return [v for v in creating if v.source_key == key or key in data_disk_source_keys(v)]

    def target_regions(self, version_id: str) -> list[TargetRegion]:
        rows = self.c.execute(select(target_regions).where(_T.version_key == key_of(version_id))
                              .order_by(_T.region))
        return [TargetRegion(region=r.region, replica_count=r.replica_count,
                             storage_account_type=r.storage_account_type,
                             exclude_from_latest=r.exclude_from_latest, state=r.state,
                             progress=r.progress, details=r.details) for r in rows]

    def latest_version(self, definition_id: str, now_iso: str, region: str | None) -> Resource | None:
        statement = _LATEST if region is None else _LATEST_IN_REGION
        row = self.c.execute(statement, {"parent": key_of(definition_id), "now": now_iso,
                                         "region": region}).first()
        return _to_resource(row) if row else None

    def list_page(self, *, resource_type: str, subscription_id: str, resource_group: str | None = None,
                  parent_id: str | None = None, after: str | None = None, limit: int) -> Page:
        query = select(resources).where(_R.type == resource_type,
                                        _R.subscription_id == subscription_id.lower())
        if parent_id is not None:
            query = query.where(_R.parent_key == key_of(parent_id))
        elif resource_group is not None:
            query = query.where(_R.resource_group == resource_group.lower())
        position = decode_token(after) if after else None
        if position is not None:
            query = query.where(or_(_R.sort_key > position[0],
                                    and_(_R.sort_key == position[0], _R.key > position[1])))
        rows = self.c.execute(query.order_by(_R.sort_key, _R.key).limit(limit + 1)).all()
        items = [_to_resource(r) for r in rows[:limit]]
        token = None
        if len(rows) > limit:
            last = rows[limit - 1]._mapping
            token = encode_token(last["sort_key"], last["key"])
        return Page(items, token)

    def all_of_type(self, resource_type: str) -> list[Resource]:
        """Every resource of a type, in every subscription (galleries, to find what is shared)."""
        return [_to_resource(r) for r in self.c.execute(select(resources).where(_R.type == resource_type))]

    def resources_in_subscriptions(self, subscription_ids: list[str]) -> list[Resource]:
        """Every resource of these subscriptions, resource groups included, in id order, with what
        renders them (not the version and source columns): read lean, as 10,000 are common."""
        if not subscription_ids:
            return []
        rows = self.c.execute(select(*_RENDERED).where(_R.subscription_id.in_([s.lower() for s in subscription_ids]))
                              .order_by(_R.key))
        return [Resource(id=id_, type=type_, name=name, subscription_id=sub, resource_group=_group_display(id_),
                         location=location, properties=orjson.loads(props), tags=orjson.loads(tags),
                         sku=orjson.loads(sku) if sku else None, provisioning_state=state)
                for id_, type_, name, sub, location, props, tags, sku, state in rows]

    def tenant_of_subscription(self, subscription_id: str) -> str | None:
        return self.c.execute(select(subscriptions.c.tenant_id).where(
            subscriptions.c.id == subscription_id.lower())).scalar_one_or_none()

    def find_named(self, resource_type: str, name: str) -> Resource | None:
        row = self.c.execute(select(resources).where(_R.type == resource_type,
                                                     _R.sort_key == name.lower()).limit(1)).first()
        return _to_resource(row) if row else None

    def has_content(self, content_key: str) -> bool:
        return self.c.execute(select(disk_contents.c.lun).where(
            disk_contents.c.resource_key == content_key).limit(1)).first() is not None

    def content_size(self, content_key: str) -> int | None:
        return self.c.execute(select(contents.c.virtual_size).join(
            disk_contents, disk_contents.c.content_id == contents.c.id).where(
            disk_contents.c.resource_key == content_key, disk_contents.c.lun == -1)).scalar()

    def get_operation(self, operation_id: str) -> Operation | None:
        row = self.c.execute(select(operations).where(_O.id == operation_id)).first()
        return _to_operation(row) if row else None

    # ---- writes ----------------------------------------------------------------------------
    def insert(self, resource: Resource) -> None:
        values = _row_values(resource)
        resource.created_at = resource.updated_at = values["created_at"]
        try:
            with self.c.begin_nested():
                self.c.execute(insert(resources).values(**values))
        except IntegrityError as error:
            raise DuplicateResource(resource.id) from error

    def save(self, resource: Resource) -> None:
        values = _row_values(resource)
        values.pop("created_at")
        resource.updated_at = values["updated_at"]
        self.c.execute(update(resources).where(_R.key == resource.key).values(**values))

    def delete(self, resource_id: str) -> None:
        key = key_of(resource_id)
        self.c.execute(delete(target_regions).where(_T.version_key == key))
        self.c.execute(delete(run_outputs).where(_RO.template_key == key))
        self.c.execute(delete(resources).where(_R.key == key))

    def save_target_regions(self, version_id: str, regions: list[TargetRegion]) -> None:
        key = key_of(version_id)
        self.c.execute(delete(target_regions).where(_T.version_key == key))
        if regions:
            self.c.execute(insert(target_regions), [
                {"version_key": key, "region": r.region, "replica_count": r.replica_count,
                 "storage_account_type": r.storage_account_type, "exclude_from_latest": r.exclude_from_latest,
                 "state": r.state, "progress": r.progress, "details": r.details} for r in regions])

    def set_region_state(self, version_id: str, region: str, state: str, progress: int,
                         details: str = "") -> None:
        self.c.execute(update(target_regions).where(_T.version_key == key_of(version_id), _T.region == region)
                       .values(state=state, progress=progress, details=details))

    def resources_in_group(self, subscription_id: str, resource_group: str) -> list[Resource]:
        rows = self.c.execute(select(resources).where(
            _R.subscription_id == subscription_id.lower(), _R.resource_group == resource_group.lower(),
            _R.type != RESOURCE_GROUP_TYPE))
        return [_to_resource(r) for r in rows]

    def add_operation(self, operation: Operation) -> None:
        self.c.execute(insert(operations).values(
            id=operation.id, resource_key=operation.resource_key, resource_id=operation.resource_id,
            resource_type=operation.resource_type, subscription_id=operation.subscription_id,
            action=operation.action, region=operation.region, status=operation.status,
            error=None, start_time=operation.start_time, end_time=None, lease_owner=None,
            lease_until=0.0, attempts=0,
            payload=orjson.dumps(operation.payload).decode() if operation.payload is not None else None))

    def save_operation(self, operation: Operation) -> None:
        self.c.execute(update(operations).where(_O.id == operation.id).values(
            status=operation.status, end_time=operation.end_time,
            error=orjson.dumps(operation.error).decode() if operation.error else None,
            result=orjson.dumps(operation.result).decode() if operation.result is not None else None,
            # an ended operation keeps no copy of what it was asked (a script may hold secrets)
            **({"payload": None} if operation.end_time else {})))

    # ---- job claims (used by the worker) ----------------------------------------------------
    def claim_operation(self, owner: str, lease_seconds: float,
                        actions: tuple[str, ...] | None = None,
                        types: tuple[str, ...] | None = None) -> Operation | None:
        """Take the oldest queued operation whose lease is free or expired (a dead worker's):
        one of `actions` or on one of `types`, or by default any but the build and VM workers'
        and cancels."""
        now = time.time()
        if actions or types:
            wanted = or_(_O.action.in_(actions or ()), _O.resource_type.in_(types or ()))
        else:
            wanted = and_(_O.action.not_in(UNCLAIMED_ACTIONS), _O.resource_type.not_in(VM_TYPES))
        # PostgreSQL: rows another worker is claiming right now are skipped, not waited for (SQLite
        # has no row locks and ignores this; its writers are serialized anyway). The UPDATE's
        # re-check of status and lease is what makes a claim exclusive on every database.
        candidates = self.c.execute(select(_O.id).where(_O.status == IN_PROGRESS, _O.lease_until < now, wanted)
                                    .order_by(_O.start_time).limit(5)
                                    .with_for_update(skip_locked=True)).scalars().all()
        for operation_id in candidates:
            claimed = self.c.execute(update(operations).where(
                _O.id == operation_id, _O.status == IN_PROGRESS, _O.lease_until < now).values(
                lease_owner=owner, lease_until=now + lease_seconds, attempts=_O.attempts + 1))
            if claimed.rowcount == 1:
                return self.get_operation(operation_id)
        return None

    def open_operations(self, resource_id: str, action: str) -> list[Operation]:
        rows = self.c.execute(select(operations).where(_O.resource_key == key_of(resource_id),
                                                       _O.action == action, _O.status == IN_PROGRESS))
        return [_to_operation(row) for row in rows]


    def upload_lease(self, resource_id: str) -> tuple[str, float] | None:
        row = self.c.execute(select(upload_leases).where(upload_leases.c.resource_key == key_of(resource_id))).first()
        return (row.owner, row.until) if row else None

    def set_upload_lease(self, resource_id: str, owner: str, until: float,
                         state_before: str | None = None) -> None:
        """Take or renew the lease; `state_before` (given when an upload begins) is kept until
        the lease is dropped, so a failed upload can put the disk back as it was."""
        key = key_of(resource_id)
        if state_before is None:
            renewed = self.c.execute(update(upload_leases).where(upload_leases.c.resource_key == key)
                                     .values(owner=owner, until=until)).rowcount
            if renewed:
                return
        self.c.execute(delete(upload_leases).where(upload_leases.c.resource_key == key))
        self.c.execute(insert(upload_leases).values(resource_key=key, owner=owner, until=until,
                                                    state_before=state_before))

    def upload_state_before(self, resource_id: str) -> str | None:
        return self.c.execute(select(upload_leases.c.state_before).where(
            upload_leases.c.resource_key == key_of(resource_id))).scalar()

    def drop_upload_lease(self, resource_id: str) -> None:
        self.c.execute(delete(upload_leases).where(upload_leases.c.resource_key == key_of(resource_id)))

    def upload_leases(self) -> list[tuple[str, str, float]]:
        rows = self.c.execute(select(upload_leases))
        return [(row.resource_key, row.owner, row.until) for row in rows]

    # ---- image template run outputs ------------------------------------------------------------
    def run_outputs(self, template_id: str) -> list[RunOutput]:
        rows = self.c.execute(select(run_outputs).where(_RO.template_key == key_of(template_id))
                              .order_by(_RO.name_key))
        return [_to_run_output(row) for row in rows]

    def run_output(self, template_id: str, name: str) -> RunOutput | None:
        row = self.c.execute(select(run_outputs).where(_RO.template_key == key_of(template_id),
                                                       _RO.name_key == name.lower())).first()
        return _to_run_output(row) if row else None

    def save_run_output(self, template_id: str, output: RunOutput) -> None:
        key = key_of(template_id)
        self.c.execute(delete(run_outputs).where(_RO.template_key == key, _RO.name_key == output.name.lower()))
        self.c.execute(insert(run_outputs).values(
            template_key=key, name_key=output.name.lower(), name=output.name, artifact_id=output.artifact_id,
            artifact_uri=output.artifact_uri, provisioning_state=output.provisioning_state,
            updated_at=iso(utc_now())))

    def drop_run_outputs(self, template_id: str) -> None:
        self.c.execute(delete(run_outputs).where(_RO.template_key == key_of(template_id)))

    def renew_lease(self, operation_id: str, owner: str, lease_seconds: float) -> None:
        self.c.execute(update(operations).where(_O.id == operation_id, _O.lease_owner == owner)
                       .values(lease_until=time.time() + lease_seconds))

    # ---- platform image catalog -----------------------------------------------------------------
    def platform_images(self, publisher: str | None = None, offer: str | None = None,
                        sku: str | None = None) -> list[PlatformImage]:
        """Catalog entries, the given names matched case-insensitively, oldest first."""
        query = select(platform_images)
        for column, value in ((_PI.publisher, publisher), (_PI.offer, offer), (_PI.sku, sku)):
            if value is not None:
                query = query.where(func.lower(column) == value.lower())
        rows = self.c.execute(query.order_by(_PI.created_at, _PI.key))
        return [_to_platform_image(row) for row in rows]

    def platform_image(self, publisher: str, offer: str, sku: str, version: str) -> PlatformImage | None:
        row = self.c.execute(select(platform_images).where(
            _PI.key == PlatformImage(publisher, offer, sku, version).key)).first()
        return _to_platform_image(row) if row else None

    def save_platform_image(self, image: PlatformImage) -> None:
        """Add a catalog entry; entries never change, so an existing one is a DuplicateResource."""
        try:
            with self.c.begin_nested():
                self.c.execute(insert(platform_images).values(
                    key=image.key, publisher=image.publisher, offer=image.offer, sku=image.sku,
                    version=image.version, os_type=image.os_type, hyper_v_generation=image.hyper_v_generation,
                    architecture=image.architecture, virtual_size=image.virtual_size,
                    created_at=image.created_at or iso(utc_now())))
        except IntegrityError as error:
            raise DuplicateResource(image.urn) from error

    def delete_platform_image(self, publisher: str, offer: str, sku: str, version: str) -> bool:
        gone = self.c.execute(delete(platform_images).where(
            _PI.key == PlatformImage(publisher, offer, sku, version).key))
        return gone.rowcount == 1


class SqlStore:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @contextmanager
    def _transaction(self, write: bool | None) -> Iterator[SqlTransaction]:
        with self.engine.connect() as connection:
            connection.info["write"] = write
            with connection.begin():
                yield SqlTransaction(connection)

    def read(self):
        return self._transaction(write=False)

    def read_one(self):
        """For a read that is one statement: no explicit transaction around it (SQLite)."""
        return self._transaction(write=None)

    def write(self):
        return self._transaction(write=True)
