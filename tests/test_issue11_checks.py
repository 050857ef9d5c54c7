"""What a checker of issue 11 found real clients doing that broke.

- Conditional headers on a storage account's blobs: azure-storage-blob's `upload_blob` defaults to
  overwrite=False (it sends `If-None-Match: *`), `az storage blob upload` without --overwrite too;
  Azure refuses with 409 BlobAlreadyExists and the blob is kept. If-Match and the date conditions
  guard writes and reads.
- A block upload to a disk's Write SAS (`az storage blob upload --blob-url SAS` of a file not named
  .vhd, without --type page) was 400 "does not support PutBlob here"; it is Storage's 409
  InvalidBlobType saying the disk's blob is a page blob and how to write it.
- PUT {disk}/upload of a fully allocated qcow2 exactly the disk's declared size was refused by its
  Content-Length (a qcow2 is longer than its disk by its metadata), with a message naming the body's
  length as the image's size.
"""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
)
from azure.storage.blob import BlobType

from .data_helpers import (
    compute_client,
    convert,
    create_upload_disk,
    download,
    make_group,
    random_raw,
    upload,
)
from .sdk_helpers import RG
from .servers import ThreadServer
from .test_disk_access import blob, grant, upload_disk
from .test_storage_accounts_blob import blob_client, key_of, make_account

MIB = 1024 * 1024


@pytest.fixture(scope="module")
def container(tmp_path_factory):
    with ThreadServer(tmp_path_factory.mktemp("conditions")) as galley:
        make_account(galley.url, "condacct")
        yield blob_client(galley.url, "condacct", key_of(galley.url, "condacct")).create_container("vhds")


def test_upload_without_overwrite_keeps_an_existing_blob(container):
    disk = os.urandom(MIB) + bytes(MIB)
    container.upload_blob("os.vhd", disk, blob_type=BlobType.PAGEBLOB)
    with pytest.raises(ResourceExistsError) as refused:
        container.upload_blob("os.vhd", b"x" * 512)  # a block blob, single Put Blob
    assert refused.value.error_code == "BlobAlreadyExists"
    with pytest.raises(ResourceExistsError):
        container.upload_blob("os.vhd", b"y" * 512, blob_type=BlobType.PAGEBLOB)
    staged = container.get_blob_client("os.vhd")
    staged._config.max_single_put_size = staged._config.max_block_size = 256 * 1024  # Put Block List
    with pytest.raises(ResourceExistsError):
        staged.upload_blob(os.urandom(MIB))
    kept = container.get_blob_client("os.vhd")
    assert kept.get_blob_properties().blob_type == BlobType.PAGEBLOB
    assert kept.download_blob().readall() == disk
    # overwrite=True replaces it, and a name not taken yet is created as before.
    container.upload_blob("os.vhd", b"z" * 512, overwrite=True)
    assert kept.download_blob().readall() == b"z" * 512
    container.upload_blob("new.bin", b"fresh")
    assert container.get_blob_client("new.bin").download_blob().readall() == b"fresh"


def test_if_match_guards_page_writes_and_deletes(container):
    blob = container.get_blob_client("guarded.raw")
    blob.upload_blob(bytes(MIB), blob_type=BlobType.PAGEBLOB)
    etag = blob.get_blob_properties().etag
    with pytest.raises(ResourceModifiedError) as refused:
        blob.upload_page(b"\1" * 512, offset=0, length=512, etag='"0x1"', match_condition=MatchConditions.IfNotModified)
    assert refused.value.status_code == 412 and refused.value.error_code == "ConditionNotMet"
    assert blob.download_blob(offset=0, length=512).readall() == bytes(512)
    written = blob.upload_page(b"\2" * 512, offset=0, length=512, etag=etag, match_condition=MatchConditions.IfNotModified)
    assert written["etag"] != etag
    with pytest.raises(ResourceModifiedError):
        blob.delete_blob(etag=etag, match_condition=MatchConditions.IfNotModified)  # the old etag
    assert blob.exists()
    blob.delete_blob(etag=written["etag"], match_condition=MatchConditions.IfNotModified)
    assert not blob.exists()


