"""The `galley` CLI against a real server (a ThreadServer on SQLite).

Commands run in-process through `galley.cli.main.main()`, so the az-style argv
rewriting (`--target-regions a b=1 c=1=standard_zrs`, bare `--exclude-from-latest`)
is exercised exactly as on the command line; one test runs `python -m galley.cli.main`
as a subprocess for the real entry point. The seeds' `az sig` examples appear word for
word with `az` replaced by `galley`.

The CLI honours the server's `Retry-After: 1` between polls of a long-running
operation; here its sleep is capped at 50 ms so the module stays fast. Everything else
(HTTP, the job worker, the database) is real.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone

from . import admin_http as httpx
import pytest

from galley.cli.client import API_GALLERY

from .cli_runner import Result
from .servers import SUBSCRIPTION, ThreadServer, free_port

RG = "myGalleryRG"
GALLERY = "myGallery"
DEFINITION = "myImageDefinition"
COMPUTE = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RG}/providers/Microsoft.Compute"
GALLERY_ID = f"{COMPUTE}/galleries/{GALLERY}"
DEFINITION_ID = f"{GALLERY_ID}/images/{DEFINITION}"

# -g/-r/-i for the seed's gallery image definition
SIG = ("-g", RG, "-r", GALLERY, "-i", DEFINITION)


@pytest.fixture
def cli_server(tmp_path, monkeypatch):
    """A server with the default settings, whatever GALLEY_* variables earlier tests left behind
    (`galley serve` sets GALLEY_HOME/GALLEY_REGIONS in its own process's environment)."""
    for name in [name for name in os.environ if name.startswith("GALLEY_")]:
        monkeypatch.delenv(name)
    with ThreadServer(tmp_path) as running:
        yield running


def seed_gallery(galley, location: str = "westcentralus") -> None:
    """The group, gallery and the seed 004 image definition (a specialized Linux one)."""
    galley("group", "create", "-n", RG, "-l", location)
    galley("sig", "create", "-g", RG, "-r", GALLERY)
    galley("sig", "image-definition", "create", "--resource-group", "myGalleryRG", "--gallery-name", "myGallery",
           "--gallery-image-definition", "myImageDefinition", "--publisher", "myPublisher", "--offer", "myOffer",
           "--sku", "mySKU", "--os-type", "Linux", "--os-state", "specialized")


def make_snapshot(galley, name: str, size_gb: int = 4, os_type: str | None = "Linux") -> dict:
    args = ["snapshot", "create", "-g", RG, "-n", name, "--size-gb", str(size_gb)]
    if os_type:
        args += ["--os-type", os_type]
    return galley(*args).json()


def make_version(galley, version: str, *extra: str) -> dict:
    """A version from a fresh OS snapshot (each version its own source)."""
    snapshot = make_snapshot(galley, f"snap-{version}")
    return galley("sig", "image-version", "create", *SIG, "-e", version, "--os-snapshot", snapshot["id"],
                  *extra).json()


def regions_of(version: dict) -> dict[str, dict]:
    return {t["name"]: t for t in version["properties"]["publishingProfile"]["targetRegions"]}


def error_line(result: Result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("ERROR: ")]
    assert lines, f"no ERROR line on stderr: {result.stderr!r}"
    return lines[0]


# -- seed 004: image definition and image version ------------------------------------------------


def test_seed_image_definition_create(galley):
    seed_gallery(galley, "eastus2")
    definition = galley("sig", "image-definition", "show", *SIG).json()
    assert definition["id"] == DEFINITION_ID
    assert definition["location"] == "eastus2"  # the gallery's, which is the group's
    props = definition["properties"]
    assert props["identifier"] == {"publisher": "myPublisher", "offer": "myOffer", "sku": "mySKU"}
    assert props["osType"] == "Linux" and props["osState"] == "Specialized"
    assert props["provisioningState"] == "Succeeded"


def test_seed_image_version_create_from_managed_image(galley):
    seed_gallery(galley, "westcentralus")
    snapshot = make_snapshot(galley, "osSnap")
    assert snapshot["location"] == "westcentralus"
    image = galley("image", "create", "-g", RG, "-n", "myImage", "--source", "osSnap").json()
    assert image["location"] == "westcentralus"
    assert image["properties"]["storageProfile"]["osDisk"]["snapshot"]["id"] == snapshot["id"]
    assert image["properties"]["storageProfile"]["osDisk"]["osType"] == "Linux"  # taken from the snapshot

    version = galley(
        "sig", "image-version", "create", "--resource-group", "myGalleryRG", "--gallery-name", "myGallery",
        "--gallery-image-definition", "myImageDefinition", "--gallery-image-version", "1.0.0",
        "--target-regions", "westcentralus", "southcentralus=1", "eastus=1=standard_zrs",
        "--replica-count", "2", "--managed-image", image["id"],
    ).json()

    assert version["name"] == "1.0.0"
    assert version["location"] == "westcentralus"  # the source region, listed in the target regions
    assert version["properties"]["provisioningState"] == "Succeeded"
    assert version["properties"]["storageProfile"]["source"]["id"] == image["id"]
    profile = version["properties"]["publishingProfile"]
    assert profile["replicaCount"] == 2
    assert [t["name"] for t in profile["targetRegions"]] == ["westcentralus", "southcentralus", "eastus"]
    regions = regions_of(version)
    assert regions["westcentralus"]["regionalReplicaCount"] == 2  # --replica-count fills in the count
    assert regions["southcentralus"]["regionalReplicaCount"] == 1
    assert regions["eastus"]["regionalReplicaCount"] == 1
    assert regions["eastus"]["storageAccountType"] == "Standard_ZRS"
    assert regions["westcentralus"]["storageAccountType"] == "Standard_LRS"
    assert regions["southcentralus"]["storageAccountType"] == "Standard_LRS"

    plain = galley("sig", "image-version", "show", *SIG, "-e", "1.0.0").json()
    assert "replicationStatus" not in plain["properties"]
    expanded = galley("sig", "image-version", "show", *SIG, "-e", "1.0.0", "--expand", "ReplicationStatus").json()
    status = expanded["properties"]["replicationStatus"]
    assert status["aggregatedState"] == "Completed"
    assert {s["region"]: s["state"] for s in status["summary"]} == {
        "westcentralus": "Completed", "southcentralus": "Completed", "eastus": "Completed"}


def test_version_location_must_be_a_target_region(galley):
    seed_gallery(galley, "westcentralus")
    snapshot = make_snapshot(galley, "osSnap")
    result = galley("sig", "image-version", "create", *SIG, "-e", "1.0.0", "--os-snapshot", snapshot["id"],
                    "--target-regions", "southcentralus", "eastus", check=False)
    assert result.code == 1 and result.stdout == ""
    assert error_line(result).startswith("ERROR: (InvalidParameter) The version's location 'westcentralus'")
    assert galley("sig", "image-version", "list", *SIG).json() == []


def test_seed_storage_account_type_standard_zrs(galley):
    seed_gallery(galley, "eastus")
    snapshot = make_snapshot(galley, "osSnap")
    version = galley("sig", "image-version", "create", *SIG, "-e", "1.0.0", "--os-snapshot", snapshot["id"],
                     "--target-regions", "eastus", "westus2=2", "--storage-account-type", "standard_zrs").json()
    profile = version["properties"]["publishingProfile"]
    assert profile["storageAccountType"] == "Standard_ZRS"
    assert {name: (t["regionalReplicaCount"], t["storageAccountType"]) for name, t in regions_of(version).items()} == {
        "eastus": (1, "Standard_ZRS"), "westus2": (2, "Standard_ZRS")}


def test_version_from_os_and_data_snapshots(galley):
    seed_gallery(galley, "eastus")
    os_snap = make_snapshot(galley, "osSnap", size_gb=8)
    data0 = make_snapshot(galley, "data0", size_gb=2, os_type=None)
    data1 = galley("disk", "create", "-g", RG, "-n", "data1", "--size-gb", "3").json()  # a managed disk
    # bare names are looked up in -g (snapshot first, then disk), as az does
    version = galley("sig", "image-version", "create", *SIG, "-e", "1.0.0", "--os-snapshot", "osSnap",
                     "--data-snapshots", "data0", data1["id"], "--data-snapshot-luns", "1", "3").json()
    storage = version["properties"]["storageProfile"]
    assert storage["osDiskImage"]["source"]["id"] == os_snap["id"]
    assert storage["osDiskImage"]["sizeInGB"] == 8
    assert sorted((d["lun"], d["source"]["id"], d["sizeInGB"]) for d in storage["dataDiskImages"]) == [
        (1, data0["id"], 2), (3, data1["id"], 3)]
    assert version["location"] == "eastus" and list(regions_of(version)) == ["eastus"]  # the default target


def test_version_from_os_vhd_uri(galley, cli_server):
    seed_gallery(galley, "eastus")
    account = (f"{cli_server.url}/subscriptions/{SUBSCRIPTION}/resourceGroups/{RG}/providers/"
               "Microsoft.Storage/storageAccounts/myaccount?api-version=2023-05-01")
    created = httpx.put(account, json={"location": "eastus", "sku": {"name": "Standard_LRS"}})
    assert created.status_code in (200, 202)  # final at once, or accepted when the server is slow
    vhd_footer_only_disk = bytes(1024 * 1024) + _fixed_vhd_footer(1024 * 1024)
    assert httpx.put(f"{cli_server.url}/blob/myaccount/vhds/os.vhd", content=vhd_footer_only_disk).status_code == 201
    uri = "https://myaccount.blob.core.windows.net/vhds/os.vhd"
    version = galley("sig", "image-version", "create", *SIG, "-e", "1.0.0", "--os-vhd-uri", uri,
                     "--os-vhd-storage-account", "myaccount").json()
    source = version["properties"]["storageProfile"]["osDiskImage"]["source"]
    assert source == {"uri": uri, "storageAccountId": f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RG}"
                                                      "/providers/Microsoft.Storage/storageAccounts/myaccount"}
    assert version["properties"]["provisioningState"] == "Succeeded"


