"""Operator settings, read from the environment (GALLEY_*) with embedded defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

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
    # Azure's "Total Regional vCPUs": every VM that is not deallocated counts.
    regional_vcpus: int = 20


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
    # Where clients reach this server (its ARM endpoint and its authority); the first origin is
    # canonical, the others (other names of the same server) are accepted as issuers and audiences.
    public_url: str = "https://127.0.0.1:8070"
    alternate_urls: tuple[str, ...] = ()
    token_lifetime: int = 3600
    # External OIDC issuers whose tokens are accepted too, and the CA bundle to reach them with.
    trusted_issuers: tuple[str, ...] = ()
    issuer_ca_bundle: str | None = None
    extra_audiences: tuple[str, ...] = ()
    # The id of the subscription made on first start (a random GUID when empty).
    default_subscription_id: str | None = None
    # The CA clients should trust (recorded in credentials.json on first start).
    ca_bundle: str | None = None
    # Days the activity log keeps its entries (0: forever).
    activity_retention_days: int = 90
    # How long a PUT/PATCH/DELETE waits for its operation before answering: work that ends within
    # this budget is answered with its final state, without an async operation (0: always async).
    quick_answer_ms: int = 200
    # Slow clients: seconds a connection may take to send a request's head, and to send the next
    # piece of a body it declared (then 408 and closed); uploads one client address may run at once.
    header_timeout: float = 30.0
    body_timeout: float = 60.0
    uploads_per_client: int = 8
    # One line per request on the `galley.access` logger.
    access_log: bool = True
    # Memory (MiB) that running VMs may take on this host; more is refused, not swapped.
    vm_memory_mib: int = 4096
    # Seconds a guest has to shut down (ACPI power button) on powerOff and deallocate before it is killed.
    vm_stop_grace: float = 60.0
    # Seconds a VM's create waits for a generalized image's guest to boot and provision (its guest
    # agent answering, systemd's boot done) before it fails with OSProvisioningTimedOut (0: no wait).
    vm_provisioning_timeout: float = 600.0

    @property
    def origins(self) -> tuple[str, ...]:
        found = [self.public_url.rstrip("/")]
        for url in self.alternate_urls or loopback_alternates(self.public_url):
            if url.rstrip("/") not in found:
                found.append(url.rstrip("/"))
        return tuple(found)

    @property
    def store_url_template(self) -> str:
        return self.store_template or f"file://{self.home}/stores/{{region}}/{{zone}}"

    @property
    def region_set(self) -> frozenset[str]:
        return frozenset(self.regions)


def loopback_alternates(public_url: str) -> tuple[str, ...]:
    """The same server by its other loopback names, when it is reached on a loopback address."""
    parsed = urlsplit(public_url)
    if parsed.hostname not in ("127.0.0.1", "localhost", "::1"):
        return ()
    port = f":{parsed.port}" if parsed.port else ""
    return tuple(f"{parsed.scheme}://{host}{port}" for host in ("127.0.0.1", "localhost", "[::1]"))


def _list_env(name: str) -> tuple[str, ...]:
    return tuple(v.strip() for v in os.environ.get(name, "").split(",") if v.strip())


def _int_env(name: str, default: int) -> int:
    raw = os.environ.get(name)
    return int(raw) if raw else default


def _float_env(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw else default


def _bool_env(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    return default if not raw else raw not in ("0", "false", "no", "off")


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
        regional_vcpus=_int_env("GALLEY_LIMIT_REGIONAL_VCPUS", Limits.regional_vcpus),
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
        public_url=os.environ.get("GALLEY_PUBLIC_URL") or "https://127.0.0.1:8070",
        alternate_urls=_list_env("GALLEY_ALTERNATE_URLS"),
        token_lifetime=_int_env("GALLEY_TOKEN_LIFETIME", 3600),
        trusted_issuers=_list_env("GALLEY_OIDC_ISSUERS"),
        issuer_ca_bundle=os.environ.get("GALLEY_OIDC_CA_BUNDLE") or None,
        extra_audiences=_list_env("GALLEY_TOKEN_AUDIENCES"),
        default_subscription_id=os.environ.get("GALLEY_DEFAULT_SUBSCRIPTION_ID") or None,
        ca_bundle=os.environ.get("GALLEY_CA_BUNDLE") or None,
        activity_retention_days=_int_env("GALLEY_ACTIVITY_RETENTION_DAYS", 90),
        quick_answer_ms=_int_env("GALLEY_QUICK_ANSWER_MS", 200),
        header_timeout=_float_env("GALLEY_HEADER_TIMEOUT", 30.0),
        body_timeout=_float_env("GALLEY_BODY_TIMEOUT", 60.0),
        uploads_per_client=_int_env("GALLEY_UPLOADS_PER_CLIENT", 8),
        access_log=_bool_env("GALLEY_ACCESS_LOG", True),
        vm_memory_mib=_int_env("GALLEY_VM_MEMORY_MIB", host_memory_for_vms()),
        vm_stop_grace=_float_env("GALLEY_VM_STOP_GRACE", 60.0),
        vm_provisioning_timeout=_float_env("GALLEY_VM_PROVISIONING_TIMEOUT", 600.0),
    )


def host_memory_for_vms() -> int:
    """MiB of this host's memory VMs may use: all of it but 2 GiB or a quarter, whichever is more,
    kept for Galley and the system."""
    try:
        with open("/proc/meminfo") as meminfo:
            total_kib = next(int(line.split()[1]) for line in meminfo if line.startswith("MemTotal:"))
    except (OSError, StopIteration, ValueError):
        return Settings.vm_memory_mib
    total = total_kib // 1024
    return max(0, total - max(2048, total // 4))
