"""PostgreSQL stopped under traffic: every answer is a 2xx or a 503 with Retry-After (never a 500, never
a dropped connection), /readyz says 503 while it is down, and once it is back the same `galley serve`
process answers again, its worker finishes the replication it was running, and a write that was
refused left nothing behind. The server runs on a PostgreSQL of this module's own, so stopping it
hurts no other test."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy
from sqlalchemy import exc

from . import admin_http as httpx
from .data_helpers import (DISK_API, GALLERY_API, MiB, begin_version, compute_client, create_upload_disk,
                           download_sha,
                           gallery_chain, random_raw, region_status, sha256_bytes, sha256_file, target,
                           upload, upload_ok, version_download_sha, wait_version)
from .postgres import PostgresServer
from .sdk_helpers import resource_id
from .servers import ProcessServer

from galley.content.store_outage import store_unavailable
from galley.store.outage import database_unavailable

BANDWIDTH = 4 * MiB  # bytes/s of replication: the copy below lasts through the outage
GALLERY = resource_id("galleries/gal")


@pytest.fixture(scope="module")
def postgres_of_module():
    server = PostgresServer().start()
    yield server
    try:
        server.resume()  # a failed test may have left it halted; stop() wants it running
    except Exception:  # noqa: BLE001 - it was running
        pass
    server.stop()


@pytest.fixture(scope="module")
def galley(postgres_of_module, tmp_path_factory):
    server = ProcessServer(tmp_path_factory.mktemp("outage"), postgres_of_module.create_database("galley"),
                           extra_env={"GALLEY_REPLICATION_BANDWIDTH": str(BANDWIDTH)})
    server.start()
    try:
        gallery_chain(compute_client(server.url), server.url)
        yield server
    finally:
        server.stop()


@dataclass
class Answer:
    kind: str
    started: float
    ended: float
    status: int | str  # a status code, or the repr of a transport error
    retry_after: str | None = None
    code: str | None = None
    name: str | None = None


class Traffic:
    """Reads (a gallery, a definition), writes (new image definitions), whole downloads of `disk`
    and uploads of `image` to `upload_to`, from a few threads, until stopped: every answer is kept."""

    KINDS = {"read", "write", "download", "upload"}

    def __init__(self, url: str, disk: str, disk_sha: str, upload_to: str, image: Path) -> None:
        self.url, self.disk, self.disk_sha = url, disk, disk_sha
        self.upload_to, self.image = upload_to, image
        self.answers: list[Answer] = []
        self.wrong_bytes: list[str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=loop, daemon=True)
                         for loop in (self._reads, self._reads, self._writes, self._downloads, self._uploads)]

    def __enter__(self) -> "Traffic":
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=60)

    def _keep(self, kind: str, started: float, call, name: str | None = None):
        try:
            response = call()
        except httpx.HTTPError as error:
            self.answers.append(Answer(kind, started, time.time(), repr(error), name=name))
            return None
        code = None
        if response.status_code >= 400:
            try:
                code = response.json()["error"]["code"]
            except Exception:  # noqa: BLE001 - not an ARM error body: the assertion shows it
                code = response.text[:200]
        self.answers.append(Answer(kind, started, time.time(), response.status_code,
                                   response.headers.get("Retry-After"), code, name))
        return response

    def answered_after(self, moment: float, timeout: float = 60.0) -> None:
        """Wait until every kind of request has had an answer to one sent after `moment`."""
        deadline = time.time() + timeout
        while (missing := self.KINDS - {a.kind for a in list(self.answers) if a.started > moment}):
            assert time.time() < deadline, f"no answer to a {missing} request sent after PostgreSQL came back"
            time.sleep(0.1)

    def _reads(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set():
                for path in (GALLERY, f"{GALLERY}/images/def"):
                    self._keep("read", time.time(), lambda: client.get(f"{self.url}{path}",
                                                                       params={"api-version": GALLERY_API}))
                time.sleep(0.02)

    def _writes(self) -> None:
        with httpx.Client(timeout=30) as client:
            number = 0
            while not self._stop.is_set():
                number += 1
                name = f"out{number}"
                self._keep("write", time.time(), lambda: client.put(
                    f"{self.url}{GALLERY}/images/{name}", params={"api-version": GALLERY_API},
                    json={"location": "eastus", "properties": {
                        "osType": "Linux", "osState": "Generalized",
                        "identifier": {"publisher": "p", "offer": "outage", "sku": name}}}), name)
                time.sleep(0.05)

    def _downloads(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set():
                def fetch():
                    response = client.get(f"{self.url}{self.disk}/download",
                                          params={"api-version": DISK_API, "format": "raw"})
                    if response.status_code == 200 and sha256_bytes(response.content) != self.disk_sha:
                        self.wrong_bytes.append(f"{len(response.content)} bytes")
                    return response
                self._keep("download", time.time(), fetch)
                time.sleep(0.05)


    def _uploads(self) -> None:
        with httpx.Client(timeout=30) as client:
            while not self._stop.is_set():
                self._keep("upload", time.time(), lambda: upload(self.url, self.upload_to, self.image,
                                                                 client=client))
                time.sleep(0.05)


def readyz(url: str) -> int:
    return httpx.get(f"{url}/readyz", auth=None, timeout=10).status_code


def wait_ready_again(url: str, timeout: float = 30.0) -> float:
    deadline = time.time() + timeout
    while readyz(url) != 200:
        assert time.time() < deadline, "/readyz stayed 503 after PostgreSQL came back"
        time.sleep(0.2)
    return time.time()


def outage(server: PostgresServer, url: str, mode: str, seconds: float,
           halted: threading.Event | None = None) -> tuple[list[int], float]:
    """Halt PostgreSQL for `seconds` (setting `halted` once it is down); /readyz's answers meanwhile
    and when it said 200 again."""
    server.halt(mode)
    if halted is not None:
        halted.set()
    seen = []
    until = time.time() + seconds
    while time.time() < until:
        seen.append(readyz(url))
        time.sleep(0.3)
    server.resume()
    return seen, wait_ready_again(url)


def assert_never_500(answers: list[Answer]) -> list[Answer]:
    """Only 2xx and 503s in ARM's shape with Retry-After; returns the 503s."""
    broken = [a for a in answers if not (isinstance(a.status, int) and (200 <= a.status < 300 or a.status == 503))]
    assert not broken, (len(broken), broken[:5])
    refused = [a for a in answers if a.status == 503]
    assert all(a.code == "ServiceUnavailable" and a.retry_after and int(a.retry_after) >= 1 for a in refused), \
        refused[:5]
    return refused


