from __future__ import annotations

import itertools
import os
import time
from contextlib import contextmanager

import pytest
from azure.core.credentials import AccessToken
from azure.core.pipeline.policies import SansIOHTTPPolicy
from azure.mgmt.compute import ComputeManagementClient

from . import admin_http
from .postgres import PostgresServer
from .servers import SUBSCRIPTION, ThreadServer
from .browser import browser  # noqa: F401  (the portal tests' chromium)

# The `galley` fixture (the CLI run in-process) for the CLI test modules.
pytest_plugins = ["tests.cli_runner"]

_database_names = itertools.count()


class AdminCredential:
    """The test server's administrator token (got from its token endpoint when it started)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def get_token(self, *scopes, **kwargs):
        return AccessToken(admin_http.token_for(self.url), int(time.time()) + 3000)


class AdminBearer(SansIOHTTPPolicy):
    """ARM's bearer policy for plain HTTP on loopback (the SDK's own insists on HTTPS; the tests
    that use it and azure-identity for real run the server on HTTPS: test_identity_clients.py)."""

    def __init__(self, url: str) -> None:
        self.url = url

    def on_request(self, request):
        request.http_request.headers["Authorization"] = f"Bearer {admin_http.token_for(self.url)}"


@pytest.fixture(scope="session")
def postgres():
    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request, tmp_path):
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'galley.db'}"
    return request.getfixturevalue("postgres").create_database(f"galley_{next(_database_names)}")


@pytest.fixture
def server(tmp_path, database_url):
    with ThreadServer(tmp_path, database_url) as running:
        yield running


ENGINES = ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]


@contextmanager
def server_on(engine: str, request, tmp_path_factory, **overrides):
    """A server on a fresh database of `engine` ("sqlite" or "postgres"), for fixtures of a wider
    scope than a test's (tmp_path and database_url are per test)."""
    database = None if engine == "sqlite" else \
        request.getfixturevalue("postgres").create_database(f"galley_{next(_database_names)}")
    with ThreadServer(tmp_path_factory.mktemp(f"server-{engine}"), database, **overrides) as running:
        yield running


@pytest.fixture(scope="module", params=ENGINES)
def module_server(request, tmp_path_factory):
    """One server per test module and database engine, for tests that leave it as they found it
    (refusals that change nothing, reads): each server started and stopped costs half a second."""
    with server_on(request.param, request, tmp_path_factory) as running:
        yield running


@pytest.fixture(scope="module")
def module_sqlite_server(request, tmp_path_factory):
    """module_server on SQLite alone, where the tests run on SQLite alone."""
    with server_on("sqlite", request, tmp_path_factory) as running:
        yield running


@pytest.fixture
def sqlite_server(tmp_path):
    with ThreadServer(tmp_path) as running:
        yield running


@pytest.fixture
def cli_server(tmp_path, monkeypatch):
    """A server for the CLI tests: no GALLEY_ variable of the caller's reaches the CLI. The host's
    GALLEY_QEMU_ACCEL stays: it is the server's (tests force tcg, where the first VM of a process
    would otherwise wait ~30 s watching whether KVM boots a guest)."""
    for name in [name for name in os.environ if name.startswith("GALLEY_") and name != "GALLEY_QEMU_ACCEL"]:
        monkeypatch.delenv(name)
    # The CLI tests' VMs run images that boot nothing: no wait for provisioning, a short shutdown.
    with ThreadServer(tmp_path, vm_provisioning_timeout=0, vm_stop_grace=2.0) as running:
        yield running


def sdk_client(url: str) -> ComputeManagementClient:
    return ComputeManagementClient(credential=AdminCredential(url), subscription_id=SUBSCRIPTION, base_url=url,
                                   authentication_policy=AdminBearer(url), polling_interval=1)


@pytest.fixture
def compute(server) -> ComputeManagementClient:
    return sdk_client(server.url)
