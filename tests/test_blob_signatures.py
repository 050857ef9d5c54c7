"""Galley's Shared Key and account-SAS verifiers against what azure-storage-blob itself signs."""

from __future__ import annotations

import base64
import os
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
from azure.core.pipeline import PipelineContext, PipelineRequest
from azure.core.pipeline.transport import HttpRequest
from azure.storage.blob import (
    AccountSasPermissions,
    ResourceTypes,
    generate_account_sas,
)
from azure.storage.blob._shared.authentication import (
    SharedKeyCredentialPolicy,
    _storage_header_sort,
)
from hypothesis import given
from hypothesis import strategies as st

from galley.blobservice import account_sas as account_sas_module
from galley.blobservice import shared_key
from galley.blobservice.errors import BlobError
from galley.blobservice.shared_key import SignedRequest

KEY = base64.b64encode(os.urandom(64)).decode()
OTHER = base64.b64encode(os.urandom(64)).decode()


def signed_by_sdk(method: str, url: str, headers: dict, account: str = "acct", key: str = KEY) -> SignedRequest:
    request = HttpRequest(method, url, headers=dict(headers))
    SharedKeyCredentialPolicy(account, key).on_request(PipelineRequest(request, PipelineContext(None)))
    parts = urlsplit(request.url)
    return SignedRequest(method, parts.path, parts.query, {k.lower(): v for k, v in request.headers.items()})


def check(request: SignedRequest, account: str = "acct", keys: list[str] = (KEY,)) -> bool:
    parsed = shared_key.parse_authorization(request.headers["authorization"])
    assert parsed is not None and parsed[0] == account
    return shared_key.verify(request, account, parsed[1], [base64.b64decode(k) for k in keys])


BASE_HEADERS = {"x-ms-version": "2025-11-05", "x-ms-date": "Sun, 29 Nov 2026 19:00:00 GMT",
                "x-ms-client-request-id": "8c1f0a2e-0000-0000-0000-000000000000"}


@pytest.mark.parametrize("method,path,query,headers", [
    ("PUT", "/acct/vhds/disk.vhd", "", {"x-ms-blob-type": "PageBlob", "x-ms-blob-content-length": "1048576",
                                        "Content-Length": "0"}),
    ("PUT", "/acct/vhds/os%20disk%2B1.vhd", "comp=page", {"x-ms-page-write": "update", "x-ms-range": "bytes=0-511",
                                                         "Content-Length": "512", "Content-MD5": "abc=="}),
    ("PUT", "/acct/c/big.bin", "comp=block&blockid=QUFBQUFBQUE%2B%2F%3D%3D", {"Content-Length": "4096"}),
    ("GET", "/acct/c", "restype=container&comp=list&prefix=a%2Fb&maxresults=5&marker=", {}),
    ("GET", "/acct/c/blob", "", {"Range": "bytes=0-9"}),
    ("PUT", "/acct/c/blob", "comp=blocklist", {"Content-Type": "application/xml", "x-ms-meta-a-b": "1",
                                                "x-ms-meta-ab": "2", "x-ms-blob-content-type": "x/y"}),
])
def test_shared_key_of_azure_storage_blob_is_accepted(method, path, query, headers):
    request = signed_by_sdk(method, f"https://127.0.0.1:8070{path}{'?' + query if query else ''}",
                            {**BASE_HEADERS, **headers})
    assert check(request)
    assert check(request, keys=[OTHER, KEY])  # either of the account's keys
    assert not check(request, keys=[OTHER])


def test_any_change_to_a_signed_request_is_refused():
    request = signed_by_sdk("PUT", "https://127.0.0.1:8070/acct/c/blob?comp=page",
                            {**BASE_HEADERS, "x-ms-range": "bytes=0-511", "Content-Length": "512"})
    assert check(request)
    changes = [dict(method="DELETE"), dict(raw_path="/acct/c/other"), dict(query_string="comp=block"),
               dict(headers={**request.headers, "x-ms-range": "bytes=512-1023"}),
               dict(headers={**request.headers, "content-length": "1024"}),
               dict(headers={**request.headers, "x-ms-meta-extra": "1"})]
    for change in changes:
        assert not check(SignedRequest(**{**request.__dict__, **change})), change


