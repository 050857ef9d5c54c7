"""The portal's core in a real browser (Debian's chromium via Playwright): how it is served (security
headers, no inline script), creating a gallery → definition → version from a disk and watching it
replicate live, the ARM error shown next to its field, browsing with the JSON view and the
activity log, and deleting with a confirmation that names what depends on it."""

from __future__ import annotations

import re

import pytest

from . import admin_http as httpx
from .browser import screenshot
from .portal_helpers import (COMPUTE, CONTRIBUTOR, GROUP_ID, definition, disk_with_data, empty_snapshot, gallery,
                             portal, signed_in, user, version, wait_succeeded)
from .sdk_helpers import GALLERY_API
from .servers import ThreadServer

expect = pytest.importorskip("playwright.sync_api").expect


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with ThreadServer(tmp_path_factory.mktemp("portal-core")) as running:
        yield running


# ---- serving ----------------------------------------------------------------------------------

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; connect-src 'self'; "
       "frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'")


def test_the_page_and_its_files_are_served_with_the_security_headers_and_no_token(server):
    import httpx as plain  # no token: the page and its scripts are open, like /docs
    page = plain.get(server.url + "/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert page.headers["cache-control"] == "no-store"
    script = plain.get(server.url + "/portal/static/js/app.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    assert script.headers["etag"]
    assert plain.get(server.url + "/portal/static/js/app.js",
                     headers={"If-None-Match": script.headers["etag"]}).status_code == 304
    for answer in (page, script):
        assert answer.headers["content-security-policy"] == CSP
        assert answer.headers["x-content-type-options"] == "nosniff"
        assert answer.headers["referrer-policy"] == "no-referrer"
        assert answer.headers["x-frame-options"] == "DENY"
    # Data is not open: the API still wants a token; nothing outside static/ is served.
    assert plain.get(server.url + f"{GROUP_ID}?api-version=2024-11-01").status_code == 401
    assert plain.get(server.url + "/portal/static/../routes.py").status_code in (401, 404)
    assert plain.get(server.url + "/portal/static/nothing.js").status_code == 404


def test_no_page_uses_inline_script_or_style():
    """The CSP would block them; this finds them before a browser does."""
    from galley.portal.routes import STATIC
    html = (STATIC / "index.html").read_text()
    assert re.findall(r"<script(?![^>]*\bsrc=)[^>]*>", html) == []
    offenders = []
    for path in STATIC.rglob("*"):
        if path.suffix in (".html", ".js") and "vendor" not in path.parts:
            text = path.read_text()
            if re.search(r"\s(style|on[a-z]+)=\"", text) or ".innerHTML" in text or "eval(" in text:
                offenders.append(str(path.relative_to(STATIC)))
    assert offenders == []


# ---- create, watch, latest --------------------------------------------------------------------

@pytest.mark.slow
def test_create_gallery_definition_and_version_from_a_disk_and_watch_it_replicate(browser, server, tmp_path):
    disk_id = disk_with_data(server.url, tmp_path)
    user(server.url, "builder", CONTRIBUTOR)  # a person, signed in through the sign-in page
    page, console = signed_in(browser, server.url, "builder")
    expect(page.locator(".account")).to_contain_text("builder")

    # A gallery
    page.get_by_role("link", name="Create a gallery").first.click()
    page.get_by_label("Resource group", exact=True).select_option("rg")
    page.get_by_label("Gallery name").fill("portalgallery")
    page.get_by_label("Description").fill("made in the portal")
    page.get_by_role("button", name="Review + create").click()
    expect(page.get_by_role("region", name="Review")).to_contain_text("portalgallery")
    page.get_by_role("button", name="Create", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("portalgallery")

    # An image definition in it
    page.get_by_role("link", name="Add an image definition").click()
    page.get_by_label("Image definition name").fill("web")
    page.get_by_label("Operating system", exact=True).select_option("Linux")
    page.get_by_label("VM generation").select_option("V2")
    page.get_by_label("Publisher").fill("contoso")
    page.get_by_label("Offer").fill("web")
    page.get_by_label("SKU").fill("prod")
    page.get_by_label("Recommended vCPUs (min)").fill("2")
    page.get_by_label("Accelerated networking supported").check()
    page.get_by_role("button", name="Review + create").click()
    page.get_by_role("button", name="Create", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("web")
    definition_id = f"{COMPUTE}/galleries/portalgallery/images/web"
    made = httpx.get(f"{server.url}{definition_id}", params={"api-version": GALLERY_API}).json()
    assert made["properties"]["identifier"] == {"publisher": "contoso", "offer": "web", "sku": "prod"}
    assert made["properties"]["recommended"]["vCPUs"]["min"] == 2
    assert {"name": "IsAcceleratedNetworkSupported", "value": "True"} in made["properties"]["features"]

    # A first version through the API, so that `latest` has something to change from.
    version(server.url, definition_id, "0.9.0", disk_id)
    wait_succeeded(server.url, f"{definition_id}/versions/0.9.0")
    page.reload()
    expect(page.locator(".latest")).to_contain_text("Latest version: 0.9.0")

    # The version: from the disk, to two regions
    page.get_by_role("link", name="Create a version").click()
    page.get_by_label("Version number").fill("1.0.0")
    page.get_by_label("Source type").select_option("disk")
    page.get_by_label("OS disk or snapshot").select_option(disk_id)
    page.get_by_role("button", name="Add a target region").click()
    page.get_by_label("Target region 2", exact=True).select_option("westus2")
    page.get_by_label("Replicas").nth(1).fill("2")
    page.get_by_role("button", name="Review + create").click()
    review = page.get_by_role("region", name="Review")
    expect(review).to_contain_text("westus2 ×2")
    page.get_by_role("button", name="Create", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("1.0.0")
    page.evaluate("window.__sameDocument = true")  # gone if the page reloaded

    replication = page.get_by_role("table", name="Replication by region")
    expect(replication.get_by_role("row")).to_have_count(3, timeout=30_000)
    for region in ("eastus", "westus2"):
        row = replication.get_by_role("row").filter(has_text=region)
        expect(row).to_contain_text("Completed", timeout=60_000)
        expect(row).to_contain_text("100%")
    expect(page.locator(".latest")).to_contain_text("1.0.0", timeout=10_000)
    assert page.evaluate("window.__sameDocument") is True
    screenshot(page, "portal-core-version-replicated")
    console.assert_clean()


def test_a_bad_version_name_shows_the_arm_error_next_to_its_field_and_creates_nothing(browser, server):
    gallery_id = gallery(server.url, "namesgallery")
    definition_id = definition(server.url, gallery_id, "names")
    snapshot_id = empty_snapshot(server.url, "namesnap")
    page, console = portal(browser, server.url, server.token, f"/#/create/version{definition_id}")
    page.get_by_label("Version number").fill("1.0")
    page.get_by_label("OS disk or snapshot").select_option(snapshot_id)
    page.get_by_role("button", name="Review + create").click()
    page.get_by_role("button", name="Create", exact=True).click()
    name = page.get_by_label("Version number")
    expect(name).to_have_attribute("aria-invalid", "true")
    message = page.locator(f"#{name.get_attribute('id')}-error")
    expect(message).to_contain_text("such as 1.0.0")
    expect(message).to_be_visible()
    screenshot(page, "portal-core-version-name-error")
    listed = httpx.get(f"{server.url}{definition_id}/versions", params={"api-version": GALLERY_API}).json()
    assert listed["value"] == []
    console.assert_clean()


# ---- browse -----------------------------------------------------------------------------------

def test_a_resource_page_shows_properties_tags_json_and_activity_log(browser, server):
    gallery_id = gallery(server.url, "browsegallery")
    httpx.patch(f"{server.url}{gallery_id}", params={"api-version": GALLERY_API}, json={"tags": {"team": "images"}})
    page, console = portal(browser, server.url, server.token, "/#/browse/galleries")
    page.get_by_label("Search galleries").fill("browse")
    page.get_by_role("link", name="browsegallery").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("browsegallery")
    expect(page.get_by_role("list", name="Tags")).to_contain_text("team: images")
    expect(page.locator("dl.props")).to_contain_text("eastus")

    page.get_by_role("tab", name="JSON View").click()
    shown = page.get_by_label("Resource JSON").inner_text()
    import json
    assert json.loads(shown)["id"].lower() == gallery_id.lower()
    assert json.loads(shown)["tags"] == {"team": "images"}

    page.get_by_role("tab", name="Activity log").click()
    events = page.get_by_role("tabpanel").filter(has_text="Activity log").get_by_role("row")
    expect(events.filter(has_text="Microsoft.Compute/galleries/write").first).to_be_visible()
    screenshot(page, "portal-core-activity-log")
    console.assert_clean()


# ---- delete -----------------------------------------------------------------------------------

def test_delete_names_what_depends_on_it_and_deletes_after_confirmation(browser, server):
    gallery_id = gallery(server.url, "deletegallery")
    definition(server.url, gallery_id, "keep-a")
    empty_id = definition(server.url, gallery_id, "empty-b")
    page, console = portal(browser, server.url, server.token, f"/#/resource{gallery_id}")
    page.get_by_role("button", name="Delete").click()
    dialog = page.get_by_role("dialog")
    expect(dialog).to_contain_text("2 image definitions")
    expect(dialog.get_by_role("listitem")).to_have_text(["empty-b", "keep-a"])
    screenshot(page, "portal-core-delete-confirmation")
    dialog.get_by_role("button", name="Cancel").click()
    assert httpx.get(f"{server.url}{gallery_id}", params={"api-version": GALLERY_API}).status_code == 200

    page.goto(f"{server.url}/#/resource{empty_id}")
    page.get_by_role("button", name="Delete").click()
    expect(page.get_by_role("dialog")).to_contain_text("Nothing depends on empty-b")
    page.get_by_role("dialog").get_by_role("button", name="Delete").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("deletegallery")
    assert httpx.get(f"{server.url}{empty_id}", params={"api-version": GALLERY_API}).status_code == 404
    console.assert_clean()
