"""The rules of the issue's section 4, through the real SDK: each rejection is a 4xx ARM error
{"error": {"code", "message", "target"}} and leaves everything as it was."""

from __future__ import annotations

import datetime
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

from . import admin_http as httpx
import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.mgmt.compute import models as m

from galley.config import Limits

from .conftest import ENGINES, sdk_client, server_on
from .sdk_helpers import (GALLERY_API, RG, arm_get, arm_put, assert_arm_error, compute_url,
                          create_definition, create_gallery, create_snapshot, create_version,
                          image_chain, make_group, make_subscription, quick_polls, resource_id, sdk_rejects, version_body)
from .servers import ThreadServer

FUTURE = datetime.datetime(2040, 6, 1, tzinfo=datetime.timezone.utc)
OTHER_SUBSCRIPTION = "11111111-1111-1111-1111-111111111111"


@pytest.fixture
def compute(compute):
    """conftest's real SDK client, with the waits between LRO polls capped (see quick_polls)."""
    return quick_polls(compute)


@pytest.fixture(scope="module", params=ENGINES)
def with_gallery(request, tmp_path_factory):
    """(server, compute) per engine holding group 'rg' and gallery 'gal': shared by the refusals of
    definitions, each of which must leave it as it was (a server costs half a second)."""
    with server_on(request.param, request, tmp_path_factory) as running:
        compute = quick_polls(sdk_client(running.url))
        make_group(running.url)
        create_gallery(compute)
        yield running, compute


@pytest.fixture(scope="module", params=ENGINES)
def with_definition(request, tmp_path_factory):
    """(server, compute) per engine holding definition 'def' (described "kept") in gallery 'gal'."""
    with server_on(request.param, request, tmp_path_factory) as running:
        compute = quick_polls(sdk_client(running.url))
        make_group(running.url)
        create_gallery(compute)
        create_definition(compute, description="kept")
        yield running, compute


@pytest.fixture(scope="module", params=ENGINES)
def with_chain(request, tmp_path_factory):
    """(server, compute, snapshot) per engine holding image_chain's resources and no version."""
    with server_on(request.param, request, tmp_path_factory) as running:
        compute = quick_polls(sdk_client(running.url))
        yield running, compute, image_chain(compute, running.url)


def names(items) -> list[str]:
    return sorted(item.name for item in items)


def version_names(compute) -> list[str]:
    return names(compute.gallery_image_versions.list_by_gallery_image(RG, "gal", "def"))


# ---- names ----------------------------------------------------------------------------------------

def test_gallery_name_with_a_dash_is_rejected(server, compute):
    make_group(server.url)
    sdk_rejects(lambda: create_gallery(compute, "my-gallery"), 400, "InvalidGalleryName", mentions="my-gallery")
    assert list(compute.galleries.list_by_resource_group(RG)) == []


def test_gallery_name_with_underscore_and_period_is_accepted(server, compute):
    make_group(server.url)
    gallery = create_gallery(compute, "my_gallery.1")
    assert gallery.name == "my_gallery.1" and gallery.properties.provisioning_state == "Succeeded"
    assert compute.galleries.get(RG, "my_gallery.1").name == "my_gallery.1"


def test_image_definition_name_rules(server, compute):
    make_group(server.url)
    create_gallery(compute)
    for bad in ("-starts-with-dash", "ends-with-dash-", "has!bang", "x" * 81):
        sdk_rejects(lambda: create_definition(compute, name=bad), 400, mentions="galleryImageName")
    assert list(compute.gallery_images.list_by_gallery(RG, "gal")) == []
    created = create_definition(compute, name="my-def_1.0")
    assert created.name == "my-def_1.0"


@pytest.mark.parametrize("bad", ["1.0", "1.0.0.0", "a.b.c", "1.0.2147483648", "1.0.0-beta"])
def test_version_name_must_be_three_int32_parts(with_chain, bad):
    _, compute, snap = with_chain
    sdk_rejects(lambda: create_version(compute, snap.id, bad), 400, mentions="galleryImageVersionName")
    assert version_names(compute) == []


