"""Resolving what a version, image or disk is made from, and what OS that source holds."""

from __future__ import annotations

import re
from contextvars import ContextVar
from typing import Callable

from . import disk_access, sharing
from .errors import Conflict, InvalidParameter, NotFound
from .ids import (DISK_TYPE, IMAGE_VERSION_TYPE, MANAGED_IMAGE_TYPE, SNAPSHOT_TYPE,
                  STORAGE_ACCOUNT_TYPE, blob_key, parent_id, parse_resource_id)
from .limits import SECTOR
from .ports import Reader
from .resource import SUCCEEDED, Resource

_BLOB_URI = re.compile(r"https?://[^/\s]+/[^/\s]+/\S+")
# https://{account}.blob.core.windows.net/{container}/{blob}, or Galley's own
# http(s)://{galley host}/blob/{account}/{container}/{blob}.
_AZURE_BLOB = re.compile(r"https?://([a-z0-9]{3,24})\.blob\.[^/]+/([^/]+)/(.+)")
_GALLEY_BLOB = re.compile(r"https?://[^/]+/blob/([a-z0-9]{3,24})/([^/]+)/(.+)")
# Galley's Blob service, path-style (the account is the first path segment, as Azure's SDKs
# address an IP-literal host): https://{galley host}/{account}/{container}/{blob}.
_PATH_STYLE_BLOB = re.compile(r"https?://[^/]+/([a-z0-9]{3,24})/([^/]+)/(.+)")

# What a request may do to the resources it names in its body (read a source, assign an identity):
# set by the API for each request, called with (resource id, ARM action); a call that raises refuses.
# None (Galley's own work, e.g. replication or a build) checks nothing.
source_access: ContextVar[Callable[[str, str], None] | None] = ContextVar("source_access", default=None)
# The consumer a request works for, (subscription, tenant): what galleries share with it may be
# used as sources through their /SharedGalleries/… and /CommunityGalleries/… ids.
source_consumer: ContextVar[tuple[str, str] | None] = ContextVar("source_consumer", default=None)
BLOB_TYPE = "Microsoft.Storage/storageAccounts/blobServices/containers/blobs"


def check_linked(resource_id: str, action: str) -> None:
    check = source_access.get()
    if check is not None:
        check(resource_id, action)


def resolve(reader: Reader, source_id: object, target: str, allowed: tuple[str, ...]) -> Resource:
    shared = sharing.is_shared_id(source_id)
    if shared:  # access comes from the gallery's sharing, not from roles on it
        source_id = sharing.resolve_version_id(reader, source_id, target, source_consumer.get())
    parsed = parse_resource_id(source_id, target)
    if parsed.type not in allowed:
        kinds = ", ".join(t.split("/", 1)[1] for t in allowed)
        raise InvalidParameter(f"'{source_id}' cannot be used here; expected one of: {kinds}.", target=target)
    if not shared:
        check_linked(parsed.id, f"{parsed.type}/read")
    source = reader.get(parsed.id)
    if source is None:
        raise NotFound(f"The source resource '{source_id}' was not found.", target=target,
                       code="NotFound")
    if source.provisioning_state != SUCCEEDED:
        raise Conflict(f"The source resource '{source_id}' is {source.provisioning_state}; it can be "
                       "used once its provisioning has succeeded.", target=target)
    if source.type in (DISK_TYPE, SNAPSHOT_TYPE):
        disk_access.check_not_in_use(source, "used as a source")
        disk_access.check_uploaded(source, "used as a source")
    return source


def check_blob_uri(uri: object, target: str) -> str:
    if not isinstance(uri, str) or not _BLOB_URI.fullmatch(uri):
        raise InvalidParameter(f"'{uri}' is not a blob URI such as "
                               "https://account.blob.core.windows.net/container/disk.vhd.", target=target)
    return uri


def parse_blob_uri(uri: str, target: str) -> tuple[str, str, str]:
    """(account, container, blob) named by a blob URI."""
    match = _AZURE_BLOB.fullmatch(uri) or _GALLEY_BLOB.fullmatch(uri) or _PATH_STYLE_BLOB.fullmatch(uri)
    if not match:
        raise InvalidParameter(f"'{uri}' is not a blob URI such as https://account.blob.core.windows.net/"
                               "container/disk.vhd.", target=target)
    return match.group(1), match.group(2), match.group(3)


def resolve_blob(reader: Reader, uri: object, target: str, storage_account_id: object = None,
                 account_target: str | None = None) -> Resource:
    """The storage account holding the blob a URI names; the blob must have been uploaded. A
    `storage_account_id` given beside the URI must name that same account."""
    return resolve_blob_disk(reader, uri, target, storage_account_id, account_target)[0]


