"""The OpenAPI document: valid, complete for every registered route, true of what the server sends,
usable by a client generator; and /docs served with no internet."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import httpx as plain_httpx
import pytest
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate

from galley.api.openapi.document import accepted_api_versions, api_routes, takes_json_body
from galley.api.openapi.operations import facts_for

from . import admin_http as httpx
from .servers import SUBSCRIPTION, ThreadServer

GROUP = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/oa"
COMPUTE = GROUP + "/providers/Microsoft.Compute"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with ThreadServer(tmp_path_factory.mktemp("openapi")) as running:
        yield running


@pytest.fixture(scope="module")
def document(server) -> dict:
    answer = plain_httpx.get(server.url + "/openapi.json")  # open: no token
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_document_is_valid_openapi(document):
    validate(document)
    assert document["openapi"].startswith("3.1")
    schemes = document["components"]["securitySchemes"]
    assert schemes["bearer"] == {**schemes["bearer"], "type": "http", "scheme": "bearer"}
    assert schemes["oauth2"]["flows"]["clientCredentials"]["tokenUrl"].endswith("/oauth2/v2.0/token")
    assert {"bearer": []} in document["security"]


def test_every_route_is_documented_with_its_bodies_codes_and_api_version(server, document):
    routes = [route for route in api_routes(server.app.routes) if route.include_in_schema]
    assert len(routes) > 100
    unknown = []
    for route in routes:
        for method in route.methods:
            operation = document["paths"][route.path_format][method.lower()]
            where = (method, route.path_format)
            if facts_for(route.operation_id) is None:
                unknown.append(route.operation_id)
            if takes_json_body(route):
                assert operation["requestBody"]["content"]["application/json"]["schema"], where
            responses = operation["responses"]
            assert "422" not in responses, where  # bad input is a 400 ARM error, not FastAPI's 422
            assert responses["default"]["description"], where
            successes = [code for code in responses if code[0] == "2"]
            assert successes, where
            if method in ("PUT", "PATCH") or (method == "GET" and route.operation_id.endswith(("_Get", "_List"))):
                typed = [responses[c]["content"]["application/json"]["schema"] for c in successes
                         if "application/json" in responses[c].get("content", {})]
                assert typed and all("$ref" in s or "$ref" in s.get("items", {}) for s in typed), where
            supported = accepted_api_versions(route)
            if supported is not None:
                [parameter] = [p for p in operation["parameters"] if p["name"] == "api-version"]
                assert parameter["required"] is True, where
                enum = document["components"]["schemas"][parameter["schema"]["$ref"].rsplit("/", 1)[1]]["enum"]
                assert set(enum) == set(supported), where
    assert not unknown, f"operations galley/api/openapi/operations.py does not describe: {unknown}"


def test_uploads_downloads_and_token_bodies(document):
    paths = document["paths"]
    upload = paths[next(p for p in paths if p.endswith("/disks/{name}/upload"))]["put"]
    assert "application/octet-stream" in upload["requestBody"]["content"]
    download = paths[next(p for p in paths if p.endswith("/disks/{diskName}/download"))]["get"]
    assert download["responses"]["200"]["content"]["application/octet-stream"]["schema"]["format"] == "binary"
    assert {"200", "206", "416"} <= set(download["responses"])
    blob = paths["/blob/{account}/{container}/{blob}"]
    assert "application/octet-stream" in blob["put"]["requestBody"]["content"]
    assert "application/octet-stream" in blob["get"]["responses"]["200"]["content"]
    token = paths["/{tenant}/oauth2/v2.0/token"]["post"]
    assert "application/x-www-form-urlencoded" in token["requestBody"]["content"]
    assert token["security"] == []
    error = document["components"]["schemas"]["ErrorDetail"]["properties"]
    assert {"code", "message", "target", "details"} <= set(error)


def _validator(document: dict, reference: str) -> OAS31Validator:
    return OAS31Validator({"$ref": reference, "components": document["components"]})


def _response_schema(document: dict, path: str, method: str, status: int) -> str:
    schema = document["paths"][path][method]["responses"][str(status)]["content"]["application/json"]["schema"]
    return schema["$ref"]


def test_answers_of_real_resources_match_the_document(server, document):
    """Each resource type, created and read for real, is what the document says it is."""
    base = server.url
    version = "?api-version=2024-03-03"
    created = [
        (GROUP + "?api-version=2024-11-01", {"location": "eastus", "tags": {"a": "b"}}, "ResourceGroup"),
        (COMPUTE + "/galleries/g1" + version, {"location": "eastus", "properties": {"description": "d"}}, "Gallery"),
        (COMPUTE + "/galleries/g1/images/def" + version, {"location": "eastus", "properties": {
            "osType": "Linux", "osState": "Generalized", "hyperVGeneration": "V2",
            "identifier": {"publisher": "p", "offer": "o", "sku": "s"}}}, "GalleryImage"),
        (COMPUTE + "/disks/d1?api-version=2023-04-02", {"location": "eastus", "properties": {
            "creationData": {"createOption": "Empty"}, "diskSizeGB": 1}}, "Disk"),
        (GROUP + "/providers/Microsoft.Storage/storageAccounts/oaacct?api-version=2023-05-01",
         {"location": "eastus", "kind": "StorageV2", "sku": {"name": "Standard_LRS"}}, "StorageAccount"),
        (GROUP + "/providers/Microsoft.ManagedIdentity/userAssignedIdentities/id1?api-version=2023-01-31",
         {"location": "eastus"}, "UserAssignedIdentity"),
    ]
    for path, body, model in created:
        answer = httpx.put(base + path, json=body)
        assert answer.status_code in (200, 201, 202), answer.text
        _validator(document, f"#/components/schemas/{model}").validate(answer.json())
        read = httpx.get(base + path)
        assert read.status_code == 200, read.text
        _validator(document, f"#/components/schemas/{model}").validate(read.json())
    listed = httpx.get(base + COMPUTE + "/galleries" + version).json()
    _validator(document, "#/components/schemas/GalleryList").validate(listed)
    missing = httpx.get(base + COMPUTE + "/galleries/nope" + version)
    assert missing.status_code == 404
    _validator(document, "#/components/schemas/ErrorResponse").validate(missing.json())
    with pytest.raises(Exception):  # the check can fail: a gallery is not a list
        _validator(document, "#/components/schemas/GalleryList").validate(httpx.get(
            base + COMPUTE + "/galleries/g1" + version).json())


def test_docs_are_served_from_the_package_with_no_internet(server):
    page = plain_httpx.get(server.url + "/docs")  # open, like the document
    assert page.status_code == 200
    sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
    assert sources and all(s.startswith("/docs/static/") for s in sources), sources
    assert "cdn" not in page.text.lower()
    for source in sources:
        asset = plain_httpx.get(server.url + source)
        assert asset.status_code == 200 and len(asset.content) > 100, source
    assert plain_httpx.get(server.url + "/docs/static/nope.js").status_code == 404
    assert plain_httpx.get(server.url + "/docs/oauth2-redirect").status_code == 200
    assert plain_httpx.get(server.url + "/redoc").status_code in (401, 404)  # not served (it needs a CDN)


@pytest.mark.slow
def test_a_generated_client_drives_the_server(server, document, tmp_path):
    """openapi-python-client makes a package from the document; that package creates a resource
    group and a gallery, reads the gallery back and lists it."""
    (tmp_path / "config.yaml").write_text("post_hooks: []\nproject_name_override: galley_client\n"
                                          "package_name_override: galley_client\n")
    source = tmp_path / "openapi.json"
    source.write_text(plain_httpx.get(server.url + "/openapi.json").text)
    generator = Path(sys.executable).parent / "openapi-python-client"
    run = subprocess.run([str(generator), "generate", "--path", str(source), "--meta", "none",
                          "--output-path", str(tmp_path / "galley_client"), "--config", str(tmp_path / "config.yaml")],
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "WARNING" not in run.stdout + run.stderr, run.stdout + run.stderr
    sys.path.insert(0, str(tmp_path))
    try:
        client_module = importlib.import_module("galley_client")
        models = importlib.import_module("galley_client.models")
        groups = importlib.import_module("galley_client.api.resource_groups.resource_groups_create_or_update")
        create = importlib.import_module("galley_client.api.galleries.galleries_create_or_update")
        get = importlib.import_module("galley_client.api.galleries.galleries_get")
        listing = importlib.import_module("galley_client.api.galleries.galleries_list_by_resource_group")
        client = client_module.AuthenticatedClient(base_url=server.url, token=httpx.token_for(server.url))
        gallery_api = models.GalleryApiVersion("2024-03-03")

        group = groups.sync_detailed(SUBSCRIPTION, "gen", client=client, body=models.ResourceGroup(location="eastus"),
                                     api_version=models.ResourcesApiVersion("2024-11-01"))
        assert group.status_code in (200, 201), group.content
        assert isinstance(group.parsed, models.ResourceGroup) and group.parsed.name == "gen"

        body = models.Gallery(location="eastus", properties=models.GalleryProperties(description="made by a "
                                                                                                 "generated client"))
        made = create.sync_detailed(SUBSCRIPTION, "gen", "gengallery", client=client, body=body, api_version=gallery_api)
        assert made.status_code in (200, 201), made.content
        read = get.sync(SUBSCRIPTION, "gen", "gengallery", client=client, api_version=gallery_api)
        assert isinstance(read, models.Gallery)
        assert read.properties.description == "made by a generated client"
        assert read.properties.provisioning_state == "Succeeded"
        page = listing.sync(SUBSCRIPTION, "gen", client=client, api_version=gallery_api)
        assert [g.name for g in page.value] == ["gengallery"]
        refused = get.sync(SUBSCRIPTION, "gen", "nope", client=client, api_version=gallery_api)
        assert isinstance(refused, models.ErrorResponse) and refused.error.code == "ResourceNotFound"
    finally:
        sys.path.remove(str(tmp_path))
        for name in [n for n in sys.modules if n == "galley_client" or n.startswith("galley_client.")]:
            del sys.modules[name]


# ---- what the fuzzer found ------------------------------------------------------------------------

@pytest.mark.parametrize("tenant", [["x"], 5, {"a": 1}, True])
def test_a_group_whose_tenant_id_is_not_a_string_is_a_400(server, tenant):
    answer = httpx.post(server.url + "/providers/Galley.Identity/groups",
                        json={"displayName": "g", "tenantId": tenant})
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"] == {"code": "InvalidParameter", "message": "'tenantId' must be a str.",
                                      "target": "tenantId"}
    assert httpx.get(server.url + "/providers/Galley.Identity/groups").json()["value"] == []
