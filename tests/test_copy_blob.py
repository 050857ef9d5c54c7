"""Copy Blob: a managed disk exported the Azure way (grant Read, copy its SAS URL into a storage
account's container with azure-storage-blob), the copy imported back as a version and a disk;
same-account copies under Shared Key; block blobs; refusals that change nothing; persistence."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qsl, urlsplit

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.mgmt.compute import models as m
from azure.storage.blob import (
    AccountSasPermissions,
    BlobClient,
    BlobSasPermissions,
    ContentSettings,
    ResourceTypes,
    generate_account_sas,
    generate_blob_sas,
)

from galley.content.vhd import VhdFooter

from . import admin_http as httpx
from .data_helpers import (
    compute_client,
    download,
    gallery_chain,
    physical_bytes,
    version_id,
    wait_version,
)
from .sdk_helpers import GALLERY_API
from .servers import ThreadServer
from .test_az_cli import AZ, admin_az, server  # noqa: F401 - admin_az and server: az's fixtures
from .test_disk_access import (
    _tampered,
    blob,
    download_raw,
    footer,
    grant,
    revoke,
    upload_disk,
)
from .test_storage_accounts_blob import blob_client, key_of, make_account

MIB = 1024 * 1024
SIZE = 24 * MIB  # the disk; its blob is one VHD footer longer
PIECES = [(0, os.urandom(MIB)), (9 * MIB + 4096, os.urandom(2 * MIB)), (SIZE - 512, b"\x07" * 512)]


def disk_bytes() -> bytes:
    data = bytearray(SIZE)
    for offset, piece in PIECES:
        data[offset:offset + len(piece)] = piece
    return bytes(data)


@pytest.fixture(scope="module")
def galley(tmp_path_factory):
    with ThreadServer(tmp_path_factory.mktemp("copy-blob")) as running:
        yield running


@pytest.fixture(scope="module")
def compute(galley):
    gallery_chain(compute_client(galley.url), galley.url)  # group 'rg', gallery 'gal', definition 'def'
    return compute_client(galley.url)


@pytest.fixture(scope="module")
def exports(galley, compute):
    """Storage account 'exports' (eastus) with container 'vhds', and its Shared Key client."""
    account = make_account(galley.url, "exports", location="eastus")
    service = blob_client(galley.url, "exports", key_of(galley.url, "exports"))
    service.create_container("vhds")
    return account, service


@pytest.fixture(scope="module")
def disk_with_data(compute):
    """Disk 'exported' holding disk_bytes(), uploaded through a Write SAS."""
    upload_disk(compute, "exported", size=SIZE)
    writer = blob(grant(compute, "exported"))
    writer.upload_blob(disk_bytes() + footer(SIZE), blob_type="PageBlob", overwrite=True, max_concurrency=4)
    revoke(compute, "exported")
    return "exported"


def code_of(call) -> tuple[int, str]:
    with pytest.raises(HttpResponseError) as caught:
        call()
    return caught.value.status_code, caught.value.response.headers.get("x-ms-error-code")


def assert_absent(client: BlobClient) -> None:
    with pytest.raises(ResourceNotFoundError):
        client.get_blob_properties()


def test_a_disk_exported_through_its_read_sas_copies_byte_identical_and_imports_back(
        galley, compute, exports, disk_with_data, tmp_path):
    account, service = exports
    read_sas = grant(compute, disk_with_data, "Read")
    target = service.get_blob_client("vhds", "os.vhd")
    stored_before = physical_bytes(galley.url, "eastus")
    started = target.start_copy_from_url(read_sas)
    assert started["copy_status"] == "success" and started["copy_id"]
    # The copy shares the disk's chunks in the store (3 MiB of random data are not stored again).
    assert physical_bytes(galley.url, "eastus") - stored_before < MIB

    props = target.get_blob_properties()
    assert props.blob_type == "PageBlob" and props.size == SIZE + 512
    assert props.copy.status == "success" and props.copy.id == started["copy_id"]
    assert props.copy.progress == f"{SIZE + 512}/{SIZE + 512}" and props.copy.completion_time is not None
    recorded = dict(parse_qsl(urlsplit(props.copy.source).query))
    assert props.copy.source.startswith(read_sas.split("?")[0]) and "sig" not in recorded and recorded["sp"] == "r"
    listed = list(service.get_container_client("vhds").list_blobs())
    assert [(b.name, b.copy.status, b.copy.id) for b in listed] == [("os.vhd", "success", started["copy_id"])]

    copied = target.download_blob(max_concurrency=4).readall()
    original = blob(read_sas).download_blob(max_concurrency=4).readall()
    assert copied[:SIZE] == original[:SIZE] == disk_bytes()
    # The footers differ only in their time stamp (a Read SAS's footer is made when it is read).
    assert VhdFooter.parse(copied[SIZE:]).current_size == VhdFooter.parse(original[SIZE:]).current_size == SIZE
    # Only the written pages were copied (and the footer): the copy is as sparse as the disk.
    written = sum(r.end - r.start + 1 for r in target.list_page_ranges())
    assert written == sum(len(piece) for _, piece in PIECES) + 512
    revoke(compute, disk_with_data)

    # The copy is a source at once: a gallery version and a disk (Import) from its URI.
    uri = f"{galley.url}/exports/vhds/os.vhd"
    created = httpx.put(f"{galley.url}{version_id('1.0.0')}?api-version={GALLERY_API}", json={
        "location": "eastus", "properties": {"storageProfile": {"osDiskImage": {"source": {
            "uri": uri, "storageAccountId": account["id"]}}}}})
    assert created.status_code in (200, 201), created.text
    assert wait_version(galley.url, "1.0.0")["properties"]["provisioningState"] == "Succeeded"
    assert download(galley.url, version_id("1.0.0"), tmp_path / "v.raw", api=GALLERY_API,
                    region="eastus").status_code == 200
    assert (tmp_path / "v.raw").read_bytes() == disk_bytes()
    compute.disks.begin_create_or_update("rg", "imported", m.Disk(location="eastus", creation_data=m.CreationData(
        create_option="Import", source_uri=uri, storage_account_id=account["id"]), disk_size_gb=1)).result()
    imported = download_raw(galley.url, "disks", "imported")
    assert imported[:SIZE] == disk_bytes() and not imported[SIZE:].strip(b"\0")


def test_same_account_copies_under_shared_key_for_page_and_block_blobs(galley, exports):
    _, service = exports
    container = service.get_container_client("vhds")
    notes = os.urandom(5 * MIB + 17)
    container.upload_blob("notes.bin", notes, content_settings=ContentSettings(content_type="text/plain"))
    pages = bytearray(4 * MIB)
    pages[MIB:MIB + 8192] = os.urandom(8192)
    container.upload_blob("pages.img", bytes(pages), blob_type="PageBlob")

    for source, name, kind in (("notes.bin", "notes-copy.bin", "BlockBlob"), ("pages.img", "pages-copy.img", "PageBlob")):
        target = container.get_blob_client(name)
        started = target.start_copy_from_url(f"{galley.url}/exports/vhds/{source}")  # no SAS: Shared Key's account
        assert started["copy_status"] == "success"
        props = target.get_blob_properties()
        assert (props.blob_type, props.copy.status, props.copy.source) == (
            kind, "success", f"{galley.url}/exports/vhds/{source}")
    assert container.download_blob("notes-copy.bin").readall() == notes
    assert container.get_blob_client("notes-copy.bin").get_blob_properties().content_settings.content_type == "text/plain"
    assert container.download_blob("pages-copy.img").readall() == bytes(pages)

    # Copy Blob From URL (x-ms-requires-sync) answers the same way.
    synced = container.get_blob_client("notes-sync.bin")
    assert synced.start_copy_from_url(f"{galley.url}/exports/vhds/notes.bin", requires_sync=True)["copy_status"] == "success"
    assert synced.download_blob().readall() == notes

    # A blob SAS of the destination alone does not read a same-account source; an account SAS that reads does.
    key = key_of(galley.url, "exports")
    only_dest = generate_blob_sas("exports", "vhds", "by-sas.bin", account_key=key,
                                  permission=BlobSasPermissions(write=True, create=True),
                                  expiry=datetime.now(UTC) + timedelta(hours=1))
    by_blob_sas = BlobClient.from_blob_url(f"{galley.url}/exports/vhds/by-sas.bin?{only_dest}")
    assert code_of(lambda: by_blob_sas.start_copy_from_url(f"{galley.url}/exports/vhds/notes.bin")) == (
        403, "CannotVerifyCopySource")
    assert_absent(container.get_blob_client("by-sas.bin"))
    account_sas = generate_account_sas("exports", key, ResourceTypes(object=True),
                                       AccountSasPermissions(read=True, write=True),
                                       expiry=datetime.now(UTC) + timedelta(hours=1))
    by_account_sas = BlobClient.from_blob_url(f"{galley.url}/exports/vhds/by-sas.bin?{account_sas}")
    assert by_account_sas.start_copy_from_url(f"{galley.url}/exports/vhds/notes.bin")["copy_status"] == "success"
    assert container.download_blob("by-sas.bin").readall() == notes

    # Put Blob From URL: a page blob's bytes become a block blob (no copy record).
    from_url = container.get_blob_client("pages-as-block.img")
    from_url.upload_blob_from_url(f"{galley.url}/exports/vhds/pages.img")
    props = from_url.get_blob_properties()
    assert props.blob_type == "BlockBlob" and props.copy.id is None
    assert from_url.download_blob().readall() == bytes(pages)

    # Abort Copy Blob: nothing is ever pending.
    copy_id = synced.get_blob_properties().copy.id
    assert code_of(lambda: synced.abort_copy(copy_id)) == (409, "NoPendingCopyOperation")


def test_refused_copies_create_nothing(galley, compute, exports, disk_with_data):
    _, service = exports
    container = service.get_container_client("vhds")
    container.upload_blob("source.bin", b"source bytes", overwrite=True)
    target = container.get_blob_client("refused.vhd")
    key = key_of(galley.url, "exports")
    expired = generate_blob_sas("exports", "vhds", "source.bin", account_key=key,
                                permission=BlobSasPermissions(read=True), expiry=datetime.now(UTC) - timedelta(hours=1))
    write_only = generate_blob_sas("exports", "vhds", "source.bin", account_key=key,
                                   permission=BlobSasPermissions(write=True), expiry=datetime.now(UTC) + timedelta(hours=1))
    read_sas = grant(compute, disk_with_data, "Read")
    here = galley.url.split("//", 1)[1]
    cases = [
        ("http://storage.example.com/exports/vhds/source.bin", 400),  # another host
        ("http://127.0.0.1:1/exports/vhds/source.bin", 400),  # this host, another port
        (f"{galley.url}/exports/vhds/missing.bin", 404),
        (f"{galley.url}/nosuchacct/vhds/source.bin", 404),
        (f"{galley.url}/exports/vhds/source.bin?{expired}", 403),
        (f"{galley.url}/exports/vhds/source.bin?{write_only}", 403),
        (_tampered(read_sas, sig="A" * 43 + "="), 403),  # a wrong signature
        (read_sas.replace(here, f"localhost.invalid:{galley.port}"), 400),
    ]
    for source, status in cases:
        assert code_of(lambda url=source: target.start_copy_from_url(url)) == (status, "CannotVerifyCopySource"), source
    revoke(compute, disk_with_data)
    assert code_of(lambda: target.start_copy_from_url(read_sas)) == (403, "CannotVerifyCopySource")  # revoked
    assert_absent(target)
    assert code_of(lambda: target.abort_copy("0" * 36)) == (404, "BlobNotFound")

    # A disk's Write SAS is no copy destination; its pages stay as they were.
    upload_disk(compute, "upload-target", size=20 * MIB)
    write_sas = grant(compute, "upload-target")
    disk_blob = blob(write_sas)
    assert code_of(lambda: disk_blob.start_copy_from_url(f"{galley.url}/exports/vhds/source.bin")) == (
        400, "UnsupportedOperation")
    assert list(disk_blob.list_page_ranges()) == []
    revoke(compute, "upload-target")
    assert list(container.list_blobs(name_starts_with="refused")) == []


def test_the_copy_record_survives_a_restart(tmp_path):
    with ThreadServer(tmp_path) as first:
        make_account(first.url, "keepcopy")
        container = blob_client(first.url, "keepcopy", key_of(first.url, "keepcopy")).create_container("kept")
        container.upload_blob("a.bin", b"kept" * 1000)
        copy_id = container.get_blob_client("b.bin").start_copy_from_url(f"{first.url}/keepcopy/kept/a.bin")["copy_id"]
    with ThreadServer(tmp_path) as second:
        container = blob_client(second.url, "keepcopy", key_of(second.url, "keepcopy")).get_container_client("kept")
        props = container.get_blob_client("b.bin").get_blob_properties()
        assert (props.copy.id, props.copy.status, props.copy.source) == (copy_id, "success", f"{first.url}/keepcopy/kept/a.bin")
        assert container.download_blob("b.bin").readall() == b"kept" * 1000


@pytest.mark.slow
@pytest.mark.skipif(not os.access(AZ, os.X_OK), reason=f"the Azure CLI is not installed at {AZ}")
def test_az_exports_a_disk_with_storage_blob_copy_start(server, admin_az, tmp_path):  # noqa: F811
    az = admin_az
    az.run("group", "create", "-n", "azCopyRG", "-l", "eastus", "-o", "none")
    az.run("disk", "create", "-g", "azCopyRG", "-n", "exportMe", "--upload-type", "Upload",
           "--upload-size-bytes", str(SIZE + 512), "-o", "none")
    write_sas = az.json("disk", "grant-access", "-g", "azCopyRG", "-n", "exportMe", "--access-level", "Write",
                        "--duration-in-seconds", "3600")["accessSAS"]
    data = os.urandom(4 * MIB)
    writer = BlobClient.from_blob_url(write_sas, connection_verify=str(server.ca))
    writer.upload_page(data, offset=MIB, length=len(data))
    writer.upload_page(footer(SIZE), offset=SIZE, length=512)
    az.run("disk", "revoke-access", "-g", "azCopyRG", "-n", "exportMe")
    az.run("storage", "account", "create", "-n", "azcopies", "-g", "azCopyRG", "-l", "eastus", "-o", "none")
    key = az.json("storage", "account", "keys", "list", "-n", "azcopies", "-g", "azCopyRG")[0]["value"]
    endpoint = ["--account-name", "azcopies", "--account-key", key, "--blob-endpoint", f"{server.url}/azcopies"]
    az.run("storage", "container", "create", "-n", "vhds", *endpoint, "-o", "none")

    read_sas = az.json("disk", "grant-access", "-g", "azCopyRG", "-n", "exportMe", "--access-level", "Read",
                       "--duration-in-seconds", "3600")["accessSAS"]
    started = az.json("storage", "blob", "copy", "start", "--source-uri", read_sas, "--destination-container", "vhds",
                      "--destination-blob", "os.vhd", *endpoint)
    assert started["copy_status"] == "success", started
    shown = az.json("storage", "blob", "show", "-c", "vhds", "-n", "os.vhd", *endpoint)
    assert shown["properties"]["copy"]["status"] == "success" and shown["properties"]["copy"]["id"] == started["copy_id"]
    assert shown["properties"]["contentLength"] == SIZE + 512 and shown["properties"]["blobType"] == "PageBlob"
    az.run("disk", "revoke-access", "-g", "azCopyRG", "-n", "exportMe")
    az.run("storage", "blob", "download", "-c", "vhds", "-n", "os.vhd", "-f", str(tmp_path / "os.vhd"), *endpoint,
           "-o", "none")
    copied = (tmp_path / "os.vhd").read_bytes()
    assert copied[MIB:5 * MIB] == data and not copied[:MIB].strip(b"\0") and not copied[5 * MIB:SIZE].strip(b"\0")
