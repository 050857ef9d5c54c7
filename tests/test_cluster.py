"""Three Galley nodes behind HAProxy on one PostgreSQL and a SeaweedFS cluster (tests/cluster.py):
any node answers anything, each job runs once on one node, a killed node's job is finished by
another. node3 runs `--role api` only: it serves but never claims work. All slow but the last
test, which plays a node on another machine dying mid-upload inside one server."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import jwt
import pytest
from sqlalchemy import create_engine, text

from galley.jobs.build import workspace

from . import admin_http as httpx
from .cluster import Cluster, wait_until
from .data_helpers import (DISK_API, GALLERY_API, MiB, begin_version, compute_client, create_upload_disk,
                           create_version,
                           download_sha, gallery_chain, get_version, latest_in, random_raw, region_status,
                           sha256_file, target, upload, upload_ok, version_download_sha, version_id, wait_version)
from .sdk_helpers import make_group, resource_id, version_body
from .servers import SUBSCRIPTION
from .store_audit import audit, cluster_objects, collect_garbage
from .debian_base import debian_base_image
from .test_builds import (build_log, create_template, leftovers as build_leftovers, register_platform_image,
                          start_run, template_body, wait_for_log, wait_run)
from .test_image_templates import template_id

BANDWIDTH = 4 * MiB  # bytes/s of replication per node: slow enough to kill a node mid-copy


@pytest.fixture(scope="module")
def cluster():
    # Under /tmp, not pytest's tmp_path: the postgres user must be able to reach its data folder.
    root = Path(tempfile.mkdtemp(prefix="galley-cluster-"))
    os.chmod(root, 0o755)
    running = Cluster(root / "cluster", roles=(None, None, "api"),
                      node_env={"GALLEY_DEFAULT_SUBSCRIPTION_ID": SUBSCRIPTION,
                                "GALLEY_REPLICATION_BANDWIDTH": str(BANDWIDTH)})
    saved = {name: os.environ.get(name) for name in ("SSL_CERT_FILE", "REQUESTS_CA_BUNDLE")}
    try:
        running.up()
        # httpx and the SDK's requests trust the cluster's CA for the module's duration.
        os.environ["SSL_CERT_FILE"] = os.environ["REQUESTS_CA_BUNDLE"] = str(running.ca)
        token = token_from(running.url, running)
        for url in (running.url, *(n.url for n in running.nodes)):
            httpx.register(url, token)
        yield running
    finally:
        running.down()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def database(cluster):
    engine = create_engine(cluster.database_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def chain(cluster):
    """Group 'rg', gallery 'gal', definition 'def', made through the balancer."""
    gallery_chain(compute_client(cluster.url), cluster.url)


def token_from(token_url: str, cluster: Cluster) -> str:
    """The administrator's token from the token endpoint at `token_url`, for the balancer's URL,
    asked as through the balancer (which passes the client's Host on): issued by the balancer's URL."""
    creds = cluster.credentials()
    balancer_host = cluster.url.split("://", 1)[1]
    response = httpx.post(f"{token_url}/{creds['tenantId']}/oauth2/v2.0/token", auth=None,
                          headers={"Host": balancer_host}, data={
        "grant_type": "client_credentials", "client_id": creds["clientId"],
        "client_secret": creds["clientSecret"], "scope": f"{cluster.url}/.default"})
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def node_names(database) -> dict[str, str]:
    with database.connect() as db:
        return dict(db.execute(text("SELECT id, name FROM nodes")).all())


def operations_of(database, resource: str) -> list[dict]:
    with database.connect() as db:
        rows = db.execute(text("SELECT * FROM operations WHERE lower(resource_id) = lower(:id) "
                               "ORDER BY start_time"), {"id": resource}).mappings().all()
    return [dict(row) for row in rows]


def holder(row: dict, names: dict[str, str]) -> str:
    """The node whose worker claimed an operation (lease owners are `{node id}.{worker}`)."""
    return names.get((row["lease_owner"] or "").split(".", 1)[0], row["lease_owner"])


@pytest.mark.slow
def test_any_node_answers_anything(cluster, chain, tmp_path):
    url = cluster.url
    compute = compute_client(url)
    raw = random_raw(tmp_path / "disk.raw", 6 * MiB, seed=14)
    expected = sha256_file(raw)
    disk = create_upload_disk(compute, "d1", 6 * MiB)
    upload_ok(url, disk.id, raw)

    # Raw PUT, to see the headers: they name the balancer, whichever node answered.
    response = httpx.put(f"{url}{version_id('1.0.0')}", params={"api-version": GALLERY_API},
                         json=version_body(disk.id, targets=[{"name": "eastus"}, {"name": "westus2"}]))
    assert response.status_code == 201, response.text
    status_url = response.headers["Azure-AsyncOperation"]
    assert status_url.startswith(url + "/"), status_url
    deadline = time.time() + 90
    while True:  # every node reads the same operation status
        answers = [httpx.get(status_url.replace(url, node.url)) for node in cluster.nodes]
        assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
        states = {a.json()["status"] for a in answers}
        if states == {"Succeeded"}:
            break
        assert states <= {"InProgress", "Succeeded"}, [a.json() for a in answers]
        assert time.time() < deadline, states
        time.sleep(0.2)
    assert {a.json()["name"] for a in answers} == {answers[0].json()["name"]}

    out = tmp_path / "out.raw"
    for base in (url, *(n.url for n in cluster.nodes)):
        assert wait_version(base, "1.0.0")["properties"]["provisioningState"] == "Succeeded"
        assert {r: s["state"] for r, s in region_status(base, "1.0.0").items()} == {
            "eastus": "Completed", "westus2": "Completed"}
        for region in ("eastus", "westus2"):
            latest = latest_in(base, region)
            assert latest.status_code == 200 and latest.json()["name"] == "1.0.0", latest.text
            assert version_download_sha(base, "1.0.0", region, out) == expected, (base, region)


@pytest.mark.slow
def test_a_token_from_one_node_works_on_the_others(cluster):
    groups = f"/subscriptions/{SUBSCRIPTION}/resourcegroups"
    for issuer in cluster.nodes:
        token = token_from(issuer.url, cluster)  # signed by issuer with the key in the database
        assert jwt.decode(token, options={"verify_signature": False})["iss"].startswith(cluster.url + "/")
        for other in cluster.nodes:
            answer = httpx.get(f"{other.url}{groups}", params={"api-version": "2024-11-01"},
                               headers={"Authorization": f"Bearer {token}"})
            assert answer.status_code == 200, (issuer.name, other.name, answer.text)
    forged = token_from(cluster.nodes[0].url, cluster)[:-4] + "AAAA"
    answer = httpx.get(f"{cluster.url}{groups}", params={"api-version": "2024-11-01"},
                       headers={"Authorization": f"Bearer {forged}"})
    assert answer.status_code == 401, answer.text


@pytest.mark.slow
def test_each_job_runs_once_on_one_worker_node(cluster, chain, database):
    """40 definitions PUT by 8 clients through the balancer: each creation is an operation that
    exactly one worker claims once (FOR UPDATE SKIP LOCKED + a conditional UPDATE), spread over
    the worker nodes; the api-only node claims nothing."""
    names = [f"def{n:02d}" for n in range(40)]
    failures = []

    def put_some(some: list[str]) -> None:
        for name in some:
            answer = httpx.put(f"{cluster.url}{resource_id(f'galleries/gal/images/{name}')}",
                               params={"api-version": GALLERY_API}, json={
                                   "location": "eastus", "properties": {
                                       "osType": "Linux", "osState": "Generalized",
                                       "identifier": {"publisher": "p", "offer": "o", "sku": name}}})
            if answer.status_code not in (200, 201):
                failures.append(answer.text)

    threads = [threading.Thread(target=put_some, args=(names[i::8],)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures, failures[:3]

    deadline = time.time() + 60
    while True:
        rows = [row for name in names
                for row in operations_of(database, resource_id(f"galleries/gal/images/{name}"))]
        if len(rows) == len(names) and all(row["status"] != "InProgress" for row in rows):
            break
        assert time.time() < deadline, [(r["resource_id"], r["status"]) for r in rows if r["status"] == "InProgress"]
        time.sleep(0.2)
    assert {row["status"] for row in rows} == {"Succeeded"}
    assert [row["attempts"] for row in rows] == [1] * len(names)
    by_node = node_names(database)
    holders = {holder(row, by_node) for row in rows}
    assert holders <= {"node1", "node2"}, holders  # node3 is --role api
    assert len(holders) == 2, holders


@pytest.mark.slow
def test_a_killed_node_s_replication_is_finished_by_another(cluster, chain, database, tmp_path):
    url = cluster.url
    compute = compute_client(url)
    size = 48 * MiB  # 12 s of copying to westus2 at BANDWIDTH
    raw = random_raw(tmp_path / "big.raw", size, seed=41)
    expected = sha256_file(raw)
    upload_ok(url, create_upload_disk(compute, "big", size).id, raw)
    begin_version(compute, "2.0.0", "big", [target("eastus"), target("westus2")])
    version = version_id("2.0.0")

    deadline = time.time() + 60
    while True:  # early in the copy: westus2 between 5 and 40 %
        west = region_status(url, "2.0.0").get("westus2", {})
        if west.get("state") == "Replicating" and 5 <= west.get("progress", 0) <= 40:
            break
        assert west.get("state") != "Completed", "replication finished before it could be interrupted"
        assert time.time() < deadline, west
        time.sleep(0.05)
    names = node_names(database)
    running = [row for row in operations_of(database, version) if row["status"] == "InProgress"]
    assert len(running) == 1 and running[0]["lease_until"] > time.time(), running
    victim = holder(running[0], names)
    assert victim in ("node1", "node2"), victim
    # The holder renews its 10 s lease while it copies (every ~3.3 s), before it runs out.
    first_lease = running[0]["lease_until"]
    while True:
        looked = time.time()
        if (renewed := operations_of(database, version)[0])["lease_until"] != first_lease:
            break
        assert looked < first_lease, "the lease ran out without being renewed"
        time.sleep(0.2)
    assert renewed["status"] == "InProgress" and renewed["lease_owner"] == running[0]["lease_owner"], renewed
    assert renewed["lease_until"] > first_lease
    # The api node answers while the work goes on.
    assert httpx.get(f"{cluster.nodes[2].url}{version}", params={"api-version": GALLERY_API}).status_code == 200

    last_lease = operations_of(database, version)[0]["lease_until"]  # a renewal after this only lengthens it
    cluster.signal(victim, signal.SIGKILL)
    cluster.wait_gone(victim)
    # Not before the dead node's lease ran out: no look that ended before then finds another holder.
    deadline = time.time() + 120
    while (row := operations_of(database, version)[0])["lease_owner"] == renewed["lease_owner"]:
        assert time.time() < deadline, f"no node took the dead node's work over in 120 s: {row}"
        time.sleep(0.2)
    assert time.time() >= last_lease, ("another node took the work over before the dead node's lease ran out",
                                      row, last_lease)
    body = wait_version(url, "2.0.0", timeout=120)
    assert body["properties"]["provisioningState"] == "Succeeded", body
    [row] = operations_of(database, version)
    assert row["status"] == "Succeeded" and row["attempts"] == 2, row
    survivor = holder(row, node_names(database))
    assert survivor in ("node1", "node2") and survivor != victim, (victim, survivor)
    with database.connect() as db:
        assert db.execute(text("SELECT count(*) FROM operations WHERE status = 'InProgress'")).scalar() == 0
        assert db.execute(text("SELECT count(*) FROM upload_leases")).scalar() == 0

    out = tmp_path / "out.raw"
    alive = [n for n in cluster.nodes if n.name != victim]
    for base in (url, *(n.url for n in alive)):
        for region in ("eastus", "westus2"):
            assert version_download_sha(base, "2.0.0", region, out) == expected, (base, region)

    # The killed node comes back and serves the same bytes.
    cluster.start_node(next(n for n in cluster.nodes if n.name == victim))
    back = next(n for n in cluster.nodes if n.name == victim)
    assert version_download_sha(back.url, "2.0.0", "westus2", out) == expected
    # Its lease ran out long ago: a GC with no grace leaves the stores clean.
    collect_garbage(url, grace_seconds=0)
    report = audit(database, cluster_objects(cluster))
    assert report.clean, report


@pytest.mark.slow
def test_a_killed_node_s_upload_is_taken_over(cluster, chain, database, tmp_path):
    """kill -9 of the node receiving an upload: the disk is uploaded again through the balancer
    (another node takes the dead upload's lease) and every node serves the new bytes."""
    url = cluster.url
    compute = compute_client(url)
    disk = create_upload_disk(compute, "up1", 24 * MiB)
    api_node = cluster.nodes[2]

    def slow_body():
        for _ in range(60):
            yield os.urandom(MiB)
            time.sleep(0.1)

    def send() -> None:
        try:
            httpx.put(f"{api_node.url}{disk.id}/upload", params={"api-version": DISK_API},
                      content=slow_body(), timeout=60)
        except httpx.HTTPError:
            pass  # the node is killed under it

    sender = threading.Thread(target=send, daemon=True)
    sender.start()
    deadline = time.time() + 20
    while compute.disks.get("rg", "up1").disk_state != "ActiveUpload":
        assert time.time() < deadline
        time.sleep(0.05)
    time.sleep(0.5)
    cluster.signal(api_node.name, signal.SIGKILL)
    cluster.wait_gone(api_node.name)
    sender.join(timeout=30)

    raw = random_raw(tmp_path / "after.raw", 24 * MiB, seed=77)
    upload_ok(url, disk.id, raw)
    out = tmp_path / "out.raw"
    for node in cluster.nodes[:2]:
        assert download_sha(node.url, disk.id, out) == sha256_file(raw), node.name
    with database.connect() as db:
        assert db.execute(text("SELECT count(*) FROM upload_leases")).scalar() == 0
    cluster.start_node(api_node)
    cluster.wait_in_rotation(api_node)
    assert download_sha(api_node.url, disk.id, out) == sha256_file(raw)
    report = httpx.post(f"{url}/galley/store/verify", params={"repair": "false"}, timeout=300)
    assert report.status_code == 200, report.text
    assert report.json()["lost"] == [] and report.json()["damaged"] == [], report.json()
    # What the dead node had stored of the first upload goes with a GC with no grace.
    collect_garbage(url, grace_seconds=0)
    audited = audit(database, cluster_objects(cluster))
    assert audited.clean, audited
    assert download_sha(url, disk.id, out) == sha256_file(raw)


@pytest.mark.slow
def test_a_killed_node_s_build_is_run_again_by_another(cluster, chain, database):
    """kill -9 of the node running an image template's build, mid-customize: once its lease runs
    out another node runs the build again from the start and it succeeds; the log tells of the
    restart on every node; the dead node's sandbox, mounts and loop devices are undone when it
    starts again; no lease is left and a GC leaves the stores clean."""
    url = cluster.url
    register_platform_image(url, debian_base_image())
    marker = uuid.uuid4().hex
    template = template_id("killed")
    image_id = resource_id("images/killed-build")
    create_template(url, "killed", template_body(
        customize=[{"type": "Shell", "name": "slow", "inline": [f"echo started {marker}", "sleep 10"]}],
        distribute=[{"type": "ManagedImage", "imageId": image_id, "location": "eastus", "runOutputName": "mi"}]))
    start_run(url, "killed")
    wait_for_log(url, "killed", f"started {marker}")
    [running] = [row for row in operations_of(database, template) if row["status"] == "InProgress"]
    victim = next(n for n in cluster.nodes if n.name == holder(running, node_names(database)))
    cluster.signal(victim.name, signal.SIGKILL)
    cluster.wait_gone(victim.name)
    try:
        assert build_leftovers(victim.home), "the killed build left nothing behind to clean up"
        check_build_taken_over(cluster, database, victim, template, image_id, marker)
    finally:  # a failure above must not leave the dead build's mounts and loop devices on this machine
        workspace.reclaim(victim.home)


def check_build_taken_over(cluster: Cluster, database, victim, template: str, image_id: str, marker: str) -> None:
    url = cluster.url
    status, _ = wait_run(url, "killed", timeout=600)
    assert status["runState"] == "Succeeded", status
    deadline = time.time() + 30  # the run's operation ends just after its lastRunStatus
    while (row := next(r for r in operations_of(database, template) if r["action"] == "run"))["status"] == "InProgress":
        assert time.time() < deadline, row
        time.sleep(0.2)
    assert row["status"] == "Succeeded" and row["attempts"] == 2, row
    survivor = next(n for n in cluster.nodes if n.name == holder(row, node_names(database)))
    assert survivor is not victim and build_leftovers(survivor.home) == []
    image = httpx.get(f"{url}{image_id}", params={"api-version": "2024-11-01"})
    assert image.status_code == 200 and image.json()["properties"]["provisioningState"] == "Succeeded", image.text

    cluster.start_node(victim)  # it undoes what its dead build left on this machine before taking work
    assert build_leftovers(victim.home) == []
    for node in cluster.nodes:  # the log is in the object store: every node serves it
        log = build_log(node.url, "killed")
        assert "the server stopped during this run (attempt 2 of 3)" in log, (node.name, log[-2000:])
        assert log.count(f"started {marker}") == 1 and "runState Succeeded" in log, (node.name, log[-2000:])
    collect_garbage(url, grace_seconds=0)
    report = audit(database, cluster_objects(cluster))
    assert report.clean, report


def version_digests(url: str, out: Path) -> dict[tuple[str, str], str]:
    """sha256 of every version of gal/def in every region it completed in, downloaded."""
    listed = httpx.get(f"{url}{resource_id('galleries/gal/images/def/versions')}",
                       params={"api-version": GALLERY_API})
    assert listed.status_code == 200, listed.text
    return {(name, region): version_download_sha(url, name, region, out)
            for name in sorted(v["name"] for v in listed.json()["value"])
            for region, row in region_status(url, name).items() if row["state"] == "Completed"}


def plant_garbage(cluster: Cluster, database, count: int) -> str:
    """`count` chunks in eastus's first store that no content references any more (as a deleted
    disk's are, long after): rows last seen an hour ago, and their objects; their digest prefix."""
    with database.connect() as db:
        store = db.execute(text("SELECT store FROM store_chunks WHERE store LIKE 'eastus/%/r0' LIMIT 1")).scalar()
    zone, slot = store.split("/")[1:]
    prefix = "fffe"
    digests = [prefix + os.urandom(30).hex() for _ in range(count)]
    client = cluster.s3_client()
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda d: client.put_object(Bucket="galley-eastus", Key=f"{zone}/{slot}/{d[:2]}/{d}",
                                                  Body=b"\x00garbage"), digests))
    with database.begin() as db:
        db.execute(text("INSERT INTO store_chunks (store, digest, stored_bytes, raw_bytes, last_seen) "
                        "VALUES (:store, :digest, 8, 7, :seen)"),
                   [{"store": store, "digest": d, "seen": time.time() - 3600} for d in digests])
    return prefix


