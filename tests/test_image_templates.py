"""VM Image Builder templates (seed 003) through the real azure-mgmt-imagebuilder SDK and raw ARM calls:
CRUD, the seed's template, each submission rule as a 4xx that stores nothing, what may change after
creation, the 2019-05-01-preview body, and run / cancel / runOutputs.

Runs are queued for the build pipeline; no handler executes them here, so a run stays queued.
"""

from __future__ import annotations

import copy
import time

from . import admin_http as httpx
import pytest
from azure.core.exceptions import ResourceNotFoundError
from azure.mgmt.compute import models as cm
from azure.mgmt.imagebuilder import ImageBuilderClient
from azure.mgmt.imagebuilder import models as m

from galley.domain.image_template import RunOutput

from .conftest import AdminBearer, AdminCredential, sdk_client
from .sdk_helpers import (RG, assert_arm_error, create_definition, create_gallery, create_snapshot,
                          create_version, group_url, make_group, quick_polls, resource_id, sdk_rejects)
from .servers import SUBSCRIPTION, ThreadServer

API = "2025-10-01"
SEED_API = "2019-05-01-preview"
TEMPLATE_TYPE = "Microsoft.VirtualMachineImages/imageTemplates"
IDENTITY = (f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RG}/providers/Microsoft.ManagedIdentity/"
            "userAssignedIdentities/aib-identity")
OTHER_IDENTITY = IDENTITY.replace("aib-identity", "other-identity")
SHA = "3b4f3a1f2b7c9d0e5a6b8c7d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f"


def builder_client(url: str) -> ImageBuilderClient:
    client = ImageBuilderClient(credential=AdminCredential(url), subscription_id=SUBSCRIPTION, base_url=url,
                                authentication_policy=AdminBearer(url), polling_interval=1)
    return quick_polls(client)


def template_url(url: str, name: str = "", rg: str = RG) -> str:
    tail = f"/{name}" if name else ""
    return f"{group_url(url, rg)}/providers/Microsoft.VirtualMachineImages/imageTemplates{tail}"


def template_id(name: str, rg: str = RG) -> str:
    return f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{rg}/providers/{TEMPLATE_TYPE}/{name}"


def put_template(url: str, name: str, body: dict, api: str = API) -> httpx.Response:
    return httpx.put(template_url(url, name), params={"api-version": api}, json=body)


def get_template(url: str, name: str, api: str = API) -> httpx.Response:
    return httpx.get(template_url(url, name), params={"api-version": api})


def wait_template(url: str, name: str, api: str = API, timeout: float = 10.0) -> dict:
    deadline = time.time() + timeout
    while True:
        body = get_template(url, name, api).json()
        if body.get("properties", {}).get("provisioningState") == "Succeeded":
            return body
        assert time.time() < deadline, f"{name} did not finish: {body}"
        time.sleep(0.05)


class Chain:
    """What the templates build from and distribute to, made once for the module."""

    def __init__(self, url: str) -> None:
        compute = quick_polls(sdk_client(url))
        make_group(url)
        make_group(url, "rg-out")
        self.image = self._image(compute, "img", "eastus", "Linux")
        self.west_image = self._image(compute, "img-west", "westus2", "Linux")
        self.windows_image = self._image(compute, "img-win", "eastus", "Windows")
        create_gallery(compute)
        create_definition(compute)
        create_definition(compute, name="windef", os_type="Windows", sku="winsku")
        snap = compute.snapshots.get(RG, "img-snap")
        self.version = create_version(compute, snap.id, "1.0.0").id
        self.definition = resource_id("galleries/gal/images/def")
        self.windows_definition = resource_id("galleries/gal/images/windef")
        self.out_image = resource_id("images/built", rg="rg-out")
        for identity in (IDENTITY, OTHER_IDENTITY):  # the identities the templates name must exist
            made = httpx.put(f"{url}{identity}?api-version=2023-01-31", json={"location": "eastus"})
            assert made.status_code in (200, 201), made.text

    @staticmethod
    def _image(compute, name: str, location: str, os_type: str) -> str:
        snap = create_snapshot(compute, f"{name}-snap", location=location, os_type=os_type)
        return compute.images.begin_create_or_update(RG, name, cm.Image(
            location=location, properties=cm.ImageProperties(storage_profile=cm.ImageStorageProfile(
                os_disk=cm.ImageOSDisk(os_type=os_type, os_state="Generalized",
                                       snapshot=cm.SubResource(id=snap.id)))))).result().id


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    # No build threads: runs stay queued, so these API tests see run/cancel states without a build
    # racing them (tests/test_builds.py runs real builds).
    with ThreadServer(tmp_path_factory.mktemp("image-templates"), build_threads=0) as running:
        running.chain = Chain(running.url)
        yield running


