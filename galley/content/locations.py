"""Which store holds which copy: a region has zones, and each replica of a region has its own store.

Store ids look like `eastus/1/r0` (region, zone, replica slot). A replica slot is an independent
copy: versions share chunks with each other inside one slot, never across slots. Disks, snapshots,
managed images and a version's first replica in its source region live in slot r0 of the
region's first zone.
"""

from __future__ import annotations

import threading

from ..config import Settings
from .object_store import ObjectStore, open_store


class Locations:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._opened: dict[str, ObjectStore] = {}
        self._lock = threading.Lock()

    @staticmethod
    def region_of(store_id: str) -> str:
        return store_id.split("/", 1)[0]

    def store_id(self, region: str, zone: str, slot: int) -> str:
        return f"{region}/{zone}/r{slot}"

    def home_store(self, region: str) -> str:
        return self.store_id(region, self.settings.zones[0], 0)

    def replica_stores(self, region: str, count: int, storage_account_type: str) -> list[str]:
        """One store per replica; zone-redundant types spread replicas across the zones."""
        zones = self.settings.zones
        spread = storage_account_type.endswith("ZRS")
        return [self.store_id(region, zones[slot % len(zones)] if spread else zones[0], slot)
                for slot in range(count)]

    def open(self, store_id: str) -> ObjectStore:
        with self._lock:
            store = self._opened.get(store_id)
            if store is None:
                region, zone, slot = store_id.split("/")
                base = self.settings.store_url_template.format(region=region, zone=zone)
                if base.startswith("s3://"):
                    path, _, query = base.partition("?")
                    url = f"{path.rstrip('/')}/{slot}" + (f"?{query}" if query else "")
                else:
                    url = f"{base.rstrip('/')}/{slot}"
                store = self._opened[store_id] = open_store(url)
            return store
