"""A container SAS (sr=c; `az storage container generate-sas`, azure-storage-blob's
generate_container_sas) on a storage account's Blob endpoint: it reaches the blobs of its one
container, for the operations its permission letters allow, until it expires; never another
container, and never the container itself (create, delete) or the account's list of containers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from azure.core.exceptions import HttpResponseError
from azure.storage.blob import BlobServiceClient, ContainerClient, ContainerSasPermissions, generate_container_sas

from .servers import ThreadServer
from .test_storage_accounts_blob import blob_client, key_of, make_account

ACCOUNT = "sasacct"


@pytest.fixture(scope="module")
def galley(tmp_path_factory):
    with ThreadServer(tmp_path_factory.mktemp("container-sas")) as server:
        make_account(server.url, ACCOUNT)
        owner = blob_client(server.url, ACCOUNT, key_of(server.url, ACCOUNT))
        owner.create_container("shared")
        owner.create_container("private").upload_blob("secret.bin", b"not for the SAS holder")
        yield server


def container_sas(galley, permission: ContainerSasPermissions, container: str = "shared",
                  expiry: timedelta = timedelta(hours=1), key_index: int = 0) -> str:
    return generate_container_sas(ACCOUNT, container, account_key=key_of(galley.url, ACCOUNT, key_index),
                                  permission=permission, expiry=datetime.now(UTC) + expiry)


def through(galley, sas: str, container: str = "shared") -> ContainerClient:
    return ContainerClient(f"{galley.url}/{ACCOUNT}", container, credential=sas)


def refused(call) -> tuple[int, str | None]:
    with pytest.raises(HttpResponseError) as caught:
        call()
    return caught.value.status_code, caught.value.error_code


def test_a_container_sas_writes_lists_and_reads_the_blobs_of_its_container(galley):
    sas = container_sas(galley, ContainerSasPermissions(read=True, write=True, create=True, list=True))
    shared = through(galley, sas)
    shared.upload_blob("a.txt", b"first")
    shared.upload_blob("b.vhd", bytes(1024 * 1024), blob_type="PageBlob")
    assert sorted(b.name for b in shared.list_blobs()) == ["a.txt", "b.vhd"]
    assert shared.download_blob("a.txt").readall() == b"first"
    assert shared.get_container_properties().name == "shared"
    # The owner sees what the SAS holder wrote.
    owner = blob_client(galley.url, ACCOUNT, key_of(galley.url, ACCOUNT)).get_container_client("shared")
    assert owner.download_blob("a.txt").readall() == b"first"


def test_a_container_sas_reaches_nothing_else(galley):
    everything = ContainerSasPermissions(read=True, add=True, create=True, write=True, delete=True, list=True)
    sas = container_sas(galley, everything)
    other = through(galley, sas, "private")  # the SAS names "shared"
    assert refused(lambda: other.download_blob("secret.bin").readall()) == (403, "AuthenticationFailed")
    assert refused(lambda: list(other.list_blobs())) == (403, "AuthenticationFailed")
    assert refused(lambda: other.upload_blob("planted.bin", b"x")) == (403, "AuthenticationFailed")
    # Not the container itself, nor the account's containers.
    assert refused(lambda: through(galley, sas).delete_container())[0] == 403
    assert refused(lambda: through(galley, sas, "newone").create_container())[0] == 403
    service = BlobServiceClient(f"{galley.url}/{ACCOUNT}", credential=sas)
    assert refused(lambda: list(service.list_containers()))[0] == 403
    owner = blob_client(galley.url, ACCOUNT, key_of(galley.url, ACCOUNT))
    assert sorted(c.name for c in owner.list_containers()) == ["private", "shared"]
    assert [b.name for b in owner.get_container_client("private").list_blobs()] == ["secret.bin"]


def test_a_container_sas_is_held_to_its_letters_its_expiry_and_its_key(galley):
    read_only = through(galley, container_sas(galley, ContainerSasPermissions(read=True)))
    assert refused(lambda: read_only.upload_blob("ro.bin", b"x")) == (403, "AuthorizationPermissionMismatch")
    assert refused(lambda: list(read_only.list_blobs())) == (403, "AuthorizationPermissionMismatch")
    expired = through(galley, container_sas(galley, ContainerSasPermissions(read=True, write=True, create=True,
                                                                            list=True), expiry=timedelta(hours=-1)))
    assert refused(lambda: expired.upload_blob("late.bin", b"x")) == (403, "AuthenticationFailed")
    tampered = container_sas(galley, ContainerSasPermissions(read=True)).replace("sp=r", "sp=rwl")
    assert refused(lambda: list(through(galley, tampered).list_blobs())) == (403, "AuthenticationFailed")
    owner = blob_client(galley.url, ACCOUNT, key_of(galley.url, ACCOUNT)).get_container_client("shared")
    assert not [b for b in owner.list_blobs() if b.name in ("ro.bin", "late.bin")]
    # Signed with key2, then key2 renewed: refused from then on.
    by_key2 = through(galley, container_sas(galley, ContainerSasPermissions(list=True), key_index=1))
    list(by_key2.list_blobs())
    from . import admin_http as httpx
    from .test_storage_accounts_blob import account_url, STORAGE_API
    httpx.post(f"{account_url(galley.url, ACCOUNT)}/regenerateKey?{STORAGE_API}",
               json={"keyName": "key2"}).raise_for_status()
    assert refused(lambda: list(by_key2.list_blobs())) == (403, "AuthenticationFailed")
