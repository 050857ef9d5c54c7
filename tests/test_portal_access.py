"""Access control in the portal, in a real browser: role assignments on a scope (inherited ones
marked, add, remove) and what a Reader of one image definition sees — that definition and its
versions only, no delete offered, and a delete forged from the page refused by the API."""

from __future__ import annotations

import pytest

from . import admin_http as httpx
from .browser import screenshot
from .portal_helpers import (READER, assign_role, definition, empty_snapshot, gallery, portal, signed_in, user, version,
                             wait_succeeded)
from .sdk_helpers import GALLERY_API
from .servers import ThreadServer

expect = pytest.importorskip("playwright.sync_api").expect
AUTHORIZATION_API = "2022-04-01"


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A gallery with two definitions, one version in each, and a second user (no role yet)."""
    with ThreadServer(tmp_path_factory.mktemp("portal-access")) as server:
        gallery_id = gallery(server.url, "accessgallery")
        shown = definition(server.url, gallery_id, "shown")
        hidden = definition(server.url, gallery_id, "hidden")
        snapshot = empty_snapshot(server.url, "accesssnap")
        for definition_id in (shown, hidden):
            version(server.url, definition_id, "1.0.0", snapshot)
            wait_succeeded(server.url, f"{definition_id}/versions/1.0.0")
        reader = user(server.url, "portal-reader")
        yield {"server": server, "gallery": gallery_id, "shown": shown, "hidden": hidden, "reader": reader}


def _assignments(url: str, scope: str, principal_id: str) -> list[dict]:
    listed = httpx.get(f"{url}{scope}/providers/Microsoft.Authorization/roleAssignments",
                       params={"api-version": AUTHORIZATION_API, "$filter": "atScope()"}).json()["value"]
    return [a for a in listed if a["properties"]["principalId"] == principal_id
            and a["properties"]["scope"].lower() == scope.lower()]


def test_assign_and_remove_a_role_on_a_definition_with_inherited_roles_marked(browser, world):
    server, scope, reader = world["server"], world["hidden"], world["reader"]
    page, console = portal(browser, server.url, server.token, f"/#/resource{scope}")
    page.get_by_role("tab", name="Access control (IAM)").click()
    table = page.get_by_role("table", name="Role assignments")
    expect(table.get_by_role("row").filter(has_text="Owner").first).to_contain_text("Inherited")

    page.get_by_label("Principal", exact=True).select_option(reader["id"])
    page.get_by_label("Role", exact=True).select_option(label="Reader")
    page.get_by_role("button", name="Add role assignment").click()
    row = page.get_by_role("table", name="Role assignments").get_by_role("row").filter(has_text="portal-reader")
    expect(row).to_contain_text("Reader")
    expect(row).not_to_contain_text("Inherited")
    made = _assignments(server.url, scope, reader["id"])
    assert [a["properties"]["roleDefinitionId"].rsplit("/", 1)[1] for a in made] == [READER]
    screenshot(page, "portal-access-assigned")

    row.get_by_role("button", name="Remove").click()
    page.get_by_role("dialog").get_by_role("button", name="Remove").click()
    expect(page.get_by_role("table", name="Role assignments").get_by_role("row").filter(has_text="portal-reader")).to_have_count(0)
    assert _assignments(server.url, scope, reader["id"]) == []
    console.assert_clean()


@pytest.mark.slow
def test_a_reader_of_one_definition_sees_only_it_and_cannot_delete(browser, world):
    server, reader = world["server"], world["reader"]
    assign_role(server.url, world["shown"], READER, reader["id"])

    page, console = signed_in(browser, server.url, "portal-reader")
    resources = page.get_by_role("region", name="resources", exact=True)
    expect(resources.get_by_role("row").filter(has_text="shown")).to_have_count(1)
    names = resources.locator("tbody tr td:first-child").all_inner_texts()
    assert sorted(names) == ["1.0.0", "shown"]  # its version, and nothing of the other definition
    screenshot(page, "portal-access-reader-home")

    page.goto(f"{server.url}/#/resource{world['shown']}")
    expect(page.get_by_role("heading", level=1)).to_have_text("shown")
    versions = page.get_by_role("region", name="versions", exact=True)
    expect(versions.get_by_role("link", name="1.0.0")).to_be_visible()
    toolbar = page.get_by_role("toolbar", name="Actions")
    expect(toolbar).to_have_attribute("aria-busy", "false")  # the user's permissions are known
    expect(page.get_by_role("button", name="Delete")).to_have_count(0)
    expect(page.get_by_role("link", name="Edit", exact=True)).to_have_count(0)
    expect(page.get_by_role("link", name="Create a version")).to_have_count(0)
    screenshot(page, "portal-access-reader-definition")

    status = page.evaluate("""async (id) => {
        const token = JSON.parse(sessionStorage.getItem('galley.portal.token')).accessToken;
        const answer = await fetch(id + '?api-version=2024-03-03', {method: 'DELETE', headers: {Authorization: 'Bearer ' + token}});
        return [answer.status, (await answer.json()).error.code];
    }""", world["shown"])
    assert status == [403, "AuthorizationFailed"]
    assert httpx.get(f"{server.url}{world['shown']}", params={"api-version": GALLERY_API}).status_code == 200

    page.goto(f"{server.url}/#/resource{world['hidden']}")
    expect(page.get_by_role("alert")).to_contain_text("AuthorizationFailed")
    console.assert_clean()
