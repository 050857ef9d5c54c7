"""Azure Resource Graph (`POST /providers/Microsoft.ResourceGraph/resources`, `galley graph query`):
seed 001's FAQ, "how can I list all the gallery resources across subscriptions?".

How we know: the administrator owns two subscriptions, with galleries, definitions and a snapshot
in each; queries go through plain HTTP, the `galley` CLI and the real azure-mgmt-resourcegraph
client, as the administrator, as a principal with Reader on one gallery and as a principal of
another tenant with no role. The grammar itself is tested without a server at the end.
"""
from __future__ import annotations

import os

import httpx
import pytest
from azure.mgmt.resourcegraph import ResourceGraphClient
from azure.mgmt.resourcegraph.models import QueryRequest

from galley.graph import COLUMNS, QueryError, parse, run, table_of
from galley.graph.rows import resource_row
from . import admin_http
from .arm import wait_operation
from .conftest import AdminBearer, AdminCredential
from .servers import SUBSCRIPTION, ThreadServer
from .test_access import READER, assign, principal, sign_in

SUB_B = "bbbbbbbb-0000-4000-8000-0000000000b2"
GRAPH = "/providers/Microsoft.ResourceGraph/resources?api-version=2021-03-01"
FAQ = "Resources | where type =~ 'Microsoft.Compute/galleries' | project name, id, resourceGroup"
GALLERY_API = "api-version=2026-03-03"


def gallery_id(sub: str, group: str, name: str) -> str:
    return f"/subscriptions/{sub}/resourceGroups/{group}/providers/Microsoft.Compute/galleries/{name}"


ALPHA = gallery_id(SUBSCRIPTION, "RgAlpha", "alphaGallery")
BETA = gallery_id(SUBSCRIPTION, "RgAlpha", "betaGallery")
GAMMA = gallery_id(SUB_B, "rgGamma", "gammaGallery")


def put(url: str, path: str, body: dict, api: str = GALLERY_API) -> None:
    response = admin_http.put(f"{url}{path}?{api}", json=body)
    assert response.status_code in (200, 201, 202), response.text
    assert wait_operation(response)["status"] == "Succeeded"  # a final answer, or after polling


