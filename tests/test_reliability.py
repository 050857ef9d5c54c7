"""Bad input is a 4xx ARM error that changes nothing; concurrency and restarts lose nothing."""

from __future__ import annotations

import threading
from urllib.parse import quote

from . import admin_http as httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .arm import (DISK_API, GALLERY_API, assert_arm_error, compute_url, make_group, seed_definition,
                  version_body, wait_operation)
from .servers import SUBSCRIPTION, ProcessServer, ThreadServer


def _versions(base: str) -> list[dict]:
    url = compute_url(base, f"galleries/gal/images/def/versions?{GALLERY_API}")
    return httpx.get(url).json()["value"]


def test_malformed_json_is_rejected_and_writes_nothing(server):
    seed_definition(server.url)
    url = compute_url(server.url, f"galleries/gal/images/def/versions/1.0.0?{GALLERY_API}")
    for raw in (b"{", b'{"location": "eastus",}', b"[]", b'"text"', b"", b"\xff\xfe"):
        response = httpx.put(url, content=raw, headers={"Content-Type": "application/json"})
        assert_arm_error(response, 400, "InvalidRequestContent")
    assert _versions(server.url) == []


def test_wrong_types_name_the_property_and_write_nothing(server):
    urls = seed_definition(server.url)
    url = compute_url(server.url, f"galleries/gal/images/def/versions/1.0.0?{GALLERY_API}")
    cases = [
        ({"publishingProfile": {"replicaCount": "two"}}, "properties.publishingProfile.replicaCount"),
        ({"publishingProfile": {"targetRegions": "eastus"}}, "properties.publishingProfile.targetRegions"),
        ({"publishingProfile": {"excludeFromLatest": "yes"}}, "properties.publishingProfile.excludeFromLatest"),
        ({"publishingProfile": {"endOfLifeDate": "next tuesday"}}, "properties.publishingProfile.endOfLifeDate"),
        ({"storageProfile": []}, "properties.storageProfile"),
    ]
    for properties, target in cases:
        body = version_body(urls["snapshot_id"])
        body["properties"].update(properties)
        error = assert_arm_error(httpx.put(url, json=body), 400)
        assert error["target"] == target, error
    assert _versions(server.url) == []
    error = assert_arm_error(httpx.put(url, json={"location": 7, "properties": {}}), 400)
    assert error["target"] == "location"


def test_oversized_body_is_rejected(sqlite_server):
    seed_definition(sqlite_server.url)
    url = compute_url(sqlite_server.url, f"galleries/gal/images/def?{GALLERY_API}")
    body = b'{"location": "eastus", "properties": {"description": "' + b"x" * 2_000_000 + b'"}}'
    assert_arm_error(httpx.put(url, content=body), 413, "RequestEntityTooLarge")
    # Streamed without a Content-Length: still cut off at the limit.
    assert_arm_error(httpx.put(url, content=iter([body[i:i + 65536] for i in range(0, len(body), 65536)])),
                     413, "RequestEntityTooLarge")
    assert "description" not in httpx.get(url).json()["properties"]


@pytest.mark.parametrize("name", ["bad name", "semi;colon", "dash-ok-for-definitions-not-galleries",
                                  "ünïcode", "a" * 81, "trailing.", "nul\x00", "back\\slash",
                                  "slash/inside", "..", "quote'"])
def test_odd_characters_in_gallery_names(module_sqlite_server, name):
    make_group(module_sqlite_server.url)
    url = compute_url(module_sqlite_server.url, f"galleries/{quote(name, safe='')}?{GALLERY_API}")
    response = httpx.put(url, json={"location": "eastus"})
    assert 400 <= response.status_code < 500, response.text
    assert response.json()["error"]["code"]
    listed = httpx.get(compute_url(module_sqlite_server.url, f"galleries?{GALLERY_API}")).json()["value"]
    assert listed == []


def test_unknown_and_missing_api_versions(module_sqlite_server):
    make_group(module_sqlite_server.url)
    base = compute_url(module_sqlite_server.url, "galleries/gal")
    assert_arm_error(httpx.put(f"{base}?api-version=2099-01-01", json={"location": "eastus"}), 400,
                     "InvalidApiVersionParameter")
    assert_arm_error(httpx.put(base, json={"location": "eastus"}), 400, "MissingApiVersionParameter")
    # A disk api-version is not a gallery api-version.
    assert_arm_error(httpx.put(f"{base}?{DISK_API}", json={"location": "eastus"}), 400,
                     "InvalidApiVersionParameter")
    assert httpx.get(compute_url(module_sqlite_server.url, f"galleries?{GALLERY_API}")).json()["value"] == []


