"""Every portal page through axe-core (the copy bundled with axe-playwright-python), at 1280×720
and at phone width (390×844): no critical (nor serious) violations.

axe is injected with Playwright's add_script_tag, which the portal's CSP (scripts from 'self'
only) would refuse: these tests' browser contexts bypass the CSP, and only these.

Pages: home, every navigation entry (the browse lists, platform images, upload, usage), the
create forms, an edit form, and resource pages of each kind with data (gallery, definition,
version, disk, image template, VM) with each of their tabs shown.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from . import admin_http as httpx
from .browser import TOKEN_KEY, screenshot
from .sdk_helpers import RG, SUBSCRIPTION, make_group
from .servers import ThreadServer

axe_package = pytest.importorskip("axe_playwright_python")
expect = pytest.importorskip("playwright.sync_api").expect

AXE = Path(axe_package.__file__).parent / "axe.min.js"
MiB = 1024 * 1024
GROUP = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RG}"
GALLERY = f"{GROUP}/providers/Microsoft.Compute/galleries/gal"
DEFINITION = f"{GALLERY}/images/def"
VERSION = f"{DEFINITION}/versions/1.0.0"
DISK = f"{GROUP}/providers/Microsoft.Compute/disks/src"
TEMPLATE = f"{GROUP}/providers/Microsoft.VirtualMachineImages/imageTemplates/tpl"
VM = f"{GROUP}/providers/Microsoft.Compute/virtualMachines/vm1"
API = {"disks": "2024-03-02", "galleries": "2024-03-03", "virtualMachines": "2024-07-01",
       "imageTemplates": "2024-02-01"}


def api_of(resource_id: str) -> str:
    return next(v for k, v in API.items() if f"/{k}/" in resource_id)


def put(url: str, resource_id: str, body: dict) -> None:
    response = httpx.put(f"{url}{resource_id}", params={"api-version": api_of(resource_id)}, json=body)
    assert response.status_code in (200, 201, 202), response.text
    deadline = time.time() + 60
    while (state := httpx.get(f"{url}{resource_id}", params={"api-version": api_of(resource_id)}).json()
           ["properties"].get("provisioningState")) not in ("Succeeded", None):
        assert state not in ("Failed", "Canceled") and time.time() < deadline, state
        time.sleep(0.2)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    os.environ.setdefault("GALLEY_QEMU_ACCEL", "tcg")
    with ThreadServer(tmp_path_factory.mktemp("portal-a11y"), vm_stop_grace=2.0, vm_provisioning_timeout=0) as server:
        url = server.url
        make_group(url)
        put(url, DISK, {"location": "eastus", "properties": {"creationData": {"createOption": "Empty"},
                                                             "diskSizeGB": 1, "osType": "Linux"}})
        data = bytearray(32 * MiB)
        data[MiB:MiB + 4096] = os.urandom(4096)
        assert httpx.put(f"{url}{DISK}/upload", params={"api-version": API["disks"]},
                         content=bytes(data)).status_code == 200
        put(url, GALLERY, {"location": "eastus", "tags": {"team": "images"}})
        put(url, DEFINITION, {"location": "eastus", "properties": {
            "osType": "Linux", "osState": "Specialized", "identifier": {"publisher": "p", "offer": "o", "sku": "s"}}})
        put(url, VERSION, {"location": "eastus", "properties": {
            "storageProfile": {"osDiskImage": {"source": {"id": DISK}}}}})
        put(url, TEMPLATE, {"location": "eastus", "properties": {
            "source": {"type": "PlatformImage", "publisher": "Debian", "offer": "debian-12", "sku": "12",
                       "version": "latest"},
            "customize": [{"type": "Shell", "name": "hello", "inline": ["echo hello"]}],
            "distribute": [{"type": "SharedImage", "galleryImageId": DEFINITION, "runOutputName": "sig",
                            "replicationRegions": ["eastus"]}]}})
        put(url, VM, {"location": "eastus", "properties": {"hardwareProfile": {"vmSize": "Standard_B1ls"},
                                                           "storageProfile": {"imageReference": {"id": VERSION}}}})
        yield server
        httpx.delete(f"{url}{VM}", params={"api-version": API["virtualMachines"]})
        machines = server.app.state.compute.machines
        for key in machines.running():
            machines.forget(key)


def axe_page(browser, server, width: int, height: int):
    """A signed-in page whose context bypasses the CSP, so that axe can be injected."""
    context = browser.new_context(viewport={"width": width, "height": height}, bypass_csp=True)
    context.set_default_timeout(15_000)
    page = context.new_page()
    record = json.dumps({"accessToken": server.token, "expiresOn": 4102444800})
    page.add_init_script(f"sessionStorage.setItem({json.dumps(TOKEN_KEY)}, {json.dumps(record)});")
    return page


def show(page, url: str, hash_: str) -> None:
    page.goto(f"{url}/{hash_}")
    expect(page.locator("main h1").first).to_be_visible()
    expect(page.locator("main [role=status]", has_text="Loading…")).to_have_count(0)


def check_with_axe(page, where: str, found: dict) -> None:
    page.add_script_tag(path=str(AXE))
    result = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
    for violation in result["violations"]:
        if violation["impact"] in ("critical", "serious"):
            found.setdefault(violation["impact"], []).append(
                f"{where}: {violation['id']} ({violation['help']}) at "
                f"{[node['target'] for node in violation['nodes']][:5]}")


def pages_to_check(page, url: str) -> list[str]:
    show(page, url, "#/")
    nav = page.locator("nav a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    return list(dict.fromkeys(["#/", *nav, "#/upload", "#/usage", "#/create/gallery",
                               f"#/create/definition{GALLERY}", f"#/create/version{DEFINITION}",
                               f"#/edit{GALLERY}"]))


RESOURCES = (GALLERY, DEFINITION, VERSION, DISK, TEMPLATE, VM)


@pytest.mark.slow  # every page, twice, with axe: about half a minute each
@pytest.mark.parametrize("width,height", [(1280, 720), (390, 844)], ids=["desktop", "phone"])
def test_no_page_has_critical_or_serious_accessibility_violations(browser, server, width, height):
    page = axe_page(browser, server, width, height)
    found: dict[str, list[str]] = {}
    for hash_ in pages_to_check(page, server.url):
        show(page, server.url, hash_)
        check_with_axe(page, hash_, found)
    for resource in RESOURCES:
        show(page, server.url, f"#/resource{resource}")
        tabs = page.get_by_role("tab")
        for i in range(max(tabs.count(), 1)):
            name = tabs.nth(i).text_content() if tabs.count() else "page"
            if tabs.count():
                tabs.nth(i).click()
            check_with_axe(page, f"#/resource{resource} [{name}]", found)
    screenshot(page, f"portal-a11y-vm-{width}")
    problems = found.get("critical", []) + found.get("serious", [])
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("width,height", [(1280, 720), (390, 844)], ids=["desktop", "phone"])
def test_the_sign_in_page_has_no_critical_or_serious_accessibility_violations(browser, server, width, height):
    context = browser.new_context(viewport={"width": width, "height": height}, bypass_csp=True)
    page = context.new_page()
    page.goto(f"{server.url}/")  # no token: the portal sends the browser to the authority's sign-in page
    expect(page.get_by_label("Password")).to_be_visible()
    found: dict[str, list[str]] = {}
    check_with_axe(page, "sign-in", found)
    problems = found.get("critical", []) + found.get("serious", [])
    assert not problems, "\n".join(problems)
