"""Changing things in the portal, in a real browser: a version's updatable properties, a gallery's
sharing with a subscription; and browsing every kind of resource, also at phone width."""

from __future__ import annotations

import pytest

from . import admin_http as httpx
from .browser import screenshot
from .portal_helpers import COMPUTE, definition, empty_snapshot, gallery, portal, version, wait_succeeded
from .sdk_helpers import GALLERY_API, make_group
from .servers import ThreadServer

# Browser flows past the core ones (test_portal_core, _access, _sign_in): CI runs them; the
# quick suite (-m "not slow") leaves them out to stay within its five minutes.
pytestmark = pytest.mark.slow

expect = pytest.importorskip("playwright.sync_api").expect
OTHER_SUBSCRIPTION = "11111111-2222-3333-4444-555555555555"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with ThreadServer(tmp_path_factory.mktemp("portal-manage")) as running:
        yield running


def _get(url: str, resource_id: str) -> dict:
    return httpx.get(f"{url}{resource_id}", params={"api-version": GALLERY_API}).json()


def test_edit_a_versions_tags_exclusion_end_of_life_and_regions(browser, server):
    definition_id = definition(server.url, gallery(server.url, "editgallery"), "edited")
    version_id = f"{definition_id}/versions/1.0.0"
    version(server.url, definition_id, "1.0.0", empty_snapshot(server.url, "editsnap"))
    wait_succeeded(server.url, version_id)
    page, console = portal(browser, server.url, server.token, f"/#/resource{version_id}")
    page.get_by_role("link", name="Edit", exact=True).click()
    page.get_by_label("Exclude from latest").check()
    page.get_by_label("End of life date").fill("2031-06-30")
    page.get_by_label("Tags").fill("stage=beta\nowner=images")
    page.get_by_role("button", name="Add a target region").click()
    page.get_by_label("Target region 2", exact=True).select_option("westus2")
    page.get_by_role("button", name="Review + save").click()
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("1.0.0")
    replication = page.get_by_role("table", name="Replication by region")
    expect(replication.get_by_role("row").filter(has_text="westus2")).to_contain_text("Completed", timeout=30_000)
    changed = _get(server.url, version_id)
    profile = changed["properties"]["publishingProfile"]
    assert changed["tags"] == {"stage": "beta", "owner": "images"}
    assert profile["excludeFromLatest"] is True
    assert profile["endOfLifeDate"].startswith("2031-06-30")
    assert sorted(r["name"].lower().replace(" ", "") for r in profile["targetRegions"]) == ["eastus", "westus2"]
    screenshot(page, "portal-manage-version-edited")
    console.assert_clean()


def test_share_a_gallery_with_a_subscription_and_stop(browser, server):
    gallery_id = gallery(server.url, "sharedgallery")
    page, console = portal(browser, server.url, server.token, f"/#/resource{gallery_id}")
    page.get_by_role("tab", name="Sharing").click()
    page.get_by_role("button", name="Allow sharing with subscriptions and tenants").click()
    page.get_by_label("Share with").select_option("Subscriptions")
    page.get_by_label("Subscription or tenant id").fill(OTHER_SUBSCRIPTION)
    page.get_by_role("button", name="Share", exact=True).click()
    expect(page.get_by_role("tabpanel").get_by_role("row").filter(has_text=OTHER_SUBSCRIPTION)).to_have_count(1)
    groups = httpx.get(f"{server.url}{gallery_id}", params={"api-version": GALLERY_API, "$select": "Permissions"}
                       ).json()["properties"]["sharingProfile"]["groups"]
    assert {"type": "Subscriptions", "ids": [OTHER_SUBSCRIPTION]} in groups
    screenshot(page, "portal-manage-shared")
    page.get_by_role("button", name=f"Stop sharing with {OTHER_SUBSCRIPTION}").click()
    expect(page.get_by_role("tabpanel").get_by_role("row").filter(has_text=OTHER_SUBSCRIPTION)).to_have_count(0)
    console.assert_clean()


@pytest.mark.parametrize("kind, title", [("galleries", "Galleries"), ("disks", "Disks"), ("snapshots", "Snapshots"),
                                         ("images", "Managed images"), ("storageAccounts", "Storage accounts"),
                                         ("imageTemplates", "Image templates"), ("virtualMachines", "Virtual machines")])
def test_every_kind_has_a_searchable_list(browser, server, kind, title):
    empty_snapshot(server.url, "listedsnap")
    page, console = portal(browser, server.url, server.token, f"/#/browse/{kind}")
    expect(page.get_by_role("heading", level=1)).to_have_text(title)
    expect(page.get_by_role("searchbox", name=f"Search {title.lower()}")).to_be_visible()
    expect(page.get_by_role("table")).to_be_visible()
    if kind == "snapshots":
        expect(page.get_by_role("link", name="listedsnap")).to_be_visible()
    console.assert_clean()


