"""How the server treats its connections: ARM's request ids on every answer, the access log,
deadlines for slow clients (request heads, request bodies), the cap on concurrent uploads per
client, quiet client disconnects, and `galley serve`'s ready line.

Slow clients are played with raw sockets (TLS-wrapped against `galley serve`'s HTTPS), with the
deadlines set to a second for the test server.
"""

from __future__ import annotations

import logging
import os
import re
import socket
import ssl
import subprocess
import sys
import time
from pathlib import Path

import pytest

from . import admin_http as httpx
from .arm import DISK_API, GROUP_API, assert_arm_error, compute_url, group_url
from .servers import SUBSCRIPTION, ThreadServer, admin_token, free_port

from galley.api.access_log import redact
from galley.config import load_settings

HEAD_TIMEOUT = 1.0
BODY_TIMEOUT = 1.0
UPLOADS_PER_CLIENT = 2
UPLOAD_BYTES = 20 * 1024 * 1024 + 512
GUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("galley")
    with ThreadServer(home, header_timeout=HEAD_TIMEOUT, body_timeout=BODY_TIMEOUT,
                      uploads_per_client=UPLOADS_PER_CLIENT) as running:
        response = httpx.put(f"{group_url(running.url)}?{GROUP_API}", json={"location": "eastus"})
        assert response.status_code in (200, 201), response.text
        yield running


# ---------------------------------------------------------------- raw HTTP over a socket

def connect(port: int, tls: ssl.SSLContext | None = None) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    return tls.wrap_socket(sock, server_hostname="127.0.0.1") if tls else sock


