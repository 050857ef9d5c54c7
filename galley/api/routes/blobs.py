"""Blobs of storage accounts (a small part of Azure Blob's data plane): VHDs to build from.

  PUT    /blob/{account}/{container}/{blob}   upload (raw, VHD or qcow2; stored as a disk image)
  GET    /blob/{account}/{container}/{blob}   download as a fixed VHD (Range supported)
  HEAD   /blob/{account}/{container}/{blob}
  DELETE /blob/{account}/{container}/{blob}
  GET    /blob/{account}/{container}          list (JSON)

The URI https://{account}.blob.core.windows.net/{container}/{blob} names the same blob.
"""

from __future__ import annotations

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from ...content.vhd import VhdFooter
from ...domain import ids
from ...domain.errors import NotFound
from ...domain.names import check_blob_name, check_container_name
from ...domain.resource import Resource
from ..wire import json_response
from .content import VHD_FIXED_TYPE, _ranged, check_upload_format, receive_image
from .resources import service_of

router = APIRouter(tags=["Blobs"])
PATH = "/blob/{account}/{container}/{blob:path}"


def _account(request: Request, name: str) -> Resource:
    with service_of(request).store.read() as tx:
        account = tx.find_named(ids.STORAGE_ACCOUNT_TYPE, name)
    if account is None:
        raise NotFound(f"Storage account '{name}' does not exist.", target="account", code="AccountNotFound")
    return account


def _blob_resource(account: Resource, container: str, blob: str) -> Resource:
    """A stand-in resource whose key is where the blob's content is recorded."""
    check_container_name(container)
    check_blob_name(blob)
    return Resource(id=ids.blob_key(account.id, container, blob), type="blob", name=blob,
                    subscription_id=account.subscription_id, resource_group=account.resource_group,
                    location=account.location)


def _blob_bytes(virtual_size: int) -> int:
    """A blob is served as a fixed VHD (the disk and a 512-byte footer) when its size allows."""
    return virtual_size + (512 if virtual_size % 512 == 0 else 0)


def _describe(request: Request, account: Resource, container: str, blob: str, virtual_size: int) -> dict:
    return {"account": account.name, "container": container, "name": blob,
            "size": _blob_bytes(virtual_size), "virtualSize": virtual_size,
            "url": f"{str(request.base_url).rstrip('/')}/blob/{account.name}/{container}/{blob}",
            "azureUrl": f"https://{account.name}.blob.core.windows.net/{container}/{blob}",
            "location": account.location}


@router.put(PATH, operation_id="Blobs_Upload")
async def upload(request: Request, account: str, container: str, blob: str,
                 format: str | None = Query(None)) -> Response:
    check_upload_format(format)
    owner = await run_in_threadpool(_account, request, account)
    stand_in = _blob_resource(owner, container, blob)
    # A blob may be any file (a File customizer's source); the whole-sector rule applies where one
    # becomes a disk (domain/sources.resolve_blob).
    size = await receive_image(request, stand_in, format, whole_sectors=False)
    return json_response(_describe(request, owner, container, blob, size), 201)


def _content_id(request: Request, stand_in: Resource) -> str:
    found = request.app.state.content.repo.disk_contents(stand_in.key)
    if -1 not in found:
        raise NotFound(f"Blob '{stand_in.name}' does not exist.", target="blob", code="BlobNotFound")
    return found[-1]


@router.get(PATH, operation_id="Blobs_Download")
def download(request: Request, account: str, container: str, blob: str) -> Response:
    stand_in = _blob_resource(_account(request, account), container, blob)
    content = request.app.state.content
    content_id = _content_id(request, stand_in)
    reader = content.reader(content_id, content.repo.placements(content_id))
    footer = VhdFooter.new(VHD_FIXED_TYPE, reader.virtual_size).pack() if reader.virtual_size % 512 == 0 else b""
    return _ranged(request, reader, footer, "application/octet-stream")


@router.head(PATH, operation_id="Blobs_GetProperties")
def head(request: Request, account: str, container: str, blob: str) -> Response:
    stand_in = _blob_resource(_account(request, account), container, blob)
    content = request.app.state.content.repo.content(_content_id(request, stand_in))
    return Response(status_code=200, headers={"Content-Length": str(_blob_bytes(content["virtual_size"])),
                                              "x-ms-blob-type": "PageBlob"})


@router.delete(PATH, operation_id="Blobs_Delete")
def delete(request: Request, account: str, container: str, blob: str) -> Response:
    stand_in = _blob_resource(_account(request, account), container, blob)
    _content_id(request, stand_in)
    content = request.app.state.content
    content.repo.drop_resource(stand_in.key)
    content.collect_garbage()
    return Response(status_code=202)


@router.get("/blob/{account}/{container}", operation_id="Blobs_List")
def list_blobs(request: Request, account: str, container: str) -> Response:
    owner = _account(request, account)
    prefix = ids.blob_key(owner.id, container, "")
    repo = request.app.state.content.repo
    items = []
    for key, content_id in repo.contents_with_prefix(prefix):
        content = repo.content(content_id)
        items.append(_describe(request, owner, container, key[len(prefix):], content["virtual_size"]))
    return json_response({"value": items})
