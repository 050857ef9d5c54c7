"""Writes whose work ends at once are answered with their final state (GALLEY_QUICK_ANSWER_MS):
the unmodified SDK with its default polling does not poll, let alone sleep; long work (replicating
real bytes) keeps ARM's asynchronous answer, with a Retry-After from the work left; with the
budget at 0 every write is asynchronous, as before."""

from __future__ import annotations

import threading
import time

import pytest
from azure.core.pipeline.policies import SansIOHTTPPolicy
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.compute import models as m

from . import admin_http as httpx
from .conftest import AdminBearer, AdminCredential
from .data_helpers import MiB, UPLOAD_MINIMUM, compute_client, create_upload_disk, random_raw, upload_ok
from .sdk_helpers import (DISK_API, GALLERY_API, RESOURCES_API, RG, compute_url, create_definition,
                          create_gallery, group_url, make_group, resource_id, version_body)
from .servers import SUBSCRIPTION, ThreadServer

from galley.domain.image_version import remaining_seconds
from galley.domain.resource import TargetRegion
from galley.jobs.worker import Worker

ASYNC_HEADERS = {"azure-asyncoperation", "location", "retry-after"}


class Requests(SansIOHTTPPolicy):
    """Counts the HTTP requests the SDK sends (a poll is one more)."""

    def __init__(self) -> None:
        self.count = 0

    def on_request(self, request) -> None:
        self.count += 1


def default_sdk(url: str, counter: Requests) -> ComputeManagementClient:
    """azure-mgmt-compute as users build it: default polling (no polling_interval, no cap on its
    sleeps); the admin token on plain loopback HTTP, and a request counter."""
    return ComputeManagementClient(credential=AdminCredential(url), subscription_id=SUBSCRIPTION,
                                   base_url=url, authentication_policy=AdminBearer(url),
                                   per_call_policies=[counter])


def timed(counter: Requests, call) -> tuple[object, float, int]:
    before, started = counter.count, time.perf_counter()
    result = call()
    return result, time.perf_counter() - started, counter.count - before


def empty(kind, size_gb: int = 4, **extra):
    return kind(location="eastus", creation_data=m.CreationData(create_option="Empty"), disk_size_gb=size_gb,
                **extra)


def test_sdk_creates_are_answered_at_once_with_default_polling(server):
    make_group(server.url)
    counter = Requests()
    compute = default_sdk(server.url, counter)
    list(compute.galleries.list_by_resource_group(RG))  # the client's first request (connection)
    creates = {
        "gallery": lambda: create_gallery(compute),
        "definition": lambda: create_definition(compute),
        "disk": lambda: compute.disks.begin_create_or_update(RG, "disk", empty(m.Disk)).result(),
        "snapshot": lambda: compute.snapshots.begin_create_or_update(
            RG, "snap", empty(m.Snapshot, os_type="Linux")).result(),
        "version": lambda: compute.gallery_image_versions.begin_create_or_update(
            RG, "gal", "def", "1.0.0", version_body(resource_id("snapshots/snap"))).result(),
    }
    # A budget no machine load exhausts: what is checked is the answer's shape (final, so the SDK
    # sends no poll), not the speed (benchmarks/sdk_create.py measures that against the baseline).
    with server.settings_changed(quick_answer_ms=10_000):
        for name, create in creates.items():
            made, _, requests = timed(counter, create)
            state = getattr(made, "provisioning_state", None) or made.properties.provisioning_state
            assert state == "Succeeded", (name, made)
            assert requests == 1, (name, requests)  # no poll, no Retry-After sleep
        _, _, requests = timed(counter, lambda: compute.gallery_image_versions.begin_delete(
            RG, "gal", "def", "1.0.0").result())
        assert requests == 1, requests
        _, _, requests = timed(counter, lambda: compute.disks.begin_delete(RG, "disk").result())
        assert requests == 1, requests


def final(response, status: int) -> dict | None:
    """A final answer: `status`, none of the async headers, the resource Succeeded (if a body)."""
    assert response.status_code == status, (response.status_code, response.text)
    assert not ASYNC_HEADERS & set(response.headers), response.headers
    if not response.content:
        return None
    assert response.json()["properties"]["provisioningState"] == "Succeeded", response.text
    return response.json()