def test_version_name_at_the_int32_limit_is_accepted(server, compute):
    snap = image_chain(compute, server.url)
    version = create_version(compute, snap.id, "0.0.2147483647")
    assert version.properties.provisioning_state == "Succeeded"
    assert version_names(compute) == ["0.0.2147483647"]


# ---- image definitions ------------------------------------------------------------------------------

def test_publisher_offer_sku_is_unique_within_a_gallery(server, compute):
    make_group(server.url)
    create_gallery(compute)
    create_definition(compute, name="def1")
    error = sdk_rejects(lambda: create_definition(compute, name="def2"), 409,
                        "GalleryImageIdentifierAlreadyExists", mentions="def1")
    assert "identifier" in error["target"]
    sdk_rejects(lambda: create_definition(compute, name="def3", publisher="PUB", offer="Offer", sku="SKU"), 409,
                "GalleryImageIdentifierAlreadyExists")
    assert names(compute.gallery_images.list_by_gallery(RG, "gal")) == ["def1"]
    with pytest.raises(ResourceNotFoundError):
        compute.gallery_images.get(RG, "gal", "def2")


def test_same_publisher_offer_sku_in_another_gallery_is_allowed(server, compute):
    make_group(server.url)
    create_gallery(compute, "gal1")
    create_gallery(compute, "gal2")
    create_definition(compute, "gal1", "def")
    other = create_definition(compute, "gal2", "def")
    assert other.properties.provisioning_state == "Succeeded"
    assert other.properties.identifier.publisher == "pub"


@pytest.mark.parametrize("missing", ["osType", "osState"])
def test_os_type_and_os_state_are_required(with_gallery, missing):
    server, compute = with_gallery
    props = {"osType": "Linux", "osState": "Generalized",
             "identifier": {"publisher": "p", "offer": "o", "sku": "s"}}
    del props[missing]
    response = arm_put(server.url, "galleries/gal/images/def", {"location": "eastus", "properties": props},
                       GALLERY_API)
    error = assert_arm_error(response, 400, mentions=missing)
    assert error["target"] == f"properties.{missing}"
    assert list(compute.gallery_images.list_by_gallery(RG, "gal")) == []


def test_hyperv_generation_defaults_to_v1(server, compute):
    make_group(server.url)
    create_gallery(compute)
    create_definition(compute)
    assert compute.gallery_images.get(RG, "gal", "def").properties.hyper_v_generation == "V1"


def test_enums_are_accepted_case_insensitively(server, compute):
    make_group(server.url)
    create_gallery(compute)
    body = {"location": "eastus", "properties": {
        "osType": "linux", "osState": "generalized", "hyperVGeneration": "v2",
        "identifier": {"publisher": "p", "offer": "o", "sku": "s"}}}
    compute.gallery_images.begin_create_or_update(RG, "gal", "def", body).result()
    definition = compute.gallery_images.get(RG, "gal", "def").properties
    assert (definition.os_type, definition.os_state, definition.hyper_v_generation) == ("Linux", "Generalized", "V2")

    snap = create_snapshot(compute)
    create_version(compute, snap.id, "1.0.0", storageAccountType="standard_zrs",
                   targets=[{"name": "eastus", "storageAccountType": "premium_lrs"}, {"name": "westus2"}])
    profile = compute.gallery_image_versions.get(RG, "gal", "def", "1.0.0").properties.publishing_profile
    assert profile.storage_account_type == "Standard_ZRS"
    assert {t.name: t.storage_account_type for t in profile.target_regions} == {
        "eastus": "Premium_LRS", "westus2": "Standard_ZRS"}


def test_unknown_enum_value_is_rejected(with_gallery):
    _, compute = with_gallery
    error = sdk_rejects(lambda: create_definition(compute, os_type="Solaris"), 400, mentions="Solaris")
    assert error["target"] == "properties.osType"
    assert list(compute.gallery_images.list_by_gallery(RG, "gal")) == []


# ---- what may change after creation -----------------------------------------------------------------

