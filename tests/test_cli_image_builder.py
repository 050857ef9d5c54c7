"""`galley image builder …` and `galley vm boot-test` through the CLI, run in-process as in test_cli.py.

One real server (a ThreadServer on SQLite) serves the module; the templates build from a managed image
made from an empty snapshot, so nothing here really builds: runs are started with --no-wait and the
tests accept whatever state the build worker (when there is one) has moved them to. Waiting for a run
and following its log are tested against a fake server (httpx.MockTransport), where the states and
log pieces are scripted. `vm boot-test` downloads a small uploaded disk; the boot itself is faked,
except once, where QEMU really starts on a disk that cannot boot and the test must time out cleanly.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

from . import admin_http as httpx
import pytest

from galley.builder import boot
from galley.cli import common, image_builder

from . import test_cli_unit as unit
from .servers import SUBSCRIPTION, ThreadServer

RG = "builderRG"
GROUP_ID = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RG}"
COMPUTE = f"{GROUP_ID}/providers/Microsoft.Compute"
TEMPLATES = f"{GROUP_ID}/providers/Microsoft.VirtualMachineImages/imageTemplates"
RUN_STATES = ("Running", "Canceling", "Succeeded", "Failed", "Canceled", "PartiallySucceeded")
MiB = 1024 * 1024

fake = unit.fake  # fixture: a scripted server behind httpx.MockTransport
ok, run = unit.ok, unit.run


@pytest.fixture(scope="module")
def cli_server(tmp_path_factory):
    """One server for the module, whatever GALLEY_* variables earlier tests left behind."""
    with pytest.MonkeyPatch.context() as env:
        for name in [name for name in os.environ if name.startswith("GALLEY_")]:
            env.delenv(name)
        with ThreadServer(tmp_path_factory.mktemp("image-builder-cli")) as running:
            yield running


@pytest.fixture
def chain(galley, cli_server) -> dict:
    """The group, a Linux managed image `base` (from an empty snapshot) and a gallery `gal` with a Linux
    definition `def`, made once per server."""
    if not hasattr(cli_server, "chain"):
        galley("group", "create", "-n", RG, "-l", "eastus")
        galley("snapshot", "create", "-g", RG, "-n", "baseSnap", "--size-gb", "1", "--os-type", "Linux")
        image = galley("image", "create", "-g", RG, "-n", "base", "--source", "baseSnap").json()
        galley("sig", "create", "-g", RG, "-r", "gal")
        galley("sig", "image-definition", "create", "-g", RG, "-r", "gal", "-i", "def", "--publisher", "p",
               "--offer", "o", "--sku", "s", "--os-type", "Linux")
        cli_server.chain = {"image": image["id"], "definition": f"{COMPUTE}/galleries/gal/images/def"}
    return cli_server.chain


def error_line(result) -> str:
    lines = [line for line in result.stderr.splitlines() if line.startswith("ERROR: ")]
    assert lines, f"no ERROR line on stderr: {result.stderr!r}"
    return lines[0]


def create_simple(galley, name: str, *extra: str) -> dict:
    return galley("image", "builder", "create", "-g", RG, "-n", name, "--image-source", "base",
                  "--scripts", "echo hello", "--vhd", *extra).json()


# -- templates against the server -----------------------------------------------------------------


@pytest.mark.slow
def test_create_from_flags_then_show_list_delete(galley, chain):
    identity = galley("identity", "create", "-g", RG, "-n", "aibIdentity").json()
    assert identity["properties"]["principalId"] and identity["properties"]["clientId"]
    assert "aibIdentity" in galley("identity", "list", "-g", RG, "-o", "table").stdout
    template = galley(
        "image", "builder", "create", "-g", RG, "-n", "flags", "--image-source", "base",
        "--scripts", "echo hello", "https://example.com/setup.sh",
        "--managed-image-destinations", "builtImage=eastus",
        "--shared-image-destinations", "gal/def=eastus,westus2",
        "--vhd", "--build-timeout", "30", "--os-disk-size", "10", "--vm-size", "Standard_D2s_v3",
        "--identity", "aibIdentity", "--tags", "team=images",
    ).json()
    assert template["id"] == f"{TEMPLATES}/flags"
    assert template["location"] == "eastus"  # the group's
    assert template["tags"] == {"team": "images"}
    props = template["properties"]
    assert props["provisioningState"] == "Succeeded"
    assert props["source"] == {"type": "ManagedImage", "imageId": chain["image"]}
    assert props["customize"] == [{"type": "Shell", "inline": ["echo hello"]},
                                  {"type": "Shell", "scriptUri": "https://example.com/setup.sh"}]
    managed, shared, vhd = props["distribute"]
    assert managed == {"type": "ManagedImage", "runOutputName": "builtImage", "imageId": f"{COMPUTE}/images/builtImage",
                       "location": "eastus"}
    assert shared["galleryImageId"] == chain["definition"] and shared["runOutputName"] == "def"
    assert [region["name"] for region in shared["targetRegions"]] == ["eastus", "westus2"]
    assert vhd == {"type": "VHD", "runOutputName": "vhd"}
    assert props["buildTimeoutInMinutes"] == 30
    assert props["vmProfile"] == {"osDiskSizeGB": 10, "vmSize": "Standard_D2s_v3"}
    assert template["identity"] == {"type": "UserAssigned", "userAssignedIdentities": {
        f"{GROUP_ID}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/aibIdentity": {}}}

    assert galley("image", "builder", "show", "-g", RG, "-n", "flags").json() == template
    assert "flags" in [t["name"] for t in galley("image", "builder", "list", "-g", RG).json()]
    assert "flags" in [t["name"] for t in galley("image", "builder", "list").json()]  # the subscription
    table = galley("image", "builder", "list", "-g", RG, "-o", "table").stdout
    assert "RunState" in table.splitlines()[0] and "flags" in table

    deleted = galley("image", "builder", "delete", "-g", RG, "-n", "flags")
    assert deleted.stdout == ""
    gone = galley("image", "builder", "show", "-g", RG, "-n", "flags", check=False)
    assert gone.code == 1 and "flags" in error_line(gone)


def test_create_from_template_file_properties_or_full_body(galley, chain, tmp_path):
    properties = {
        "source": {"type": "ManagedImage", "imageId": chain["image"]},
        "customize": [{"type": "Shell", "name": "hello", "inline": ["echo hello"]}],
        "distribute": [{"type": "VHD", "runOutputName": "disk"}],
    }
    only_properties = tmp_path / "properties.json"
    only_properties.write_text(json.dumps(properties))
    first = galley("image", "builder", "create", "-g", RG, "-n", "fromProps", "--image-template",
                   only_properties).json()
    assert first["location"] == "eastus"
    assert first["properties"]["customize"] == properties["customize"]

    full = tmp_path / "template.json"  # as the docs show it, with type and apiVersion
    full.write_text(json.dumps({"type": "Microsoft.VirtualMachineImages/imageTemplates", "apiVersion": "2022-02-14",
                                "location": "eastus", "tags": {"from": "file"},
                                "properties": {**properties, "buildTimeoutInMinutes": 45}}))
    second = galley("image", "builder", "create", "-g", RG, "-n", "fromFile", "--image-template", full).json()
    assert second["tags"] == {"from": "file"}
    assert second["properties"]["buildTimeoutInMinutes"] == 45
    assert second["properties"]["distribute"] == [{"type": "VHD", "runOutputName": "disk"}]

    mixed = galley("image", "builder", "create", "-g", RG, "-n", "mixed", "--image-template", full,
                   "--image-source", "base", check=False)
    assert mixed.code == 2 and "--image-source" in mixed.stderr
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    bad = galley("image", "builder", "create", "-g", RG, "-n", "broken", "--image-template", broken, check=False)
    assert bad.code == 2 and "not valid JSON" in bad.stderr


def test_rejections_carry_the_message_and_store_nothing(galley, chain):
    no_target = galley("image", "builder", "create", "-g", RG, "-n", "bad", "--image-source", "base", check=False)
    assert no_target.code == 1
    assert "(InvalidParameter)" in error_line(no_target) and "distribute" in error_line(no_target)

    missing = galley("image", "builder", "create", "-g", RG, "-n", "bad", "--image-source", "noSuchImage",
                     "--vhd", check=False)
    assert missing.code == 1 and "noSuchImage" in missing.stderr

    too_long = galley("image", "builder", "create", "-g", RG, "-n", "bad", "--image-source", "base",
                          "--vhd", "--build-timeout", "2000", check=False)
    assert too_long.code == 2  # click's range check: 0..960

    assert galley("image", "builder", "show", "-g", RG, "-n", "bad", check=False).code == 1  # nothing stored

    for args, words in [
        (("--image-source", "Canonical:only-three:parts"), "Publisher:Offer:Sku:Version"),
        (("--image-source", f"{COMPUTE}/snapshots/baseSnap"), "neither a managed image"),
        (("--image-source", "base", "--shared-image-destinations", "justAGallery=eastus"), "GALLERY/DEFINITION"),
        (("--vhd",), "--image-source"),
    ]:
        result = galley("image", "builder", "create", "-g", RG, "-n", "bad", *args, check=False)
        assert result.code == 2 and "usage error" in result.stderr and words in result.stderr, result.stderr


def test_run_no_wait_cancel_show_runs_and_logs(galley, chain):
    create_simple(galley, "runner")
    assert galley("image", "builder", "show-runs", "-g", RG, "-n", "runner").json() == []
    no_log = galley("image", "builder", "logs", "-g", RG, "-n", "runner", check=False)
    assert no_log.code == 1 and "has not run yet" in error_line(no_log) and no_log.stdout == ""

    started = galley("image", "builder", "run", "-g", RG, "-n", "runner", "--no-wait")
    assert started.stdout == ""
    status = galley("image", "builder", "show", "-g", RG, "-n", "runner").json()["properties"]["lastRunStatus"]
    assert status["runState"] in RUN_STATES  # Running/Queued until a build worker takes it

    canceled = galley("image", "builder", "cancel", "-g", RG, "-n", "runner", "--no-wait", check=False)
    state = galley("image", "builder", "show", "-g", RG, "-n", "runner").json()["properties"]["lastRunStatus"]
    if canceled.code == 0:
        assert state["runState"] in ("Canceling", "Canceled", "Failed", "Succeeded")
    else:  # the run had already ended
        assert canceled.code == 1 and "no run in progress" in error_line(canceled)

    missing = galley("image", "builder", "show-runs", "-g", RG, "-n", "runner", "--output-name", "nope", check=False)
    assert missing.code == 1 and "nope" in error_line(missing)

    delete = galley("image", "builder", "delete", "-g", RG, "-n", "runner", check=False)
    if delete.code != 0:  # refused only while the run has not ended (a worker may end it meanwhile)
        assert delete.code == 1 and "run in progress" in error_line(delete)
        assert state["runState"] in ("Running", "Canceling")


@pytest.fixture
def bounded_waits(galley, monkeypatch):
    """The CLI's pauses between polls, capped at 50 ms, and failing the test once 60 s have gone by
    (so a run that never ends fails the test instead of hanging it)."""
    deadline = time.monotonic() + 60

    def sleep(seconds: float) -> None:
        assert time.monotonic() < deadline, "still waiting after 60 s"
        time.sleep(min(seconds, 0.05))

    real_make_client = common.make_client
    monkeypatch.setattr(common, "make_client", lambda server: real_make_client(server, sleep=sleep))


def test_run_waits_for_the_build_and_logs_tell_how_it_went(galley, chain, bounded_waits):
    create_simple(galley, "doomed")  # its source disk is empty: there is nothing to build on
    result = galley("image", "builder", "run", "-g", RG, "-n", "doomed", check=False)
    status = result.json()
    assert status["runState"] in RUN_STATES and status["runState"] not in ("Running", "Canceling")
    assert result.code == (1 if status["runState"] in ("Failed", "Canceled") else 0), result.stderr
    if result.code:
        assert f"ended {status['runState']}" in error_line(result)
    shown = galley("image", "builder", "show", "-g", RG, "-n", "doomed").json()
    assert shown["properties"]["lastRunStatus"] == status

    log = galley("image", "builder", "logs", "-g", RG, "-n", "doomed").stdout
    assert log.strip()
    assert galley("image", "builder", "logs", "-g", RG, "-n", "doomed", "--follow").stdout == log  # run over: ends


def test_unknown_template_is_an_arm_error(galley, chain):
    for command in ("show", "run", "cancel", "show-runs", "logs"):
        result = galley("image", "builder", command, "-g", RG, "-n", "nowhere", check=False)
        assert result.code == 1 and "nowhere" in error_line(result), (command, result.stderr)


# -- run and logs against a scripted server -----------------------------------------------------

PATH = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg/providers/Microsoft.VirtualMachineImages/imageTemplates/t"


def template_with(run_state: str, sub_state: str = "", message: str = "") -> httpx.Response:
    status = {"runState": run_state, "runSubState": sub_state, "message": message}
    return ok({"id": PATH, "name": "t", "properties": {"provisioningState": "Succeeded", "lastRunStatus": status}})


def log_piece(data: bytes, size: int, state: str) -> httpx.Response:
    return httpx.Response(200, content=data, headers={"Content-Type": "text/plain", "X-Galley-Log-Size": str(size),
                                                      "X-Galley-Run-State": state})


@pytest.mark.parametrize("final, code", [("Succeeded", 0), ("Failed", 1), ("Canceled", 1)])
def test_run_waits_for_the_end_and_exits_by_its_state(fake, final, code):
    server = fake({
        ("POST", PATH + "/run"): httpx.Response(202, headers={"Azure-AsyncOperation": "http://srv/ops/1"}),
        ("GET", PATH): [template_with("Running", "Queued"), template_with("Running", "Building"),
                        template_with(final, "", "the end")],
    })
    result = run("image", "builder", "run", "-g", "rg", "-n", "t")
    assert result.exit_code == code, result.output
    assert json.loads(result.stdout) == {"runState": final, "runSubState": "", "message": "the end"}
    assert len(server.sleeps) == 2  # polled until the state was no longer Running
    if code:
        assert f"ended {final}: the end" in result.stderr


def test_logs_follow_prints_new_bytes_until_the_run_ends(fake):
    text = "step 1 ✓\nstep 2 ✓\n".encode()
    cut = text.index("✓".encode()) + 1  # a piece ending inside a UTF-8 character
    server = fake({
        ("GET", PATH): template_with("Running", "Queued"),
        ("GET", PATH + "/logs"): [
            httpx.Response(404, json={"error": {"code": "NotFound", "message": "no log yet"}}),
            log_piece(text[:cut], cut, "Running"),
            log_piece(b"", cut, "Running"),
            log_piece(text[cut:], len(text), "Succeeded"),
        ],
    })
    result = run("image", "builder", "logs", "-g", "rg", "-n", "t", "--follow")
    assert result.exit_code == 0, result.output
    assert result.stdout == text.decode()
    offsets = [r.url.params.get("offset") for r in server.requests if r.url.path.endswith("/logs")]
    assert offsets == ["0", "0", str(cut), str(cut)]


def test_logs_without_follow_prints_what_there_is(fake):
    fake({("GET", PATH): template_with("Running", "Building"),
          ("GET", PATH + "/logs"): log_piece(b"so far\n", 7, "Running")})
    result = run("image", "builder", "logs", "-g", "rg", "-n", "t")
    assert result.exit_code == 0 and result.stdout == "so far\n"


def test_image_source_kinds():
    versions = f"{COMPUTE}/galleries/gal/images/def/versions/1.0.0"
    assert image_builder.image_source(SUBSCRIPTION, RG, "Canonical:0001-com-ubuntu-server-jammy:22_04-lts:latest") == {
        "type": "PlatformImage", "publisher": "Canonical", "offer": "0001-com-ubuntu-server-jammy",
        "sku": "22_04-lts", "version": "latest"}
    assert image_builder.image_source(SUBSCRIPTION, RG, versions) == {"type": "SharedImageVersion",
                                                                      "imageVersionId": versions}
    assert image_builder.image_source(SUBSCRIPTION, RG, "base") == {"type": "ManagedImage",
                                                                    "imageId": f"{COMPUTE}/images/base"}
    definition = f"{COMPUTE}/galleries/gal/images/def"
    assert image_builder.shared_image_distributor(SUBSCRIPTION, RG, f"{definition}=eastus", "out") == {
        "type": "SharedImage", "galleryImageId": definition, "runOutputName": "out", "targetRegions": [{"name": "eastus"}]}


# -- vm boot-test -------------------------------------------------------------------------------------


@pytest.fixture
def boot_disk(galley, chain, cli_server, tmp_path) -> tuple[str, bytes]:
    """An uploaded 20 MiB disk (Azure's smallest upload) with a little data at its start: (id, content)."""
    if not hasattr(cli_server, "boot_disk"):
        raw = tmp_path / "boot.raw"
        data = b"GALLEY-BOOT-TEST" * 4096
        with open(raw, "wb") as handle:
            handle.truncate(20 * MiB)
            handle.write(data)
        disk = galley("disk", "upload", "-g", RG, "-n", "bootDisk", "--file", raw, "--os-type", "Linux").json()
        cli_server.boot_disk = (disk["id"], raw.read_bytes())
    return cli_server.boot_disk


@pytest.fixture
def own_tmp(tmp_path, monkeypatch) -> Path:
    """The temporary folder the command uses, to see that it cleans up."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


@pytest.fixture
def script(tmp_path) -> Path:
    path = tmp_path / "check.sh"
    path.write_text("#!/bin/sh\necho checked\nexit 3\n")
    return path


def test_boot_test_rejects_what_is_not_a_disk_holder(galley, script, tmp_path):
    for source in ("myImage", f"{GROUP_ID}", f"{TEMPLATES}/x", f"{COMPUTE}/galleries/gal/images/def"):
        result = galley("vm", "boot-test", source, "--script", script, check=False)
        assert result.code == 2 and "managed image, disk, snapshot or gallery image version" in result.stderr
    no_script = galley("vm", "boot-test", f"{COMPUTE}/disks/d", "--script", tmp_path / "none.sh", check=False)
    assert no_script.code == 2 and "--script" in no_script.stderr


def test_boot_test_of_a_missing_disk_is_the_servers_error(galley, chain, script, own_tmp):
    result = galley("vm", "boot-test", f"{COMPUTE}/disks/noSuchDisk", "--script", script, check=False)
    assert result.code == 1 and "noSuchDisk" in error_line(result)
    assert list(own_tmp.iterdir()) == []


def test_boot_test_boots_the_downloaded_disk_and_exits_with_the_script_code(galley, boot_disk, script, own_tmp,
                                                                            monkeypatch):
    disk_id, content = boot_disk
    seen = {}

    def fake_boot(path, script_text, *, fmt, timeout, memory_mib):
        seen.update(path=Path(path), content=Path(path).read_bytes(), script=script_text, fmt=fmt,
                    timeout=timeout, memory=memory_mib)
        return boot.BootResult(exit_code=3, output="checked", serial_log="", seconds=1.5, accel="tcg")

    monkeypatch.setattr(boot, "boot_test", fake_boot)
    result = galley("vm", "boot-test", disk_id, "--script", script, "--timeout", "90", "--memory-mib", "512",
                    check=False)
    assert result.code == 3, result.stderr
    assert result.json() == {"exitCode": 3, "output": "checked", "seconds": 1.5, "accel": "tcg"}
    assert seen["content"] == content and seen["fmt"] == "raw"
    assert seen["script"] == script.read_text() and seen["timeout"] == 90 and seen["memory"] == 512
    assert not seen["path"].exists() and list(own_tmp.iterdir()) == []


@pytest.mark.slow
@pytest.mark.skipif(shutil.which(boot.QEMU) is None or shutil.which("mkfs.ext4") is None, reason="needs QEMU")
def test_boot_test_of_a_disk_that_never_boots_is_a_clear_error(galley, boot_disk, script, own_tmp, monkeypatch):
    monkeypatch.setenv("GALLEY_QEMU_ACCEL", "tcg")
    result = galley("vm", "boot-test", boot_disk[0], "--script", script, "--timeout", "4", check=False)
    assert result.code == 1 and result.stdout == ""
    assert "(BootTimeout)" in error_line(result) and "never reported" in error_line(result)
    assert list(own_tmp.iterdir()) == []