def resolve_blob_disk(reader: Reader, uri: object, target: str, storage_account_id: object = None,
                      account_target: str | None = None) -> tuple[Resource, int]:
    """resolve_blob, and the size in bytes of the disk the blob holds (a VHD's, without its footer)."""
    account_name, container, blob = parse_blob_uri(check_blob_uri(uri, target), target)
    account = reader.find_named(STORAGE_ACCOUNT_TYPE, account_name)
    if account is None:
        raise NotFound(f"Storage account '{account_name}' of '{uri}' does not exist.", target=target,
                       code="NotFound")
    check_linked(f"{account.id}/blobServices/default/containers/{container}", f"{BLOB_TYPE}/read")
    size = reader.content_size(blob_key(account.id, container, blob))
    if size is None:
        raise NotFound(f"Blob '{container}/{blob}' does not exist in storage account '{account_name}' as a "
                       "disk image; upload it first (az storage blob upload, galley storage blob upload). A page "
                       "blob becomes usable a moment after its last page write.", target=target,
                       code="BlobNotFound")
    if size == 0 or size % SECTOR:
        raise InvalidParameter(f"Blob '{container}/{blob}' holds {size:,} bytes, not a whole number of "
                               f"{SECTOR}-byte sectors: it is not a disk (a VHD holds a disk of whole sectors "
                               "and a footer).", target=target, code="InvalidDiskImage")
    if storage_account_id is not None:
        _check_named_account(reader, storage_account_id, account, uri, account_target or target)
    return account, size


def _check_named_account(reader: Reader, value: object, holder: Resource, uri: object, target: str) -> None:
    parsed = parse_resource_id(value, target)
    if parsed.type != STORAGE_ACCOUNT_TYPE:
        raise InvalidParameter(f"'{value}' is not a storage account id such as /subscriptions/{{sub}}/"
                               "resourceGroups/{rg}/providers/Microsoft.Storage/storageAccounts/{name}.",
                               target=target)
    named = reader.get(parsed.id)
    guessed = _az_guessed_account(uri)
    if named is None and parsed.names[-1] == guessed != holder.name:
        return  # az's guess of the account from a path-style URL's host: the URL names the account
    if named is None:
        raise NotFound(f"Storage account '{value}' does not exist.", target=target, code="NotFound")
    if named.key != holder.key:
        raise InvalidParameter(f"'{uri}' is a blob of storage account '{holder.id}', not of '{named.id}': "
                               "storageAccountId must name the account that holds the blob.", target=target)


def _az_guessed_account(uri: object) -> str:
    """The account name `az disk create --source URI` assumes when it is not told one: the URI's
    text up to its first dot, after its last slash ('127' for https://127.0.0.1:8471/acct/c/os.vhd).
    Right for Azure's https://{account}.blob… (then it is checked as any id); for Galley's
    path-style URLs it is no account's name and is ignored when no such account exists."""
    return str(uri).split(".")[0].split("/")[-1]


def os_type_of(reader: Reader, source: Resource) -> str | None:
    props = source.properties
    if source.type == MANAGED_IMAGE_TYPE:
        return props.get("storageProfile", {}).get("osDisk", {}).get("osType")
    if source.type == IMAGE_VERSION_TYPE:
        definition = reader.get(parent_id(source.id))
        return definition.properties.get("osType") if definition else None
    return props.get("osType")


def size_gb_of(source: Resource) -> int | None:
    props = source.properties
    if source.type in (DISK_TYPE, SNAPSHOT_TYPE):
        return props.get("diskSizeGB")
    if source.type == MANAGED_IMAGE_TYPE:
        return props.get("storageProfile", {}).get("osDisk", {}).get("diskSizeGB")
    if source.type == IMAGE_VERSION_TYPE:
        return props.get("storageProfile", {}).get("osDiskImage", {}).get("sizeInGB")
    return None


def data_disk_sizes_gb(source: Resource) -> dict[int, int | None]:
    """LUN → size of the data disks a managed image or version carries."""
    storage = source.properties.get("storageProfile", {})
    if source.type == MANAGED_IMAGE_TYPE:
        return {d["lun"]: d.get("diskSizeGB") for d in storage.get("dataDisks", [])}
    if source.type == IMAGE_VERSION_TYPE:
        return {d["lun"]: d.get("sizeInGB") for d in storage.get("dataDiskImages", [])}
    return {}
