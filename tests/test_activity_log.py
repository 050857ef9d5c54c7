"""The activity log: every write and every refused request, read back as Azure's activity log.

How we know: requests go through a real server (the real middleware, real tokens of principals
with and without roles, of another tenant, and none); the log is read back over HTTP as
`az monitor activity-log list` reads it, and through the `galley` CLI. Retention is shown by
entries made in the past, through the same ActivityLog the server records with.
"""
from __future__ import annotations

import os
import time
import uuid
from datetime import datetime, timedelta, timezone

import httpx
import pytest
from sqlalchemy import select

from galley.activity.entry import Entry
from galley.activity.log import ActivityLog
from galley.config import load_settings
from galley.domain.resource import iso
from galley.store.tables import activity_log

from . import admin_http
from .servers import SUBSCRIPTION, ThreadServer, credentials
from .test_access import READER, assign, principal, sign_in
from .test_identity import registered_routes

LOG = f"/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Insights/eventtypes/management/values"
API = "2015-04-01"
GROUPS = f"/subscriptions/{SUBSCRIPTION}/resourcegroups"
RG_API = "api-version=2024-11-01"
PAGE_SIZE = 3


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with pytest.MonkeyPatch.context() as env:
        for name in [name for name in os.environ if name.startswith("GALLEY_")]:
            env.delenv(name)
        with ThreadServer(tmp_path_factory.mktemp("activity"), page_size=PAGE_SIZE) as running:
            yield running


@pytest.fixture
def cli_server(server):
    return server


def bearer(token: str | None) -> dict:
    return {"Authorization": f"Bearer {token}"} if token else {}


def read_log(url: str, token: str | None = None, since: str = "2020-01-01T00:00:00Z", until: str | None = None,
             **equalities) -> httpx.Response:
    clauses = [f"eventTimestamp ge '{since}'"] + ([f"eventTimestamp le '{until}'"] if until else [])
    clauses += [f"{name} eq '{value}'" for name, value in equalities.items()]
    params = {"api-version": API, "$filter": " and ".join(clauses)}
    if token is None:
        return admin_http.get(f"{url}{LOG}", params=params)
    return httpx.get(f"{url}{LOG}", params=params, headers=bearer(token))


def events(url: str, token: str | None = None, **filters) -> list[dict]:
    """Every page of the log (as the administrator unless a token is given)."""
    response = read_log(url, token, **filters)
    assert response.status_code == 200, response.text
    found, page = [], response.json()
    while True:
        found += page["value"]
        if "nextLink" not in page:
            return found
        following = (admin_http.get(page["nextLink"]) if token is None
                     else httpx.get(page["nextLink"], headers=bearer(token)))
        assert following.status_code == 200, following.text
        page = following.json()


def correlated(url: str, correlation_id: str) -> list[dict]:
    return events(url, correlationId=correlation_id)


def new_correlation() -> str:
    return str(uuid.uuid4())


# ---- what is recorded -------------------------------------------------------------------------

