"""The real, unmodified Azure CLI (`az`) against a real `galley serve` over HTTPS.

One server per module: `galley serve` as a child process on 127.0.0.1, HTTPS with the CA it makes
on first start, its own GALLEY_HOME. `az` is azure-cli from its own virtualenv (`.venv-az`, made by
scripts/test: azure-cli pins azure-mgmt-* versions that conflict with the test venv's SDK); env
GALLEY_TEST_AZ names another.

Every `az` runs as a subprocess with a timeout, in a clean environment, offline and isolated:
its own AZURE_CONFIG_DIR (a test's own where sign-in state matters), REQUESTS_CA_BUNDLE = the
server's CA, telemetry, surveys, dynamic extension installs and recommendations off, and every
HTTP(S) proxy pointed at a closed loopback port with NO_PROXY=127.0.0.1: a request anywhere but
Galley fails at once (the test that signs in without `core.instance_discovery=false` shows it).
Assertions are on exit codes and on `-o json` output, and results are read back through az or
plain HTTP with a token az handed out.

Image Builder templates are created, read, listed and deleted; never run (builds need root and
debootstrap: tests/test_builds.py).
"""

from __future__ import annotations

import json
import os
import ssl
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from .servers import free_port

REPO = Path(__file__).resolve().parent.parent
AZ = Path(os.environ.get("GALLEY_TEST_AZ") or REPO / ".venv-az" / "bin" / "az")
AZ_TIMEOUT = 180  # seconds for one az command (image-version create waits for replication)
SUBSCRIPTION_A = "6a11e700-0000-4000-8000-000000000004"
DEAD_PROXY = "http://127.0.0.1:9"  # discard port: nothing listens, a connection is refused at once
API_SUBSCRIPTIONS = "2022-12-01"
API_RESOURCES = "2022-09-01"
API_GALLERY = "2025-03-03"

pytestmark = pytest.mark.skipif(
    not os.access(AZ, os.X_OK),
    reason=f"the Azure CLI is not installed at {AZ}: scripts/test installs it into .venv-az "
           "(python3 -m venv .venv-az && .venv-az/bin/pip install azure-cli), or set GALLEY_TEST_AZ")


# --------------------------------------------------------------------------- the server

