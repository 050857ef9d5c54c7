"""The real `az` with storage accounts on Galley: keys, `az storage` blob commands against the
account's path-style Blob endpoint, and a gallery version from such a blob (--os-vhd-uri).

Reuses test_az_cli.py's server (galley serve over HTTPS) and its signed-in az. az builds a blob
URL from --account-name and the cloud's storage suffix (https://{account}.blob.{suffix}), which
cannot name a path-style endpoint: it is given with --blob-endpoint, or in a connection string
(AZURE_STORAGE_CONNECTION_STRING or --connection-string) with BlobEndpoint=.
"""

from __future__ import annotations

import os

import pytest

from galley.content.vhd import DISK_FIXED, VhdFooter

from .test_az_cli import AZ, admin_az, server  # noqa: F401 - admin_az and server: the fixtures

pytestmark = pytest.mark.skipif(not os.access(AZ, os.X_OK), reason=f"the Azure CLI is not installed at {AZ}")
MIB = 1024 * 1024


@pytest.mark.slow
def test_az_storage_keys_page_blob_upload_and_a_version_from_the_vhd(server, admin_az, tmp_path):  # noqa: F811
    az = admin_az
    az.run("group", "create", "-n", "azStorageRG", "-l", "eastus", "-o", "none")
    account = az.json("storage", "account", "create", "-n", "azvhds", "-g", "azStorageRG", "-l", "eastus")
    assert account["primaryEndpoints"]["blob"] == f"{server.url}/azvhds/"
    keys = az.json("storage", "account", "keys", "list", "-n", "azvhds", "-g", "azStorageRG")
    assert [(k["keyName"], k["permissions"]) for k in keys] == [("key1", "FULL"), ("key2", "FULL")]
    endpoint = ["--account-name", "azvhds", "--account-key", keys[0]["value"],
                "--blob-endpoint", f"{server.url}/azvhds"]

    disk = bytearray(4 * MIB)
    disk[:MIB] = os.urandom(MIB)
    vhd = tmp_path / "os.vhd"
    vhd.write_bytes(bytes(disk) + VhdFooter.new(DISK_FIXED, len(disk)).pack())
    assert az.json("storage", "container", "create", "-n", "vhds", *endpoint) == {"created": True}
    az.run("storage", "blob", "upload", "--type", "page", "-f", str(vhd), "-c", "vhds", "-n", "os.vhd", *endpoint,
           "-o", "none")

    connection = (f"DefaultEndpointsProtocol=https;BlobEndpoint={server.url}/azvhds;AccountName=azvhds;"
                  f"AccountKey={keys[1]['value']}")
    listed = az.json("storage", "blob", "list", "-c", "vhds", "--connection-string", connection)
    assert [(b["name"], b["properties"]["blobType"], b["properties"]["contentLength"]) for b in listed] == [
        ("os.vhd", "PageBlob", len(disk) + 512)]
    az.run("storage", "blob", "download", "-c", "vhds", "-n", "os.vhd", "-f", str(tmp_path / "back.vhd"),
           "--connection-string", connection, "-o", "none")
    assert (tmp_path / "back.vhd").read_bytes() == vhd.read_bytes()

    az.run("storage", "account", "keys", "renew", "-n", "azvhds", "-g", "azStorageRG", "--key", "primary", "-o", "none")
    assert "Authentication failure" in az.fails("storage", "blob", "list", "-c", "vhds", *endpoint, "-o", "json")

    az.run("sig", "create", "-g", "azStorageRG", "-r", "vhdGallery", "-o", "none")
    az.run("sig", "image-definition", "create", "-g", "azStorageRG", "-r", "vhdGallery", "-i", "fromVhd",
           "--os-type", "Linux", "-p", "pub", "-f", "off", "-s", "sku", "-o", "none")
    version = az.json("sig", "image-version", "create", "-g", "azStorageRG", "-r", "vhdGallery", "-i", "fromVhd",
                      "-e", "1.0.0", "--os-vhd-uri", f"{server.url}/azvhds/vhds/os.vhd",
                      "--os-vhd-storage-account", "azvhds", "--target-regions", "eastus")
    assert version["provisioningState"] == "Succeeded"
    assert version["storageProfile"]["osDiskImage"]["source"] == {
        "uri": f"{server.url}/azvhds/vhds/os.vhd", "storageAccountId": account["id"]}
