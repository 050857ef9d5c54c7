"""`galley serve --role`: an api node and a worker node on one database and one set of stores; work
asked of the api node is done by the worker node, and `galley status` shows both."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import httpx as plain_httpx
import pytest
from sqlalchemy import create_engine, select

from galley.store.tables import operations

from .data_helpers import (MiB, compute_client, convert, create_upload_disk, create_version, gallery_chain,
                           random_raw, target, upload_ok)
from .servers import SUBSCRIPTION, ProcessServer, ThreadServer, free_port


class WorkerNode:
    """`galley serve --role worker`: it answers only /healthz, /readyz and /metrics, so it is
    started here rather than by ProcessServer (which waits on the API and signs in through it)."""

    def __init__(self, home, env: dict) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        home.mkdir()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "galley.cli.main", "serve", "--http", "--port", str(self.port), "--role", "worker"],
            env={**os.environ, "GALLEY_HOME": str(home), "GALLEY_DEFAULT_SUBSCRIPTION_ID": SUBSCRIPTION, **env},
            stdout=subprocess.DEVNULL, stderr=open(home / "server.log", "ab"))
        deadline = time.monotonic() + 60
        while True:
            try:
                if plain_httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    break
            except plain_httpx.TransportError:
                pass
            assert time.monotonic() < deadline and self.process.poll() is None, (home / "server.log").read_text()
            time.sleep(0.2)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _status(api, cli_home, *output: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "galley.cli.main", "status", *output], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "GALLEY_URL": api.url, "GALLEY_HOME": str(api.home),
                                                      "GALLEY_CLI_HOME": str(cli_home)})


@pytest.mark.slow
def test_an_api_node_queues_a_replication_that_the_worker_node_does_and_status_shows_both(tmp_path):
    database = f"sqlite:///{tmp_path / 'shared.db'}"
    shared = {"GALLEY_DATABASE_URL": database,
              "GALLEY_STORE_TEMPLATE": f"file://{tmp_path / 'stores'}/{{region}}/{{zone}}"}
    (tmp_path / "api").mkdir()
    api = ProcessServer(tmp_path / "api", database, extra_env={**shared, "GALLEY_NODE_NAME": "api-1"},
                        args=("--role", "api")).start()
    worker = None
    try:
        # Behind a load balancer every node has the same public URL: the worker takes the api's tokens.
        worker = WorkerNode(tmp_path / "worker", {**shared, "GALLEY_NODE_NAME": "worker-1", "GALLEY_PUBLIC_URL": api.url})
        misdirected = plain_httpx.get(f"{worker.url}/subscriptions?api-version=2022-12-01")
        assert misdirected.status_code == 421 and misdirected.json()["error"]["code"] == "MisdirectedRequest"
        assert plain_httpx.get(f"{worker.url}/readyz").status_code == 200

        compute = compute_client(api.url)
        gallery_chain(compute, api.url)
        images = tmp_path / "images"
        images.mkdir()
        raw = random_raw(images / "source.raw", 24 * MiB, seed=3, pieces=[(0, 2 * MiB)])
        vhd = convert(raw, images / "source.vhd", "vpc", "subformat=fixed,force_size=on")
        disk = create_upload_disk(compute, "d1", 24 * MiB)
        upload_ok(api.url, disk.id, vhd)
        version = create_version(compute, "1.0.0", "d1", [target("eastus"), target("westus2")])
        assert version.provisioning_state == "Succeeded"

        listed = _status(api, tmp_path / "cli", "-o", "json")
        assert listed.returncode == 0, listed.stderr
        nodes = {n["properties"]["nodeName"]: n for n in json.loads(listed.stdout)}
        assert nodes["api-1"]["properties"]["roles"] == ["api"]
        assert nodes["worker-1"]["properties"]["roles"] == ["worker"]
        assert {n["properties"]["state"] for n in nodes.values()} == {"Running"}
        assert all(n["properties"]["heartbeatAgeSeconds"] < 15 for n in nodes.values())

        # The version's operation was claimed by the worker node's worker, not by the api node.
        engine = create_engine(database)
        with engine.connect() as connection:
            owners = connection.execute(select(operations.c.lease_owner).where(
                operations.c.resource_id.ilike("%/versions/1.0.0"))).scalars().all()
        engine.dispose()
        assert owners and {owner.split(".")[0] for owner in owners} == {nodes["worker-1"]["name"]}

        # The worker node counted the bytes it copied; the api node copied none.
        bearer = {"Authorization": f"Bearer {api.token}"}
        pair = 'galley_replication_bytes_total{source_region="eastus",target_region="westus2"}'
        worker_metrics = plain_httpx.get(f"{worker.url}/metrics", headers=bearer)
        assert worker_metrics.status_code == 200, worker_metrics.text
        assert any(line.startswith(pair) and float(line.split()[-1]) >= 2 * MiB
                   for line in worker_metrics.text.splitlines()), worker_metrics.text
        assert pair not in plain_httpx.get(f"{api.url}/metrics", headers=bearer).text

        table = _status(api, tmp_path / "cli", "-o", "table")
        assert table.returncode == 0, table.stderr
        rows = [line for line in table.stdout.splitlines() if line.startswith(("api-1", "worker-1"))]
        assert len(rows) == 2 and "Running" in rows[0] and "worker" in rows[1], table.stdout
    finally:
        if worker is not None:
            worker.stop()
        api.stop()


# ---- build logs from any node ------------------------------------------------------------------

def test_log_segments_give_any_offset_while_the_log_grows(tmp_path, monkeypatch):
    from galley.content.object_store import FolderStore
    from galley.jobs.build import log_segments

    monkeypatch.setattr(log_segments, "SEGMENT_BYTES", 10)
    store = FolderStore(tmp_path / "store")
    path = tmp_path / "customization.log"
    path.write_bytes(b"")
    store.put(log_segments.segment_key("/t", 0), b"last run's")  # a new run drops the last one's
    shipper = log_segments.LogShipper(store, "/t", path)
    shipper.start()
    try:
        assert log_segments.read(store, "/t", 0, 100) is None
        with open(path, "ab") as log:
            log.write(b"0123456789abcde")
        shipper.flush()
        assert log_segments.read(store, "/t", 0, 100) == (b"0123456789abcde", 15)
        with open(path, "ab") as log:
            log.write(b"fghij-klmnopqrst")  # the partial segment fills and another starts
        shipper.flush()
        assert log_segments.read(store, "/t", 12, 100) == (b"cdefghij-klmnopqrst", 31)
        assert log_segments.read(store, "/t", 12, 5) == (b"cdefg", 31)  # past the limit: the size all the same
        assert log_segments.read(store, "/t", 31, 100) == (b"", 31)
    finally:
        shipper.stop()


def test_a_build_log_is_served_by_a_node_other_than_the_builders(tmp_path):
    from . import admin_http
    from .test_image_templates import API, Chain, body_with, put_template, run_to_its_end, template_url, \
        wait_template

    database = f"sqlite:///{tmp_path / 'shared.db'}"
    stores = f"file://{tmp_path / 'stores'}/{{region}}/{{zone}}"
    with ThreadServer(tmp_path / "builder", database, store_template=stores) as builder_node:
        chain = Chain(builder_node.url)
        with ThreadServer(tmp_path / "api", database, run_worker=False, public_url=builder_node.url,
                          store_template=stores) as api_node:
            admin_http.register(api_node.url, builder_node.token)
            # Its identity holds no role on the source: the run fails at once, after writing its log.
            assert put_template(api_node.url, "t1", body_with(chain)).status_code == 201
            wait_template(api_node.url, "t1", timeout=30)
            run_to_its_end(api_node.url, "t1", poll=0.2)

            logs = admin_http.get(f"{template_url(api_node.url, 't1')}/logs", params={"api-version": API})
            assert logs.status_code == 200, logs.text
            assert "of image template t1 started" in logs.text and "runState Failed" in logs.text
            assert int(logs.headers["x-galley-log-size"]) == len(logs.content)
            assert logs.headers["x-galley-run-state"] == "Failed"
            assert not (tmp_path / "api" / "builds").exists()  # served from the store, not a local file
            local = (tmp_path / "builder" / "builds").glob("*/customization.log")
            assert [p.read_bytes() for p in local] == [logs.content]
            tail = admin_http.get(f"{template_url(api_node.url, 't1')}/logs",
                                  params={"api-version": API, "offset": 10})
            assert tail.content == logs.content[10:]


def test_roles_are_a_comma_list_and_no_worker_keeps_only_api():
    import typer

    from galley.cli.serve import node_roles

    assert node_roles(None, True) == {"api", "worker", "builder"}
    assert node_roles("api, worker", True) == {"api", "worker"}
    assert node_roles("all", False) == {"api"}  # --no-worker, as before --role existed
    for bad, worker in (("bogus", True), ("worker", False)):
        with pytest.raises(typer.BadParameter):
            node_roles(bad, worker)


def test_the_nodes_endpoint_shows_the_operations_each_node_holds(tmp_path):
    from galley.domain.resource import Operation
    from galley.store.node_store import lease_owner

    from . import admin_http

    with ThreadServer(tmp_path) as server:
        template = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg/providers/Microsoft.VirtualMachineImages/imageTemplates/t"
        operation = Operation(resource_id=template, resource_type="Microsoft.VirtualMachineImages/imageTemplates",
                              action="cancel", region="eastus", subscription_id=SUBSCRIPTION)
        node = server.app.state.node
        with server.app.state.store.write() as tx:
            tx.add_operation(operation)  # a cancel: no worker claims one, so this test's claim is the only one
            claimed = tx.claim_operation(lease_owner(node.id, "worker"), 60, actions=("cancel",))
        assert claimed is not None and claimed.id == operation.id

        nodes = admin_http.get(f"{server.url}/providers/Galley.Operations/nodes")
        assert nodes.status_code == 200, nodes.text
        [mine] = [n for n in nodes.json()["value"] if n["name"] == node.id]
        assert mine["properties"]["work"] == [{
            "operationId": operation.id, "kind": "Microsoft.VirtualMachineImages/imageTemplates/cancel",
            "resourceId": template, "since": operation.start_time}]
