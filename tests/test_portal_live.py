"""The portal's live pages in a real browser (galley/portal/static/js/live/): uploading a disk from
the browser with a progress bar and resume after a dropped connection, a VM's power state and
actions, storage usage charts, and an image template's run with its log followed live.

How we know: the disk's content is downloaded through the API and compared with the file; what
the browser sent is seen where Playwright intercepts it (page writes, Get Page Ranges); the VM's
and the template's states shown are the API's; the usage tables are compared with the report.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from galley.content.vhd import VhdFooter

from . import admin_http as httpx
from .browser import screenshot
from .portal_helpers import portal
from .sdk_helpers import RG, SUBSCRIPTION, make_group
from .servers import ThreadServer

expect = pytest.importorskip("playwright.sync_api").expect

# Browser flows past the core ones (test_portal_core, _access, _sign_in): CI runs them; the
# quick suite (-m "not slow") leaves them out to stay within its five minutes.
pytestmark = pytest.mark.slow

MiB = 1024 * 1024
DISK_API = "2024-03-02"
COMPUTE_API = "2024-07-01"
GALLERY_API = "2024-03-03"
TEMPLATE_API = "2024-02-01"
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
CELL = 4 * MiB


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    os.environ.setdefault("GALLEY_QEMU_ACCEL", "tcg")
    # VMs here boot nothing: no provisioning wait, and a stop kills them after 2 s.
    with ThreadServer(tmp_path_factory.mktemp("portal-live"), vm_stop_grace=2.0, vm_provisioning_timeout=0) as server:
        make_group(server.url)
        yield server
        machines = server.app.state.compute.machines
        for key in machines.running():
            machines.forget(key)


_consoles = []


def signed_in(browser, url: str, token: str, path: str, **size):
    """The portal at `path` holding `token`; its console must stay free of errors (a CSP violation
    is one) until the test ends."""
    page, console = portal(browser, url, token, path, **size)
    _consoles.append(console)
    return page


@pytest.fixture(autouse=True)
def clean_console():
    _consoles.clear()
    yield
    for console in _consoles:
        console.assert_clean()


def disk_id(name: str) -> str:
    return f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RG}/providers/Microsoft.Compute/disks/{name}"


def make_raw(path: Path, size: int, seed: int) -> bytes:
    """A raw image: random data in some 4 MiB cells, zeros (a hole) in the others."""
    rng = random.Random(seed)
    data = bytearray(size)
    for cell in range(size // CELL):
        if cell % 3 != 1:  # every third cell stays zero: it must not be sent
            start = cell * CELL + rng.randrange(0, 64) * 512
            data[start:start + 1 * MiB] = rng.randbytes(1 * MiB)
    path.write_bytes(bytes(data))
    return bytes(data)


def downloaded(url: str, name: str) -> bytes:
    response = httpx.get(f"{url}{disk_id(name)}/download", params={"api-version": DISK_API, "format": "raw"},
                         timeout=120)
    assert response.status_code == 200, response.text
    return response.content


def upload_page(browser, server, **size):
    page = signed_in(browser, server.url, server.token, "/#/upload", **size)
    expect(page.get_by_role("heading", name="Upload a disk")).to_be_visible()
    expect(page.get_by_label("Resource group")).to_have_value(RG)
    return page


def start_upload(page, name: str, file: Path) -> None:
    page.get_by_label("Disk name").fill(name)
    page.get_by_label("Operating system").select_option("Linux")
    page.get_by_label("Disk image file").set_input_files(str(file))
    page.get_by_role("button", name="Upload").click()


def finished(page, name: str, timeout: float = 120_000) -> None:
    expect(page.get_by_role("status").filter(has_text="Done:")).to_have_text(
        f"Done: disk {name} is Unattached.", timeout=timeout)


# -- upload ---------------------------------------------------------------------------------------


def test_a_64_mib_vhd_uploads_with_a_progress_bar_and_resumes_after_a_dropped_connection(browser, server, tmp_path):
    raw = make_raw(tmp_path / "disk.raw", 64 * MiB, seed=1)
    vhd = tmp_path / "disk.vhd"
    vhd.write_bytes(raw + VhdFooter.new(2, len(raw)).pack())
    page = upload_page(browser, server)

    writes: list[int] = []   # offset of each Put Page that reached the server
    aborted: list[int] = []  # offsets whose write the "network" dropped
    listings: list[float] = []

    def network(route):
        request = route.request
        if "comp=pagelist" in request.url:
            listings.append(time.time())
        elif "comp=page" in request.url and request.method == "PUT":
            offset = int(re.search(r"bytes=(\d+)-", request.headers["x-ms-range"]).group(1))
            if 3 <= len(writes) + len(aborted) < 6:  # writes 4 to 6 meet a dropped connection
                aborted.append(offset)
                route.abort("connectionreset")
                return
            writes.append(offset)
        route.continue_()

    page.route(re.compile(r"/md-[0-9a-f]+/"), network)
    start_upload(page, "uploaded", vhd)
    progress = page.get_by_label("Upload progress")
    expect(progress).to_be_visible()
    finished(page, "uploaded")
    screenshot(page, "portal-upload-done")
    expect(progress).to_have_js_property("value", len(raw) + 512)

    assert len(aborted) == 3 and listings, "the dropped writes were followed by Get Page Ranges"
    data_cells = [c for c in range(len(raw) // CELL) if c % 3 != 1]
    sent_cells = sorted(offset // CELL for offset in writes)
    # Every data cell and the footer's arrived once: only the dropped ones were sent again, no
    # zero cell ever.
    assert sent_cells == sorted(data_cells + [len(raw) // CELL])
    assert all(offset // CELL in data_cells for offset in aborted)
    disk = httpx.get(f"{server.url}{disk_id('uploaded')}", params={"api-version": DISK_API}).json()
    assert disk["properties"]["diskState"] == "Unattached" and disk["properties"]["diskSizeBytes"] == len(raw)
    assert downloaded(server.url, "uploaded") == raw


def test_a_closed_page_resumes_when_the_same_file_is_chosen_again(browser, server, tmp_path):
    """The browser went away mid-upload (the disk stays ActiveUpload): choosing the same file for
    the same disk asks Get Page Ranges and sends only the pages still missing."""
    raw = make_raw(tmp_path / "resumed.raw", 32 * MiB, seed=5)
    data_cells = [c for c in range(len(raw) // CELL) if c % 3 != 1]
    first: list[int] = []

    def cut_after_three(route):
        if "comp=page" in route.request.url and route.request.method == "PUT":
            if len(first) >= 3:
                route.abort("connectionreset")
                return
            first.append(int(re.search(r"bytes=(\d+)-", route.request.headers["x-ms-range"]).group(1)))
        route.continue_()

    page = upload_page(browser, server)
    page.route(re.compile(r"/md-[0-9a-f]+/"), cut_after_three)
    start_upload(page, "resumed", tmp_path / "resumed.raw")
    expect(page.get_by_role("status").filter(has_text="Connection lost")).to_be_visible()
    page.close()
    assert len(first) == 3
    state = httpx.get(f"{server.url}{disk_id('resumed')}", params={"api-version": DISK_API}).json()
    assert state["properties"]["diskState"] == "ActiveUpload"

    second: list[int] = []
    page = upload_page(browser, server)
    page.on("request", lambda r: second.append(int(re.search(r"bytes=(\d+)-", r.headers["x-ms-range"]).group(1)))
            if "comp=page" in r.url and r.method == "PUT" else None)
    with page.expect_request(lambda r: "comp=pagelist" in r.url):
        start_upload(page, "resumed", tmp_path / "resumed.raw")
    finished(page, "resumed")
    # The three pieces that arrived before are not sent again; the rest (and the footer) are.
    assert sorted(o // CELL for o in first + second) == sorted(data_cells + [len(raw) // CELL])
    assert downloaded(server.url, "resumed") == raw


def test_a_raw_file_gets_its_vhd_footer_in_the_browser(browser, server, tmp_path):
    raw = make_raw(tmp_path / "plain.raw", 24 * MiB, seed=2)
    page = upload_page(browser, server)
    start_upload(page, "from-raw", tmp_path / "plain.raw")
    finished(page, "from-raw")
    disk = httpx.get(f"{server.url}{disk_id('from-raw')}", params={"api-version": DISK_API}).json()
    props = disk["properties"]
    assert props["creationData"]["uploadSizeBytes"] == len(raw) + 512
    assert props["diskSizeBytes"] == len(raw), "the footer made in the browser was recognized"
    assert downloaded(server.url, "from-raw") == raw


@pytest.mark.skipif(shutil.which("qemu-img") is None, reason="needs qemu-img")
@pytest.mark.parametrize("fmt,options", [("qcow2", []), ("vpc", ["-o", "subformat=dynamic,force_size=on"])],
                         ids=["qcow2", "dynamic-vhd"])
def test_qcow2_and_dynamic_vhd_files_go_through_the_servers_conversion(browser, server, tmp_path, fmt, options):
    raw = make_raw(tmp_path / "q.raw", 24 * MiB, seed=3)
    image = tmp_path / f"image.{fmt}"
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", fmt, *options, str(tmp_path / "q.raw"), str(image)],
                   check=True)
    page = upload_page(browser, server)
    start_upload(page, f"from-{fmt}", image)
    finished(page, f"from-{fmt}")
    assert downloaded(server.url, f"from-{fmt}") == raw


def test_an_existing_disk_name_is_refused_next_to_the_field(browser, server, tmp_path):
    make_raw(tmp_path / "again.raw", 24 * MiB, seed=4)
    page = upload_page(browser, server)
    start_upload(page, "from-raw" if _exists(server, "from-raw") else "uploaded", tmp_path / "again.raw")
    expect(page.get_by_text(re.compile("already exists .*choose another name"))).to_be_visible()


def test_a_file_dropped_on_the_page_is_the_one_uploaded(browser, server):
    page = upload_page(browser, server)
    transfer = page.evaluate_handle("""() => {
        const transfer = new DataTransfer();
        transfer.items.add(new File([new Uint8Array(2048)], "dropped image.raw"));
        return transfer; }""")
    page.locator(".drop-zone").dispatch_event("drop", {"dataTransfer": transfer})
    expect(page.get_by_text("dropped image.raw (2.0 KiB)")).to_be_visible()
    expect(page.get_by_label("Disk name")).to_have_value("dropped-image")
    page.get_by_role("button", name="Upload").click()  # 2 KiB is below Azure's smallest upload
    expect(page.get_by_role("alert")).to_contain_text("uploadSizeBytes")


def _exists(server, name: str) -> bool:
    return httpx.get(f"{server.url}{disk_id(name)}", params={"api-version": DISK_API}).status_code == 200


def test_the_pages_formats_agree_with_the_servers(browser, server):
    """What the browser computes or parses by itself, checked against Galley's own code: the VHD
    geometry of the footer it writes, and the stdout/stderr of a RunShellScript result."""
    from galley.content.vhd import chs_geometry
    from galley.domain.vm_service import run_command_result

    page = upload_page(browser, server)
    sizes = [20 * MiB, 64 * MiB, 3 * 1024 * MiB + 512, 127 * 1024 * MiB, 2040 * 1024 * MiB]
    geometry = page.evaluate("""async (sizes) => {
        const { chsGeometry } = await import("/portal/static/js/live/disk_image.js");
        return sizes.map(chsGeometry); }""", sizes)
    assert geometry == [list(chs_geometry(size)) for size in sizes]
    message = run_command_result(0, "hello\nworld\n", "a warning\n")["value"][0]["message"]
    parts = page.evaluate("""async (message) => {
        const { splitOutput } = await import("/portal/static/js/live/vms.js");
        return splitOutput(message); }""", message)
    assert parts == {"summary": "Enable succeeded:", "stdout": "hello\nworld\n", "stderr": "a warning\n"}


# -- virtual machines -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def version(server):
    """Version 1.0.0 (eastus and westus2) of a specialized definition whose 64 MiB disk boots nothing."""
    url = server.url
    source = disk_id("vm-source")
    assert httpx.put(f"{url}{source}", params={"api-version": DISK_API}, json={
        "location": "eastus", "properties": {"creationData": {"createOption": "Empty"}, "diskSizeGB": 1,
                                              "osType": "Linux"}}).status_code in (200, 201, 202)
    _wait_succeeded(url, source, DISK_API)
    data = bytearray(64 * MiB)
    data[MiB:MiB + 4096] = os.urandom(4096)
    assert httpx.put(f"{url}{source}/upload", params={"api-version": DISK_API}, content=bytes(data)).status_code == 200
    gallery = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RG}/providers/Microsoft.Compute/galleries/gal"
    httpx.put(f"{url}{gallery}", params={"api-version": GALLERY_API}, json={"location": "eastus"})
    _wait_succeeded(url, gallery, GALLERY_API)
    definition = f"{gallery}/images/spec"
    httpx.put(f"{url}{definition}", params={"api-version": GALLERY_API}, json={"location": "eastus", "properties": {
        "osType": "Linux", "osState": "Specialized", "identifier": {"publisher": "p", "offer": "o", "sku": "s"}}})
    _wait_succeeded(url, definition, GALLERY_API)
    version = f"{definition}/versions/1.0.0"
    response = httpx.put(f"{url}{version}", params={"api-version": GALLERY_API}, json={
        "location": "eastus", "properties": {
            "publishingProfile": {"targetRegions": [{"name": "eastus", "regionalReplicaCount": 1},
                                                    {"name": "westus2", "regionalReplicaCount": 2}]},
            "storageProfile": {"osDiskImage": {"source": {"id": source}}}}})
    assert response.status_code in (200, 201), response.text
    _wait_succeeded(url, version, GALLERY_API, timeout=120)
    return version


def _wait_succeeded(url: str, resource: str, api: str, timeout: float = 30) -> dict:
    deadline = time.time() + timeout
    while True:
        body = httpx.get(f"{url}{resource}", params={"api-version": api}).json()
        state = body.get("properties", {}).get("provisioningState")
        if state in ("Succeeded", None) and "error" not in body:
            return body
        assert state not in ("Failed", "Canceled") and time.time() < deadline, body
        time.sleep(0.2)


def open_panel(page, title: str):
    """The tab LIVE's panel adds to a resource page, shown."""
    page.get_by_role("tab", name=title).click()
    return page


