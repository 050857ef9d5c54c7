"""Rules around disks created for upload that a checker met through `az`:

- `az snapshot create --for-upload --size-gb N` sends createOption Upload with diskSizeGB and no
  uploadSizeBytes: the snapshot is made for a VHD of N GiB (its footer included).
- A disk or snapshot with an active SAS cannot be resized (the session's blob keeps its size; the
  resize was lost at revoke, or applied to a disk whose Read SAS served the old size).
- A disk still waiting for its upload (ReadyToUpload) is no source: it holds nothing yet.
- `az disk create --source https://HOST:PORT/{account}/{container}/{blob}` without --size-gb: the
  disk takes the VHD's size, and the storage account id az guesses from the URL's host ('127' for
  127.0.0.1) does not stop it.
"""

from __future__ import annotations

import os
import time

import pytest
from azure.core.exceptions import HttpResponseError
from azure.mgmt.compute import models as m

from .conftest import sdk_client
from .sdk_helpers import make_group, quick_polls
from .test_disk_access import SIZE, MIB, blob, download_raw, footer, grant, revoke, upload_disk
from .test_storage_accounts_blob import blob_client, key_of, make_account

GIB = 1024 ** 3


@pytest.fixture
def sdk(sqlite_server):
    make_group(sqlite_server.url)
    return quick_polls(sdk_client(sqlite_server.url))


def _refused(call) -> tuple[int, str]:
    with pytest.raises(HttpResponseError) as caught:
        call()
    return caught.value.status_code, caught.value.error.code


def _once_published(call):
    """call(), again while the page blob it names is not a source yet (BlobNotFound: it is published
    about a second after its last page write), for up to 30 s."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return call()
        except HttpResponseError as error:
            if error.error.code != "BlobNotFound" or time.monotonic() >= deadline:
                raise
        time.sleep(0.2)


def _upload(sdk, name: str, data: bytes, kind: str = "disks") -> None:
    sas = grant(sdk, name, kind=kind)
    blob(sas).upload_blob(data + footer(len(data)), blob_type="PageBlob", overwrite=True, max_concurrency=4)
    revoke(sdk, name, kind=kind)


def test_an_upload_snapshot_may_be_sized_in_gb_only(sdk):
    made = sdk.snapshots.begin_create_or_update("rg", "byGb", m.Snapshot(
        location="eastus", disk_size_gb=1, creation_data=m.CreationData(create_option="Upload"))).result()
    assert made.disk_state == "ReadyToUpload" and made.disk_size_gb == 1
    assert made.creation_data.upload_size_bytes == GIB + 512
    props = blob(grant(sdk, "byGb", kind="snapshots")).get_blob_properties()
    assert props.size == GIB + 512
    revoke(sdk, "byGb", kind="snapshots")
    # Neither size: still refused, naming both ways.
    status, code = _refused(lambda: sdk.snapshots.begin_create_or_update("rg", "noSize", m.Snapshot(
        location="eastus", creation_data=m.CreationData(create_option="Upload"))).result())
    assert (status, code) == (400, "InvalidParameter")
    assert _refused(lambda: sdk.snapshots.get("rg", "noSize"))[0] == 404


def test_a_disk_with_an_active_sas_cannot_be_resized(sdk, sqlite_server):
    bigger = m.DiskUpdate(disk_size_gb=2)
    upload_disk(sdk, "uploading")
    sas = grant(sdk, "uploading")  # ActiveUpload
    assert _refused(lambda: sdk.disks.begin_update("rg", "uploading", bigger).result()) == (409, "OperationNotAllowed")
    assert sdk.disks.get("rg", "uploading").disk_size_bytes == SIZE
    assert blob(sas).get_blob_properties().size == SIZE + 512
    revoke(sdk, "uploading")

    upload_disk(sdk, "growing")
    data = os.urandom(2 * MIB) + bytes(SIZE - 2 * MIB)
    _upload(sdk, "growing", data)
    grant(sdk, "growing", "Read")  # ActiveSAS
    assert _refused(lambda: sdk.disks.begin_update("rg", "growing", bigger).result()) == (409, "OperationNotAllowed")
    disk = sdk.disks.get("rg", "growing")
    assert disk.disk_size_bytes == SIZE and disk.disk_state == "ActiveSAS"
    revoke(sdk, "growing")
    # Without a SAS the resize goes through.
    assert sdk.disks.begin_update("rg", "growing", bigger).result().disk_size_gb == 2


def test_a_disk_waiting_for_its_upload_is_no_source(sdk, sqlite_server):
    upload_disk(sdk, "waiting")
    snapshot = m.Snapshot(location="eastus", creation_data=m.CreationData(
        create_option="Copy", source_resource_id=sdk.disks.get("rg", "waiting").id))
    assert _refused(lambda: sdk.snapshots.begin_create_or_update("rg", "fromWaiting", snapshot).result()) == (
        409, "OperationNotAllowed")
    assert _refused(lambda: sdk.snapshots.get("rg", "fromWaiting"))[0] == 404
    data = os.urandom(MIB) + bytes(SIZE - MIB)
    _upload(sdk, "waiting", data)
    sdk.snapshots.begin_create_or_update("rg", "fromWaiting", snapshot).result()
    assert download_raw(sqlite_server.url, "snapshots", "fromWaiting") == data


def test_a_disk_imported_without_a_size_takes_the_vhd_s_and_az_s_guessed_account_is_ignored(sdk, sqlite_server):
    url = sqlite_server.url
    account = make_account(url, "vhdsource", location="eastus")
    container = blob_client(url, "vhdsource", key_of(url, "vhdsource")).create_container("vhds")
    data = os.urandom(3 * MIB) + bytes(MIB)
    container.upload_blob("os.vhd", data + footer(len(data)), blob_type="PageBlob")
    uri = f"{url}/vhdsource/vhds/os.vhd"
    guessed = account["id"].rsplit("/", 1)[0] + "/" + uri.split(".")[0].split("/")[-1]  # what az sends

    def imported(name: str, account_id: str, size: int | None = None) -> m.Disk:
        return sdk.disks.begin_create_or_update("rg", name, m.Disk(
            location="eastus", disk_size_gb=size, creation_data=m.CreationData(
                create_option="Import", source_uri=uri, storage_account_id=account_id))).result()

    disk = _once_published(lambda: imported("fromVhd", guessed))
    assert disk.disk_size_gb == 1 and disk.disk_size_bytes == len(data)
    assert download_raw(url, "disks", "fromVhd") == data
    # An account id that names another account, or none that az would guess, is still refused.
    other = account["id"].rsplit("/", 1)[0] + "/nosuchaccount"
    assert _refused(lambda: imported("wrongAccount", other)) == (404, "NotFound")
    # A size asked for is kept when it holds the VHD, refused when it does not.
    assert imported("roomy", account["id"], size=2).disk_size_bytes == 2 * GIB
    big = os.urandom(MIB) + bytes(GIB)  # sparse after its first MiB: only that MiB is sent
    container.upload_blob("big.vhd", big + footer(len(big)), blob_type="PageBlob", max_concurrency=4)
    uri = f"{url}/vhdsource/vhds/big.vhd"
    assert _refused(lambda: _once_published(lambda: imported("tooSmall", account["id"], size=1))) == (
        400, "InvalidParameter")  # a 1 GB disk from a VHD of 1 GiB + 1 MiB
