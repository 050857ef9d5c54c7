"""User-assigned managed identities: the resource, its principal in role assignments, and who may
give one to an image template (Microsoft.ManagedIdentity/userAssignedIdentities/assign/action).
Builds acting as the identity are in tests/test_builds.py."""
from __future__ import annotations

import time
import uuid

import httpx
import pytest

from . import admin_http
from .conftest import sdk_client
from .sdk_helpers import create_snapshot, quick_polls
from .servers import SUBSCRIPTION, ThreadServer
from .test_access import ROLES_API, assign, principal, sign_in

API = "api-version=2023-01-31"
GROUP = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg"
IDENTITIES = f"{GROUP}/providers/Microsoft.ManagedIdentity/userAssignedIdentities"
TEMPLATES = f"{GROUP}/providers/Microsoft.VirtualMachineImages/imageTemplates"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with ThreadServer(tmp_path_factory.mktemp("identities")) as running:
        assert admin_http.put(f"{running.url}{GROUP}?api-version=2024-11-01",
                              json={"location": "eastus"}).status_code == 201
        compute = quick_polls(sdk_client(running.url))
        snapshot = create_snapshot(compute, size_gb=1)
        compute.images.begin_create_or_update("rg", "img", {"location": "eastus", "properties": {
            "storageProfile": {"osDisk": {"osType": "Linux", "osState": "Generalized",
                                          "snapshot": {"id": snapshot.id}}}}}).result()
        yield running


def make_identity(url: str, name: str) -> dict:
    response = admin_http.put(f"{url}{IDENTITIES}/{name}?{API}", json={"location": "eastus", "tags": {"a": "1"}})
    assert response.status_code == 201, response.text
    deadline = time.time() + 10
    while True:
        body = admin_http.get(f"{url}{IDENTITIES}/{name}?{API}").json()
        if body["properties"].get("provisioningState") == "Succeeded":
            return body
        assert time.time() < deadline
        time.sleep(0.05)


def template_body(identity_id: str | None) -> dict:
    body = {"location": "eastus", "properties": {
        "source": {"type": "ManagedImage", "imageId": f"{GROUP}/providers/Microsoft.Compute/images/img"},
        "distribute": [{"type": "ManagedImage", "imageId": f"{GROUP}/providers/Microsoft.Compute/images/out",
                        "location": "eastus", "runOutputName": "out"}]}}
    if identity_id:
        body["identity"] = {"type": "UserAssigned", "userAssignedIdentities": {identity_id: {}}}
    return body


def test_an_identity_is_a_resource_with_a_principal_of_its_own(server):
    made = make_identity(server.url, "builder")
    props = made["properties"]
    uuid.UUID(props["principalId"]) and uuid.UUID(props["clientId"])
    tenant = admin_http.get(f"{server.url}/subscriptions/{SUBSCRIPTION}?api-version=2022-12-01").json()["tenantId"]
    assert props["tenantId"] == tenant
    assert made["type"] == "Microsoft.ManagedIdentity/userAssignedIdentities" and made["tags"] == {"a": "1"}
    again = admin_http.put(f"{server.url}{IDENTITIES}/builder?{API}", json={"location": "eastus"})
    assert again.status_code == 200 and again.json()["properties"]["principalId"] == props["principalId"]
    listed = admin_http.get(f"{server.url}{IDENTITIES}?{API}").json()["value"]
    assert "builder" in [i["name"] for i in listed]
    by_subscription = admin_http.get(f"{server.url}/subscriptions/{SUBSCRIPTION}/providers/"
                                     f"Microsoft.ManagedIdentity/userAssignedIdentities?{API}").json()["value"]
    assert "builder" in [i["name"] for i in by_subscription]
    # its principal can be given a role like any other (no principalType needed: it is in the directory)
    response = admin_http.put(f"{server.url}{GROUP}/providers/Microsoft.Authorization/roleAssignments/"
                              f"{uuid.uuid4()}?{ROLES_API}", json={"properties": {
                                  "roleDefinitionId": "b24988ac-6180-42a0-ab88-20f7382dd24c",
                                  "principalId": props["principalId"]}})
    assert response.status_code == 201, response.text
    bad = admin_http.put(f"{server.url}{IDENTITIES}/-bad?{API}", json={"location": "eastus"})
    assert bad.status_code == 400


def test_assigning_an_identity_to_a_template_needs_the_assign_action(server):
    identity = make_identity(server.url, "assignable")
    # may write templates in the group, but holds no role on identities
    role_id = str(uuid.uuid4())
    made = admin_http.put(f"{server.url}/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/"
                          f"roleDefinitions/{role_id}?{ROLES_API}", json={"properties": {
                              "roleName": "Template author", "permissions": [{"actions": [
                                  "Microsoft.VirtualMachineImages/imageTemplates/*", "*/read"]}],
                              "assignableScopes": [f"/subscriptions/{SUBSCRIPTION}"]}})
    assert made.status_code == 201, made.text
    author = principal(server.url)
    assign(server.url, GROUP, role_id, author["id"])
    headers = {"Authorization": f"Bearer {sign_in(server.url, author)}"}
    refused = httpx.put(f"{server.url}{TEMPLATES}/t1?api-version=2023-07-01", headers=headers,
                        json=template_body(identity["id"]))
    assert refused.status_code == 403, refused.text
    error = refused.json()["error"]
    assert error["code"] == "LinkedAuthorizationFailed"
    assert "Microsoft.ManagedIdentity/userAssignedIdentities/assign/action" in error["message"]
    assert httpx.get(f"{server.url}{TEMPLATES}/t1?api-version=2023-07-01", headers=headers).status_code == 404
    # Managed Identity Operator's action, given on the identity alone
    operator_id = str(uuid.uuid4())
    admin_http.put(f"{server.url}/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions/"
                   f"{operator_id}?{ROLES_API}", json={"properties": {
                       "roleName": "Identity operator", "permissions": [{"actions": [
                           "Microsoft.ManagedIdentity/userAssignedIdentities/*/assign/action",
                           "Microsoft.ManagedIdentity/userAssignedIdentities/*/read"]}],
                       "assignableScopes": [f"/subscriptions/{SUBSCRIPTION}"]}})
    assign(server.url, identity["id"], operator_id, author["id"])
    allowed = httpx.put(f"{server.url}{TEMPLATES}/t1?api-version=2023-07-01", headers=headers,
                        json=template_body(identity["id"]))
    assert allowed.status_code == 201, allowed.text
    missing = admin_http.put(f"{server.url}{TEMPLATES}/t2?api-version=2023-07-01",
                             json=template_body(f"{IDENTITIES}/nobody"))
    assert missing.status_code == 404 and "nobody" in missing.json()["error"]["message"]