@pytest.mark.slow
def test_a_gc_killed_midway_loses_nothing_and_the_next_one_cleans_up(cluster, chain, database, tmp_path):
    """kill -9 of the node running `galley store gc` while it deletes thousands of chunks: no
    manifest references a missing chunk (every version reads back byte-identical), and a GC run
    from another node leaves the stores clean."""
    url = cluster.url
    out = tmp_path / "out.raw"
    compute = compute_client(url)
    upload_ok(url, create_upload_disk(compute, "gc-kept", 8 * MiB).id, random_raw(tmp_path / "kept.raw", 8 * MiB, seed=61))
    create_version(compute, "7.0.0", "gc-kept", [target("eastus"), target("westus2")])
    before = version_digests(url, out)
    planted = 3000
    prefix = plant_garbage(cluster, database, planted)

    def remaining() -> int:
        with database.connect() as db:
            return db.execute(text("SELECT count(*) FROM store_chunks WHERE digest LIKE :p"),
                              {"p": prefix + "%"}).scalar()

    victim = cluster.nodes[2]

    def collect() -> None:
        try:
            httpx.post(f"{victim.url}/galley/store/gc", timeout=600)
        except httpx.HTTPError:
            pass  # the node is killed under it

    collector = threading.Thread(target=collect, daemon=True)
    collector.start()
    deadline = time.time() + 120
    while (left := remaining()) > planted - 100:
        assert time.time() < deadline, "the GC deleted nothing"
        time.sleep(0.05)
    cluster.signal(victim.name, signal.SIGKILL)
    cluster.wait_gone(victim.name)
    left = remaining()
    assert 0 < left < planted, f"the GC was not killed midway ({left} of {planted} chunks left)"
    collector.join(timeout=30)

    assert audit(database, cluster_objects(cluster)).missing == []
    assert version_digests(url, out) == before
    collect_garbage(cluster.nodes[0].url, grace_seconds=0)
    report = audit(database, cluster_objects(cluster))
    assert report.clean, report
    assert remaining() == 0
    assert version_digests(url, out) == before
    cluster.start_node(victim)
    cluster.wait_in_rotation(victim)


