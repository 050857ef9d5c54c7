"""`galley role …` and `galley ad group …`, run in-process against a server, as a user types them."""
from __future__ import annotations

import httpx
import pytest

from .servers import SUBSCRIPTION, ThreadServer

GALLERY = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg/providers/Microsoft.Compute/galleries/gal"


@pytest.fixture
def cli_server(tmp_path, monkeypatch):
    for name in [name for name in __import__("os").environ if name.startswith("GALLEY_")]:
        monkeypatch.delenv(name)
    with ThreadServer(tmp_path) as running:
        yield running


def token_of(url: str, sp: dict) -> str:
    return httpx.post(f"{url}/{sp['tenant']}/oauth2/v2.0/token", data={
        "grant_type": "client_credentials", "client_id": sp["appId"], "client_secret": sp["password"],
        "scope": f"{url}/.default"}).json()["access_token"]


def test_role_assignment_create_list_delete(galley, cli_server):
    galley("group", "create", "-n", "rg", "-l", "eastus")
    galley("sig", "create", "-g", "rg", "-r", "gal")
    sp = galley("ad", "sp", "create-for-rbac", "--name", "reader").json()
    object_id = galley("ad", "sp", "show", "--id", sp["appId"]).json()["id"]
    headers = {"Authorization": f"Bearer {token_of(cli_server.url, sp)}"}
    gallery_url = f"{cli_server.url}{GALLERY}?api-version=2026-03-03"
    assert httpx.get(gallery_url, headers=headers).status_code == 403
    made = galley("role", "assignment", "create", "--role", "Reader", "--assignee-object-id", object_id,
                  "--assignee-principal-type", "ServicePrincipal", "--scope", GALLERY).json()
    assert made["roleDefinitionName"] == "Reader" and made["scope"] == GALLERY
    assert httpx.get(gallery_url, headers=headers).status_code == 200
    listed = galley("role", "assignment", "list", "--scope", GALLERY).json()
    assert [(a["principalId"], a["roleDefinitionName"]) for a in listed] == [(object_id, "Reader")]
    table = galley("role", "assignment", "list", "--assignee", object_id, "-o", "table").stdout
    assert "Reader" in table and object_id in table
    galley("role", "assignment", "delete", "--role", "Reader", "--assignee", object_id, "--scope", GALLERY)
    assert galley("role", "assignment", "list", "--scope", GALLERY).json() == []
    assert httpx.get(gallery_url, headers=headers).status_code == 403


def test_role_definitions_and_a_custom_role(galley, cli_server):
    names = {r["roleName"] for r in galley("role", "definition", "list").json()}
    assert {"Owner", "Contributor", "Reader", "User Access Administrator"} <= names
    made = galley("role", "definition", "create", "--role-definition",
                  '{"Name": "Image publisher", "Actions": ["Microsoft.Compute/galleries/images/versions/*"], '
                  f'"AssignableScopes": ["/subscriptions/{SUBSCRIPTION}"]}}').json()
    assert made["properties"]["type"] == "CustomRole"
    [found] = galley("role", "definition", "list", "--custom-role-only").json()
    assert found["roleName"] == "Image publisher"
    galley("role", "definition", "delete", "--name", "Image publisher")
    assert galley("role", "definition", "list", "--custom-role-only").json() == []


def test_groups_carry_roles_to_their_members(galley, cli_server):
    galley("group", "create", "-n", "rg", "-l", "eastus")
    sp = galley("ad", "sp", "create-for-rbac", "--name", "member").json()
    object_id = galley("ad", "sp", "show", "--id", sp["appId"]).json()["id"]
    group = galley("ad", "group", "create", "--display-name", "readers").json()
    galley("ad", "group", "member", "add", "--group", group["id"], "--member-id", object_id)
    assert galley("ad", "group", "show", "--group", group["id"]).json()["members"] == [object_id]
    galley("role", "assignment", "create", "--role", "Reader", "--assignee-object-id", group["id"],
           "--scope", f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg")
    headers = {"Authorization": f"Bearer {token_of(cli_server.url, sp)}"}
    answer = httpx.get(f"{cli_server.url}/subscriptions/{SUBSCRIPTION}/resourcegroups/rg?api-version=2024-11-01",
                       headers=headers)
    assert answer.status_code == 200
    denied = galley("role", "assignment", "create", "--role", "Owner", "--assignee-object-id", "not-a-guid",
                    check=False)
    assert denied.code == 1 and "ERROR:" in denied.stderr
