"""The real clients against `galley serve` as users run it: HTTPS with Galley's own CA, the
unmodified azure-identity ClientSecretCredential (no fake credential, no enforce_https=False)
driving azure-mgmt-compute, azure-mgmt-imagebuilder and azure-mgmt-resource's SubscriptionClient,
and the galley CLI signing in with `galley login` and with credentials.json."""
from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import time

import httpx
import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError
from azure.identity import ClientSecretCredential
from azure.mgmt.compute import ComputeManagementClient
from azure.mgmt.imagebuilder import ImageBuilderClient
from azure.mgmt.resource import ResourceManagementClient, SubscriptionClient
from cryptography import x509

from .sdk_helpers import create_definition
from .servers import SUBSCRIPTION, ProcessServer, credentials


@pytest.fixture(scope="module")
def https_server(tmp_path_factory):
    home = tmp_path_factory.mktemp("https-home")
    server = ProcessServer(home, https=True, args=("--tls-san", "galley.test")).start()
    yield server
    server.stop()


def credential_for(server, creds: dict | None = None) -> ClientSecretCredential:
    creds = creds or credentials(server.home)
    return ClientSecretCredential(creds["tenantId"], creds["clientId"], creds["clientSecret"],
                                  authority=server.url, disable_instance_discovery=True,
                                  connection_verify=str(server.ca))


def clients(server, credential) -> dict:
    common = {"base_url": server.url, "credential_scopes": [f"{server.url}/.default"],
              "connection_verify": str(server.ca)}
    return {"compute": ComputeManagementClient(credential, SUBSCRIPTION, polling_interval=0.2, **common),
            "builder": ImageBuilderClient(credential, SUBSCRIPTION, polling_interval=0.2, **common),
            "resources": ResourceManagementClient(credential, SUBSCRIPTION, **common),
            "subscriptions": SubscriptionClient(credential, **common)}


def test_serve_makes_a_ca_and_a_certificate_for_the_loopback_names(https_server):
    creds = credentials(https_server.home)
    assert creds["server"] == https_server.url and creds["caBundle"] == str(https_server.ca)
    cert = x509.load_pem_x509_certificate((https_server.home / "tls" / "server.pem").read_bytes())
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"localhost", "galley.test"} <= set(names.get_values_for_type(x509.DNSName))
    assert {str(a) for a in names.get_values_for_type(x509.IPAddress)} >= {"127.0.0.1", "::1"}
    assert oct((https_server.home / "tls" / "ca.key").stat().st_mode & 0o777) == "0o600"
    log = (https_server.home / "server.log").read_text()
    assert f"Galley listening on {https_server.url}" in log
    assert str(https_server.ca) in log and "credentials.json" in log
    assert creds["clientSecret"] not in log
    # the system's trust store alone does not trust it: clients must be given the CA
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{https_server.url}/openapi.json", verify=True)


def test_client_secret_credential_drives_the_sdks_over_https(https_server):
    sdk = clients(https_server, credential_for(https_server))
    [subscription] = list(sdk["subscriptions"].subscriptions.list())
    assert subscription.subscription_id == SUBSCRIPTION and subscription.display_name == "Galley"
    [tenant] = list(sdk["subscriptions"].tenants.list())
    assert tenant.tenant_id == credentials(https_server.home)["tenantId"]
    sdk["resources"].resource_groups.create_or_update("rg", {"location": "eastus"})
    gallery = sdk["compute"].galleries.begin_create_or_update("rg", "gal", {"location": "eastus"}).result()
    assert gallery.provisioning_state == "Succeeded"
    definition = create_definition(sdk["compute"], rg="rg", sku="s")
    assert definition.properties.identifier.sku == "s"
    assert [g.name for g in sdk["compute"].galleries.list_by_resource_group("rg")] == ["gal"]
    assert list(sdk["builder"].virtual_machine_image_templates.list_by_resource_group("rg")) == []


def test_a_service_principal_of_another_tenant_is_refused_by_the_sdk(https_server):
    admin = credential_for(https_server)
    token = admin.get_token(f"{https_server.url}/.default").token
    headers = {"Authorization": f"Bearer {token}"}
    verify = ssl.create_default_context(cafile=https_server.ca)
    tenant = httpx.post(f"{https_server.url}/providers/Galley.Identity/tenants", json={"displayName": "B"},
                        headers=headers, verify=verify).json()
    principal = httpx.post(f"{https_server.url}/providers/Galley.Identity/servicePrincipals",
                           json={"tenantId": tenant["tenantId"]}, headers=headers, verify=verify).json()
    other = credential_for(https_server, {"tenantId": principal["tenant"], "clientId": principal["appId"],
                                          "clientSecret": principal["password"]})
    sdk = clients(https_server, other)
    assert list(sdk["subscriptions"].subscriptions.list()) == []
    with pytest.raises(HttpResponseError) as refused:
        sdk["compute"].galleries.begin_create_or_update("rg", "theirs", {"location": "eastus"}).result()
    assert refused.value.status_code == 403 and refused.value.error.code == "InvalidAuthenticationTokenTenant"
    wrong = credential_for(https_server, {"tenantId": principal["tenant"], "clientId": principal["appId"],
                                          "clientSecret": "not-it"})
    with pytest.raises(ClientAuthenticationError, match="AADSTS7000215"):
        wrong.get_token(f"{https_server.url}/.default")


