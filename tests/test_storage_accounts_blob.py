"""Storage accounts' keys and their Blob service, as azure-storage-blob and az use them.

Accounts are served path-style on Galley's own address, https://HOST:PORT/{account}/{container}/{blob},
signed with the account's keys (Shared Key, account SAS, service SAS).
"""

from __future__ import annotations

import os
import re
import time
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceNotFoundError,
)
from azure.storage.blob import (
    AccountSasPermissions,
    BlobClient,
    BlobSasPermissions,
    BlobServiceClient,
    BlobType,
    ContentSettings,
    ResourceTypes,
    generate_account_sas,
    generate_blob_sas,
)

from galley.blobservice.account_blobs import Publisher
from galley.content.vhd import DISK_FIXED, VhdFooter
from galley.domain.storage_account import RESERVED_NAMES

from . import admin_http as httpx
from .data_helpers import (
    compute_client,
    download,
    gallery_chain,
    version_id,
    wait_version,
)
from .sdk_helpers import GALLERY_API
from .servers import SUBSCRIPTION, ProcessServer, ThreadServer
from .test_access import READER, assign, principal, sign_in

RG = "blobs"
STORAGE_API = "api-version=2023-05-01"
MIB = 1024 * 1024


def account_url(url: str, name: str) -> str:
    return (f"{url}/subscriptions/{SUBSCRIPTION}/resourceGroups/{RG}/providers/Microsoft.Storage/"
            f"storageAccounts/{name}")


def make_account(url: str, name: str, location: str = "westus2") -> dict:
    httpx.put(f"{url}/subscriptions/{SUBSCRIPTION}/resourcegroups/{RG}?api-version=2022-09-01",
              json={"location": "westus2"}).raise_for_status()
    response = httpx.put(f"{account_url(url, name)}?{STORAGE_API}",
                         json={"location": location, "sku": {"name": "Standard_LRS"}, "kind": "StorageV2"})
    assert response.status_code in (200, 201, 202), response.text
    return httpx.get(f"{account_url(url, name)}?{STORAGE_API}").json()


def list_keys(url: str, name: str, **kwargs) -> httpx.Response:
    return httpx.post(f"{account_url(url, name)}/listKeys?{STORAGE_API}&$expand=kerb", **kwargs)


@pytest.fixture(scope="module")
def galley(tmp_path_factory):
    with ThreadServer(tmp_path_factory.mktemp("blobs")) as running:
        yield running


def test_keys_are_listed_regenerated_and_kept_out_of_the_resource(galley):
    account = make_account(galley.url, "keysacct")
    assert account["properties"]["primaryEndpoints"]["blob"] == f"{galley.url}/keysacct/"
    keys = list_keys(galley.url, "keysacct")
    assert keys.status_code == 200, keys.text
    listed = keys.json()["keys"]
    assert [(k["keyName"], k["permissions"]) for k in listed] == [("key1", "FULL"), ("key2", "FULL")]
    assert all(len(__import__("base64").b64decode(k["value"])) == 64 for k in listed)
    assert list_keys(galley.url, "keysacct").json()["keys"] == listed  # stable
    assert listed[0]["value"] not in httpx.get(f"{account_url(galley.url, 'keysacct')}?{STORAGE_API}").text

    renewed = httpx.post(f"{account_url(galley.url, 'keysacct')}/regenerateKey?{STORAGE_API}",
                         json={"keyName": "key1"})
    assert renewed.status_code == 200, renewed.text
    after = renewed.json()["keys"]
    assert after[0]["value"] != listed[0]["value"] and after[1] == listed[1]
    assert list_keys(galley.url, "keysacct").json()["keys"] == after

    bad = httpx.post(f"{account_url(galley.url, 'keysacct')}/regenerateKey?{STORAGE_API}", json={"keyName": "key3"})
    assert bad.status_code == 400 and bad.json()["error"]["target"] == "keyName"
    assert list_keys(galley.url, "keysacct").json()["keys"] == after