@pytest.mark.slow
def test_a_rolling_restart_under_load_fails_no_request(cluster, chain):
    """Reads and writes through the balancer while each node in turn is stopped (it drains: /readyz
    says 503 until HAProxy takes it out, then it stops) and started again: not one failure."""
    gallery = f"{cluster.url}{resource_id('galleries/gal')}"
    stop = threading.Event()
    outcomes: list[object] = []

    def reader() -> None:
        with httpx.Client(auth=httpx.ADMIN, timeout=30) as client:
            while not stop.is_set():
                try:
                    outcomes.append(client.get(gallery, params={"api-version": GALLERY_API}).status_code)
                except httpx.HTTPError as error:
                    outcomes.append(repr(error))

    def writer() -> None:
        with httpx.Client(auth=httpx.ADMIN, timeout=30) as client:
            number = 0
            while not stop.is_set():
                number += 1
                try:
                    answer = client.put(f"{gallery}/images/roll{number}", params={"api-version": GALLERY_API},
                                        json={"location": "eastus", "properties": {
                                            "osType": "Linux", "osState": "Generalized",
                                            "identifier": {"publisher": "p", "offer": "roll", "sku": str(number)}}})
                    outcomes.append(200 if answer.status_code in (200, 201) else answer.status_code)
                except httpx.HTTPError as error:
                    outcomes.append(repr(error))
                time.sleep(0.05)

    threads = [threading.Thread(target=reader) for _ in range(3)] + [threading.Thread(target=writer)]
    for thread in threads:
        thread.start()
    try:
        time.sleep(1)
        for node in cluster.nodes:
            cluster.restart_node(node)
        time.sleep(1)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=60)
    failures = [o for o in outcomes if o != 200]
    assert len(outcomes) > 100, len(outcomes)
    assert not failures, (len(failures), len(outcomes), failures[:5])


