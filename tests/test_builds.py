"""Image template runs end to end: a server builds real images from the Debian platform image,
validates them booted under QEMU and distributes them, driven through azure-mgmt-imagebuilder.

How we know:
- what a build did is checked inside the result: by booting it (inVMValidations, and
  `galley vm boot-test` on the distributed image) and by reading its files with debugfs;
- distributed artifacts are checked through the API (replication status, run outputs) and their
  chunks compared with each other (the VHD, the version and the managed image hold one image);
- cancel and restart leave nothing behind: no mount, loop device or process in the build folder.
"""
from __future__ import annotations

import functools
import hashlib
import http.server
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

from . import admin_http as httpx
import pytest
from azure.core.exceptions import HttpResponseError

from galley.jobs.build import workspace

from .debian_base import debian_base_image
from .test_builder_pipeline import host_addresses
from .sdk_helpers import RG, create_definition, create_gallery, make_group, quick_polls, resource_id
from .servers import SUBSCRIPTION, ProcessServer, ThreadServer
from .conftest import sdk_client
from .test_image_templates import API, builder_client, template_url

pytestmark = pytest.mark.slow

PLATFORM = {"type": "PlatformImage", "publisher": "Debian", "offer": "debian-12", "sku": "12", "version": "latest"}
PLATFORM_VERSION = "0.20261122.1"
PARTITION_OFFSET = 1024 * 1024
ACTIVE = ("Running", "Canceling")


def register_platform_image(url: str, image: Path) -> None:
    with open(image, "rb") as body:
        response = httpx.put(f"{url}/providers/Galley.Platform/publishers/Debian/offers/debian-12/skus/12/"
                             f"versions/{PLATFORM_VERSION}", params={"osType": "Linux", "format": "raw"},
                             content=body, timeout=600)
    assert response.status_code == 201, response.text


def prepare(url: str, image: Path) -> None:
    register_platform_image(url, image)
    compute = quick_polls(sdk_client(url))
    make_group(url)
    create_gallery(compute)
    create_definition(compute)
    create_definition(compute, name="def2", sku="sku2")
    create_definition(compute, name="def3", sku="sku3")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    image = debian_base_image()
    with ThreadServer(tmp_path_factory.mktemp("builds")) as server:
        prepare(server.url, image)
        server.builder = builder_client(server.url)
        yield server


def definition_id(name: str = "def") -> str:
    return resource_id(f"galleries/gal/images/{name}")


def template_body(customize: list, distribute: list, **properties) -> dict:
    return {"location": "eastus", "properties": {"source": PLATFORM, "customize": customize,
                                                 "distribute": distribute, **properties}}


def shared_image(name: str = "sig", definition: str = "def", regions=("eastus",)) -> dict:
    return {"type": "SharedImage", "galleryImageId": definition_id(definition), "runOutputName": name,
            "replicationRegions": list(regions)}


def create_template(url: str, name: str, body: dict) -> None:
    response = httpx.put(template_url(url, name), params={"api-version": API}, json=body)
    assert response.status_code == 201, response.text
    deadline = time.time() + 15
    while get_template(url, name)["properties"]["provisioningState"] != "Succeeded":
        assert time.time() < deadline
        time.sleep(0.1)


def get_template(url: str, name: str) -> dict:
    return httpx.get(template_url(url, name), params={"api-version": API}).json()


def start_run(url: str, name: str) -> None:
    response = httpx.post(f"{template_url(url, name)}/run", params={"api-version": API})
    assert response.status_code == 202, response.text


def wait_run(url: str, name: str, timeout: float = 600) -> tuple[dict, list[str]]:
    """The final lastRunStatus, and every runSubState seen on the way."""
    seen: list[str] = []
    deadline = time.time() + timeout
    while True:
        status = get_template(url, name)["properties"]["lastRunStatus"]
        sub_state = status.get("runSubState")
        if sub_state and (not seen or seen[-1] != sub_state):
            seen.append(sub_state)
        if status["runState"] not in ACTIVE:
            return status, seen
        assert time.time() < deadline, f"run of {name} still {status} after {timeout} s"
        time.sleep(0.2)


def build_log(url: str, name: str) -> str:
    response = httpx.get(f"{template_url(url, name)}/logs", params={"api-version": API})
    assert response.status_code == 200, response.text
    return response.text