def test_a_reader_cannot_list_keys(galley):
    make_account(galley.url, "readeracct")
    reader = principal(galley.url)
    assign(galley.url, f"/subscriptions/{SUBSCRIPTION}", READER, reader["id"])
    token = sign_in(galley.url, reader)
    as_reader = {"headers": {"Authorization": f"Bearer {token}"}}
    assert httpx.get(f"{account_url(galley.url, 'readeracct')}?{STORAGE_API}", **as_reader).status_code == 200
    refused = list_keys(galley.url, "readeracct", **as_reader)
    assert refused.status_code == 403 and "listkeys/action" in refused.json()["error"]["message"]
    refused = httpx.post(f"{account_url(galley.url, 'readeracct')}/regenerateKey?{STORAGE_API}",
                         json={"keyName": "key1"}, **as_reader)
    assert refused.status_code == 403


def test_reserved_account_names_are_refused(galley):
    httpx.put(f"{galley.url}/subscriptions/{SUBSCRIPTION}/resourcegroups/{RG}?api-version=2022-09-01",
              json={"location": "westus2"}).raise_for_status()
    response = httpx.put(f"{account_url(galley.url, 'providers')}?{STORAGE_API}", json={"location": "westus2"})
    assert response.status_code == 400, response.text
    assert "reserved" in response.json()["error"]["message"] and "'/providers'" in response.json()["error"]["message"]


# ---- the Blob service, through azure-storage-blob ------------------------------------------------

def key_of(url: str, name: str, which: int = 0) -> str:
    return list_keys(url, name).json()["keys"][which]["value"]


def blob_client(url: str, name: str, credential) -> BlobServiceClient:
    return BlobServiceClient(account_url=f"{url}/{name}", credential=credential, max_single_put_size=4 * MIB,
                             max_block_size=4 * MIB, max_page_size=4 * MIB)


@pytest.fixture(scope="module")
def storage(galley):
    make_account(galley.url, "blobacct")
    service = blob_client(galley.url, "blobacct", key_of(galley.url, "blobacct"))
    service.create_container("vhds")
    return service


def test_block_blobs_round_trip_through_azure_storage_blob(storage):
    container = storage.get_container_client("vhds")
    small, big = os.urandom(1000), os.urandom(9 * MIB + 123)  # big: Put Block ×3 + Put Block List
    container.upload_blob("dir/small.bin", small, content_settings=ContentSettings(content_type="text/plain"))
    container.upload_blob("dir/big.bin", big, max_concurrency=4)
    assert container.download_blob("dir/small.bin").readall() == small
    assert container.download_blob("dir/big.bin", max_concurrency=4).readall() == big
    props = container.get_blob_client("dir/small.bin").get_blob_properties()
    assert props.size == 1000 and props.blob_type == BlobType.BLOCKBLOB
    assert props.content_settings.content_type == "text/plain"
    assert container.download_blob("dir/big.bin", offset=MIB, length=10).readall() == big[MIB:MIB + 10]
    assert [b.name for b in container.list_blobs(name_starts_with="dir/")] == ["dir/big.bin", "dir/small.bin"]
    assert [b.name for b in container.walk_blobs()] == ["dir/"]
    container.upload_blob("dir/small.bin", b"replaced", overwrite=True)
    assert container.download_blob("dir/small.bin").readall() == b"replaced"
    container.delete_blob("dir/small.bin")
    with pytest.raises(ResourceNotFoundError):
        container.download_blob("dir/small.bin").readall()
    assert [b.name for b in container.list_blobs()] == ["dir/big.bin"]


def test_page_blobs_round_trip_and_list_their_pages(storage):
    container = storage.get_container_client("vhds")
    data = bytearray(6 * MIB)
    data[:4096] = os.urandom(4096)
    data[5 * MIB:5 * MIB + 512] = os.urandom(512)
    container.upload_blob("disk.raw", bytes(data), blob_type=BlobType.PAGEBLOB, max_concurrency=8)
    blob = container.get_blob_client("disk.raw")
    assert blob.download_blob(max_concurrency=8).readall() == bytes(data)
    assert blob.get_blob_properties().blob_type == BlobType.PAGEBLOB
    ranges = [{"start": r.start, "end": r.end} for r in blob.list_page_ranges()]
    assert ranges == [{"start": 0, "end": 4095}, {"start": 5 * MIB, "end": 5 * MIB + 511}]
    blob.upload_page(b"\x07" * 512, offset=MIB, length=512)
    assert blob.download_blob(offset=MIB, length=512).readall() == b"\x07" * 512