@pytest.mark.slow
def test_a_database_restart_under_traffic_is_503s_then_recovers(galley, postgres_of_module, tmp_path):
    url = galley.url
    compute = compute_client(url)
    raw = random_raw(tmp_path / "small.raw", 2 * MiB, seed=5)
    small = create_upload_disk(compute, "small", 2 * MiB)
    upload_ok(url, small.id, raw)
    big_raw = random_raw(tmp_path / "big.raw", 24 * MiB, seed=6)  # ~6 s of copying to westus2
    upload_ok(url, create_upload_disk(compute, "big", 24 * MiB).id, big_raw)
    begin_version(compute, "1.0.0", "big", [target("eastus"), target("westus2")])
    deadline = time.time() + 60
    while region_status(url, "1.0.0").get("westus2", {}).get("state") != "Replicating":
        assert time.time() < deadline, region_status(url, "1.0.0")
        time.sleep(0.05)

    uploaded = create_upload_disk(compute, "uploaded", 2 * MiB)
    cut = create_upload_disk(compute, "cut", 2 * MiB)
    upload_ok(url, cut.id, raw)
    cut_answer: list = []
    arriving, halted = threading.Event(), threading.Event()

    def slow_body():  # 2 MiB, the most of it once the database has gone away
        yield bytes(256 * 1024)
        arriving.set()
        assert halted.wait(60), "PostgreSQL was never halted"
        for _ in range(7):
            yield bytes(256 * 1024)

    cutter = threading.Thread(target=lambda: cut_answer.append(httpx.put(
        f"{url}{cut.id}/upload", params={"api-version": DISK_API}, content=slow_body(), timeout=60)))
    with Traffic(url, small.id, sha256_file(raw), uploaded.id, raw) as traffic:
        time.sleep(1.5)
        cutter.start()
        assert arriving.wait(30), "the upload the outage cuts never began"
        halted_at = time.time()
        during, ready_at = outage(postgres_of_module, url, "fast", 5.0, halted)
        traffic.answered_after(ready_at)
    cutter.join(timeout=60)
    assert readyz(url) == 200

    refused = assert_never_500(traffic.answers)
    assert not traffic.wrong_bytes, traffic.wrong_bytes
    assert refused, "no request met the outage"
    assert {a.kind for a in refused} == Traffic.KINDS, {a.kind for a in refused}
    assert 503 in during, during  # /readyz while PostgreSQL was down
    before = [a for a in traffic.answers if a.ended < halted_at]
    after = [a for a in traffic.answers if a.started > ready_at]
    assert before and all(a.status != 503 for a in before), before[:3]
    # Back without a restart of galley, and no stale pooled connection fails a request.
    assert {a.kind for a in after} == Traffic.KINDS, after
    assert all(a.status != 503 for a in after), [a for a in after if a.status == 503][:3]

    # A refused write left nothing; an accepted one was kept and its work done by the worker.
    for answer in (a for a in traffic.answers if a.kind == "write"):
        found = httpx.get(f"{url}{GALLERY}/images/{answer.name}", params={"api-version": GALLERY_API})
        if answer.status == 503:
            assert found.status_code == 404, (answer, found.text)
        else:
            assert found.status_code == 200, (answer, found.text)
    deadline = time.time() + 60
    while True:
        states = {httpx.get(f"{url}{GALLERY}/images/{a.name}", params={"api-version": GALLERY_API})
                  .json()["properties"]["provisioningState"] for a in traffic.answers
                  if a.kind == "write" and a.status != 503}
        if states == {"Succeeded"}:
            break
        assert time.time() < deadline, states
        time.sleep(0.5)

    # The upload the outage cut was refused and changed nothing; the disk takes the next one at once.
    assert cut_answer[0].status_code == 503 and cut_answer[0].headers["Retry-After"], cut_answer[0].text
    assert compute.disks.get("rg", "cut").disk_state == "Unattached"
    assert download_sha(url, cut.id, tmp_path / "cut.raw") == sha256_file(raw)
    upload_ok(url, cut.id, raw)
    # Those of the traffic too, whether or not one was cut.
    assert compute.disks.get("rg", "uploaded").disk_state == "Unattached"
    assert download_sha(url, uploaded.id, tmp_path / "uploaded.raw") == sha256_file(raw)

    # The replication that was running when the database went away finishes, byte for byte.
    body = wait_version(url, "1.0.0", timeout=120)
    assert body["properties"]["provisioningState"] == "Succeeded", body
    assert version_download_sha(url, "1.0.0", "westus2", tmp_path / "out.raw") == sha256_file(big_raw)

    # The node's heartbeat thread lived through it.
    nodes = httpx.get(f"{url}/providers/Galley.Operations/nodes").json()["value"]
    assert [n["properties"]["state"] for n in nodes] == ["Running"], nodes
    assert nodes[0]["properties"]["heartbeatAgeSeconds"] < 10, nodes


