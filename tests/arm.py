"""Small raw-HTTP helpers for tests that check exact ARM status codes and bodies."""

from __future__ import annotations

import time

from . import admin_http as httpx

from .servers import SUBSCRIPTION

GALLERY_API = "api-version=2026-03-03"
DISK_API = "api-version=2026-03-02"
GROUP_API = "api-version=2024-11-01"


def group_url(base: str, rg: str = "rg") -> str:
    return f"{base}/subscriptions/{SUBSCRIPTION}/resourceGroups/{rg}"


def compute_url(base: str, path: str, rg: str = "rg") -> str:
    return f"{group_url(base, rg)}/providers/Microsoft.Compute/{path}"


def make_group(base: str, rg: str = "rg", location: str = "eastus") -> None:
    response = httpx.put(f"{group_url(base, rg)}?{GROUP_API}", json={"location": location})
    assert response.status_code in (200, 201), response.text


def final_status(response: httpx.Response) -> dict:
    """The operation status a final answer stands for: a write whose work ended within the
    server's quick-answer budget has no Azure-AsyncOperation; its body (if any) is the resource."""
    assert "Location" not in response.headers and "Retry-After" not in response.headers, response.headers
    assert response.status_code in (200, 201, 204), (response.status_code, response.text)
    body = response.json() if response.content else None
    state = body["properties"]["provisioningState"] if body else "Succeeded"
    return {"status": state}


def wait_operation(response: httpx.Response, timeout: float = 15.0) -> dict:
    """Follow Azure-AsyncOperation until the operation ends; returns the final status body (for
    a final answer, {"status": its provisioningState})."""
    url = response.headers.get("Azure-AsyncOperation")
    if url is None:
        return final_status(response)
    deadline = time.time() + timeout
    while time.time() < deadline:
        status = httpx.get(url).json()
        if status["status"] != "InProgress":
            return status
        time.sleep(0.05)
    raise TimeoutError(f"operation still running: {url}")


def put_and_wait(url: str, body: dict) -> dict:
    response = httpx.put(url, json=body)
    assert response.status_code in (200, 201, 202), response.text
    assert wait_operation(response)["status"] == "Succeeded"
    return httpx.get(url).json()


def assert_arm_error(response: httpx.Response, status: int, code: str | None = None) -> dict:
    assert response.status_code == status, (response.status_code, response.text)
    error = response.json()["error"]
    assert error["message"]
    if code is not None:
        assert error["code"] == code, error
    return error


def linux_snapshot_body(size_gb: int = 4, os_type: str = "Linux", location: str = "eastus") -> dict:
    return {"location": location, "properties": {"creationData": {"createOption": "Empty"},
                                                 "diskSizeGB": size_gb, "osType": os_type}}


def definition_body(location: str = "eastus", sku: str = "sku1", os_type: str = "Linux") -> dict:
    return {"location": location, "properties": {
        "osType": os_type, "osState": "Generalized",
        "identifier": {"publisher": "contoso", "offer": "finance", "sku": sku}}}


def version_body(source_id: str, location: str = "eastus", regions: list | None = None) -> dict:
    return {"location": location, "properties": {
        "publishingProfile": {"targetRegions": regions or [{"name": location}]},
        "storageProfile": {"osDiskImage": {"source": {"id": source_id}}}}}


def seed_definition(base: str) -> dict[str, str]:
    """A group, gallery, definition and Linux snapshot; returns their URLs (without api-version)."""
    make_group(base)
    urls = {
        "gallery": compute_url(base, "galleries/gal"),
        "definition": compute_url(base, "galleries/gal/images/def"),
        "snapshot": compute_url(base, "snapshots/snap"),
    }
    put_and_wait(f"{urls['gallery']}?{GALLERY_API}", {"location": "eastus"})
    put_and_wait(f"{urls['definition']}?{GALLERY_API}", definition_body())
    snapshot = put_and_wait(f"{urls['snapshot']}?{DISK_API}", linux_snapshot_body())
    urls["snapshot_id"] = snapshot["id"]
    return urls