def test_containers_are_created_once_and_listed(storage):
    storage.create_container("second")
    with pytest.raises(ResourceExistsError):
        storage.create_container("second")
    assert {"vhds", "second"} <= {c.name for c in storage.list_containers()}
    with pytest.raises(ResourceNotFoundError):
        storage.get_container_client("missing").upload_blob("x", b"1")
    with pytest.raises(HttpResponseError) as refused:
        storage.create_container("Bad_Name")
    assert refused.value.status_code == 400


def test_numbers_that_are_not_plain_digits_are_storage_errors(galley, storage):
    """maxresults and x-ms-blob-content-length of thousands of digits, or of digits str.isdigit()
    takes but int() does not ('²'): Storage's 4xx, never a 500, and no blob is made."""
    key = key_of(galley.url, "blobacct")
    sas = generate_account_sas("blobacct", key, ResourceTypes(service=True, container=True, object=True),
                               AccountSasPermissions(read=True, write=True, list=True, create=True),
                               datetime.now(UTC) + timedelta(hours=1))
    container = f"{galley.url}/blobacct/vhds"
    for odd in ("9" * 5000, "\u00b2", "\u0661"):
        listed = httpx.get(f"{container}?restype=container&comp=list&maxresults={quote(odd)}&{sas}",
                           headers={"Authorization": ""})
        if odd.isascii():  # a whole number, only too long for int(): as many as one page holds
            assert listed.status_code == 200 and "<MaxResults>5000</MaxResults>" in listed.text, listed.text
        else:
            assert listed.status_code == 400, listed.text
            assert listed.headers["x-ms-error-code"] == "OutOfRangeQueryParameterValue"
        made = httpx.put(f"{container}/odd.vhd?{sas}", headers={
            "Authorization": "", "x-ms-blob-type": "PageBlob", "x-ms-version": "2025-11-05",
            "x-ms-blob-content-length": odd.encode("latin-1", "replace")})
        assert made.status_code == 400 and made.headers["x-ms-error-code"] == "InvalidHeaderValue", made.text
    assert "odd.vhd" not in [b.name for b in storage.get_container_client("vhds").list_blobs()]


def test_account_sas_allows_what_it_says_and_nothing_more(galley, storage):
    key = key_of(galley.url, "blobacct")
    expiry = datetime.now(UTC) + timedelta(hours=1)
    everything = generate_account_sas("blobacct", key, ResourceTypes(container=True, object=True),
                                      AccountSasPermissions(read=True, write=True, list=True, create=True), expiry)
    with_sas = blob_client(galley.url, "blobacct", everything).get_container_client("vhds")
    with_sas.upload_blob("sas.bin", b"written with a SAS")
    assert with_sas.download_blob("sas.bin").readall() == b"written with a SAS"
    assert "sas.bin" in [b.name for b in with_sas.list_blobs()]

    read_only = generate_account_sas("blobacct", key, ResourceTypes(object=True), AccountSasPermissions(read=True),
                                     expiry)
    reader = blob_client(galley.url, "blobacct", read_only).get_container_client("vhds")
    assert reader.download_blob("sas.bin").readall() == b"written with a SAS"
    refusals = [(lambda: reader.upload_blob("sas.bin", b"changed", overwrite=True), "AuthorizationPermissionMismatch"),
                (lambda: reader.delete_blob("sas.bin"), "AuthorizationPermissionMismatch"),
                (lambda: list(reader.list_blobs()), "AuthorizationResourceTypeMismatch")]
    expired = generate_account_sas("blobacct", key, ResourceTypes(object=True), AccountSasPermissions(read=True, write=True),
                                   datetime.now(UTC) - timedelta(minutes=1))
    stale = blob_client(galley.url, "blobacct", expired).get_container_client("vhds")
    refusals.append((lambda: stale.upload_blob("sas.bin", b"changed", overwrite=True), "AuthenticationFailed"))
    forged = blob_client(galley.url, "blobacct", read_only.replace("sp=r", "sp=rw")).get_container_client("vhds")
    refusals.append((lambda: forged.upload_blob("sas.bin", b"changed", overwrite=True), "AuthenticationFailed"))
    for attempt, code in refusals:
        with pytest.raises(HttpResponseError) as refused:
            attempt()
        assert refused.value.status_code == 403 and refused.value.error_code == code, refused.value
    assert storage.get_container_client("vhds").download_blob("sas.bin").readall() == b"written with a SAS"


