"""Hostile input (issue 10's input rules): deep nesting, dates at the calendar's edge, numbers in
headers and queries, names with trailing newlines or look-alike characters, sizes, and a version's
VHD source. Each is a clear 4xx ARM error that changes nothing, never a 500."""

from __future__ import annotations

import datetime
import socket

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from galley.content.disk_image import DiskFormatError
from galley.content.formats import check_disk_size, open_disk
from galley.content.vhd import VhdFooter
from galley.domain import fields, limits, names
from galley.domain.limits import check_storable, nesting_depth
from galley.domain import image_template, platform_images, storage_account, user_identity
from galley.domain.errors import ArmError

from . import admin_http as httpx
from .sdk_helpers import (DISK_API, GALLERY_API, RG, arm_get, arm_put, compute_url, group_url, make_group,
                          resource_id)
from .servers import SUBSCRIPTION, ThreadServer

STORAGE_API = "2023-05-01"
TEMPLATE_API = "2025-10-01"
GRAPH_API = "2022-10-01"
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
ENDINGS = ["\n", "\r", "\r\n", "\0", "\t", " "]
# Characters that look like or count as ASCII letters and digits to a Unicode-aware pattern.
LOOK_ALIKES = ["а", "е", "о", "１", "٣", "߀", "ß", "ǅ"]


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    with ThreadServer(tmp_path_factory.mktemp("input-rules"), build_threads=0) as running:
        make_group(running.url)
        url = running.url
        gallery = arm_put(url, "galleries/gal", {"location": "eastus"}, GALLERY_API)
        assert gallery.status_code in (200, 201), gallery.text
        definition = arm_put(url, "galleries/gal/images/def", {"location": "eastus", "properties": {
            "osType": "Linux", "osState": "Generalized",
            "identifier": {"publisher": "p", "offer": "o", "sku": "s"}}}, GALLERY_API)
        assert definition.status_code in (200, 201), definition.text
        snapshot = arm_put(url, "snapshots/snap", {"location": "eastus", "properties": {
            "creationData": {"createOption": "Empty"}, "diskSizeGB": 1, "osType": "Linux"}}, DISK_API)
        assert snapshot.status_code in (200, 201, 202), snapshot.text
        for account in ("vhdstore", "otherstore"):
            made = httpx.put(f"{group_url(url)}/providers/Microsoft.Storage/storageAccounts/{account}",
                             params={"api-version": STORAGE_API},
                             json={"location": "eastus", "sku": {"name": "Standard_LRS"}})
            assert made.status_code in (200, 201, 202), made.text
        disk = bytes(1024 * 1024)
        stored = httpx.put(f"{url}/blob/vhdstore/vhds/os.vhd", content=disk + VhdFooter.new(2, len(disk)).pack())
        assert stored.status_code == 201, stored.text
        running.snapshot_id = resource_id("snapshots/snap")
        yield running


def assert_error(response, status: int | tuple[int, ...], code: str | None = None, mentions: str | None = None):
    statuses = status if isinstance(status, tuple) else (status,)
    assert response.status_code in statuses, (response.status_code, response.text)
    error = response.json()["error"]
    assert set(error) >= {"code", "message", "target"} and error["message"]
    if code is not None:
        assert error["code"] == code, error
    if mentions is not None:
        assert mentions in error["message"] or mentions == error.get("target"), error
    return error


def nested(depth: int, leaf: object = 1) -> object:
    value = leaf
    for _ in range(depth - 1):
        value = {"a": value}
    return value


def nested_json(depth: int, leaf: str = "1") -> str:
    """`nested(depth, leaf)` as JSON text, written out (encoders refuse such depths)."""
    return '{"a":' * (depth - 1) + leaf + "}" * (depth - 1)


def send_json(method: str, url: str, text: str, **params):
    return httpx.request(method, url, params=params, content=text.encode(),
                         headers={"Content-Type": "application/json"})


def version_path(name: str) -> str:
    return f"galleries/gal/images/def/versions/{name}"


def version_body(source: dict, **publishing) -> dict:
    return {"location": "eastus", "properties": {"publishingProfile": publishing,
                                                 "storageProfile": {"osDiskImage": {"source": source}}}}


