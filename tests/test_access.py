"""Role-based access: seed 001's sharing matrix, across tenants, through the real SDK.

How we know: tenant A (the server's home tenant) publishes a gallery with two definitions and a
version in each; tenant B's service principal gets Reader at one level; every get, list, use as a
source, write and delete that B tries goes through the real azure-mgmt-compute client with B's
own token, and what changed is read back as A.
"""
from __future__ import annotations

import time
import uuid

import httpx
import pytest
from azure.core.pipeline.policies import SansIOHTTPPolicy
from azure.mgmt.compute import ComputeManagementClient

from . import admin_http
from .sdk_helpers import (RG, create_definition, create_gallery, create_snapshot, create_version, make_group,
                          quick_polls, sdk_rejects)
from .conftest import sdk_client
from .servers import SUBSCRIPTION, ThreadServer

ROLES_API = "api-version=2022-04-01"
READER = "acdd72a7-3385-48ef-bd42-f606fba81ae7"
CONTRIBUTOR = "b24988ac-6180-42a0-ab88-20f7382dd24c"
OWNER = "8e3af657-a8ff-443c-a75c-2fe8c4bcb635"
USER_ACCESS_ADMINISTRATOR = "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9"
SUB_B = "bbbbbbbb-0000-4000-8000-00000000000b"
GALLERY_ID = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RG}/providers/Microsoft.Compute/galleries/gal"


class Bearer(SansIOHTTPPolicy):
    def __init__(self, token: str) -> None:
        self.token = token

    def on_request(self, request):
        request.http_request.headers["Authorization"] = f"Bearer {self.token}"


def sdk_as(url: str, token: str, subscription: str = SUBSCRIPTION) -> ComputeManagementClient:
    from .conftest import AdminCredential
    return quick_polls(ComputeManagementClient(AdminCredential(url), subscription, base_url=url,
                                               authentication_policy=Bearer(token), polling_interval=1))


def sign_in(url: str, principal: dict) -> str:
    response = httpx.post(f"{url}/{principal['tenant']}/oauth2/v2.0/token", data={
        "grant_type": "client_credentials", "client_id": principal["appId"],
        "client_secret": principal["password"], "scope": f"{url}/.default"})
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def principal(url: str, tenant: str | None = None, token: str | None = None, **extra) -> dict:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = admin_http.post(f"{url}/providers/Galley.Identity/servicePrincipals", headers=headers,
                               json={"displayName": f"sp-{uuid.uuid4().hex[:6]}",
                                     **({"tenantId": tenant} if tenant else {}), **extra})
    assert response.status_code == 201, response.text
    return response.json()


def assign(url: str, scope: str, role: str, principal_id: str, token: str | None = None,
           expect: int = 201) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = admin_http.put(f"{url}{scope}/providers/Microsoft.Authorization/roleAssignments/{uuid.uuid4()}"
                              f"?{ROLES_API}", headers=headers, json={"properties": {
                                  "roleDefinitionId": f"/providers/Microsoft.Authorization/roleDefinitions/{role}",
                                  "principalId": principal_id, "principalType": "ServicePrincipal"}})
    assert response.status_code == expect, response.text
    return response


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Tenant A's gallery (two definitions, a version in each) and tenant B with a subscription
    of its own and a service principal."""
    with ThreadServer(tmp_path_factory.mktemp("access")) as server:
        url = server.url
        compute = quick_polls(sdk_client(url))
        make_group(url)
        create_gallery(compute)
        for name in ("d1", "d2"):
            create_definition(compute, name=name, sku=name)
        snapshot = create_snapshot(compute, size_gb=1)
        for name in ("d1", "d2"):
            create_version(compute, snapshot.id, definition=name)
        tenant_b = admin_http.post(f"{url}/providers/Galley.Identity/tenants", json={"displayName": "B"}).json()
        admin_b = principal(url, tenant_b["tenantId"])
        token_admin_b = sign_in(url, admin_b)
        # B's own subscription, made by B's principal (so B owns it), with a group to build into.
        made = httpx.post(f"{url}/providers/Galley.Identity/subscriptions", json={
            "displayName": "B", "subscriptionId": SUB_B}, headers={"Authorization": f"Bearer {token_admin_b}"})
        assert made.status_code == 201, made.text
        make_b = httpx.put(f"{url}/subscriptions/{SUB_B}/resourcegroups/rgb?api-version=2024-11-01",
                           json={"location": "eastus"}, headers={"Authorization": f"Bearer {token_admin_b}"})
        assert make_b.status_code == 201, make_b.text
        server.b = {"principal": admin_b, "token": token_admin_b}
        yield server


def definition_id(name: str) -> str:
    return f"{GALLERY_ID}/images/{name}"


def version_id(name: str) -> str:
    return f"{definition_id(name)}/versions/1.0.0"


@pytest.fixture
def shared(world):
    """B's principal given Reader at one level; the assignment is removed afterwards."""
    made = []

    def share(scope: str, role: str = READER) -> ComputeManagementClient:
        response = assign(world.url, scope, role, world.b["principal"]["id"])
        made.append(response.json()["id"])
        return sdk_as(world.url, world.b["token"])
    yield share
    for assignment_id in made:
        assert admin_http.delete(f"{world.url}{assignment_id}?{ROLES_API}").status_code == 200
    time.sleep(0.01)