def test_a_wrong_or_regenerated_key_is_refused_and_changes_nothing(galley):
    make_account(galley.url, "rotateacct")
    old = key_of(galley.url, "rotateacct")
    service = blob_client(galley.url, "rotateacct", old)
    service.create_container("keep")
    service.get_container_client("keep").upload_blob("kept", b"original")
    make_account(galley.url, "otheracct")  # another account's key is a wrong key here
    wrong = blob_client(galley.url, "rotateacct", key_of(galley.url, "otheracct")).get_container_client("keep")
    with pytest.raises(HttpResponseError) as refused:
        wrong.upload_blob("kept", b"overwritten", overwrite=True)
    assert refused.value.status_code == 403 and refused.value.error_code == "AuthenticationFailed"
    raw = httpx.get(f"{galley.url}/rotateacct/keep/kept", headers={"Authorization": "SharedKey rotateacct:AAAA",
                                                                "x-ms-version": "2025-11-05"})
    assert raw.status_code == 403 and raw.headers["content-type"].startswith("application/xml")
    assert "<Code>AuthenticationFailed</Code>" in raw.text and raw.headers["x-ms-error-code"] == "AuthenticationFailed"
    anonymous = httpx.get(f"{galley.url}/rotateacct/keep/kept", headers={"Authorization": ""})
    assert anonymous.status_code in (401, 403)

    httpx.post(f"{account_url(galley.url, 'rotateacct')}/regenerateKey?{STORAGE_API}",
               json={"keyName": "key1"}).raise_for_status()
    with pytest.raises(HttpResponseError) as refused:
        service.get_container_client("keep").upload_blob("kept", b"overwritten", overwrite=True)
    assert refused.value.error_code == "AuthenticationFailed"
    second = blob_client(galley.url, "rotateacct", key_of(galley.url, "rotateacct", 1))
    assert second.get_container_client("keep").download_blob("kept").readall() == b"original"
    renewed = blob_client(galley.url, "rotateacct", key_of(galley.url, "rotateacct", 0))
    assert renewed.get_container_client("keep").download_blob("kept").readall() == b"original"


def fixed_vhd(disk: bytes) -> bytes:
    return disk + VhdFooter.new(DISK_FIXED, len(disk)).pack()


def wait_published(url: str, account: str, container: str, blob: str, timeout: float = 30.0) -> None:
    """A page blob becomes a source once its writes have settled (account_blobs.SETTLE_SECONDS)."""
    deadline = time.time() + timeout
    while httpx.head(f"{url}/blob/{account}/{container}/{blob}").status_code != 200:
        assert time.time() < deadline, f"{blob} was never published"
        time.sleep(0.2)


@pytest.fixture(scope="module")
def vhd_source(galley):
    """Gallery 'gal' with definition 'def' (eastus), and storage account 'vhdsource' with container 'images'."""
    gallery_chain(compute_client(galley.url), galley.url)
    account = make_account(galley.url, "vhdsource", location="eastus")
    service = blob_client(galley.url, "vhdsource", key_of(galley.url, "vhdsource"))
    service.create_container("images")
    return account, service