def _fixed_vhd_footer(size: int) -> bytes:
    from galley.content.vhd import VhdFooter
    return VhdFooter.new(2, size).pack()


def test_version_usage_error_sends_nothing(galley):
    seed_gallery(galley, "eastus")
    result = galley("sig", "image-version", "create", *SIG, "-e", "1.0.0", "--os-vhd-uri",
                    "https://a.blob.core.windows.net/c/os.vhd", "--managed-image", "img", check=False)
    assert result.code == 2
    assert result.stderr.startswith("ERROR: usage error: give exactly one OS source")
    assert galley("sig", "image-version", "list", *SIG).json() == []


# -- latest, exclude-from-latest, end of life (seed 001) ---------------------------------------------


@pytest.mark.slow
def test_show_latest_follows_exclusion_and_region(galley):
    seed_gallery(galley, "eastus")
    make_version(galley, "1.0.0", "--target-regions", "eastus", "westus2")
    make_version(galley, "1.2.0", "--target-regions", "eastus")
    make_version(galley, "1.10.0", "--exclude-from-latest")  # bare flag: true
    make_version(galley, "0.9.0", "--target-regions", "eastus", "westus2")

    def latest(*extra: str) -> str:
        return galley("sig", "image-version", "show", *SIG, "--latest", *extra).json()["name"]

    assert latest() == "1.2.0"  # 1.10.0 is newer (numerically) but excluded
    assert latest("--location", "westus2") == "1.0.0"  # 1.2.0 is not in westus2
    assert latest("-l", "eastus") == "1.2.0"

    excluded = galley("sig", "image-version", "update", *SIG, "-e", "1.2.0", "--exclude-from-latest").json()
    assert excluded["properties"]["publishingProfile"]["excludeFromLatest"] is True
    assert latest() == "1.0.0"

    past = (datetime.now(timezone.utc) - timedelta(days=1)).strftime("%Y-%m-%d")
    ended = galley("sig", "image-version", "update", *SIG, "-e", "1.0.0", "--end-of-life-date", past).json()
    assert ended["properties"]["publishingProfile"]["endOfLifeDate"].startswith(past)
    assert latest() == "0.9.0"

    galley("sig", "image-version", "update", *SIG, "-e", "1.10.0", "--exclude-from-latest", "false")
    assert latest() == "1.10.0"
    assert latest("--location", "westus2") == "0.9.0"


