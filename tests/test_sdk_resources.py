"""The real azure-mgmt-compute SDK against Galley: CRUD for every resource type, 'latest',
long-running-operation shape, paging, replication status, api-versions and resource groups.

The rules of the issue's section 4 live in test_sdk_rules.py.
"""

from __future__ import annotations

import datetime
import time

from . import admin_http as httpx
import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.mgmt.compute import models as m

from .conftest import sdk_client
from .sdk_helpers import (COMPUTE_API, DISK_API, GALLERY_API, RG, arm_get, arm_put, assert_arm_error,
                          compute_url, create_definition, create_gallery, create_snapshot,
                          create_version, group_url, image_chain, make_group, quick_polls, resource_id,
                          sdk_rejects, wait_succeeded)
from .servers import SUBSCRIPTION, ThreadServer

FUTURE = datetime.datetime(2040, 1, 1, tzinfo=datetime.timezone.utc)


@pytest.fixture
def compute(compute):
    """conftest's real SDK client, with the waits between LRO polls capped (see quick_polls)."""
    return quick_polls(compute)


def names(items) -> list[str]:
    return sorted(item.name for item in items)


# ---- A. CRUD through the SDK ---------------------------------------------------------------------

def test_gallery_create_get_update_list_delete(server, compute):
    make_group(server.url)
    created = create_gallery(compute, "gal", description="first")
    assert created.properties.provisioning_state == "Succeeded"
    assert created.properties.description == "first"

    got = compute.galleries.get(RG, "gal")
    assert got.id == resource_id("galleries/gal") and got.location == "eastus"

    updated = compute.galleries.begin_update(
        RG, "gal", m.GalleryUpdate(properties=m.GalleryProperties(description="second"),
                                   tags={"team": "images"})).result()
    assert updated.properties.description == "second" and updated.tags == {"team": "images"}
    assert updated.properties.provisioning_state == "Succeeded"
    again = compute.galleries.get(RG, "gal")
    assert again.properties.description == "second" and again.tags == {"team": "images"}

    create_gallery(compute, "other")
    assert names(compute.galleries.list_by_resource_group(RG)) == ["gal", "other"]
    assert names(compute.galleries.list()) == ["gal", "other"]

    compute.galleries.begin_delete(RG, "gal").result()
    with pytest.raises(ResourceNotFoundError):
        compute.galleries.get(RG, "gal")
    assert names(compute.galleries.list_by_resource_group(RG)) == ["other"]


def test_image_definition_create_get_update_list_delete(server, compute):
    make_group(server.url)
    create_gallery(compute)
    created = create_definition(compute, name="def", description="first")
    assert created.properties.provisioning_state == "Succeeded"
    assert created.properties.identifier.publisher == "pub"

    got = compute.gallery_images.get(RG, "gal", "def")
    assert got.properties.os_type == "Linux" and got.properties.os_state == "Generalized"

    updated = compute.gallery_images.begin_update(RG, "gal", "def", m.GalleryImageUpdate(
        properties=m.GalleryImageProperties(
            description="second",
            recommended=m.RecommendedMachineConfiguration(
                v_cp_us=m.ResourceRange(min=2, max=8), memory=m.ResourceRange(min=4, max=32))),
        tags={"env": "test"})).result()
    assert updated.properties.description == "second"
    assert updated.properties.recommended.v_cp_us.max == 8
    assert updated.tags == {"env": "test"}
    assert updated.properties.provisioning_state == "Succeeded"
    assert compute.gallery_images.get(RG, "gal", "def").properties.recommended.memory.min == 4

    create_definition(compute, name="def2", sku="sku2")
    assert names(compute.gallery_images.list_by_gallery(RG, "gal")) == ["def", "def2"]

    compute.gallery_images.begin_delete(RG, "gal", "def").result()
    with pytest.raises(ResourceNotFoundError):
        compute.gallery_images.get(RG, "gal", "def")
    assert names(compute.gallery_images.list_by_gallery(RG, "gal")) == ["def2"]