def test_reads_answer_not_modified_and_precondition_failed(container):
    blob = container.get_blob_client("read.bin")
    blob.upload_blob(b"data" * 100, overwrite=True)
    props = blob.get_blob_properties()
    with pytest.raises(HttpResponseError) as unchanged:
        blob.download_blob(etag=props.etag, match_condition=MatchConditions.IfModified)
    assert unchanged.value.status_code == 304
    with pytest.raises(ResourceModifiedError):
        blob.download_blob(etag='"0x1"', match_condition=MatchConditions.IfNotModified)
    with pytest.raises(HttpResponseError) as unchanged:
        blob.get_blob_properties(if_modified_since=props.last_modified + timedelta(seconds=5))
    assert unchanged.value.status_code == 304
    with pytest.raises(ResourceModifiedError) as failed:
        blob.download_blob(if_unmodified_since=props.last_modified - timedelta(days=1))
    assert failed.value.status_code == 412
    assert blob.download_blob(etag=props.etag, match_condition=MatchConditions.IfNotModified).readall() == b"data" * 100
    assert blob.download_blob(if_modified_since=props.last_modified - timedelta(days=1)).readall() == b"data" * 100


def test_a_malformed_condition_date_is_a_400_and_changes_nothing(container):
    blob = container.get_blob_client("dated.bin")
    blob.upload_blob(b"before", overwrite=True)
    with pytest.raises(HttpResponseError) as refused:
        blob.upload_blob(b"after", overwrite=True, headers={"If-Unmodified-Since": "not a date"})
    assert refused.value.status_code == 400 and refused.value.error_code == "InvalidHeaderValue"
    assert blob.download_blob().readall() == b"before"


@pytest.fixture(scope="module")
def disks(tmp_path_factory):
    with ThreadServer(tmp_path_factory.mktemp("qcow2")) as galley:
        make_group(galley.url)
        yield galley.url, compute_client(galley.url)


def test_a_full_qcow2_of_the_declared_size_uploads_and_a_longer_raw_is_refused_by_its_length(disks, tmp_path):
    url, compute = disks
    raw = random_raw(tmp_path / "full.raw", 20 * MIB, seed=7)  # every cluster allocated
    qcow2 = convert(raw, tmp_path / "full.qcow2", "qcow2")
    assert qcow2.stat().st_size > 20 * MIB + 512
    disk = create_upload_disk(compute, "fullq", 20 * MIB)
    response = upload(url, disk.id, qcow2, "qcow2")
    assert response.status_code == 200, response.text
    assert response.json()["properties"]["diskSizeBytes"] == 20 * MIB
    assert download(url, disk.id, tmp_path / "back.raw").status_code == 200
    assert (tmp_path / "back.raw").read_bytes() == raw.read_bytes()

    small = create_upload_disk(compute, "small", 20 * MIB)
    longer = random_raw(tmp_path / "long.raw", 24 * MIB, seed=8, pieces=[(0, MIB)])
    refused = upload(url, small.id, longer, "raw")
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "InvalidUploadSize"
    assert refused.json()["error"]["message"].startswith(
        f"The upload is {24 * MIB:,} bytes, a disk of at least {24 * MIB - 512:,} bytes, but 'small'")
    assert compute.disks.get(RG, "small").disk_state == "ReadyToUpload"


def test_a_block_upload_to_a_disk_write_sas_says_the_blob_is_a_page_blob(disks):
    _url, compute = disks
    upload_disk(compute, "paged", size=20 * MIB)
    client = blob(grant(compute, "paged"))
    for attempt in (lambda: client.upload_blob(b"x" * 4096, overwrite=True),
                    lambda: client.stage_block("YmxvY2sx", b"x" * 4096),
                    lambda: client.commit_block_list(["YmxvY2sx"])):
        with pytest.raises(HttpResponseError) as refused:
            attempt()
        assert (refused.value.status_code, refused.value.error_code) == (409, "InvalidBlobType")
        assert "page blob" in refused.value.message
    assert list(client.list_page_ranges()) == []
