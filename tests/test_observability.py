"""Health probes, Prometheus metrics and JSON logs, on real servers."""

from __future__ import annotations

import json
import logging
import shutil
import signal
import time

import httpx as plain_httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from . import admin_http as httpx
from .data_helpers import (MiB, compute_client, convert, create_upload_disk, create_version, gallery_chain,
                           random_raw, target, upload_ok)
from .servers import SUBSCRIPTION, ProcessServer, ThreadServer, credentials


def _samples(text: str) -> dict[tuple[str, tuple], float]:
    """(sample name, sorted labels) → value, from a Prometheus text exposition."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def _value(samples: dict, name: str, **labels) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


# ---- health ----------------------------------------------------------------------------------

def test_healthz_and_readyz_are_open_and_readyz_fails_when_a_store_is_unreachable(tmp_path, monkeypatch):
    monkeypatch.setattr("galley.observability.health.REUSE_SECONDS", 0)  # every probe checks anew
    with ThreadServer(tmp_path, regions=("eastus", "westus2")) as server:
        alive = plain_httpx.get(f"{server.url}/healthz")
        assert alive.status_code == 200 and alive.json() == {"status": "ok"}

        ready = plain_httpx.get(f"{server.url}/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["status"] == "ready"
        assert {name: check["status"] for name, check in ready.json()["checks"].items()} == {
            "database": "ok", "store:eastus": "ok", "store:westus2": "ok"}

        # eastus's stores folder becomes a plain file: nothing can be written there any more.
        stores = tmp_path / "stores" / "eastus"
        shutil.rmtree(stores)
        stores.write_bytes(b"not a folder")
        broken = plain_httpx.get(f"{server.url}/readyz")
        assert broken.status_code == 503, broken.text
        assert broken.headers["retry-after"].isdigit()
        checks = broken.json()["checks"]
        assert checks["store:eastus"]["status"] == "failed"
        assert checks["store:westus2"]["status"] == "ok" and checks["database"]["status"] == "ok"
        assert str(tmp_path) not in broken.text and "file://" not in broken.text  # no paths, no URLs
        assert plain_httpx.get(f"{server.url}/healthz").status_code == 200  # alive all the same

        stores.unlink()
        assert plain_httpx.get(f"{server.url}/readyz").status_code == 200

        server.app.state.health.draining.set()  # what a stop signal does first
        draining = plain_httpx.get(f"{server.url}/readyz")
        assert draining.status_code == 503 and draining.json()["checks"]["draining"]["status"] == "failed"


@pytest.mark.slow
def test_a_stop_signal_drains_readyz_first_while_requests_are_still_served(tmp_path):
    (tmp_path / "home").mkdir()
    # a drain far longer than the test: the server can only have stopped through the second signal
    server = ProcessServer(tmp_path / "home", args=("--drain-seconds", "600")).start()
    try:
        assert plain_httpx.get(f"{server.url}/readyz").status_code == 200
        server.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        while plain_httpx.get(f"{server.url}/readyz").status_code != 503:
            assert time.monotonic() < deadline, "readyz did not turn 503 within 30 s of SIGTERM"
            time.sleep(0.1)
        assert plain_httpx.get(f"{server.url}/healthz").status_code == 200  # still serving
        assert server.process.poll() is None
        server.process.send_signal(signal.SIGTERM)  # a second stop signal ends the drain at once
        assert server.process.wait(timeout=30) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal it handled
    finally:
        server.stop()


# ---- metrics -----------------------------------------------------------------------------------

def test_metrics_count_requests_by_route_template_and_replication_by_region_pair(tmp_path, database_url, monkeypatch):
    from galley.observability.metrics import DatabaseCollector

    monkeypatch.setattr(DatabaseCollector, "CHUNK_BYTES_SECONDS", 0)  # read at every scrape, not once a minute
    with ThreadServer(tmp_path / "home", database_url) as server:
        url = server.url
        before = _samples(httpx.get(f"{url}/metrics").text)  # counters are the process's: other tests' too
        compute = compute_client(url)
        gallery_chain(compute, url)
        images = tmp_path / "images"
        images.mkdir()
        raw = random_raw(images / "source.raw", 24 * MiB, seed=5, pieces=[(0, 3 * MiB), (16 * MiB, 1 * MiB)])
        vhd = convert(raw, images / "source.vhd", "vpc", "subformat=fixed,force_size=on")
        disk = create_upload_disk(compute, "d1", 24 * MiB)
        upload_ok(url, disk.id, vhd)
        version = create_version(compute, "1.0.0", "d1", [target("eastus"), target("westus2")])
        assert version.provisioning_state == "Succeeded"
        assert plain_httpx.get(f"{url}/subscriptions/x/resourceGroups").status_code == 401

        scraped = httpx.get(f"{url}/metrics")
        assert scraped.status_code == 200, scraped.text
        assert scraped.headers["content-type"].startswith("text/plain; version=0.0.4")
        samples = _samples(scraped.text)

        requests = {(dict(key)["method"], dict(key)["route"], dict(key)["status"]): value
                    for (name, key), value in samples.items() if name == "galley_http_requests_total"}
        # (other tests of this process may have counted refused gallery PUTs: 4xx, under the same route)
        gallery_puts = [(status, n) for (method, route, status), n in requests.items()
                        if method == "PUT" and route.endswith("/galleries/{galleryName}") and status in ("200", "201")]
        assert gallery_puts, requests
        assert _value(samples, "galley_http_request_duration_seconds_count", method="PUT",
                      route=next(r for m, r, _ in requests if m == "PUT" and r.endswith("/galleries/{galleryName}")),
                      status=gallery_puts[0][0]) == gallery_puts[0][1]
        assert not any("/rg" in route or "/gal/" in route or "d1" in route for _, route, _ in requests), requests
        refused = [(route, n - (_value(before, "galley_http_requests_total", method=method, route=route, status=status)
                                or 0)) for (method, route, status), n in requests.items() if status == "401"]
        assert [r for r in refused if r[1]] == [("/subscriptions/{subscriptionId}/resourcegroups", 1)], refused

        moved = _value(samples, "galley_replication_bytes_total", source_region="eastus", target_region="westus2")
        moved -= _value(before, "galley_replication_bytes_total", source_region="eastus", target_region="westus2") or 0
        assert moved >= 4 * MiB  # the version's written chunks crossed regions
        assert _value(samples, "galley_replication_throughput_bytes_per_second",
                      source_region="eastus", target_region="westus2") > 0
        assert _value(samples, "galley_tokens_issued_total") >= 1
        assert _value(samples, "galley_authentication_failures_total", code="AuthenticationFailed") >= 1
        assert _value(samples, "galley_chunk_store_bytes", region="westus2", measure="raw") >= 4 * MiB
        assert _value(samples, "galley_chunk_store_bytes", region="westus2", measure="stored") > 0
        assert "# TYPE galley_jobs gauge" in scraped.text

        # An operation no worker claims (a cancel waits for its run) shows as queued, with its age.
        with server.app.state.store.write() as tx:
            tx.add_operation(_waiting_cancel())
        samples = _samples(httpx.get(f"{url}/metrics").text)
        assert _value(samples, "galley_jobs", kind="imageTemplates/cancel", state="queued") == 1
        assert _value(samples, "galley_jobs_oldest_age_seconds", kind="imageTemplates/cancel") >= 60
        with server.app.state.store.write() as tx:  # claimed by a worker: running, no longer queued
            assert tx.claim_operation("test.worker", 60, actions=("cancel",)) is not None
        samples = _samples(httpx.get(f"{url}/metrics").text)
        assert _value(samples, "galley_jobs", kind="imageTemplates/cancel", state="running") == 1
        assert _value(samples, "galley_jobs", kind="imageTemplates/cancel", state="queued") is None


def _waiting_cancel():
    from datetime import datetime, timedelta, timezone

    from galley.domain.resource import Operation

    started = (datetime.now(timezone.utc) - timedelta(minutes=2)).isoformat().replace("+00:00", "Z")
    template = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg/providers/Microsoft.VirtualMachineImages/imageTemplates/t"
    return Operation(resource_id=template, resource_type="Microsoft.VirtualMachineImages/imageTemplates",
                     action="cancel", region="eastus", subscription_id=SUBSCRIPTION, start_time=started)


# ---- logs --------------------------------------------------------------------------------------

def test_json_logs_are_one_object_per_line_with_request_ids_and_no_bearer_tokens(tmp_path):
    (tmp_path / "home").mkdir()
    server = ProcessServer(tmp_path / "home", extra_env={"GALLEY_NODE_NAME": "node-a"},
                           args=("--log-format", "json")).start()
    try:
        token = server.token
        answer = httpx.get(f"{server.url}/subscriptions", params={"api-version": "2022-12-01"},
                           headers={"x-ms-correlation-request-id": "corr-123"})
        assert answer.status_code == 200
        plain_httpx.get(f"{server.url}/subscriptions?api-version=2022-12-01&sig=SECRETSIG",
                        headers={"Authorization": "Bearer not-a-real-token"})
    finally:
        server.stop()
    lines = (tmp_path / "home" / "server.log").read_text().splitlines()
    events = [json.loads(line) for line in lines if line.startswith("{")]
    assert events, lines
    assert all({"time", "level", "message", "node"} <= set(e) and e["node"] == "node-a" for e in events)
    mine = [e for e in events if e.get("correlationId") == "corr-123"]
    assert mine and mine[0]["requestId"] == answer.headers["x-ms-request-id"]
    assert "GET /subscriptions" in mine[0]["message"] and mine[0]["logger"] == "galley.access"
    text = "\n".join(lines)
    assert token not in text and "not-a-real-token" not in text and "SECRETSIG" not in text
    assert credentials(tmp_path / "home")["clientSecret"] not in text


def test_the_json_formatter_names_the_node_and_a_requests_ids():
    from galley.api import request_ids
    from galley.observability.logs import JsonFormatter

    record = logging.LogRecord("galley.test", logging.WARNING, __file__, 1, "disk %s is %s", ("d1", "gone"), None)
    outside = json.loads(JsonFormatter("n1").format(record))
    assert outside["message"] == "disk d1 is gone" and outside["level"] == "warning" and outside["node"] == "n1"
    assert "requestId" not in outside
    token = request_ids._current.set(request_ids.RequestIds("r-1", "c-1"))
    try:
        inside = json.loads(JsonFormatter("n1").format(record))
    finally:
        request_ids._current.reset(token)
    assert (inside["requestId"], inside["correlationId"]) == ("r-1", "c-1")


# ---- galley status -------------------------------------------------------------------------------

def test_status_shows_the_upload_a_node_is_receiving_until_it_ends(cli_server, galley):
    import threading
    from datetime import datetime

    from .sdk_helpers import DISK_API, make_group

    make_group(cli_server.url)
    disk = create_upload_disk(compute_client(cli_server.url), "d1", 8 * MiB)
    image = random_raw(cli_server.home / "d1.raw", 8 * MiB, seed=5).read_bytes()
    halfway, go_on = threading.Event(), threading.Event()

    def body():
        yield image[:MiB]
        halfway.set()
        go_on.wait(60)
        yield image[MiB:]

    answers = []
    sender = threading.Thread(target=lambda: answers.append(httpx.put(
        f"{cli_server.url}{disk.id}/upload", params={"api-version": DISK_API, "format": "raw"},
        headers={"Content-Length": str(len(image))}, content=body(), timeout=90)))
    sender.start()
    try:
        assert halfway.wait(30)
        node = cli_server.app.state.node
        deadline = time.monotonic() + 30
        while True:  # the lease is taken once the server reads the request's start
            [listed] = [n for n in galley("status", "-o", "json").json() if n["name"] == node.id]
            if listed["properties"]["uploads"]:
                break
            assert time.monotonic() < deadline, f"galley status showed no upload on the node within 30 s: {listed}"
            time.sleep(0.1)
        [upload] = listed["properties"]["uploads"]
        assert upload["kind"] == "upload" and upload["resourceId"] == disk.id  # as named, not lower-cased
        until = datetime.fromisoformat(upload["until"]).timestamp()
        assert time.time() - 1 < until < time.time() + 120  # a lease that is renewed as bytes arrive
        table = galley("status", "-o", "table").stdout
        assert "Work held" in table and "upload" in table and "/disks/d1" in table and upload["until"] in table
    finally:
        go_on.set()
        sender.join(60)
    assert answers and answers[0].status_code == 200, answers
    [listed] = [n for n in galley("status", "-o", "json").json() if n["name"] == node.id]
    assert listed["properties"]["uploads"] == []
    assert "Work held" not in galley("status", "-o", "table").stdout


# ---- the OpenAPI document ------------------------------------------------------------------------

def test_health_metrics_and_nodes_are_in_the_openapi_document(sqlite_server):
    document = plain_httpx.get(f"{sqlite_server.url}/openapi.json").json()
    paths = document["paths"]
    expected = {"/healthz": "Galley_Liveness", "/readyz": "Galley_Readiness", "/metrics": "Galley_Metrics",
                "/providers/Galley.Operations/nodes": "Galley_ListNodes"}
    for path, operation_id in expected.items():
        operation = paths[path]["get"]
        assert operation["operationId"] == operation_id and operation["summary"] and operation["description"]
    assert paths["/healthz"]["get"]["security"] == [] and paths["/readyz"]["get"]["security"] == []
    assert "security" not in paths["/metrics"]["get"]  # the document's default: a token
    unready = paths["/readyz"]["get"]["responses"]["503"]
    assert "Retry-After" in unready["headers"] and unready["content"]["application/json"]["schema"]["$ref"]
    assert "text/plain" in paths["/metrics"]["get"]["responses"]["200"]["content"]
    nodes = paths["/providers/Galley.Operations/nodes"]["get"]["responses"]["200"]["content"]
    page = document["components"]["schemas"][nodes["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]]
    node = document["components"]["schemas"]["NodeProperties"]
    assert page["properties"]["value"]["items"]["$ref"].endswith("/Node")
    assert {"work", "uploads", "roles", "state"} <= set(node["properties"])


def _delta(after: dict, before: dict, name: str, **labels) -> float:
    return (_value(after, name, **labels) or 0) - (_value(before, name, **labels) or 0)


def test_build_token_and_refusal_metrics_move_with_real_work(tmp_path):
    """Counters are the process's (other tests' work too): each is read before and after."""
    from .test_image_templates import API, Chain, body_with, put_template, run_to_its_end, wait_template

    with ThreadServer(tmp_path / "home") as server:
        chain = Chain(server.url)
        creds = credentials(server.home)
        token_url = f"{server.url}/{creds['tenantId']}/oauth2/v2.0/token"
        grant = {"grant_type": "client_credentials", "client_id": creds["clientId"],
                 "client_secret": creds["clientSecret"], "scope": f"{server.url}/.default"}
        before = _samples(httpx.get(f"{server.url}/metrics").text)

        # A real run: its identity holds no role on the source, so it fails in its first phases.
        assert put_template(server.url, "t1", body_with(chain)).status_code == 201
        wait_template(server.url, "t1", timeout=30)
        run_to_its_end(server.url, "t1")
        assert plain_httpx.post(token_url, data=grant).status_code == 200
        refused = plain_httpx.post(token_url, data={**grant, "client_secret": "wrong"}).status_code
        assert refused in (400, 401)
        assert plain_httpx.get(f"{server.url}/subscriptions?api-version=2022-12-01",
                               headers={"Authorization": "Bearer not-a-token"}).status_code == 401

        after = _samples(httpx.get(f"{server.url}/metrics").text)
        assert _delta(after, before, "galley_build_duration_seconds_count", result="Failed") == 1
        phases = {dict(labels)["phase"] for (name, labels), value in after.items()
                  if name == "galley_build_phase_duration_seconds_count" and dict(labels)["result"] == "Failed"
                  and value > (before.get((name, labels)) or 0)}
        log_text = httpx.get(f"{server.url}/subscriptions/{SUBSCRIPTION}/resourceGroups/rg/providers/"
                             "Microsoft.VirtualMachineImages/imageTemplates/t1/logs",
                             params={"api-version": API}).text
        assert phases and all(f'"{phase}"' in log_text for phase in phases)  # those its log reports
        assert _delta(after, before, "galley_tokens_issued_total") >= 1
        assert _delta(after, before, "galley_token_requests_refused_total", status=str(refused)) == 1
        failures = sum(value - (before.get((name, labels)) or 0) for (name, labels), value in after.items()
                       if name == "galley_authentication_failures_total")
        assert failures == 1


def test_status_shows_the_disk_sas_session_a_node_keeps_until_it_is_revoked(cli_server, galley):
    from .sdk_helpers import make_group, quick_polls
    from .test_disk_access import grant, revoke, upload_disk

    make_group(cli_server.url)
    compute = quick_polls(compute_client(cli_server.url))
    upload_disk(compute, "sas-status")
    grant(compute, "sas-status")
    node = cli_server.app.state.node
    [listed] = [n for n in galley("status", "-o", "json").json() if n["name"] == node.id]
    assert [(u["kind"], u["resourceId"].rsplit("/", 1)[-1]) for u in listed["properties"]["uploads"]] == [
        ("diskAccess", "sas-status")]
    assert "diskAccess" in galley("status", "-o", "table").stdout
    revoke(compute, "sas-status")
    [listed] = [n for n in galley("status", "-o", "json").json() if n["name"] == node.id]
    assert listed["properties"]["uploads"] == []