def test_unknown_paths_and_methods_are_arm_errors(module_sqlite_server):
    response = httpx.get(f"{module_sqlite_server.url}/subscriptions/{SUBSCRIPTION}/nothing?{GALLERY_API}")
    assert_arm_error(response, 404, "NotFound")
    response = httpx.post(compute_url(module_sqlite_server.url, f"galleries/gal?{GALLERY_API}"), json={})
    assert_arm_error(response, 405, "MethodNotAllowed")
    response = httpx.get(f"{module_sqlite_server.url}/subscriptions/not-a-guid/resourcegroups?api-version=2024-11-01")
    assert_arm_error(response, 400, "InvalidSubscriptionId")


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-2**40, 2**40) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12)
property_names = st.sampled_from([
    "osType", "osState", "identifier", "hyperVGeneration", "publishingProfile", "storageProfile",
    "recommended", "endOfLifeDate", "description", "creationData", "diskSizeGB", "targetRegions"])


@pytest.mark.slow
def test_random_bodies_never_cause_a_server_error(tmp_path):
    """Any JSON for any resource type: a success or a 4xx, never a 5xx."""
    with ThreadServer(tmp_path) as running:
        urls = seed_definition(running.url)
        targets = [compute_url(running.url, f"galleries/gal/images/def/versions/2.0.0?{GALLERY_API}"),
                   compute_url(running.url, f"galleries/gal/images/def2?{GALLERY_API}"),
                   compute_url(running.url, f"snapshots/fuzz?{DISK_API}"),
                   compute_url(running.url, "images/fuzz?api-version=2026-04-01")]
        client = httpx.Client()

        @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
        @given(target=st.sampled_from(targets),
               properties=st.dictionaries(property_names, json_values, max_size=4),
               location=st.sampled_from(["eastus", "westus2", "nowhere", 3, None]),
               method=st.sampled_from(["PUT", "PATCH"]))
        def check(target, properties, location, method):
            body = {"location": location, "properties": properties}
            if "versions" in target and "storageProfile" not in properties:
                body["properties"]["storageProfile"] = {"osDiskImage": {"source": {"id": urls["snapshot_id"]}}}
            response = client.request(method, target, json=body)
            assert response.status_code < 500, (body, response.text)
            if response.status_code >= 400:
                assert response.json()["error"]["code"]

        check()


def test_concurrent_puts_of_the_same_new_version_make_one_row(server):
    urls = seed_definition(server.url)
    url = compute_url(server.url, f"galleries/gal/images/def/versions/1.0.0?{GALLERY_API}")
    body = version_body(urls["snapshot_id"])
    barrier = threading.Barrier(8)
    statuses: list[int] = []

    def put() -> None:
        with httpx.Client() as client:
            barrier.wait()
            statuses.append(client.put(url, json=body).status_code)

    threads = [threading.Thread(target=put) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses.count(201) == 1, statuses
    assert all(status in (200, 201, 409) for status in statuses), statuses
    assert [v["name"] for v in _versions(server.url)] == ["1.0.0"]


@pytest.mark.slow
def test_restart_after_kill_loses_nothing_acknowledged(tmp_path):
    """kill -9 with an acknowledged create still queued; after restart it completes."""
    first = ProcessServer(tmp_path, worker=False).start()
    try:
        urls = seed_definition_without_worker(first.url)
        response = httpx.put(f"{urls['gallery2']}?{GALLERY_API}", json={"location": "eastus"})
        assert response.status_code == 201
        assert response.json()["properties"]["provisioningState"] == "Creating"
    finally:
        first.kill()
    second = ProcessServer(tmp_path).start()
    try:
        assert wait_operation(response_with_url(response, first.url, second.url))["status"] == "Succeeded"
        gallery = httpx.get(f"{urls['gallery2']}?{GALLERY_API}".replace(first.url, second.url)).json()
        assert gallery["properties"]["provisioningState"] == "Succeeded"
        groups = httpx.get(f"{second.url}/subscriptions/{SUBSCRIPTION}/resourcegroups?api-version=2024-11-01")
        assert [g["name"] for g in groups.json()["value"]] == ["rg"]
    finally:
        second.stop()


def seed_definition_without_worker(base: str) -> dict[str, str]:
    make_group(base)
    return {"gallery2": compute_url(base, "galleries/survivor")}


def response_with_url(response: httpx.Response, old: str, new: str) -> httpx.Response:
    headers = {k: v.replace(old, new) for k, v in response.headers.items()}
    return httpx.Response(response.status_code, headers=headers)


def test_content_endpoints_check_the_api_version(sqlite_server):
    urls = seed_definition(sqlite_server.url)
    snapshot = urls["snapshot"]
    for response in (httpx.get(f"{snapshot}/download?api-version=2099-01-01"),
                     httpx.put(f"{snapshot}/upload?api-version=2099-01-01", content=b"\0" * 512),
                     httpx.get(f"{snapshot}/download")):
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] in ("InvalidApiVersionParameter", "MissingApiVersionParameter")
    assert httpx.get(f"{snapshot}?{DISK_API}").json()["properties"]["diskState"] == "Unattached"