# The seed's matrix: shared at → what B sees.
MATRIX = {
    "gallery": {"gallery": True, "definitions": {"d1", "d2"}, "versions": {"d1", "d2"}},
    "definition": {"gallery": False, "definitions": {"d1"}, "versions": {"d1"}},
    "version": {"gallery": False, "definitions": set(), "versions": {"d1"}},
}
SCOPES = {"gallery": GALLERY_ID, "definition": definition_id("d1"), "version": version_id("d1")}


@pytest.mark.parametrize("level", list(MATRIX))
def test_the_seeds_sharing_matrix(world, shared, level):
    expected = MATRIX[level]
    b = shared(SCOPES[level])
    # get
    if expected["gallery"]:
        assert b.galleries.get(RG, "gal").name == "gal"
    else:
        sdk_rejects(lambda: b.galleries.get(RG, "gal"), 403, "AuthorizationFailed")
    for name in ("d1", "d2"):
        if name in expected["definitions"]:
            assert b.gallery_images.get(RG, "gal", name).name == name
        else:
            sdk_rejects(lambda: b.gallery_images.get(RG, "gal", name), 403, "AuthorizationFailed")
        if name in expected["versions"]:
            assert b.gallery_image_versions.get(RG, "gal", name, "1.0.0").name == "1.0.0"
        else:
            sdk_rejects(lambda: b.gallery_image_versions.get(RG, "gal", name, "1.0.0"), 403, "AuthorizationFailed")
    # list: only what may be read
    assert [g.name for g in b.galleries.list_by_resource_group(RG)] == (["gal"] if expected["gallery"] else [])
    assert [g.name for g in b.galleries.list()] == (["gal"] if expected["gallery"] else [])
    if expected["definitions"] or level == "version":
        assert {d.name for d in b.gallery_images.list_by_gallery(RG, "gal")} == expected["definitions"]
    for name in ("d1", "d2"):
        if name in expected["versions"]:
            assert [v.name for v in b.gallery_image_versions.list_by_gallery_image(RG, "gal", name)] == ["1.0.0"]
        else:
            sdk_rejects(lambda: list(b.gallery_image_versions.list_by_gallery_image(RG, "gal", name)), 403,
                        "AuthorizationFailed")
    # write and delete: never
    sdk_rejects(lambda: b.gallery_images.begin_update(RG, "gal", "d1", {"properties": {"description": "x"}}).result(),
                403, "AuthorizationFailed")
    sdk_rejects(lambda: b.gallery_image_versions.begin_delete(RG, "gal", "d1", "1.0.0").result(), 403,
                "AuthorizationFailed")
    sdk_rejects(lambda: b.galleries.begin_delete(RG, "gal").result(), 403, "AuthorizationFailed")
    # use as a source, from B's own subscription
    b_own = sdk_as(world.url, world.b["token"], SUB_B)
    for name in ("d1", "d2"):
        disk = {"location": "eastus", "properties": {"creationData": {
            "createOption": "FromImage", "galleryImageReference": {"id": version_id(name)}}}}
        disk_name = f"from-{level}-{name}"
        if name in expected["versions"]:
            made = b_own.disks.begin_create_or_update("rgb", disk_name, disk).result()
            assert made.properties.creation_data.image_reference.id.lower() == version_id(name).lower()
        else:
            sdk_rejects(lambda: b_own.disks.begin_create_or_update("rgb", disk_name, disk).result(), 403,
                        "LinkedAuthorizationFailed")
    # nothing of A's changed
    admin = admin_http.get(f"{world.url}{definition_id('d1')}?api-version=2026-03-03").json()
    assert "description" not in admin["properties"]
    assert admin_http.get(f"{world.url}{version_id('d1')}?api-version=2026-03-03").status_code == 200


