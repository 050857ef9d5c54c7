"""Unit tests of the galley CLI that need no server: argv rewriting, request
bodies, and HTTP behaviour (errors, paging, long-running operations) against
an httpx.MockTransport."""

import json
import os
import sys
import types

import httpx
import pytest
import typer
from typer.testing import CliRunner

from galley.cli import common, image_version
from galley.cli.argv import expand_argv, is_option, option_names
from galley.cli.client import API_GALLERY, ArmClient, ArmError
from galley.cli.main import app, preprocess

pytestmark = pytest.mark.usefixtures("galley_command_built_once")  # tests/cli_runner.py

SUB = "00000000-0000-0000-0000-000000000000"
RG_PATH = f"/subscriptions/{SUB}/resourcegroups/rg"
GALLERY = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/galleries/g"
DEFINITION = f"{GALLERY}/images/def"
VERSION = f"{DEFINITION}/versions/1.0.0"
SNAPSHOT = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/snapshots/snap"
DISK = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/disks/d1"


# -- argv rewriting --------------------------------------------------------------------

MULTI = {"--target-regions", "--tags", "--data-snapshot-luns"}
FLAGS = {"--exclude-from-latest"}


def test_expand_multi_value_option_into_repeated_options():
    argv = ["sig", "image-version", "create", "--target-regions", "westcentralus", "southcentralus=1",
            "eastus=1=standard_zrs", "--replica-count", "2"]
    assert expand_argv(argv, MULTI) == [
        "sig", "image-version", "create",
        "--target-regions", "westcentralus", "--target-regions", "southcentralus=1",
        "--target-regions", "eastus=1=standard_zrs", "--replica-count", "2",
    ]


def test_expand_leaves_single_value_options_and_equals_form():
    assert expand_argv(["--name", "a", "b"], MULTI) == ["--name", "a", "b"]
    assert expand_argv(["--tags=a=1", "b=2", "-g", "rg"], MULTI) == ["--tags=a=1", "--tags", "b=2", "-g", "rg"]


def test_expand_bare_multi_value_option_gets_empty_value():
    assert expand_argv(["--tags", "--no-wait"], MULTI) == ["--tags", "", "--no-wait"]
    assert expand_argv(["-g", "rg", "--tags"], MULTI) == ["-g", "rg", "--tags", ""]
    assert expand_argv(["--tags", ""], MULTI) == ["--tags", ""]


def test_expand_negative_numbers_are_values_and_double_dash_stops():
    assert is_option("-g") and is_option("--x=1") and not is_option("-1") and not is_option("-")
    assert expand_argv(["--data-snapshot-luns", "0", "-1"], MULTI) == [
        "--data-snapshot-luns", "0", "--data-snapshot-luns", "-1"]
    assert expand_argv(["--tags", "a", "--", "b", "c"], MULTI) == ["--tags", "a", "--", "b", "c"]


def test_expand_three_state_flag():
    assert expand_argv(["--exclude-from-latest", "-g", "rg"], MULTI, FLAGS) == [
        "--exclude-from-latest", "true", "-g", "rg"]
    assert expand_argv(["--exclude-from-latest"], MULTI, FLAGS) == ["--exclude-from-latest", "true"]
    assert expand_argv(["--exclude-from-latest", "False"], MULTI, FLAGS) == ["--exclude-from-latest", "False"]
    # a non-boolean word stays the option's value, so the parser can reject it
    assert expand_argv(["--exclude-from-latest", "maybe"], MULTI, FLAGS) == ["--exclude-from-latest", "maybe"]


def test_option_names_found_in_the_app():
    multi, flags = option_names(typer.main.get_command(app))
    for name in ("--target-regions", "--tags", "--data-snapshots", "--data-snapshot-luns", "--data-vhds-uris",
                 "--data-vhds-luns", "--disallowed-disk-types", "--data-disk-sources"):
        assert name in multi
    assert flags == {"--exclude-from-latest"}
    assert "--resource-group" not in multi and "-g" not in multi


def test_no_option_is_multi_value_in_one_command_and_single_in_another():
    """expand_argv works on names app-wide; that is only sound if they agree."""
    from galley.cli.argv import walk

    multi, _ = option_names(typer.main.get_command(app))
    for command in walk(typer.main.get_command(app)):
        for param in command.params:
            if param.param_type_name == "option" and set(param.opts) & multi:
                assert param.multiple, f"{command.name}: {param.opts}"