@pytest.mark.slow  # QEMU machines started and stopped under TCG
def test_vm_panel_shows_the_power_state_live_and_its_actions_change_it(browser, server, version):
    url = server.url
    vm = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RG}/providers/Microsoft.Compute/virtualMachines/vm-portal"
    response = httpx.put(f"{url}{vm}", params={"api-version": COMPUTE_API}, json={
        "location": "eastus", "properties": {"hardwareProfile": {"vmSize": "Standard_B1ls"},
                                             "storageProfile": {"imageReference": {"id": version}}}})
    assert response.status_code in (200, 201), response.text
    _wait_succeeded(url, vm, COMPUTE_API, timeout=60)
    page = open_panel(signed_in(browser, url, server.token, f"/#/resource{vm}"), "Operations")
    power = page.locator("[data-field=powerState]")
    expect(power).to_have_text("VM running", timeout=30_000)
    expect(page.get_by_label("Serial log")).to_be_attached()
    expect(page.get_by_text(re.compile(r"^(Nothing written yet\.|[\d,]+ characters)$"))).to_be_visible()

    page.get_by_label("Stop without the guest's shutdown (cut the power)").check()
    page.get_by_role("button", name="Stop", exact=True).click()
    expect(power).to_have_text("VM stopped", timeout=30_000)
    screenshot(page, "portal-vm-stopped")
    assert not server.app.state.compute.machines.running()

    # Run command on a stopped VM: the API refuses and the page says why.
    page.get_by_label("Shell script (RunShellScript)").fill("echo hello")
    page.get_by_role("button", name="Run command").click()
    expect(page.get_by_text(re.compile("Run command is possible only on a running VM"))).to_be_visible()

    page.get_by_role("button", name="Start", exact=True).click()
    expect(power).to_have_text("VM running", timeout=30_000)
    page.get_by_role("button", name="Deallocate", exact=True).click()
    expect(power).to_have_text("VM deallocated", timeout=30_000)
    view = httpx.get(f"{url}{vm}/instanceView", params={"api-version": COMPUTE_API}).json()
    assert "PowerState/deallocated" in [s["code"] for s in view["statuses"]]
    assert httpx.delete(f"{url}{vm}", params={"api-version": COMPUTE_API}).status_code in (200, 202, 204)


