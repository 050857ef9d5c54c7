"""Accounting as the seed's billing section has it: occupied (not provisioned) size per version,
storage per region = occupied size × replicas, egress = bytes that crossed between regions, and
with deduplication both the logical and the physical bytes."""

from __future__ import annotations

from ..domain.resource import Resource
from .engine import ContentEngine


def usage_report(engine: ContentEngine, subscription_id: str, versions: list[Resource]) -> dict:
    repo = engine.repo
    keys = [v.key for v in versions]
    occupied = repo.occupied(keys)
    replicas = repo.completed_replicas(keys)
    version_rows, logical_by_region = [], {}
    for version in versions:
        used, provisioned = occupied.get(version.key, (0, 0))
        regions = []
        for region, count in sorted(replicas.get(version.key, {}).items()):
            regions.append({"region": region, "replicas": count, "storageBytes": used * count})
            logical_by_region[region] = logical_by_region.get(region, 0) + used * count
        version_rows.append({"id": version.id, "occupiedBytes": used, "provisionedBytes": provisioned,
                             "regions": regions})
    physical_by_region: dict[str, list[int]] = {}
    for store, (stored, raw) in repo.physical_by_store().items():
        totals = physical_by_region.setdefault(engine.locations.region_of(store), [0, 0])
        totals[0] += stored
        totals[1] += raw
    regions = sorted(set(logical_by_region) | set(physical_by_region))
    egress = repo.egress(subscription_id)
    return {
        "versions": version_rows,
        "regions": [{"region": r, "logicalBytes": logical_by_region.get(r, 0),
                     "physicalBytes": physical_by_region.get(r, [0, 0])[0],
                     "physicalUncompressedBytes": physical_by_region.get(r, [0, 0])[1]} for r in regions],
        "egress": egress,
        "totals": {"logicalBytes": sum(logical_by_region.values()),
                   "physicalBytes": sum(v[0] for v in physical_by_region.values()),
                   "egressBytes": sum(e["bytes"] for e in egress)},
    }