def test_gallery_description_and_tags_may_change(server, compute):
    make_group(server.url)
    create_gallery(compute, description="old")
    compute.galleries.begin_create_or_update(RG, "gal", m.Gallery(
        location="eastus", tags={"a": "1"}, properties=m.GalleryProperties(description="new"))).result()
    got = compute.galleries.get(RG, "gal")
    assert got.properties.description == "new" and got.tags == {"a": "1"}


def test_gallery_location_cannot_change(server, compute):
    make_group(server.url)
    create_gallery(compute, description="old")
    error = sdk_rejects(lambda: create_gallery(compute, location="westus2", description="new"), 409,
                        "PropertyChangeNotAllowed", mentions="location")
    assert error["target"] == "location"
    got = compute.galleries.get(RG, "gal")
    assert got.location == "eastus" and got.properties.description == "old"
    assert got.properties.provisioning_state == "Succeeded"


def test_definition_updatable_properties_may_change(server, compute):
    make_group(server.url)
    create_gallery(compute)
    create_definition(compute)
    body = {"location": "eastus", "tags": {"t": "v"}, "properties": {
        "osType": "Linux", "osState": "Generalized", "identifier": {"publisher": "pub", "offer": "offer", "sku": "sku"},
        "description": "described", "endOfLifeDate": "2041-01-01T00:00:00Z",
        "recommended": {"vCPUs": {"min": 1, "max": 4}, "memory": {"min": 2, "max": 16}}}}
    compute.gallery_images.begin_create_or_update(RG, "gal", "def", body).result()
    got = compute.gallery_images.get(RG, "gal", "def")
    assert got.properties.description == "described"
    assert got.properties.end_of_life_date.year == 2041
    assert (got.properties.recommended.v_cp_us.max, got.properties.recommended.memory.max) == (4, 16)
    assert got.tags == {"t": "v"}


@pytest.mark.parametrize("change, named", [
    ({"osType": "Windows"}, "osType"),
    ({"osState": "Specialized"}, "osState"),
    ({"identifier": {"publisher": "pub", "offer": "offer", "sku": "other"}}, "identifier.sku"),
    ({"hyperVGeneration": "V2"}, "hyperVGeneration"),
])
def test_definition_other_properties_cannot_change(with_definition, change, named):
    _, compute = with_definition
    props = {"osType": "Linux", "osState": "Generalized", "description": "changed",
             "identifier": {"publisher": "pub", "offer": "offer", "sku": "sku"}, **change}
    body = {"location": "eastus", "properties": props}
    sdk_rejects(lambda: compute.gallery_images.begin_create_or_update(RG, "gal", "def", body).result(), 409,
                "PropertyChangeNotAllowed", mentions=named)
    sdk_rejects(lambda: compute.gallery_images.begin_update(RG, "gal", "def", {"properties": change}).result(),
                409, "PropertyChangeNotAllowed", mentions=named)
    got = compute.gallery_images.get(RG, "gal", "def").properties
    assert (got.os_type, got.os_state, got.hyper_v_generation, got.identifier.sku) == (
        "Linux", "Generalized", "V1", "sku")
    assert got.description == "kept" and got.provisioning_state == "Succeeded"


def test_version_updatable_properties_may_change(server, compute):
    snap = image_chain(compute, server.url)
    create_version(compute, snap.id, "1.0.0")
    body = version_body(snap.id, replicaCount=2, excludeFromLatest=True, endOfLifeDate="2042-01-01T00:00:00Z",
                        targets=[{"name": "eastus"}, {"name": "westus2", "regionalReplicaCount": 3}])
    body["tags"] = {"v": "1"}
    compute.gallery_image_versions.begin_create_or_update(RG, "gal", "def", "1.0.0", body).result()
    got = compute.gallery_image_versions.get(RG, "gal", "def", "1.0.0")
    profile = got.properties.publishing_profile
    assert profile.replica_count == 2 and profile.exclude_from_latest is True
    assert profile.end_of_life_date.year == 2042
    assert {t.name: t.regional_replica_count for t in profile.target_regions} == {"eastus": 2, "westus2": 3}
    assert got.tags == {"v": "1"} and got.properties.provisioning_state == "Succeeded"


