"""Running a real Galley server for tests: in a thread (fast) or as a process (for kill/restart)."""

from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import httpx

from . import admin_http

from galley.api.app import create_app
from galley.api.server import make_server
from galley.config import load_settings

SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ready(url: str, timeout: float = 30.0, ca: Path | None = None) -> None:
    """Until GET /healthz answers (the server listens once its start-up is done); over HTTPS,
    trusting `ca` once the server has made it. Not /openapi.json: its first answer builds the
    whole OpenAPI document, a third of a second per server started."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            verify = ssl.create_default_context(cafile=ca) if ca and ca.exists() else admin_http.default_verify()
            if (not ca or ca.exists()) and httpx.get(url + "/healthz", timeout=2,
                                                     verify=verify).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.02)
    raise TimeoutError(f"Galley did not answer at {url}")


def credentials(home: Path) -> dict:
    return json.loads((home / "credentials.json").read_text())


def admin_token(url: str, home: Path, verify: ssl.SSLContext | bool = True) -> str:
    """A token for the server's administrator, through its real token endpoint."""
    creds = credentials(home)
    verify = admin_http.default_verify() if verify is True else verify
    response = httpx.post(f"{url}/{creds['tenantId']}/oauth2/v2.0/token", verify=verify, data={
        "grant_type": "client_credentials", "client_id": creds["clientId"],
        "client_secret": creds["clientSecret"], "scope": f"{url}/.default"})
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


class ThreadServer:
    """An in-process server on plain HTTP (loopback), its first subscription SUBSCRIPTION; its
    administrator's token is registered with admin_http once it answers."""

    def __init__(self, home: Path, database_url: str | None = None, run_worker: bool = True,
                 **overrides) -> None:
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        settings = load_settings()
        overrides.setdefault("default_subscription_id", SUBSCRIPTION)
        overrides.setdefault("public_url", self.url)
        overrides.setdefault("alternate_urls", ())
        settings = replace(settings, home=home,
                           database_url=database_url or f"sqlite:///{home / 'galley.db'}", **overrides)
        self.app = create_app(settings, run_worker=run_worker)
        self._server = make_server(self.app, settings, "127.0.0.1", self.port)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> "ThreadServer":
        self._thread.start()
        wait_ready(self.url)
        if (self.home / "credentials.json").exists():  # not on a second server of one database
            self.token = admin_token(self.url, self.home)
            admin_http.register(self.url, self.token)
        return self

    def __exit__(self, *exc) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=15)

    @contextmanager
    def settings_changed(self, **changes):
        """The running server with some settings changed for a while, e.g. quick_answer_ms=0 for
        a test of the asynchronous protocol on a shared (module) server: only settings read per
        request (app.state.settings) take effect."""
        before = self.app.state.settings
        self.app.state.settings = replace(before, **changes)
        try:
            yield self
        finally:
            self.app.state.settings = before


class ProcessServer:
    """`galley serve` as a child process, so tests can kill -9 it and start it again: plain HTTP
    on loopback by default, or as users run it (HTTPS, Galley's own CA) with https=True."""

    def __init__(self, home: Path, database_url: str | None = None, extra_env: dict | None = None,
                 worker: bool = True, https: bool = False, args: tuple[str, ...] = (),
                 ca: Path | None = None) -> None:
        self.home = home
        self.worker = worker
        self.https = https
        self.args = args
        self.port = free_port()
        self.url = f"{'https' if https else 'http'}://127.0.0.1:{self.port}"
        self.ca = (ca or home / "tls" / "ca.pem") if https else None
        self.env = {**os.environ, "GALLEY_HOME": str(home), "GALLEY_DEFAULT_SUBSCRIPTION_ID": SUBSCRIPTION,
                    **(extra_env or {})}
        if database_url:
            self.env["GALLEY_DATABASE_URL"] = database_url
        self.process: subprocess.Popen | None = None

    def start(self) -> "ProcessServer":
        self.process = subprocess.Popen(
            [sys.executable, "-m", "galley.cli.main", "serve", "--port", str(self.port),
             *([] if self.https else ["--http"]), "--worker" if self.worker else "--no-worker", *self.args],
            env=self.env, stdout=subprocess.DEVNULL, stderr=open(self.home / "server.log", "ab"))
        wait_ready(self.url, ca=self.ca)
        self.verify = ssl.create_default_context(cafile=self.ca) if self.ca else True
        self.token = admin_token(self.url, self.home, self.verify)
        admin_http.register(self.url, self.token)
        return self

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


def machines_under(home: Path) -> set[int]:
    """Pids of the QEMU processes whose command line names a path under `home` (a server's VMs)."""
    found = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
        except OSError:
            continue
        if "qemu-system" in cmdline and str(home) in cmdline:
            found.add(int(proc.name))
    return found


def kill_machines_under(home: Path) -> set[int]:
    """Kill what a failed test left running (a test that passed deleted its VMs); returns the pids."""
    pids = machines_under(home)
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return pids