def test_show_latest_without_versions_is_an_error(galley):
    seed_gallery(galley, "eastus")
    result = galley("sig", "image-version", "show", *SIG, "--latest", check=False)
    assert result.code == 1 and result.stdout == ""
    line = error_line(result)
    assert line.startswith("ERROR: (NotFound) Image definition 'myImageDefinition' has no version"), line


# -- list, table output, update ---------------------------------------------------------------------


def test_list_as_json_and_table(galley):
    seed_gallery(galley, "eastus")
    galley("group", "create", "-n", "otherRG", "-l", "westus2")
    galley("sig", "create", "-g", "otherRG", "-r", "otherGallery", "--description", "second")
    make_version(galley, "1.0.0", "--target-regions", "eastus", "westus2=2")

    # seed 001: `az sig list` lists the subscription's galleries
    assert sorted(g["name"] for g in galley("sig", "list").json()) == ["myGallery", "otherGallery"]
    assert [g["name"] for g in galley("sig", "list", "-g", "otherRG").json()] == ["otherGallery"]

    table = galley("sig", "list", "--output", "table").stdout
    header, dashes, *rows = table.splitlines()
    assert header.split() == ["Name", "ResourceGroup", "Location", "ProvisioningState", "Description"]
    assert set(dashes) <= {"-", " "}
    assert sorted(row.split()[:3] for row in rows) == [
        ["myGallery", RG, "eastus"], ["otherGallery", "otherRG", "westus2"]]

    definitions = galley("sig", "image-definition", "list", "-g", RG, "-r", GALLERY, "-o", "table").stdout
    assert DEFINITION in definitions and "myPublisher" in definitions and "Specialized" in definitions

    versions = galley("sig", "image-version", "list", *SIG, "--output", "table").stdout.splitlines()
    assert versions[0].split()[:3] == ["Name", "Location", "ProvisioningState"]
    assert versions[2].split() == ["1.0.0", "eastus", "Succeeded", "False", "eastus=1,", "westus2=2"]

    groups = galley("group", "list", "-o", "table").stdout
    assert RG in groups and "otherRG" in groups