def test_version_source_cannot_change(server, compute):
    snap = image_chain(compute, server.url)
    other = create_snapshot(compute, "other")
    create_version(compute, snap.id, "1.0.0")
    error = sdk_rejects(lambda: create_version(compute, other.id, "1.0.0"), 409, "PropertyChangeNotAllowed",
                        mentions="storageProfile")
    assert error["target"].startswith("properties.storageProfile")
    got = compute.gallery_image_versions.get(RG, "gal", "def", "1.0.0").properties
    assert got.storage_profile.os_disk_image.source.id.lower() == snap.id.lower()
    assert got.provisioning_state == "Succeeded"


def test_version_default_storage_account_type_cannot_change(server, compute):
    snap = image_chain(compute, server.url)
    create_version(compute, snap.id, "1.0.0")
    patch = {"properties": {"publishingProfile": {"storageAccountType": "Premium_LRS"}}}
    sdk_rejects(lambda: compute.gallery_image_versions.begin_update(RG, "gal", "def", "1.0.0", patch).result(),
                409, "PropertyChangeNotAllowed", mentions="storageAccountType")
    profile = compute.gallery_image_versions.get(RG, "gal", "def", "1.0.0").properties.publishing_profile
    assert profile.storage_account_type == "Standard_LRS"


def test_resending_a_version_unchanged_is_not_a_change(server, compute):
    snap = image_chain(compute, server.url)
    data = create_snapshot(compute, "data", size_gb=20, os_type=None)
    body = version_body(snap.id, targets=[{"name": "eastus"}])
    body["properties"]["storageProfile"]["dataDiskImages"] = [{"lun": 0, "source": {"id": data.id}}]
    compute.gallery_image_versions.begin_create_or_update(RG, "gal", "def", "1.0.0", body).result()
    again = compute.gallery_image_versions.begin_create_or_update(RG, "gal", "def", "1.0.0", body).result()
    assert again.properties.provisioning_state == "Succeeded"
    assert [d.lun for d in again.properties.storage_profile.data_disk_images] == [0]
    # A different data disk source is still a change.
    other = create_snapshot(compute, "other-data", size_gb=20, os_type=None)
    body["properties"]["storageProfile"]["dataDiskImages"] = [{"lun": 0, "source": {"id": other.id}}]
    sdk_rejects(lambda: compute.gallery_image_versions.begin_create_or_update(
        RG, "gal", "def", "1.0.0", body).result(), 409, "PropertyChangeNotAllowed", mentions="dataDiskImages")
    kept = compute.gallery_image_versions.get(RG, "gal", "def", "1.0.0").properties.storage_profile
    assert kept.data_disk_images[0].source.id.lower() == data.id.lower()


# ---- quotas per subscription per region ---------------------------------------------------------------

def test_gallery_quota_per_subscription_per_region(tmp_path):
    with ThreadServer(tmp_path, limits=Limits(galleries=2)) as server:
        compute = quick_polls(sdk_client(server.url))
        make_group(server.url)
        create_gallery(compute, "g1")
        create_gallery(compute, "g2")
        error = sdk_rejects(lambda: create_gallery(compute, "g3"), 409, "QuotaExceeded", mentions="eastus")
        assert "2" in error["message"]
        assert names(compute.galleries.list()) == ["g1", "g2"]
        assert create_gallery(compute, "g4", location="westus2").properties.provisioning_state == "Succeeded"
        # Another subscription has its own quota.
        make_subscription(server.url, OTHER_SUBSCRIPTION)
        make_group(server.url, sub=OTHER_SUBSCRIPTION)
        response = httpx.put(f"{compute_url(server.url, 'galleries/g5', sub=OTHER_SUBSCRIPTION)}"
                             f"?api-version={GALLERY_API}", json={"location": "eastus"})
        assert response.status_code == 201, response.text


def test_definition_and_version_quotas_per_region(tmp_path):
    with ThreadServer(tmp_path, limits=Limits(image_definitions=1, image_versions=1)) as server:
        compute = quick_polls(sdk_client(server.url))
        snap = image_chain(compute, server.url)
        sdk_rejects(lambda: create_definition(compute, name="def2", sku="sku2"), 409, "QuotaExceeded")
        create_definition(compute, name="def3", sku="sku3", location="westus2")
        assert names(compute.gallery_images.list_by_gallery(RG, "gal")) == ["def", "def3"]
        create_version(compute, snap.id, "1.0.0")
        sdk_rejects(lambda: create_version(compute, snap.id, "1.0.1"), 409, "QuotaExceeded")
        assert version_names(compute) == ["1.0.0"]


