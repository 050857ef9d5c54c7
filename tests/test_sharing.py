"""Gallery sharing: direct sharing with subscriptions and tenants, community galleries, and
using what is shared as a source — from another tenant that holds no role on the gallery.

How we know: tenant B's principal, Owner of its own subscription only, reads through the
sharedGalleries/communityGalleries endpoints and creates a disk from the shared version's
/SharedGalleries/… id; each answer changes when tenant A shares or stops sharing, at once.
"""
from __future__ import annotations

import time

import httpx
import pytest

from . import admin_http
from .sdk_helpers import RG, create_definition, create_snapshot, create_version, make_group, quick_polls
from .conftest import sdk_client
from .servers import SUBSCRIPTION, ThreadServer
from .test_access import sign_in, principal

API = "api-version=2026-03-03"
SUB_B = "bbbbbbbb-0000-4000-8000-0000000000bb"
GALLERY = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RG}/providers/Microsoft.Compute/galleries"
UNIQUE = f"{SUBSCRIPTION}-PUB"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    with ThreadServer(tmp_path_factory.mktemp("sharing")) as server:
        url = server.url
        compute = quick_polls(sdk_client(url))
        make_group(url)
        made = admin_http.put(f"{url}{GALLERY}/pub?{API}", json={
            "location": "eastus", "properties": {"sharingProfile": {"permissions": "Groups"}}})
        assert made.status_code == 201, made.text
        made = admin_http.put(f"{url}{GALLERY}/comm?{API}", json={
            "location": "eastus", "properties": {"sharingProfile": {"permissions": "Community",
                                                                    "communityGalleryInfo": {
                                                                        "publisherUri": "https://contoso.example",
                                                                        "publisherContact": "images@contoso.example",
                                                                        "eula": "https://contoso.example/eula",
                                                                        "publicNamePrefix": "contoso"}}}})
        assert made.status_code == 201, made.text
        time.sleep(0.3)
        snapshot = create_snapshot(compute, size_gb=1)
        for gallery in ("pub", "comm"):
            create_definition(compute, gallery=gallery, name="def")
            create_version(compute, snapshot.id, gallery=gallery, definition="def")
        tenant_b = admin_http.post(f"{url}/providers/Galley.Identity/tenants", json={"displayName": "B"}).json()
        b = principal(url, tenant_b["tenantId"])
        token = sign_in(url, b)
        headers = {"Authorization": f"Bearer {token}"}
        assert httpx.post(f"{url}/providers/Galley.Identity/subscriptions", headers=headers, json={
            "displayName": "B", "subscriptionId": SUB_B}).status_code == 201
        assert httpx.put(f"{url}/subscriptions/{SUB_B}/resourcegroups/rgb?api-version=2024-11-01",
                         json={"location": "eastus"}, headers=headers).status_code == 201
        server.b = {"headers": headers, "tenant": tenant_b["tenantId"]}
        yield server


def share(world, operation: str, kind: str = "Subscriptions", ids=None, gallery: str = "pub") -> httpx.Response:
    body = {"operationType": operation}
    if ids is not None:
        body["groups"] = [{"type": kind, "ids": ids}]
    return admin_http.post(f"{world.url}{GALLERY}/{gallery}/share?{API}", json=body)


def as_b(world, method: str, path: str, **params) -> httpx.Response:
    return httpx.request(method, f"{world.url}/subscriptions/{SUB_B}/providers/Microsoft.Compute/locations/"
                                 f"eastus/{path}", params={"api-version": "2026-03-03", **params},
                         headers=world.b["headers"])


def disk_from(world, name: str, source_field: str, source_id: str) -> httpx.Response:
    return httpx.put(f"{world.url}/subscriptions/{SUB_B}/resourceGroups/rgb/providers/Microsoft.Compute/disks/"
                     f"{name}?api-version=2025-01-02", headers=world.b["headers"], json={
                         "location": "eastus", "properties": {"creationData": {
                             "createOption": "FromImage", "galleryImageReference": {source_field: source_id}}}})


