"""The platform image catalog: Azure's "VM images" named publisher:offer:sku:version.

A platform image is one immutable OS disk shared by every subscription and region. Its disk
content lives in the content repository under `content_key(...)` at LUN -1, like a disk's.
The build pipeline finds a template's PlatformImage source with `resolve`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Iterable, Protocol

from . import enums
from .errors import Conflict, InvalidParameter
from .names import INT32_MAX

LATEST = "latest"
OS_DISK_LUN = -1
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_VERSION = re.compile(r"([0-9]{1,10})\.([0-9]{1,10})\.([0-9]{1,10})")


@dataclass(frozen=True)
class PlatformImage:
    publisher: str
    offer: str
    sku: str
    version: str
    os_type: str = "Linux"
    hyper_v_generation: str = "V1"
    architecture: str = "x64"
    virtual_size: int = 0
    created_at: str = ""

    @property
    def key(self) -> str:
        return image_key(self.publisher, self.offer, self.sku, self.version)

    @property
    def content_key(self) -> str:
        return content_key(self.publisher, self.offer, self.sku, self.version)

    @property
    def urn(self) -> str:
        return f"{self.publisher}:{self.offer}:{self.sku}:{self.version}"


class CatalogReader(Protocol):
    """What the catalog needs from a store transaction (SqlTransaction has it)."""

    def platform_images(self, publisher: str | None = None, offer: str | None = None,
                        sku: str | None = None) -> list[PlatformImage]: ...

    def platform_image(self, publisher: str, offer: str, sku: str, version: str) -> PlatformImage | None: ...


class CatalogWriter(CatalogReader, Protocol):
    def save_platform_image(self, image: PlatformImage) -> None: ...


def image_key(publisher: str, offer: str, sku: str, version: str) -> str:
    """The catalog's unique key: names compare case-insensitively, as Azure's do."""
    return f"{publisher}/{offer}/{sku}/{version}".lower()


def content_key(publisher: str, offer: str, sku: str, version: str) -> str:
    """Where the image's OS disk content is attached in the content repository (at LUN -1)."""
    return f"platform/{publisher}/{offer}/{sku}/{version}".lower()


def arm_id(subscription_id: str, region: str, publisher: str, offer: str | None = None,
           sku: str | None = None, version: str | None = None) -> str:
    """The ARM id of a publisher, offer, SKU or version in a region, as Azure spells it (capitalized
    fixed words): /Subscriptions/{s}/Providers/Microsoft.Compute/Locations/{r}/Publishers/{p}
    /ArtifactTypes/VMImage/Offers/{o}/Skus/{k}/Versions/{v}."""
    path = f"/Subscriptions/{subscription_id}/Providers/Microsoft.Compute/Locations/{region}/Publishers/{publisher}"
    if offer is not None:
        path += f"/ArtifactTypes/VMImage/Offers/{offer}"
    if sku is not None:
        path += f"/Skus/{sku}"
    if version is not None:
        path += f"/Versions/{version}"
    return path


def parse_version_id(value: str) -> tuple[str, str, str, str] | None:
    """(publisher, offer, sku, version) of a version's ARM id (any case); None for other ids."""
    parts = value.strip("/").split("/")
    named = {parts[i].lower(): parts[i + 1] for i in range(0, len(parts) - 1, 2)}
    if named.get("artifacttypes", "").lower() != "vmimage":
        return None
    try:
        return named["publishers"], named["offers"], named["skus"], named["versions"]
    except KeyError:
        return None


def is_latest(version: str) -> bool:
    return version.lower() == LATEST


def version_order(version: str) -> tuple[int, ...]:
    """Azure's ordering: dot-separated parts compared as integers (1.10.0 comes after 1.9.0)."""
    return tuple(int(part) for part in version.split("."))


def newest_first(images: Iterable[PlatformImage]) -> list[PlatformImage]:
    return sorted(images, key=lambda image: version_order(image.version), reverse=True)


def resolve(tx: CatalogReader, publisher: str, offer: str, sku: str, version: str) -> PlatformImage | None:
    """The image a PlatformImage source names; version 'latest' (any case) is the highest one."""
    if not is_latest(version):
        return tx.platform_image(publisher, offer, sku, version)
    images = newest_first(tx.platform_images(publisher, offer, sku))
    return images[0] if images else None


# ---- checks ------------------------------------------------------------------------------------

def check_name(value: str, field: str) -> str:
    if not _NAME.fullmatch(value or ""):
        raise InvalidParameter(
            f"The {field} name '{value}' is invalid: use 1-64 letters, digits, hyphens, underscores "
            "and periods.", target=field)
    return value


def check_version(value: str) -> str:
    match = _VERSION.fullmatch(value or "")
    if not match:
        raise InvalidParameter(
            f"The version '{value}' is invalid: a platform image version is three numbers separated by "
            "periods, such as 1.0.0 or 0.20250101.1.", target="version")
    if any(int(part) > INT32_MAX for part in match.groups()):
        raise InvalidParameter(
            f"The version '{value}' is invalid: each part must be at most {INT32_MAX}.", target="version")
    return value


def new_image(publisher: str, offer: str, sku: str, version: str, *, os_type: str | None = None,
              hyper_v_generation: str | None = None, architecture: str | None = None) -> PlatformImage:
    """A checked catalog entry, before its content is known (virtual_size 0)."""
    return PlatformImage(
        publisher=check_name(publisher, "publisher"), offer=check_name(offer, "offer"),
        sku=check_name(sku, "sku"), version=check_version(version),
        os_type=enums.normalize(os_type, enums.OS_TYPES, "osType", default="Linux"),
        hyper_v_generation=enums.normalize(hyper_v_generation, enums.HYPERV_GENERATIONS, "hyperVGeneration",
                                           default="V1"),
        architecture=enums.normalize(architecture, enums.ARCHITECTURES, "architecture", default="x64"))


def already_registered(image: PlatformImage) -> Conflict:
    return Conflict(f"Platform image {image.urn} is already registered; versions are immutable. "
                    "Register a new version instead.", target="version")


def check_new(tx: CatalogReader, image: PlatformImage) -> None:
    if tx.platform_image(image.publisher, image.offer, image.sku, image.version) is not None:
        raise already_registered(image)


def register(tx: CatalogWriter, image: PlatformImage) -> PlatformImage:
    """Add a version, spelling its publisher, offer and sku the way the catalog already does
    (names are case-insensitive, so 'debian' joins the existing publisher 'Debian')."""
    check_new(tx, image)
    for sibling in tx.platform_images(image.publisher):
        image = replace(image, publisher=sibling.publisher)
        if sibling.offer.lower() == image.offer.lower():
            image = replace(image, offer=sibling.offer)
            if sibling.sku.lower() == image.sku.lower():
                image = replace(image, sku=sibling.sku)
    tx.save_platform_image(image)
    return image


def distinct(names: Iterable[str]) -> list[str]:
    """Names in case-insensitive alphabetical order, each once."""
    seen: dict[str, str] = {}
    for name in names:
        seen.setdefault(name.lower(), name)
    return [seen[key] for key in sorted(seen)]