def test_a_write_is_recorded_with_caller_tenant_action_status_and_correlation_id(server):
    creds = credentials(server.home)
    correlation = new_correlation()
    made = admin_http.put(f"{server.url}{GROUPS}/written?{RG_API}", json={"location": "eastus"},
                          headers={"x-ms-correlation-request-id": correlation, "x-ms-client-request-id": "cli-1"})
    assert made.status_code == 201, made.text
    assert made.headers["x-ms-correlation-request-id"] == correlation  # the client's id comes back
    request_id = made.headers["x-ms-request-id"]
    [event] = correlated(server.url, correlation)
    assert event["caller"] == creds["clientId"]
    assert event["tenantId"] == creds["tenantId"]
    assert event["subscriptionId"] == SUBSCRIPTION
    assert event["authorization"] == {"action": "Microsoft.Resources/subscriptions/resourceGroups/write",
                                      "scope": f"/subscriptions/{SUBSCRIPTION}/resourceGroups/written"}
    assert event["operationName"]["value"] == "Microsoft.Resources/subscriptions/resourceGroups/write"
    assert event["resourceId"] == f"/subscriptions/{SUBSCRIPTION}/resourceGroups/written"
    assert event["resourceGroupName"] == "written"
    assert event["resourceProviderName"]["value"] == "Microsoft.Resources"
    assert event["status"]["value"] == "Succeeded" and event["subStatus"]["value"] == "Created"
    assert event["properties"]["statusCode"] == "Created" and event["properties"]["httpStatusCode"] == "201"
    assert event["level"] == "Informational" and event["channels"] == "Operation"
    assert event["eventName"]["value"] == "EndRequest" and event["category"]["value"] == "Administrative"
    assert event["operationId"] == request_id
    assert event["httpRequest"]["method"] == "PUT" and event["httpRequest"]["clientRequestId"] == "cli-1"
    assert event["httpRequest"]["uri"].endswith("/resourcegroups/written")
    assert event["id"].startswith(event["resourceId"] + "/events/" + event["eventDataId"] + "/ticks/")
    moment = datetime.fromisoformat(event["eventTimestamp"])
    assert abs((datetime.now(timezone.utc) - moment).total_seconds()) < 60
    assert event["submissionTimestamp"] >= event["eventTimestamp"]


def test_a_successful_read_is_not_recorded_but_gets_its_ids(server):
    admin_http.put(f"{server.url}{GROUPS}/readme?{RG_API}", json={"location": "eastus"})
    correlation = new_correlation()
    read = admin_http.get(f"{server.url}{GROUPS}/readme?{RG_API}", headers={"x-ms-correlation-request-id": correlation})
    assert read.status_code == 200
    assert read.headers["x-ms-correlation-request-id"] == correlation and read.headers["x-ms-request-id"]
    listed = admin_http.get(f"{server.url}{GROUPS}?{RG_API}", headers={"x-ms-correlation-request-id": correlation})
    assert listed.status_code == 200
    assert correlated(server.url, correlation) == []


def test_an_unusable_correlation_id_is_replaced(server):
    made = admin_http.put(f"{server.url}{GROUPS}/oddid?{RG_API}", json={"location": "eastus"},
                          headers={"x-ms-correlation-request-id": "not one; " + "x" * 200})
    returned = made.headers["x-ms-correlation-request-id"]
    assert str(uuid.UUID(returned)) == returned
    assert [e["resourceGroupName"] for e in correlated(server.url, returned)] == ["oddid"]


def test_a_refused_write_and_an_anonymous_request_are_recorded(server):
    plain = principal(server.url)  # a principal of the home tenant without any role
    refused_id = new_correlation()
    refused = httpx.put(f"{server.url}{GROUPS}/notyours?{RG_API}", json={"location": "eastus"},
                        headers={**bearer(sign_in(server.url, plain)), "x-ms-correlation-request-id": refused_id})
    assert refused.status_code == 403 and refused.headers["x-ms-correlation-request-id"] == refused_id
    [event] = correlated(server.url, refused_id)
    assert event["caller"] == plain["appId"] and event["tenantId"] == plain["tenant"]
    assert event["authorization"]["action"] == "Microsoft.Resources/subscriptions/resourceGroups/write"
    assert (event["status"]["value"], event["subStatus"]["value"], event["level"]) == ("Failed", "Forbidden", "Error")

    anonymous_id = new_correlation()
    anonymous = httpx.get(f"{server.url}{GROUPS}?{RG_API}", headers={"x-ms-correlation-request-id": anonymous_id})
    assert anonymous.status_code == 401
    [event] = correlated(server.url, anonymous_id)
    assert event["caller"] == "anonymous" and event["tenantId"] == "" and event["claims"] == {}
    assert event["httpRequest"]["method"] == "GET"
    assert (event["status"]["value"], event["subStatus"]["value"]) == ("Failed", "Unauthorized")
    assert event["subscriptionId"] == SUBSCRIPTION
    assert admin_http.get(f"{server.url}{GROUPS}/notyours?{RG_API}").status_code == 404  # nothing was made