def test_direct_sharing_with_a_subscription_and_taking_it_back(world):
    shared_id = f"/SharedGalleries/{UNIQUE}/Images/def/Versions/1.0.0"
    assert as_b(world, "GET", "sharedGalleries").json()["value"] == []
    assert as_b(world, "GET", f"sharedGalleries/{UNIQUE}").status_code == 404
    assert disk_from(world, "early", "sharedGalleryImageId", shared_id).status_code == 404
    added = share(world, "Add", ids=[SUB_B])
    assert added.status_code == 200, added.text
    assert added.json()["groups"] == [{"type": "Subscriptions", "ids": [SUB_B]}]
    permissions = admin_http.get(f"{world.url}{GALLERY}/pub?{API}&$select=Permissions").json()
    assert permissions["properties"]["sharingProfile"]["groups"] == [{"type": "Subscriptions", "ids": [SUB_B]}]
    listed = as_b(world, "GET", "sharedGalleries").json()["value"]
    assert [g["name"] for g in listed] == [UNIQUE]
    assert listed[0]["identifier"]["uniqueId"] == f"/SharedGalleries/{UNIQUE}"
    images = as_b(world, "GET", f"sharedGalleries/{UNIQUE}/images").json()["value"]
    assert [i["name"] for i in images] == ["def"] and images[0]["properties"]["osType"] == "Linux"
    version = as_b(world, "GET", f"sharedGalleries/{UNIQUE}/images/def/versions/1.0.0").json()
    assert version["identifier"]["uniqueId"] == shared_id
    made = disk_from(world, "shared", "sharedGalleryImageId", shared_id)
    assert made.status_code in (200, 201, 202), made.text
    # the gallery itself stays out of reach: sharing is not a role
    direct = httpx.get(f"{world.url}{GALLERY}/pub?{API}", headers=world.b["headers"])
    assert direct.status_code == 403
    removed = share(world, "Remove", ids=[SUB_B])
    assert removed.status_code == 200
    assert as_b(world, "GET", f"sharedGalleries/{UNIQUE}/images").status_code == 404
    assert disk_from(world, "late", "sharedGalleryImageId", shared_id).status_code == 404


def test_sharing_with_a_tenant(world):
    assert share(world, "Add", "AADTenants", [world.b["tenant"]]).status_code == 200
    try:
        by_tenant = as_b(world, "GET", "sharedGalleries", sharedTo="tenant").json()["value"]
        assert [g["name"] for g in by_tenant] == [UNIQUE]
        assert as_b(world, "GET", f"sharedGalleries/{UNIQUE}/images/def").status_code == 200
    finally:
        assert share(world, "Reset").status_code == 200
    assert as_b(world, "GET", f"sharedGalleries/{UNIQUE}/images/def").status_code == 404


def test_community_gallery_is_readable_by_every_signed_in_principal(world):
    assert share(world, "Add", ids=[SUB_B], gallery="comm").status_code == 409  # not a Groups gallery
    enabled = share(world, "EnableCommunity", gallery="comm")
    assert enabled.status_code == 200, enabled.text
    info = admin_http.get(f"{world.url}{GALLERY}/comm?{API}").json()["properties"]["sharingProfile"][
        "communityGalleryInfo"]
    assert info["communityGalleryEnabled"] is True
    [public] = info["publicNames"]
    assert public.startswith("contoso-")
    gallery = as_b(world, "GET", f"communityGalleries/{public}").json()
    assert gallery["properties"]["publisherUri"] == "https://contoso.example"
    versions = as_b(world, "GET", f"communityGalleries/{public}/images/def/versions").json()["value"]
    assert [v["name"] for v in versions] == ["1.0.0"]
    made = disk_from(world, "community", "communityGalleryImageId",
                     f"/CommunityGalleries/{public}/Images/def/Versions/1.0.0")
    assert made.status_code in (200, 201, 202), made.text
    assert as_b(world, "GET", "communityGalleries/contoso-nope/images").status_code == 404


def test_share_rejects_bad_requests_and_private_galleries(world):
    assert share(world, "Explode", ids=[SUB_B]).status_code == 400
    assert share(world, "Add", ids=["not-a-guid"]).status_code == 400
    assert share(world, "Add", kind="Planets", ids=[SUB_B]).status_code == 400
    made = admin_http.put(f"{world.url}{GALLERY}/private?{API}", json={"location": "eastus"})
    assert made.status_code == 201
    time.sleep(0.3)
    refused = share(world, "Add", ids=[SUB_B], gallery="private")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "OperationNotAllowed"