@pytest.fixture(scope="module")
def builder(env) -> ImageBuilderClient:
    return builder_client(env.url)


def body_with(chain: Chain, **properties) -> dict:
    """A valid template (wire JSON, current api-version); keyword arguments replace properties."""
    props = {
        "source": {"type": "ManagedImage", "imageId": chain.image},
        "customize": [{"type": "Shell", "name": "update", "inline": ["sudo apt-get update"]}],
        "distribute": [{"type": "ManagedImage", "imageId": chain.out_image, "location": "eastus",
                        "runOutputName": "managed"}],
    }
    props.update(properties)
    return {"location": "eastus", "tags": {"purpose": "test"},
            "identity": {"type": "UserAssigned", "userAssignedIdentities": {IDENTITY: {}}},
            "properties": props}


def seed_template(chain: Chain) -> m.ImageTemplate:
    """The seed's example template, sourced from a gallery version made in this test module."""
    return m.ImageTemplate(
        location="eastus", tags={"team": "images"},
        identity=m.ImageTemplateIdentity(type="UserAssigned",
                                         user_assigned_identities={IDENTITY: m.UserAssignedIdentity()}),
        properties=m.ImageTemplateProperties(
            source=m.ImageTemplateSharedImageVersionSource(image_version_id=chain.version),
            customize=[
                m.ImageTemplateShellCustomizer(name="setup", script_uri="https://example.com/setup.sh",
                                               sha256_checksum=SHA),
                m.ImageTemplateShellCustomizer(name="inline", inline=["sudo mkdir -p /opt/app"]),
                m.ImageTemplateFileCustomizer(name="payload", source_uri="https://example.com/app.tar.gz",
                                              destination="/tmp/app.tar.gz"),
            ],
            validate=m.ImageTemplatePropertiesValidate(
                continue_distribute_on_failure=False,
                in_vm_validations=[m.ImageTemplateShellValidator(name="check", inline=["test -d /opt/app"])]),
            distribute=[
                m.ImageTemplateManagedImageDistributor(image_id=chain.out_image, location="eastus",
                                                       run_output_name="managed",
                                                       artifact_tags={"source": "aib"}),
                m.ImageTemplateSharedImageDistributor(
                    gallery_image_id=chain.definition, run_output_name="gallery",
                    target_regions=[m.TargetRegion(name="eastus", replica_count=2),
                                    m.TargetRegion(name="westus2", storage_account_type="Standard_ZRS")],
                    versioning=m.DistributeVersionerLatest(major=1)),
                m.ImageTemplateVhdDistributor(run_output_name="vhd"),
            ],
            build_timeout_in_minutes=0,
            vm_profile=m.ImageTemplateVmProfile(vm_size="Standard_D1_v2", os_disk_size_gb=0)))


# ---- CRUD through the SDK ----------------------------------------------------------------------------