def version_names(url: str) -> list[str]:
    listed = arm_get(url, "galleries/gal/images/def/versions", GALLERY_API)
    assert listed.status_code == 200, listed.text
    return sorted(v["name"] for v in listed.json()["value"])


# ---- 1. deep nesting ------------------------------------------------------------------------------

@FAST
@given(st.recursive(st.none() | st.integers() | st.text(max_size=3),
                    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children,
                                                                                      max_size=3),
                    max_leaves=30))
def test_nesting_depth_counts_objects_and_arrays(value):
    def recursive(item) -> int:
        if isinstance(item, dict):
            return 1 + max((recursive(v) for v in item.values()), default=0)
        if isinstance(item, list):
            return 1 + max((recursive(v) for v in item), default=0)
        return 0
    assert nesting_depth(value) == recursive(value)


def test_nesting_depth_walks_values_too_deep_for_recursion():
    assert nesting_depth(nested(100_000)) == 99_999


def test_nothing_too_deep_to_read_back_is_stored():
    check_storable({"encryption": nested(limits.MAX_STORED_DEPTH - 1)})
    with pytest.raises(ArmError) as refused:
        check_storable({"encryption": nested(250)})
    assert refused.value.status == 400 and refused.value.target == "properties"


def test_a_deeply_nested_wrong_type_is_refused_at_parse_time(srv):
    before = arm_get(srv.url, "galleries/gal", GALLERY_API).json()
    for depth in (limits.MAX_JSON_DEPTH, 1000, 1100):
        body = '{"location": "eastus", "properties": {"description": ' + nested_json(depth) + "}}"
        response = send_json("PUT", compute_url(srv.url, "galleries/gal"), body, **{"api-version": GALLERY_API})
        assert_error(response, 400, "InvalidRequestContent")
    assert arm_get(srv.url, "galleries/gal", GALLERY_API).json() == before


def test_a_body_just_inside_the_limit_reaches_the_rules(srv):
    body = {"location": "eastus", "properties": {"description": nested(limits.MAX_JSON_DEPTH - 2)}}
    error = assert_error(arm_put(srv.url, "galleries/gal", body, GALLERY_API), 400, "InvalidParameter")
    assert error["target"] == "properties.description"


def test_a_deeply_nested_update_changes_nothing(srv):
    before = arm_get(srv.url, "snapshots/snap", DISK_API).json()
    for key in ("creationData", "storageProfile"):
        body = '{"location": "eastus", "properties": {"diskSizeGB": 1, "%s": %s}}' % (key, nested_json(300))
        for method in ("PUT", "PATCH"):
            response = send_json(method, compute_url(srv.url, "snapshots/snap"), body, **{"api-version": DISK_API})
            assert_error(response, 400, "InvalidRequestContent")
    assert arm_get(srv.url, "snapshots/snap", DISK_API).json() == before


def test_a_deep_encryption_object_is_refused_and_the_versions_stay_readable(srv):
    body = version_body({"id": srv.snapshot_id}, targetRegions=[{"name": "eastus", "encryption": "ENCRYPTION"}])
    text = orjson.dumps(body).decode().replace('"ENCRYPTION"', nested_json(250, "{}"))
    response = send_json("PUT", compute_url(srv.url, version_path("9.9.9")), text, **{"api-version": GALLERY_API})
    assert_error(response, 400, "InvalidRequestContent")
    assert arm_get(srv.url, version_path("9.9.9"), GALLERY_API).status_code == 404
    assert "9.9.9" not in version_names(srv.url)
    latest = arm_get(srv.url, version_path("latest"), GALLERY_API)
    assert latest.status_code in (200, 404), latest.text


@pytest.mark.parametrize("path, params", [
    ("/providers/Microsoft.ResourceGraph/resources", {"api-version": GRAPH_API}),
    ("/providers/Galley.Identity/subscriptions", {}),
])
def test_every_json_route_has_the_same_limit(srv, path, params):
    response = send_json("POST", f"{srv.url}{path}", '{"query": "resources", "options": %s}' % nested_json(200),
                         **params)
    assert_error(response, 400, "InvalidRequestContent")


# ---- 2. dates at the edge of the calendar -----------------------------------------------------------

@pytest.mark.parametrize("moment", ["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00",
                                    "9999-12-31T23:59:59.999999-23:59"])