def test_a_non_ascii_shared_key_signature_is_refused_not_a_crash():
    request = signed_by_sdk("GET", "https://127.0.0.1/acct/c/b", BASE_HEADERS)
    assert shared_key.verify(request, "acct", "\u00e9t\u00e9\udcff", [base64.b64decode(KEY)]) is False


def test_the_account_is_part_of_the_signature():
    request = signed_by_sdk("GET", "https://127.0.0.1:8070/acct/c/blob", BASE_HEADERS)
    forged = SignedRequest(request.method, "/other/c/blob", request.query_string,
                           {**request.headers, "authorization": request.headers["authorization"].replace("acct:", "other:")})
    assert not check(forged, account="other")


@given(st.lists(st.from_regex(r"x-ms-[ab1-][ab1-]{0,6}", fullmatch=True), min_size=2, max_size=8, unique=True))
def test_header_order_is_the_services(names):
    expected = [n for n, _ in _storage_header_sort([(n, "") for n in names])]
    assert sorted(names, key=shared_key.header_order) == expected


NOW = datetime.now(UTC)


def account_sas(permission: str = "rwdlacup", resource_types: ResourceTypes | None = None, key: str = KEY,
                expiry: datetime | None = None, start: datetime | None = None, **kwargs) -> dict[str, str]:
    token = generate_account_sas("acct", key, resource_types or ResourceTypes(service=True, container=True, object=True),
                                 AccountSasPermissions.from_string(permission), expiry or NOW + timedelta(hours=1),
                                 start=start, **kwargs)
    return dict(SignedRequest("GET", "/", token, {}).query_pairs())


def verify_sas(params: dict, need: account_sas_module.Need, keys=(KEY,), https=True, now=NOW):
    account_sas_module.verify(params, "acct", [base64.b64decode(k) for k in keys], need, now, https, "127.0.0.1")


def test_an_account_sas_of_azure_storage_blob_is_accepted_for_what_it_allows():
    params = account_sas("rwl", protocol="https")
    assert account_sas_module.is_account_sas(params)
    verify_sas(params, account_sas_module.Need("o", "r"))
    verify_sas(params, account_sas_module.Need("o", "wc"))
    verify_sas(params, account_sas_module.Need("c", "l"))
    verify_sas(params, account_sas_module.Need("o", "r"), keys=(OTHER, KEY))


@pytest.mark.parametrize("params,need,code", [
    (lambda: account_sas("r"), ("o", "w"), "AuthorizationPermissionMismatch"),
    (lambda: account_sas("r"), ("o", "d"), "AuthorizationPermissionMismatch"),
    (lambda: account_sas("rwdl", ResourceTypes(object=True)), ("c", "l"), "AuthorizationResourceTypeMismatch"),
    (lambda: account_sas("r", key=OTHER), ("o", "r"), "AuthenticationFailed"),
    (lambda: account_sas("r", expiry=NOW - timedelta(minutes=1)), ("o", "r"), "AuthenticationFailed"),
    (lambda: account_sas("r", start=NOW + timedelta(minutes=5)), ("o", "r"), "AuthenticationFailed"),
    (lambda: {**account_sas("r"), "sp": "rw"}, ("o", "w"), "AuthenticationFailed"),  # widened by hand
    (lambda: {**account_sas("r"), "se": (NOW + timedelta(days=9)).strftime("%Y-%m-%dT%H:%M:%SZ")}, ("o", "r"),
     "AuthenticationFailed"),
    (lambda: account_sas("r", ip="10.0.0.1"), ("o", "r"), "AuthorizationSourceIPMismatch"),
    # A signature a caller made up with non-ASCII characters is wrong, not a crash.
    (lambda: {**account_sas("r"), "sig": "\u00e9\U0001f600=="}, ("o", "r"), "AuthenticationFailed"),
])
def test_an_account_sas_is_refused_beyond_what_it_allows(params, need, code):
    with pytest.raises(BlobError) as refused:
        verify_sas(params(), account_sas_module.Need(*need))
    assert refused.value.status == 403 and refused.value.code == code


def test_an_https_only_account_sas_is_refused_over_http():
    with pytest.raises(BlobError) as refused:
        verify_sas(account_sas("r", protocol="https"), account_sas_module.Need("o", "r"), https=False)
    assert refused.value.code == "AuthorizationProtocolMismatch"