def test_create_get_list_update_delete_with_the_sdk(env, builder):
    templates = builder.virtual_machine_image_templates
    created = templates.begin_create_or_update(RG, "seed", seed_template(env.chain)).result()
    assert created.id == template_id("seed") and created.type == TEMPLATE_TYPE
    props = created.properties
    assert props.provisioning_state == "Succeeded"
    assert props.build_timeout_in_minutes == 240  # 0 means the default
    assert props.source.image_version_id.lower() == env.chain.version.lower()
    assert [c.name for c in props.customize] == ["setup", "inline", "payload"]
    assert props.customize[2].destination == "/tmp/app.tar.gz"
    gallery = props.distribute[1]
    assert gallery.versioning.scheme == "Latest" and gallery.versioning.major == 1
    assert {t.name: (t.replica_count, t.storage_account_type) for t in gallery.target_regions} == {
        "eastus": (2, "Standard_LRS"), "westus2": (1, "Standard_ZRS")}
    assert props.last_run_status is None
    assert props.exact_staging_resource_group.startswith(f"/subscriptions/{SUBSCRIPTION}/resourceGroups/IT_rg_seed_")
    assert list(created.identity.user_assigned_identities) == [IDENTITY]
    raw = get_template(env.url, "seed").json()
    assert "identity" not in raw["properties"] and raw["identity"]["type"] == "UserAssigned"

    templates.begin_create_or_update(RG, "second", seed_template(env.chain)).result()
    assert {"seed", "second"} <= {t.name for t in templates.list_by_resource_group(RG)}
    assert {"seed", "second"} <= {t.name for t in templates.list()}

    updated = templates.begin_update(RG, "seed", m.ImageTemplateUpdateParameters(
        tags={"team": "platform"},
        identity=m.ImageTemplateIdentity(type="UserAssigned", user_assigned_identities={
            IDENTITY: None, OTHER_IDENTITY: m.UserAssignedIdentity()}),
        properties=m.ImageTemplateUpdateParametersProperties(
            vm_profile=m.ImageTemplateVmProfile(vm_size="Standard_D4s_v3", os_disk_size_gb=64)))).result()
    assert updated.tags == {"team": "platform"}
    got = templates.get(RG, "seed")
    assert got.tags == {"team": "platform"}
    assert got.properties.vm_profile.vm_size == "Standard_D4s_v3" and got.properties.vm_profile.os_disk_size_gb == 64
    assert list(got.identity.user_assigned_identities) == [OTHER_IDENTITY]
    assert got.properties.exact_staging_resource_group == props.exact_staging_resource_group

    templates.begin_delete(RG, "seed").result()
    with pytest.raises(ResourceNotFoundError):
        templates.get(RG, "seed")
    assert "seed" not in {t.name for t in templates.list_by_resource_group(RG)}
    templates.begin_delete(RG, "second").result()


def test_crud_on_each_database(server):
    """The run_outputs migration and the template rows on SQLite and PostgreSQL alike."""
    chain = Chain(server.url)
    templates = builder_client(server.url).virtual_machine_image_templates
    templates.begin_create_or_update(RG, "t", body_with(chain)).result()
    assert [t.name for t in templates.list_by_resource_group(RG)] == ["t"]
    assert list(templates.list_run_outputs(RG, "t")) == []
    templates.begin_delete(RG, "t").result()
    assert list(templates.list()) == []


def test_platform_image_source_is_accepted_as_given(env, builder):
    body = body_with(env.chain, source={"type": "PlatformImage", "publisher": "Canonical",
                                        "offer": "0001-com-ubuntu-server-jammy", "sku": "22_04-lts",
                                        "version": "latest"})
    created = builder.virtual_machine_image_templates.begin_create_or_update(RG, "platform", body).result()
    source = created.properties.source
    assert isinstance(source, m.ImageTemplatePlatformImageSource)
    assert (source.publisher, source.sku, source.version) == ("Canonical", "22_04-lts", "latest")
    builder.virtual_machine_image_templates.begin_delete(RG, "platform").result()


def test_put_answers_201_with_async_operation_headers(env):
    with env.settings_changed(quick_answer_ms=0):  # every write asynchronous, as ARM's
        response = put_template(env.url, "headers", body_with(env.chain))
        assert response.status_code == 201, response.text
        assert {"azure-asyncoperation", "location", "retry-after"} <= set(response.headers)
        wait_template(env.url, "headers")
        assert httpx.delete(template_url(env.url, "headers"), params={"api-version": API}).status_code == 202


def test_put_stays_asynchronous_and_a_quick_delete_answers_204(env):
    """A template's create is answered asynchronously even when it ends at once, as Azure's (the
    imagebuilder SDK az ships misreads a final first answer: it deserializes it twice and loses the
    polymorphic `type` fields); its delete, when done at once, answers 204 (what
    azure-mgmt-imagebuilder takes as final; it refuses 200)."""
    response = put_template(env.url, "quick", body_with(env.chain))
    assert response.status_code == 201, response.text
    assert {"azure-asyncoperation", "location", "retry-after"} <= set(response.headers)
    wait_template(env.url, "quick")
    with env.settings_changed(quick_answer_ms=10_000):  # a budget no busy machine exceeds
        deleted = httpx.delete(template_url(env.url, "quick"), params={"api-version": API})
    assert deleted.status_code == 204 and not deleted.content
    assert not {"azure-asyncoperation", "location", "retry-after"} & set(deleted.headers)
    assert get_template(env.url, "quick").status_code == 404