@pytest.mark.parametrize("blob_type", [BlobType.PAGEBLOB, BlobType.BLOCKBLOB])
def test_a_version_is_made_from_a_vhd_blob_named_by_its_path_style_url(galley, vhd_source, blob_type, tmp_path):
    account, service = vhd_source
    disk = bytearray(8 * MIB)
    disk[:MIB] = os.urandom(MIB)
    disk[6 * MIB:6 * MIB + 4096] = os.urandom(4096)
    name = f"os-{blob_type.value.lower()}.vhd"
    service.get_container_client("images").upload_blob(name, fixed_vhd(bytes(disk)), blob_type=blob_type,
                                                       max_concurrency=4)
    wait_published(galley.url, "vhdsource", "images", name)
    version = f"1.0.{0 if blob_type == BlobType.PAGEBLOB else 1}"
    created = httpx.put(f"{galley.url}{version_id(version)}?api-version={GALLERY_API}", json={
        "location": "eastus", "properties": {"storageProfile": {"osDiskImage": {"source": {
            "uri": f"{galley.url}/vhdsource/images/{name}", "storageAccountId": account["id"]}}}}})
    assert created.status_code in (200, 201), created.text
    assert wait_version(galley.url, version)["properties"]["provisioningState"] == "Succeeded"
    assert download(galley.url, version_id(version), tmp_path / "v.raw", api=GALLERY_API,
                    region="eastus").status_code == 200
    assert (tmp_path / "v.raw").read_bytes() == bytes(disk)


def test_a_page_blob_being_written_is_not_a_source(galley, monkeypatch):
    held = []  # publications the settling time would start, held back until released
    schedule = Publisher.schedule
    monkeypatch.setattr(Publisher, "schedule", lambda publisher, blob: held.append((publisher, blob)))

    def release() -> None:
        assert held, "a Put Page scheduled no publication"
        while held:
            schedule(*held.pop())
        wait_published(galley.url, "busysource", "images", "os.vhd")

    make_account(galley.url, "busysource", location="eastus")
    service = blob_client(galley.url, "busysource", key_of(galley.url, "busysource"))
    service.create_container("images")
    blob = service.get_container_client("images").get_blob_client("os.vhd")
    blob.create_page_blob(4 * MIB + 512)
    blob.upload_page(os.urandom(512), offset=0, length=512)
    gone = httpx.head(f"{galley.url}/blob/busysource/images/os.vhd")
    assert gone.status_code == 404  # not yet published: a source would be refused BlobNotFound
    release()
    blob.upload_page(os.urandom(512), offset=512, length=512)
    assert httpx.head(f"{galley.url}/blob/busysource/images/os.vhd").status_code == 404  # withdrawn at once
    release()


def test_name_availability_names_taken_invalid_and_reserved_names(galley):
    make_account(galley.url, "takenacct")

    def check(name: str) -> dict:
        response = httpx.post(f"{galley.url}/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Storage/"
                              f"checkNameAvailability?{STORAGE_API}",
                              json={"name": name, "type": "Microsoft.Storage/storageAccounts"})
        assert response.status_code == 200, response.text
        return response.json()

    assert check("freeacct") == {"nameAvailable": True}
    assert check("takenacct")["reason"] == "AlreadyExists"
    assert check("Bad-Name")["reason"] == "AccountNameInvalid"
    assert check("subscriptions")["reason"] == "AccountNameInvalid"


def test_no_galley_route_starts_with_a_name_an_account_could_take(galley):
    for path in galley.app.openapi()["paths"]:
        first = path.lstrip("/").split("/")[0].lower()
        if re.fullmatch(r"[a-z0-9]{3,24}", first):
            assert first in RESERVED_NAMES, f"{path}: '{first}' could be a storage account's name"


