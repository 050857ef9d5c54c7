"""Storage accounts (Microsoft.Storage/storageAccounts): where VHD blobs live, as seed 004's
"VHD in a storage account" sources. Names are unique across the whole installation, as in Azure."""

from __future__ import annotations

import re

from . import enums, fields
from .errors import Conflict, InvalidResourceName
from .ids import STORAGE_ACCOUNT_TYPE
from .ports import Context
from .resource import Resource, iso, utc_now

TYPE = STORAGE_ACCOUNT_TYPE
KIND = "storage account"
UPDATABLE: frozenset[str] = frozenset()
READ_ONLY = frozenset({"provisioningState", "primaryEndpoints", "creationTime", "primaryLocation",
                       "statusOfPrimary"})
SKUS = ("Standard_LRS", "Standard_GRS", "Standard_RAGRS", "Standard_ZRS", "Premium_LRS", "Premium_ZRS",
        "Standard_GZRS", "Standard_RAGZRS")
KINDS = ("StorageV2", "Storage", "BlobStorage", "BlockBlobStorage", "FileStorage")
_NAME = re.compile(r"[a-z0-9]{3,24}")
# Galley serves each account's Blob service path-style, https://HOST:PORT/{account}/…, beside its
# own routes: an account may not take the first path segment of one of them (nor an OIDC tenant
# alias, which also comes first: /common/oauth2/v2.0/token).
RESERVED_NAMES = frozenset({"subscriptions", "providers", "tenants", "blob", "galley", "metadata", "docs",
                            "redoc", "openapi", "common", "organizations", "consumers", "portal", "static",
                            "healthz", "readyz", "metrics"})


def check_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise InvalidResourceName(f"Storage account name '{name}' is invalid: use 3-24 lower-case letters "
                                  "and digits.", target="accountName", code="AccountNameInvalid")
    if name in RESERVED_NAMES:
        raise InvalidResourceName(
            f"Storage account name '{name}' is reserved: Galley serves blobs at https://HOST:PORT/{{account}}/ "
            f"beside its own routes, and '/{name}' is one of them. Reserved names: "
            f"{', '.join(sorted(RESERVED_NAMES))}.", target="accountName", code="AccountNameInvalid")


def blob_endpoint(public_url: str, name: str) -> str:
    """The account's Blob service, path-style on Galley's own address (as Azure's SDKs address
    an IP-literal host: the account is the first path segment)."""
    return f"{public_url.rstrip('/')}/{name}/"


def normalize(ctx: Context, resource: Resource, props: dict, existing: Resource | None) -> dict:
    if existing is None:
        twin = ctx.tx.find_named(TYPE, resource.name)
        if twin is not None:
            raise Conflict(f"The storage account named {resource.name} is already taken.",
                           code="StorageAccountAlreadyTaken", target="accountName")
    kept_kind = existing.properties.get("kind", "StorageV2") if existing is not None else "StorageV2"
    return {
        # `kind` is sent beside properties; kept among them, and rendered beside them again.
        "kind": enums.normalize(props.get("kind"), KINDS, "kind", default=kept_kind),
        "primaryEndpoints": {"blob": blob_endpoint(ctx.settings.public_url, resource.name)},
        "primaryLocation": resource.location,
        "statusOfPrimary": "available",
        "creationTime": existing.properties["creationTime"] if existing else iso(utc_now()),
    }


def normalize_sku(body: dict, existing: Resource | None) -> dict:
    sku = fields.obj(body, "sku", "sku")
    if sku is None:
        return existing.sku if existing is not None and existing.sku else {"name": "Standard_LRS"}
    return {"name": enums.normalize(sku.get("name"), SKUS, "sku.name", default="Standard_LRS")}