def test_seed_json_with_api_version_2019_05_01_preview(env):
    chain = env.chain
    body = {
        "type": TEMPLATE_TYPE, "apiVersion": SEED_API, "location": "eastus",
        "tags": {"imagebuilderTemplate": "ubuntu1804"},
        "identity": {"type": "UserAssigned", "userAssignedIdentities": {IDENTITY: {}}},
        "dependsOn": [],
        "properties": {
            "buildTimeoutInMinutes": 80,
            "vmProfile": {"vmSize": "Standard_D1_v2", "osDiskSizeGB": 100,
                          "vnetConfig": {"name": "vnet", "subnetName": "subnet", "resourceGroupName": "vnetrg"}},
            "source": {"type": "SharedImageVersion", "imageVersionID": chain.version},
            "customize": [
                {"type": "Shell", "name": "RunScriptFromSource", "scriptUri": "https://example.com/customizeScript.sh",
                 "sha256Checksum": SHA},
                {"type": "Shell", "inline": ["sudo mkdir /buildArtifacts"]},
                {"type": "File", "name": "downloadBuildArtifacts", "sourceUri": "https://example.com/index.html",
                 "destination": "/tmp/index.html"},
            ],
            "distribute": [
                {"type": "managedImage", "imageId": chain.out_image, "location": "eastus",
                 "runOutputName": "ubuntu1804", "artifactTags": {"source": "azVmImageBuilder"}},
                {"type": "sharedImage", "galleryImageId": chain.definition, "runOutputName": "ubuntu1804sig",
                 "artifactTags": {"source": "azureVmImageBuilder"}, "replicationRegions": ["eastus", "westus2"]},
                {"type": "VHD", "runOutputName": "ubuntu1804vhd"},
            ]}}
    response = put_template(env.url, "seed2019", body, SEED_API)
    assert response.status_code == 201, response.text
    got = wait_template(env.url, "seed2019", SEED_API)
    props = got["properties"]
    assert props["source"] == {"type": "SharedImageVersion", "imageVersionId": chain.version}
    assert [d["type"] for d in props["distribute"]] == ["ManagedImage", "SharedImage", "VHD"]
    assert props["distribute"][1]["replicationRegions"] == ["eastus", "westus2"]
    assert props["buildTimeoutInMinutes"] == 80 and props["vmProfile"]["osDiskSizeGB"] == 100
    assert got["identity"]["userAssignedIdentities"] == {IDENTITY: {}}
    assert got["tags"] == {"imagebuilderTemplate": "ubuntu1804"}
    deleted = httpx.delete(template_url(env.url, "seed2019"), params={"api-version": SEED_API})
    assert deleted.status_code in (202, 204), deleted.text  # 204: done at once (quick answer)


def test_api_versions(env):
    assert_arm_error(httpx.get(template_url(env.url), params={"api-version": "2018-01-01"}), 400,
                     "InvalidApiVersionParameter")
    for api in ("2020-02-14", "2022-07-01", "2024-02-01", API):
        assert httpx.get(template_url(env.url), params={"api-version": api}).status_code == 200


# ---- submission rules: each a 4xx naming the property, with nothing stored -------------------------------

def _distribute(**entry) -> list:
    return [{"type": "SharedImage", "galleryImageId": "{definition}", "runOutputName": "sig", **entry}]