def definition(location: str = "eastus", sku: str = "s") -> dict:
    return {"location": location, "properties": {"osType": "Linux", "osState": "Generalized",
                                                 "identifier": {"publisher": "p", "offer": "o", "sku": sku}}}


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Subscription A: RgAlpha with alphaGallery (definitions d1, d2; tag env=prod) and
    betaGallery, and a snapshot. Subscription B (the administrator made it, so owns it):
    rgGamma with gammaGallery (definition d1) in westus2."""
    with ThreadServer(tmp_path_factory.mktemp("graph")) as server:
        url = server.url
        made = admin_http.post(f"{url}/providers/Galley.Identity/subscriptions",
                               json={"displayName": "B", "subscriptionId": SUB_B})
        assert made.status_code == 201, made.text
        put(url, f"/subscriptions/{SUBSCRIPTION}/resourceGroups/RgAlpha", {"location": "eastus"},
            "api-version=2024-11-01")
        put(url, f"/subscriptions/{SUB_B}/resourceGroups/rgGamma", {"location": "westus2"}, "api-version=2024-11-01")
        put(url, ALPHA, {"location": "eastus", "tags": {"env": "prod"}, "properties": {"description": "Alpha images"}})
        put(url, BETA, {"location": "eastus"})
        put(url, GAMMA, {"location": "westus2", "tags": {"env": "dev"}})
        for name in ("d1", "d2"):
            put(url, f"{ALPHA}/images/{name}", definition(sku=name))
        put(url, f"{GAMMA}/images/d1", definition("westus2"))
        put(url, f"/subscriptions/{SUBSCRIPTION}/resourceGroups/RgAlpha/providers/Microsoft.Compute/snapshots/snap",
            {"location": "eastus", "properties": {"creationData": {"createOption": "Empty"}, "diskSizeGB": 1}},
            "api-version=2026-03-02")
        yield server


def graph(url: str, query: str, token: str | None = None, **extra) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return admin_http.post(f"{url}{GRAPH}", json={"query": query, **extra}, headers=headers)


def data(url: str, query: str, token: str | None = None, **extra) -> list[dict]:
    response = graph(url, query, token, **extra)
    assert response.status_code == 200, response.text
    return response.json()["data"]


def names(url: str, query: str, token: str | None = None, **extra) -> list[str]:
    return [row["name"] for row in data(url, query, token, **extra)]


# ---- the seed's question ----------------------------------------------------------------------

def test_the_faq_query_lists_the_galleries_of_every_subscription(world):
    response = graph(world.url, FAQ)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["totalRecords"] == 3 and answer["count"] == 3
    assert answer["resultTruncated"] == "false" and answer["facets"] == [] and "$skipToken" not in answer
    assert sorted(answer["data"], key=lambda row: row["name"]) == [
        {"name": "alphaGallery", "id": ALPHA, "resourceGroup": "rgalpha"},
        {"name": "betaGallery", "id": BETA, "resourceGroup": "rgalpha"},
        {"name": "gammaGallery", "id": GAMMA, "resourceGroup": "rggamma"},
    ]
    # the request's subscriptions narrow it; one the caller has no role in adds nothing
    assert names(world.url, FAQ, subscriptions=[SUB_B.upper()]) == ["gammaGallery"]
    assert names(world.url, FAQ, subscriptions=["cccccccc-0000-4000-8000-00000000000c"]) == []
    # the api-versions of az's extension and of the current SDKs, and a lower-case path
    for version in ("2022-10-01", "2024-04-01"):
        response = admin_http.post(f"{world.url}/providers/microsoft.resourcegraph/resources?api-version={version}",
                                   json={"query": FAQ})
        assert response.status_code == 200 and response.json()["totalRecords"] == 3, response.text


def test_a_row_has_resource_graphs_columns(world):
    [row] = data(world.url, f"Resources | where id =~ '{ALPHA.upper()}'")
    assert list(row) == COLUMNS
    tenant = admin_http.get(f"{world.url}/subscriptions/{SUBSCRIPTION}?api-version=2022-12-01").json()["tenantId"]
    assert row == {**row, "id": ALPHA, "name": "alphaGallery", "type": "microsoft.compute/galleries",
                   "tenantId": tenant, "kind": "", "location": "eastus", "resourceGroup": "rgalpha",
                   "subscriptionId": SUBSCRIPTION, "managedBy": "", "sku": None, "tags": {"env": "prod"}}
    assert row["properties"]["description"] == "Alpha images"
    assert row["properties"]["provisioningState"] == "Succeeded"
    # resource groups and subscriptions are ResourceContainers, not Resources
    assert not data(world.url, "Resources | where type contains 'resourcegroups'")
    containers = data(world.url, "ResourceContainers | project name, type | order by name asc")
    assert containers == [{"name": "B", "type": "microsoft.resources/subscriptions"},
                          {"name": "Galley", "type": "microsoft.resources/subscriptions"},
                          {"name": "RgAlpha", "type": "microsoft.resources/subscriptions/resourcegroups"},
                          {"name": "rgGamma", "type": "microsoft.resources/subscriptions/resourcegroups"}]


# ---- where, project, order, limit ---------------------------------------------------------------

GALLERIES = "Resources | where type == 'microsoft.compute/galleries' "


@pytest.mark.parametrize("where, expected", [
    ("type == 'Microsoft.Compute/galleries'", []),  # == is case-sensitive, and ARG's types are lower-case
    ("type =~ 'MICROSOFT.COMPUTE/GALLERIES'", ["alphaGallery", "betaGallery", "gammaGallery"]),
    ("name == 'ALPHAGALLERY'", []),
    ("name =~ 'ALPHAGALLERY'", ["alphaGallery"]),
    ("name != 'alphaGallery' and type =~ 'microsoft.compute/galleries'", ["betaGallery", "gammaGallery"]),
    ("name contains 'ALPHA'", ["alphaGallery"]),  # contains ignores case; contains_cs does not
    ("name contains_cs 'ALPHA'", []),
    ("name !contains 'alpha' and name endswith 'Gallery'", ["betaGallery", "gammaGallery"]),
    ("name startswith 'gam' or tags.env == 'prod'", ["alphaGallery", "gammaGallery"]),
    ("tags['env'] in ('prod', 'dev')", ["alphaGallery", "gammaGallery"]),
    ("tags.env in~ ('PROD')", ["alphaGallery"]),
    ("properties.description has 'alpha'", ["alphaGallery"]),
    ("properties.description has 'alp'", []),  # has matches whole terms
    ("isempty(tags.env) and subscriptionId == '" + SUBSCRIPTION + "'", ["betaGallery"]),
    ("location == 'westus2' and properties.provisioningState == 'Succeeded'", ["gammaGallery"]),
    ("(name == 'betaGallery' or name == 'gammaGallery') and not(location == 'westus2')", ["betaGallery"]),
])
def test_where(world, where, expected):
    found = names(world.url, f"Resources | where {where} | where type endswith '/galleries'")
    assert sorted(found) == expected


def test_project_order_limit_and_friends(world):
    url = world.url
    assert names(url, GALLERIES + "| order by name asc") == ["alphaGallery", "betaGallery", "gammaGallery"]
    assert names(url, GALLERIES + "| sort by name") == ["gammaGallery", "betaGallery", "alphaGallery"]  # desc
    assert names(url, GALLERIES + "| order by location desc, name asc") == [
        "gammaGallery", "alphaGallery", "betaGallery"]
    assert names(url, GALLERIES + "| order by name asc | limit 2") == ["alphaGallery", "betaGallery"]
    assert names(url, GALLERIES + "| order by name asc | take 1") == ["alphaGallery"]
    assert names(url, GALLERIES + "| top 1 by name asc") == ["alphaGallery"]
    assert data(url, GALLERIES + "| project gallery = name, env = tags.env, rg = resourceGroup "
                                 "| order by gallery asc | take 1") == [
        {"gallery": "alphaGallery", "env": "prod", "rg": "rgalpha"}]
    assert data(url, GALLERIES + "| where name =~ 'alphagallery' | project properties.description") == [
        {"properties_description": "Alpha images"}]
    assert data(url, GALLERIES + "| count") == [{"Count": 3}]
    assert data(url, "Resources | summarize count() by type | order by type asc") == [
        {"type": "microsoft.compute/galleries", "count_": 3},
        {"type": "microsoft.compute/galleries/images", "count_": 3},
        {"type": "microsoft.compute/snapshots", "count_": 1}]
    assert data(url, GALLERIES + "| distinct location | order by location asc") == [
        {"location": "eastus"}, {"location": "westus2"}]
    projected = data(url, GALLERIES + "| extend upper = toupper(name) | project-away properties, tags | take 1")[0]
    assert "properties" not in projected and projected["upper"] == projected["name"].upper()


def test_pages_and_the_table_format(world):
    first = graph(world.url, "Resources | order by id asc", options={"$top": 4}).json()
    assert first["totalRecords"] == 7 and first["count"] == 4 and first["$skipToken"]
    second = graph(world.url, "Resources | order by id asc",
                   options={"$top": 4, "$skipToken": first["$skipToken"]}).json()
    assert second["count"] == 3 and "$skipToken" not in second
    every_id = [r["id"] for r in data(world.url, "Resources | order by id asc")]
    assert [r["id"] for r in first["data"] + second["data"]] == every_id
    skipped = graph(world.url, "Resources | order by id asc", options={"$skip": 6}).json()
    assert [r["id"] for r in skipped["data"]] == [second["data"][-1]["id"]]
    table = graph(world.url, GALLERIES + "| order by name asc | project name, tags | take 2",
                  options={"resultFormat": "table"}).json()["data"]
    assert table == {"columns": [{"name": "name", "type": "string"}, {"name": "tags", "type": "object"}],
                     "rows": [["alphaGallery", {"env": "prod"}], ["betaGallery", {}]]}


# ---- who sees what ------------------------------------------------------------------------------

def test_reader_on_one_gallery_finds_that_gallery_and_its_definitions_only(world):
    reader = principal(world.url)
    assign(world.url, ALPHA, READER, reader["id"])
    token = sign_in(world.url, reader)
    assert names(world.url, FAQ, token) == ["alphaGallery"]
    definitions = data(world.url, "Resources | where type =~ 'microsoft.compute/galleries/images' "
                                  "| project id | order by id asc", token)
    assert definitions == [{"id": f"{ALPHA}/images/d1"}, {"id": f"{ALPHA}/images/d2"}]
    everything = data(world.url, "Resources", token)
    assert sorted(row["id"] for row in everything) == [ALPHA, f"{ALPHA}/images/d1", f"{ALPHA}/images/d2"]
    assert data(world.url, "ResourceContainers", token) == []  # no read on its group or subscription
    assert data(world.url, FAQ, token, subscriptions=[SUB_B]) == []


def test_another_tenants_principal_without_a_role_sees_nothing(world):
    tenant = admin_http.post(f"{world.url}/providers/Galley.Identity/tenants", json={"displayName": "C"}).json()
    token = sign_in(world.url, principal(world.url, tenant["tenantId"]))
    for query in ("Resources", "ResourceContainers", FAQ):
        response = graph(world.url, query, token, subscriptions=[SUBSCRIPTION, SUB_B])
        assert response.status_code == 200, response.text
        assert response.json()["totalRecords"] == 0 and response.json()["data"] == []
        assert SUBSCRIPTION not in response.text and SUB_B not in response.text
    anonymous = httpx.post(f"{world.url}{GRAPH}", json={"query": FAQ})
    assert anonymous.status_code == 401


# ---- refusals -----------------------------------------------------------------------------------

@pytest.mark.parametrize("query, token, mentions", [
    ("Resources | where Name == 'x'", "Name", "did you mean 'name'"),
    ("Resources | join (ResourceContainers) on subscriptionId", "join", "not supported"),
    ("Resources | where name matches regex 'a.*'", "matches", "not supported"),
    ("Resources | where name == 'unclosed", "'unclosed", "not closed"),
    ("Resourcez", "Resourcez", "no table"),
    ("Resources | project name | where id == 'x'", "id", "no column 'id'"),
    ("Resources | take many", "many", "whole number"),
])
def test_a_bad_query_is_a_400_naming_the_token_and_where_it_is(world, query, token, mentions):
    response = graph(world.url, query)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "BadRequest" and error["target"] == "query"
    assert mentions in error["message"] and "line 1, column" in error["message"]
    invalid, failure = error["details"]
    assert invalid["code"] == "InvalidQuery"
    assert failure["code"] == "ParserFailure" and failure["token"] == token
    assert query[failure["characterPositionInLine"]:].startswith(token)


@pytest.mark.parametrize("body, target", [
    ({}, "query"),
    ({"query": "   "}, "query"),
    ({"query": FAQ, "managementGroups": ["mg1"]}, "managementGroups"),
    ({"query": FAQ, "subscriptions": "not-a-list"}, "subscriptions"),
    ({"query": FAQ, "options": {"$top": 0}}, "options.$top"),
    ({"query": FAQ, "options": {"$top": 1001}}, "options.$top"),
    ({"query": FAQ, "options": {"$skip": -1}}, "options.$skip"),
    ({"query": FAQ, "options": {"$skipToken": "garbage!"}}, "options.$skipToken"),
    ({"query": FAQ, "options": {"resultFormat": "csv"}}, "options.resultFormat"),
])
def test_a_bad_request_is_a_400_naming_the_field(world, body, target):
    response = admin_http.post(f"{world.url}{GRAPH}", json=body)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["target"] == target


def test_an_unknown_api_version_is_refused(world):
    response = admin_http.post(f"{world.url}/providers/Microsoft.ResourceGraph/resources?api-version=2019-04-01",
                               json={"query": FAQ})
    assert response.status_code == 400 and response.json()["error"]["code"] == "InvalidApiVersionParameter"


# ---- clients --------------------------------------------------------------------------------------

@pytest.fixture
def cli_server(world, monkeypatch):
    for name in [name for name in os.environ if name.startswith("GALLEY_")]:
        monkeypatch.delenv(name)
    return world


def test_galley_graph_query(galley, cli_server):
    answer = galley("graph", "query", "-q", FAQ).json()
    assert set(answer) == {"count", "data", "skip_token", "total_records"}
    assert answer["count"] == answer["total_records"] == 3 and answer["skip_token"] is None
    assert {row["name"] for row in answer["data"]} == {"alphaGallery", "betaGallery", "gammaGallery"}
    only_b = galley("graph", "query", "-q", FAQ, "--subscriptions", SUB_B).json()
    assert [row["name"] for row in only_b["data"]] == ["gammaGallery"]
    page = galley("graph", "query", "-q", GALLERIES + "| order by name asc | project name", "--first", "2").json()
    assert page["data"] == [{"name": "alphaGallery"}, {"name": "betaGallery"}] and page["total_records"] == 3
    rest = galley("graph", "query", "-q", GALLERIES + "| order by name asc | project name",
                  "--skip-token", page["skip_token"]).json()
    assert rest["data"] == [{"name": "gammaGallery"}]
    assert galley("graph", "query", "-q", GALLERIES + "| order by name asc | project name",
                  "--skip", "1", "--first", "1").json()["data"] == [{"name": "betaGallery"}]
    table = galley("graph", "query", "-q", FAQ + " | order by name asc", "-o", "table").stdout.splitlines()
    assert table[0].split() == ["name", "id", "resourceGroup"]
    assert table[2].split() == ["alphaGallery", ALPHA, "rgalpha"]
    bad = galley("graph", "query", "-q", "Resources | where Name == 'x'", check=False)
    assert bad.code == 1 and "(BadRequest)" in bad.stderr and "did you mean 'name'" in bad.stderr


def test_the_azure_sdks_resource_graph_client(world):
    client = ResourceGraphClient(AdminCredential(world.url), base_url=world.url,
                                 authentication_policy=AdminBearer(world.url))
    answer = client.resources(QueryRequest(query=FAQ, subscriptions=[SUBSCRIPTION, SUB_B]))
    assert answer.total_records == 3 and answer.result_truncated == "false"
    assert {row["name"] for row in answer.data} == {"alphaGallery", "betaGallery", "gammaGallery"}


# ---- the grammar, without a server ------------------------------------------------------------------

def rows_of(*galleries: tuple[str, str, dict]) -> list[dict]:
    return [resource_row({"id": gallery_id("s1", "rg", name), "name": name, "type": "Microsoft.Compute/galleries",
                          "location": location, "tags": tags, "properties": {"provisioningState": "Succeeded"}},
                         "s1", "t1") for name, location, tags in galleries]


ROWS = rows_of(("a", "eastus", {"env": "prod", "n": 3}), ("B", "westus", {"env": "Dev", "n": 10}),
               ("c", "eastus", {}))


def answer(query: str) -> list[dict]:
    parsed = parse(query)
    table_of(parsed)
    return run(parsed, COLUMNS, ROWS).rows


@pytest.mark.parametrize("query, expected", [
    ("Resources | project name", ["a", "B", "c"]),
    ("resources | where name =~ 'b' | project name", ["B"]),
    ('Resources | where name == "B" | project name', ["B"]),
    ("Resources | where tags.n > 5 | project name", ["B"]),  # numbers compare as numbers
    ("Resources | where tags.n <= 3 | project name", ["a"]),  # and a missing one not at all
    ("Resources | where tags.env !~ 'dev' | project name", ["a", "c"]),  # a missing value is ''
    ("Resources | where tags.env != 'prod' | project name", ["B", "c"]),
    ("Resources | where isnotempty(tags.env) and tags.env !in ('prod') | project name", ["B"]),
    ("Resources | where tags.env !in~ ('DEV', 'PROD') | project name", ["c"]),
    ("Resources | where name !startswith 'A' | project name", ["B", "c"]),  # ignores case
    ("Resources | where name !startswith_cs 'A' | project name", ["a", "B", "c"]),
    ("Resources | where id has 'galleries' and location has_cs 'eastus' | project name", ["a", "c"]),
    ("Resources | order by name asc | project name", ["B", "a", "c"]),  # ordinal: upper case first
    ("Resources | order by tolower(name) asc | project name", ["a", "B", "c"]),
    ("Resources | order by tags.n asc | project name", ["c", "a", "B"]),  # nulls first when ascending
    ("Resources | order by tags.n desc | project name", ["B", "a", "c"]),  # and last when descending
    ("Resources | order by tags.n asc nulls last | project name", ["a", "B", "c"]),
    ("Resources | order by location asc, name desc | project name", ["c", "a", "B"]),
    ("Resources | top 2 by tostring(name) desc | project name", ["c", "a"]),
    ("Resources\n| where location == 'eastus' // comments end at the line's end\n| project name", ["a", "c"]),
    ("Resources | where name in ('a', 'c') | where name == @'c' | project name", ["c"]),
    ("Resources | where strlen(name) == 1 and tags['env'] == 'Dev' | project name", ["B"]),
    ("Resources | limit 0 | project name", []),
])
def test_queries_over_rows(query, expected):
    assert [row["name"] for row in answer(query)] == expected


def test_operators_that_change_the_columns():
    assert answer("Resources | project name, e = tags.env, tags['n'] | take 1") == [
        {"name": "a", "e": "prod", "tags_n": 3}]
    assert answer("Resources | summarize count()") == [{"count_": 3}]
    assert answer("Resources | where name == 'none' | summarize n = count()") == [{"n": 0}]
    assert answer("Resources | summarize total = count() by location | order by location asc") == [
        {"location": "eastus", "total": 2}, {"location": "westus", "total": 1}]
    assert answer("Resources | distinct location, tags.env | count") == [{"Count": 3}]
    assert answer("Resources | extend big = tags.n > 5 | where big == true | project name") == [{"name": "B"}]
    assert answer("Resources | project name, one = 1, text = 'it\\'s' | take 1") == [
        {"name": "a", "one": 1, "text": "it's"}]
    assert answer("Resources | project-away properties, tags, sku, plan, identity, zones, extendedLocation, "
                  "managedBy, kind, tenantId | project-away id, type, subscriptionId | take 1") == [
        {"name": "a", "location": "eastus", "resourceGroup": "rg"}]


@pytest.mark.parametrize("query, token, position, mentions", [
    ("", "", 0, "expected a table name"),
    ("Resources |", "", 11, "expected an operator"),
    ("Resources | where", "", 17, "expected a column"),
    ("Resources | where name = 'a'", "=", 23, "expected '|'"),
    ("Resources | where name == 'a' or", "", 32, "expected a column"),
    ("Resources | project name,", "", 25, "expected a column"),
    ("Resources | project name, name", "name", 26, "named twice"),
    ("Resources | project tags.", "", 25, "property name"),
    ("Resources | project tags[", "", 25, "inside '[ ]'"),
    ("Resources | order by", "", 20, "expected a column"),
    ("Resources | sort name", "name", 17, "'by'"),
    ("Resources | top by name", "by", 16, "whole number"),
    ("Resources | limit 1.5", "1.5", 18, "whole number"),
    ("Resources | where name in 'a'", "'a'", 26, "'('"),
    ("Resources | where name in ('a' 'b')", "'b'", 31, "',' or ')'"),
    ("Resources | where lower(name) == 'a'", "lower", 18, "function 'lower' is not supported"),
    ("Resources | where tolower() == 'a'", "tolower", 18, "takes 1 argument"),
    ("Resources | summarize max(name)", "max", 22, "count()"),
    ("Resources | mv-expand tags", "mv-expand", 12, "'mv-expand' is not supported"),
    ("Resources | where name == 'a\\x'", "\\x", 28, "unknown escape"),
    ("Resources | where name == 'a'; Resources", ";", 29, "unexpected character ';'"),
    ("Resources | where Location == 'a'", "Location", 18, "did you mean 'location'"),
    ("Resources | project-away nope", "nope", 25, "no column 'nope'"),
    ("Resources\n| where nope == 1", "nope", 8, "line 2, column 9"),
    ("Nope | take 1", "Nope", 0, "no table 'Nope'"),
])
def test_refusals_name_the_token_and_its_place(query, token, position, mentions):
    with pytest.raises(QueryError) as raised:
        answer(query)
    error = raised.value
    assert error.token == token and error.column == position, (error.token, error.column, error.message)
    assert mentions in error.message


def test_a_long_or_deep_query_is_refused():
    with pytest.raises(QueryError, match="longer than"):
        parse("Resources | where " + " or ".join(f"name == '{i}'" for i in range(3000)))
    with pytest.raises(QueryError, match="nested more than"):
        parse("Resources | where " + "(" * 5000 + "name == 'a'" + ")" * 5000)
    with pytest.raises(QueryError, match="nested more than"):
        parse("Resources | where " + "not(" * 2000 + "name == 'a'" + ")" * 2000)
    assert answer("Resources | where " + "(" * 40 + "name == 'a'" + ")" * 40 + " | project name") == [{"name": "a"}]