def wait_for_log(url: str, name: str, text: str, timeout: float = 300) -> None:
    deadline = time.time() + timeout
    while True:
        response = httpx.get(f"{template_url(url, name)}/logs", params={"api-version": API})
        if response.status_code == 200 and text in response.text:
            return
        assert time.time() < deadline, f"'{text}' never appeared in the log of {name}"
        time.sleep(0.3)


def download_raw(url: str, artifact_id: str, out: Path, region: str | None = None) -> Path:
    params = {"api-version": "2026-03-03", "format": "raw", **({"region": region} if region else {})}
    with httpx.stream("GET", f"{url}{artifact_id}/download", params=params, timeout=600) as response:
        assert response.status_code == 200
        with open(out, "wb") as f:
            for piece in response.iter_bytes(4 * 1024 * 1024):
                f.write(piece)
    return out


def read_in_image(image: Path, path: str) -> str | None:
    done = subprocess.run(["debugfs", "-R", f"cat {path}", f"{image}?offset={PARTITION_OFFSET}"],
                          capture_output=True, text=True)
    return None if "File not found" in done.stderr else done.stdout


def leftovers(home: Path) -> list[str]:
    """Mounts, loop devices and processes that still use a build folder under `home`."""
    builds = str((home / workspace.BUILDS).resolve())
    found = [line.split()[4] for line in Path("/proc/self/mountinfo").read_text().splitlines()
             if line.split()[4].startswith(builds)]
    for backing in Path("/sys/block").glob("loop*/loop/backing_file"):
        if backing.read_text().startswith(builds):
            found.append(str(backing))
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.readlink(entry / "root").startswith(builds) or os.readlink(entry / "cwd").startswith(builds):
                    found.append(f"process {entry.name}")
            except OSError:
                continue
    return found


def _cmdline(path: Path) -> str:
    try:
        return path.read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def contents_of(server, resource_key: str) -> list:
    repo = server.app.state.content.repo
    return sorted(repo.manifest(repo.disk_contents(resource_key.lower())[-1]).items())


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