REJECTIONS = [
    # (case, properties to replace, status, target or phrase the error must name)
    ("no-source", {"source": None}, 400, "properties.source"),
    ("iso-source", {"source": {"type": "ISO", "sourceUri": "https://example.com/rhel.iso"}}, 400,
     "ISO sources are deprecated: create a managed image or use a platform image"),
    ("unknown-source", {"source": {"type": "Vhd", "uri": "https://x/y.vhd"}}, 400, "properties.source.type"),
    ("platform-no-publisher", {"source": {"type": "PlatformImage", "offer": "o", "sku": "s", "version": "latest"}},
     400, "properties.source.publisher"),
    ("platform-no-version", {"source": {"type": "PlatformImage", "publisher": "p", "offer": "o", "sku": "s"}},
     400, "properties.source.version"),
    ("managed-missing", {"source": {"type": "ManagedImage", "imageId": "{missing_image}"}}, 404,
     "properties.source.imageId"),
    ("managed-other-region", {"source": {"type": "ManagedImage", "imageId": "{west_image}"}}, 400,
     "properties.source.imageId"),
    ("windows-source", {"source": {"type": "ManagedImage", "imageId": "{windows_image}"}}, 400,
     "Windows builds are not supported by Galley"),
    ("version-missing", {"source": {"type": "SharedImageVersion", "imageVersionId": "{version}9"}}, 404,
     "properties.source.imageVersionId"),
    ("customizer-no-type", {"customize": [{"name": "x", "inline": ["true"]}]}, 400, "properties.customize[0].type"),
    ("customizer-unknown", {"customize": [{"type": "Ansible", "name": "x"}]}, 400, "properties.customize[0].type"),
    ("customizer-names", {"customize": [{"type": "Shell", "name": "a", "inline": ["true"]},
                                        {"type": "Shell", "name": "a", "inline": ["false"]}]}, 400,
     "properties.customize[1].name"),
    ("shell-both", {"customize": [{"type": "Shell", "inline": ["true"], "scriptUri": "https://e.com/s.sh"}]},
     400, "properties.customize[0]"),
    ("shell-neither", {"customize": [{"type": "Shell", "name": "empty"}]}, 400, "exactly one of"),
    ("shell-inline-string", {"customize": [{"type": "Shell", "inline": "echo hi"}]}, 400,
     "properties.customize[0].inline"),
    ("bad-checksum", {"customize": [{"type": "Shell", "scriptUri": "https://e.com/s.sh", "sha256Checksum": "abc"}]},
     400, "properties.customize[0].sha256Checksum"),
    ("file-no-destination", {"customize": [{"type": "File", "sourceUri": "https://e.com/f"}]}, 400,
     "properties.customize[0].destination"),
    ("file-outside-tmp", {"customize": [{"type": "File", "sourceUri": "https://e.com/f", "destination": "/etc/f"}]},
     400, "/tmp"),
    ("file-escapes-tmp", {"customize": [{"type": "File", "sourceUri": "https://e.com/f",
                                         "destination": "/tmp/../etc/passwd"}]}, 400, "/tmp"),
    ("powershell", {"customize": [{"type": "PowerShell", "inline": ["Get-Date"]}]}, 400,
     "Windows builds are not supported by Galley"),
    ("windows-restart", {"customize": [{"type": "WindowsRestart", "restartTimeout": "5m"}]}, 400,
     "Windows builds are not supported by Galley"),
    ("windows-update", {"customize": [{"type": "WindowsUpdate", "updateLimit": 20}]}, 400,
     "Windows builds are not supported by Galley"),
    ("timeout-too-long", {"buildTimeoutInMinutes": 961}, 400, "properties.buildTimeoutInMinutes"),
    ("timeout-negative", {"buildTimeoutInMinutes": -1}, 400, "properties.buildTimeoutInMinutes"),
    ("no-distribute", {"distribute": None}, 400, "properties.distribute"),
    ("empty-distribute", {"distribute": []}, 400, "properties.distribute"),
    ("distribute-unknown", {"distribute": [{"type": "Blob", "runOutputName": "x"}]}, 400,
     "properties.distribute[0].type"),
    ("no-run-output-name", {"distribute": [{"type": "VHD"}]}, 400, "properties.distribute[0].runOutputName"),
    ("bad-run-output-name", {"distribute": [{"type": "VHD", "runOutputName": "not ok!"}]}, 400,
     "properties.distribute[0].runOutputName"),
    ("long-run-output-name", {"distribute": [{"type": "VHD", "runOutputName": "x" * 65}]}, 400,
     "properties.distribute[0].runOutputName"),
    ("duplicate-run-output-name", {"distribute": [{"type": "VHD", "runOutputName": "out"},
                                                  {"type": "VHD", "runOutputName": "OUT"}]}, 400,
     "properties.distribute[1].runOutputName"),
    ("artifact-tags", {"distribute": [{"type": "VHD", "runOutputName": "v", "artifactTags": {"n": 1}}]}, 400,
     "properties.distribute[0].artifactTags.n"),
    ("managed-target-no-group", {"distribute": [{"type": "ManagedImage", "location": "eastus", "runOutputName": "m",
                                                 "imageId": "{missing_group_image}"}]}, 400,
     "properties.distribute[0].imageId"),
    ("managed-target-no-location", {"distribute": [{"type": "ManagedImage", "runOutputName": "m",
                                                    "imageId": "{out_image}"}]}, 400,
     "properties.distribute[0].location"),
    ("shared-missing-definition", {"distribute": [{"type": "SharedImage", "runOutputName": "s",
                                                   "galleryImageId": "{definition}x"}]}, 404,
     "properties.distribute[0].galleryImageId"),
    ("shared-without-gallery-region", {"distribute": _distribute(replicationRegions=["westus2"])}, 400,
     "properties.distribute[0].replicationRegions"),
    ("shared-targets-without-gallery-region", {"distribute": _distribute(targetRegions=[{"name": "westus2"}])},
     400, "properties.distribute[0].targetRegions"),
    ("shared-both-region-lists", {"distribute": _distribute(replicationRegions=["eastus"],
                                                            targetRegions=[{"name": "eastus"}])}, 400,
     "properties.distribute[0]"),
    ("shared-bad-replica-count", {"distribute": _distribute(targetRegions=[{"name": "eastus", "replicaCount": 0}])},
     400, "properties.distribute[0].targetRegions[0].replicaCount"),
    ("shared-bad-versioning", {"distribute": _distribute(versioning={"scheme": "Newest"})}, 400,
     "properties.distribute[0].versioning.scheme"),
    ("shared-windows-definition", {"distribute": [{"type": "SharedImage", "runOutputName": "s",
                                                   "galleryImageId": "{windows_definition}"}]}, 400,
     "Windows builds are not supported by Galley"),
    ("vm-disk-negative", {"vmProfile": {"osDiskSizeGB": -1}}, 400, "properties.vmProfile.osDiskSizeGB"),
    ("vm-disk-string", {"vmProfile": {"osDiskSizeGB": "100"}}, 400, "properties.vmProfile.osDiskSizeGB"),
    ("vm-size-unknown", {"vmProfile": {"vmSize": "Standard_Q7_v9"}}, 400, "Standard_D1_v2"),
    ("validator-powershell", {"validate": {"inVMValidations": [{"type": "PowerShell", "inline": ["x"]}]}}, 400,
     "Windows builds are not supported by Galley"),
    ("validator-flag", {"validate": {"continueDistributeOnFailure": "yes"}}, 400,
     "properties.validate.continueDistributeOnFailure"),
    ("staging-group", {"stagingResourceGroup": "rg-staging"}, 400, "properties.stagingResourceGroup"),
    ("auto-run", {"autoRun": {"state": "Enabled"}}, 400, "properties.autoRun.state"),
]