def test_update_updatable_properties(galley):
    seed_gallery(galley, "eastus")
    gallery = galley("sig", "update", "-g", RG, "-r", GALLERY, "--description", "Images of the team",
                     "--tags", "team=infra", "tier").json()
    assert gallery["properties"]["description"] == "Images of the team"
    assert gallery["tags"] == {"team": "infra", "tier": ""}
    assert galley("sig", "show", "-g", RG, "-r", GALLERY).json()["properties"]["description"] == "Images of the team"

    definition = galley("sig", "image-definition", "update", *SIG, "--end-of-life-date", "2031-01-01",
                        "--minimum-cpu-core", "2").json()
    assert definition["properties"]["endOfLifeDate"].startswith("2031-01-01")
    assert definition["properties"]["recommended"]["vCPUs"]["min"] == 2
    assert definition["properties"]["identifier"]["sku"] == "mySKU"  # untouched

    make_version(galley, "1.0.0")
    version = galley("sig", "image-version", "update", *SIG, "-e", "1.0.0", "--target-regions", "eastus",
                     "westus2=3").json()
    assert {n: t["regionalReplicaCount"] for n, t in regions_of(version).items()} == {"eastus": 1, "westus2": 3}

    cleared = galley("sig", "update", "-g", RG, "-r", GALLERY, "--tags").json()  # bare --tags clears them
    assert cleared["tags"] == {}


