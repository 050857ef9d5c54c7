"""An object store that cannot take writes (a SeaweedFS volume server down: its S3 gateway holds each
PUT for a minute, then answers 500) while it still serves reads: a write fails within seconds and
the ones after it at once, reads go on, writes resume by themselves once it takes them again; and
every path that writes (a platform image upload, replication, an image build's distribution)
answers 503 or waits the outage out, never a 500 or a failed job.

The slow, real version of this (a volume server of a SeaweedFS cluster stopped) is in
test_cluster.py::test_a_stopped_volume_server_loses_nothing."""

from __future__ import annotations

import hashlib
import http.server
import threading
import time

import pytest
from botocore.exceptions import ClientError

from galley.content import s3_store, store_outage
from galley.content.object_store import FolderStore
from galley.content.store_outage import (
    StoreUnavailable,
    WriteCircuit,
    store_unavailable,
)

from . import admin_http as httpx
from .data_helpers import (
    GALLERY_API,
    MiB,
    begin_version,
    chunk_files,
    compute_client,
    create_upload_disk,
    disk_id,
    download,
    download_sha,
    gallery_chain,
    get_version,
    random_raw,
    region_status,
    sha256_file,
    store_dir,
    target,
    upload_ok,
    version_download_sha,
    version_id,
    wait_version,
)


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# ---- the circuit -------------------------------------------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def refused() -> ClientError:
    return ClientError({"Error": {"Code": "InternalError"}, "ResponseMetadata": {"HTTPStatusCode": 500}},
                       "PutObject")


def attempt(circuit: WriteCircuit, error: Exception | None = None) -> str:
    try:
        with circuit.write():
            if error is not None:
                raise error
    except StoreUnavailable:
        return "refused at once"
    except Exception:  # noqa: BLE001 - the store's own failure
        return "failed"
    return "written"


def test_a_circuit_fails_writes_at_once_after_an_outage_and_closes_when_a_probe_succeeds(monkeypatch):
    clock = Clock()
    circuit = WriteCircuit("s3://b at http://x", cool_down=10, clock=clock)
    assert attempt(circuit) == "written"
    assert attempt(circuit, PermissionError("denied")) == "failed" and not circuit.is_open  # not an outage
    assert attempt(circuit, refused()) == "failed" and circuit.is_open
    clock.now += 9
    assert attempt(circuit) == "refused at once"
    clock.now += 2  # the cool-down is over: one write probes; the ones meanwhile wait for its outcome
    with monkeypatch.context() as patient:
        # However slow this machine, the write after the probe waits for the probe's outcome.
        patient.setattr(store_outage, "PROBE_PATIENCE_SECONDS", 60)
        for probe_fails, others in ((True, "refused at once"), (False, "written")):
            release, entered = threading.Event(), threading.Event()
            outcomes: list[str] = []

            def probing(fails=probe_fails, release=release, entered=entered) -> None:
                with circuit.write():
                    entered.set()
                    release.wait(10)
                    if fails:
                        raise refused()

            probe = threading.Thread(target=lambda outcomes=outcomes: outcomes.append(_quietly(probing)))
            probe.start()
            assert entered.wait(10), "the probe never began its write"
            waiting = threading.Thread(target=lambda outcomes=outcomes: outcomes.append(attempt(circuit)))
            waiting.start()
            waiting.join(0.2)
            assert outcomes == [] and waiting.is_alive()  # waits for the probe
            release.set()
            probe.join(5)
            waiting.join(5)
            assert outcomes[-1] == others, outcomes
            clock.now += 11
    assert not circuit.is_open and attempt(circuit) == "written"

    # A probe the store holds (it is still down): the writes meanwhile fail after a short wait.
    assert attempt(circuit, refused()) == "failed"
    clock.now += 11
    release, entered = threading.Event(), threading.Event()
    holding = threading.Thread(target=lambda: _quietly(lambda: _held(circuit, release, entered)))
    holding.start()
    assert entered.wait(10), "the probe never began its write"
    took, outcome = timed(lambda: attempt(circuit))
    # It gave up after PROBE_PATIENCE_SECONDS, while the probe was still held.
    assert outcome == "refused at once" and took >= 1.5 and holding.is_alive(), (took, outcome)
    release.set()
    holding.join(5)
    assert store_unavailable(StoreUnavailable("x"))


def _held(circuit: WriteCircuit, release: threading.Event, entered: threading.Event) -> None:
    with circuit.write():
        entered.set()
        release.wait(60)
        raise refused()


def _quietly(call) -> str:
    try:
        call()
    except Exception:  # noqa: BLE001 - the probe's failure is the point
        return "failed"
    return "written"


# ---- an S3 endpoint that holds writes ----------------------------------------------------------