@pytest.mark.slow
def test_a_database_crash_mid_transaction_is_503s_then_recovers(galley, postgres_of_module, tmp_path):
    """pg_ctl stop -m immediate: connections are reset under running transactions, not ended cleanly."""
    url = galley.url
    compute = compute_client(url)
    raw = random_raw(tmp_path / "crash.raw", 2 * MiB, seed=7)
    disk = create_upload_disk(compute, "crash", 2 * MiB)
    upload_ok(url, disk.id, raw)
    uploaded = create_upload_disk(compute, "crash-uploaded", 2 * MiB)
    with Traffic(url, disk.id, sha256_file(raw), uploaded.id, raw) as traffic:
        time.sleep(1.0)
        _during, ready_at = outage(postgres_of_module, url, "immediate", 3.0)
        traffic.answered_after(ready_at)
    assert assert_never_500(traffic.answers), "no request met the outage"
    assert not traffic.wrong_bytes, traffic.wrong_bytes
    after = [a for a in traffic.answers if a.started > ready_at]
    assert after and all(a.status != 503 for a in after), [a for a in after if a.status == 503][:3]


def test_outages_are_told_from_faults():
    """What counts as the database being out of reach (503, retried) and what is a bug (500)."""
    import sqlite3

    def wrapped(orig: Exception, invalidated: bool = False) -> exc.DBAPIError:
        return exc.OperationalError("SELECT 1", {}, orig, connection_invalidated=invalidated)

    assert database_unavailable(wrapped(sqlite3.OperationalError("database is locked")))
    assert database_unavailable(wrapped(sqlite3.OperationalError("unable to open database file")))
    assert not database_unavailable(wrapped(sqlite3.OperationalError("no such table: resources")))
    assert database_unavailable(wrapped(ValueError("server closed the connection"), invalidated=True))
    assert database_unavailable(exc.TimeoutError("QueuePool limit of size 8 overflow 16 reached"))
    assert not database_unavailable(exc.IntegrityError("INSERT", {}, ValueError("duplicate key")))
    assert not database_unavailable(RuntimeError("something else"))
    try:  # raised while handling an outage: still the outage
        try:
            raise wrapped(sqlite3.OperationalError("database is locked"))
        except exc.OperationalError:
            raise exc.PendingRollbackError("Can't reconnect until invalid transaction is rolled back")
    except exc.PendingRollbackError as error:
        assert database_unavailable(error)
    refused = sqlalchemy.create_engine("postgresql+psycopg://postgres@127.0.0.1:1/none")
    with pytest.raises(exc.OperationalError) as raised:
        refused.connect()
    assert database_unavailable(raised.value)