def _fill(value, chain: Chain):
    if isinstance(value, str):
        return value.format(missing_image=resource_id("images/nope"), west_image=chain.west_image,
                            windows_image=chain.windows_image, version=chain.version,
                            definition=chain.definition, windows_definition=chain.windows_definition,
                            out_image=chain.out_image,
                            missing_group_image=resource_id("images/x", rg="no-such-group"))
    if isinstance(value, list):
        return [_fill(v, chain) for v in value]
    if isinstance(value, dict):
        return {k: _fill(v, chain) for k, v in value.items()}
    return value


def assert_nothing_stored(url: str, name: str) -> None:
    assert get_template(url, name).status_code == 404
    listed = httpx.get(template_url(url), params={"api-version": API}).json()["value"]
    assert name not in {t["name"] for t in listed}


@pytest.mark.parametrize("case, properties, status, mentions", REJECTIONS, ids=[r[0] for r in REJECTIONS])
def test_submission_rule_rejects_and_stores_nothing(env, case, properties, status, mentions):
    body = body_with(env.chain)
    for key, value in _fill(properties, env.chain).items():
        if value is None:
            body["properties"].pop(key)
        else:
            body["properties"][key] = value
    assert_arm_error(put_template(env.url, f"bad-{case}", body), status, mentions=mentions)
    assert_nothing_stored(env.url, f"bad-{case}")


@pytest.mark.parametrize("identity, mentions", [
    ({"type": "UserAssigned", "userAssignedIdentities": {IDENTITY: {}, OTHER_IDENTITY: {}}},
     "identity.userAssignedIdentities"),
    ({"type": "UserAssigned", "userAssignedIdentities": {}}, "identity.userAssignedIdentities"),
    ({"type": "SystemAssigned"}, "identity.type"),
    ({"type": "UserAssigned", "userAssignedIdentities": {"/subscriptions/x/not-an-identity": {}}},
     "identity.userAssignedIdentities"),
])
def test_identity_rules(env, identity, mentions):
    body = body_with(env.chain)
    body["identity"] = identity
    assert_arm_error(put_template(env.url, "bad-identity", body), 400, mentions=mentions)
    assert_nothing_stored(env.url, "bad-identity")