def test_image_version_create_get_update_list_delete(server, compute):
    snap = image_chain(compute, server.url)
    created = create_version(compute, snap.id, "1.0.0")
    assert created.properties.provisioning_state == "Succeeded"
    assert created.properties.storage_profile.os_disk_image.source.id.lower() == snap.id.lower()

    got = compute.gallery_image_versions.get(RG, "gal", "def", "1.0.0")
    assert [t.name for t in got.properties.publishing_profile.target_regions] == ["eastus"]

    updated = compute.gallery_image_versions.begin_update(RG, "gal", "def", "1.0.0", m.GalleryImageVersionUpdate(
        properties=m.GalleryImageVersionProperties(publishing_profile=m.GalleryImageVersionPublishingProfile(
            exclude_from_latest=True, end_of_life_date=FUTURE,
            target_regions=[m.TargetRegion(name="eastus", regional_replica_count=2),
                            m.TargetRegion(name="westus2")])),
        tags={"release": "one"})).result()
    assert updated.properties.provisioning_state == "Succeeded"
    profile = compute.gallery_image_versions.get(RG, "gal", "def", "1.0.0").properties.publishing_profile
    assert profile.exclude_from_latest is True
    assert profile.end_of_life_date == FUTURE
    assert {t.name: t.regional_replica_count for t in profile.target_regions} == {"eastus": 2, "westus2": 1}
    assert updated.tags == {"release": "one"}

    create_version(compute, snap.id, "1.0.1")
    assert names(compute.gallery_image_versions.list_by_gallery_image(RG, "gal", "def")) == ["1.0.0", "1.0.1"]

    compute.gallery_image_versions.begin_delete(RG, "gal", "def", "1.0.0").result()
    with pytest.raises(ResourceNotFoundError):
        compute.gallery_image_versions.get(RG, "gal", "def", "1.0.0")
    assert names(compute.gallery_image_versions.list_by_gallery_image(RG, "gal", "def")) == ["1.0.1"]


def test_managed_image_create_get_update_list_delete(server, compute):
    make_group(server.url)
    snap = create_snapshot(compute, "snap", size_gb=12)
    image = m.Image(location="eastus", properties=m.ImageProperties(storage_profile=m.ImageStorageProfile(
        os_disk=m.ImageOSDisk(os_type="Linux", os_state="Generalized", snapshot=m.SubResource(id=snap.id)))))
    created = compute.images.begin_create_or_update(RG, "img", image).result()
    assert created.properties.provisioning_state == "Succeeded"
    assert created.properties.storage_profile.os_disk.disk_size_gb == 12

    got = compute.images.get(RG, "img")
    assert got.properties.storage_profile.os_disk.os_type == "Linux"

    updated = compute.images.begin_update(RG, "img", m.ImageUpdate(tags={"k": "v"})).result()
    assert updated.tags == {"k": "v"}
    assert compute.images.get(RG, "img").tags == {"k": "v"}

    compute.images.begin_create_or_update(RG, "img2", image).result()
    assert names(compute.images.list_by_resource_group(RG)) == ["img", "img2"]
    assert names(compute.images.list()) == ["img", "img2"]

    compute.images.begin_delete(RG, "img").result()
    with pytest.raises(ResourceNotFoundError):
        compute.images.get(RG, "img")
    assert names(compute.images.list_by_resource_group(RG)) == ["img2"]


def test_disk_create_get_update_list_delete(server, compute):
    make_group(server.url)
    disk = m.Disk(location="eastus", sku=m.DiskSku(name="Premium_LRS"), properties=m.DiskProperties(
        creation_data=m.CreationData(create_option="Empty"), disk_size_gb=8))
    created = compute.disks.begin_create_or_update(RG, "disk1", disk).result()
    assert created.properties.provisioning_state == "Succeeded"
    assert created.sku.name == "Premium_LRS" and created.properties.disk_size_gb == 8

    assert compute.disks.get(RG, "disk1").properties.disk_size_gb == 8

    updated = compute.disks.begin_update(RG, "disk1", m.DiskUpdate(
        properties=m.DiskUpdateProperties(disk_size_gb=16), tags={"a": "b"})).result()
    assert updated.properties.disk_size_gb == 16 and updated.tags == {"a": "b"}
    assert compute.disks.get(RG, "disk1").properties.disk_size_gb == 16

    compute.disks.begin_create_or_update(RG, "disk2", disk).result()
    assert names(compute.disks.list_by_resource_group(RG)) == ["disk1", "disk2"]
    assert names(compute.disks.list()) == ["disk1", "disk2"]

    compute.disks.begin_delete(RG, "disk1").result()
    with pytest.raises(ResourceNotFoundError):
        compute.disks.get(RG, "disk1")
    assert names(compute.disks.list()) == ["disk2"]


