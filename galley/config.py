"""Operator settings, read from the environment (GALLEY_*) with embedded defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_REGIONS = (
    "eastus",
    "eastus2",
    "westus2",
    "westcentralus",
    "southcentralus",
    "northeurope",
    "westeurope",
)


@dataclass(frozen=True)
class Limits:
    """Per subscription, per region quotas from the seed (001, "Limites")."""

    galleries: int = 100
    image_definitions: int = 1_000
    image_versions: int = 10_000
    replicas_per_region: int = 10
    data_disk_max_gb: int = 1_024


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    regions: tuple[str, ...]
    limits: Limits = field(default_factory=Limits)
    page_size: int = 1_000
    max_body_bytes: int = 1_048_576
    worker_poll_seconds: float = 0.5
    # Region stores: each region has zones; {region} and {zone} fill the template of a store's URL.
    zones: tuple[str, ...] = ("1", "2", "3")
    store_template: str = ""
    # Bytes per second that replication may move between stores (0: unlimited).
    replication_bandwidth: int = 0
    # Image template builds that run at once on this server.
    build_threads: int = 2

    @property
    def store_url_template(self) -> str:
        return self.store_template or f"file://{self.home}/stores/{{region}}/{{zone}}"

    @property
    def region_set(self) -> frozenset[str]:
        return frozenset(self.regions)


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw else default


def load_settings() -> Settings:
    home = Path(os.environ.get("GALLEY_HOME") or Path.home() / ".galley").expanduser()
    database_url = os.environ.get("GALLEY_DATABASE_URL") or f"sqlite:///{home / 'galley.db'}"
    regions_raw = os.environ.get("GALLEY_REGIONS")
    regions = (
        tuple(r.strip().lower().replace(" ", "") for r in regions_raw.split(",") if r.strip())
        if regions_raw
        else DEFAULT_REGIONS
    )
    limits = Limits(
        galleries=_int_env("GALLEY_LIMIT_GALLERIES", Limits.galleries),
        image_definitions=_int_env("GALLEY_LIMIT_IMAGE_DEFINITIONS", Limits.image_definitions),
        image_versions=_int_env("GALLEY_LIMIT_IMAGE_VERSIONS", Limits.image_versions),
        replicas_per_region=_int_env("GALLEY_LIMIT_REPLICAS_PER_REGION", Limits.replicas_per_region),
    )
    return Settings(
        home=home,
        database_url=database_url,
        regions=regions,
        limits=limits,
        page_size=_int_env("GALLEY_PAGE_SIZE", 1_000),
        zones=tuple(z.strip() for z in os.environ.get("GALLEY_ZONES", "1,2,3").split(",") if z.strip()),
        store_template=os.environ.get("GALLEY_STORE_TEMPLATE", ""),
        replication_bandwidth=_int_env("GALLEY_REPLICATION_BANDWIDTH", 0),
        build_threads=_int_env("GALLEY_BUILD_THREADS", 2),
    )