def test_replicas_per_region_are_limited_to_ten(server, compute):
    snap = image_chain(compute, server.url)
    sdk_rejects(lambda: create_version(compute, snap.id, targets=[{"name": "eastus", "regionalReplicaCount": 11}]),
                400, mentions="regionalReplicaCount")
    sdk_rejects(lambda: create_version(compute, snap.id, replicaCount=11), 400, mentions="replicaCount")
    assert version_names(compute) == []
    version = create_version(compute, snap.id, targets=[{"name": "eastus", "regionalReplicaCount": 10}])
    assert version.properties.publishing_profile.target_regions[0].regional_replica_count == 10


def test_replicas_per_region_limit_is_configurable(tmp_path):
    with ThreadServer(tmp_path, limits=Limits(replicas_per_region=3)) as server:
        compute = quick_polls(sdk_client(server.url))
        snap = image_chain(compute, server.url)
        sdk_rejects(lambda: create_version(compute, snap.id, targets=[{"name": "eastus", "regionalReplicaCount": 4}]),
                    400, mentions="regionalReplicaCount")
        assert version_names(compute) == []
        create_version(compute, snap.id, targets=[{"name": "eastus", "regionalReplicaCount": 3}])
        assert version_names(compute) == ["1.0.0"]


# ---- version placement and sources ----------------------------------------------------------------------

def test_version_location_must_be_one_of_its_target_regions(server, compute):
    snap = image_chain(compute, server.url)
    sdk_rejects(lambda: create_version(compute, snap.id, targets=[{"name": "westus2"}]), 400,
                mentions="targetRegions")
    assert version_names(compute) == []
    # Nor may an update drop the source region from the targets.
    create_version(compute, snap.id, targets=[{"name": "eastus"}, {"name": "westus2"}])
    patch = {"properties": {"publishingProfile": {"targetRegions": [{"name": "westus2"}]}}}
    sdk_rejects(lambda: compute.gallery_image_versions.begin_update(RG, "gal", "def", "1.0.0", patch).result(),
                400, mentions="targetRegions")
    profile = compute.gallery_image_versions.get(RG, "gal", "def", "1.0.0").properties.publishing_profile
    assert sorted(t.name for t in profile.target_regions) == ["eastus", "westus2"]


def test_replica_count_is_the_default_for_targets_without_one(server, compute):
    snap = image_chain(compute, server.url)
    create_version(compute, snap.id, replicaCount=3,
                   targets=[{"name": "eastus"}, {"name": "westus2", "regionalReplicaCount": 2}])
    profile = compute.gallery_image_versions.get(RG, "gal", "def", "1.0.0").properties.publishing_profile
    assert {t.name: t.regional_replica_count for t in profile.target_regions} == {"eastus": 3, "westus2": 2}


def with_data_disks(source_id: str, disks: list[tuple[int, str]]) -> dict:
    body = version_body(source_id)
    body["properties"]["storageProfile"]["dataDiskImages"] = [
        {"lun": lun, "source": {"id": disk_id}} for lun, disk_id in disks]
    return body


def test_data_disk_over_one_terabyte_is_rejected(server, compute):
    snap = image_chain(compute, server.url)
    big = create_snapshot(compute, "big", size_gb=1025, os_type=None)
    limit = create_snapshot(compute, "limit", size_gb=1024, os_type=None)
    body = with_data_disks(snap.id, [(0, big.id)])
    sdk_rejects(lambda: compute.gallery_image_versions.begin_create_or_update(
        RG, "gal", "def", "1.0.0", body).result(), 400, mentions="1025")
    assert version_names(compute) == []
    body = with_data_disks(snap.id, [(0, limit.id)])
    compute.gallery_image_versions.begin_create_or_update(RG, "gal", "def", "1.0.0", body).result()
    assert version_names(compute) == ["1.0.0"]