def test_end_of_life_dates_outside_utc_years_are_refused(srv, moment):
    definition = arm_get(srv.url, "galleries/gal/images/def", GALLERY_API).json()
    body = {"location": "eastus", "properties": {**definition["properties"], "endOfLifeDate": moment}}
    assert_error(arm_put(srv.url, "galleries/gal/images/def", body, GALLERY_API), 400, "InvalidParameter",
                 mentions="properties.endOfLifeDate")
    version = version_body({"id": srv.snapshot_id}, endOfLifeDate=moment)
    assert_error(arm_put(srv.url, version_path("8.8.8"), version, GALLERY_API), 400, "InvalidParameter",
                 mentions="properties.publishingProfile.endOfLifeDate")
    assert arm_get(srv.url, "galleries/gal/images/def", GALLERY_API).json() == definition
    assert "8.8.8" not in version_names(srv.url)


@FAST
@given(st.datetimes(timezones=st.timezones()) | st.datetimes(),
       st.integers(min_value=-(24 * 60 - 1), max_value=24 * 60 - 1))
def test_timestamp_is_a_date_or_a_400(moment, offset_minutes):
    text = moment.replace(tzinfo=datetime.timezone(datetime.timedelta(minutes=offset_minutes))).isoformat()
    try:
        normalized = fields.timestamp({"d": text}, "d", "d")
    except ArmError as error:
        assert error.status == 400 and error.target == "d"
    else:
        assert datetime.datetime.fromisoformat(normalized).utcoffset() == datetime.timedelta(0)


def test_credential_end_dates_outside_utc_years_are_refused(srv):
    created = httpx.post(f"{srv.url}/providers/Galley.Identity/servicePrincipals", json={"displayName": "sp-dates"})
    assert created.status_code == 201, created.text
    principal = created.json()
    reset = f"{srv.url}/providers/Galley.Identity/servicePrincipals/{principal['id']}/resetCredential"
    for moment in ("9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00"):
        assert_error(httpx.post(reset, json={"endDate": moment, "append": True}), 400, mentions="endDate")
    listed = httpx.get(f"{srv.url}/providers/Galley.Identity/servicePrincipals")
    assert listed.status_code == 200, listed.text


def test_activity_log_filter_dates_at_the_edge(srv):
    response = httpx.get(f"{srv.url}/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Insights/eventtypes/"
                         "management/values", params={"api-version": "2015-04-01", "$filter":
                         "eventTimestamp ge '9999-12-31T23:59:59-01:00' and eventTimestamp le "
                         "'9999-12-31T23:59:59-01:00'"})
    assert_error(response, 400)


# ---- 3. numbers in headers and queries -------------------------------------------------------------

@pytest.fixture(scope="module")
def small_disk(srv):
    path = compute_url(srv.url, "disks/small")
    made = httpx.put(path, params={"api-version": DISK_API}, json={"location": "eastus", "properties": {
        "creationData": {"createOption": "Upload", "uploadSizeBytes": limits.MIN_UPLOAD_SIZE_BYTES}}})
    assert made.status_code in (200, 201, 202), made.text
    uploaded = httpx.put(f"{path}/upload", params={"api-version": DISK_API, "format": "raw"},
                         content=bytes(range(256)) * 8)
    assert uploaded.status_code == 200, uploaded.text
    return path


@pytest.mark.parametrize("header, status", [
    ("bytes=" + "9" * 5000 + "-", 416), ("bytes=-" + "9" * 5000, 416), ("bytes=0-" + "9" * 5000, 416),
    ("bytes=0-" + "9" * 20, 206), ("bytes=-" + "9" * 20, 206), ("bytes=٣-", 416), ("bytes=0-١", 416),
    ("bytes=1-0", 416), ("bytes=99999999-", 416), ("bytes=0-0,2-3", 416),
])
def test_range_headers_are_answered_or_refused_never_500(srv, small_disk, header, status):
    for fmt in ("raw", "vhd"):
        response = httpx.get(f"{small_disk}/download", params={"api-version": DISK_API, "format": fmt},
                             headers={"Range": header.encode()})
        assert response.status_code == status, (header, fmt, response.status_code, response.text[:200])


@FAST
@given(st.text(alphabet="0123456789-=bytes,٣", max_size=40))
def test_any_range_header_is_206_200_or_416(srv, small_disk, header):
    response = httpx.get(f"{small_disk}/download", params={"api-version": DISK_API},
                         headers={"Range": header.encode()})
    assert response.status_code in (200, 206, 416), (header, response.status_code, response.text[:200])