# -- storage usage -------------------------------------------------------------------------------


def test_usage_page_draws_charts_and_its_tables_match_the_report(browser, server, version):
    report = httpx.get(f"{server.url}/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Compute/galleyUsage",
                       params={"api-version": GALLERY_API}).json()
    page = signed_in(browser, server.url, server.token, "/#/usage")
    expect(page.get_by_role("heading", name="Storage usage")).to_be_visible()
    expect(page.locator("figure.chart canvas")).to_have_count(3)
    canvas_sizes = page.eval_on_selector_all("figure.chart canvas", "cs => cs.map(c => c.width * c.height)")
    assert all(size > 0 for size in canvas_sizes)
    screenshot(page, "portal-usage")

    def rows(caption: str) -> list[list[str]]:
        table = page.locator("table", has=page.locator("caption", has_text=caption))
        return [[cell.strip() for cell in row] for row in
                table.locator("tbody tr").evaluate_all("rs => rs.map(r => [...r.cells].map(c => c.textContent))")]

    number = lambda n: f"{n:,}"
    versions = {row[0]: row for row in rows("Storage per image version")}
    ours = next(v for v in report["versions"] if v["id"].lower() == version.lower())
    assert versions["gal/spec/1.0.0"][1] == number(ours["occupiedBytes"]) and ours["occupiedBytes"] > 0
    assert versions["gal/spec/1.0.0"][3] == ", ".join(
        f"{r['region']} ({r['replicas']}: {number(r['storageBytes'])})" for r in ours["regions"])
    assert {r["region"]: r["replicas"] for r in ours["regions"]} == {"eastus": 1, "westus2": 2}
    assert rows("Logical and physical storage per region") == [
        [r["region"], number(r["logicalBytes"]), number(r["physicalBytes"]), number(r["physicalUncompressedBytes"])]
        for r in report["regions"]]
    assert rows("Bytes moved between regions by replication") == [
        [e["from"], e["to"], number(e["bytes"])] for e in report["egress"]] and report["egress"]