def test_snapshot_create_get_update_list_delete(server, compute):
    make_group(server.url)
    created = create_snapshot(compute, "snap1", size_gb=5)
    assert created.properties.provisioning_state == "Succeeded"
    assert created.properties.disk_size_gb == 5 and created.properties.os_type == "Linux"

    assert compute.snapshots.get(RG, "snap1").properties.disk_size_gb == 5

    updated = compute.snapshots.begin_update(RG, "snap1", m.SnapshotUpdate(
        properties=m.SnapshotUpdateProperties(disk_size_gb=6), tags={"x": "y"})).result()
    assert updated.properties.disk_size_gb == 6 and updated.tags == {"x": "y"}
    assert compute.snapshots.get(RG, "snap1").tags == {"x": "y"}

    create_snapshot(compute, "snap2")
    assert names(compute.snapshots.list_by_resource_group(RG)) == ["snap1", "snap2"]
    assert names(compute.snapshots.list()) == ["snap1", "snap2"]

    compute.snapshots.begin_delete(RG, "snap1").result()
    with pytest.raises(ResourceNotFoundError):
        compute.snapshots.get(RG, "snap1")
    assert names(compute.snapshots.list_by_resource_group(RG)) == ["snap2"]


def test_subscription_lists_span_resource_groups(server, compute):
    make_group(server.url, "rg")
    make_group(server.url, "rg2", location="westus2")
    create_gallery(compute, "gal1", rg="rg")
    create_gallery(compute, "gal2", location="westus2", rg="rg2")
    create_snapshot(compute, "s1", rg="rg")
    create_snapshot(compute, "s2", rg="rg2", location="westus2")
    assert names(compute.galleries.list()) == ["gal1", "gal2"]
    assert names(compute.galleries.list_by_resource_group("rg2")) == ["gal2"]
    assert names(compute.snapshots.list()) == ["s1", "s2"]
    assert names(compute.snapshots.list_by_resource_group("rg")) == ["s1"]


# ---- C. latest ------------------------------------------------------------------------------------

def latest(url: str, region: str | None = None, *, path: str = "versions/latest") -> httpx.Response:
    params = {"region": region} if region else {}
    return arm_get(url, f"galleries/gal/images/def/{path}", GALLERY_API, **params)


def test_latest_orders_major_minor_patch_numerically(server, compute):
    snap = image_chain(compute, server.url)
    for name in ("1.9.0", "1.10.0", "1.2.99"):
        create_version(compute, snap.id, name)
    assert latest(server.url).json()["name"] == "1.10.0"
    for name in ("1.10.9", "1.10.10"):
        create_version(compute, snap.id, name)
    for path in ("versions/latest", "latestVersion"):
        response = latest(server.url, path=path)
        assert response.status_code == 200, response.text
        assert response.json()["name"] == "1.10.10"


def test_latest_skips_excluded_and_end_of_life_versions(server, compute):
    snap = image_chain(compute, server.url)
    create_version(compute, snap.id, "1.0.0")
    create_version(compute, snap.id, "3.0.0", excludeFromLatest=True)
    create_version(compute, snap.id, "2.0.0", endOfLifeDate="2001-01-01T00:00:00+00:00")
    create_version(compute, snap.id, "1.5.0", endOfLifeDate=FUTURE.isoformat())
    assert latest(server.url).json()["name"] == "1.5.0"
    assert latest(server.url, path="latestVersion").json()["name"] == "1.5.0"
    # Un-excluding 3.0.0 makes it the latest.
    compute.gallery_image_versions.begin_update(RG, "gal", "def", "3.0.0", {
        "properties": {"publishingProfile": {"excludeFromLatest": False}}}).result()
    assert latest(server.url).json()["name"] == "3.0.0"


def test_latest_in_a_region_counts_only_versions_that_target_it(server, compute):
    snap = image_chain(compute, server.url)
    create_version(compute, snap.id, "1.0.0", targets=[{"name": "eastus"}, {"name": "westus2"}])
    create_version(compute, snap.id, "2.0.0", targets=[{"name": "eastus"}])
    assert latest(server.url).json()["name"] == "2.0.0"
    assert latest(server.url, "eastus").json()["name"] == "2.0.0"
    assert latest(server.url, "westus2").json()["name"] == "1.0.0"
    assert latest(server.url, "westus2", path="latestVersion").json()["name"] == "1.0.0"
    assert_arm_error(latest(server.url, "northeurope"), 404)