def test_without_a_share_tenant_b_reads_nothing_of_a(world):
    b = sdk_as(world.url, world.b["token"])
    error = sdk_rejects(lambda: b.galleries.get(RG, "gal"), 403, "InvalidAuthenticationTokenTenant")
    assert "wrong issuer" in error["message"]
    b_own = sdk_as(world.url, world.b["token"], SUB_B)
    disk = {"location": "eastus", "properties": {"creationData": {
        "createOption": "FromImage", "galleryImageReference": {"id": version_id("d1")}}}}
    sdk_rejects(lambda: b_own.disks.begin_create_or_update("rgb", "nope", disk).result(), 403,
                "LinkedAuthorizationFailed")
    listed = httpx.get(f"{world.url}/subscriptions?api-version=2022-12-01",
                       headers={"Authorization": f"Bearer {world.b['token']}"}).json()["value"]
    assert [s["subscriptionId"] for s in listed] == [SUB_B]


def test_a_removed_share_ends_access_at_once(world):
    response = assign(world.url, definition_id("d1"), READER, world.b["principal"]["id"])
    b = sdk_as(world.url, world.b["token"])
    assert b.gallery_images.get(RG, "gal", "d1").name == "d1"
    listed = httpx.get(f"{world.url}/subscriptions?api-version=2022-12-01",
                       headers={"Authorization": f"Bearer {world.b['token']}"}).json()["value"]
    assert {s["subscriptionId"] for s in listed} == {SUB_B, SUBSCRIPTION}
    assert admin_http.delete(f"{world.url}{response.json()['id']}?{ROLES_API}").status_code == 200
    sdk_rejects(lambda: b.gallery_images.get(RG, "gal", "d1"), 403)


# ---- escalation --------------------------------------------------------------------------------

def test_a_contributor_cannot_assign_roles_or_define_them(world):
    sp = principal(world.url)
    assign(world.url, f"/subscriptions/{SUBSCRIPTION}", CONTRIBUTOR, sp["id"])
    token = sign_in(world.url, sp)
    contributor = sdk_as(world.url, token)
    assert contributor.galleries.get(RG, "gal").name == "gal"  # it can do the work
    denied = assign(world.url, GALLERY_ID, READER, sp["id"], token=token, expect=403)
    assert denied.json()["error"]["code"] == "AuthorizationFailed"
    assert "Microsoft.Authorization/roleAssignments/write" in denied.json()["error"]["message"]
    role = httpx.put(f"{world.url}/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions/"
                     f"{uuid.uuid4()}?{ROLES_API}", headers={"Authorization": f"Bearer {token}"}, json={
                         "properties": {"roleName": "sneaky", "permissions": [{"actions": ["*"]}],
                                        "assignableScopes": [f"/subscriptions/{SUBSCRIPTION}"]}})
    assert role.status_code == 403, role.text
    share = httpx.post(f"{world.url}{GALLERY_ID}/share?api-version=2026-03-03", json={"operationType": "Add"},
                       headers={"Authorization": f"Bearer {token}"})
    assert share.status_code == 403  # Contributor's notActions: galleries/share/action


def test_a_group_level_access_administrator_cannot_assign_above_it(world):
    sp = principal(world.url)
    group_scope = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RG}"
    assign(world.url, group_scope, USER_ACCESS_ADMINISTRATOR, sp["id"])
    token = sign_in(world.url, sp)
    other = principal(world.url)
    assert assign(world.url, group_scope, READER, other["id"], token=token).status_code == 201
    above = assign(world.url, f"/subscriptions/{SUBSCRIPTION}", OWNER, sp["id"], token=token, expect=403)
    assert above.json()["error"]["code"] == "AuthorizationFailed"


def test_a_custom_role_is_limited_to_its_assignable_scopes(world):
    role_id = str(uuid.uuid4())
    definition_scope = definition_id("d2")
    made = admin_http.put(f"{world.url}/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/"
                          f"roleDefinitions/{role_id}?{ROLES_API}", json={"properties": {
                              "roleName": "Image publisher", "description": "publishes versions",
                              "permissions": [{"actions": ["Microsoft.Compute/galleries/images/versions/*"]}],
                              "assignableScopes": [definition_scope]}})
    assert made.status_code == 201, made.text
    sp = principal(world.url)
    outside = assign(world.url, GALLERY_ID, role_id, sp["id"], expect=403)
    assert outside.json()["error"]["code"] == "InvalidRoleAssignmentScope"
    assign(world.url, definition_scope, role_id, sp["id"])
    publisher = sdk_as(world.url, sign_in(world.url, sp))
    assert publisher.gallery_image_versions.get(RG, "gal", "d2", "1.0.0").name == "1.0.0"
    sdk_rejects(lambda: publisher.gallery_images.get(RG, "gal", "d2"), 403)  # only versions/*
    listed = admin_http.get(f"{world.url}/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/"
                            f"roleDefinitions?{ROLES_API}&$filter=roleName eq 'Image publisher'").json()["value"]
    assert [r["name"] for r in listed] == [role_id]
    in_use = admin_http.delete(f"{world.url}/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/"
                               f"roleDefinitions/{role_id}?{ROLES_API}")
    assert in_use.status_code == 409


