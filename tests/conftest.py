from __future__ import annotations

import itertools
import time

import pytest
from azure.core.credentials import AccessToken
from azure.core.pipeline.policies import SansIOHTTPPolicy
from azure.mgmt.compute import ComputeManagementClient

from .postgres import PostgresServer
from .servers import SUBSCRIPTION, ThreadServer

# The `galley` fixture (the CLI run in-process) for the CLI test modules.
pytest_plugins = ["tests.cli_runner"]

_database_names = itertools.count()


class FixedCredential:
    """A token credential for a server that does not check tokens yet."""

    def get_token(self, *scopes, **kwargs):
        return AccessToken("galley-test", int(time.time()) + 3600)


class StaticToken(SansIOHTTPPolicy):
    """Plain-HTTP stand-in for ARM's bearer policy (which insists on HTTPS)."""

    def on_request(self, request):
        request.http_request.headers["Authorization"] = "Bearer galley-test"


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


@pytest.fixture
def sqlite_server(tmp_path):
    with ThreadServer(tmp_path) as running:
        yield running


def sdk_client(url: str) -> ComputeManagementClient:
    return ComputeManagementClient(credential=FixedCredential(), subscription_id=SUBSCRIPTION, base_url=url,
                                   authentication_policy=StaticToken(), polling_interval=1)


@pytest.fixture
def compute(server) -> ComputeManagementClient:
    return sdk_client(server.url)