class ScriptServer:
    """Files served over plain HTTP on 127.0.0.1, for scriptUri and sourceUri."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        handler = functools.partial(_QuietHandler, directory=str(folder))
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def add(self, name: str, data: bytes) -> None:
        (self.folder / name).write_bytes(data)

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{name}"

    def sha256(self, name: str) -> str:
        return hashlib.sha256((self.folder / name).read_bytes()).hexdigest()


@pytest.fixture
def script_server(tmp_path):
    folder = tmp_path / "served"
    folder.mkdir()
    server = ScriptServer(folder)
    yield server
    server.httpd.shutdown()


# ---- the whole path --------------------------------------------------------------------------------

VALIDATION = [
    "test \"$(cat /etc/galley-proof)\" = 'built by galley'",
    "test \"$(cat /etc/app.conf)\" = 'setting=1'",
    "! ls /etc/ssh/ssh_host_* 2>/dev/null",
    "! getent passwd buildtemp",
    "test ! -e /root/.bash_history",
    "test \"$(cat /etc/fetched-by-uri)\" = 'from a script'",
    "echo validated-inside-the-guest",
]


def test_a_run_customizes_validates_and_distributes(env, tmp_path, script_server):
    url = env.url
    script_server.add("setup.sh", b"#!/bin/sh\necho 'from a script' > /etc/fetched-by-uri\n")
    storage = httpx.put(f"{url}/subscriptions/{SUBSCRIPTION}/resourceGroups/{RG}/providers/Microsoft.Storage/"
                        "storageAccounts/buildfiles", params={"api-version": "2023-05-01"},
                        json={"location": "eastus", "sku": {"name": "Standard_LRS"}, "kind": "StorageV2"})
    assert storage.status_code in (200, 201, 202), storage.text
    time.sleep(1)
    uploaded = httpx.put(f"{url}/blob/buildfiles/files/app.conf", params={"format": "raw"}, content=b"setting=1\n")
    assert uploaded.status_code in (200, 201), uploaded.text
    managed_id = resource_id("images/built")
    body = template_body(
        customize=[
            {"type": "Shell", "name": "proof", "inline": [
                "echo 'built by galley' > /etc/galley-proof",
                "useradd -m buildtemp", "echo 'history' > /root/.bash_history", "echo customizer-ran"]},
            {"type": "File", "name": "conf", "sourceUri": "https://buildfiles.blob.core.windows.net/files/app.conf",
             "destination": "/tmp/app.conf"},
            {"type": "Shell", "name": "place", "inline": ["mv /tmp/app.conf /etc/app.conf"]},
            {"type": "Shell", "name": "fetched", "scriptUri": script_server.url("setup.sh"),
             "sha256Checksum": script_server.sha256("setup.sh")}],
        distribute=[shared_image(regions=("eastus", "westus2")),
                    {**shared_image("by-source", definition="def3"), "versioning": {"scheme": "Source"}},
                    {"type": "ManagedImage", "imageId": managed_id, "location": "westus2", "runOutputName": "managed",
                     "artifactTags": {"team": "platform"}},
                    {"type": "VHD", "runOutputName": "vhd"}],
        validate={"inVMValidations": [{"type": "Shell", "name": "inside", "inline": VALIDATION}]})
    templates = env.builder.virtual_machine_image_templates
    templates.begin_create_or_update(RG, "full", body).result()
    started = time.time()
    templates.begin_run(RG, "full").result(timeout=600)
    status, seen = wait_run(url, "full", timeout=60)
    print(f"\nrun took {time.time() - started:.1f} s; sub-states seen: {seen}")
    assert status["runState"] == "Succeeded", (status, build_log(url, "full")[-3000:])

    log = build_log(url, "full")
    for sub_state in ("Building", "Customizing", "Validating", "Distributing"):
        assert f"runSubState {sub_state}" in log
    assert "[proof] customizer-ran" in log and "validated-inside-the-guest" in log
    assert "platform image Debian:debian-12:12:" + PLATFORM_VERSION in log
    assert get_template(url, "full")["properties"]["source"]["exactVersion"] == PLATFORM_VERSION

    outputs = {o.name: o for o in templates.list_run_outputs(RG, "full")}
    version_id = definition_id() + "/versions/1.0.0"
    assert outputs["sig"].artifact_id == version_id and outputs["sig"].provisioning_state == "Succeeded"
    assert outputs["by-source"].artifact_id == definition_id("def3") + "/versions/" + PLATFORM_VERSION
    assert outputs["managed"].artifact_id == managed_id
    assert outputs["vhd"].artifact_uri.startswith("https://galleyvhd") and outputs["vhd"].artifact_uri.endswith(".vhd")

    compute = sdk_client(url)
    version = compute.gallery_image_versions.get(RG, "gal", "def", "1.0.0", expand="ReplicationStatus")
    assert version.replication_status.aggregated_state == "Completed"
    assert {s.region for s in version.replication_status.summary} == {"eastus", "westus2"}
    assert compute.images.get(RG, "built").tags == {"team": "platform"}
    # The three artifacts hold the one built image: the same chunks.
    vhd_account, vhd_path = outputs["vhd"].artifact_uri.removeprefix("https://").split(".blob.core.windows.net/")
    listed = httpx.get(f"{url}/blob/{vhd_account}/{vhd_path.split('/')[0]}").json()
    assert [b["name"] for b in listed["value"]] == [vhd_path.split("/", 1)[1]]
    assert contents_of(env, version_id) == contents_of(env, managed_id)
    # Staging snapshots are gone; the staging group keeps only the VHD's storage account.
    staging = get_template(url, "full")["properties"]["exactStagingResourceGroup"]
    snapshots = httpx.get(f"{url}{staging}/providers/Microsoft.Compute/snapshots", params={"api-version": "2026-03-02"})
    assert snapshots.json()["value"] == []
    assert leftovers(env.app.state.settings.home) == []
    assert sorted(p.name for p in workspace.run_dir(env.app.state.settings.home, template_id("full")).iterdir()) == \
        ["customization.log"]

    # The distributed version boots from its westus2 replica, on its own, through the CLI.
    script = tmp_path / "check.sh"
    script.write_text("\n".join(VALIDATION) + "\n")
    done = subprocess.run([sys.executable, "-m", "galley.cli.main", "--server", url, "--subscription", SUBSCRIPTION, "vm", "boot-test", version_id,
                           "--script", str(script), "--location", "westus2"],
                          capture_output=True, text=True, timeout=600,
                          env={**os.environ, "GALLEY_HOME": str(env.home), "GALLEY_CLI_HOME": str(tmp_path / "cli")})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "validated-inside-the-guest" in done.stdout

    # Deleting the template deletes its VHD (and staging group), not its other outputs.
    templates.begin_delete(RG, "full").result()
    assert httpx.get(f"{url}{staging}", params={"api-version": "2024-11-01"}).status_code == 404
    assert compute.images.get(RG, "built").id.lower() == managed_id.lower()


def template_id(name: str) -> str:
    return f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RG}/providers/Microsoft.VirtualMachineImages/imageTemplates/{name}"


def test_two_templates_build_at_once_and_versions_count_up(env, tmp_path):
    url = env.url
    host_marker = tmp_path / "host-file"
    host_marker.write_text("untouched\n")
    for name in ("left", "right"):
        create_template(url, name, template_body(
            customize=[{"type": "Shell", "name": "mark", "inline": [
                f"echo {name} > /etc/built-by", "sleep 3",
                f"echo pwned > {host_marker} || true", f"echo {name} >> /etc/built-by"]}],
            distribute=[shared_image(definition="def2")]))
    for name in ("left", "right"):
        start_run(url, name)
    results = {name: wait_run(url, name)[0] for name in ("left", "right")}
    assert all(r["runState"] == "Succeeded" for r in results.values()), results
    assert host_marker.read_text() == "untouched\n"
    compute = sdk_client(url)
    assert sorted(v.name for v in compute.gallery_image_versions.list_by_gallery_image(RG, "gal", "def2")) == \
        ["1.0.0", "1.0.1"]
    for name in ("left", "right"):
        version_id = env.builder.virtual_machine_image_templates.get_run_output(RG, name, "sig").artifact_id
        raw = download_raw(url, version_id, tmp_path / f"{name}.raw")
        assert read_in_image(raw, "/etc/built-by") == f"{name}\n{name}\n"
        assert read_in_image(raw, "/etc/machine-id") == ""  # generalized (a boot would make a new one)
        raw.unlink()
    # A second run of one template takes the next patch number.
    start_run(url, "left")
    assert wait_run(url, "left")[0]["runState"] == "Succeeded"
    assert env.builder.virtual_machine_image_templates.get_run_output(RG, "left", "sig").artifact_id.endswith("/1.0.2")


@pytest.fixture(scope="module")
def postgres_env(tmp_path_factory, postgres):
    image = debian_base_image()
    url = postgres.create_database(f"galley_builds_{uuid.uuid4().hex[:8]}")
    with ThreadServer(tmp_path_factory.mktemp("builds-pg"), database_url=url) as server:
        prepare(server.url, image)
        server.builder = builder_client(server.url)
        yield server


@pytest.mark.postgres
def test_a_run_on_postgresql(postgres_env):
    create_template(postgres_env.url, "pg", template_body(
        customize=[{"type": "Shell", "name": "mark", "inline": ["echo pg > /etc/built-on"]}],
        distribute=[shared_image(), shared_image("again", definition="def2")]))
    start_run(postgres_env.url, "pg")
    status, _ = wait_run(postgres_env.url, "pg")
    assert status["runState"] == "Succeeded", status
    outputs = {o.name: o.artifact_id for o in postgres_env.builder.virtual_machine_image_templates.list_run_outputs(RG, "pg")}
    assert outputs == {"sig": definition_id() + "/versions/1.0.0", "again": definition_id("def2") + "/versions/1.0.0"}


def test_a_failing_customizer_fails_the_run_with_its_exit_code(env):
    create_template(env.url, "failing", template_body(
        customize=[{"type": "Shell", "name": "breaks", "inline": ["echo about to fail", "exit 7"]},
                   {"type": "Shell", "name": "never", "inline": ["echo never-runs"]}],
        distribute=[shared_image()]))
    poller = env.builder.virtual_machine_image_templates.begin_run(RG, "failing")
    with pytest.raises(HttpResponseError) as raised:  # the run's operation fails with the run, as Azure's
        poller.result(timeout=300)
    assert "exit code 7" in str(raised.value)
    status, _ = wait_run(env.url, "failing")
    assert status["runState"] == "Failed"
    assert "'breaks'" in status["message"] and "exit code 7" in status["message"]
    log = build_log(env.url, "failing")
    assert "[breaks] about to fail" in log and "never-runs" not in log
    assert list(env.builder.virtual_machine_image_templates.list_run_outputs(RG, "failing")) == []
    assert leftovers(env.app.state.settings.home) == []


def test_cancel_stops_the_build_and_delete_waits_for_it(env):
    url = env.url
    create_template(url, "long", template_body(
        customize=[{"type": "Shell", "name": "slow", "inline": ["echo sleeping", "sleep 631"]}],
        distribute=[shared_image()]))
    run = httpx.post(f"{template_url(url, 'long')}/run", params={"api-version": API})
    assert run.status_code == 202
    wait_for_log(url, "long", "[slow] sleeping")
    refused = httpx.delete(template_url(url, "long"), params={"api-version": API})
    assert refused.status_code == 409 and "cancel" in refused.json()["error"]["message"].lower()
    cancel = httpx.post(f"{template_url(url, 'long')}/cancel", params={"api-version": API})
    assert cancel.status_code == 202
    status, _ = wait_run(url, "long", timeout=60)  # uncancelled, the customizer sleeps 631 s
    assert status["runState"] == "Canceled", status
    assert httpx.get(cancel.headers["azure-asyncoperation"]).json()["status"] == "Succeeded"
    # The run's operation ends just after the run does (when the worker has finished with it).
    deadline = time.time() + 60
    while (run_operation := httpx.get(run.headers["azure-asyncoperation"]).json())["status"] == "InProgress":
        assert time.time() < deadline, f"the run's operation is still InProgress 60 s after the run ended: {run_operation}"
        time.sleep(0.1)
    assert run_operation["status"] == "Canceled", run_operation
    assert leftovers(env.app.state.settings.home) == []
    assert not [p for p in Path("/proc").glob("[0-9]*/cmdline") if _cmdline(p) == "sleep 631"]
    done = httpx.delete(template_url(url, "long"), params={"api-version": API})
    assert done.status_code in (202, 204), done.text  # 204: deleted at once (a quick answer)


def test_a_restart_during_a_build_starts_it_over(tmp_path):
    image = debian_base_image()
    (tmp_path / "home").mkdir()
    server = ProcessServer(tmp_path / "home").start()
    try:
        prepare(server.url, image)
        marker = uuid.uuid4().hex
        create_template(server.url, "restarted", template_body(
            customize=[{"type": "Shell", "name": "slow", "inline": [f"echo started {marker}", "sleep 8"]}],
            distribute=[shared_image()]))
        start_run(server.url, "restarted")
        wait_for_log(server.url, "restarted", f"started {marker}")
        server.kill()
        # The killed server's sandbox is still there (its own process group, a loop device, a mount).
        assert leftovers(tmp_path / "home")
        server.start()
        status, _ = wait_run(server.url, "restarted", timeout=300)
        assert status["runState"] == "Succeeded", (status, build_log(server.url, "restarted")[-2000:])
        log = build_log(server.url, "restarted")
        assert "the server stopped during this run" in log and log.count(f"started {marker}") == 1
        assert leftovers(tmp_path / "home") == []
        # Deleting the template's resource group deletes the staging group made for it as well.
        staging = get_template(server.url, "restarted")["properties"]["exactStagingResourceGroup"]
        assert httpx.get(f"{server.url}{staging}", params={"api-version": "2024-11-01"}).status_code == 200
        deleted = httpx.delete(f"{server.url}/subscriptions/{SUBSCRIPTION}/resourceGroups/{RG}",
                               params={"api-version": "2024-11-01"})
        assert deleted.status_code in (200, 202), deleted.text  # 200: deleted at once (a quick answer)
        deadline = time.time() + 30
        while httpx.get(f"{server.url}{staging}", params={"api-version": "2024-11-01"}).status_code != 404:
            assert time.time() < deadline, "the staging group outlived its template's resource group"
            time.sleep(0.2)
    finally:
        server.stop()


def test_customizers_cannot_reach_the_servers_credentials_keys_or_database(env):
    """A customizer of a real run looks for what would let it act as the server: the
    administrator's credentials.json, the TLS keys, the database (which holds the token signing
    keys) at their real paths, and the API on the host's loopback and its other addresses."""
    home = env.home
    secret = __import__("json").loads((home / "credentials.json").read_text())["clientSecret"]
    port = env.port
    addresses = ["127.0.0.1", "10.0.2.2", *host_addresses()]

    def attempt(what: str, command: str) -> str:
        return f"if {command}; then echo 'REACHED: {what}'; else echo 'blocked: {what}'; fi"

    inline = [
        attempt("credentials.json", f"cat {home}/credentials.json"),
        attempt("the database (signing keys)", f"test -e {home}/galley.db"),
        attempt("the TLS keys", f"ls {home}/tls"),
        attempt("the server home folder", f"ls {home}"),
        attempt("through /proc/1/root", f"cat /proc/1/root{home}/credentials.json"),
        # the pattern is put together at run time, so the script itself does not hold it
        f"half='{secret[:6]}'",
        attempt("the secret anywhere in the sandbox",
                f"grep -rqs --exclude-dir=proc --exclude-dir=sys -e \"$half\"'{secret[6:12]}' / 2>/dev/null"),
        # The sandbox has a network of its own: the API is out of reach on every host address.
        *(attempt(f"the API on {address}", f"timeout 5 bash -c 'exec 3<>/dev/tcp/{address}/{port}'")
          for address in addresses),
        "echo attempts done",
    ]
    create_template(env.url, "snoop", template_body(
        [{"type": "Shell", "name": "snoop", "inline": inline}], [shared_image("snoop", "def3")]))
    start_run(env.url, "snoop")
    status, _ = wait_run(env.url, "snoop")
    log = build_log(env.url, "snoop")
    assert status["runState"] == "Succeeded", (status, log)
    assert "attempts done" in log
    assert "REACHED" not in log, log
    assert log.count("blocked: ") == 6 + len(addresses), log
    assert secret not in log