def test_quick_writes_answer_the_final_state_with_codes_the_sdk_takes(server):
    make_group(server.url)
    gallery = f"{compute_url(server.url, 'galleries/gal')}?api-version={GALLERY_API}"
    snapshot = f"{compute_url(server.url, 'snapshots/snap')}?api-version={DISK_API}"
    group = f"{group_url(server.url)}?api-version={RESOURCES_API}"
    empty_snapshot = {"location": "eastus",
                      "properties": {"creationData": {"createOption": "Empty"}, "diskSizeGB": 4}}
    # These are the shapes of final answers: a generous budget, so that a busy machine cannot turn
    # one into an asynchronous answer (the SDK test above runs with the default budget).
    with server.settings_changed(quick_answer_ms=10_000):
        created = final(httpx.put(gallery, json={"location": "eastus"}), 201)
        assert created == httpx.get(gallery).json()  # the resource as a GET shows it
        final(httpx.put(gallery, json={"location": "eastus", "tags": {"a": "1"}}), 200)
        assert final(httpx.patch(gallery, json={"tags": {"a": "2"}}), 200)["tags"] == {"a": "2"}
        # Disks and snapshots: 200, not 202 (which the SDK would read as "still running").
        assert final(httpx.put(snapshot, json=empty_snapshot), 200)["properties"]["diskState"] == "Unattached"
        assert final(httpx.patch(snapshot, json={"tags": {"b": "1"}}), 200)["tags"] == {"b": "1"}
        final(httpx.delete(snapshot), 200)
        assert httpx.get(snapshot).status_code == 404
        final(httpx.delete(gallery), 200)
        assert httpx.delete(gallery).status_code == 204  # nothing left to delete
        final(httpx.delete(group), 200)
        assert httpx.get(group).status_code == 404


def test_a_failed_operation_keeps_the_asynchronous_answer(server, monkeypatch):
    make_group(server.url)
    worker = server.app.state.worker

    def fails(_context, operation):
        raise RuntimeError(f"no {operation.action} today")

    monkeypatch.setattr(worker, "handler", fails)
    response = httpx.put(f"{compute_url(server.url, 'galleries/gal')}?api-version={GALLERY_API}",
                         json={"location": "eastus"})
    assert response.status_code == 201, response.text
    assert ASYNC_HEADERS <= set(response.headers)
    status = httpx.get(response.headers["Azure-AsyncOperation"]).json()
    assert status["status"] == "Failed" and "no create today" in status["error"]["message"]


@pytest.mark.slow
def test_long_replication_keeps_the_asynchronous_answer_and_estimates_retry_after(tmp_path):
    """Real bytes replicated under GALLEY_REPLICATION_BANDWIDTH take seconds: the PUT answers 201
    Creating with the async headers, and Retry-After follows the replication's pace (1..30)."""
    home, images = tmp_path / "home", tmp_path / "images"
    home.mkdir()
    images.mkdir()
    raw = random_raw(images / "disk.raw", UPLOAD_MINIMUM, seed=11, pieces=[(0, 3 * MiB)])  # 3 chunks
    with ThreadServer(home, replication_bandwidth=MiB) as server:
        compute = compute_client(server.url)
        make_group(server.url)
        create_gallery(compute)
        create_definition(compute)
        disk = create_upload_disk(compute, "src", UPLOAD_MINIMUM)
        upload_ok(server.url, disk.id, raw)
        started = time.perf_counter()
        response = httpx.put(
            f"{compute_url(server.url, 'galleries/gal/images/def/versions/1.0.0')}?api-version={GALLERY_API}",
            json=version_body(disk.id, targets=[{"name": "eastus"}, {"name": "westus2"}]))
        waited = time.perf_counter() - started
        assert response.status_code == 201, response.text
        assert ASYNC_HEADERS <= set(response.headers), response.headers
        assert response.json()["properties"]["provisioningState"] == "Creating"
        assert waited > 0.15, waited  # the quick-answer budget (200 ms) spent, then answered
        seen = [int(response.headers["Retry-After"])]
        deadline = time.time() + 60
        while True:
            status = httpx.get(response.headers["Azure-AsyncOperation"])
            if status.json()["status"] != "InProgress":
                break
            seen.append(int(status.headers["Retry-After"]))
            assert time.time() < deadline, seen
            time.sleep(0.05)
        assert status.json()["status"] == "Succeeded", status.text
        assert len(seen) >= 2 and all(1 <= s <= 30 for s in seen), seen  # answered, then polled


@pytest.mark.slow
def test_without_a_budget_every_write_is_asynchronous(tmp_path):
    with ThreadServer(tmp_path, quick_answer_ms=0) as server:
        make_group(server.url)
        gallery = f"{compute_url(server.url, 'galleries/gal')}?api-version={GALLERY_API}"
        snapshot = f"{compute_url(server.url, 'snapshots/snap')}?api-version={DISK_API}"
        response = httpx.put(gallery, json={"location": "eastus"})
        assert response.status_code == 201 and ASYNC_HEADERS <= set(response.headers)
        assert response.json()["properties"]["provisioningState"] == "Creating"
        body = {"location": "eastus", "properties": {"creationData": {"createOption": "Empty"}, "diskSizeGB": 4}}
        response = httpx.put(snapshot, json=body)
        assert response.status_code == 202 and ASYNC_HEADERS <= set(response.headers)
        assert response.headers["Retry-After"] == "1"

        counter = Requests()
        compute = default_sdk(server.url, counter)
        made, _seconds, requests = timed(counter, lambda: create_gallery(compute, "other"))
        assert made.properties.provisioning_state == "Succeeded"
        assert requests >= 2  # the create, then at least one poll
        response = httpx.delete(snapshot)
        assert response.status_code == 202 and ASYNC_HEADERS <= set(response.headers)