# -- image template runs -------------------------------------------------------------------------


def test_a_reader_sees_the_runs_but_is_not_offered_run_or_cancel(browser, server):
    from .test_access import assign, principal, sign_in

    template = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RG}/providers/Microsoft.VirtualMachineImages/" \
               "imageTemplates/watched"
    response = httpx.put(f"{server.url}{template}", params={"api-version": TEMPLATE_API}, json={
        "location": "eastus", "properties": {
            "source": {"type": "PlatformImage", "publisher": "Debian", "offer": "debian-12", "sku": "12",
                       "version": "latest"},
            "customize": [{"type": "Shell", "name": "hello", "inline": ["echo hello"]}],
            "distribute": [{"type": "ManagedImage", "runOutputName": "never", "location": "eastus",
                            "imageId": f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RG}/providers/"
                                       "Microsoft.Compute/images/never-made"}]}})
    assert response.status_code in (200, 201), response.text
    _wait_succeeded(server.url, template, TEMPLATE_API)
    reader = principal(server.url, displayName="runs-reader")
    assign(server.url, template, READER, reader["id"])
    page = open_panel(signed_in(browser, server.url, sign_in(server.url, reader), f"/#/resource{template}"),
                      "Runs")
    expect(page.locator("[data-field=runState]")).to_have_text("Never run")
    expect(page.get_by_role("button", name="Run", exact=True)).to_be_hidden()
    expect(page.get_by_role("button", name="Cancel run")).to_be_hidden()
    refused = page.evaluate("""async (id) => {
        const token = JSON.parse(sessionStorage.getItem('galley.portal.token')).accessToken;
        const answer = await fetch(id + '/run?api-version=2024-02-01', {method: 'POST', headers: {Authorization: 'Bearer ' + token}});
        return answer.status; }""", template)
    assert refused == 403