def test_template_name_and_sdk_rejection(env, builder):
    assert_arm_error(put_template(env.url, "bad!name", body_with(env.chain)), 400, "InvalidResourceName")
    body = body_with(env.chain, customize=[{"type": "PowerShell", "name": "ps", "inline": ["Get-Date"]}])
    sdk_rejects(lambda: builder.virtual_machine_image_templates.begin_create_or_update(RG, "sdk-bad", body),
                400, "InvalidParameter", mentions="Windows builds are not supported by Galley")
    assert_nothing_stored(env.url, "sdk-bad")


def test_build_timeout_is_stored_as_the_effective_value(env):
    for name, value, expected in (("t-absent", None, 240), ("t-zero", 0, 240), ("t-max", 960, 960),
                                  ("t-short", 30, 30)):
        body = body_with(env.chain)
        if value is not None:
            body["properties"]["buildTimeoutInMinutes"] = value
        response = put_template(env.url, name, body)
        assert response.status_code == 201, response.text
        assert response.json()["properties"]["buildTimeoutInMinutes"] == expected


def test_only_tags_identity_and_vm_profile_change_after_creation(env):
    body = body_with(env.chain, vmProfile={"vmSize": "Standard_D2s_v3"})
    assert put_template(env.url, "frozen", body).status_code == 201
    wait_template(env.url, "frozen")
    url, params = template_url(env.url, "frozen"), {"api-version": API}
    for change, target in (
            ({"properties": {"customize": [{"type": "Shell", "name": "other", "inline": ["true"]}]}},
             "properties.customize"),
            ({"properties": {"buildTimeoutInMinutes": 100}}, "properties.buildTimeoutInMinutes"),
            ({"properties": {"distribute": [{"type": "VHD", "runOutputName": "vhd"}]}}, "properties.distribute"),
            ({"properties": {"source": {"type": "PlatformImage", "publisher": "p", "offer": "o", "sku": "s",
                                        "version": "1.0.0"}}}, "properties.source"),
            ({"location": "westus2"}, "location")):
        error = assert_arm_error(httpx.patch(url, params=params, json=change), 409, "PropertyChangeNotAllowed")
        assert error["target"].startswith(target), error
    # Re-sending the same template with the seed's spellings is not a change.
    same = copy.deepcopy(body)
    same["properties"]["distribute"][0]["type"] = "managedImage"
    assert httpx.put(url, params=params, json=same).status_code == 200
    wait_template(env.url, "frozen")
    response = httpx.patch(url, params=params, json={
        "tags": {"k": "v"}, "identity": {"type": "None"}, "properties": {"vmProfile": {"osDiskSizeGB": 50}}})
    assert response.status_code == 200, response.text
    got = wait_template(env.url, "frozen")
    assert got["tags"] == {"k": "v"} and got["identity"] == {"type": "None"}
    assert got["properties"]["vmProfile"] == {"vmSize": "Standard_D2s_v3", "osDiskSizeGB": 50}
    assert got["properties"]["customize"][0]["name"] == "update"
    # Output-only properties sent by a client are ignored, not stored.
    response = httpx.patch(url, params=params, json={"properties": {
        "lastRunStatus": {"runState": "Succeeded"}, "provisioningState": "Failed"}})
    assert response.status_code == 200, response.text
    assert "lastRunStatus" not in wait_template(env.url, "frozen")["properties"]


# ---- run, cancel, run outputs ---------------------------------------------------------------------------

def action(url: str, name: str, verb: str, api: str = API) -> httpx.Response:
    return httpx.post(f"{template_url(url, name)}/{verb}", params={"api-version": api})


def run_to_its_end(url: str, name: str, timeout: float = 60, poll: float = 0.1) -> None:
    """Start a run of template `name` and wait while it is Running."""
    assert action(url, name, "run").status_code == 202
    deadline = time.monotonic() + timeout
    while get_template(url, name).json()["properties"]["lastRunStatus"]["runState"] == "Running":
        assert time.monotonic() < deadline
        time.sleep(poll)