@pytest.mark.slow
def test_store_verify_repairs_damage_from_another_region(cluster, chain, tmp_path):
    """Chunks of a version in eastus and westus2, deleted or corrupted in westus2's bucket behind
    Galley's back: `galley store verify` (the CLI, through the balancer) reports them damaged and
    re-copies them from eastus, a second pass finds nothing, and westus2 serves the same bytes.
    A chunk damaged in both regions is reported lost, with exit code 3."""
    import json
    import subprocess
    import sys

    from .data_helpers import chunk_digests

    url = cluster.url
    compute = compute_client(url)
    raw = random_raw(tmp_path / "damaged.raw", 6 * MiB, seed=95)
    upload_ok(url, create_upload_disk(compute, "damaged", 6 * MiB).id, raw)
    create_version(compute, "6.0.0", "damaged", [target("eastus"), target("westus2")])
    digests = chunk_digests(raw)
    s3 = cluster.s3_client()
    east, west = "galley-eastus", "galley-westus2"

    def name(digest: str) -> str:  # where store <region>/1/r0 keeps a chunk in its bucket
        return f"1/r0/{digest[:2]}/{digest}"

    def read(bucket: str, digest: str) -> bytes:
        return s3.get_object(Bucket=bucket, Key=name(digest))["Body"].read()

    def store_verify() -> subprocess.CompletedProcess:
        environment = {key: value for key, value in os.environ.items() if not key.startswith("GALLEY_")}
        environment.update(GALLEY_URL=url, GALLEY_HOME=str(cluster.nodes[0].home),
                           GALLEY_CLI_HOME=str(tmp_path / "cli"), GALLEY_CA_BUNDLE=str(cluster.ca))
        return subprocess.run([sys.executable, "-m", "galley.cli.main", "store", "verify"], env=environment,
                              capture_output=True, text=True, timeout=600, check=False)

    s3.delete_object(Bucket=west, Key=name(digests[0]))
    s3.put_object(Bucket=west, Key=name(digests[1]), Body=b"\x01 not a chunk at all")
    good = read(west, digests[2])
    s3.put_object(Bucket=west, Key=name(digests[2]), Body=good[:-1] + bytes([good[-1] ^ 1]))  # one bit flipped

    first = store_verify()
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    damaged = {(row["store"], row["digest"]) for row in report["damaged"]}
    assert damaged == {("westus2/1/r0", digest) for digest in digests[:3]}, report["damaged"]
    assert {(row["store"], row["digest"]) for row in report["repaired"]} == damaged
    assert all(row["from"] == ["eastus/1/r0"] for row in report["repaired"]), report["repaired"]
    assert report["lost"] == []
    assert read(west, digests[2]) == good
    again = store_verify()
    assert again.returncode == 0 and json.loads(again.stdout)["damaged"] == [], again.stdout
    for base in (url, *(node.url for node in cluster.nodes)):
        assert version_download_sha(base, "6.0.0", "westus2", tmp_path / "out.raw") == sha256_file(raw), base

    # Damaged everywhere: lost, and the exit code says so. Then put back, for the tests after this one.
    kept = read(east, digests[3])
    for bucket in (east, west):
        s3.delete_object(Bucket=bucket, Key=name(digests[3]))
    lost = store_verify()
    assert lost.returncode == 3, (lost.returncode, lost.stdout, lost.stderr)
    assert {(row["store"], row["digest"]) for row in json.loads(lost.stdout)["lost"]} == {
        ("eastus/1/r0", digests[3]), ("westus2/1/r0", digests[3])}
    assert "lost" in lost.stderr
    for bucket in (east, west):
        s3.put_object(Bucket=bucket, Key=name(digests[3]), Body=kept)
    assert store_verify().returncode == 0


