"""A definition with 10,000 versions in the portal: its page reads one page of the API's list and
draws one page of rows; Next and the search box go further. (How fast: benchmarks/portal.py.)"""

from __future__ import annotations

import pytest

from .browser import screenshot
from .portal_helpers import definition, empty_snapshot, gallery, portal, seed_versions
from .servers import ThreadServer

expect = pytest.importorskip("playwright.sync_api").expect
VERSIONS = 10_000


@pytest.fixture(scope="module")
def many(tmp_path_factory):
    with ThreadServer(tmp_path_factory.mktemp("portal-lists"), run_worker=False) as server:
        definition_id = definition(server.url, gallery(server.url, "biggallery"), "many")
        snapshots = [empty_snapshot(server.url, f"manysnap{i}") for i in range(20)]
        seed_versions(server.app, definition_id, VERSIONS, snapshots)
        yield server, definition_id


@pytest.mark.slow
def test_ten_thousand_versions_open_as_one_page_of_rows(browser, many):
    server, definition_id = many
    page, console = portal(browser, server.url, server.token, f"/#/resource{definition_id}")
    versions = page.get_by_role("region", name="versions", exact=True)
    expect(versions.get_by_role("status")).to_have_text("Versions 1–50 of 1000+", timeout=30_000)
    expect(versions.locator("tbody tr")).to_have_count(50)
    expect(versions.locator("tbody tr").first).to_contain_text("1.0.0")
    screenshot(page, "portal-lists-first-page")

    first_row = versions.locator("tbody tr").first.inner_text()
    requests = []
    page.on("request", lambda r: requests.append(r.url) if "/versions" in r.url else None)
    versions.get_by_role("button", name="Next").click()
    expect(versions.get_by_role("status")).to_have_text("Versions 51–100 of 1000+")
    expect(versions.locator("tbody tr")).to_have_count(50)
    assert versions.locator("tbody tr").first.inner_text() != first_row
    assert requests == []  # the API's first page (1,000 versions) holds the first 20 pages of rows

    versions.get_by_label("Search versions").fill("1.9.999")
    expect(versions.get_by_role("status")).to_have_text("Versions 1–1 of 1", timeout=60_000)
    expect(versions.locator("tbody tr")).to_have_count(1)
    console.assert_clean()