def test_run_is_queued_and_a_second_run_or_a_delete_is_refused(env):
    assert put_template(env.url, "runner", body_with(env.chain)).status_code == 201
    wait_template(env.url, "runner")
    assert_arm_error(action(env.url, "runner", "cancel"), 409, "OperationNotAllowed", mentions="no run in progress")

    response = action(env.url, "runner", "run")
    assert response.status_code == 202, response.text
    assert {"azure-asyncoperation", "location", "retry-after"} <= set(response.headers)
    status = response.headers["azure-asyncoperation"]
    before = time.time()
    run_status = get_template(env.url, "runner").json()["properties"]["lastRunStatus"]
    assert run_status["runState"] == "Running" and run_status["runSubState"] == "Queued"
    assert run_status["startTime"].endswith("Z")
    # This server runs no builds: the run is not claimed and stays queued (workers poll every 0.5 s).
    time.sleep(max(0.0, 1.2 - (time.time() - before)))
    assert httpx.get(status).json()["status"] == "InProgress"
    assert get_template(env.url, "runner").json()["properties"]["lastRunStatus"]["runSubState"] == "Queued"

    assert_arm_error(action(env.url, "runner", "run"), 409, "OperationNotAllowed", mentions="already has a run")
    error = assert_arm_error(httpx.delete(template_url(env.url, "runner"), params={"api-version": API}), 409,
                             "OperationNotAllowed", mentions="cancel")
    assert "run in progress" in error["message"]

    response = action(env.url, "runner", "cancel")
    assert response.status_code == 202, response.text
    assert "azure-asyncoperation" in response.headers
    assert get_template(env.url, "runner").json()["properties"]["lastRunStatus"]["runState"] == "Canceling"
    assert_arm_error(action(env.url, "runner", "cancel"), 409, mentions="already being canceled")
    assert_arm_error(action(env.url, "runner", "run"), 409, mentions="already has a run")
    assert_arm_error(httpx.delete(template_url(env.url, "runner"), params={"api-version": API}), 409)
    # Updating tags while a run is queued keeps its status.
    assert httpx.patch(template_url(env.url, "runner"), params={"api-version": API},
                       json={"tags": {"a": "b"}}).status_code == 200
    assert wait_template(env.url, "runner")["properties"]["lastRunStatus"]["runState"] == "Canceling"


def test_run_through_the_sdk_and_unknown_templates(env, builder):
    templates = builder.virtual_machine_image_templates
    templates.begin_create_or_update(RG, "sdk-run", body_with(env.chain)).result()
    templates.begin_run(RG, "sdk-run", polling=False)
    status = templates.get(RG, "sdk-run").properties.last_run_status
    assert status.run_state == "Running" and status.run_sub_state == "Queued" and status.start_time is not None
    templates.begin_cancel(RG, "sdk-run", polling=False)
    assert templates.get(RG, "sdk-run").properties.last_run_status.run_state == "Canceling"
    for verb in ("run", "cancel"):
        assert_arm_error(action(env.url, "nope", verb), 404)
    assert_arm_error(httpx.get(f"{template_url(env.url, 'nope')}/runOutputs", params={"api-version": API}), 404)


def test_run_outputs_list_and_get(env, builder):
    templates = builder.virtual_machine_image_templates
    templates.begin_create_or_update(RG, "outputs", body_with(env.chain)).result()
    assert list(templates.list_run_outputs(RG, "outputs")) == []
    listed = httpx.get(f"{template_url(env.url, 'outputs')}/runOutputs", params={"api-version": API})
    assert listed.status_code == 200 and listed.json() == {"value": []}
    with pytest.raises(ResourceNotFoundError):
        templates.get_run_output(RG, "outputs", "managed")
    assert_arm_error(httpx.get(f"{template_url(env.url, 'outputs')}/runoutputs/managed",
                               params={"api-version": API}), 404, mentions="managed")

    # What the build pipeline records when a run distributes (written here through the store).
    with env.app.state.store.write() as tx:
        tx.save_run_output(template_id("outputs"), RunOutput(
            name="managed", provisioning_state="Succeeded", artifact_id=env.chain.out_image))
        tx.save_run_output(template_id("outputs"), RunOutput(
            name="vhd", provisioning_state="Succeeded", artifact_uri="https://example.com/x.vhd"))
    outputs = {o.name: o for o in templates.list_run_outputs(RG, "outputs")}
    assert set(outputs) == {"managed", "vhd"}
    assert outputs["vhd"].properties.artifact_uri == "https://example.com/x.vhd"
    got = templates.get_run_output(RG, "outputs", "MANAGED")
    assert got.id == template_id("outputs") + "/runOutputs/managed"
    assert got.type == TEMPLATE_TYPE + "/runOutputs"
    assert got.properties.artifact_id == env.chain.out_image and got.properties.provisioning_state == "Succeeded"

    # Deleting the template deletes its run outputs: a new template of that name starts empty.
    templates.begin_delete(RG, "outputs").result()
    templates.begin_create_or_update(RG, "outputs", body_with(env.chain)).result()
    assert list(templates.list_run_outputs(RG, "outputs")) == []