def test_platform_images_page_and_phone_width(browser, server):
    page, console = portal(browser, server.url, server.token, "/#/platform-images")
    expect(page.get_by_role("heading", level=1)).to_have_text("Platform images")
    expect(page.get_by_role("table")).to_be_visible()
    console.assert_clean()

    gallery_id = gallery(server.url, "phonegallery")
    page, console = portal(browser, server.url, server.token, f"/#/resource{gallery_id}", width=390, height=844)
    expect(page.get_by_role("heading", level=1)).to_have_text("phonegallery")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    expect(page.get_by_role("navigation", name="Main")).to_be_hidden()
    page.get_by_role("button", name="Menu").click()
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()
    screenshot(page, "portal-manage-phone")
    console.assert_clean()


def test_a_storage_accounts_containers_and_blobs(browser, server):
    make_group(server.url)
    account_id = f"{COMPUTE.rsplit('/providers/', 1)[0]}/providers/Microsoft.Storage/storageAccounts/portalblobs"
    made = httpx.put(f"{server.url}{account_id}", params={"api-version": "2023-05-01"}, json={"location": "eastus"})
    assert made.status_code in (200, 201, 202), made.text
    from azure.storage.blob import BlobServiceClient
    key = httpx.post(f"{server.url}{account_id}/listKeys", params={"api-version": "2023-05-01"}).json()["keys"][0]["value"]
    blobs = BlobServiceClient(account_url=f"{server.url}/portalblobs",
                              credential={"account_name": "portalblobs", "account_key": key})
    blobs.create_container("images").upload_blob("notes.txt", b"hello from the data plane")
    page, console = portal(browser, server.url, server.token, f"/#/resource{account_id}")
    section = page.get_by_role("region", name="Containers and blobs")
    section.get_by_role("table", name="Containers").get_by_role("button", name="images").click()
    expect(section.get_by_role("table", name="Blobs in images")).to_contain_text("notes.txt")
    expect(section.get_by_role("table", name="Blobs in images")).to_contain_text("BlockBlob")
    screenshot(page, "portal-manage-storage")
    console.assert_clean()


def test_a_version_from_another_version(browser, server):
    gallery_id = gallery(server.url, "copygallery")
    source_definition = definition(server.url, gallery_id, "source")
    target_definition = definition(server.url, gallery_id, "target")
    version(server.url, source_definition, "1.0.0", empty_snapshot(server.url, "copysnap"))
    source_id = f"{source_definition}/versions/1.0.0"
    wait_succeeded(server.url, source_id)
    page, console = portal(browser, server.url, server.token, f"/#/create/version{target_definition}")
    page.get_by_label("Version number").fill("2.0.0")
    page.get_by_label("Source type").select_option("version")
    picker = page.get_by_label("Source", exact=True)
    expect(picker.locator("option", has_text="copygallery/source/1.0.0")).to_have_count(1)
    picker.select_option(source_id)
    page.get_by_role("button", name="Review + create").click()
    page.get_by_role("button", name="Create", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("2.0.0")
    made = wait_succeeded(server.url, f"{target_definition}/versions/2.0.0")
    assert made["properties"]["storageProfile"]["source"]["id"].lower() == source_id.lower()
    console.assert_clean()


def test_a_version_from_a_vhd_blob(browser, server):
    make_group(server.url)
    account_id = f"{COMPUTE.rsplit('/providers/', 1)[0]}/providers/Microsoft.Storage/storageAccounts/portalvhds"
    made = httpx.put(f"{server.url}{account_id}", params={"api-version": "2023-05-01"}, json={"location": "eastus"})
    assert made.status_code in (200, 201, 202), made.text
    uploaded = httpx.put(f"{server.url}/blob/portalvhds/vhds/os.vhd", content=b"\1" * 1024 * 1024, params={"format": "raw"})
    assert uploaded.status_code in (200, 201), uploaded.text
    definition_id = definition(server.url, gallery(server.url, "vhdgallery"), "fromvhd")
    page, console = portal(browser, server.url, server.token, f"/#/create/version{definition_id}")
    page.get_by_label("Version number").fill("1.0.0")
    page.get_by_label("Source type").select_option("vhd")
    page.get_by_label("Storage account").select_option(account_id)
    page.get_by_label("VHD blob").select_option("https://portalvhds.blob.core.windows.net/vhds/os.vhd")
    page.get_by_role("button", name="Review + create").click()
    page.get_by_role("button", name="Create", exact=True).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("1.0.0")
    expect(page.get_by_role("table", name="Replication by region").get_by_role("row").filter(has_text="eastus")
           ).to_contain_text("Completed", timeout=30_000)
    source = _get(server.url, f"{definition_id}/versions/1.0.0")["properties"]["storageProfile"]["osDiskImage"]["source"]
    assert source["uri"] == "https://portalvhds.blob.core.windows.net/vhds/os.vhd"
    console.assert_clean()
