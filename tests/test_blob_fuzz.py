"""The Blob service under hostile input, with valid credentials (an account SAS of a storage
account; a disk's Write SAS): whatever the method, query, headers and body, the answer is a 2xx or
a 4xx in Storage's XML error shape, never a 5xx (issue 10's rule on the one front door the
OpenAPI fuzz in test_fuzz.py does not reach)."""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, timedelta

import httpx as plain_httpx
import pytest
from azure.storage.blob import AccountSasPermissions, ResourceTypes, generate_account_sas
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from . import admin_http as admin_httpx
from .data_helpers import MiB, compute_client, create_upload_disk
from .sdk_helpers import DISK_API, make_group, resource_id
from .servers import ThreadServer
from .test_storage_accounts_blob import list_keys, make_account


EXAMPLES = int(os.environ.get("GALLEY_FUZZ_EXAMPLES", "25")) * 8
COMPS = ["page", "pagelist", "block", "blocklist", "list", "metadata", "properties", "lease", "copy",
         "appendblock", "tags", "", "x" * 300, "pAGe", "blocklist%00", "%C3%A9", "page%20"]
HEADER_VALUES = st.one_of(
    st.sampled_from(["", "0", "-1", "bytes=0-511", "bytes=0-", "bytes=-512", "bytes=512-0", "bytes=1-512",
                     "bytes=0-4194303", "bytes=0-4194304", "bytes=99999999999999999999-1", "update", "clear",
                     "PageBlob", "BlockBlob", "AppendBlob", "2025-11-05", "1999-01-01", "AAAA", "!!!",
                     "18446744073709551616", "1e9", "5 12", "0x200", "%FF", "=?utf-8?q?x?="]),
    st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40).map(str.strip),
)
HEADERS = st.dictionaries(
    st.sampled_from(["x-ms-range", "range", "x-ms-page-write", "x-ms-blob-type", "x-ms-blob-content-length",
                     "x-ms-blob-sequence-number", "content-md5", "x-ms-content-crc64",
                     "x-ms-if-sequence-number-le", "if-match", "if-none-match", "x-ms-lease-id",
                     "x-ms-blob-content-type", "x-ms-meta-a", "x-ms-copy-source",
                     "x-ms-range-get-content-md5", "x-ms-sequence-number-action", "content-type"]),
    HEADER_VALUES, max_size=6)
BODIES = st.one_of(st.just(b""), st.binary(max_size=1100), st.sampled_from([
    b"<?xml version='1.0'?><BlockList><Latest>AAAA</Latest></BlockList>",
    b"<BlockList><Uncommitted>" + b"QQ==" * 10 + b"</Uncommitted></BlockList>",
    b"<BlockList><Latest>" + b"A" * 5000 + b"</Latest>",
    b"<!DOCTYPE a [<!ENTITY x SYSTEM 'file:///etc/passwd'>]><BlockList><Latest>&x;</Latest></BlockList>",
    bytes(512), bytes(1024)]))


@pytest.fixture(scope="module")
def targets(tmp_path_factory):
    """(server, account SAS query, account name, disk SAS URL)."""
    with ThreadServer(tmp_path_factory.mktemp("blobfuzz")) as server:
        make_account(server.url, "fuzzacct")
        key = list_keys(server.url, "fuzzacct").json()["keys"][0]["value"]
        sas = generate_account_sas("fuzzacct", key, ResourceTypes(service=True, container=True, object=True),
                                   AccountSasPermissions(read=True, write=True, delete=True, list=True,
                                                         add=True, create=True),
                                   expiry=datetime.now(UTC) + timedelta(hours=2))
        make_group(server.url)
        create_upload_disk(compute_client(server.url), "fuzzdisk", 20 * MiB)
        granted = admin_httpx.post(f"{server.url}{resource_id('disks/fuzzdisk')}/beginGetAccess",
                             params={"api-version": DISK_API}, json={"access": "Write", "durationInSeconds": 7200})
        assert granted.status_code == 200, granted.text
        # A container and blobs to aim at, so that requests get past "not found".
        plain = plain_httpx.Client(timeout=30)
        version = {"x-ms-version": "2025-11-05"}
        made = [plain.put(f"{server.url}/fuzzacct/ctr?restype=container&{sas}", headers=version),
                plain.put(f"{server.url}/fuzzacct/ctr/page?{sas}", headers={
                    "x-ms-version": "2025-11-05", "x-ms-blob-type": "PageBlob", "x-ms-blob-content-length": str(MiB)}),
                plain.put(f"{server.url}/fuzzacct/ctr/block?{sas}", content=b"hello",
                          headers={"x-ms-version": "2025-11-05", "x-ms-blob-type": "BlockBlob"})]
        assert [r.status_code for r in made] == [201, 201, 201], [r.text for r in made]
        yield server, sas, granted.json()["accessSAS"], plain
        plain.close()