def galley_cli(server, cli_home, *args, env_extra=None) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GALLEY_")}
    env.update({"GALLEY_CLI_HOME": str(cli_home), "HOME": str(cli_home), **(env_extra or {})})
    return subprocess.run([sys.executable, "-m", "galley.cli.main", *args], env=env, capture_output=True,
                          text=True, timeout=60)


@pytest.mark.slow
def test_galley_login_account_and_logout(https_server, tmp_path):
    admin = {"GALLEY_HOME": str(https_server.home)}  # the server's machine: credentials.json signs in
    made = galley_cli(https_server, tmp_path / "admin", "ad", "sp", "create-for-rbac", "--name", "ci", "--role", "Contributor",
                      "--scopes", f"/subscriptions/{SUBSCRIPTION}", env_extra=admin)
    assert made.returncode == 0, made.stderr
    sp = json.loads(made.stdout)
    assert set(sp) == {"appId", "displayName", "password", "tenant"} and sp["displayName"] == "ci"
    home = tmp_path / "user"  # another machine: no credentials.json, only what login keeps
    login = galley_cli(https_server, home, "login", "--service-principal", "-u", sp["appId"], "-p", sp["password"],
                       "--tenant", sp["tenant"], "--server", https_server.url, "--ca-bundle", str(https_server.ca))
    assert login.returncode == 0, login.stderr
    [account] = json.loads(login.stdout)
    assert account["id"] == SUBSCRIPTION and account["user"] == {"name": sp["appId"], "type": "servicePrincipal"}
    assert oct((home / "profile.json").stat().st_mode & 0o777) == "0o600"
    shown = json.loads(galley_cli(https_server, home, "account", "show").stdout)
    assert shown["tenantId"] == sp["tenant"] and shown["isDefault"] is True
    token = json.loads(galley_cli(https_server, home, "account", "get-access-token").stdout)
    assert token["tenant"] == sp["tenant"] and token["subscription"] == SUBSCRIPTION
    assert token["expires_on"] > time.time() + 3000
    answer = httpx.get(f"{https_server.url}/subscriptions?api-version=2022-12-01",
                       headers={"Authorization": f"Bearer {token['accessToken']}"},
                       verify=ssl.create_default_context(cafile=https_server.ca))
    assert answer.status_code == 200
    created = galley_cli(https_server, home, "group", "create", "-n", "from-login", "-l", "eastus")
    assert created.returncode == 0, created.stderr
    assert galley_cli(https_server, home, "logout").returncode == 0
    assert not (home / "profile.json").exists()
    untrusted = galley_cli(https_server, home, "group", "list", "--server", https_server.url)
    assert untrusted.returncode == 1 and "ERROR: (CertificateNotTrusted)" in untrusted.stderr
    after = galley_cli(https_server, home, "group", "list", "--server", https_server.url,
                       env_extra={"GALLEY_CA_BUNDLE": str(https_server.ca)})
    assert after.returncode == 1 and "ERROR: (AuthenticationFailed)" in after.stderr
    assert "galley login" in after.stderr
    reset = galley_cli(https_server, tmp_path / "admin", "ad", "sp", "credential", "reset", "--id", sp["appId"],
                       env_extra=admin)
    assert reset.returncode == 0 and json.loads(reset.stdout)["password"] != sp["password"]
    stale = galley_cli(https_server, home, "login", "--service-principal", "-u", sp["appId"], "-p", sp["password"],
                       "--tenant", sp["tenant"], "--server", https_server.url, "--ca-bundle", str(https_server.ca))
    assert stale.returncode == 1 and "AADSTS7000215" in stale.stderr


def test_plain_http_is_refused_off_loopback(tmp_path):
    refused = galley_cli(None, tmp_path, "serve", "--http", "--host", "0.0.0.0", "--port", "1")
    assert refused.returncode == 2 and "loopback" in refused.stderr


@pytest.mark.slow
def test_serve_with_the_operators_own_certificate(tmp_path):
    """--tls-cert/--tls-key serve the operator's certificate (here one made by another CA); no
    CA of Galley's own is made, and GALLEY_CA_BUNDLE names the CA clients are told to trust."""
    from galley.identity.tls import ensure_tls
    theirs = ensure_tls(tmp_path / "operator-pki")  # stands in for the operator's own PKI
    home = tmp_path / "home"
    home.mkdir()
    server = ProcessServer(home, https=True, ca=theirs.ca_cert,
                           args=("--tls-cert", str(theirs.cert), "--tls-key", str(theirs.key)),
                           extra_env={"GALLEY_CA_BUNDLE": str(theirs.ca_cert)}).start()
    try:
        assert not (home / "tls").exists()
        assert credentials(home)["caBundle"] == str(theirs.ca_cert)
        answer = httpx.get(f"{server.url}/subscriptions?api-version=2022-12-01",
                           headers={"Authorization": f"Bearer {server.token}"},
                           verify=ssl.create_default_context(cafile=theirs.ca_cert))
        assert answer.status_code == 200
    finally:
        server.stop()