def test_data_disk_luns_must_be_unique(server, compute):
    snap = image_chain(compute, server.url)
    d1 = create_snapshot(compute, "d1", os_type=None)
    d2 = create_snapshot(compute, "d2", os_type=None)
    body = with_data_disks(snap.id, [(1, d1.id), (1, d2.id)])
    error = sdk_rejects(lambda: compute.gallery_image_versions.begin_create_or_update(
        RG, "gal", "def", "1.0.0", body).result(), 400, mentions="LUN")
    assert "lun" in error["target"]
    assert version_names(compute) == []


def test_missing_source_is_404(server, compute):
    image_chain(compute, server.url)
    missing = resource_id("snapshots/nosuch")
    error = sdk_rejects(lambda: create_version(compute, missing), 404, mentions="nosuch")
    assert "source" in error["target"]
    assert version_names(compute) == []


def test_source_os_type_must_match_the_definition(server, compute):
    image_chain(compute, server.url)  # a Linux definition
    windows = create_snapshot(compute, "win", os_type="Windows")
    sdk_rejects(lambda: create_version(compute, windows.id), 400, mentions="Windows")
    assert version_names(compute) == []


def put_and_finish(server, path: str, body: dict, api: str = GALLERY_API) -> None:
    response = arm_put(server.url, path, body, api)
    assert response.status_code in (200, 201, 202), response.text
    server.app.state.worker.run_pending()


def test_source_in_use_by_a_version_being_created_is_refused_until_it_ends(tmp_path):
    with ThreadServer(tmp_path, run_worker=False) as server:
        make_group(server.url)
        put_and_finish(server, "galleries/gal", {"location": "eastus"})
        put_and_finish(server, "galleries/gal/images/def", {"location": "eastus", "properties": {
            "osType": "Linux", "osState": "Generalized", "identifier": {"publisher": "p", "offer": "o", "sku": "s"}}})
        put_and_finish(server, "snapshots/snap", {"location": "eastus", "properties": {
            "creationData": {"createOption": "Empty"}, "diskSizeGB": 4, "osType": "Linux"}}, "2026-03-02")
        snap_id = resource_id("snapshots/snap")

        first = arm_put(server.url, "galleries/gal/images/def/versions/1.0.0", version_body(snap_id), GALLERY_API)
        assert first.status_code == 201, first.text
        assert first.json()["properties"]["provisioningState"] == "Creating"

        second = arm_put(server.url, "galleries/gal/images/def/versions/1.0.1", version_body(snap_id), GALLERY_API)
        assert_arm_error(second, 409, mentions="1.0.0")
        assert arm_get(server.url, "galleries/gal/images/def/versions/1.0.1", GALLERY_API).status_code == 404
        deleting = httpx.delete(f"{compute_url(server.url, 'snapshots/snap')}?api-version=2026-03-02")
        assert_arm_error(deleting, 409)

        assert server.app.state.worker.run_pending() >= 1
        done = arm_get(server.url, "galleries/gal/images/def/versions/1.0.0", GALLERY_API).json()
        assert done["properties"]["provisioningState"] == "Succeeded"

        again = arm_put(server.url, "galleries/gal/images/def/versions/1.0.1", version_body(snap_id), GALLERY_API)
        assert again.status_code == 201, again.text