def test_update_of_a_frozen_property_is_rejected(galley):
    seed_gallery(galley, "eastus")
    # creating the definition again with another OS state is an update of a property fixed at creation
    result = galley("sig", "image-definition", "create", *SIG, "--publisher", "myPublisher", "--offer", "myOffer",
                    "--sku", "mySKU", "--os-type", "Linux", "--os-state", "generalized", check=False)
    assert result.code == 1 and result.stdout == ""
    line = error_line(result)
    assert line.startswith("ERROR: (PropertyChangeNotAllowed) Changing property 'properties.osState'"), line
    assert galley("sig", "image-definition", "show", *SIG).json()["properties"]["osState"] == "Specialized"

    make_snapshot(galley, "other")
    make_version(galley, "1.0.0")
    result = galley("sig", "image-version", "create", *SIG, "-e", "1.0.0", "--os-snapshot", "other", check=False)
    assert result.code == 1
    assert error_line(result).startswith("ERROR: (PropertyChangeNotAllowed) Changing property "
                                         "'properties.storageProfile")
    version = galley("sig", "image-version", "show", *SIG, "-e", "1.0.0").json()
    assert version["properties"]["storageProfile"]["osDiskImage"]["source"]["id"].endswith("/snapshots/snap-1.0.0")


def test_disk_and_snapshot_update(galley):
    galley("group", "create", "-n", RG, "-l", "eastus")
    galley("disk", "create", "-g", RG, "-n", "d1", "--size-gb", "4", "--sku", "Premium_LRS", "--tags", "a=1")
    grown = galley("disk", "update", "-g", RG, "-n", "d1", "--size-gb", "8").json()
    assert grown["properties"]["diskSizeGB"] == 8 and grown["sku"]["name"] == "Premium_LRS"
    snap = galley("snapshot", "create", "-g", RG, "-n", "s1", "--source", "d1").json()
    assert snap["properties"]["creationData"] == {"createOption": "Copy", "sourceResourceId": grown["id"]}
    assert snap["properties"]["diskSizeGB"] == 8
    retyped = galley("snapshot", "update", "-g", RG, "-n", "s1", "--sku", "Standard_ZRS", "--tags", "b=2").json()
    assert retyped["sku"]["name"] == "Standard_ZRS" and retyped["tags"] == {"b": "2"}
    shrink = galley("disk", "update", "-g", RG, "-n", "d1", "--size-gb", "2", check=False)
    assert shrink.code == 1
    assert error_line(shrink) == "ERROR: (InvalidParameter) A disk cannot shrink: it is 8 GB, asked for 2 GB."
    assert "Target: properties.diskSizeGB" in shrink.stderr
    assert galley("disk", "show", "-g", RG, "-n", "d1").json()["properties"]["diskSizeGB"] == 8


# -- deletes ---------------------------------------------------------------------------------------------


def test_delete_of_a_gallery_with_children_fails_with_the_servers_message(galley, cli_server):
    seed_gallery(galley, "eastus")
    result = galley("sig", "delete", "-g", RG, "-r", GALLERY, check=False)
    assert result.code == 1 and result.stdout == ""
    answer = httpx.delete(f"{cli_server.url}{GALLERY_ID}?api-version={API_GALLERY}")
    assert answer.status_code == 409
    error = answer.json()["error"]
    assert DEFINITION in error["message"]
    assert error_line(result) == f"ERROR: ({error['code']}) {error['message']}"
    assert galley("sig", "show", "-g", RG, "-r", GALLERY).json()["name"] == GALLERY

    make_version(galley, "1.0.0")
    result = galley("sig", "image-definition", "delete", *SIG, check=False)
    assert result.code == 1 and "1.0.0" in error_line(result)