def test_built_in_roles_are_listed_with_azures_ids(world):
    listed = admin_http.get(f"{world.url}/providers/Microsoft.Authorization/roleDefinitions?{ROLES_API}"
                            "&$filter=type eq 'BuiltInRole'").json()["value"]
    names = {r["properties"]["roleName"]: r["name"] for r in listed}
    assert names == {"Owner": OWNER, "Contributor": CONTRIBUTOR, "Reader": READER,
                     "User Access Administrator": USER_ACCESS_ADMINISTRATOR}
    reader = admin_http.get(f"{world.url}/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/"
                            f"roleDefinitions/{READER}?{ROLES_API}").json()
    assert reader["id"] == f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions/{READER}"
    assert reader["properties"]["permissions"][0]["actions"] == ["*/read"]


def test_assignments_inherit_and_list_with_filters(world):
    sp = principal(world.url)
    made = assign(world.url, GALLERY_ID, READER, sp["id"]).json()
    assert made["properties"]["scope"] == GALLERY_ID and made["properties"]["principalType"] == "ServicePrincipal"
    at_definition = admin_http.get(f"{world.url}{definition_id('d1')}/providers/Microsoft.Authorization/"
                                   f"roleAssignments?{ROLES_API}&$filter=atScope()").json()["value"]
    assert made["id"] in [a["id"] for a in at_definition]  # inherited from the gallery
    by_principal = admin_http.get(f"{world.url}/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/"
                                  f"roleAssignments?{ROLES_API}&$filter=principalId eq '{sp['id']}'").json()["value"]
    assert [a["id"] for a in by_principal] == [made["id"]]
    duplicate = assign(world.url, GALLERY_ID, READER, sp["id"], expect=409)
    assert duplicate.json()["error"]["code"] == "RoleAssignmentExists"
    unknown = admin_http.put(f"{world.url}{GALLERY_ID}/providers/Microsoft.Authorization/roleAssignments/"
                             f"{uuid.uuid4()}?{ROLES_API}", json={"properties": {
                                 "roleDefinitionId": READER, "principalId": str(uuid.uuid4())}})
    assert unknown.status_code == 400 and unknown.json()["error"]["code"] == "PrincipalNotFound"


def test_a_group_member_gets_the_groups_roles_and_loses_them_with_membership(world):
    group = admin_http.post(f"{world.url}/providers/Galley.Identity/groups", json={"displayName": "readers"}).json()
    sp = principal(world.url)
    token = sign_in(world.url, sp)
    reader = sdk_as(world.url, token)
    assign(world.url, GALLERY_ID, READER, group["id"])
    sdk_rejects(lambda: reader.galleries.get(RG, "gal"), 403)
    added = admin_http.post(f"{world.url}/providers/Galley.Identity/groups/{group['id']}/members",
                            json={"memberId": sp["id"]})
    assert added.status_code == 200 and added.json()["members"] == [sp["id"]]
    assert reader.galleries.get(RG, "gal").name == "gal"
    admin_http.delete(f"{world.url}/providers/Galley.Identity/groups/{group['id']}/members/{sp['id']}")
    sdk_rejects(lambda: reader.galleries.get(RG, "gal"), 403)


def test_a_principal_with_no_role_is_refused_everywhere_in_its_own_tenant(world):
    sp = principal(world.url)
    plain = sdk_as(world.url, sign_in(world.url, sp))
    sdk_rejects(lambda: plain.galleries.get(RG, "gal"), 403, "AuthorizationFailed")
    sdk_rejects(lambda: list(plain.galleries.list()), 403, "AuthorizationFailed")
    listed = httpx.get(f"{world.url}/subscriptions?api-version=2022-12-01",
                       headers={"Authorization": f"Bearer {sign_in(world.url, sp)}"}).json()["value"]
    assert listed == []


def test_a_resource_group_reader_by_its_exact_action_lists_that_group(world):
    role_id = str(uuid.uuid4())
    made = admin_http.put(f"{world.url}/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/"
                          f"roleDefinitions/{role_id}?{ROLES_API}", json={"properties": {
                              "roleName": "Group lister", "assignableScopes": [f"/subscriptions/{SUBSCRIPTION}"],
                              "permissions": [{"actions": ["Microsoft.Resources/subscriptions/resourceGroups/read"]}]}})
    assert made.status_code == 201, made.text
    sp = principal(world.url)
    assign(world.url, f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RG}", role_id, sp["id"])
    headers = {"Authorization": f"Bearer {sign_in(world.url, sp)}"}
    listed = httpx.get(f"{world.url}/subscriptions/{SUBSCRIPTION}/resourcegroups?api-version=2024-11-01",
                       headers=headers)
    assert listed.status_code == 200 and [g["name"] for g in listed.json()["value"]] == [RG]