@pytest.mark.slow
def test_a_stopped_volume_server_loses_nothing(cluster, chain, database, tmp_path):
    """One SeaweedFS volume server stopped (replication 001: each volume's other copy is on the
    other server): versions still download byte-identical through the balancer, and `store verify`
    finds every chunk. SeaweedFS takes no write it cannot copy twice, and with two volume servers
    there is nowhere to put the second copy (its S3 gateway holds each PUT a minute, then says 500):
    an upload gets its 503 and Retry-After within seconds (a write's short timeout, then the
    store's circuit: see content/store_outage.py), and changes nothing; a replication that needs
    to write stays in progress. Once the server is back, both resume by themselves, and what was
    acknowledged before reads the same."""
    url = cluster.url
    compute = compute_client(url)
    raw = random_raw(tmp_path / "kept.raw", 8 * MiB, seed=91)
    expected = sha256_file(raw)
    upload_ok(url, create_upload_disk(compute, "kept", 8 * MiB).id, raw)
    create_version(compute, "5.0.0", "kept", [target("eastus"), target("westus2")])
    later = random_raw(tmp_path / "later.raw", 4 * MiB, seed=94)  # its chunks are in eastus only
    upload_ok(url, create_upload_disk(compute, "later", 4 * MiB).id, later)
    refused = create_upload_disk(compute, "refused", 4 * MiB)
    fresh = random_raw(tmp_path / "fresh.raw", 4 * MiB, seed=92)
    out = tmp_path / "out.raw"

    def verify(repair: bool) -> dict:
        report = httpx.post(f"{url}/galley/store/verify", params={"repair": str(repair).lower()}, timeout=300)
        assert report.status_code == 200, report.text
        return report.json()

    cluster.stop("weed-volume2")
    try:
        wait_until("the master to count one volume server", lambda: cluster.volume_servers() == 1, timeout=60)
        for _ in cluster.nodes:  # round robin: one pass per node
            for region in ("eastus", "westus2"):
                assert version_download_sha(url, "5.0.0", region, out) == expected, region
        report = verify(repair=False)
        assert report["checked"] > 0 and report["damaged"] == [] and report["lost"] == [], report
        begin_version(compute, "5.1.0", "later", [target("eastus"), target("westus2")])
        started = time.monotonic()
        with open(fresh, "rb") as body:
            answer = httpx.put(f"{url}{refused.id}/upload", params={"api-version": DISK_API}, content=body,
                               timeout=600)
        print(f"an upload with a volume server down was refused in {time.monotonic() - started:.1f} s")
        assert answer.status_code == 503, answer.text
        assert answer.json()["error"]["code"] == "ServiceUnavailable", answer.text
        assert int(answer.headers["Retry-After"]) >= 1
        assert time.monotonic() - started < 90  # it took 2.5 to 4 minutes with botocore's retries
        assert compute.disks.get("rg", "refused").disk_state == "ReadyToUpload"
        # The replication met the outage and was taken up again (after its lease), not failed.
        wait_until("the replication to be taken up again",
                   lambda: operations_of(database, version_id("5.1.0"))[0]["attempts"] >= 2, timeout=90)
        [operation] = operations_of(database, version_id("5.1.0"))
        assert operation["status"] == "InProgress", operation
        assert get_version(url, "5.1.0")["properties"]["provisioningState"] == "Creating"
    finally:
        cluster.start_volume_server(2)
    wait_until("the master to count two volume servers", lambda: cluster.volume_servers() == 2, timeout=60)

    back = time.monotonic()
    for number, node in enumerate(cluster.nodes):  # each node's writes resume by themselves
        # A write sent just before the server came back may still fail (after its timeouts) and keep
        # that node's circuit open a little longer: a 503 with Retry-After, then the upload works.
        fresh = random_raw(tmp_path / f"fresh{number}.raw", 4 * MiB, seed=100 + number)
        while (answer := upload(node.url, refused.id, fresh)).status_code == 503:
            assert time.monotonic() - back < 90, (node.name, answer.text)
            time.sleep(1)
        assert answer.status_code == 200, (node.name, answer.text)
    print(f"uploads resumed on every node {time.monotonic() - back:.1f} s after the volume server was back")
    assert wait_version(url, "5.1.0", timeout=120)["properties"]["provisioningState"] == "Succeeded"
    report = verify(repair=True)
    assert report["lost"] == [] and report["damaged"] == [] and report["checked"] > 0, report
    assert download_sha(url, refused.id, out) == sha256_file(fresh)
    for region in ("eastus", "westus2"):
        assert version_download_sha(url, "5.0.0", region, out) == expected, region
        assert version_download_sha(url, "5.1.0", region, out) == sha256_file(later), region