@pytest.mark.parametrize("value", ["-2", "9" * 5000, "١", "1e3", "99999999999999999999999", "0x10"])
def test_numeric_query_values_out_of_range_are_400(srv, small_disk, value):
    lun = httpx.get(f"{small_disk}/download", params={"api-version": DISK_API, "lun": value})
    assert lun.status_code in (400, 404), lun.text[:300]
    top = httpx.get(f"{srv.url}/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Compute/locations/eastus/"
                    "publishers/Canonical/artifacttypes/vmimage/offers/o/skus/s/versions",
                    params={"api-version": "2024-07-01", "$top": value})
    assert top.status_code in (400, 404), top.text[:300]
    offset = httpx.get(f"{group_url(srv.url)}/providers/Microsoft.VirtualMachineImages/imageTemplates/t/logs", params={"api-version": TEMPLATE_API, "offset": value})
    assert offset.status_code in (400, 404), offset.text[:300]


def test_a_graph_query_with_a_huge_number_is_400(srv):
    response = httpx.post(f"{srv.url}/providers/Microsoft.ResourceGraph/resources",
                          params={"api-version": GRAPH_API},
                          json={"query": "resources | take " + "9" * 5000})
    assert_error(response, 400)


def raw_request(url: str, head: bytes, body: bytes = b"") -> bytes:
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(head + body)
        conn.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := conn.recv(65536):
            answer += chunk
    return answer


@pytest.mark.parametrize("length", [b"9" * 5000, b"99999999999999999999999", b"-1", b"\xd9\xa3", b"1 2"])
def test_odd_content_lengths_are_refused(srv, length):
    token = httpx.token_for(srv.url).encode()
    head = (b"PUT /subscriptions/" + SUBSCRIPTION.encode() + b"/resourceGroups/" + RG.encode()
            + b"/providers/Microsoft.Compute/galleries/cl?api-version=" + GALLERY_API.encode() + b" HTTP/1.1\r\n"
            b"Host: x\r\nAuthorization: Bearer " + token + b"\r\nContent-Type: application/json\r\n"
            b"Content-Length: " + length + b"\r\nConnection: close\r\n\r\n")
    answer = raw_request(srv.url, head, b'{"location": "eastus"}')
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else None
    assert status is None or 400 <= status < 500, answer[:300]
    assert arm_get(srv.url, "galleries/cl", GALLERY_API).status_code == 404


# ---- 4. names and ids ----------------------------------------------------------------------------------

NAME_RULES = [
    (names.check_gallery_name, "gallery1"),
    (names.check_image_definition_name, "def-1"),
    (names.check_version_name, "1.0.0"),
    (names.check_compute_resource_name, "disk_1"),
    (names.check_resource_group_name, "rg-1"),
    (names.check_subscription_id, SUBSCRIPTION),
    (storage_account.check_name, "account1"),
    (image_template.check_name, "template-1"),
    (user_identity.check_name, "identity-1"),
    (names.check_container_name, "vhds"),
    (lambda v: platform_images.check_name(v, "offer"), "offer-1"),
    (lambda v: platform_images.check_version(v), "1.0.0"),
    (lambda v: names.check_identifier_part(v, "sku", 64), "sku-1"),
]


def _accepts(rule, value: str) -> bool:
    try:
        rule(value)
    except ArmError as error:
        assert 400 <= error.status < 500
        return False
    return True