@pytest.mark.slow
def test_deletes_in_order_succeed(galley):
    seed_gallery(galley, "eastus")
    make_version(galley, "1.0.0")
    make_version(galley, "2.0.0")
    for version in ("1.0.0", "2.0.0"):
        assert galley("sig", "image-version", "delete", *SIG, "-e", version).stdout == ""
        # gone once the command returns
        gone = galley("sig", "image-version", "show", *SIG, "-e", version, check=False)
        assert gone.code == 1 and error_line(gone).startswith("ERROR: (ResourceNotFound)"), gone.stderr
    assert galley("sig", "image-version", "list", *SIG).json() == []
    assert galley("sig", "image-definition", "delete", *SIG).stdout == ""
    assert galley("sig", "delete", "-g", RG, "-r", GALLERY).stdout == ""
    gone = galley("sig", "show", "-g", RG, "-r", GALLERY, check=False)
    assert gone.code == 1 and error_line(gone).startswith("ERROR: (ResourceNotFound)")
    assert galley("sig", "list", "-g", RG).json() == []
    # the snapshots the versions were made from can go now too
    galley("snapshot", "delete", "-g", RG, "-n", "snap-1.0.0")
    assert [s["name"] for s in galley("snapshot", "list", "-g", RG).json()] == ["snap-2.0.0"]


@pytest.mark.slow
def test_group_delete_yes_deletes_what_it_contains(galley):
    seed_gallery(galley, "eastus")
    make_version(galley, "1.0.0")
    galley("group", "create", "-n", "keepRG", "-l", "eastus")
    assert galley("group", "exists", "-n", RG).stdout.strip() == "true"
    assert galley("group", "delete", "-n", RG, "-y").stdout == ""
    assert galley("group", "exists", "-n", RG).stdout.strip() == "false"
    assert [g["name"] for g in galley("group", "list").json()] == ["keepRG"]
    assert galley("sig", "list").json() == []
    assert galley("snapshot", "list").json() == []


# -- errors --------------------------------------------------------------------------------------------


def test_error_exits_non_zero_and_prints_code_and_message(galley):
    galley("group", "create", "-n", RG, "-l", "eastus")
    result = galley("sig", "show", "-g", RG, "-r", "nope", check=False)
    assert result.code == 1 and result.stdout == ""
    assert error_line(result).startswith("ERROR: (ResourceNotFound) ")
    assert "nope" in error_line(result)

    bad_region = galley("sig", "create", "-g", RG, "-r", "g2", "-l", "moon", check=False)
    assert bad_region.code == 1
    assert "moon" in error_line(bad_region)
    assert galley("sig", "list", "-g", RG).json() == []


def test_connection_refused_gives_a_clear_message():
    port = free_port()  # nothing listens there
    env = {**os.environ, "GALLEY_URL": f"http://127.0.0.1:{port}"}
    completed = subprocess.run([sys.executable, "-m", "galley.cli.main", "sig", "list"], env=env,
                               capture_output=True, text=True, timeout=60)
    assert completed.returncode == 1
    assert completed.stdout == ""
    assert completed.stderr.startswith(
        f"ERROR: (ConnectionError) cannot connect to the Galley server at http://127.0.0.1:{port}")
    assert "Is it running?" in completed.stderr
    assert "Traceback" not in completed.stderr


def test_entry_point_as_a_process(cli_server):
    """`python -m galley.cli.main` rewrites az-style multi-value options itself."""
    env = {**os.environ, "GALLEY_URL": cli_server.url, "GALLEY_HOME": str(cli_server.home),
           "GALLEY_CLI_HOME": str(cli_server.home / "cli")}
    completed = subprocess.run([sys.executable, "-m", "galley.cli.main", "group", "create", "-n", RG,
                                "-l", "eastus", "--tags", "a=1", "b=2"],
                               env=env, capture_output=True, text=True, timeout=60)
    assert completed.returncode == 0, completed.stderr
    assert json.loads(completed.stdout)["tags"] == {"a": "1", "b": "2"}
