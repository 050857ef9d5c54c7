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
    server = ProcessServer(tmp_path / "home", args=("--drain-seconds", "4")).start()
    try:
        assert plain_httpx.get(f"{server.url}/readyz").status_code == 200
        server.process.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 3
        while plain_httpx.get(f"{server.url}/readyz").status_code != 503:
            assert time.monotonic() < deadline, "readyz did not turn 503 on SIGTERM"
            time.sleep(0.1)
        assert plain_httpx.get(f"{server.url}/healthz").status_code == 200  # still serving
        assert server.process.wait(timeout=20) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal it handled
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
        gallery_puts = [(status, n) for (method, route, status), n in requests.items()
                        if method == "PUT" and route.endswith("/galleries/{galleryName}")]
        assert gallery_puts and gallery_puts[0][0] in ("200", "201"), requests
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
        assert ("galley_chunk_store_bytes", (("measure", "stored"), ("region", "westus2"))) in samples
        assert "# TYPE galley_jobs gauge" in scraped.text

        # An operation no worker claims (a cancel waits for its run) shows as queued, with its age.
        with server.app.state.store.write() as tx:
            tx.add_operation(_waiting_cancel())
        samples = _samples(httpx.get(f"{url}/metrics").text)
        assert _value(samples, "galley_jobs", kind="imageTemplates/cancel", state="queued") == 1
        assert _value(samples, "galley_jobs_oldest_age_seconds", kind="imageTemplates/cancel") >= 60


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