def test_a_data_disk_source_is_in_use_too(tmp_path):
    with ThreadServer(tmp_path, run_worker=False) as server:
        make_group(server.url)
        put_and_finish(server, "galleries/gal", {"location": "eastus"})
        put_and_finish(server, "galleries/gal/images/def", {"location": "eastus", "properties": {
            "osType": "Linux", "osState": "Generalized", "identifier": {"publisher": "p", "offer": "o", "sku": "s"}}})
        for name, os_type in (("os", "Linux"), ("data", None)):
            put_and_finish(server, f"snapshots/{name}", {"location": "eastus", "properties": {
                "creationData": {"createOption": "Empty"}, "diskSizeGB": 4,
                **({"osType": os_type} if os_type else {})}}, "2026-03-02")
        body = version_body(resource_id("snapshots/os"))
        body["properties"]["storageProfile"]["dataDiskImages"] = [
            {"lun": 0, "source": {"id": resource_id("snapshots/data")}}]
        first = arm_put(server.url, "galleries/gal/images/def/versions/1.0.0", body, GALLERY_API)
        assert first.status_code == 201, first.text

        deleting = httpx.delete(f"{compute_url(server.url, 'snapshots/data')}?api-version=2026-03-02")
        assert_arm_error(deleting, 409, mentions="1.0.0")
        other = arm_put(server.url, "galleries/gal/images/def/versions/1.0.1",
                        version_body(resource_id("snapshots/data")), GALLERY_API)
        assert_arm_error(other, 409, mentions="1.0.0")
        assert arm_get(server.url, "snapshots/data", "2026-03-02").json()["properties"]["provisioningState"] == \
            "Succeeded"

        assert server.app.state.worker.run_pending() >= 1
        deleted = httpx.delete(f"{compute_url(server.url, 'snapshots/data')}?api-version=2026-03-02")
        assert deleted.status_code == 202, deleted.text


# ---- deleting parents and children -----------------------------------------------------------------------

def test_gallery_with_a_definition_cannot_be_deleted(server, compute):
    make_group(server.url)
    create_gallery(compute)
    create_definition(compute, name="mydef")
    error = sdk_rejects(lambda: compute.galleries.begin_delete(RG, "gal").result(), 409, mentions="mydef")
    assert error["target"]
    assert compute.galleries.get(RG, "gal").properties.provisioning_state == "Succeeded"
    assert names(compute.gallery_images.list_by_gallery(RG, "gal")) == ["mydef"]


def test_definition_with_a_version_cannot_be_deleted(server, compute):
    snap = image_chain(compute, server.url)
    create_version(compute, snap.id, "1.2.3")
    sdk_rejects(lambda: compute.gallery_images.begin_delete(RG, "gal", "def").result(), 409, mentions="1.2.3")
    assert compute.gallery_images.get(RG, "gal", "def").properties.provisioning_state == "Succeeded"
    assert version_names(compute) == ["1.2.3"]


def test_deleting_children_then_parent_works_at_once(server, compute):
    snap = image_chain(compute, server.url)
    create_version(compute, snap.id, "1.0.0")
    compute.gallery_image_versions.begin_delete(RG, "gal", "def", "1.0.0").result()
    compute.gallery_images.begin_delete(RG, "gal", "def").result()
    compute.galleries.begin_delete(RG, "gal").result()
    with pytest.raises(ResourceNotFoundError):
        compute.galleries.get(RG, "gal")
    with pytest.raises(ResourceNotFoundError):
        compute.gallery_images.get(RG, "gal", "def")
    # The source is free again once nothing is built from it.
    compute.snapshots.begin_delete(RG, "snap").result()
    assert list(compute.snapshots.list()) == []


@pytest.mark.parametrize("database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_concurrent_creates_never_go_over_a_quota(tmp_path, request, database):
    """Twelve galleries created at once against a quota of three: exactly three are made (each
    create counts and inserts under a lock: BEGIN IMMEDIATE on SQLite, an advisory lock on PostgreSQL)."""
    url = None
    if database == "postgres":
        url = request.getfixturevalue("postgres").create_database(f"galley_quota_{uuid.uuid4().hex[:8]}")
    with ThreadServer(tmp_path, database_url=url, limits=Limits(galleries=3)) as server:
        make_group(server.url)
        barrier = threading.Barrier(12)

        def create(number: int) -> int:
            barrier.wait()
            return httpx.put(f"{compute_url(server.url, f'galleries/q{number}')}?api-version={GALLERY_API}",
                             json={"location": "eastus"}, timeout=30).status_code

        with ThreadPoolExecutor(12) as pool:
            codes = sorted(pool.map(create, range(12)))
        assert codes == [201] * 3 + [409] * 9, codes
        listed = httpx.get(f"{compute_url(server.url, 'galleries')}?api-version={GALLERY_API}").json()["value"]
        assert len(listed) == 3
