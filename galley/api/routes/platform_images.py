"""The platform image catalog over HTTP.

Azure's read endpoints, as `ComputeManagementClient.virtual_machine_images` calls them (every
configured region lists the whole catalog: content is global):

  GET /subscriptions/{sub}/providers/Microsoft.Compute/locations/{location}/publishers
      .../publishers/{publisher}/artifacttypes/vmimage/offers
      .../offers/{offer}/skus
      .../skus/{sku}/versions            ($top, $orderby=name [asc|desc], $expand=properties)
      .../versions/{version}             (a version, or 'latest')

Galley's own endpoints that fill it (versions are immutable: a second PUT is a 409):

  PUT    /providers/Galley.Platform/publishers/{p}/offers/{o}/skus/{s}/versions/{v}
             ?osType=Linux&hyperVGeneration=V1&architecture=x64&format=raw|vhd|qcow2, body: the disk
  GET    (same path; the version may be 'latest')
  DELETE (same path)
  GET    /providers/Galley.Platform/images?publisher=&offer=&sku=
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from ... import uploads
from ...domain import platform_images as catalog
from ...domain.errors import Conflict, InvalidParameter, NotFound
from ...domain.names import check_subscription_id
from ...domain.platform_images import PlatformImage
from ...domain.resource import iso, utc_now
from ..api_versions import compute_api
from ..wire import json_response
from .content import _ingest, _spool, _tmp_dir, check_upload_format

router = APIRouter(tags=["PlatformImages"])
GIB = 1024 ** 3

# Paths are declared lower-case: CanonicalPathMiddleware lowers their fixed words (and, since
# 'publishers', 'offers' and 'skus' are not among the words it knows take a name, the names
# after them too; the catalog matches names case-insensitively and answers in its own spelling).
PUBLISHERS = "/subscriptions/{subscriptionId}/providers/microsoft.compute/locations/{location}/publishers"
OFFERS = PUBLISHERS + "/{publisher}/artifacttypes/vmimage/offers"
SKUS = OFFERS + "/{offer}/skus"
VERSIONS = SKUS + "/{sku}/versions"
ADMIN = "/providers/Galley.Platform"
ADMIN_ITEM = ADMIN + "/publishers/{publisher}/offers/{offer}/skus/{sku}/versions/{version}"


# ---- Azure's read endpoints ------------------------------------------------------------------

def _images(request: Request, publisher: str | None = None, offer: str | None = None,
            sku: str | None = None) -> list[PlatformImage]:
    with request.app.state.store.read() as tx:
        return tx.platform_images(publisher, offer, sku)


def _region(request: Request, subscription_id: str, location: str) -> str:
    check_subscription_id(subscription_id)
    region = location.replace(" ", "").lower()
    known = request.app.state.settings.region_set
    if region not in known:
        raise NotFound(f"The location '{location}' is not available. Configured regions: "
                       f"{', '.join(sorted(known))}.", target="location", code="NotFound")
    return region


def _entry(name: str, region: str, arm_id: str) -> dict:
    return {"name": name, "location": region, "id": arm_id}


def _not_found(what: str, urn: str) -> NotFound:
    return NotFound(f"Artifact: VMImage was not found: the platform image catalog has no {what} '{urn}'.",
                    code="NotFound")


def _matching(request: Request, what: str, urn: str, **names: str) -> list[PlatformImage]:
    images = _images(request, **names)
    if not images:
        raise _not_found(what, urn)
    return images


def _vm_image(image: PlatformImage, subscription_id: str, region: str, with_properties: bool = True) -> dict:
    body = _entry(image.version, region, catalog.arm_id(subscription_id, region, image.publisher, image.offer,
                                                        image.sku, image.version))
    if with_properties:
        body["properties"] = {
            "osDiskImage": {"operatingSystem": image.os_type, "sizeInBytes": image.virtual_size,
                            "sizeInGb": -(-image.virtual_size // GIB)},
            "dataDiskImages": [],
            "hyperVGeneration": image.hyper_v_generation,
            "architecture": image.architecture,
            "automaticOSUpgradeProperties": {"automaticOSUpgradeSupported": False},
            "imageDeprecationStatus": {"imageState": "Active"},
        }
    return body


@router.get(PUBLISHERS, operation_id="VirtualMachineImages_ListPublishers")
def list_publishers(request: Request, subscriptionId: str, location: str,
                    api_version: str = Depends(compute_api)) -> Response:
    region = _region(request, subscriptionId, location)
    names = catalog.distinct(image.publisher for image in _images(request))
    return json_response([_entry(name, region, catalog.arm_id(subscriptionId, region, name)) for name in names])


@router.get(OFFERS, operation_id="VirtualMachineImages_ListOffers")
def list_offers(request: Request, subscriptionId: str, location: str, publisher: str,
                api_version: str = Depends(compute_api)) -> Response:
    region = _region(request, subscriptionId, location)
    images = _matching(request, "publisher", publisher, publisher=publisher)
    names = catalog.distinct(image.offer for image in images)
    return json_response([_entry(name, region, catalog.arm_id(subscriptionId, region, images[0].publisher, name))
                          for name in names])


@router.get(SKUS, operation_id="VirtualMachineImages_ListSkus")
def list_skus(request: Request, subscriptionId: str, location: str, publisher: str, offer: str,
              api_version: str = Depends(compute_api)) -> Response:
    region = _region(request, subscriptionId, location)
    images = _matching(request, "offer", f"{publisher}:{offer}", publisher=publisher, offer=offer)
    first = images[0]
    return json_response([_entry(name, region, catalog.arm_id(subscriptionId, region, first.publisher, first.offer, name))
                          for name in catalog.distinct(image.sku for image in images)])


@router.get(VERSIONS, operation_id="VirtualMachineImages_List")
def list_versions(request: Request, subscriptionId: str, location: str, publisher: str, offer: str,
                  sku: str, top: int | None = Query(None, alias="$top", ge=1),
                  orderby: str | None = Query(None, alias="$orderby"),
                  expand: str | None = Query(None, alias="$expand"),
                  api_version: str = Depends(compute_api)) -> Response:
    region = _region(request, subscriptionId, location)
    descending = _descending(orderby)
    if expand is not None and expand.lower() != "properties":
        raise InvalidParameter(f"$expand '{expand}' is not supported; use $expand=properties.", target="$expand")
    images = _matching(request, "sku", f"{publisher}:{offer}:{sku}", publisher=publisher, offer=offer, sku=sku)
    ordered = catalog.newest_first(images)
    if not descending:
        ordered.reverse()
    return json_response([_vm_image(image, subscriptionId, region, with_properties=expand is not None)
                          for image in ordered[:top]])


def _descending(orderby: str | None) -> bool:
    words = (orderby or "name").lower().split()
    if not words or words[0] != "name" or len(words) > 2 or words[1:] not in ([], ["asc"], ["desc"]):
        raise InvalidParameter(f"$orderby '{orderby}' is not supported; use 'name', 'name asc' or "
                               "'name desc' (versions in version order).", target="$orderby")
    return words[1:] == ["desc"]


@router.get(VERSIONS + "/{version}", operation_id="VirtualMachineImages_Get")
def get_version(request: Request, subscriptionId: str, location: str, publisher: str, offer: str, sku: str,
                version: str, api_version: str = Depends(compute_api)) -> Response:
    region = _region(request, subscriptionId, location)
    return json_response(_vm_image(_resolve(request, publisher, offer, sku, version), subscriptionId, region))


def _resolve(request: Request, publisher: str, offer: str, sku: str, version: str) -> PlatformImage:
    with request.app.state.store.read() as tx:
        image = catalog.resolve(tx, publisher, offer, sku, version)
    if image is None:
        raise _not_found("image", f"{publisher}:{offer}:{sku}:{version}")
    return image


# ---- Galley's catalog administration ---------------------------------------------------------

def describe(image: PlatformImage) -> dict:
    return {"publisher": image.publisher, "offer": image.offer, "sku": image.sku, "version": image.version,
            "urn": image.urn, "osType": image.os_type, "hyperVGeneration": image.hyper_v_generation,
            "architecture": image.architecture, "virtualSize": image.virtual_size,
            "sizeInGb": -(-image.virtual_size // GIB), "createdAt": image.created_at}


class _ContentHome(NamedTuple):
    """What the content upload helper needs to know of its owner: where it is recorded and stored."""

    key: str
    location: str


@router.put(ADMIN_ITEM, operation_id="PlatformImages_Register", status_code=201)
async def register(request: Request, publisher: str, offer: str, sku: str, version: str,
                   osType: str | None = Query(None), hyperVGeneration: str | None = Query(None),
                   architecture: str | None = Query(None),
                   format: str | None = Query(None, description="raw, vhd or qcow2; detected when omitted")
                   ) -> Response:
    check_upload_format(format)
    image = catalog.new_image(publisher, offer, sku, version, os_type=osType,
                              hyper_v_generation=hyperVGeneration, architecture=architecture)
    owner = uploads.this_process()
    await run_in_threadpool(_begin_upload, request, image, owner)
    # The lease is kept for the whole upload, ingest included: while it is held nobody else
    # attaches content under this image's key.
    keeper = asyncio.create_task(_keep_lease(request, image, owner))
    spooled: Path | None = None
    registered = None
    try:
        spooled = await _spool(request, _tmp_dir(request))
        registered = await run_in_threadpool(_store_upload, request, image, spooled, format)
    finally:
        keeper.cancel()
        if spooled is not None:
            spooled.unlink(missing_ok=True)
        if registered is None:
            await run_in_threadpool(_abandon_upload, request, image)
    return json_response(describe(registered), 201)


def _begin_upload(request: Request, image: PlatformImage, owner: str) -> None:
    with request.app.state.store.write() as tx:
        catalog.check_new(tx, image)
        lease = tx.upload_lease(image.content_key)
        if lease is not None and lease[1] > time.time() and uploads.owner_alive(lease[0]):
            raise Conflict(f"Platform image {image.urn} is being uploaded by another request; wait for it "
                           "to finish (or fail).", code="OperationNotAllowed", target="version")
        tx.set_upload_lease(image.content_key, owner, time.time() + uploads.LEASE_SECONDS)


async def _keep_lease(request: Request, image: PlatformImage, owner: str) -> None:
    def renew() -> None:
        with request.app.state.store.write() as tx:
            tx.set_upload_lease(image.content_key, owner, time.time() + uploads.LEASE_SECONDS)

    while True:
        await asyncio.sleep(uploads.LEASE_SECONDS / 4)
        await run_in_threadpool(renew)


def _store_upload(request: Request, image: PlatformImage, spooled: Path, fmt: str | None) -> PlatformImage:
    if spooled.stat().st_size == 0:
        raise InvalidParameter("The request body is empty: send the disk image (raw, VHD or qcow2) as the "
                               "body.", target="body", code="InvalidDiskImage")
    home = _ContentHome(image.content_key, request.app.state.settings.regions[0])
    virtual_size = _ingest(request, home, spooled, fmt)
    if virtual_size == 0:
        raise InvalidParameter("The uploaded disk image is empty (virtual size 0).", target="body",
                               code="InvalidDiskImage")
    with request.app.state.store.write() as tx:
        registered = catalog.register(tx, replace(image, virtual_size=virtual_size, created_at=iso(utc_now())))
        tx.drop_upload_lease(image.content_key)
    return registered


def _abandon_upload(request: Request, image: PlatformImage) -> None:
    """After a failed upload: no content without a catalog entry, and the lease released."""
    with request.app.state.store.read() as tx:
        registered = tx.platform_image(image.publisher, image.offer, image.sku, image.version) is not None
    if not registered:  # still ours: the lease kept anyone else from attaching content here
        request.app.state.content.repo.drop_resource(image.content_key)
    with request.app.state.store.write() as tx:
        tx.drop_upload_lease(image.content_key)


@router.get(ADMIN_ITEM, operation_id="PlatformImages_Get")
def show(request: Request, publisher: str, offer: str, sku: str, version: str) -> Response:
    return json_response(describe(_resolve(request, publisher, offer, sku, version)))


@router.delete(ADMIN_ITEM, operation_id="PlatformImages_Delete")
def delete(request: Request, publisher: str, offer: str, sku: str, version: str) -> Response:
    with request.app.state.store.write() as tx:
        image = tx.platform_image(publisher, offer, sku, version)
        if image is None:
            raise _not_found("image", f"{publisher}:{offer}:{sku}:{version}")
        tx.delete_platform_image(publisher, offer, sku, version)
    content = request.app.state.content
    content.repo.drop_resource(image.content_key)
    content.collect_garbage()
    return json_response(describe(image))


@router.get(ADMIN + "/images", operation_id="PlatformImages_List")
def list_images(request: Request, publisher: str | None = Query(None), offer: str | None = Query(None),
                sku: str | None = Query(None)) -> Response:
    images = sorted(_images(request, publisher, offer, sku),
                    key=lambda i: (i.publisher.lower(), i.offer.lower(), i.sku.lower(),
                                   catalog.version_order(i.version)))
    return json_response({"value": [describe(image) for image in images]})
