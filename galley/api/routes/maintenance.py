"""Galley's own endpoints beside ARM: usage accounting, replication retries, store upkeep."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from ...content.engine import DEFAULT_GRACE
from ...content.usage import usage_report
from ...domain.errors import InvalidParameter
from ...jobs.build import log_segments
from ..api_versions import gallery_api
from .. import answers
from ..wire import json_response, render
from .resources import SPECS, service_of

router = APIRouter(tags=["Galley"])
MAX_GRACE = 366 * 24 * 3600
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
def collect_garbage(request: Request, graceSeconds: str | None = Query(
        None, description="Keep half-written contents and unrecorded chunks younger than this many "
                          "seconds (default 3600); a live writer's are kept whatever their age")) -> Response:
    grace = DEFAULT_GRACE if graceSeconds is None else _grace(graceSeconds)
    report = request.app.state.content.collect_garbage(stale_after=grace)
    report["log_segments_deleted"] = log_segments.sweep_deleted_templates(
        request.app.state.store, request.app.state.content.locations)
    return json_response(report)


def _grace(text: str) -> float:
    if not text.isdigit() or int(text) > MAX_GRACE:
        raise InvalidParameter(f"graceSeconds must be a whole number of seconds from 0 to {MAX_GRACE}, "
                               f"not '{text[:40]}'.", target="graceSeconds")
    return float(text)