def test_latest_of_a_definition_without_versions_is_404(server, compute):
    image_chain(compute, server.url)
    assert_arm_error(latest(server.url), 404)


# ---- D. long-running operations ---------------------------------------------------------------------

def poll_status(url: str, timeout: float = 10.0) -> list[str]:
    seen, deadline = [], time.time() + timeout
    while True:
        response = httpx.get(url)
        assert response.status_code == 200, response.text
        seen.append(response.json()["status"])
        if seen[-1] != "InProgress":
            return seen
        assert time.time() < deadline, seen
        time.sleep(0.05)


def test_put_answers_201_with_async_operation_headers(server):
    """Without a quick-answer budget every write is ARM's asynchronous operation (with one, quick
    work is answered with its final state: test_quick_answers.py)."""
    make_group(server.url)
    with server.settings_changed(quick_answer_ms=0):
        response = arm_put(server.url, "galleries/gal", {"location": "eastus"}, GALLERY_API)
    assert response.status_code == 201, response.text
    assert response.json()["properties"]["provisioningState"] == "Creating"
    assert response.headers["Retry-After"] == "1"
    status_url = response.headers["Azure-AsyncOperation"]
    assert "/operations/" in status_url and "api-version=" in status_url
    assert "/operationResults/" in response.headers["Location"]
    seen = poll_status(status_url)
    assert seen[0] in ("InProgress", "Succeeded") and seen[-1] == "Succeeded"
    assert arm_get(server.url, "galleries/gal", GALLERY_API).json()["properties"]["provisioningState"] == "Succeeded"
    final = httpx.get(response.headers["Location"])
    assert final.status_code == 200 and final.json()["name"] == "gal"


def test_delete_answers_202_with_async_operation_headers(server, compute):
    make_group(server.url)
    create_gallery(compute)
    with server.settings_changed(quick_answer_ms=0):
        response = httpx.delete(f"{compute_url(server.url, 'galleries/gal')}?api-version={GALLERY_API}")
    assert response.status_code == 202, response.text
    assert response.headers["Retry-After"] == "1"
    assert "/operationResults/" in response.headers["Location"]
    assert poll_status(response.headers["Azure-AsyncOperation"])[-1] == "Succeeded"
    assert arm_get(server.url, "galleries/gal", GALLERY_API).status_code == 404
    # Deleting what is gone is a no-op, as in ARM.
    again = httpx.delete(f"{compute_url(server.url, 'galleries/gal')}?api-version={GALLERY_API}")
    assert again.status_code == 204


def test_sdk_create_succeeds_with_default_polling(server):
    make_group(server.url)
    compute = sdk_client(server.url)  # as users build it: no cap on the waits between polls
    gallery = create_gallery(compute)
    assert gallery.properties.provisioning_state == "Succeeded"
    with server.settings_changed(quick_answer_ms=0):  # and when the SDK has to poll
        other = create_gallery(compute, "other")
    assert other.properties.provisioning_state == "Succeeded"
    assert arm_get(server.url, "galleries/other", GALLERY_API).json()["properties"]["provisioningState"] == "Succeeded"


# ---- E. paging and replication status ---------------------------------------------------------------

def test_lists_page_with_next_link(tmp_path):
    with ThreadServer(tmp_path, page_size=3) as server:
        compute = quick_polls(sdk_client(server.url))
        make_group(server.url)
        for i in range(7):
            create_snapshot(compute, f"snap{i}")
        url, sizes, seen = f"{compute_url(server.url, 'snapshots')}?api-version={DISK_API}", [], []
        while url:
            body = httpx.get(url).json()
            sizes.append(len(body["value"]))
            seen += [item["name"] for item in body["value"]]
            url = body.get("nextLink")
        assert sizes == [3, 3, 1]
        assert sorted(seen) == [f"snap{i}" for i in range(7)]
        assert names(compute.snapshots.list_by_resource_group(RG)) == [f"snap{i}" for i in range(7)]
        assert len(list(compute.snapshots.list())) == 7


