"""Are the stores clean? What the database says the content stores hold, against what they hold.

    report = audit(database_engine, cluster_objects(cluster))   # PostgreSQL + SeaweedFS buckets
    report = audit(server_database(home), server_objects(app))  # one server's SQLite + folders
    assert report.clean, report

Read straight from the tables and the buckets (not through Galley's API), so a bug in Galley's
own bookkeeping cannot hide itself. Meant for a quiet moment: a replication still copying places
its content first and copies its chunks after, and shows here as missing objects.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import text

# (store id, digest) of every object, store id as Galley names stores: region/zone/rSLOT
Objects = set[tuple[str, str]]

# A manifest counts when its content is ready or attached (a disk access session's, being written
# in place): a half-written content nothing points at is what a dead writer left, garbage itself.
_REFERENCED = """
    SELECT DISTINCT p.store, c.digest FROM content_chunks c
    JOIN content_placements p ON p.content_id = c.content_id
    JOIN contents k ON k.id = c.content_id
    WHERE k.state = 'ready' OR k.id IN (SELECT content_id FROM disk_contents)"""


@dataclass
class Audit:
    unreferenced: list[tuple[str, str]] = field(default_factory=list)  # objects no manifest in their store needs
    missing: list[tuple[str, str]] = field(default_factory=list)  # manifest entries whose object is not there
    operation_leases: list[dict] = field(default_factory=list)  # operations in progress with a running lease
    upload_leases: list[dict] = field(default_factory=list)  # uploads some node still holds

    @property
    def clean(self) -> bool:
        return not (self.unreferenced or self.missing or self.operation_leases or self.upload_leases)

    def __str__(self) -> str:
        return (f"Audit(unreferenced={len(self.unreferenced)} {self.unreferenced[:3]}, "
                f"missing={len(self.missing)} {self.missing[:3]}, "
                f"operation_leases={self.operation_leases}, upload_leases={self.upload_leases})")


def audit(database, objects: Callable[[], Objects]) -> Audit:
    """`database`: a SQLAlchemy engine on Galley's database; `objects`: lists the stores."""
    now = time.time()
    with database.connect() as db:
        referenced = {(store, digest) for store, digest in db.execute(text(_REFERENCED))}
        operations = [dict(row) for row in db.execute(text(
            "SELECT id, resource_id, action, lease_owner, lease_until FROM operations "
            "WHERE status = 'InProgress' AND lease_until > :now"), {"now": now}).mappings()]
        uploads = [dict(row) for row in db.execute(text(
            "SELECT resource_key, owner, until FROM upload_leases")).mappings()]
    stored = objects()
    return Audit(unreferenced=sorted(stored - referenced), missing=sorted(referenced - stored),
                 operation_leases=operations, upload_leases=uploads)


def cluster_objects(cluster) -> Callable[[], Objects]:
    """Every chunk object in the cluster's buckets (galley-<region>, keys <zone>/r<slot>/<fan>/<digest>)."""

    def listing() -> Objects:
        client = cluster.s3_client()
        found: Objects = set()
        for region in cluster.regions:
            pages = client.get_paginator("list_objects_v2").paginate(Bucket=f"galley-{region}")
            for page in pages:
                for item in page.get("Contents", ()):
                    zone, slot, _fan, digest = item["Key"].split("/")
                    if slot.startswith("r"):  # chunk stores; not build logs (slot `logs`)
                        found.add((f"{region}/{zone}/{slot}", digest))
        return found

    return listing


def server_objects(app) -> Callable[[], Objects]:
    """Every object in a server's stores: each store the database names and each region's first."""

    def listing() -> Objects:
        engine = app.state.content
        stores = set(engine.repo.store_ids()) | {engine.locations.home_store(region)
                                                  for region in engine.locations.settings.regions}
        return {(store_id, key) for store_id in stores for key in engine.locations.open(store_id).keys()}

    return listing


def collect_garbage(url: str, grace_seconds: int = 0, timeout: float = 300) -> dict:
    """POST /galley/store/gc with a grace (0: whatever no live writer holds goes)."""
    from . import admin_http as httpx

    answer = httpx.post(f"{url}/galley/store/gc", params={"graceSeconds": str(grace_seconds)}, timeout=timeout)
    assert answer.status_code == 200, answer.text
    return answer.json()