def test_another_tenants_refusal_is_in_the_owners_log_not_readable_by_it(server):
    tenant_b = admin_http.post(f"{server.url}/providers/Galley.Identity/tenants", json={"displayName": "B"}).json()
    outsider = principal(server.url, tenant_b["tenantId"])
    token = sign_in(server.url, outsider)
    correlation = new_correlation()
    refused = httpx.delete(f"{server.url}{GROUPS}/written?{RG_API}",
                           headers={**bearer(token), "x-ms-correlation-request-id": correlation})
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "InvalidAuthenticationTokenTenant"
    [event] = correlated(server.url, correlation)  # in the subscription owner's log
    assert event["caller"] == outsider["appId"] and event["tenantId"] == tenant_b["tenantId"]
    assert event["subscriptionId"] == SUBSCRIPTION and event["httpRequest"]["method"] == "DELETE"
    assert event["authorization"]["action"] == "Microsoft.Resources/subscriptions/resourceGroups/delete"
    own_log = read_log(server.url, token)  # ... which the refused caller cannot read
    assert own_log.status_code == 403, own_log.text
    assert own_log.json()["error"]["code"] == "InvalidAuthenticationTokenTenant"
    assert correlation not in own_log.text


# ---- who reads it ------------------------------------------------------------------------------

def test_a_reader_of_the_subscription_reads_it_and_a_principal_without_a_role_does_not(server):
    correlation = new_correlation()
    admin_http.put(f"{server.url}{GROUPS}/forreaders?{RG_API}", json={"location": "eastus"},
                   headers={"x-ms-correlation-request-id": correlation})
    reader = principal(server.url)
    assign(server.url, f"/subscriptions/{SUBSCRIPTION}", READER, reader["id"])
    reader_token = sign_in(server.url, reader)
    seen = events(server.url, reader_token, correlationId=correlation)
    assert [e["resourceGroupName"] for e in seen] == ["forreaders"]

    nobody = read_log(server.url, sign_in(server.url, principal(server.url)))
    assert nobody.status_code == 403 and nobody.json()["error"]["code"] == "AuthorizationFailed"
    assert "Microsoft.Insights/eventtypes/values/read" in nobody.json()["error"]["message"]

    group_reader = principal(server.url)  # Reader of one group: not of the subscription's log
    assign(server.url, f"/subscriptions/{SUBSCRIPTION}/resourceGroups/forreaders", READER, group_reader["id"])
    assert read_log(server.url, sign_in(server.url, group_reader)).status_code == 403
    assert httpx.get(f"{server.url}{LOG}", params={"api-version": API}).status_code == 401


def test_no_route_alters_or_deletes_entries(server):
    insights = [(route.path, route.methods) for route in registered_routes(server.app.routes)
                if "microsoft.insights" in route.path.lower()]
    assert insights and all(methods <= {"GET", "HEAD"} for _, methods in insights), insights
    correlation = new_correlation()
    admin_http.put(f"{server.url}{GROUPS}/kept?{RG_API}", json={"location": "eastus"},
                   headers={"x-ms-correlation-request-id": correlation})
    [before] = correlated(server.url, correlation)
    for method in ("PUT", "PATCH", "POST", "DELETE"):
        for path in (LOG, f"{LOG}/{before['eventDataId']}", f"{before['id']}"):
            answer = admin_http.request(method, f"{server.url}{path}", params={"api-version": API},
                                        json={"status": {"value": "Succeeded"}, "caller": "someone else"})
            assert answer.status_code in (403, 404, 405), (method, path, answer.status_code, answer.text)
    assert correlated(server.url, correlation) == [before]


# ---- the filter and paging -----------------------------------------------------------------------