# What the examples got, printed with -s: a run where every answer is a refusal tests little.
STATUSES: dict[int, int] = {}
CODES: dict[str, int] = {}


def _check(response: plain_httpx.Response, what: str) -> None:
    assert response.status_code < 500, f"{what} -> {response.status_code}: {response.text[:500]}"
    if response.status_code >= 400 and response.content:
        assert b"<Error>" in response.content and b"<Code>" in response.content, (what, response.text[:300])


# Operations the service serves (method, target, comp, more query): most examples start from one,
# so that hostile headers and bodies reach the handlers, not only the front door's refusals.
PAGE_WRITE = {"x-ms-range": "bytes=0-511", "x-ms-page-write": "update"}
SERVED = [("PUT", "page", "page", ""), ("PUT", "disk", "page", ""), ("GET", "page", "pagelist", ""),
          ("GET", "disk", "pagelist", ""), ("GET", "page", "", ""), ("GET", "disk", "", ""),
          ("HEAD", "block", "", ""), ("HEAD", "disk", "", ""), ("PUT", "block", "block", "&blockid=QUFBQQ%3D%3D"),
          ("PUT", "block", "blocklist", ""),
          ("PUT", "missing", "", ""), ("PUT", "missing", "", ""), ("DELETE", "missing", "", ""),
          ("GET", "container", "list", "&restype=container"), ("PUT", "container", "", "&restype=container"),
          ("GET", "account", "list", ""), ("GET", "block", "blocklist", "&blocklisttype=all"),
          ("PUT", "page", "properties", ""), ("PUT", "page", "metadata", "")]
ANY = st.tuples(st.sampled_from(["GET", "HEAD", "PUT", "DELETE", "POST", "PATCH"]),
                st.sampled_from(["account", "container", "page", "block", "missing", "disk"]),
                st.sampled_from(COMPS),
                st.sampled_from(["", "&restype=container", "&blockid=QUFBQQ%3D%3D", "&blockid=%ZZ",
                                 "&blocklisttype=all", "&snapshot=x", "&prefix=%00&maxresults=-1", "&marker=%FF",
                                 "&include=metadata,snapshots,bogus", "&timeout=abc"]))


@settings(max_examples=EXAMPLES, deadline=None, derandomize=os.environ.get("GALLEY_FUZZ_RANDOM") != "1",
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(operation=st.one_of(st.sampled_from(SERVED), st.sampled_from(SERVED), ANY), headers=HEADERS, body=BODIES)
def test_no_blob_request_with_valid_credentials_is_a_server_error(targets, operation, headers, body):
    server, sas, disk_sas, plain = targets
    method, where, comp, extra = operation
    if comp == "page" and method == "PUT":  # a well-formed Put Page of 512 bytes, then the hostile part
        headers = {**PAGE_WRITE, **headers}
        body = body if len(body) % 512 == 0 and body else bytes(512)
    if where == "disk":
        base, _, query = disk_sas.partition("?")
    else:
        base = f"{server.url}/fuzzacct" + {"account": "/", "container": "/ctr", "page": "/ctr/page",
                                           "block": "/ctr/block", "missing": "/ctr/none"}[where]
        query = sas
    url = f"{base}?{query}" + (f"&comp={comp}" if comp else "") + extra
    headers = {"x-ms-version": "2025-11-05", **headers}
    try:
        response = plain.request(method, url, headers=headers, content=body or None)
    except plain_httpx.LocalProtocolError:  # the client's own HTTP library would not send it
        return
    except plain_httpx.RemoteProtocolError:
        # A request head httptools refuses (a header value it will not carry): the server closed
        # the connection before any answer, as Azure's front end would answer 400; not a 5xx.
        return
    _check(response, f"{method} {url} {headers} body={body[:40]!r}")
    STATUSES[response.status_code] = STATUSES.get(response.status_code, 0) + 1
    if response.status_code >= 400:
        code = (re.findall(r"<Code>(.*?)</Code>", response.text) or ["(no body)"])[0]
        CODES[code] = CODES.get(code, 0) + 1


def test_zz_answers_seen():
    print("blob fuzz answers by status:", sorted(STATUSES.items()), "refusals by code:", CODES)
    assert not STATUSES or sum(n for status, n in STATUSES.items() if status < 300) > 0, STATUSES