class HttpsServer:
    """`galley serve --port P` (HTTPS by default) as a child process with its own GALLEY_HOME."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.port = free_port()
        self.url = f"https://127.0.0.1:{self.port}"
        self.ca = home / "tls" / "ca.pem"
        self.log = home / "server.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> "HttpsServer":
        env = {**os.environ, "GALLEY_HOME": str(self.home), "GALLEY_DEFAULT_SUBSCRIPTION_ID": SUBSCRIPTION_A}
        for name in ("GALLEY_DATABASE_URL", "GALLEY_PUBLIC_URL", "GALLEY_REGIONS", "GALLEY_STORE_TEMPLATE"):
            env.pop(name, None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "galley.cli.main", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=open(self.log, "ab"))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"galley serve exited with {self.process.returncode}:\n{self.log.read_text()}")
            if self.ca.exists():
                try:
                    if httpx.get(f"{self.url}/openapi.json", verify=self.tls(), timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
            time.sleep(0.2)
        else:
            raise TimeoutError(f"galley serve did not answer at {self.url}:\n{self.log.read_text()}")
        assert f"Galley listening on {self.url}" in self.log.read_text()
        self.credentials = json.loads((self.home / "credentials.json").read_text())
        return self

    def tls(self) -> ssl.SSLContext:
        """Trust the server's own CA (and nothing else)."""
        return ssl.create_default_context(cafile=str(self.ca))

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def galley(self, cli_home: Path, *args: str) -> dict:
        """The `galley` CLI as a subprocess, signed in through the server's credentials.json."""
        env = {**os.environ, "GALLEY_HOME": str(self.home), "GALLEY_CLI_HOME": str(cli_home),
               "GALLEY_URL": self.url}
        done = subprocess.run([sys.executable, "-m", "galley.cli.main", *args], env=env, capture_output=True,
                              text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert done.returncode == 0, f"galley {' '.join(args)} exited {done.returncode}:\n{done.stderr}"
        return json.loads(done.stdout)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    running = HttpsServer(tmp_path_factory.mktemp("galley-home")).start()
    yield running
    running.stop()


# --------------------------------------------------------------------------- az

class AzError(AssertionError):
    pass


class Az:
    """The real `az`, one AZURE_CONFIG_DIR, offline but for the Galley server."""

    def __init__(self, server: HttpsServer, root: Path) -> None:
        self.server = server
        self.config_dir = root / "azure"
        (root / "home").mkdir(parents=True, exist_ok=True)
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(root / "home"),
            "LANG": "C.UTF-8",
            "AZURE_CONFIG_DIR": str(self.config_dir),
            "REQUESTS_CA_BUNDLE": str(server.ca),
            "AZURE_CORE_INSTANCE_DISCOVERY": "false",
            "AZURE_CORE_COLLECT_TELEMETRY": "false",
            "AZURE_EXTENSION_USE_DYNAMIC_INSTALL": "no",
            "AZURE_CORE_SURVEY_MESSAGE": "false",
            "AZURE_CORE_ERROR_RECOMMENDATION": "off",
            "AZURE_CORE_NO_COLOR": "true",
            "AZURE_CORE_ONLY_SHOW_ERRORS": "true",
            "AZURE_CORE_DISABLE_CONFIRM_PROMPT": "true",
            **{name: DEAD_PROXY for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy")},
            "NO_PROXY": "127.0.0.1", "no_proxy": "127.0.0.1",
        }

    def run(self, *args: str, ok: bool = True) -> subprocess.CompletedProcess:
        done = subprocess.run([str(AZ), *args], env=self.env, capture_output=True, text=True,
                              timeout=AZ_TIMEOUT, stdin=subprocess.DEVNULL)
        if ok and done.returncode != 0:
            raise AzError(f"az {' '.join(args)} exited {done.returncode}:\n{done.stderr}")
        if not ok and done.returncode == 0:
            raise AzError(f"az {' '.join(args)} succeeded, expected it to fail:\n{done.stdout}")
        return done

    def json(self, *args: str):
        out = self.run(*args, "-o", "json").stdout
        return json.loads(out) if out.strip() else None

    def fails(self, *args: str) -> str:
        """Run a command that must fail; its stderr."""
        return self.run(*args, ok=False).stderr

    # The set-up a user does once, as the README has it.
    def register_cloud(self, discover: bool = True) -> None:
        url = self.server.url
        if discover:
            self.run("cloud", "register", "-n", "galley", "--endpoint-resource-manager", f"{url}/")
        else:
            self.run("cloud", "register", "-n", "galley", "--skip-endpoint-discovery",
                     "--endpoint-active-directory", url, "--endpoint-active-directory-resource-id", f"{url}/",
                     "--endpoint-resource-manager", f"{url}/")
        self.run("cloud", "set", "-n", "galley")

    def login(self, app_id: str, secret: str, tenant: str, *extra: str) -> list[dict]:
        return self.json("login", "--service-principal", "-u", app_id, "-p", secret, "--tenant", tenant, *extra)

    def token(self) -> str:
        return self.json("account", "get-access-token")["accessToken"]


def new_az(server: HttpsServer, root: Path, signed_in_as: dict | None = None) -> Az:
    az = Az(server, root)
    az.register_cloud()
    if signed_in_as:
        az.login(signed_in_as["clientId"], signed_in_as["clientSecret"], signed_in_as["tenantId"])
    return az


@pytest.fixture(scope="module")
def admin_az(server, tmp_path_factory) -> Az:
    """az signed in as the server's administrator (credentials.json), shared by the module's tests
    that only create resources."""
    return new_az(server, tmp_path_factory.mktemp("az-admin"), server.credentials)


def get(server: HttpsServer, path: str, token: str | None, **params) -> httpx.Response:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return httpx.get(f"{server.url}{path}", params=params, headers=headers, verify=server.tls(), timeout=30)


def compute_id(subscription: str, group: str, kind: str, name: str) -> str:
    return f"/subscriptions/{subscription}/resourceGroups/{group}/providers/Microsoft.Compute/{kind}/{name}"


# --------------------------------------------------------------------------- a. b. clouds and sign-in

@pytest.mark.slow
def test_cloud_register_by_discovery_and_service_principal_login(server, tmp_path):
    creds = server.credentials
    az = Az(server, tmp_path)
    # The cloud's endpoints come from GET /metadata/endpoints.
    az.run("cloud", "register", "-n", "galley", "--endpoint-resource-manager", f"{server.url}/")
    az.run("cloud", "set", "-n", "galley")
    cloud = az.json("cloud", "show")
    assert cloud["name"] == "galley" and cloud["isActive"] is True
    assert cloud["endpoints"]["resourceManager"] == f"{server.url}/"
    assert cloud["endpoints"]["activeDirectory"] == f"{server.url}/"
    assert cloud["endpoints"]["activeDirectoryResourceId"] == f"{server.url}/"

    # Without core.instance_discovery=false, MSAL first asks login.microsoftonline.com about the
    # authority: offline that fails (and shows no request leaves for anywhere but Galley).
    az.env.pop("AZURE_CORE_INSTANCE_DISCOVERY")
    stderr = az.fails("login", "--service-principal", "-u", creds["clientId"], "-p", creds["clientSecret"],
                      "--tenant", creds["tenantId"], "-o", "json")
    assert "login.microsoftonline.com" in stderr
    assert az.json("account", "list") == []

    # The setting as a user makes it once.
    az.run("config", "set", "core.instance_discovery=false")
    accounts = az.login(creds["clientId"], creds["clientSecret"], creds["tenantId"])
    assert [(a["id"], a["tenantId"], a["name"], a["state"], a["isDefault"], a["cloudName"]) for a in accounts] == [
        (SUBSCRIPTION_A, creds["tenantId"], "Galley", "Enabled", True, "galley")]
    assert accounts[0]["user"] == {"name": creds["clientId"], "type": "servicePrincipal"}

    shown = az.json("account", "show")
    assert (shown["id"], shown["tenantId"], shown["name"], shown["environmentName"]) == (
        SUBSCRIPTION_A, creds["tenantId"], "Galley", "galley")

    token = az.json("account", "get-access-token")
    assert token["tokenType"] == "Bearer" and token["subscription"] == SUBSCRIPTION_A
    assert token["tenant"] == creds["tenantId"]
    response = get(server, "/subscriptions", token["accessToken"], **{"api-version": API_SUBSCRIPTIONS})
    assert response.status_code == 200, response.text
    assert [s["subscriptionId"] for s in response.json()["value"]] == [SUBSCRIPTION_A]

    # And az's own ARM calls with that sign-in.
    group = az.json("group", "create", "-n", "azLoginRG", "-l", "eastus")
    assert group["properties"]["provisioningState"] == "Succeeded"
    response = get(server, f"/subscriptions/{SUBSCRIPTION_A}/resourcegroups/azLoginRG", token["accessToken"],
                   **{"api-version": API_RESOURCES})
    assert response.status_code == 200 and response.json()["location"] == "eastus"


@pytest.mark.slow
def test_cloud_register_without_discovery_and_a_principal_from_create_for_rbac(server, tmp_path):
    principal = server.galley(tmp_path / "galley-cli", "ad", "sp", "create-for-rbac", "--name", "az-ci",
                              "--role", "Contributor", "--scopes", f"/subscriptions/{SUBSCRIPTION_A}")
    assert principal["displayName"] == "az-ci" and principal["tenant"] == server.credentials["tenantId"]

    az = Az(server, tmp_path)
    az.register_cloud(discover=False)
    endpoints = az.json("cloud", "show")["endpoints"]
    assert endpoints["activeDirectory"] == server.url
    assert endpoints["activeDirectoryResourceId"] == f"{server.url}/"
    assert endpoints["resourceManager"] == f"{server.url}/"

    accounts = az.login(principal["appId"], principal["password"], principal["tenant"])
    assert [(a["id"], a["tenantId"]) for a in accounts] == [(SUBSCRIPTION_A, principal["tenant"])]
    assert accounts[0]["user"] == {"name": principal["appId"], "type": "servicePrincipal"}
    assert az.json("account", "show")["user"]["name"] == principal["appId"]

    az.json("group", "create", "-n", "rbacRG", "-l", "westus2")
    assert "rbacRG" in [g["name"] for g in az.json("group", "list")]
    response = get(server, f"/subscriptions/{SUBSCRIPTION_A}/resourcegroups/rbacRG", az.token(),
                   **{"api-version": API_RESOURCES})
    assert response.status_code == 200 and response.json()["location"] == "westus2"


# --------------------------------------------------------------------------- c. a wrong secret

@pytest.mark.slow
def test_wrong_secret_is_refused_and_nothing_is_signed_in(server, tmp_path):
    creds = server.credentials
    az = new_az(server, tmp_path)
    stderr = az.fails("login", "--service-principal", "-u", creds["clientId"], "-p", "not-the-secret",
                      "--tenant", creds["tenantId"], "-o", "json")
    assert "AADSTS7000215" in stderr and "Invalid client secret" in stderr
    assert creds["clientSecret"] not in stderr
    assert az.json("account", "list") == []
    assert json.loads((az.config_dir / "azureProfile.json").read_text(encoding="utf-8-sig")) in ({}, {"subscriptions": []})
    assert "not-the-secret" not in "".join(p.read_text(errors="replace") for p in az.config_dir.glob("*.json"))
    az.fails("group", "list")


# --------------------------------------------------------------------------- d. seed 004's CLI tab

@pytest.mark.slow
def test_seed_004_cli_tab_word_for_word(server, admin_az):
    az = admin_az
    sub = SUBSCRIPTION_A
    az.json("group", "create", "-n", "myGalleryRG", "-l", "westcentralus")
    gallery = az.json("sig", "create", "--resource-group", "myGalleryRG", "--gallery-name", "myGallery")
    assert (gallery["name"], gallery["location"], gallery["provisioningState"]) == (
        "myGallery", "westcentralus", "Succeeded")

    # Word for word from the seed.
    definition = az.json("sig", "image-definition", "create",
                         "--resource-group", "myGalleryRG",
                         "--gallery-name", "myGallery",
                         "--gallery-image-definition", "myImageDefinition",
                         "--publisher", "myPublisher",
                         "--offer", "myOffer",
                         "--sku", "mySKU",
                         "--os-type", "Linux",
                         "--os-state", "specialized")
    assert (definition["osType"], definition["osState"], definition["identifier"]) == (
        "Linux", "Specialized", {"publisher": "myPublisher", "offer": "myOffer", "sku": "mySKU"})

    # The source: the seed's --managed-image names a VM; Galley has no VMs, and the seed's table
    # allows a managed image there. An empty 1 GiB disk → snapshot → managed image.
    disk = az.json("disk", "create", "-g", "myGalleryRG", "-n", "osDisk", "--size-gb", "1")
    assert (disk["diskSizeGB"], disk["provisioningState"]) == (1, "Succeeded")
    snapshot = az.json("snapshot", "create", "-g", "myGalleryRG", "-n", "osSnap", "--source", "osDisk")
    assert snapshot["creationData"]["sourceResourceId"] == disk["id"]
    image = az.json("image", "create", "-g", "myGalleryRG", "-n", "myImage", "--source", "osSnap",
                    "--os-type", "Linux")
    assert image["id"] == compute_id(sub, "myGalleryRG", "images", "myImage")
    assert image["storageProfile"]["osDisk"]["snapshot"]["id"] == snapshot["id"]

    version = az.json("sig", "image-version", "create",
                      "--resource-group", "myGalleryRG",
                      "--gallery-name", "myGallery",
                      "--gallery-image-definition", "myImageDefinition",
                      "--gallery-image-version", "1.0.0",
                      "--target-regions", "westcentralus", "southcentralus=1", "eastus=1=standard_zrs",
                      "--replica-count", "2",
                      "--managed-image", image["id"])
    assert version["provisioningState"] == "Succeeded"
    assert version["storageProfile"]["source"]["id"] == image["id"]
    profile = version["publishingProfile"]
    assert profile["replicaCount"] == 2
    assert [(r["name"], r["regionalReplicaCount"], r["storageAccountType"]) for r in profile["targetRegions"]] == [
        ("westcentralus", 2, "Standard_LRS"), ("southcentralus", 1, "Standard_LRS"), ("eastus", 1, "Standard_ZRS")]

    # Replication of an empty 1 GiB source is quick; it is complete in every region.
    sig = ("-g", "myGalleryRG", "-r", "myGallery", "-i", "myImageDefinition")
    deadline = time.monotonic() + 60
    while True:
        shown = az.json("sig", "image-version", "show", *sig, "-e", "1.0.0", "--expand", "ReplicationStatus")
        if shown["replicationStatus"]["aggregatedState"] == "Completed" or time.monotonic() > deadline:
            break
        time.sleep(1)
    assert shown["replicationStatus"]["aggregatedState"] == "Completed", shown["replicationStatus"]
    assert sorted((s["region"], s["state"], s["progress"]) for s in shown["replicationStatus"]["summary"]) == [
        ("eastus", "Completed", 100), ("southcentralus", "Completed", 100), ("westcentralus", "Completed", 100)]

    # The seed's other source row: --os-snapshot with a managed disk's id.
    second = az.json("sig", "image-version", "create", *sig, "-e", "1.0.1", "--os-snapshot", disk["id"])
    assert second["provisioningState"] == "Succeeded"
    assert second["storageProfile"]["osDiskImage"]["source"]["id"] == disk["id"]

    # Read back through az and through plain HTTP with az's token.
    assert sorted(v["name"] for v in az.json("sig", "image-version", "list", *sig)) == ["1.0.0", "1.0.1"]
    assert [d["name"] for d in az.json("sig", "image-definition", "list", "-g", "myGalleryRG", "-r", "myGallery")] \
        == ["myImageDefinition"]
    assert az.json("sig", "show", "-g", "myGalleryRG", "-r", "myGallery")["id"] == gallery["id"]
    assert "myGallery" in [g["name"] for g in az.json("sig", "list")]
    assert [g["name"] for g in az.json("sig", "list", "-g", "myGalleryRG")] == ["myGallery"]
    response = get(server, version["id"], az.token(), **{"api-version": API_GALLERY})
    assert response.status_code == 200, response.text
    assert response.json()["properties"]["publishingProfile"]["replicaCount"] == 2

    # Deleting, children first (a gallery with definitions refuses to go).
    stderr = az.fails("sig", "delete", "-g", "myGalleryRG", "-r", "myGallery")
    assert "myImageDefinition" in stderr
    az.run("sig", "image-version", "delete", *sig, "-e", "1.0.0")
    az.run("sig", "image-version", "delete", *sig, "-e", "1.0.1")
    assert az.json("sig", "image-version", "list", *sig) == []
    az.run("sig", "image-definition", "delete", "-g", "myGalleryRG", "-r", "myGallery", "-i", "myImageDefinition")
    assert az.json("sig", "image-definition", "list", "-g", "myGalleryRG", "-r", "myGallery") == []
    az.run("sig", "delete", "-g", "myGalleryRG", "-r", "myGallery")
    assert "ResourceNotFound" in az.fails("sig", "show", "-g", "myGalleryRG", "-r", "myGallery")
    assert az.json("sig", "list", "-g", "myGalleryRG") == []
    assert get(server, gallery["id"], az.token(), **{"api-version": API_GALLERY}).status_code == 404


# --------------------------------------------------------------------------- e. Image Builder

@pytest.mark.slow
def test_image_builder_templates_create_show_list_delete(server, admin_az, tmp_path):
    az = admin_az
    sub = SUBSCRIPTION_A
    az.json("group", "create", "-n", "aibRG", "-l", "eastus")
    az.json("disk", "create", "-g", "aibRG", "-n", "base", "--size-gb", "1")
    image = az.json("image", "create", "-g", "aibRG", "-n", "baseImage", "--source", "base", "--os-type", "Linux")
    az.json("sig", "create", "-g", "aibRG", "-r", "aibGallery")
    az.json("sig", "image-definition", "create", "-g", "aibRG", "-r", "aibGallery", "-i", "web",
            "--publisher", "p", "--offer", "o", "--sku", "s", "--os-type", "Linux", "--os-state", "generalized",
            "--hyper-v-generation", "V1")
    version = az.json("sig", "image-version", "create", "-g", "aibRG", "-r", "aibGallery", "-i", "web",
                      "-e", "1.0.0", "--managed-image", image["id"])

    # From a managed image, distributed as a managed image, by options.
    template = az.json("image", "builder", "create", "-g", "aibRG", "-n", "fromImage",
                       "--image-source", image["id"], "--managed-image-destinations", "img2=eastus")
    assert template["provisioningState"] == "Succeeded"
    assert template["source"] == {"type": "ManagedImage", "imageId": image["id"]}
    assert [(d["type"], d["imageId"], d["location"], d["runOutputName"]) for d in template["distribute"]] == [
        ("ManagedImage", compute_id(sub, "aibRG", "images", "img2"), "eastus", "img2")]
    assert template["lastRunStatus"] is None

    # From a gallery image version, distributed to the gallery, by a template file.
    definition_id = f"{compute_id(sub, 'aibRG', 'galleries', 'aibGallery')}/images/web"
    document = tmp_path / "template.json"
    document.write_text(json.dumps({
        "location": "eastus",
        "properties": {
            "source": {"type": "SharedImageVersion", "imageVersionId": version["id"]},
            "customize": [{"type": "Shell", "name": "hello", "inline": ["echo hello > /etc/hello"]}],
            "distribute": [{"type": "SharedImage", "galleryImageId": definition_id, "runOutputName": "sig",
                            "replicationRegions": ["eastus", "westus2"]}],
        }}))
    from_file = az.json("image", "builder", "create", "-g", "aibRG", "-n", "fromVersion",
                        "--image-template", str(document))
    assert from_file["provisioningState"] == "Succeeded"
    assert (from_file["source"]["type"], from_file["source"]["imageVersionId"]) == (
        "SharedImageVersion", version["id"])
    assert [(d["type"], d["galleryImageId"], d["replicationRegions"]) for d in from_file["distribute"]] == [
        ("SharedImage", definition_id, ["eastus", "westus2"])]
    assert [c["name"] for c in from_file["customize"]] == ["hello"]

    shown = az.json("image", "builder", "show", "-g", "aibRG", "-n", "fromVersion")
    assert shown["id"] == from_file["id"] and shown["type"] == "Microsoft.VirtualMachineImages/imageTemplates"
    assert sorted(t["name"] for t in az.json("image", "builder", "list", "-g", "aibRG")) == [
        "fromImage", "fromVersion"]
    assert {"fromImage", "fromVersion"} <= {t["name"] for t in az.json("image", "builder", "list")}
    response = get(server, template["id"], az.token(), **{"api-version": "2023-07-01"})
    assert response.status_code == 200 and response.json()["properties"]["source"]["imageId"] == image["id"]

    az.run("image", "builder", "delete", "-g", "aibRG", "-n", "fromImage")
    az.run("image", "builder", "delete", "-g", "aibRG", "-n", "fromVersion")
    assert az.json("image", "builder", "list", "-g", "aibRG") == []
    assert "ResourceNotFound" in az.fails("image", "builder", "show", "-g", "aibRG", "-n", "fromImage")
    # Nothing was built: no image was distributed.
    assert "ResourceNotFound" in az.fails("image", "show", "-g", "aibRG", "-n", "img2")


# --------------------------------------------------------------------------- f. refusals

@pytest.mark.slow
def test_anonymous_and_other_tenant_requests_are_refused(server, admin_az, tmp_path):
    # Anonymous: plain HTTP and az without its Authorization header.
    response = get(server, f"/subscriptions/{SUBSCRIPTION_A}/resourcegroups", None, **{"api-version": API_RESOURCES})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "AuthenticationFailed"
    assert response.headers["www-authenticate"].startswith("Bearer ")
    anonymous = Az(server, tmp_path / "anonymous")
    stderr = anonymous.fails("rest", "--skip-authorization-header", "--method", "get", "--url",
                             f"{server.url}/subscriptions?api-version={API_SUBSCRIPTIONS}")
    assert "AuthenticationFailed" in stderr

    # Tenant B, with a subscription and a principal of its own.
    cli_home = tmp_path / "galley-cli"
    tenant_b = server.galley(cli_home, "account", "tenant", "create", "--display-name", "B")["tenantId"]
    subscription_b = server.galley(cli_home, "account", "subscription", "create", "--display-name", "B's",
                                   "--tenant", tenant_b)["subscriptionId"]
    principal_b = server.galley(cli_home, "ad", "sp", "create-for-rbac", "--tenant", tenant_b, "--name", "b",
                                "--role", "Owner", "--scopes", f"/subscriptions/{subscription_b}")
    assert principal_b["tenant"] == tenant_b

    az_b = new_az(server, tmp_path / "b")
    accounts = az_b.login(principal_b["appId"], principal_b["password"], tenant_b)
    # B sees its own subscription only: Galley lists no other tenant's.
    assert [(a["id"], a["tenantId"]) for a in accounts] == [(subscription_b, tenant_b)]
    az_b.json("group", "create", "-n", "rgB", "-l", "eastus")

    # az refuses A's subscription itself (B's sign-in does not list it) ...
    stderr = az_b.fails("group", "list", "--subscription", SUBSCRIPTION_A)
    assert SUBSCRIPTION_A in stderr
    # ... and Galley refuses B's token on A's subscription, through plain HTTP and through az.
    token_b = az_b.token()
    response = get(server, f"/subscriptions/{SUBSCRIPTION_A}/resourcegroups", token_b,
                   **{"api-version": API_RESOURCES})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "InvalidAuthenticationTokenTenant"
    stderr = az_b.fails("rest", "--skip-authorization-header", "--headers", f"Authorization=Bearer {token_b}",
                        "--method", "put", "--url",
                        f"{server.url}/subscriptions/{SUBSCRIPTION_A}/resourcegroups/fromB?api-version={API_RESOURCES}",
                        "--body", json.dumps({"location": "eastus"}))
    assert "InvalidAuthenticationTokenTenant" in stderr
    # Nothing of B's landed in A, nor A's in B.
    assert "fromB" not in [g["name"] for g in admin_az.json("group", "list")]
    assert "rgB" not in [g["name"] for g in admin_az.json("group", "list")]
    assert [g["name"] for g in az_b.json("group", "list")] == ["rgB"]


# --------------------------------------------------------------------------- g. the activity log

@pytest.mark.slow
def test_monitor_activity_log_list(server, admin_az, tmp_path):
    """`az monitor activity-log list` reads Galley's activity log (GET …/providers/microsoft.insights/
    eventtypes/management/values?api-version=2015-04-01, az's $filter with bare times)."""
    creds = server.credentials
    admin_az.json("group", "create", "-n", "activityRG", "-l", "eastus")
    listed = admin_az.json("monitor", "activity-log", "list", "-g", "activityRG", "--offset", "1h")
    [made] = [e for e in listed if e["httpRequest"]["method"] == "PUT"]
    assert made["operationName"]["value"] == "Microsoft.Resources/subscriptions/resourceGroups/write"
    assert (made["status"]["value"], made["subStatus"]["value"]) == ("Succeeded", "Created")
    assert made["caller"] == creds["clientId"] and made["subscriptionId"] == SUBSCRIPTION_A
    assert made["resourceId"] == f"/subscriptions/{SUBSCRIPTION_A}/resourceGroups/activityRG"
    # az sends a correlation id of its own with every request; the log finds the write by it
    by_correlation = admin_az.json("monitor", "activity-log", "list", "--correlation-id", made["correlationId"])
    assert made["eventDataId"] in [e["eventDataId"] for e in by_correlation]

    # a refused anonymous write lands in the log too
    anonymous = Az(server, tmp_path / "anonymous")
    anonymous.fails("rest", "--skip-authorization-header", "--method", "put", "--url",
                    f"{server.url}/subscriptions/{SUBSCRIPTION_A}/resourcegroups/activityRG?api-version={API_RESOURCES}",
                    "--body", json.dumps({"location": "westus"}))
    refused = admin_az.json("monitor", "activity-log", "list", "-g", "activityRG", "--caller", "anonymous",
                            "--start-time", time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 600)))
    assert [(e["status"]["value"], e["subStatus"]["value"]) for e in refused] == [("Failed", "Unauthorized")]
    assert admin_az.json("monitor", "activity-log", "list", "-g", "activityRG",
                         "--start-time", "2001-01-01T00:00:00Z", "--end-time", "2001-01-02T00:00:00Z") == []