def test_the_time_window_filters_and_pages_newest_first(server):
    correlation = new_correlation()
    for name in ("w1", "w2", "w3", "w4", "w5"):
        admin_http.put(f"{server.url}{GROUPS}/{name}?{RG_API}", json={"location": "eastus"},
                       headers={"x-ms-correlation-request-id": correlation})
    first_page = read_log(server.url, correlationId=correlation).json()
    assert len(first_page["value"]) == PAGE_SIZE and "skiptoken=" in first_page["nextLink"]
    found = correlated(server.url, correlation)
    assert [e["resourceGroupName"] for e in found] == ["w5", "w4", "w3", "w2", "w1"]
    assert len({e["eventDataId"] for e in found}) == 5
    middle = found[2]["eventTimestamp"]
    older = events(server.url, until=middle, correlationId=correlation)
    assert [e["resourceGroupName"] for e in older] == ["w3", "w2", "w1"]
    newer = events(server.url, since=middle, correlationId=correlation)
    assert [e["resourceGroupName"] for e in newer] == ["w5", "w4", "w3"]
    assert events(server.url, since="2001-01-01T00:00:00Z", until="2001-12-31T00:00:00Z") == []
    # as az sends it: times without quotes or a zone (UTC), and a resource group
    bare = admin_http.get(f"{server.url}{LOG}", params={"api-version": API, "$select": "caller,eventTimestamp",
                                                         "$filter": "eventTimestamp ge 2020-01-01T00:00:00 and "
                                                         "eventTimestamp le 2999-01-01T00:00:00.000000 and "
                                                         "resourceGroupName eq 'W4'"})
    assert bare.status_code == 200, bare.text
    assert [e["resourceGroupName"] for e in bare.json()["value"]] == ["w4"]
    assert [e["resourceGroupName"] for e in events(server.url, correlationId=correlation, status="Failed")] == []


@pytest.mark.parametrize("bad", [None, "", "eventTimestamp le '2030-01-01'", "eventTimestamp ge 'yesterday'",
                                 "eventTimestamp ge '2020-01-01' or caller eq 'x'",
                                 "eventTimestamp ge '2020-01-01' and operationName eq 'x'"])
def test_a_filter_it_does_not_understand_is_a_400(server, bad):
    params = {"api-version": API, **({"$filter": bad} if bad is not None else {})}
    answer = admin_http.get(f"{server.url}{LOG}", params=params)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"]["target"] == "$filter"


def test_the_api_version_is_checked(server):
    answer = admin_http.get(f"{server.url}{LOG}", params={"api-version": "2024-01-01",
                                                           "$filter": "eventTimestamp ge '2020-01-01'"})
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "InvalidApiVersionParameter"


# ---- retention -----------------------------------------------------------------------------------

def _entry(days_ago: float, group: str) -> Entry:
    return Entry(id=str(uuid.uuid4()), event_timestamp=iso(datetime.now(timezone.utc) - timedelta(days=days_ago)),
                 subscription_id=SUBSCRIPTION, tenant_id=None, caller="anonymous", caller_object_id=None,
                 method="PUT", path=f"{GROUPS}/{group}", action=None, scope=f"{GROUPS}/{group}",
                 resource_id=f"{GROUPS}/{group}", resource_group=group, status_code=401,
                 correlation_id=str(uuid.uuid4()), request_id=str(uuid.uuid4()))