def read_until_closed(sock: socket.socket, within: float, started: float | None = None) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection, and when it closed it: seconds
    since `started` (a time.monotonic() taken before connecting, for a bound no shorter than the
    server's own clock), or since this call."""
    started = time.monotonic() if started is None else started
    sock.settimeout(within)
    received = b""
    try:
        while piece := sock.recv(65536):
            received += piece
    except (ConnectionResetError, ssl.SSLError):
        pass
    except TimeoutError:
        raise AssertionError(f"the server kept the connection open for {within} s; got {received[:200]!r}")
    return received, time.monotonic() - started


def read_response(sock: socket.socket) -> bytes:
    """One whole response with a Content-Length, leaving the connection open."""
    sock.settimeout(10)
    received = b""
    while b"\r\n\r\n" not in received:
        received += sock.recv(65536)
    length = int(re.search(rb"(?i)\r\ncontent-length: *(\d+)", received).group(1))
    while len(received.partition(b"\r\n\r\n")[2]) < length:
        received += sock.recv(65536)
    return received


def parse_response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        assert name.lower() not in headers, f"header {name} twice"
        headers[name.lower()] = value.strip()
    return int(lines[0].split()[1]), headers, body


def upload_head(url_path: str, token: str, length: int) -> bytes:
    return (f"PUT {url_path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {length}\r\n\r\n").encode()


def upload_disk(base: str, name: str, **kwargs) -> str:
    """A disk created for upload; its URL path (no host)."""
    url = compute_url(base, f"disks/{name}")
    response = httpx.put(f"{url}?{DISK_API}", **kwargs, json={
        "location": "eastus", "properties": {"osType": "Linux", "creationData": {
            "createOption": "Upload", "uploadSizeBytes": UPLOAD_BYTES}}})
    assert response.status_code in (200, 201), response.text
    return url[len(base):]


def temp_files(home: Path) -> list[str]:
    return sorted(p.name for p in (home / "tmp").glob("*")) if (home / "tmp").exists() else []


# ---------------------------------------------------------------- request ids

def assert_ids(response, correlation: str | None = None) -> None:
    assert GUID.match(response.headers["x-ms-request-id"]), response.headers
    assert GUID.match(response.headers["x-ms-correlation-request-id"]) if correlation is None else \
        response.headers["x-ms-correlation-request-id"] == correlation
    assert len(response.headers.get_list("x-ms-request-id")) == 1, response.headers


def test_every_answer_carries_arm_request_ids(server):
    import httpx as anonymous

    groups = f"{server.url}/subscriptions/{SUBSCRIPTION}/resourcegroups?{GROUP_API}"
    ok = httpx.get(groups)
    assert ok.status_code == 200
    assert_ids(ok)
    refused = anonymous.get(groups)
    assert_arm_error(refused, 401, "AuthenticationFailed")
    assert_ids(refused)
    missing = httpx.get(f"{server.url}/no/such/route")
    assert_arm_error(missing, 404)
    assert_ids(missing)
    open_path = anonymous.get(f"{server.url}/metadata/endpoints?api-version=2022-09-01")
    assert_ids(open_path)
    ids = {r.headers["x-ms-request-id"] for r in (ok, refused, missing, open_path)}
    assert len(ids) == 4, "each request gets its own id"


def test_a_download_carries_request_ids(server):
    path = upload_disk(server.url, "downloaded")
    raw = os.urandom(512) + bytes(UPLOAD_BYTES - 1024)
    response = httpx.put(f"{server.url}{path}/upload?{DISK_API}&format=raw", content=raw, timeout=60)
    assert response.status_code == 200, response.text
    with httpx.stream("GET", f"{server.url}{path}/download?{DISK_API}&format=raw",
                      headers={"x-ms-correlation-request-id": "download-42"}) as download:
        assert download.status_code == 200
        assert_ids(download, "download-42")
        assert b"".join(download.iter_bytes())[:512] == raw[:512]


def test_the_clients_correlation_id_is_echoed_when_it_is_a_usable_one(server):
    url = f"{server.url}/subscriptions/{SUBSCRIPTION}/resourcegroups?{GROUP_API}"
    assert_ids(httpx.get(url, headers={"x-ms-correlation-request-id": "3f2b6f1e-0c1d-4e5f-8a9b-0123456789ab"}),
               "3f2b6f1e-0c1d-4e5f-8a9b-0123456789ab")
    for unusable in ("a" * 300, "id with spaces", "<script>", "x\u00e9".encode()):
        response = httpx.get(url, headers={"x-ms-correlation-request-id": unusable})
        assert response.status_code == 200
        assert_ids(response)  # a new GUID, not the client's value


def test_a_header_split_in_a_correlation_id_is_never_echoed(server):
    for value in (b"abc\r\nx-injected: 1", b"abc\rx-injected: 1", b"abc\nx-injected: 1", b"abc\x00def"):
        with connect(server.port) as sock:
            sock.sendall(b"GET /metadata/endpoints?api-version=2022-09-01 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         b"Connection: close\r\nx-ms-correlation-request-id: " + value + b"\r\n\r\n")
            raw, _ = read_until_closed(sock, 10)
        status, headers, _ = parse_response(raw)
        assert "x-injected" not in headers, (value, raw[:400])
        if "x-ms-correlation-request-id" in headers:
            assert headers["x-ms-correlation-request-id"] in ("abc",) or GUID.match(headers["x-ms-correlation-request-id"])
        assert status in (200, 400), raw[:400]


def test_an_unhandled_error_is_a_500_with_ids_and_its_log_names_them(server, caplog, monkeypatch):
    def broken(*_args, **_kwargs):
        raise RuntimeError("something broke")

    monkeypatch.setattr(server.app.state.service, "list", broken)
    caplog.set_level(logging.ERROR, logger="galley.api")
    response = httpx.get(f"{server.url}/subscriptions/{SUBSCRIPTION}/resourcegroups?{GROUP_API}",
                         headers={"x-ms-correlation-request-id": "corr-500"})
    assert_arm_error(response, 500, "InternalServerError")
    assert_ids(response, "corr-500")
    logged = [r for r in caplog.records if r.getMessage().startswith("unhandled error")]
    assert len(logged) == 1, [r.getMessage() for r in caplog.records]
    assert response.headers["x-ms-request-id"] in logged[0].getMessage()
    assert "corr-500" in logged[0].getMessage()


# ---------------------------------------------------------------- access log

def access_lines(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "galley.access"]


def test_the_access_log_has_a_line_per_request_without_secrets(server, caplog):
    caplog.set_level(logging.INFO, logger="galley.access")
    response = httpx.get(f"{server.url}/subscriptions/{SUBSCRIPTION}/resourcegroups?{GROUP_API}"
                         "&sig=SASSIGNATURE&access_token=TOKENVALUE&se=2030-01-01")
    assert response.status_code == 200
    # A line is written once its answer has gone (access_log.py), so on a loaded machine the
    # client can read the answer before the server thread has logged it: wait for it, a while.
    deadline = time.monotonic() + 10
    while not access_lines(caplog) and time.monotonic() < deadline:
        time.sleep(0.05)
    lines = access_lines(caplog)
    assert len(lines) == 1, lines
    line = lines[0]
    assert line.startswith(f'127.0.0.1 "GET /subscriptions/{SUBSCRIPTION}/resourcegroups?{GROUP_API}'
                           '&sig=REDACTED&access_token=REDACTED&se=2030-01-01" 200 '), line
    assert re.search(rf" \d+\.\d ms in=0 out={len(response.content)} ", line), line
    assert f"request-id={response.headers['x-ms-request-id']}" in line
    assert "SASSIGNATURE" not in line and "TOKENVALUE" not in line
    assert not re.search(r"Bearer|eyJ", line)

    caplog.clear()
    with server.settings_changed(access_log=False):
        assert httpx.get(f"{server.url}/no/such/route").status_code == 404
    assert access_lines(caplog) == []


def test_secret_query_values_are_redacted():
    assert redact("api-version=1&sig=abc%2Fd&sv=2024&sp=r") == "api-version=1&sig=REDACTED&sv=2024&sp=r"
    assert redact("client_secret=s&refresh_token=t&code=c&design=x") == \
        "client_secret=REDACTED&refresh_token=REDACTED&code=REDACTED&design=x"


def test_the_access_log_switch_and_the_deadlines_are_settings(monkeypatch):
    monkeypatch.setenv("GALLEY_ACCESS_LOG", "0")
    monkeypatch.setenv("GALLEY_HEADER_TIMEOUT", "2.5")
    monkeypatch.setenv("GALLEY_BODY_TIMEOUT", "7")
    monkeypatch.setenv("GALLEY_UPLOADS_PER_CLIENT", "3")
    settings = load_settings()
    assert (settings.access_log, settings.header_timeout, settings.body_timeout, settings.uploads_per_client) == \
        (False, 2.5, 7.0, 3)
    monkeypatch.delenv("GALLEY_ACCESS_LOG")
    assert load_settings().access_log is True


# ---------------------------------------------------------------- slow clients

@pytest.mark.parametrize("sent", [b"", b"GET /metadata/endpoints HTTP/1.1\r\nHost: 127.0.0.1\r\n"])
def test_a_connection_without_a_whole_request_head_is_closed(server, sent):
    started = time.monotonic()
    with connect(server.port) as sock:
        sock.sendall(sent)
        received, after = read_until_closed(sock, HEAD_TIMEOUT + 10, started)
    assert received == b""
    assert HEAD_TIMEOUT * 0.9 <= after < HEAD_TIMEOUT + 8


def test_a_head_sent_a_byte_at_a_time_is_closed_at_its_deadline(server):
    head = b"GET /metadata/endpoints?api-version=2022-09-01 HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 200
    with connect(server.port) as sock:
        started = time.monotonic()
        with pytest.raises((BrokenPipeError, ConnectionResetError)):
            for byte in head:
                sock.sendall(bytes([byte]))
                time.sleep(0.05)
        assert time.monotonic() - started < HEAD_TIMEOUT + 8


def test_a_kept_alive_connection_gets_a_new_deadline_for_its_next_head(server):
    with connect(server.port) as sock:
        sock.sendall(b"GET /metadata/endpoints?api-version=2022-09-01 HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert read_response(sock).startswith(b"HTTP/1.1 200")
        sock.sendall(b"GET /metadata/endpoints?api-version=2022-09-01 HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        received, after = read_until_closed(sock, HEAD_TIMEOUT + 10)
    assert received == b"" and after < HEAD_TIMEOUT + 8


def test_a_stalled_upload_gets_408_and_changes_nothing(server):
    path = upload_disk(server.url, "stalled")
    before = httpx.get(f"{server.url}{path}?{DISK_API}").json()
    started = time.monotonic()
    with connect(server.port) as sock:
        sock.sendall(upload_head(f"{path}/upload?{DISK_API}", server.token, 1024 * 1024) + b"0123456789")
        raw, after = read_until_closed(sock, BODY_TIMEOUT + 10, started)
    status, headers, body = parse_response(raw)
    assert status == 408, raw[:500]
    assert b'"code":"RequestTimeout"' in body
    assert headers["connection"] == "close" and GUID.match(headers["x-ms-request-id"])
    assert BODY_TIMEOUT * 0.9 <= after < BODY_TIMEOUT + 10
    # Nothing changed: the same properties (size, diskState), no temporary file; the lease is
    # released, so the next upload starts (and here stalls too) instead of meeting a Conflict.
    after_props = httpx.get(f"{server.url}{path}?{DISK_API}").json()["properties"]
    assert after_props == before["properties"]
    assert not [name for name in temp_files(server.home) if name.startswith("upload-")]
    with connect(server.port) as sock:
        sock.sendall(upload_head(f"{path}/upload?{DISK_API}", server.token, 1024 * 1024))
        raw, _ = read_until_closed(sock, BODY_TIMEOUT + 10)
    assert parse_response(raw)[0] == 408, raw[:500]


def test_a_stalled_json_body_gets_408_and_creates_nothing(server):
    url_path = compute_url("", "galleries/stalledgallery")
    with connect(server.port) as sock:
        sock.sendall(f"PUT {url_path}?api-version=2026-03-03 HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                     f"Authorization: Bearer {server.token}\r\nContent-Type: application/json\r\n"
                     f"Content-Length: 200\r\n\r\n{{\"location\": ".encode())
        raw, _ = read_until_closed(sock, BODY_TIMEOUT + 10)
    assert parse_response(raw)[0] == 408, raw[:500]
    assert_arm_error(httpx.get(f"{server.url}{url_path}?api-version=2026-03-03"), 404)


def test_uploads_per_client_are_capped(server):
    paths = [upload_disk(server.url, f"capped{i}") for i in range(UPLOADS_PER_CLIENT + 1)]
    with server.settings_changed(body_timeout=30):
        held = [connect(server.port) for _ in range(UPLOADS_PER_CLIENT)]
        try:
            for sock, path in zip(held, paths):
                sock.sendall(upload_head(f"{path}/upload?{DISK_API}", server.token, 1024 * 1024) + b"x" * 10)
            deadline = time.monotonic() + 10
            while True:  # until the server has taken both held uploads in
                response = httpx.put(f"{server.url}{paths[-1]}/upload?{DISK_API}", content=b"x" * 512)
                if response.status_code == 429 or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            assert_arm_error(response, 429, "TooManyRequests")
            assert int(response.headers["retry-after"]) > 0
            assert GUID.match(response.headers["x-ms-request-id"])
        finally:
            for sock in held:
                sock.close()
        deadline = time.monotonic() + 10
        while (response := httpx.put(f"{server.url}{paths[-1]}/upload?{DISK_API}",
                                     content=b"x" * 512)).status_code == 429 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert response.status_code != 429, response.status_code  # taken in again


# ---------------------------------------------------------------- `galley serve`

class Serve:
    """`galley serve` over HTTPS as users run it, its stderr in a file."""

    def __init__(self, home: Path, *args: str, env: dict | None = None) -> None:
        self.home, self.port = home, free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.log = home / "server.log"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "galley.cli.main", "serve", "--port", str(self.port), *args],
            stdout=subprocess.DEVNULL, stderr=open(self.log, "ab"), env={
                **os.environ, "GALLEY_HOME": str(home), "GALLEY_DEFAULT_SUBSCRIPTION_ID": SUBSCRIPTION,
                "GALLEY_HEADER_TIMEOUT": str(HEAD_TIMEOUT), "GALLEY_BODY_TIMEOUT": str(BODY_TIMEOUT), **(env or {})})

    def wait_for_ready_line(self) -> None:
        deadline = time.monotonic() + 60
        while f"Galley listening on {self.url}" not in self.log.read_text():
            assert self.process.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.05)
        self.tls = ssl.create_default_context(cafile=self.home / "tls" / "ca.pem")

    def stop(self) -> str:
        self.process.terminate()
        self.process.wait(timeout=20)
        return self.log.read_text()


@pytest.mark.slow
def test_galley_serve_is_ready_when_it_says_so_and_logs_each_request(tmp_path):
    serve = Serve(tmp_path)
    try:
        serve.wait_for_ready_line()
        # Printed once the socket listens and the app has started: the first request is answered.
        assert httpx.get(f"{serve.url}/metadata/endpoints?api-version=2022-09-01", verify=serve.tls,
                         timeout=30).status_code == 200
        token = admin_token(serve.url, tmp_path, serve.tls)
        httpx.register(serve.url, token)

        # Over TLS too, a connection that sends half a head is closed at its deadline.
        with connect(serve.port, serve.tls) as sock:
            sock.sendall(b"GET /metadata/endpoints HTTP/1.1\r\n")
            received, after = read_until_closed(sock, HEAD_TIMEOUT + 10)
        assert received == b"" and after < HEAD_TIMEOUT + 8

        assert httpx.put(f"{group_url(serve.url)}?{GROUP_API}", json={"location": "eastus"},
                         verify=serve.tls).status_code in (200, 201)
        path = upload_disk(serve.url, "d1", verify=serve.tls)
        # Clients that go away in the middle of an upload and of a download, then one that stalls.
        with connect(serve.port, serve.tls) as sock:
            sock.sendall(upload_head(f"{path}/upload?{DISK_API}", token, 1024 * 1024) + b"x" * 4096)
            time.sleep(0.3)
        with httpx.stream("GET", f"{serve.url}{path}/download?{DISK_API}", verify=serve.tls) as download:
            assert download.status_code == 200
            next(download.iter_raw())
        with connect(serve.port, serve.tls) as sock:
            sock.sendall(upload_head(f"{path}/upload?{DISK_API}", token, 1024 * 1024) + b"x" * 10)
            raw, _ = read_until_closed(sock, BODY_TIMEOUT + 10)
        assert parse_response(raw)[0] == 408, raw[:300]
        assert not [name for name in temp_files(tmp_path) if name.startswith("upload-")]
    finally:
        log = serve.stop()
    lines = log.splitlines()
    ready = [i for i, line in enumerate(lines) if line.startswith("Galley listening on")]
    assert len(ready) == 1 and lines[ready[0]] == f"Galley listening on {serve.url}", log
    assert "CA certificate" in lines[ready[0] + 1] and "administrator credentials" in lines[ready[0] + 2], log
    access = [line for line in lines if " galley.access " in line]
    assert any('"GET /metadata/endpoints?api-version=2022-09-01" 200 ' in line for line in access), log
    assert any(f'"PUT {path}/upload?{DISK_API}" 408 ' in line for line in access), log
    assert any(f'"PUT {path}/upload?{DISK_API}" 499 ' in line for line in access), log
    assert "Traceback" not in log and "unhandled error" not in log and "Exception in ASGI" not in log, log
    assert token not in log


def test_galley_serve_no_access_log(tmp_path):
    serve = Serve(tmp_path, "--no-access-log")
    try:
        serve.wait_for_ready_line()
        assert httpx.get(f"{serve.url}/metadata/endpoints?api-version=2022-09-01", verify=serve.tls).status_code == 200
    finally:
        log = serve.stop()
    assert "Galley listening on" in log and "galley.access" not in log, log


def test_an_idle_kept_alive_tls_connection_does_not_hold_up_a_shutdown(tmp_path):
    """A client that keeps its connection open and reads nothing would never answer a TLS
    close_notify; the server drops such idle connections at shutdown instead of waiting its TLS
    shutdown timeout (30 s) for them."""
    from .servers import ProcessServer
    server = ProcessServer(tmp_path, https=True).start()
    try:
        with socket.create_connection(("127.0.0.1", server.port)) as raw:
            with server.verify.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                tls.sendall(b"GET /openapi.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                assert tls.recv(64).startswith(b"HTTP/1.1 200")
                server.process.terminate()  # the connection stays open and unread
                server.process.wait(timeout=8)
    finally:
        server.stop()
