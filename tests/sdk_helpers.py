"""Small helpers shared by the SDK tests: building resources through the real SDK, raw ARM calls
with httpx, and checking that a rejection has ARM's error shape."""

from __future__ import annotations

import json
import time

from . import admin_http as httpx
import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute import models as m

from .servers import SUBSCRIPTION

GALLERY_API = "2026-03-03"
COMPUTE_API = "2026-04-01"
DISK_API = "2026-03-02"
RESOURCES_API = "2024-11-01"
RG = "rg"


# ---- quicker polling ---------------------------------------------------------------------------

def quick_polls(client: ComputeManagementClient, longest: float = 0.05) -> ComputeManagementClient:
    """Cap the SDK's waits between LRO polls so a test suite of hundreds of operations stays fast.

    Most writes need no poll: the server answers them with their final state when their work ends
    within its quick-answer budget (test_quick_answers.py, with an unpatched client). Longer ones
    (replication of real bytes, or any write on a busy machine) are answered asynchronously; the
    SDK still reads Retry-After and polls the Azure-AsyncOperation URL exactly as it would, only
    the sleep of its transport is shortened.
    """
    transport = client._client._pipeline._transport  # pylint: disable=protected-access
    transport.sleep = lambda seconds: time.sleep(min(seconds, longest))
    return client


# ---- raw ARM ------------------------------------------------------------------------------------

def group_url(url: str, rg: str = RG, sub: str = SUBSCRIPTION) -> str:
    return f"{url}/subscriptions/{sub}/resourceGroups/{rg}"


def compute_url(url: str, path: str, rg: str = RG, sub: str = SUBSCRIPTION) -> str:
    return f"{group_url(url, rg, sub)}/providers/Microsoft.Compute/{path}"


def resource_id(path: str, rg: str = RG, sub: str = SUBSCRIPTION) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/{path}"


def make_subscription(url: str, subscription_id: str, tenant_id: str | None = None) -> dict:
    """A subscription of the administrator's tenant (or `tenant_id`), made through the authority."""
    body = {"displayName": f"sub-{subscription_id[:8]}", "subscriptionId": subscription_id,
            **({"tenantId": tenant_id} if tenant_id else {})}
    response = httpx.post(f"{url}/providers/Galley.Identity/subscriptions", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def make_group(url: str, rg: str = RG, location: str = "eastus", sub: str = SUBSCRIPTION) -> None:
    response = httpx.put(f"{group_url(url, rg, sub)}?api-version={RESOURCES_API}", json={"location": location})
    assert response.status_code in (200, 201), response.text


def arm_put(url: str, path: str, body: dict, api: str, rg: str = RG) -> httpx.Response:
    return httpx.put(f"{compute_url(url, path, rg)}?api-version={api}", json=body)


def arm_get(url: str, path: str, api: str, rg: str = RG, **params) -> httpx.Response:
    return httpx.get(compute_url(url, path, rg), params={"api-version": api, **params})


def wait_succeeded(url: str, path: str, api: str, timeout: float = 10.0) -> dict:
    deadline = time.time() + timeout
    while True:
        body = arm_get(url, path, api).json()
        if body.get("properties", {}).get("provisioningState") == "Succeeded":
            return body
        assert time.time() < deadline, f"{path} did not finish: {body}"
        time.sleep(0.05)


# ---- error shape --------------------------------------------------------------------------------

def check_error_body(status: int, body: object, expected_status: int, code: str | None,
                     mentions: str | None) -> dict:
    assert status == expected_status, f"expected {expected_status}, got {status}: {body}"
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert {"code", "message", "target"} <= set(error), error
    assert error["message"], error
    if code is not None:
        assert error["code"] == code, error
    if mentions is not None:
        assert mentions.lower() in (error["message"] + " " + (error["target"] or "")).lower(), error
    return error


def assert_arm_error(response: httpx.Response, status: int, code: str | None = None, *,
                     mentions: str | None = None) -> dict:
    """A raw response is an ARM rejection: the status, {"error": {code, message, target}}."""
    return check_error_body(response.status_code, response.json(), status, code, mentions)


def sdk_rejects(call, status: int, code: str | None = None, *, mentions: str | None = None) -> dict:
    """The SDK call fails with HttpResponseError carrying the ARM error; returns the error object."""
    with pytest.raises(HttpResponseError) as info:
        call()
    err = info.value
    assert err.status_code == status, f"expected {status}, got {err.status_code}: {err}"
    if code is not None:
        assert err.error is not None and err.error.code == code, err
    return check_error_body(err.status_code, json.loads(err.response.text()), status, code, mentions)


# ---- building through the SDK --------------------------------------------------------------------

def create_gallery(compute: ComputeManagementClient, name: str = "gal", location: str = "eastus",
                   rg: str = RG, description: str | None = None) -> m.Gallery:
    return compute.galleries.begin_create_or_update(
        rg, name, m.Gallery(location=location, properties=m.GalleryProperties(description=description))).result()


def create_definition(compute: ComputeManagementClient, gallery: str = "gal", name: str = "def",
                      os_type: str = "Linux", os_state: str = "Generalized", publisher: str = "pub",
                      offer: str = "offer", sku: str = "sku", location: str = "eastus",
                      rg: str = RG, **properties) -> m.GalleryImage:
    props = m.GalleryImageProperties(
        os_type=os_type, os_state=os_state,
        identifier=m.GalleryImageIdentifier(publisher=publisher, offer=offer, sku=sku), **properties)
    return compute.gallery_images.begin_create_or_update(
        rg, gallery, name, m.GalleryImage(location=location, properties=props)).result()


def create_snapshot(compute: ComputeManagementClient, name: str = "snap", size_gb: int = 10,
                    os_type: str | None = "Linux", location: str = "eastus", rg: str = RG) -> m.Snapshot:
    props = m.SnapshotProperties(creation_data=m.CreationData(create_option="Empty"), disk_size_gb=size_gb)
    if os_type is not None:
        props.os_type = os_type
    return compute.snapshots.begin_create_or_update(rg, name, m.Snapshot(location=location, properties=props)).result()


def version_body(source_id: str, location: str = "eastus", targets: list[dict] | None = None,
                 **publishing) -> dict:
    """A version's ARM body (wire names), for raw PUTs and for the SDK alike."""
    profile = dict(publishing)
    if targets is not None:
        profile["targetRegions"] = targets
    return {"location": location, "properties": {
        "publishingProfile": profile,
        "storageProfile": {"osDiskImage": {"source": {"id": source_id}}}}}


def create_version(compute: ComputeManagementClient, source_id: str, name: str = "1.0.0",
                   gallery: str = "gal", definition: str = "def", rg: str = RG,
                   location: str = "eastus", targets: list[dict] | None = None,
                   **publishing) -> m.GalleryImageVersion:
    body = version_body(source_id, location, targets, **publishing)
    return compute.gallery_image_versions.begin_create_or_update(rg, gallery, definition, name, body).result()


def image_chain(compute: ComputeManagementClient, url: str, os_type: str = "Linux") -> m.Snapshot:
    """Resource group, gallery 'gal', definition 'def' and snapshot 'snap' (all eastus)."""
    make_group(url)
    create_gallery(compute)
    create_definition(compute, os_type=os_type)
    return create_snapshot(compute, os_type=os_type)