def test_retention_removes_entries_older_than_the_setting(server, monkeypatch):
    monkeypatch.setenv("GALLEY_ACTIVITY_RETENTION_DAYS", "7")
    assert load_settings().activity_retention_days == 7
    assert server.app.state.settings.activity_retention_days == 90  # the default
    activity = server.app.state.activity
    old, recent = _entry(120, "old"), _entry(80, "recent")
    activity.record(old)
    activity.record(recent)
    since = iso(datetime.now(timezone.utc) - timedelta(days=200))
    assert {e["resourceGroupName"] for e in events(server.url, since=since, caller="anonymous")} >= {"old", "recent"}
    assert activity.prune() >= 1
    left = {e["eventDataId"] for e in events(server.url, since=since, caller="anonymous")}
    assert old.id not in left and recent.id in left

    # and without being asked: a writer prunes when it starts and every prune_seconds after
    timed = ActivityLog(activity.store, retention_days=30, prune_seconds=1.5)
    pruned = []  # one item per pruning the writer finished
    prune = timed.prune

    def counted_prune():
        removed = prune()
        pruned.append(removed)
        return removed

    monkeypatch.setattr(timed, "prune", counted_prune)

    def wait_gone(entry: Entry, what: str, after: int = 0) -> None:
        deadline = time.monotonic() + 30
        while (entry.id in {e["eventDataId"] for e in events(server.url, since=since, caller="anonymous")}
               or len(pruned) <= after):
            assert time.monotonic() < deadline, f"{what}: the {entry.resource_group} entry outlived a 30-day retention"
            time.sleep(0.05)

    timed.start()
    try:
        wait_gone(recent, "no pruning when the writer started")
        late = _entry(40, "late")
        activity.record(late)
        activity.flush()
        wait_gone(late, "no pruning prune_seconds later", after=len(pruned))
    finally:
        timed.stop()


def test_a_full_queue_drops_entries_instead_of_slowing_requests(server):
    small = ActivityLog(server.app.state.activity.store, capacity=2)
    small.stop()  # stopped: what is recorded stays queued
    for _ in range(5):
        small.record(_entry(0, "flood"))
    assert small.dropped == 3


def test_recorded_read_and_pruned_on_each_database(tmp_path, database_url):
    """The same log on SQLite and on PostgreSQL (whose column sizes are enforced)."""
    with ThreadServer(tmp_path, database_url) as running:
        correlation = new_correlation()
        long_name = "g" * 90
        made = admin_http.put(f"{running.url}{GROUPS}/{long_name}?{RG_API}", json={"location": "eastus"},
                              headers={"x-ms-correlation-request-id": correlation})
        assert made.status_code == 201, made.text
        anonymous = httpx.post(f"{running.url}/subscriptions/{uuid.uuid4()}/resourcegroups/{'x' * 300}/whatever",
                               headers={"x-ms-client-request-id": "y" * 128})
        assert anonymous.status_code == 401
        [event] = correlated(running.url, correlation)
        assert event["resourceGroupName"] == long_name and event["status"]["value"] == "Succeeded"
        activity = running.app.state.activity
        with activity.store.read() as tx:  # kept, but under no subscription: that one does not exist
            unplaced = tx.c.execute(select(activity_log.c.resource_group, activity_log.c.client_request_id)
                                    .where(activity_log.c.subscription_id.is_(None))).all()
        assert [tuple(row) for row in unplaced] == [("x" * 128, "y" * 128)]
        activity.record(_entry(100, "old"))
        activity.flush()
        assert activity.prune() == 1


# ---- the CLI -------------------------------------------------------------------------------------

def test_galley_activity_log_list(server, galley):
    correlation = new_correlation()
    admin_http.put(f"{server.url}{GROUPS}/viacli?{RG_API}", json={"location": "eastus"},
                   headers={"x-ms-correlation-request-id": correlation})
    listed = galley("activity-log", "list", "--correlation-id", correlation, "--offset", "1h").json()
    assert [(e["resourceGroupName"], e["status"]["value"]) for e in listed] == [("viacli", "Succeeded")]
    assert galley("activity-log", "list", "-g", "viacli", "--offset", "1d").json()[0]["correlationId"] == correlation
    assert galley("activity-log", "list", "--start-time", "2001-01-01", "--end-time", "2001-02-01").json() == []
    table = galley("activity-log", "list", "--correlation-id", correlation, "-o", "table").stdout
    assert "Microsoft.Resources/subscriptions/resourceGroups/write" in table and "Succeeded" in table
    wrong = galley("activity-log", "list", "--offset", "soon", check=False)
    assert wrong.code == 2 and "--offset" in wrong.stderr