def test_remaining_time_is_estimated_from_the_pace_so_far():
    def regions(*states):
        return [TargetRegion(f"r{i}", 1, "Standard_LRS", state=state, progress=progress)
                for i, (state, progress) in enumerate(states)]

    assert remaining_seconds(regions(("Replicating", 25)), elapsed=2.0) == pytest.approx(6.0)
    assert remaining_seconds(regions(("Completed", 100), ("Replicating", 0)), elapsed=3.0) == pytest.approx(3.0)
    assert remaining_seconds(regions(("Failed", 0), ("Completed", 100)), elapsed=3.0) == 0.0
    assert remaining_seconds(regions(("Replicating", 0)), elapsed=3.0) is None  # no pace yet
    assert remaining_seconds([], elapsed=3.0) is None


# ---- the wait itself ------------------------------------------------------------------------------

def test_wait_until_rechecks_when_an_operation_ends_and_gives_up_in_time():
    worker = Worker(store=None, content=None)  # only its notice of ended operations is used
    state = {"done": False, "checks": 0}
    checked = [threading.Event() for _ in range(3)]

    def done() -> bool:
        answer = state["done"]  # read before telling the finisher, which may change it next
        checked[min(state["checks"], 2)].set()
        state["checks"] += 1
        return answer

    def finish_after_each_check() -> None:
        for notice, last in ((0, False), (1, True)):
            assert checked[notice].wait(60), f"check {notice + 1} never happened"
            time.sleep(0.05)  # room for a worker that polled to check again: it must not
            state["done"] = last
            worker._operation_ended()  # first an operation of someone else, then ours

    finisher = threading.Thread(target=finish_after_each_check)
    finisher.start()
    assert worker.wait_until(done, timeout=60.0)
    finisher.join(60)
    assert state["checks"] == 3  # at the start and after each notice: no polling in between

    state.update(done=False, checks=0)
    started = time.perf_counter()
    assert not worker.wait_until(done, timeout=0.5)
    assert time.perf_counter() - started >= 0.49  # it waited its time before giving up
    assert state["checks"] == 2  # at the start, and a last look when the time is up


def test_the_budget_is_a_setting(monkeypatch):
    from galley.config import load_settings

    monkeypatch.delenv("GALLEY_QUICK_ANSWER_MS", raising=False)
    assert load_settings().quick_answer_ms == 200
    monkeypatch.setenv("GALLEY_QUICK_ANSWER_MS", "0")
    assert load_settings().quick_answer_ms == 0


# ---- several nodes ---------------------------------------------------------------------------------

def test_an_api_node_answers_at_once_work_that_a_worker_node_does(tmp_path, monkeypatch):
    """Two servers on one database: the api-only node has no worker of its own, so it re-reads the
    operation that the worker node claims and ends; once no worker node is alive it answers
    asynchronously at once instead of waiting for nothing."""
    from galley.observability import nodes

    from . import admin_http

    monkeypatch.setattr(nodes, "LIVE_ROLES_SECONDS", 0.0)  # see the worker node stop at once
    database = f"sqlite:///{tmp_path / 'shared.db'}"
    worker_node = ThreadServer(tmp_path / "worker", database)
    with worker_node:
        with ThreadServer(tmp_path / "api", database, run_worker=False, public_url=worker_node.url) as api:
            assert not api.app.state.worker.running
            admin_http.register(api.url, worker_node.token)
            make_group(api.url)
            gallery = f"{compute_url(api.url, 'galleries/gal')}?api-version={GALLERY_API}"
            with api.settings_changed(quick_answer_ms=10_000):  # the worker polls every 0.5 s
                assert final(httpx.put(gallery, json={"location": "eastus"}), 201)["name"] == "gal"
                final(httpx.delete(gallery), 200)
                assert httpx.get(gallery).status_code == 404
                worker_node.__exit__(None, None, None)  # its node is marked stopped

                started = time.perf_counter()
                response = httpx.put(gallery, json={"location": "eastus"})
                assert time.perf_counter() - started < 5  # not the 10 s budget
                assert response.status_code == 201, response.text
                assert ASYNC_HEADERS <= set(response.headers), response.headers
                assert response.json()["properties"]["provisioningState"] == "Creating"


def test_wait_until_rechecks_on_its_own_for_work_of_another_process():
    worker = Worker(store=None, content=None)  # no operation of its own ever ends
    state = {"done": False, "checks": 0}

    def done() -> bool:
        state["checks"] += 1
        return state["done"]

    def finish_elsewhere() -> None:
        time.sleep(0.2)
        state["done"] = True

    threading.Thread(target=finish_elsewhere).start()
    started = time.perf_counter()
    assert worker.wait_until(done, timeout=10.0, recheck=0.025)
    assert time.perf_counter() - started < 5
    assert state["checks"] >= 3  # looked again and again without any notice