def test_a_build_acts_as_its_templates_identity(env):
    """The run reads and writes as the template's user-assigned identity: without a role on the
    target gallery it fails naming the identity, the action and the scope; with one it succeeds."""
    identity_url = (f"{env.url}/subscriptions/{SUBSCRIPTION}/resourceGroups/{RG}/providers/"
                    "Microsoft.ManagedIdentity/userAssignedIdentities/builder")
    assert httpx.put(f"{identity_url}?api-version=2023-01-31", json={"location": "eastus"}).status_code == 201
    deadline = time.time() + 10
    while (identity := httpx.get(f"{identity_url}?api-version=2023-01-31").json())["properties"].get(
            "provisioningState") != "Succeeded":
        assert time.time() < deadline
        time.sleep(0.1)
    body = template_body([{"type": "Shell", "name": "hello", "inline": ["echo as identity"]}],
                         [shared_image("idt", "def2")])
    body["identity"] = {"type": "UserAssigned", "userAssignedIdentities": {identity["id"]: {}}}
    create_template(env.url, "as-identity", body)
    start_run(env.url, "as-identity")
    status, _ = wait_run(env.url, "as-identity")
    assert status["runState"] == "Failed", status
    assert identity["id"] in status["message"] and identity["properties"]["principalId"] in status["message"]
    assert "Microsoft.Compute/galleries/images/versions/write" in status["message"]
    assert definition_id("def2") in status["message"]
    gallery = resource_id("galleries/gal")
    granted = httpx.put(f"{env.url}{gallery}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}"
                        "?api-version=2022-04-01", json={"properties": {
                            "roleDefinitionId": "b24988ac-6180-42a0-ab88-20f7382dd24c",
                            "principalId": identity["properties"]["principalId"]}})
    assert granted.status_code == 201, granted.text
    start_run(env.url, "as-identity")
    status, _ = wait_run(env.url, "as-identity")
    assert status["runState"] == "Succeeded", (status, build_log(env.url, "as-identity"))
    versions = httpx.get(f"{env.url}{definition_id('def2')}/versions?api-version=2026-03-03").json()["value"]
    assert versions, "the run as the identity distributed a version"