# --------------------------------------------------------------------------- g. az graph query

AZ_EXTENSIONS = AZ.parent.parent / "cliextensions"  # where scripts/test installs the resource-graph extension


@pytest.mark.slow
def test_graph_query_lists_the_galleries_of_every_subscription(server, tmp_path):
    """Seed 001's FAQ, through the resource-graph extension (the real one, from the package registry)."""
    if not (AZ_EXTENSIONS / "resource-graph").is_dir():
        pytest.skip(f"the resource-graph extension is not in {AZ_EXTENSIONS}: scripts/test installs it")
    second = server.galley(tmp_path / "galley-cli", "account", "subscription", "create",
                           "--display-name", "graph")["subscriptionId"]
    az = Az(server, tmp_path / "az")
    az.env["AZURE_EXTENSION_DIR"] = str(AZ_EXTENSIONS)
    az.register_cloud()
    creds = server.credentials
    az.login(creds["clientId"], creds["clientSecret"], creds["tenantId"])  # lists both subscriptions
    made = []
    for subscription, group, gallery in ((SUBSCRIPTION_A, "graphRgA", "graphGalA"), (second, "graphRgB", "graphGalB")):
        az.run("group", "create", "-n", group, "-l", "eastus", "--subscription", subscription)
        az.run("sig", "create", "-g", group, "-r", gallery, "--subscription", subscription)
        made.append({"name": gallery, "id": compute_id(subscription, group, "galleries", gallery),
                     "resourceGroup": group.lower()})

    faq = az.json("graph", "query", "-q",
                  "Resources | where type =~ 'Microsoft.Compute/galleries' | project name, id, resourceGroup")
    assert set(faq) == {"count", "data", "skip_token", "total_records"}
    assert all(row in faq["data"] for row in made), faq["data"]
    ours = "Resources | where type =~ 'Microsoft.Compute/galleries' and name startswith 'graphGal' " \
           "| project name, id, resourceGroup | order by name asc"
    answer = az.json("graph", "query", "-q", ours)
    assert answer["data"] == made and answer["total_records"] == 2 and answer["skip_token"] is None
    assert az.json("graph", "query", "-q", ours, "--subscriptions", second)["data"] == made[1:]
    page = az.json("graph", "query", "-q", ours, "--first", "1")
    assert page["data"] == made[:1] and page["skip_token"]
    assert az.json("graph", "query", "-q", ours, "--skip-token", page["skip_token"])["data"] == made[1:]
    stderr = az.fails("graph", "query", "-q", "Resources | where Name == 'graphGalA'")
    assert "BadRequest" in stderr and "did you mean 'name'" in stderr