def test_an_upload_whose_node_died_elsewhere_does_not_block_the_next(sqlite_server, tmp_path):
    """A node on another machine died mid-upload: its lease runs out (its process cannot be
    checked from here), and the next upload finds the disk as it was, not stuck in ActiveUpload."""
    url = sqlite_server.url
    compute = compute_client(url)
    make_group(url)
    disk = create_upload_disk(compute, "orphan", 20 * MiB)
    service = sqlite_server.app.state.service
    service.begin_upload(disk.id, "Microsoft.Compute/disks", "elsewhere:4242", 600, lambda owner: True)
    assert compute.disks.get("rg", "orphan").disk_state == "ActiveUpload"
    refused = upload(url, disk.id, random_raw(tmp_path / "early.raw", MiB, seed=1))
    assert refused.status_code == 409 and "in progress" in refused.text, refused.text
    engine = create_engine(sqlite_server.app.state.settings.database_url)
    try:  # the lease runs out (instead of waiting for it)
        with engine.begin() as db:
            expired = db.execute(text("UPDATE upload_leases SET until = :past WHERE owner = 'elsewhere:4242'"),
                                 {"past": time.time() - 1})
            assert expired.rowcount == 1
    finally:
        engine.dispose()
    raw = random_raw(tmp_path / "after.raw", 20 * MiB, seed=2)
    upload_ok(url, disk.id, raw)
    assert compute.disks.get("rg", "orphan").disk_state == "Unattached"
    assert download_sha(url, disk.id, tmp_path / "out.raw") == sha256_file(raw)