@pytest.mark.parametrize("rule, good", NAME_RULES)
def test_every_name_rule_is_matched_in_full_and_in_ascii(rule, good):
    assert _accepts(rule, good)
    for ending in ENDINGS:
        assert not _accepts(rule, good + ending), repr(good + ending)
        assert not _accepts(rule, ending + good), repr(ending + good)
    for odd in LOOK_ALIKES:
        for where in (0, len(good) // 2, len(good)):
            candidate = good[:where] + odd + good[where:]
            assert not _accepts(rule, candidate), repr(candidate)
            replaced = good[:where] + odd + good[where + 1:]
            assert not _accepts(rule, replaced), repr(replaced)


@FAST
@given(st.sampled_from(NAME_RULES), st.text(min_size=1, max_size=12))
def test_no_name_rule_accepts_control_or_non_ascii_characters(rule_and_good, extra):
    rule, good = rule_and_good
    candidate = good + extra
    if _accepts(rule, candidate):
        assert candidate.isascii() and candidate.isprintable() and "\n" not in candidate


def test_blob_names_refuse_control_characters():
    names.check_blob_name("dir/os.vhd")
    for bad in ("os.vhd\n", "os\0.vhd", "", "x" * 1025, "a\rb"):
        assert not _accepts(names.check_blob_name, bad), repr(bad)


def test_guids_are_strict():
    assert names.guid(SUBSCRIPTION.upper()) == SUBSCRIPTION
    for bad in (SUBSCRIPTION + "\n", " " + SUBSCRIPTION, "{" + SUBSCRIPTION + "}", "urn:uuid:" + SUBSCRIPTION,
                SUBSCRIPTION.replace("0", "٠"), SUBSCRIPTION.replace("-", "_"), None, 7):
        assert names.guid(bad) is None, repr(bad)


@pytest.mark.parametrize("name", [n + e for n in ("gal", "def") for e in ("%0A", "%0D", "%00", "%0D%0A")]
                         + ["g%D0%B0l", "gal%EF%BC%91"])
def test_names_with_newlines_or_look_alikes_are_refused_over_http(srv, name):
    gallery = httpx.put(compute_url(srv.url, f"galleries/{name}"), params={"api-version": GALLERY_API},
                        json={"location": "eastus"})
    assert_error(gallery, 400)
    disk = httpx.put(compute_url(srv.url, f"disks/{name}"), params={"api-version": DISK_API},
                     json={"location": "eastus", "properties": {"creationData": {"createOption": "Empty"},
                                                                 "diskSizeGB": 1}})
    assert_error(disk, 400)
    version = httpx.put(compute_url(srv.url, f"galleries/gal/images/def/versions/1.0.{name}"),
                        params={"api-version": GALLERY_API}, json=version_body({"id": srv.snapshot_id}))
    assert_error(version, 400)
    listed = httpx.get(compute_url(srv.url, "galleries"), params={"api-version": GALLERY_API}).json()["value"]
    assert [g["name"] for g in listed] == ["gal"]


@pytest.mark.parametrize("ending", ["%0A", "%0D", "%0D%0A", "%00"])
def test_a_subscription_id_with_a_newline_never_reaches_a_header(srv, ending):
    path = (f"/subscriptions/{SUBSCRIPTION}{ending}/resourceGroups/{RG}/providers/Microsoft.Compute/"
            f"galleries/newgal?api-version={GALLERY_API}")
    token = httpx.token_for(srv.url).encode()
    body = b'{"location": "eastus"}'
    answer = raw_request(srv.url, b"PUT " + path.encode() + b" HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                         + token + b"\r\nContent-Type: application/json\r\nContent-Length: "
                         + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n", body)
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:300]
    head = answer.split(b"\r\n\r\n", 1)[0]
    assert b"Azure-AsyncOperation" not in head and b"InvalidSubscriptionId" in answer
    assert arm_get(srv.url, "galleries/newgal", GALLERY_API).status_code == 404


@pytest.mark.parametrize("name", [".", "..", "%2E", "%2E%2E", "-a", "a.", "a-", "_a", "a%0A", "a%00", "tm%C9%91", "x" * 65])
def test_image_template_names_follow_azure(srv, name):
    url = f"{group_url(srv.url)}/providers/Microsoft.VirtualMachineImages/imageTemplates/{name}"
    response = httpx.put(url, params={"api-version": TEMPLATE_API}, json={"location": "eastus", "properties": {}})
    if name in (".", ".."):  # the client resolves these dot segments: no such route
        assert response.status_code in (404, 405), response.text
    else:
        assert_error(response, 400, "InvalidResourceName")
    listed = httpx.get(f"{group_url(srv.url)}/providers/Microsoft.VirtualMachineImages/imageTemplates",
                       params={"api-version": TEMPLATE_API})
    assert listed.status_code == 200 and listed.json()["value"] == []


@pytest.mark.parametrize("name", ["a", "a_", "A1.b-c_", "x" * 64])
def test_image_template_names_azure_accepts(name):
    image_template.check_name(name)


def test_role_assignment_names_must_be_guids(srv):
    scope = f"/subscriptions/{SUBSCRIPTION}"
    for name in (SUBSCRIPTION + "%0A", "{" + SUBSCRIPTION + "}", SUBSCRIPTION.replace("0", "%D9%A0")):
        response = httpx.put(f"{srv.url}{scope}/providers/Microsoft.Authorization/roleAssignments/{name}",
                             params={"api-version": "2022-04-01"},
                             json={"properties": {"roleDefinitionId": "acdd72a7-3385-48ef-bd42-f606fba81ae7",
                                                  "principalId": SUBSCRIPTION}})
        assert_error(response, 400)


# ---- 5. sizes -----------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def upload_disk(srv):
    path = compute_url(srv.url, "disks/target")
    made = httpx.put(path, params={"api-version": DISK_API}, json={"location": "eastus", "properties": {
        "creationData": {"createOption": "Upload", "uploadSizeBytes": limits.MIN_UPLOAD_SIZE_BYTES}}})
    assert made.status_code in (200, 201, 202), made.text
    return path


@pytest.mark.parametrize("size", [0, 1, 511, 513, 1025])
def test_raw_uploads_must_be_whole_sectors(srv, upload_disk, size):
    response = httpx.put(f"{upload_disk}/upload", params={"api-version": DISK_API}, content=b"\x01" * size)
    assert_error(response, 400, "InvalidDiskImage", mentions="512" if size else "empty")
    snapshot = httpx.put(f"{compute_url(srv.url, 'snapshots/snap')}/upload", params={"api-version": DISK_API},
                         content=b"\x01" * size)
    assert_error(snapshot, (400, 409), mentions=None)
    disk = httpx.get(upload_disk, params={"api-version": DISK_API}).json()
    assert disk["properties"]["diskSizeBytes"] == limits.MIN_UPLOAD_SIZE_BYTES - 512


@pytest.mark.parametrize("size", [0, 1, 511, 513])
def test_a_blob_may_be_any_file_but_only_whole_sectors_make_a_disk(srv, size):
    blob = httpx.put(f"{srv.url}/blob/vhdstore/files/odd-{size}.img", content=b"\x01" * size)
    assert blob.status_code == 201, blob.text  # a File customizer's source, say
    if size:  # (an empty blob is served as the fixed VHD of an empty disk: a footer alone)
        assert httpx.get(f"{srv.url}/blob/vhdstore/files/odd-{size}.img").content == b"\x01" * size
    uri = f"https://vhdstore.blob.core.windows.net/files/odd-{size}.img"
    version = arm_put(srv.url, version_path("4.4.4"), version_body({"uri": uri}), GALLERY_API)
    assert_error(version, 400, "InvalidDiskImage", mentions="512")
    disk = httpx.put(compute_url(srv.url, "disks/fromodd"), params={"api-version": DISK_API},
                     json={"location": "eastus", "properties": {"creationData": {"createOption": "Import",
                                                                                 "sourceUri": uri}}})
    assert_error(disk, 400, "InvalidDiskImage")
    assert "4.4.4" not in version_names(srv.url)
    assert arm_get(srv.url, "disks/fromodd", DISK_API).status_code == 404


@pytest.mark.parametrize("cut", [1, 8, 100, 511])
def test_a_vhd_whose_footer_was_cut_off_is_refused_not_taken_as_raw(srv, upload_disk, cut):
    data = bytes(range(256)) * 8
    whole = data + VhdFooter.new(2, len(data)).pack()
    response = httpx.put(f"{upload_disk}/upload", params={"api-version": DISK_API}, content=whole[:-cut])
    error = assert_error(response, 400, "InvalidDiskImage")
    assert "VHD footer" in error["message"] and "cut off" in error["message"]


def test_whole_sector_raw_uploads_still_work(srv, upload_disk):
    response = httpx.put(f"{upload_disk}/upload", params={"api-version": DISK_API}, content=b"\x02" * 1024)
    assert response.status_code == 200, response.text
    assert httpx.get(f"{upload_disk}/download", params={"api-version": DISK_API}).content == b"\x02" * 1024


@FAST
@given(st.integers(min_value=0, max_value=4096))
def test_check_disk_size_takes_exactly_whole_sectors(tmp_path_factory, size):
    path = tmp_path_factory.mktemp("sizes") / "disk.raw"
    path.write_bytes(b"\x03" * size)
    with open_disk(path) as image:
        if size and size % 512 == 0:
            check_disk_size(image)
        else:
            with pytest.raises(DiskFormatError):
                check_disk_size(image)


@pytest.mark.parametrize("size, accepted", [
    (limits.MIN_UPLOAD_SIZE_BYTES, True), (limits.MIN_UPLOAD_SIZE_BYTES - 512, False),
    (limits.MIN_UPLOAD_SIZE_BYTES + 1, False), (limits.MIN_UPLOAD_SIZE_BYTES + 511, False),
    (limits.MAX_UPLOAD_SIZE_BYTES, True), (limits.MAX_UPLOAD_SIZE_BYTES + 512, False),
    (2 ** 64 - 1, False), (2 ** 63, False), (-1, False),
])
def test_upload_size_bytes_follows_azure(srv, size, accepted):
    response = httpx.put(compute_url(srv.url, "disks/sized"), params={"api-version": DISK_API},
                         json={"location": "eastus", "properties": {
                             "creationData": {"createOption": "Upload", "uploadSizeBytes": size}}})
    if accepted:
        assert response.status_code in (200, 201, 202), response.text
        assert httpx.delete(compute_url(srv.url, "disks/sized"), params={"api-version": DISK_API}).status_code < 300
    else:
        assert_error(response, 400, mentions="properties.creationData.uploadSizeBytes")
        assert arm_get(srv.url, "disks/sized", DISK_API).status_code == 404


@pytest.mark.parametrize("tags", [
    {f"t{i}": "v" for i in range(limits.MAX_TAGS + 1)},
    {"x" * (limits.MAX_TAG_NAME_LENGTH + 1): "v"},
    {"t": "v" * (limits.MAX_TAG_VALUE_LENGTH + 1)},
    {"t": 1},
])
def test_tags_beyond_azure_limits_are_refused(srv, tags):
    before = arm_get(srv.url, "galleries/gal", GALLERY_API).json()
    assert_error(arm_put(srv.url, "galleries/gal", {"location": "eastus", "tags": tags}, GALLERY_API), 400,
                 mentions="tags")
    assert arm_get(srv.url, "galleries/gal", GALLERY_API).json() == before


def test_long_strings_and_arrays_are_refused_naming_the_field(srv):
    definition = arm_get(srv.url, "galleries/gal/images/def", GALLERY_API).json()
    for key, value in (("description", "d" * (limits.MAX_STRING_LENGTH + 1)),
                       ("privacyStatementUri", "https://x/" + "p" * limits.MAX_URI_LENGTH),
                       ("releaseNoteUri", "https://x/" + "r" * limits.MAX_URI_LENGTH),
                       ("eula", "e" * (limits.MAX_STRING_LENGTH + 1))):
        body = {"location": "eastus", "properties": {**definition["properties"], key: value}}
        assert_error(arm_put(srv.url, "galleries/gal/images/def", body, GALLERY_API), 400,
                     mentions=f"properties.{key}")
    many = [{"name": "eastus"}] * (limits.MAX_TARGET_REGIONS + 1)
    assert_error(arm_put(srv.url, version_path("7.7.7"), version_body({"id": srv.snapshot_id}, targetRegions=many),
                         GALLERY_API), 400, mentions="properties.publishingProfile.targetRegions")
    disks = [{"lun": i, "source": {"id": srv.snapshot_id}} for i in range(limits.MAX_DATA_DISKS + 1)]
    body = version_body({"id": srv.snapshot_id})
    body["properties"]["storageProfile"]["dataDiskImages"] = disks
    assert_error(arm_put(srv.url, version_path("7.7.7"), body, GALLERY_API), 400,
                 mentions="properties.storageProfile.dataDiskImages")
    assert arm_get(srv.url, "galleries/gal/images/def", GALLERY_API).json() == definition
    assert "7.7.7" not in version_names(srv.url)


def _template_steps(**step) -> dict:
    return {"customize": [{"type": "Shell", "name": "s", **step}]}


@pytest.mark.parametrize("properties, target", [
    (_template_steps(inline=["x" * (limits.MAX_SCRIPT_LINE_LENGTH + 1)]), "properties.customize[0].inline[0]"),
    (_template_steps(inline=["true"] * (limits.MAX_SCRIPT_LINES + 1)), "properties.customize[0].inline"),
    ({"customize": [{"type": "Shell", "name": f"s{i}", "inline": ["true"]}
                    for i in range(limits.MAX_TEMPLATE_STEPS + 1)]}, "properties.customize"),
])
def test_template_scripts_and_steps_are_capped(properties, target):
    from galley.domain.image_template import _steps  # the rule alone: no source or identity needed
    with pytest.raises(ArmError) as refused:
        _steps(properties, "customize", ("Shell", "File"))
    assert refused.value.status == 400 and refused.value.target == target


# ---- 6. a version's VHD source ------------------------------------------------------------------------

def account_id(name: str, rg: str = RG, sub: str = SUBSCRIPTION) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Storage/storageAccounts/{name}"


OS_VHD = "https://vhdstore.blob.core.windows.net/vhds/os.vhd"


@pytest.mark.parametrize("source, status, code", [
    ({"uri": OS_VHD, "storageAccountId": account_id("nosuchacct")}, 404, "NotFound"),
    ({"uri": OS_VHD, "storageAccountId": account_id("vhdstore", rg="elsewhere")}, 404, "NotFound"),
    ({"uri": OS_VHD, "storageAccountId": account_id("vhdstore", sub="11111111-1111-1111-1111-111111111111")},
     404, "NotFound"),
    ({"uri": OS_VHD, "storageAccountId": account_id("otherstore")}, 400, "InvalidParameter"),
    ({"uri": OS_VHD, "storageAccountId": resource_id("snapshots/snap")}, 400, "InvalidParameter"),
    ({"uri": OS_VHD, "storageAccountId": "not-an-id"}, 400, None),
    ({"uri": "https://vhdstore.blob.core.windows.net/vhds/missing.vhd", "storageAccountId": account_id("vhdstore")},
     404, "BlobNotFound"),
    ({"uri": "https://nosuchacct.blob.core.windows.net/vhds/os.vhd"}, 404, "NotFound"),
    ({"uri": OS_VHD + "\n", "storageAccountId": account_id("vhdstore")}, 400, "InvalidParameter"),
])
def test_a_vhd_source_must_name_an_account_that_holds_the_blob(srv, source, status, code):
    response = arm_put(srv.url, version_path("6.6.6"), version_body(source), GALLERY_API)
    assert_error(response, status, code)
    assert "6.6.6" not in version_names(srv.url)
    data = version_body({"id": srv.snapshot_id})
    data["properties"]["storageProfile"]["dataDiskImages"] = [{"lun": 0, "source": source}]
    assert_error(arm_put(srv.url, version_path("6.6.7"), data, GALLERY_API), status, code)
    disk = httpx.put(compute_url(srv.url, "disks/imported"), params={"api-version": DISK_API},
                     json={"location": "eastus", "properties": {"creationData": {
                         "createOption": "Import", "sourceUri": source["uri"],
                         **({"storageAccountId": source["storageAccountId"]} if "storageAccountId" in source else {})}}})
    assert_error(disk, status, code)


def test_a_vhd_source_naming_its_own_account_is_accepted(srv):
    source = {"uri": OS_VHD, "storageAccountId": account_id("vhdstore")}
    response = arm_put(srv.url, version_path("5.5.5"), version_body(source), GALLERY_API)
    assert response.status_code in (200, 201), response.text
    stored = arm_get(srv.url, version_path("5.5.5"), GALLERY_API).json()
    assert stored["properties"]["storageProfile"]["osDiskImage"]["source"] == source


@pytest.mark.parametrize("sig", ["%C3%A9t%C3%A9", "%F3%80%9B%AC%01O", "plain"])
def test_a_boot_diagnostics_url_with_a_made_up_signature_is_refused(module_sqlite_server, sig):
    """The signed serial-log URL (az vm boot-diagnostics get-boot-log-uris) with a signature the
    caller invented, non-ASCII characters included: 403, never a 500 (hmac refuses non-ASCII str)."""
    response = httpx.get(f"{module_sqlite_server.url}/galley/boot-diagnostics/no-such-vm/serial.log"
                         f"?se=4102444800&sig={sig}", headers={"Authorization": ""})
    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] == "AuthenticationFailed"