# --------------------------------------------------------------------------- seed 001's sharing story

@pytest.mark.slow
def test_seed_001_story_a_shares_one_definition_with_tenant_b(server, admin_az, tmp_path):
    """Tenant A publishes a gallery, shares one definition with tenant B's service principal
    (`az role assignment create … --role Reader`); B lists it, builds a version in its own
    gallery from the shared version, cannot see the other definition or change anything; A
    removes the share and B's next read is refused."""
    cli_home = tmp_path / "galley-cli"
    a = admin_az
    a.json("group", "create", "-n", "storyRG", "-l", "eastus")
    a.json("sig", "create", "-g", "storyRG", "-r", "storyGallery")
    for name in ("shared", "private"):
        a.json("sig", "image-definition", "create", "-g", "storyRG", "-r", "storyGallery", "-i", name,
               "--publisher", "contoso", "--offer", name, "--sku", "1", "--os-type", "Linux",
               "--os-state", "Generalized", "--hyper-v-generation", "V1")
    a.json("disk", "create", "-g", "storyRG", "-n", "storyDisk", "--size-gb", "1")
    a.json("snapshot", "create", "-g", "storyRG", "-n", "storySnap", "--source", "storyDisk")
    snapshot_id = compute_id(SUBSCRIPTION_A, "storyRG", "snapshots", "storySnap")
    for name in ("shared", "private"):
        a.json("sig", "image-version", "create", "-g", "storyRG", "-r", "storyGallery", "-i", name,
               "-e", "1.0.0", "--os-snapshot", snapshot_id, "--target-regions", "eastus")
    shared_definition = f"{compute_id(SUBSCRIPTION_A, 'storyRG', 'galleries', 'storyGallery')}/images/shared"

    tenant_b = server.galley(cli_home, "account", "tenant", "create", "--display-name", "Fabrikam")["tenantId"]
    subscription_b = server.galley(cli_home, "account", "subscription", "create", "--display-name", "Fabrikam",
                                   "--tenant", tenant_b)["subscriptionId"]
    principal_b = server.galley(cli_home, "ad", "sp", "create-for-rbac", "--tenant", tenant_b, "--name", "fabrikam",
                                "--role", "Owner", "--scopes", f"/subscriptions/{subscription_b}")
    object_b = server.galley(cli_home, "ad", "sp", "show", "--id", principal_b["appId"])["id"]
    b = new_az(server, tmp_path / "b")
    b.login(principal_b["appId"], principal_b["password"], tenant_b)
    # before the share, A's subscription is not even among B's
    assert SUBSCRIPTION_A in b.fails("sig", "image-definition", "list", "-g", "storyRG", "-r", "storyGallery",
                                     "--subscription", SUBSCRIPTION_A)

    # A shares one definition with B's principal.
    [reader] = a.json("role", "definition", "list", "--name", "Reader")
    assert reader["name"] == "acdd72a7-3385-48ef-bd42-f606fba81ae7" and reader["permissions"][0]["actions"] == ["*/read"]
    made = a.json("role", "assignment", "create", "--assignee-object-id", object_b,
                  "--assignee-principal-type", "ServicePrincipal", "--role", "Reader", "--scope", shared_definition)
    assert made["scope"] == shared_definition
    listed = a.json("role", "assignment", "list", "--scope", shared_definition)
    assert [(x["principalId"], x["roleDefinitionName"]) for x in listed] == [(object_b, "Reader")]

    # B signs in again (its subscriptions now include A's) and reads exactly what is shared.
    accounts = b.login(principal_b["appId"], principal_b["password"], tenant_b, "--allow-no-subscriptions")
    assert {x["id"] for x in accounts} == {subscription_b, SUBSCRIPTION_A}
    shown = b.json("sig", "image-definition", "show", "-g", "storyRG", "-r", "storyGallery", "-i", "shared",
                   "--subscription", SUBSCRIPTION_A)
    assert shown["name"] == "shared"
    versions = b.json("sig", "image-version", "list", "-g", "storyRG", "-r", "storyGallery", "-i", "shared",
                      "--subscription", SUBSCRIPTION_A)
    assert [v["name"] for v in versions] == ["1.0.0"]
    assert "AuthorizationFailed" in b.fails("sig", "image-definition", "show", "-g", "storyRG", "-r",
                                            "storyGallery", "-i", "private", "--subscription", SUBSCRIPTION_A)
    assert "AuthorizationFailed" in b.fails("sig", "show", "-g", "storyRG", "-r", "storyGallery",
                                            "--subscription", SUBSCRIPTION_A)
    assert "AuthorizationFailed" in b.fails("sig", "image-version", "delete", "-g", "storyRG", "-r", "storyGallery",
                                            "-i", "shared", "-e", "1.0.0", "--subscription", SUBSCRIPTION_A)
    # B builds from the shared version, in its own subscription.
    b.json("group", "create", "-n", "fabrikamRG", "-l", "eastus", "--subscription", subscription_b)
    b.json("sig", "create", "-g", "fabrikamRG", "-r", "fabrikamGallery", "--subscription", subscription_b)
    b.json("sig", "image-definition", "create", "-g", "fabrikamRG", "-r", "fabrikamGallery", "-i", "derived",
           "--publisher", "fabrikam", "--offer", "derived", "--sku", "1", "--os-type", "Linux",
           "--os-state", "Generalized", "--hyper-v-generation", "V1", "--subscription", subscription_b)
    built = b.json("sig", "image-version", "create", "-g", "fabrikamRG", "-r", "fabrikamGallery", "-i", "derived",
                   "-e", "1.0.0", "--image-version", f"{shared_definition}/versions/1.0.0",
                   "--target-regions", "eastus", "--subscription", subscription_b)
    assert built["provisioningState"] == "Succeeded"
    assert built["storageProfile"]["source"]["id"].lower() == f"{shared_definition}/versions/1.0.0".lower()

    # A takes the share back: B's next read is refused.
    a.run("role", "assignment", "delete", "--assignee", object_b, "--role", "Reader", "--scope", shared_definition)
    assert a.json("role", "assignment", "list", "--scope", shared_definition) == []
    refused = b.fails("sig", "image-definition", "show", "-g", "storyRG", "-r", "storyGallery", "-i", "shared",
                      "--subscription", SUBSCRIPTION_A)
    assert "AuthorizationFailed" in refused or "InvalidAuthenticationTokenTenant" in refused