def test_expand_replication_status_reports_each_target_region(server, compute):
    snap = image_chain(compute, server.url)
    create_version(compute, snap.id, "1.0.0", targets=[{"name": "eastus"}, {"name": "westus2"}])
    plain = arm_get(server.url, "galleries/gal/images/def/versions/1.0.0", GALLERY_API).json()
    assert "replicationStatus" not in plain["properties"]
    response = arm_get(server.url, "galleries/gal/images/def/versions/1.0.0", GALLERY_API,
                       **{"$expand": "ReplicationStatus"})
    status = response.json()["properties"]["replicationStatus"]
    assert status["aggregatedState"] == "Completed"
    assert sorted(s["region"] for s in status["summary"]) == ["eastus", "westus2"]
    assert all(s["state"] == "Completed" and s["progress"] == 100 for s in status["summary"])
    sdk = compute.gallery_image_versions.get(RG, "gal", "def", "1.0.0", expand="ReplicationStatus")
    assert sdk.properties.replication_status.aggregated_state == "Completed"


# ---- F. api-versions ----------------------------------------------------------------------------------

def test_each_family_accepts_the_sdk_api_version(server, compute):
    snap = image_chain(compute, server.url)
    assert arm_get(server.url, "galleries/gal", GALLERY_API).status_code == 200
    assert arm_get(server.url, "snapshots/snap", DISK_API).status_code == 200
    assert arm_get(server.url, "images", COMPUTE_API).status_code == 200
    assert arm_get(server.url, "disks", DISK_API).status_code == 200
    assert snap.properties.provisioning_state == "Succeeded"


SEED_DEFINITION = {"location": "eastus", "properties": {
    "hyperVGeneration": "V1", "identifier": {"offer": "myOffer", "publisher": "myPublisher", "sku": "mySKU"},
    "osState": "Specialized", "osType": "Linux"}}


def managed_image(compute, name: str = "img") -> m.Image:
    snap = create_snapshot(compute, f"{name}-snap")
    return compute.images.begin_create_or_update(RG, name, m.Image(
        location="eastus", properties=m.ImageProperties(storage_profile=m.ImageStorageProfile(
            os_disk=m.ImageOSDisk(os_type="Linux", os_state="Generalized",
                                  snapshot=m.SubResource(id=snap.id)))))).result()


def test_seed_definition_body_with_api_version_2019_12_01(server, compute):
    make_group(server.url)
    create_gallery(compute)
    response = arm_put(server.url, "galleries/gal/images/myDefinition", SEED_DEFINITION, "2019-12-01")
    assert response.status_code == 201, response.text
    wait_succeeded(server.url, "galleries/gal/images/myDefinition", "2019-12-01")
    got = compute.gallery_images.get(RG, "gal", "myDefinition")
    assert got.properties.os_state == "Specialized"
    assert got.properties.identifier.sku == "mySKU"
    assert got.properties.provisioning_state == "Succeeded"


def test_seed_version_body_with_api_version_2019_12_01(server, compute):
    make_group(server.url)
    create_gallery(compute)
    assert arm_put(server.url, "galleries/gal/images/def", SEED_DEFINITION, "2019-12-01").status_code == 201
    wait_succeeded(server.url, "galleries/gal/images/def", "2019-12-01")
    image = managed_image(compute)
    body = {"location": "eastus", "properties": {
        "publishingProfile": {
            "endOfLifeDate": "2044-12-02T00:00:00+00:00", "replicaCount": 1, "storageAccountType": "Standard_ZRS",
            "targetRegions": [{"name": "eastus", "regionalReplicaCount": 2, "storageAccountType": "Standard_LRS"},
                              {"name": "westus2"}]},
        "storageProfile": {"source": {"id": image.id}}}}
    response = arm_put(server.url, "galleries/gal/images/def/versions/1.0.0", body, "2019-12-01")
    assert response.status_code == 201, response.text
    wait_succeeded(server.url, "galleries/gal/images/def/versions/1.0.0", "2019-12-01")
    version = compute.gallery_image_versions.get(RG, "gal", "def", "1.0.0")
    targets = {t.name: (t.regional_replica_count, t.storage_account_type)
               for t in version.properties.publishing_profile.target_regions}
    assert targets == {"eastus": (2, "Standard_LRS"), "westus2": (1, "Standard_ZRS")}
    assert version.properties.storage_profile.source.id.lower() == image.id.lower()


def test_version_with_api_version_2018_06_01_managed_image_source(server, compute):
    make_group(server.url)
    create_gallery(compute)
    create_definition(compute)
    image = managed_image(compute)
    body = {"location": "eastus", "properties": {"publishingProfile": {
        "source": {"managedImage": {"id": image.id}}, "replicaCount": 1,
        "targetRegions": [{"name": "eastus", "regionalReplicaCount": 1}]}}}
    response = arm_put(server.url, "galleries/gal/images/def/versions/1.0.0", body, "2018-06-01")
    assert response.status_code == 201, response.text
    wait_succeeded(server.url, "galleries/gal/images/def/versions/1.0.0", "2018-06-01")
    version = compute.gallery_image_versions.get(RG, "gal", "def", "1.0.0")
    assert version.properties.storage_profile.source.id.lower() == image.id.lower()
    assert version.properties.provisioning_state == "Succeeded"