class HoldingS3(http.server.ThreadingHTTPServer):
    """A minimal S3 endpoint (path-style, no signature check) that, while `holding`, keeps every PUT
    waiting without an answer, as SeaweedFS's gateway does with no writable volume, and serves
    GET and HEAD all along."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.objects: dict[str, bytes] = {}
        self.holding = False
        self.released = threading.Event()
        self.puts = 0

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: HoldingS3

    def log_message(self, *args) -> None:
        pass

    def _answer(self, status: int, body: bytes = b"", **headers: str) -> None:
        self.send_response(status)
        for name, value in {"Content-Length": str(len(body)), **headers}.items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_PUT(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.puts += 1
        if self.server.holding:
            self.server.released.wait(30)
            self.close_connection = True
            return
        self.server.objects[self.path] = body
        self._answer(200, ETag=f'"{hashlib.md5(body).hexdigest()}"')

    def do_GET(self) -> None:
        body = self.server.objects.get(self.path)
        if body is None:
            self._answer(404, b"<Error><Code>NoSuchKey</Code></Error>", **{"Content-Type": "application/xml"})
        else:
            self._answer(200, body, **{"Content-Type": "application/octet-stream"})

    do_HEAD = do_GET


@pytest.fixture
def holding_s3():
    server = HoldingS3()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.released.set()
    server.shutdown()
    server.server_close()


def timed(call) -> tuple[float, object]:
    started = time.monotonic()
    try:
        outcome = call()
    except Exception as error:  # noqa: BLE001 - returned for the test to look at
        outcome = error
    return time.monotonic() - started, outcome


def test_a_store_holding_writes_fails_them_within_seconds_then_at_once_and_recovers(holding_s3, monkeypatch):
    monkeypatch.setattr(s3_store, "WRITE_TIMEOUT", 1)
    store = s3_store.S3Store("held", "p", endpoint=holding_s3.endpoint, access_key="k", secret_key="s")
    clock = Clock()  # the cool-down ends when the test says, not when a slow machine gets there
    store._circuit = WriteCircuit(store._circuit.name, cool_down=1.0, clock=clock)
    store.put(digest("before"), b"kept")
    holding_s3.holding = True

    puts = holding_s3.puts
    _, outcome = timed(lambda: store.put(digest("refused"), b"x"))
    assert isinstance(outcome, Exception) and store_unavailable(outcome), outcome
    deadline = time.monotonic() + 10  # the endpoint counts a PUT in its own thread
    while holding_s3.puts - puts < s3_store.WRITE_ATTEMPTS and time.monotonic() < deadline:
        time.sleep(0.01)
    assert holding_s3.puts - puts == s3_store.WRITE_ATTEMPTS  # each held until WRITE_TIMEOUT, not retried for minutes
    puts = holding_s3.puts
    _, outcome = timed(lambda: store.put(digest("next"), b"y"))
    assert isinstance(outcome, StoreUnavailable), outcome
    assert holding_s3.puts == puts  # refused without asking the store
    # Reads are not cut short: the store still serves them.
    assert store.get(digest("before")) == b"kept" and store.exists(digest("before"))

    holding_s3.holding = False  # the store takes writes again
    holding_s3.released.set()
    clock.now += 2  # the cool-down is over: the next write probes, goes through and closes the circuit
    store.put(digest("after"), b"z")
    assert store.get(digest("after")) == b"z" and not store._circuit.is_open


# ---- what writes, with a store made to refuse writes -------------------------------------------

class RefusingWrites:
    """Every FolderStore of the server refuses writes while `on` (as an S3Store whose circuit is
    open does), and reads as usual."""

    def __init__(self, monkeypatch) -> None:
        self.on = False
        self.refused = 0
        for method in ("put", "put_parts"):
            original = getattr(FolderStore, method)

            def refusing(store, key, data, original=original, **options):
                if self.on:
                    self.refused += 1
                    raise StoreUnavailable(f"{store.url} is not taking writes (a test's outage)")
                return original(store, key, data, **options)

            monkeypatch.setattr(FolderStore, method, refusing)


def test_a_platform_image_upload_while_the_store_refuses_writes_is_a_503(sqlite_server, monkeypatch, tmp_path):
    outage = RefusingWrites(monkeypatch)
    item = f"{sqlite_server.url}/providers/Galley.Platform/publishers/pub/offers/off/skus/sku/versions/1.0.0"
    image = random_raw(tmp_path / "platform.raw", 2 * MiB, seed=5)
    outage.on = True
    answer = httpx.put(item, params={"osType": "Linux"}, content=image.read_bytes())
    assert answer.status_code == 503, answer.text
    assert answer.json()["error"]["code"] == "ServiceUnavailable" and answer.headers["Retry-After"] == "30"
    assert outage.refused > 0
    assert httpx.get(item).status_code == 404  # nothing registered
    outage.on = False
    answer = httpx.put(item, params={"osType": "Linux"}, content=image.read_bytes())
    assert answer.status_code == 201, answer.text
    assert httpx.get(item).json()["virtualSize"] == 2 * MiB


def test_replication_waits_out_a_store_refusing_writes(sqlite_server, monkeypatch, tmp_path):
    """The version's replication meets the outage: its operation stays in progress (not Failed) and
    is taken up again until the store takes writes, then succeeds with the same bytes."""
    url = sqlite_server.url
    compute = compute_client(url)
    gallery_chain(compute, url)
    raw = random_raw(tmp_path / "disk.raw", 3 * MiB, seed=6)
    upload_ok(url, create_upload_disk(compute, "d1", 3 * MiB).id, raw)
    outage = RefusingWrites(monkeypatch)
    outage.on = True
    begin_version(compute, "1.0.0", "d1", [target("eastus"), target("westus2")])
    deadline = time.time() + 30
    while outage.refused == 0:
        assert time.time() < deadline, "the replication never tried to write"
        time.sleep(0.1)
    time.sleep(1)
    version = get_version(url, "1.0.0")
    assert version["properties"]["provisioningState"] == "Creating", version
    assert "Failed" not in {status["state"] for status in region_status(url, "1.0.0").values()}
    outage.on = False
    body = wait_version(url, "1.0.0", timeout=60)
    assert body["properties"]["provisioningState"] == "Succeeded", body
    for region in ("eastus", "westus2"):
        assert version_download_sha(url, "1.0.0", region, tmp_path / "out.raw") == sha256_file(raw)



def test_an_image_build_s_distribution_waits_out_a_store_refusing_writes(sqlite_server, monkeypatch, tmp_path):
    """Distribution's upload of the built image meets the outage: it says so in the run's log and
    tries again until the store takes writes (the run is not failed); a cancel stops the waiting."""
    from types import SimpleNamespace

    from galley.domain.ids import key_of
    from galley.jobs.build import distribute
    from galley.jobs.context import JobContext

    from .servers import SUBSCRIPTION

    monkeypatch.setattr(distribute, "STORE_RETRY_SECONDS", 0.3)
    state = sqlite_server.app.state
    ctx = JobContext(state.store, state.content, state.content.locations, service=state.service)
    group = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/IT_rg_tpl"
    template = SimpleNamespace(
        id=f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg/providers/Microsoft.VirtualMachineImages/imageTemplates/tpl",
        name="tpl", resource_group="rg", location="eastus", subscription_id=SUBSCRIPTION,
        properties={"exactStagingResourceGroup": group})
    said: list[str] = []
    cancel = threading.Event()
    distributor = distribute.Distributor(ctx, template, "run1", said.append, cancel.is_set)
    image = random_raw(tmp_path / "built.raw", 20 * MiB, seed=7, pieces=[(0, 2 * MiB)])
    outage = RefusingWrites(monkeypatch)
    outage.on = True
    outcome: list[object] = []

    def upload() -> None:
        try:
            distributor.upload(image)
            outcome.append("uploaded")
        except Exception as error:  # noqa: BLE001 - looked at below
            outcome.append(error)

    uploading = threading.Thread(target=upload)
    uploading.start()
    deadline = time.time() + 30
    while len([line for line in said if "object store is unavailable" in line]) < 2:
        assert time.time() < deadline and not outcome, (said, outcome)
        time.sleep(0.1)
    outage.on = False
    uploading.join(timeout=30)
    assert outcome == ["uploaded"], (outcome, said)
    snapshot = distributor.snapshots["eastus"]
    assert list(state.content.repo.disk_contents(key_of(snapshot)).values()), "the snapshot has no content"

    outage.on = True  # a second upload, canceled while it waits
    second = distribute.Distributor(ctx, template, "run2", said.append, cancel.is_set)
    outcome.clear()
    other = random_raw(tmp_path / "other.raw", 20 * MiB, seed=8, pieces=[(0, 2 * MiB)])  # chunks not stored yet
    uploading = threading.Thread(target=lambda: outcome.append(_raised(second.upload, other)))
    uploading.start()
    deadline = time.time() + 30
    while len([line for line in said if "object store is unavailable" in line]) < 3:
        assert time.time() < deadline, "\n".join(said)
        time.sleep(0.1)
    cancel.set()
    uploading.join(timeout=30)
    assert isinstance(outcome[0], distribute.DistributionCanceled), outcome


def _raised(call, *args) -> object:
    try:
        return call(*args)
    except Exception as error:  # noqa: BLE001 - returned for the test to look at
        return error


# ---- reads, with one region's store unreachable ---------------------------------------------------------

class UnreadableRegions:
    """Every FolderStore of the named regions fails reads as unreachable (as an S3 endpoint that
    is down does); the others read as usual."""

    def __init__(self, monkeypatch, *regions: str) -> None:
        self.regions, self.refused = set(regions), 0
        original = FolderStore.get

        def get(store, key):
            if any(f"/stores/{region}/" in store.url for region in self.regions):
                self.refused += 1
                raise StoreUnavailable(f"{store.url} is unreachable (a test's outage)")
            return original(store, key)

        monkeypatch.setattr(FolderStore, "get", get)


def test_a_download_reads_another_region_s_copy_while_the_home_store_is_unreachable(sqlite_server, monkeypatch,
                                                                                    tmp_path):
    url = sqlite_server.url
    compute = compute_client(url)
    gallery_chain(compute, url)
    raw = random_raw(tmp_path / "disk.raw", 3 * MiB, seed=7)
    upload_ok(url, create_upload_disk(compute, "d1", 3 * MiB).id, raw)
    begin_version(compute, "1.0.0", "d1", [target("eastus"), target("westus2")])
    assert wait_version(url, "1.0.0")["properties"]["provisioningState"] == "Succeeded"

    outage = UnreadableRegions(monkeypatch, "eastus")
    # The version's home is eastus: its copy in westus2 serves the download, byte for byte.
    assert download_sha(url, version_id("1.0.0"), tmp_path / "out.raw", api=GALLERY_API) == sha256_file(raw)
    assert outage.refused > 0
    # Asked for eastus's replica by name, there is no other: 503, to be retried.
    answer = download(url, version_id("1.0.0"), tmp_path / "east.raw", region="eastus", api=GALLERY_API)
    assert answer.status_code == 503, (tmp_path / "east.raw").read_text(errors="replace")[:500]
    # The disk has one copy only: 503 as well, never a 500 or a short body.
    answer = download(url, disk_id("d1"), tmp_path / "d1.raw")
    assert answer.status_code == 503
    outage.regions.clear()
    assert version_download_sha(url, "1.0.0", "eastus", tmp_path / "east.raw") == sha256_file(raw)
    # With its only copy gone (not unreachable: deleted), the disk's download is a 409 with a body.
    for path in chunk_files(store_dir(sqlite_server.app.state.settings.home, "eastus")).values():
        path.unlink()
    answer = download(url, disk_id("d1"), tmp_path / "d1.raw")
    assert answer.status_code == 409 and b"ContentUnavailable" in (tmp_path / "d1.raw").read_bytes()


def test_verify_checks_the_reachable_stores_and_names_the_one_it_could_not_read(sqlite_server, monkeypatch,
                                                                               tmp_path):
    url = sqlite_server.url
    compute = compute_client(url)
    gallery_chain(compute, url)
    upload_ok(url, create_upload_disk(compute, "d1", 3 * MiB).id, random_raw(tmp_path / "disk.raw", 3 * MiB, seed=8))
    begin_version(compute, "1.0.0", "d1", [target("eastus"), target("westus2")])
    assert wait_version(url, "1.0.0")["properties"]["provisioningState"] == "Succeeded"
    home = sqlite_server.app.state.settings.home
    in_westus2 = len(chunk_files(store_dir(home, "westus2")))
    in_eastus = len(chunk_files(store_dir(home, "eastus")))
    # One of eastus's chunks damaged: its only other copy is in the store that is down.
    victim = sorted(chunk_files(store_dir(home, "eastus")).values())[0]
    victim.write_bytes(b"\x00damaged")

    outage = UnreadableRegions(monkeypatch, "westus2")
    report = httpx.post(f"{url}/galley/store/verify", params={"repair": "true"}, timeout=120)
    assert report.status_code == 200, report.text  # was a 503 for the whole pass
    report = report.json()
    assert [u["store"] for u in report["unreachable"]] == ["westus2/1/r0"]
    assert report["skipped"] == in_westus2 and report["checked"] == in_eastus
    assert [d["digest"] for d in report["damaged"]] == [victim.name]
    assert [u["digest"] for u in report["unrepaired"]] == [victim.name] and report["lost"] == []

    outage.regions.clear()  # back: the next pass repairs it from westus2
    report = httpx.post(f"{url}/galley/store/verify", params={"repair": "true"}, timeout=120).json()
    assert [r["digest"] for r in report["repaired"]] == [victim.name] and report["unreachable"] == []
    assert report["checked"] == in_eastus + in_westus2 and report["skipped"] == 0


def test_verify_reads_the_chunk_rows_page_by_page(sqlite_server):
    repo = sqlite_server.app.state.content.repo
    repo.register_stored("eastus/1/r0", [(f"{n:064x}", 10, 10) for n in range(7)])
    repo.register_stored("westus2/1/r0", [(f"{n:064x}", 10, 10) for n in range(3)])
    assert list(repo.iter_store_rows(page=2)) == repo.store_rows() and len(repo.store_rows()) == 10