@pytest.mark.slow
def test_disk_upload_through_grant_access_write_and_revoke(server, admin_az):
    """az disk create --upload-type Upload, grant-access --access-level Write, page writes with
    azure-storage-blob to the SAS URL, revoke-access: the bytes are the disk's."""
    from azure.storage.blob import BlobClient

    az = admin_az
    az.json("group", "create", "-n", "uploadRG", "-l", "eastus")
    size = 32 * 1024 * 1024
    disk = az.json("disk", "create", "-g", "uploadRG", "-n", "upDisk", "--upload-type", "Upload",
                   "--upload-size-bytes", str(size + 512))
    assert disk["diskState"] == "ReadyToUpload"
    granted = az.json("disk", "grant-access", "-g", "uploadRG", "-n", "upDisk", "--access-level", "Write",
                      "--duration-in-seconds", "3600")
    assert set(granted) <= {"accessSAS", "securityDataAccessSAS", "securityMetadataAccessSAS"}, granted
    sas = granted["accessSAS"]
    assert az.json("disk", "show", "-g", "uploadRG", "-n", "upDisk")["diskState"] == "ActiveUpload"
    data = os.urandom(4 * 1024 * 1024)
    BlobClient.from_blob_url(sas, connection_verify=str(server.ca)).upload_page(data, offset=0, length=len(data))
    az.run("disk", "revoke-access", "-g", "uploadRG", "-n", "upDisk")
    assert az.json("disk", "show", "-g", "uploadRG", "-n", "upDisk")["diskState"] == "Unattached"
    path = "/subscriptions/{}/resourceGroups/uploadRG/providers/Microsoft.Compute/disks/upDisk/download".format(
        SUBSCRIPTION_A)
    got = httpx.get(f"{server.url}{path}", params={"api-version": "2026-03-02", "format": "raw"},
                    headers={"Authorization": f"Bearer {az.token()}", "Range": f"bytes=0-{len(data) - 1}"},
                    verify=server.tls(), timeout=60)
    assert got.status_code == 206 and got.content == data