def test_object_store_outages_are_told_from_faults():
    from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

    def answered(status: int, code: str) -> ClientError:
        return ClientError({"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "PutObject")

    assert store_unavailable(answered(500, "InternalError"))  # SeaweedFS: no writable volumes
    assert store_unavailable(answered(503, "SlowDown"))
    assert store_unavailable(EndpointConnectionError(endpoint_url="http://127.0.0.1:1"))
    assert store_unavailable(ReadTimeoutError(endpoint_url="http://127.0.0.1:1"))
    assert not store_unavailable(answered(404, "NoSuchKey"))
    assert not store_unavailable(answered(403, "AccessDenied"))
    assert not store_unavailable(answered(507, "InsufficientStorage"))
    assert not store_unavailable(RuntimeError("something else"))


def test_a_locked_database_or_a_refusing_store_is_a_503_not_a_500(sqlite_server, monkeypatch, caplog):
    """In the server: the errors above, raised by a route, answer 503 with Retry-After, logged as one
    warning line (not as an unhandled error with its traceback)."""
    import logging
    import sqlite3

    from botocore.exceptions import ClientError

    from .servers import SUBSCRIPTION

    groups = f"{sqlite_server.url}/subscriptions/{SUBSCRIPTION}/resourcegroups"
    caplog.set_level(logging.WARNING, logger="galley.api")
    for error, retry_after in (
            (exc.OperationalError("BEGIN IMMEDIATE", {}, sqlite3.OperationalError("database is locked")), "5"),
            (ClientError({"Error": {"Code": "InternalError"}, "ResponseMetadata": {"HTTPStatusCode": 500}},
                         "PutObject"), "30")):
        def failing(*_args, error=error, **_kwargs):
            raise error

        monkeypatch.setattr(sqlite_server.app.state.service, "list", failing)
        response = httpx.get(groups, params={"api-version": "2024-11-01"})
        assert response.status_code == 503, response.text
        assert response.json()["error"]["code"] == "ServiceUnavailable", response.text
        assert "Retry after" in response.json()["error"]["message"]
        assert response.headers["Retry-After"] == retry_after
    assert not [r for r in caplog.records if r.getMessage().startswith("unhandled error")]
    assert len([r for r in caplog.records if " unavailable for GET " in r.getMessage()]) == 2
    monkeypatch.undo()
    assert httpx.get(groups, params={"api-version": "2024-11-01"}).status_code == 200
