"""Galley's own endpoints beside ARM: usage accounting, replication retries, store upkeep."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from ...content.usage import usage_report
from ..api_versions import gallery_api
from .. import answers
from ..wire import json_response, render
from .resources import SPECS, service_of

router = APIRouter(tags=["Galley"])
VERSION_PATH = next(spec for spec in SPECS if spec.expandable).item_path


@router.get("/subscriptions/{subscriptionId}/providers/microsoft.compute/galleyusage",
            operation_id="Galley_Usage")
def usage(request: Request, subscriptionId: str, api_version: str = Depends(gallery_api)) -> Response:
    versions = service_of(request).versions_in_subscription(subscriptionId)
    return json_response(usage_report(request.app.state.content, subscriptionId, versions))


@router.post(VERSION_PATH + "/retryreplication", operation_id="GalleryImageVersions_RetryReplication")
def retry_replication(request: Request, subscriptionId: str, resourceGroupName: str, galleryName: str,
                      galleryImageName: str, galleryImageVersionName: str,
                      region: str = Query(..., description="The failed region to replicate to again"),
                      api_version: str = Depends(gallery_api)) -> Response:
    spec = next(s for s in SPECS if s.expandable)
    ref = spec.ref({"subscriptionId": subscriptionId, "resourceGroupName": resourceGroupName,
                    "galleryName": galleryName, "galleryImageName": galleryImageName,
                    "galleryImageVersionName": galleryImageVersionName})
    accepted = service_of(request).retry_replication(ref.id, region)
    # Replication moves real bytes: always the asynchronous answer.
    return answers.accepted(request, render(accepted.resource), accepted.operation, api_version, 202)


@router.post("/galley/store/verify", operation_id="Galley_VerifyStores")
def verify(request: Request, repair: bool = Query(True)) -> Response:
    return json_response(request.app.state.content.verify(repair=repair))


@router.post("/galley/store/gc", operation_id="Galley_CollectGarbage")
def collect_garbage(request: Request) -> Response:
    return json_response(request.app.state.content.collect_garbage())