def test_unknown_api_version_is_rejected(module_server):
    make_group(module_server.url)
    response = arm_put(module_server.url, "galleries/gal", {"location": "eastus"}, "2099-01-01")
    assert_arm_error(response, 400, "InvalidApiVersionParameter", mentions="2099-01-01")
    assert arm_get(module_server.url, "galleries/gal", GALLERY_API).status_code == 404


def test_missing_api_version_is_rejected(module_server):
    make_group(module_server.url)
    response = httpx.put(compute_url(module_server.url, "galleries/gal"), json={"location": "eastus"})
    assert_arm_error(response, 400, "MissingApiVersionParameter", mentions="api-version")
    assert arm_get(module_server.url, "galleries/gal", GALLERY_API).status_code == 404
    assert_arm_error(httpx.get(compute_url(module_server.url, "galleries")), 400, mentions="api-version")


# ---- G. resource groups and locations ----------------------------------------------------------------

def test_gallery_in_missing_resource_group_is_404(module_server):
    server, compute = module_server, quick_polls(sdk_client(module_server.url))
    error = sdk_rejects(lambda: create_gallery(compute, rg="nowhere"), 404, "ResourceGroupNotFound",
                        mentions="nowhere")
    assert error["target"]
    make_group(server.url)  # the SDK's list then works and shows nothing was created
    assert list(compute.galleries.list()) == []


def test_resource_group_put_get_and_list(server):
    make_group(server.url, "grp", location="westus2")
    got = httpx.get(f"{group_url(server.url, 'grp')}?api-version=2024-11-01")
    assert got.status_code == 200 and got.json()["location"] == "westus2"
    listed = httpx.get(f"{server.url}/subscriptions/{SUBSCRIPTION}/resourcegroups?api-version=2024-11-01")
    assert [g["name"] for g in listed.json()["value"]] == ["grp"]


def test_locations_lists_the_configured_regions(module_server):
    response = httpx.get(f"{module_server.url}/subscriptions/{SUBSCRIPTION}/locations?api-version=2022-12-01")
    assert response.status_code == 200
    regions = [item["name"] for item in response.json()["value"]]
    assert regions == list(module_server.app.state.settings.regions)
    assert {"eastus", "westus2"} <= set(regions)


def test_storage_account_kind_is_kept(server):
    make_group(server.url)
    url = f"{server.url}/subscriptions/{SUBSCRIPTION}/resourceGroups/{RG}/providers/Microsoft.Storage/storageAccounts"
    params = {"api-version": "2023-05-01"}
    bad = httpx.put(f"{url}/badkind", params=params, json={"location": "eastus", "kind": "Tape"})
    assert assert_arm_error(bad, 400)["target"] == "kind"
    assert httpx.get(f"{url}/badkind", params=params).status_code == 404
    for name, body, expected in (("blobs", {"kind": "BlobStorage"}, "BlobStorage"), ("plain", {}, "StorageV2")):
        created = httpx.put(f"{url}/{name}", params=params, json={"location": "eastus", **body})
        assert created.status_code in (200, 201, 202), created.text
        got = httpx.get(f"{url}/{name}", params=params).json()
        assert got["kind"] == expected and "kind" not in got["properties"]
    # An update that leaves kind out keeps it.
    httpx.patch(f"{url}/blobs", params=params, json={"tags": {"a": "b"}})
    assert httpx.get(f"{url}/blobs", params=params).json()["kind"] == "BlobStorage"


def test_deleting_a_resource_group_that_does_not_exist_is_a_404(module_server):
    from azure.core.exceptions import ResourceNotFoundError
    from azure.mgmt.resource import ResourceManagementClient
    from .conftest import AdminBearer, AdminCredential
    client = ResourceManagementClient(AdminCredential(module_server.url), SUBSCRIPTION, base_url=module_server.url,
                                      authentication_policy=AdminBearer(module_server.url))
    with pytest.raises(ResourceNotFoundError) as missing:
        client.resource_groups.begin_delete("never-made").result()
    assert missing.value.error.code == "ResourceGroupNotFound"