def test_another_tenant_builds_from_a_version_shared_with_it(env):
    """Seed 001's story with a real build: tenant B's principal, given Reader on one definition of
    A's gallery, runs an image template in its own subscription whose source is that definition's
    version; once A takes the share back, B can no longer point a template at it."""
    import uuid as _uuid
    sub_b = str(_uuid.uuid4())
    tenant_b = httpx.post(f"{env.url}/providers/Galley.Identity/tenants", json={"displayName": "B"}).json()["tenantId"]
    assert httpx.post(f"{env.url}/providers/Galley.Identity/subscriptions", json={
        "displayName": "B", "tenantId": tenant_b, "subscriptionId": sub_b}).status_code == 201
    b = httpx.post(f"{env.url}/providers/Galley.Identity/servicePrincipals", json={
        "tenantId": tenant_b, "role": "Owner", "scopes": [f"/subscriptions/{sub_b}"]}).json()
    token = httpx.post(f"{env.url}/{tenant_b}/oauth2/v2.0/token", data={
        "grant_type": "client_credentials", "client_id": b["appId"], "client_secret": b["password"],
        "scope": f"{env.url}/.default"}).json()["access_token"]
    as_b = {"Authorization": f"Bearer {token}"}
    # A's version to share: built by the first run of this module, or made here from a build
    create_template(env.url, "to-share", template_body([{"type": "Shell", "name": "m", "inline": ["echo a"]}],
                                                        [shared_image("to-share", "def3")]))
    start_run(env.url, "to-share")
    status, _ = wait_run(env.url, "to-share")
    assert status["runState"] == "Succeeded", status
    [version] = httpx.get(f"{env.url}{definition_id('def3')}/versions?api-version=2026-03-03").json()["value"][-1:]
    share = httpx.put(f"{env.url}{definition_id('def3')}/providers/Microsoft.Authorization/roleAssignments/"
                      f"{_uuid.uuid4()}?api-version=2022-04-01", json={"properties": {
                          "roleDefinitionId": "acdd72a7-3385-48ef-bd42-f606fba81ae7", "principalId": b["id"]}})
    assert share.status_code == 201, share.text
    group_b = f"{env.url}/subscriptions/{sub_b}/resourceGroups/rgb"
    assert httpx.put(f"{group_b}?api-version=2024-11-01", json={"location": "eastus"}, headers=as_b).status_code == 201
    body = {"location": "eastus", "properties": {
        "source": {"type": "SharedImageVersion", "imageVersionId": version["id"]},
        "customize": [{"type": "Shell", "name": "b", "inline": ["echo built by B > /etc/built-by-b"]}],
        "distribute": [{"type": "ManagedImage", "imageId": f"/subscriptions/{sub_b}/resourceGroups/rgb/providers/"
                        "Microsoft.Compute/images/fromShared", "location": "eastus", "runOutputName": "img"}]}}
    template = f"{group_b}/providers/Microsoft.VirtualMachineImages/imageTemplates/fromShared?api-version={API}"
    made = httpx.put(template, json=body, headers=as_b)
    assert made.status_code == 201, made.text
    deadline = time.time() + 30  # a template's PUT is always asynchronous: run it once it has succeeded
    while httpx.get(template, headers=as_b).json()["properties"]["provisioningState"] != "Succeeded":
        assert time.time() < deadline
        time.sleep(0.1)
    assert httpx.post(template.replace("?", "/run?"), headers=as_b).status_code == 202
    deadline = time.time() + 600
    while (run := httpx.get(template, headers=as_b).json()["properties"]["lastRunStatus"])["runState"] in ACTIVE:
        assert time.time() < deadline
        time.sleep(0.3)
    assert run["runState"] == "Succeeded", run
    image = httpx.get(f"{group_b}/providers/Microsoft.Compute/images/fromShared?api-version=2024-07-01", headers=as_b)
    assert image.status_code == 200
    # B cannot see A's other definitions nor change the shared one
    assert httpx.get(f"{env.url}{definition_id('def2')}?api-version=2026-03-03", headers=as_b).status_code == 403
    assert httpx.delete(f"{env.url}{version['id']}?api-version=2026-03-03", headers=as_b).status_code == 403
    # A takes the share back: B's next template on it is refused
    assert httpx.delete(f"{env.url}{share.json()['id']}?api-version=2022-04-01").status_code == 200
    again = httpx.put(template.replace("fromShared?", "again?"), json=body, headers=as_b)
    assert again.status_code == 403 and again.json()["error"]["code"] == "LinkedAuthorizationFailed"