@pytest.mark.slow  # a real build: the Debian platform image written out and customized
def test_a_run_shows_its_log_growing_live_and_a_second_run_is_canceled(browser, server):
    from .debian_base import debian_base_image
    from .test_builds import (
        create_template,
        get_template,
        register_platform_image,
        template_body,
    )

    register_platform_image(server.url, debian_base_image())
    lines = ["for i in $(seq 1 40); do echo progress-$i; sleep 0.5; done", "exit 3"]
    create_template(server.url, "counting", template_body(
        customize=[{"type": "Shell", "name": "count", "inline": lines}],
        distribute=[{"type": "ManagedImage", "runOutputName": "never", "location": "eastus",
                     "imageId": f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RG}/providers/Microsoft.Compute/"
                                "images/never-made"}]))
    template = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RG}/providers/Microsoft.VirtualMachineImages/" \
               "imageTemplates/counting"
    page = open_panel(signed_in(browser, server.url, server.token, f"/#/resource{template}"), "Runs")
    state = page.locator("[data-field=runState]")
    expect(state).to_have_text("Never run")
    log = page.get_by_role("log", name="customization.log")

    page.get_by_role("button", name="Run", exact=True).click()
    expect(state).to_have_text("Running")
    expect(log).to_contain_text("[count] progress-3", timeout=300_000)
    early = log.text_content()
    assert "progress-30" not in early, "the log was shown while the build ran, not at its end"
    expect(log).to_contain_text("[count] progress-20", timeout=60_000)
    expect(state).to_have_text("Failed", timeout=120_000)
    expect(page.locator("[data-field=message]")).to_contain_text("exit code 3")
    screenshot(page, "portal-build-failed")

    page.get_by_role("button", name="Run", exact=True).click()
    expect(state).to_have_text("Running")
    expect(log).not_to_contain_text("progress-20", timeout=30_000)  # the new run's log started over
    expect(log).to_contain_text("[count] progress-2", timeout=300_000)
    page.get_by_role("button", name="Cancel run").click()
    expect(state).to_have_text("Canceled", timeout=60_000)
    assert get_template(server.url, "counting")["properties"]["lastRunStatus"]["runState"] == "Canceled"
    screenshot(page, "portal-build-canceled")