def test_a_deleted_account_takes_its_blobs_along(galley):
    make_account(galley.url, "doomedacct")
    service = blob_client(galley.url, "doomedacct", key_of(galley.url, "doomedacct"))
    service.create_container("data")
    service.get_container_client("data").upload_blob("page.raw", bytes(MIB), blob_type=BlobType.PAGEBLOB)
    service.get_container_client("data").upload_blob("block.bin", b"block")
    old_key = key_of(galley.url, "doomedacct")
    deleted = httpx.delete(f"{account_url(galley.url, 'doomedacct')}?{STORAGE_API}")
    assert deleted.status_code in (200, 202, 204), deleted.text
    deadline = time.time() + 30
    while httpx.get(f"{account_url(galley.url, 'doomedacct')}?{STORAGE_API}").status_code != 404:
        assert time.time() < deadline
        time.sleep(0.1)
    assert not list((galley.home / "account-blobs").glob("*/data"))

    make_account(galley.url, "doomedacct")
    assert key_of(galley.url, "doomedacct") != old_key
    again = blob_client(galley.url, "doomedacct", key_of(galley.url, "doomedacct"))
    assert list(again.list_containers()) == []
    with pytest.raises(HttpResponseError) as refused:
        list(blob_client(galley.url, "doomedacct", old_key).list_containers())
    assert refused.value.error_code == "AuthenticationFailed"


def test_a_block_blob_that_is_not_a_vhd_is_data_not_a_source(galley, vhd_source):
    account, service = vhd_source
    blob = service.get_container_client("images").get_blob_client("notes.txt")
    blob.upload_blob(b"x" * 4096)
    with pytest.raises(HttpResponseError) as refused:
        blob.upload_page(b"\0" * 512, offset=0, length=512)
    assert refused.value.status_code == 409 and refused.value.error_code == "InvalidBlobType"
    created = httpx.put(f"{galley.url}{version_id('2.0.0')}?api-version={GALLERY_API}", json={
        "location": "eastus", "properties": {"storageProfile": {"osDiskImage": {"source": {
            "uri": f"{galley.url}/vhdsource/images/notes.txt", "storageAccountId": account["id"]}}}}})
    assert created.status_code == 404 and created.json()["error"]["code"] == "BlobNotFound", created.text


def test_a_blob_service_sas_signed_with_the_account_key(galley, storage):
    storage.get_container_client("vhds").upload_blob("shared.bin", b"shared bytes", overwrite=True)
    key = key_of(galley.url, "blobacct", 1)  # either key signs
    expiry = datetime.now(UTC) + timedelta(hours=1)
    token = generate_blob_sas("blobacct", "vhds", "shared.bin", account_key=key,
                              permission=BlobSasPermissions(read=True), expiry=expiry)
    reader = BlobClient.from_blob_url(f"{galley.url}/blobacct/vhds/shared.bin?{token}")
    assert reader.download_blob().readall() == b"shared bytes"
    with pytest.raises(HttpResponseError) as refused:
        reader.upload_blob(b"changed", overwrite=True)
    assert refused.value.status_code == 403 and refused.value.error_code == "AuthorizationPermissionMismatch"
    other = BlobClient.from_blob_url(f"{galley.url}/blobacct/vhds/sas.bin?{token}")  # signed for another blob
    with pytest.raises(HttpResponseError) as refused:
        other.download_blob().readall()
    assert refused.value.error_code == "AuthenticationFailed"
    assert storage.get_container_client("vhds").download_blob("shared.bin").readall() == b"shared bytes"


@pytest.mark.slow
def test_a_page_blob_upload_survives_kill_9_and_continues(tmp_path):
    server = ProcessServer(tmp_path).start()
    try:
        make_account(server.url, "crashacct")
        key = key_of(server.url, "crashacct")
        blob = blob_client(server.url, "crashacct", key).get_blob_client("disks", "os.raw")
        blob_client(server.url, "crashacct", key).create_container("disks")
        first, second = os.urandom(MIB), os.urandom(MIB)
        blob.create_page_blob(2 * MIB)
        blob.upload_page(first, offset=0, length=MIB)
        server.kill()
        server.start()
        assert [(r.start, r.end) for r in blob.list_page_ranges()] == [(0, MIB - 1)]
        blob.upload_page(second, offset=MIB, length=MIB)
        assert blob.download_blob().readall() == first + second
        wait_published(server.url, "crashacct", "disks", "os.raw")
        assert httpx.get(f"{server.url}/blob/crashacct/disks/os.raw").content[:2 * MIB] == first + second
    finally:
        server.stop()