# -- body building -----------------------------------------------------------------------


def test_target_region_parsing():
    assert image_version.target_region("eastus=1=standard_zrs") == {
        "name": "eastus", "regionalReplicaCount": 1, "storageAccountType": "standard_zrs"}
    assert image_version.target_region("westcentralus") == {"name": "westcentralus"}
    assert image_version.target_region("southcentralus=2") == {"name": "southcentralus", "regionalReplicaCount": 2}
    assert image_version.target_region("eastus==Premium_LRS") == {"name": "eastus", "storageAccountType": "Premium_LRS"}
    for bad in ("eastus=x", "eastus=0", "=1", "a=1=b=c"):
        with pytest.raises(common.UsageError):
            image_version.target_region(bad)
    assert image_version.target_regions(["a b=2"]) == [{"name": "a"}, {"name": "b", "regionalReplicaCount": 2}]
    assert image_version.target_regions(None) is None


def test_storage_profile_from_managed_image():
    image_id = f"/subscriptions/{SUB}/resourceGroups/MyResourceGroup/providers/Microsoft.Compute/virtualMachines/myVM"
    assert image_version.storage_profile(SUB, "rg", managed_image=image_id) == {"source": {"id": image_id}}
    # a bare name is an image in the resource group
    assert image_version.storage_profile(SUB, "rg", managed_image="img") == {
        "source": {"id": f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/images/img"}}


def test_storage_profile_from_snapshots():
    profile = image_version.storage_profile(
        SUB, "rg", os_snapshot=SNAPSHOT, data_snapshots=[DISK, SNAPSHOT + "2"], data_snapshot_luns=[1, 3])
    assert profile == {
        "osDiskImage": {"source": {"id": SNAPSHOT}},
        "dataDiskImages": [{"lun": 1, "source": {"id": DISK}}, {"lun": 3, "source": {"id": SNAPSHOT + "2"}}],
    }


def test_storage_profile_from_vhds():
    account = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Storage/storageAccounts/sa"
    profile = image_version.storage_profile(
        SUB, "rg", os_vhd_uri="https://sa/os.vhd", os_vhd_storage_account="sa",
        data_vhds_uris=["https://sa/d0.vhd", "https://sa/d1.vhd"], data_vhds_sa=account)
    assert profile == {
        "osDiskImage": {"source": {"uri": "https://sa/os.vhd", "storageAccountId": account}},
        "dataDiskImages": [
            {"lun": 0, "source": {"uri": "https://sa/d0.vhd", "storageAccountId": account}},
            {"lun": 1, "source": {"uri": "https://sa/d1.vhd", "storageAccountId": account}},
        ],
    }


@pytest.mark.parametrize("kwargs", [
    {},  # no OS source
    {"managed_image": "a", "os_snapshot": "b"},  # two OS sources
    {"os_vhd_uri": "https://x/os.vhd"},  # VHD without storage account
    {"os_snapshot": "s", "data_snapshots": ["a", "b"], "data_snapshot_luns": [0]},  # count mismatch
    {"os_snapshot": "s", "data_snapshots": ["a", "b"], "data_snapshot_luns": [0, 0]},  # duplicate LUN
    {"os_snapshot": "s", "data_vhds_uris": ["https://x/d.vhd"]},  # VHD without storage account
])
def test_storage_profile_usage_errors(kwargs):
    with pytest.raises(common.UsageError):
        image_version.storage_profile(SUB, "rg", **kwargs)


# -- a fake server behind httpx.MockTransport ----------------------------------------------------


class FakeArm:
    """Answers requests from a {(method, path): response} table and records them."""

    def __init__(self, routes):
        self.routes = routes
        self.requests: list[httpx.Request] = []
        self.sleeps: list[float] = []

    def handler(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        key = (request.method, request.url.path)
        answer = self.routes.get(key)
        if answer is None:
            return httpx.Response(404, json={"error": {"code": "NotRouted", "message": f"{key}"}})
        if isinstance(answer, list):  # successive answers
            answer = answer.pop(0) if len(answer) > 1 else answer[0]
        if isinstance(answer, Exception):
            raise answer
        return answer

    def client(self, base_url: str) -> ArmClient:
        return ArmClient(base_url, transport=httpx.MockTransport(self.handler), sleep=self.sleeps.append)

    def bodies(self, method: str) -> list:
        return [json.loads(r.content) for r in self.requests if r.method == method]


@pytest.fixture
def fake(monkeypatch):
    def install(routes):
        server = FakeArm(routes)
        monkeypatch.setattr(common, "make_client", server.client)
        return server
    return install


def run(*args: str):
    result = CliRunner().invoke(app, preprocess(list(args)))
    return result


def ok(body, status=200, headers=None):
    return httpx.Response(status, json=body, headers=headers)


GALLERY_JSON = {"id": GALLERY, "name": "g", "location": "eastus", "properties": {"provisioningState": "Succeeded"}}
VERSION_JSON = {"id": VERSION, "name": "1.0.0", "location": "eastus",
                "properties": {"provisioningState": "Succeeded",
                               "publishingProfile": {"targetRegions": [{"name": "eastus", "regionalReplicaCount": 2}]}}}


def test_image_version_create_sends_az_body(fake):
    server = fake({
        ("GET", GALLERY): ok(GALLERY_JSON),
        ("PUT", VERSION): ok({**VERSION_JSON, "properties": {"provisioningState": "Creating"}}, 201,
                             {"Azure-AsyncOperation": "http://srv/ops/1", "Retry-After": "3"}),
        ("GET", "/ops/1"): [ok({"status": "InProgress"}, headers={"Retry-After": "2"}), ok({"status": "Succeeded"})],
        ("GET", VERSION): ok(VERSION_JSON),
    })
    result = run("sig", "image-version", "create", "--resource-group", "rg", "--gallery-name", "g",
                 "--gallery-image-definition", "def", "--gallery-image-version", "1.0.0",
                 "--target-regions", "westcentralus", "southcentralus=1", "eastus=1=standard_zrs",
                 "--replica-count", "2", "--exclude-from-latest", "--end-of-life-date", "2030-01-01",
                 "--managed-image", "/subscriptions/x/resourceGroups/r/providers/Microsoft.Compute/virtualMachines/vm",
                 "--tags", "a=1", "b", "--server", "http://srv")
    assert result.exit_code == 0, result.output
    [put] = [r for r in server.requests if r.method == "PUT"]
    assert put.url.params["api-version"] == API_GALLERY
    assert json.loads(put.content) == {
        "location": "eastus",
        "properties": {
            "publishingProfile": {
                "targetRegions": [{"name": "westcentralus"}, {"name": "southcentralus", "regionalReplicaCount": 1},
                                  {"name": "eastus", "regionalReplicaCount": 1, "storageAccountType": "standard_zrs"}],
                "replicaCount": 2, "excludeFromLatest": True, "endOfLifeDate": "2030-01-01",
            },
            "storageProfile": {"source": {"id": "/subscriptions/x/resourceGroups/r/providers/Microsoft.Compute/virtualMachines/vm"}},
        },
        "tags": {"a": "1", "b": ""},
    }
    assert server.sleeps == [3.0, 2.0]  # Retry-After of the PUT, then of the poll
    assert json.loads(result.stdout) == VERSION_JSON  # the resource, fetched after the operation


def test_image_version_create_from_snapshots_defaults_target_region(fake):
    server = fake({("PUT", VERSION): ok(VERSION_JSON, 201)})
    result = run("sig", "image-version", "create", "-g", "rg", "-r", "g", "-i", "def", "-e", "1.0.0",
                 "-l", "westus2", "--os-snapshot", SNAPSHOT, "--data-snapshots", DISK, SNAPSHOT,
                 "--data-snapshot-luns", "0", "1", "--storage-account-type", "premium_lrs")
    assert result.exit_code == 0, result.output
    [body] = server.bodies("PUT")
    assert body["location"] == "westus2"
    assert body["properties"]["publishingProfile"] == {"targetRegions": [{"name": "westus2"}],
                                                       "storageAccountType": "premium_lrs"}
    assert body["properties"]["storageProfile"] == {
        "osDiskImage": {"source": {"id": SNAPSHOT}},
        "dataDiskImages": [{"lun": 0, "source": {"id": DISK}}, {"lun": 1, "source": {"id": SNAPSHOT}}],
    }


def test_image_version_update_patches_publishing_profile(fake):
    server = fake({("PATCH", VERSION): ok(VERSION_JSON)})
    result = run("sig", "image-version", "update", "-g", "rg", "-r", "g", "-i", "def", "-e", "1.0.0",
                 "--exclude-from-latest", "false", "--target-regions", "eastus=2", "westus2")
    assert result.exit_code == 0, result.output
    assert server.bodies("PATCH") == [{"properties": {"publishingProfile": {
        "targetRegions": [{"name": "eastus", "regionalReplicaCount": 2}, {"name": "westus2"}],
        "excludeFromLatest": False}}}]


def test_image_version_show_latest_and_expand(fake):
    server = fake({("GET", f"{DEFINITION}/latestVersion"): ok(VERSION_JSON), ("GET", VERSION): ok(VERSION_JSON)})
    assert run("sig", "image-version", "show", "-g", "rg", "-r", "g", "-i", "def", "--latest", "-l", "eastus").exit_code == 0
    assert run("sig", "image-version", "show", "-g", "rg", "-r", "g", "-i", "def", "-e", "1.0.0",
               "--expand", "ReplicationStatus").exit_code == 0
    latest, plain = server.requests
    assert latest.url.params["region"] == "eastus" and latest.url.params["api-version"] == API_GALLERY
    assert plain.url.params["$expand"] == "ReplicationStatus"
    assert run("sig", "image-version", "show", "-g", "rg", "-r", "g", "-i", "def").exit_code == 2


def test_image_definition_create_body(fake):
    server = fake({("GET", GALLERY): ok(GALLERY_JSON), ("PUT", DEFINITION): ok({"id": DEFINITION}, 201)})
    result = run("sig", "image-definition", "create", "--resource-group", "rg", "--gallery-name", "g",
                 "--gallery-image-definition", "def", "--publisher", "myPublisher", "--offer", "myOffer",
                 "--sku", "mySKU", "--os-type", "linux", "--os-state", "specialized", "--hyper-v-generation", "v2",
                 "--minimum-cpu-core", "2", "--maximum-memory", "64", "--disallowed-disk-types", "Standard_LRS",
                 "Premium_LRS", "--plan-name", "p", "--plan-product", "pp", "--plan-publisher", "ppub")
    assert result.exit_code == 0, result.output
    [body] = server.bodies("PUT")
    assert body == {"location": "eastus", "properties": {
        "identifier": {"publisher": "myPublisher", "offer": "myOffer", "sku": "mySKU"},
        "osType": "Linux", "osState": "Specialized", "hyperVGeneration": "V2",
        "recommended": {"vCPUs": {"min": 2}, "memory": {"max": 64}},
        "disallowed": {"diskTypes": ["Standard_LRS", "Premium_LRS"]},
        "purchasePlan": {"name": "p", "product": "pp", "publisher": "ppub"},
    }}


def test_image_create_picks_snapshot_or_managed_disk(fake):
    image = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/images/img"
    server = fake({("GET", RG_PATH): ok({"location": "eastus"}), ("PUT", image): ok({"id": image}, 201)})
    result = run("image", "create", "-g", "rg", "-n", "img", "--source", SNAPSHOT, "--os-type", "Linux",
                 "--data-disk-sources", DISK, SNAPSHOT)
    assert result.exit_code == 0, result.output
    [body] = server.bodies("PUT")
    assert body["properties"]["storageProfile"] == {
        "osDisk": {"osType": "Linux", "osState": "Generalized", "snapshot": {"id": SNAPSHOT}},
        "dataDisks": [{"lun": 0, "managedDisk": {"id": DISK}}, {"lun": 1, "snapshot": {"id": SNAPSHOT}}],
    }


def test_disk_and_snapshot_creation_data(fake):
    snap = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/snapshots/s2"
    server = fake({("GET", RG_PATH): ok({"location": "eastus"}), ("PUT", DISK): ok({"id": DISK}),
                   ("PUT", snap): ok({"id": snap})})
    assert run("disk", "create", "-g", "rg", "-n", "d1", "--size-gb", "4", "--sku", "Premium_LRS").exit_code == 0
    assert run("snapshot", "create", "-g", "rg", "-n", "s2", "--source", DISK, "-l", "westus2").exit_code == 0
    disk_body, snap_body = server.bodies("PUT")
    assert disk_body == {"location": "eastus", "sku": {"name": "Premium_LRS"},
                         "properties": {"creationData": {"createOption": "Empty"}, "diskSizeGB": 4}}
    assert snap_body == {"location": "westus2",
                         "properties": {"creationData": {"createOption": "Copy", "sourceResourceId": DISK}}}
    assert run("disk", "create", "-g", "rg", "-n", "d1").exit_code == 2  # neither --size-gb nor --source


# -- errors, paging, operations ------------------------------------------------------------------


def test_arm_error_is_printed_with_exit_code_1(fake):
    fake({("GET", GALLERY): ok({"error": {"code": "ResourceNotFound", "message": "Gallery g was not found.",
                                          "target": "galleryName"}}, 404)})
    result = run("sig", "show", "-g", "rg", "-r", "g")
    assert result.exit_code == 1
    assert result.stderr.splitlines() == ["ERROR: (ResourceNotFound) Gallery g was not found.", "Target: galleryName"]
    assert result.stdout == ""


def test_non_arm_error_body_still_reported(fake):
    fake({("GET", GALLERY): httpx.Response(502, text="bad gateway")})
    result = run("sig", "show", "-g", "rg", "-r", "g")
    assert result.exit_code == 1
    assert result.stderr.startswith("ERROR: (BadGateway)")


def test_connection_refused(fake):
    fake({("GET", GALLERY): httpx.ConnectError("[Errno 111] Connection refused")})
    result = run("sig", "show", "-g", "rg", "-r", "g", "--server", "http://127.0.0.1:1")
    assert result.exit_code == 1
    assert "ERROR: (ConnectionError) cannot connect to the Galley server at http://127.0.0.1:1" in result.stderr


def test_connection_refused_for_real():
    client = ArmClient("http://127.0.0.1:9")  # discard port: nothing listens
    with pytest.raises(ArmError) as info:
        client.get("/x", "1")
    assert info.value.code == "ConnectionError"


def test_failed_operation_reports_its_error(fake):
    fake({
        ("GET", GALLERY): ok(GALLERY_JSON),
        ("PUT", VERSION): ok(VERSION_JSON, 201, {"Azure-AsyncOperation": "http://srv/ops/2"}),
        ("GET", "/ops/2"): ok({"status": "Failed", "error": {"code": "ReplicationFailed", "message": "disk full"}}),
    })
    result = run("sig", "image-version", "create", "-g", "rg", "-r", "g", "-i", "def", "-e", "1.0.0",
                 "--os-snapshot", SNAPSHOT)
    assert result.exit_code == 1
    assert result.stderr.strip() == "ERROR: (ReplicationFailed) disk full"


def test_no_wait_prints_initial_body_without_polling(fake):
    server = fake({("GET", GALLERY): ok(GALLERY_JSON),
                   ("PUT", VERSION): ok(VERSION_JSON, 201, {"Azure-AsyncOperation": "http://srv/ops/3"})})
    result = run("sig", "image-version", "create", "-g", "rg", "-r", "g", "-i", "def", "-e", "1.0.0",
                 "--os-snapshot", SNAPSHOT, "--no-wait")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == VERSION_JSON
    assert [r.url.path for r in server.requests] == [GALLERY, VERSION]


def test_delete_waits_and_prints_nothing(fake):
    server = fake({("DELETE", GALLERY): httpx.Response(202, headers={"Azure-AsyncOperation": "http://srv/ops/4"}),
                   ("GET", "/ops/4"): [ok({"status": "InProgress"}), ok({"status": "Succeeded"})]})
    result = run("sig", "delete", "-g", "rg", "-r", "g")
    assert result.exit_code == 0 and result.stdout == ""
    assert server.sleeps == [1.0, 1.0]  # default wait without Retry-After


def test_group_delete_location_polling_and_confirmation(fake):
    server = fake({("DELETE", RG_PATH): httpx.Response(202, headers={"Location": "http://srv/ops/5"}),
                   ("GET", "/ops/5"): [httpx.Response(202), httpx.Response(200)]})
    assert run("group", "delete", "-n", "rg").exit_code == 1  # no answer to the prompt: aborted
    assert server.requests == []
    assert run("group", "delete", "-n", "rg", "--yes").exit_code == 0
    assert [r.method for r in server.requests] == ["DELETE", "GET", "GET"]


def test_put_without_operation_header_polls_provisioning_state(fake):
    server = fake({
        ("PUT", RG_PATH): ok({"name": "rg", "location": "eastus", "properties": {"provisioningState": "Creating"}}, 201),
        ("GET", RG_PATH): [ok({"name": "rg", "properties": {"provisioningState": "Creating"}}),
                           ok({"name": "rg", "location": "eastus", "properties": {"provisioningState": "Succeeded"}})],
    })
    result = run("group", "create", "-n", "rg", "-l", "eastus")
    assert result.exit_code == 0
    assert server.bodies("PUT") == [{"location": "eastus", "tags": {}}]
    assert json.loads(result.stdout)["properties"]["provisioningState"] == "Succeeded"


def test_group_exists(fake):
    fake({("GET", RG_PATH): ok({"name": "rg"})})
    assert run("group", "exists", "-n", "rg").stdout.strip() == "true"
    assert run("group", "exists", "-n", "other").stdout.strip() == "false"


def test_list_follows_next_link_and_merges_pages(fake, monkeypatch):
    collection = f"/subscriptions/{SUB}/providers/Microsoft.Compute/galleries"
    server = fake({
        ("GET", collection): [
            ok({"value": [{"name": "a"}], "nextLink": f"http://srv{collection}?api-version={API_GALLERY}&$skiptoken=1"}),
            ok({"value": [{"name": "b"}]}),
        ],
    })
    monkeypatch.setenv("GALLEY_URL", "http://srv")
    result = run("sig", "list")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == [{"name": "a"}, {"name": "b"}]
    assert server.requests[1].url.params["$skiptoken"] == "1"
    assert server.requests[1].url.params.get_list("api-version") == [API_GALLERY]


def test_global_options_before_or_after_the_command(fake, monkeypatch):
    server = fake({("GET", "/subscriptions/s1/resourcegroups"): ok({"value": []}),
                   ("GET", "/subscriptions/s2/resourcegroups"): ok({"value": []})})
    monkeypatch.setenv("GALLEY_SUBSCRIPTION", "s1")
    assert run("group", "list").exit_code == 0
    assert run("--subscription", "s2", "group", "list").exit_code == 0
    assert [r.url.path for r in server.requests] == ["/subscriptions/s1/resourcegroups", "/subscriptions/s2/resourcegroups"]


def test_table_output_is_plain_when_piped(fake):
    fake({("GET", VERSION): ok(VERSION_JSON)})
    result = run("sig", "image-version", "show", "-g", "rg", "-r", "g", "-i", "def", "-e", "1.0.0", "-o", "table")
    assert result.exit_code == 0
    assert "\x1b[" not in result.stdout
    header, _, row = result.stdout.splitlines()[:3]
    assert header.split() == ["Name", "Location", "ProvisioningState", "ExcludeFromLatest", "EndOfLife", "TargetRegions"]
    assert row.split() == ["1.0.0", "eastus", "Succeeded", "eastus=2"]


def test_serve_sets_environment_and_calls_server(monkeypatch):
    calls = []
    module = types.ModuleType("galley.api.server")
    module.run = lambda **kwargs: calls.append(kwargs)
    monkeypatch.setitem(sys.modules, "galley.api.server", module)
    for name in ("GALLEY_HOME", "GALLEY_DATABASE_URL", "GALLEY_REGIONS"):
        # setenv first so that monkeypatch restores the variable after `serve` has set it.
        monkeypatch.setenv(name, "")
        monkeypatch.delenv(name)
    result = run("serve", "--port", "9000", "--home", "/tmp/g", "--regions", "eastus, westus2", "--no-worker")
    assert result.exit_code == 0, result.output
    assert calls == [{"host": "127.0.0.1", "port": 9000, "worker": False, "http": False, "tls_cert": None,
                      "tls_key": None, "tls_names": (), "public_url": None, "access_log": True,
                      "roles": frozenset({"api"}), "log_format": "text", "drain_seconds": 0.0}]
    assert os.environ["GALLEY_HOME"] == "/tmp/g" and os.environ["GALLEY_REGIONS"] == "eastus,westus2"
    assert "GALLEY_DATABASE_URL" not in os.environ