@pytest.mark.slow
def test_a_disk_sas_session_works_through_the_balancer_and_outlives_its_holder_s_kill(cluster, chain, database,
                                                                                     tmp_path):
    """az disk grant-access through the balancer; the page writes, reads and the revoke reach any
    node and are forwarded to the one holding the session; kill -9 of that node keeps the pages it
    acknowledged, and once it is back the session goes on and revoke gives exactly the bytes written."""
    from azure.storage.blob import BlobClient

    from .test_disk_access import footer, grant, revoke, upload_disk

    size = 20 * MiB
    compute = compute_client(cluster.url)
    upload_disk(compute, "sas1", size)
    sas = grant(compute, "sas1")
    assert sas.startswith(cluster.url + "/md-"), sas
    with database.connect() as db:
        holder_id = db.execute(text("SELECT node_id FROM disk_access_sessions")).scalar()
    holder = next(n for n in cluster.nodes if n.name == node_names(database)[holder_id])

    data = bytearray(os.urandom(size))
    data[8 * MiB:12 * MiB] = bytes(4 * MiB)  # a hole, never sent
    image = bytes(data) + footer(size)
    client = BlobClient.from_blob_url(sas, max_page_size=4 * MiB)
    for offset in range(0, 8 * MiB, 2 * MiB):  # eight requests: round robin spreads them over the nodes
        client.upload_page(image[offset:offset + 2 * MiB], offset=offset, length=2 * MiB)

    cluster.signal(holder.name, signal.SIGKILL)
    cluster.wait_gone(holder.name)
    page = httpx.put(f"{cluster.nodes[2 if holder is not cluster.nodes[2] else 0].url}{sas[len(cluster.url):]}"
                     "&comp=page", content=b"\x01" * 512,
                     headers={"x-ms-page-write": "update", "x-ms-range": "bytes=0-511", "x-ms-version": "2021-08-06"})
    assert page.status_code == 503 and page.headers["x-ms-error-code"] == "ServerBusy", page.text
    cluster.start_node(holder)
    cluster.wait_in_rotation(holder)

    ranges = client.list_page_ranges()
    assert [(r.start, r.end) for r in ranges] == [(0, 8 * MiB - 1)]  # what was acknowledged, and only that
    for offset in range(12 * MiB, size + 512, 4 * MiB):
        piece = image[offset:min(offset + 4 * MiB, size + 512)]
        client.upload_page(piece, offset=offset, length=len(piece))
    revoke(compute, "sas1")
    assert compute.disks.get("rg", "sas1").disk_state == "Unattached"
    out = tmp_path / "sas1.raw"
    expected = tmp_path / "expected.raw"
    expected.write_bytes(bytes(data))
    for node in cluster.nodes[:2]:
        assert download_sha(node.url, resource_id("disks/sas1"), out) == sha256_file(expected), node.name
    with database.connect() as db:
        assert db.execute(text("SELECT count(*) FROM disk_access_sessions")).scalar() == 0
