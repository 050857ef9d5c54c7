"""Resource-group deployments (Microsoft.Resources/deployments) and the Microsoft.Network types
`az vm create`'s template makes.

How we know: the template engine is run on real templates — the one az 2.91 builds for
`az vm create` (captured from `az vm create --debug`), a `--count`-style copy loop, templates
with parameters, variables and reference() — and its plan and evaluated bodies are checked.
Deployments then run against a real server through azure-mgmt-resource with the admin's token, and
with plain HTTP as principals with narrower roles; what they made (or did not) is read back.
"""

from __future__ import annotations

import asyncio
import socket
import time
import uuid

import httpx
import pytest
from azure.mgmt.resource import ResourceManagementClient

from galley.deployments import engine
from galley.deployments.expressions import TemplateError, evaluate
from galley.deployments.template import Context, Template, waves

from . import admin_http
from .conftest import AdminBearer, AdminCredential
from .sdk_helpers import GALLERY_API, RESOURCES_API, make_group
from .servers import SUBSCRIPTION, kill_machines_under
from .test_access import ROLES_API, assign, principal, sign_in

RG = "deployrg"
NETWORK_API = "2024-07-01"
GROUP_PATH = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/{RG}"


def az_vm_template(sub: str = SUBSCRIPTION, rg: str = RG, image_id: str | None = None) -> dict:
    """The template `az vm create -g rg -n vm1 --image img --admin-username azureuser
    --ssh-key-values key.pub --size Standard_B1s` sends (azure-cli 2.91.0), word for word."""
    net = f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Network"
    image_id = image_id or f"/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Compute/images/img"
    return {
        "$schema": "https://schema.management.azure.com/schemas/2015-01-01/deploymentTemplate.json#",
        "contentVersion": "1.0.0.0", "parameters": {}, "variables": {},
        "resources": [
            {"name": "vm1VNET", "type": "Microsoft.Network/virtualNetworks", "location": "eastus",
             "apiVersion": "2015-06-15", "dependsOn": [], "tags": {},
             "properties": {"addressSpace": {"addressPrefixes": ["10.0.0.0/16"]},
                            "subnets": [{"name": "vm1Subnet", "properties": {"addressPrefix": "10.0.0.0/24"}}]}},
            {"type": "Microsoft.Network/networkSecurityGroups", "name": "vm1NSG", "apiVersion": "2015-06-15",
             "location": "eastus", "tags": {}, "dependsOn": [],
             "properties": {"securityRules": [{"name": "default-allow-ssh", "properties": {
                 "protocol": "Tcp", "sourcePortRange": "*", "destinationPortRange": "22", "sourceAddressPrefix": "*",
                 "destinationAddressPrefix": "*", "access": "Allow", "priority": 1000, "direction": "Inbound"}}]}},
            {"apiVersion": "2022-01-01", "type": "Microsoft.Network/publicIPAddresses", "name": "vm1PublicIP",
             "location": "eastus", "tags": {}, "dependsOn": [],
             "properties": {"publicIPAllocationMethod": "Static"}, "sku": {"name": "Standard"}},
            {"apiVersion": "2015-06-15", "type": "Microsoft.Network/networkInterfaces", "name": "vm1VMNic",
             "location": "eastus", "tags": {},
             "dependsOn": ["Microsoft.Network/virtualNetworks/vm1VNET", "Microsoft.Network/networkSecurityGroups/vm1NSG",
                           "Microsoft.Network/publicIpAddresses/vm1PublicIP"],
             "properties": {"ipConfigurations": [{"name": "ipconfigvm1", "properties": {
                 "privateIPAllocationMethod": "Dynamic", "subnet": {"id": f"{net}/virtualNetworks/vm1VNET/subnets/vm1Subnet"},
                 "publicIPAddress": {"id": f"{net}/publicIPAddresses/vm1PublicIP"}}}],
                 "networkSecurityGroup": {"id": f"{net}/networkSecurityGroups/vm1NSG"}}},
            {"apiVersion": "2026-04-01", "type": "Microsoft.Compute/virtualMachines", "name": "vm1", "location": "eastus",
             "tags": {}, "dependsOn": ["Microsoft.Network/networkInterfaces/vm1VMNic"],
             "properties": {
                 "hardwareProfile": {"vmSize": "Standard_B1s"},
                 "networkProfile": {"networkInterfaces": [{"id": f"{net}/networkInterfaces/vm1VMNic",
                                                           "properties": {"deleteOption": None}}]},
                 "storageProfile": {"osDisk": {"createOption": "fromImage", "name": None, "caching": "ReadWrite",
                                               "managedDisk": {"storageAccountType": None}},
                                    "imageReference": {"id": image_id}},
                 "osProfile": {"computerName": "vm1", "adminUsername": "azureuser", "linuxConfiguration": {
                     "disablePasswordAuthentication": True, "ssh": {"publicKeys": [{
                         "keyData": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFuRI7YOZqJTAUGrGQq/WO7fhuBk7Ip46CR4LIp7eToj t\n",
                         "path": "/home/azureuser/.ssh/authorized_keys"}]}}}}},
        ],
        "outputs": {},
    }


def network_template() -> dict:
    """az's template without the VM: what Galley can deploy with network types alone."""
    template = az_vm_template()
    template["resources"] = template["resources"][:4]
    return template


def _context(**extra) -> Context:
    return Context(subscription_id=SUBSCRIPTION, resource_group=RG, location="eastus",
                   deployment_name="d1", **extra)


def _template(template: dict, parameters: dict | None = None) -> Template:
    return Template(template, parameters, _context(), engine.DEPLOYABLE_TYPES)


async def _plan(template: dict, parameters: dict | None = None):
    prepared = _template(template, parameters)
    await prepared.bind_parameters()
    return prepared, await prepared.plan()


def run(coroutine):
    return asyncio.run(coroutine)


# --------------------------------------------------------------------------- the engine, no server

def test_az_vm_create_template_plans_network_first_then_nic_then_vm():
    template, plan = run(_plan(az_vm_template()))
    order = [[p.name for p in wave] for wave in waves(plan)]
    assert order == [["vm1VNET", "vm1NSG", "vm1PublicIP"], ["vm1VMNic"], ["vm1"]]
    nic = next(p for p in plan if p.name == "vm1VMNic")
    assert nic.id == f"{GROUP_PATH}/providers/Microsoft.Network/networkInterfaces/vm1VMNic"
    # dependsOn spelled publicIpAddresses still finds publicIPAddresses/vm1PublicIP
    assert f"{GROUP_PATH}/providers/Microsoft.Network/publicIPAddresses/vm1PublicIP".lower() in nic.depends_on
    vm = next(p for p in plan if p.name == "vm1")
    body = run(template.body_of(vm))
    assert set(body) == {"location", "tags", "properties"} and body["location"] == "eastus"
    assert body["properties"]["hardwareProfile"] == {"vmSize": "Standard_B1s"}


def test_expressions_parameters_variables_and_functions():
    template = {
        "parameters": {"prefix": {"type": "string", "defaultValue": "web"},
                       "count": {"type": "int", "defaultValue": 2},
                       "secret": {"type": "securestring"}},
        "variables": {"vnetName": "[concat(parameters('prefix'), '-vnet')]",
                      "vnetId": "[resourceId('Microsoft.Network/virtualNetworks', variables('vnetName'))]",
                      "list": "[createArray('a', 'b', 'c')]"},
        "resources": [],
    }
    prepared = _template(template, {"secret": {"value": "s3cret!"}, "prefix": {"value": "App"}})
    run(prepared.bind_parameters())
    scope = prepared._scope()
    assert run(evaluate("[variables('vnetName')]", scope)) == "App-vnet"
    assert run(evaluate("[variables('vnetId')]", scope)) == \
        f"{GROUP_PATH}/providers/Microsoft.Network/virtualNetworks/App-vnet"
    assert run(evaluate("[toLower(resourceGroup().name)]", scope)) == RG.lower()
    assert run(evaluate("[resourceGroup().location]", scope)) == "eastus"
    assert run(evaluate("[variables('list')[1]]", scope)) == "b"
    assert run(evaluate("[if(equals(parameters('count'), 2), 'two', 'other')]", scope)) == "two"
    assert run(evaluate("[format('{0}-{1}', 'a', add(parameters('count'), 1))]", scope)) == "a-3"
    assert run(evaluate("[concat('it''s ', string(length(variables('list'))))]", scope)) == "it's 3"
    assert run(evaluate("[[not an expression]", scope)) == "[not an expression]"
    assert run(evaluate({"nested": ["[parameters('secret')]"]}, scope)) == {"nested": ["s3cret!"]}
    assert run(evaluate("[resourceId('other', 'Microsoft.Compute/galleries/images', 'g', 'd')]", scope)) == \
        f"/subscriptions/{SUBSCRIPTION}/resourceGroups/other/providers/Microsoft.Compute/galleries/g/images/d"


def test_copy_loops_as_az_vm_create_count_builds_them():
    template = {"resources": [
        {"type": "Microsoft.Network/publicIPAddresses", "apiVersion": "2022-01-01", "location": "eastus",
         "name": "[concat('pip', copyIndex())]", "copy": {"name": "publicipcopy", "mode": "parallel", "count": 3},
         "properties": {"publicIPAllocationMethod": "Dynamic"}},
        {"type": "Microsoft.Network/networkSecurityGroups", "apiVersion": "2015-06-15", "location": "eastus",
         "name": "nsg", "dependsOn": ["publicipcopy"], "properties": {"securityRules": []}},
    ]}
    _, plan = run(_plan(template))
    order = [[p.name for p in wave] for wave in waves(plan)]
    assert order == [["pip0", "pip1", "pip2"], ["nsg"]]


@pytest.mark.parametrize("template, parameters, mentions", [
    ({"resources": [{"type": "Microsoft.Sql/servers", "apiVersion": "2021-11-01", "name": "db"}]}, None,
     "Microsoft.Sql/servers"),
    ({"resources": [{"type": "Microsoft.Compute/galleries", "apiVersion": "2022-03-03", "location": "eastus",
                     "name": "[uniqueString(resourceGroup().id)]"}]}, None, "uniqueString"),
    ({"parameters": {"name": {"type": "string"}}, "resources": []}, None, "'name' is not provided"),
    ({"parameters": {}, "resources": []}, {"extra": {"value": 1}}, "extra"),
    ({"parameters": {"n": {"type": "int"}}, "resources": []}, {"n": {"value": "x"}}, "must be of type int"),
    ({"resources": [{"type": "Microsoft.Compute/galleries", "apiVersion": "2022-03-03", "name": "a",
                     "dependsOn": ["b"]},
                    {"type": "Microsoft.Compute/galleries", "apiVersion": "2022-03-03", "name": "b",
                     "dependsOn": ["a"]}]}, None, "Circular dependency"),
    ({"resources": [{"type": "Microsoft.Compute/galleries", "apiVersion": "2022-03-03", "name": "a",
                     "dependsOn": ["nowhere"]}]}, None, "'nowhere' is not defined"),
    ({"resources": [{"type": "Microsoft.Compute/galleries", "apiVersion": "2022-03-03",
                     "name": "[concat('a', ]"}]}, None, "is not valid"),
    ({"resources": [{"type": "Microsoft.Compute/galleries/images", "apiVersion": "2022-03-03",
                     "name": "onlygallery"}]}, None, "needs 2 segment"),
])
def test_bad_templates_are_refused_before_anything_runs(template, parameters, mentions):
    with pytest.raises(TemplateError) as refused:
        _prepared, plan = run(_plan(template, parameters))
        waves(plan)
    assert mentions in refused.value.message
    assert refused.value.status == 400


def test_a_secure_parameter_is_never_kept_or_echoed():
    from galley.deployments.records import shown_parameters
    template = {"parameters": {"adminPassword": {"type": "securestring"}, "size": {"type": "string"}}}
    shown = shown_parameters({"adminPassword": {"value": "Pa55w0rd!"}, "size": {"value": "B1s"}}, template)
    assert shown == {"adminPassword": {"type": "SecureString"}, "size": {"type": "String", "value": "B1s"}}
    with pytest.raises(TemplateError) as refused:
        run(_plan({"parameters": {"p": {"type": "securestring", "allowedValues": ["a"]}}, "resources": []},
                  {"p": {"value": "Pa55w0rd!"}}))
    assert "Pa55w0rd!" not in refused.value.message


# --------------------------------------------------------------------------- through a server

def resource_client(url: str) -> ResourceManagementClient:
    return ResourceManagementClient(AdminCredential(url), SUBSCRIPTION, base_url=url,
                                    authentication_policy=AdminBearer(url), polling_interval=0.2)


def deployment_url(url: str, name: str) -> str:
    return f"{url}{GROUP_PATH}/providers/Microsoft.Resources/deployments/{name}?api-version={RESOURCES_API}"


def wait_ended(url: str, name: str, token: str | None = None, timeout: float = 30) -> dict:
    get = (lambda u: httpx.get(u, headers={"Authorization": f"Bearer {token}"})) if token else admin_http.get
    deadline = time.monotonic() + timeout
    while True:
        body = get(deployment_url(url, name)).json()
        if body["properties"]["provisioningState"] in ("Succeeded", "Failed", "Canceled"):
            return body
        assert time.monotonic() < deadline, body
        time.sleep(0.1)


def settled(response: httpx.Response, timeout: float = 30) -> httpx.Response:
    """The response, after its long-running operation (if it answered with one) has succeeded."""
    status_url = response.headers.get("Azure-AsyncOperation")
    deadline = time.monotonic() + timeout
    while status_url:
        status = admin_http.get(status_url).json()["status"]
        if status != "InProgress":
            assert status == "Succeeded", status
            break
        assert time.monotonic() < deadline
        time.sleep(0.1)
    return response


def gallery_template() -> dict:
    """Galleries and definitions (types Galley has always had) with parameters, variables,
    resourceId, dependsOn, a nested child resource and outputs that use reference()."""
    return {
        "$schema": "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#",
        "contentVersion": "1.0.0.0",
        "parameters": {"galleryName": {"type": "string"},
                       "location": {"type": "string", "defaultValue": "[resourceGroup().location]"}},
        "variables": {"definition": "[concat(parameters('galleryName'), '/linux')]"},
        "resources": [
            {"type": "Microsoft.Compute/galleries", "apiVersion": GALLERY_API, "name": "[parameters('galleryName')]",
             "location": "[parameters('location')]", "properties": {"description": "from a template"},
             "resources": [{"type": "images", "apiVersion": GALLERY_API, "name": "windows",
                            "location": "[parameters('location')]",
                            "properties": {"osType": "Windows", "osState": "Generalized",
                                           "identifier": {"publisher": "p", "offer": "o", "sku": "w"}}}]},
            {"type": "Microsoft.Compute/galleries/images", "apiVersion": GALLERY_API, "name": "[variables('definition')]",
             "location": "[parameters('location')]",
             "dependsOn": ["[resourceId('Microsoft.Compute/galleries', parameters('galleryName'))]"],
             "properties": {"osType": "Linux", "osState": "Generalized", "hyperVGeneration": "V2",
                            "identifier": {"publisher": "p", "offer": "o", "sku": "l"}}},
        ],
        "outputs": {
            "definitionId": {"type": "string", "value": "[resourceId('Microsoft.Compute/galleries/images', "
                                                        "parameters('galleryName'), 'linux')]"},
            "osType": {"type": "string", "value": "[reference(resourceId('Microsoft.Compute/galleries/images', "
                                                  "parameters('galleryName'), 'linux')).osType]"},
        },
    }


def test_a_deployment_through_azure_mgmt_resource_makes_every_resource(sqlite_server):
    url = sqlite_server.url
    make_group(url, RG)
    client = resource_client(url)
    poller = client.deployments.begin_create_or_update(RG, "galleries", {"properties": {
        "mode": "Incremental", "template": gallery_template(), "parameters": {"galleryName": {"value": "tmplGal"}}}})
    result = poller.result()
    assert result.properties.provisioning_state == "Succeeded"
    assert result.properties.outputs["osType"]["value"] == "Linux"
    definition = f"{GROUP_PATH}/providers/Microsoft.Compute/galleries/tmplGal/images/linux"
    assert result.properties.outputs["definitionId"]["value"] == definition
    assert sorted(r.id for r in result.properties.output_resources) == sorted([
        f"{GROUP_PATH}/providers/Microsoft.Compute/galleries/tmplGal", definition,
        f"{GROUP_PATH}/providers/Microsoft.Compute/galleries/tmplGal/images/windows"])
    made = admin_http.get(f"{url}{definition}?api-version={GALLERY_API}").json()
    assert made["properties"]["hyperVGeneration"] == "V2" and made["location"] == "eastus"
    windows = admin_http.get(f"{url}{GROUP_PATH}/providers/Microsoft.Compute/galleries/tmplGal/images/windows"
                             f"?api-version={GALLERY_API}").json()
    assert windows["properties"]["osType"] == "Windows"

    operations = list(client.deployment_operations.list(RG, "galleries"))
    assert {o.properties.target_resource.resource_name for o in operations} == {
        "tmplGal", "tmplGal/linux", "tmplGal/windows"}
    assert all(o.properties.provisioning_state == "Succeeded" for o in operations)
    assert [d.name for d in client.deployments.list_by_resource_group(RG)] == ["galleries"]
    client.deployments.begin_delete(RG, "galleries").result()
    assert list(client.deployments.list_by_resource_group(RG)) == []
    # deleting a deployment leaves what it made
    assert admin_http.get(f"{url}{definition}?api-version={GALLERY_API}").status_code == 200


def test_az_vm_create_network_resources_as_az_reads_them(sqlite_server):
    url = sqlite_server.url
    make_group(url, RG)
    response = admin_http.put(deployment_url(url, "vm_deploy_x"), json={"properties": {
        "mode": "incremental", "template": network_template(), "parameters": {}}})
    assert response.status_code == 201, response.text
    assert "/operationStatuses/" in response.headers["Azure-AsyncOperation"]
    assert wait_ended(url, "vm_deploy_x")["properties"]["provisioningState"] == "Succeeded"
    net = f"{url}{GROUP_PATH}/providers/Microsoft.Network"
    nic = admin_http.get(f"{net}/networkInterfaces/vm1VMNic?api-version={NETWORK_API}").json()
    assert nic["name"] == "vm1VMNic"
    [config] = nic["properties"]["ipConfigurations"]
    # the one address that is true for every Galley guest (QEMU user networking); no MAC is made up
    assert config["properties"]["privateIPAddress"] == "10.0.2.15" and config["properties"]["primary"] is True
    assert "macAddress" not in nic["properties"]
    public = admin_http.get(f"{net}/publicIPAddresses/vm1PublicIP?api-version={NETWORK_API}").json()
    assert public["sku"]["name"] == "Standard" and public["properties"]["publicIPAllocationMethod"] == "Static"
    assert "ipAddress" not in public["properties"]  # Galley has no public address to give
    vnets = admin_http.get(f"{net}/virtualNetworks?api-version=2022-01-01").json()["value"]
    assert [(v["name"], [s["name"] for s in v["properties"]["subnets"]]) for v in vnets] == [("vm1VNET", ["vm1Subnet"])]
    nsg = admin_http.get(f"{net}/networkSecurityGroups/vm1NSG?api-version={NETWORK_API}").json()
    assert [r["properties"]["destinationPortRange"] for r in nsg["properties"]["securityRules"]] == ["22"]

    # sent again (as a second `az vm create` into the group would): every resource is updated in place
    again = admin_http.put(deployment_url(url, "vm_deploy_y"), json={"properties": {
        "mode": "Incremental", "template": network_template()}})
    assert again.status_code == 201, again.text
    assert wait_ended(url, "vm_deploy_y")["properties"]["provisioningState"] == "Succeeded"
    assert admin_http.get(f"{net}/networkInterfaces/vm1VMNic?api-version={NETWORK_API}").json()[
        "properties"]["resourceGuid"] == nic["properties"]["resourceGuid"]

    # subnets are child resources of their network
    subnets = f"{net}/virtualNetworks/vm1VNET/subnets"
    added = settled(admin_http.put(f"{subnets}/second?api-version={NETWORK_API}",
                                   json={"properties": {"addressPrefixes": ["10.0.1.0/24"]}}))
    assert added.status_code == 201, added.text
    second = admin_http.get(f"{subnets}/second?api-version={NETWORK_API}").json()
    assert second["properties"]["addressPrefix"] == "10.0.1.0/24"
    outside = admin_http.put(f"{subnets}/third?api-version={NETWORK_API}",
                             json={"properties": {"addressPrefix": "10.1.0.0/24"}})
    assert outside.status_code == 400 and outside.json()["error"]["code"] == "NetcfgSubnetRangeOutsideVnet"
    listed = admin_http.get(f"{subnets}?api-version={NETWORK_API}").json()["value"]
    assert [s["name"] for s in listed] == ["vm1Subnet", "second"]
    assert settled(admin_http.delete(f"{subnets}/second?api-version={NETWORK_API}")).status_code in (200, 202)
    assert admin_http.get(f"{subnets}/second?api-version={NETWORK_API}").status_code == 404
    assert admin_http.get(f"{subnets}/vm1Subnet?api-version={NETWORK_API}").json()["name"] == "vm1Subnet"

    # a NIC on a subnet that does not exist is refused, naming it
    refused = admin_http.put(f"{net}/networkInterfaces/bad?api-version={NETWORK_API}", json={
        "location": "eastus", "properties": {"ipConfigurations": [{"name": "c", "properties": {
            "subnet": {"id": f"{GROUP_PATH}/providers/Microsoft.Network/virtualNetworks/vm1VNET/subnets/none"}}}]}})
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "InvalidResourceReference"
    static = admin_http.put(f"{net}/networkInterfaces/bad?api-version={NETWORK_API}", json={
        "location": "eastus", "properties": {"ipConfigurations": [{"name": "c", "properties": {
            "privateIPAllocationMethod": "Static", "privateIPAddress": "10.0.0.7",
            "subnet": {"id": f"{GROUP_PATH}/providers/Microsoft.Network/virtualNetworks/vm1VNET/subnets/vm1Subnet"}}}]}})
    assert static.status_code == 400 and "10.0.2.15" in static.json()["error"]["message"]


def test_a_failed_resource_fails_the_deployment_with_its_error_and_skips_what_depends_on_it(sqlite_server):
    url = sqlite_server.url
    make_group(url, RG)
    template = network_template()
    template["resources"][0]["properties"]["subnets"][0]["properties"]["addressPrefix"] = "192.168.0.0/24"
    admin_http.put(deployment_url(url, "broken"), json={"properties": {"mode": "Incremental", "template": template}})
    ended = wait_ended(url, "broken")
    error = ended["properties"]["error"]
    assert ended["properties"]["provisioningState"] == "Failed" and error["code"] == "DeploymentFailed"
    assert [(d["code"], d["target"].rsplit("/", 1)[1]) for d in error["details"]] == [
        ("NetcfgSubnetRangeOutsideVnet", "vm1VNET")]
    operations = admin_http.get(f"{url}{GROUP_PATH}/deployments/broken/operations?api-version={RESOURCES_API}").json()["value"]
    states = {o["properties"]["targetResource"]["resourceName"]: o["properties"]["provisioningState"] for o in operations}
    assert states == {"vm1VNET": "Failed", "vm1NSG": "Succeeded", "vm1PublicIP": "Succeeded"}  # the NIC never ran
    net = f"{url}{GROUP_PATH}/providers/Microsoft.Network"
    assert admin_http.get(f"{net}/networkInterfaces/vm1VMNic?api-version={NETWORK_API}").status_code == 404


def test_bad_templates_answer_400_and_record_nothing(sqlite_server):
    url = sqlite_server.url
    make_group(url, RG)
    for name, template in (("unknown-type", {"resources": [{"type": "Microsoft.Web/sites", "apiVersion": "2022-03-01",
                                                            "name": "site", "location": "eastus"}]}),
                           ("unknown-function", {"resources": [], "outputs": {"o": {
                               "type": "string", "value": "[newGuid()]"}}})):
        response = admin_http.put(deployment_url(url, name), json={"properties": {"mode": "Incremental",
                                                                                   "template": template}})
        assert response.status_code == 400, response.text
        assert response.json()["error"]["code"] in ("InvalidTemplate", "NoRegisteredProviderFound")
        assert ("Microsoft.Web/sites" if name == "unknown-type" else "newGuid") in response.json()["error"]["message"]
        assert admin_http.get(deployment_url(url, name)).status_code == 404
    complete = admin_http.put(deployment_url(url, "complete"), json={"properties": {"mode": "Complete",
                                                                                     "template": {"resources": []}}})
    assert complete.status_code == 400 and complete.json()["error"]["target"] == "properties.mode"
    valid = admin_http.post(deployment_url(url, "v").replace("?", "/validate?"), json={"properties": {
        "mode": "Incremental", "template": network_template()}})
    assert valid.status_code == 200, valid.text
    assert len(valid.json()["properties"]["validatedResources"]) == 4
    assert admin_http.get(deployment_url(url, "v")).status_code == 404


def test_a_run_whose_process_ended_reads_as_failed_and_can_be_sent_again(sqlite_server):
    from galley.deployments import records
    url = sqlite_server.url
    make_group(url, RG)
    store = sqlite_server.app.state.service.store
    record = records.begin(store, SUBSCRIPTION, RG, "orphan", {"mode": "Incremental"})
    with store.write() as tx:  # as if the server that ran it had been killed
        row = tx.get(record.id)
        row.properties["_runner"] = f"{socket.gethostname()}:999999999"
        tx.save(row)
    shown = admin_http.get(deployment_url(url, "orphan")).json()
    assert shown["properties"]["provisioningState"] == "Failed"
    assert shown["properties"]["error"]["code"] == "DeploymentInterrupted"
    assert "_runner" not in shown["properties"] and "_operations" not in shown["properties"]
    not_running = admin_http.post(deployment_url(url, "orphan").replace("?", "/cancel?"))
    assert not_running.status_code == 409 and not_running.json()["error"]["code"] == "DeploymentNotActive"
    again = admin_http.put(deployment_url(url, "orphan"), json={"properties": {"mode": "Incremental",
                                                                               "template": network_template()}})
    assert again.status_code == 200, again.text  # replaces the ended run
    assert wait_ended(url, "orphan")["properties"]["provisioningState"] == "Succeeded"


def _custom_role(url: str, actions: list[str]) -> str:
    role_id = str(uuid.uuid4())
    made = admin_http.put(f"{url}/subscriptions/{SUBSCRIPTION}/providers/Microsoft.Authorization/roleDefinitions/"
                          f"{role_id}?{ROLES_API}", json={"properties": {
                              "roleName": f"deployer-{role_id[:6]}", "description": "deploys, reads",
                              "permissions": [{"actions": actions}],
                              "assignableScopes": [f"/subscriptions/{SUBSCRIPTION}"]}})
    assert made.status_code == 201, made.text
    return role_id


def test_each_resource_is_authorized_as_the_caller(sqlite_server):
    url = sqlite_server.url
    make_group(url, RG)
    reader = principal(url)
    assign(url, GROUP_PATH, "acdd72a7-3385-48ef-bd42-f606fba81ae7", reader["id"])
    reader_token = sign_in(url, reader)
    body = {"properties": {"mode": "Incremental", "template": network_template()}}
    refused = httpx.put(deployment_url(url, "as-reader"), json=body,
                        headers={"Authorization": f"Bearer {reader_token}"})
    assert refused.status_code == 403 and "Microsoft.Resources/deployments/write" in refused.text

    # May deploy and read, and write security groups only: every other resource is refused on its own.
    deployer = principal(url)
    assign(url, GROUP_PATH, _custom_role(url, ["*/read", "Microsoft.Resources/deployments/*",
                                                "Microsoft.Network/networkSecurityGroups/write"]), deployer["id"])
    token = sign_in(url, deployer)
    started = httpx.put(deployment_url(url, "as-deployer"), json=body, headers={"Authorization": f"Bearer {token}"})
    assert started.status_code == 201, started.text
    ended = wait_ended(url, "as-deployer", token)
    assert ended["properties"]["provisioningState"] == "Failed"
    details = {d["target"].rsplit("/", 1)[1]: d["code"] for d in ended["properties"]["error"]["details"]}
    assert details == {"vm1VNET": "AuthorizationFailed", "vm1PublicIP": "AuthorizationFailed"}
    net = f"{url}{GROUP_PATH}/providers/Microsoft.Network"
    assert admin_http.get(f"{net}/networkSecurityGroups/vm1NSG?api-version={NETWORK_API}").status_code == 200
    for path in ("virtualNetworks/vm1VNET", "publicIPAddresses/vm1PublicIP", "networkInterfaces/vm1VMNic"):
        assert admin_http.get(f"{net}/{path}?api-version={NETWORK_API}").status_code == 404, path


# --------------------------------------------------------------------------- the real az

@pytest.fixture(scope="module")
def https_server(tmp_path_factory):
    from .test_az_cli import HttpsServer
    with pytest.MonkeyPatch.context() as env:
        # the guest (an empty disk here) is not waited for: this is about the deployment
        env.setenv("GALLEY_QEMU_ACCEL", "tcg")
        env.setenv("GALLEY_VM_PROVISIONING_TIMEOUT", "0")
        env.setenv("GALLEY_VM_STOP_GRACE", "2")
        running = HttpsServer(tmp_path_factory.mktemp("galley-home")).start()
    yield running
    running.stop()
    assert not kill_machines_under(running.home), "a VM was left running"


@pytest.mark.slow
def test_az_vm_create_deploys_its_template(https_server, tmp_path, monkeypatch):
    from . import test_az_cli
    from .test_az_cli import AZ, SUBSCRIPTION_A, new_az
    if not AZ.exists():
        pytest.skip(f"the Azure CLI is not installed at {AZ}")
    # the VM boots under TCG on a shared machine: its create may take minutes there
    monkeypatch.setattr(test_az_cli, "AZ_TIMEOUT", 900)
    az = new_az(https_server, tmp_path / "az", https_server.credentials)
    key = tmp_path / "key.pub"
    key.write_text("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFuRI7YOZqJTAUGrGQq/WO7fhuBk7Ip46CR4LIp7eToj test\n")
    az.run("group", "create", "-n", "rg", "-l", "eastus", "-o", "none")
    # An image of an empty disk is enough here: this test is about the deployment, not the guest.
    az.run("disk", "create", "-g", "rg", "-n", "empty", "--size-gb", "1", "-o", "none")
    az.run("image", "create", "-g", "rg", "-n", "img", "--source", "empty", "--os-type", "linux", "-o", "none")
    common = ("--image", "img", "--admin-username", "azureuser", "--ssh-key-values", str(key), "--size", "Standard_B1s")
    try:
        vm = az.json("vm", "create", "-g", "rg", "-n", "vm1", *common)
        assert vm["id"].endswith("/virtualMachines/vm1") and vm["privateIpAddress"] == "10.0.2.15"
        assert vm["publicIpAddress"] == "" and vm["powerState"] == "VM running"
        [deployment] = az.json("deployment", "group", "list", "-g", "rg")
        assert deployment["name"].startswith("vm_deploy_") and deployment["properties"]["provisioningState"] == "Succeeded"
        operations = az.json("deployment", "operation", "group", "list", "-g", "rg", "-n", deployment["name"])
        assert sorted(o["properties"]["targetResource"]["resourceType"] for o in operations) == [
            "Microsoft.Compute/virtualMachines", "Microsoft.Network/networkInterfaces",
            "Microsoft.Network/networkSecurityGroups", "Microsoft.Network/publicIPAddresses",
            "Microsoft.Network/virtualNetworks"]
        [vnet] = az.json("network", "vnet", "list", "-g", "rg")
        assert vnet["name"] == "vm1VNET" and [s["name"] for s in vnet["subnets"]] == ["vm1Subnet"]
        nic = az.json("network", "nic", "show", "-g", "rg", "-n", "vm1VMNic")
        assert nic["ipConfigurations"][0]["privateIPAddress"] == "10.0.2.15"
        assert nic["networkSecurityGroup"]["id"].endswith("/networkSecurityGroups/vm1NSG")
        public_ip = az.json("network", "public-ip", "show", "-g", "rg", "-n", "vm1PublicIP")
        assert "ipAddress" not in public_ip and public_ip["sku"]["name"] == "Standard"

        # An existing network with a new subnet: az creates the subnet itself, then deploys.
        validated = az.json("vm", "create", "-g", "rg", "-n", "vm4", "--vnet-name", "vm1VNET", "--subnet", "second",
                            "--subnet-address-prefix", "10.0.1.0/24", *common, "--validate")
        assert validated["properties"]["provisioningState"] == "Succeeded"
        subnet = az.json("network", "vnet", "subnet", "show", "-g", "rg", "--vnet-name", "vm1VNET", "-n", "second")
        assert subnet["addressPrefix"] == "10.0.1.0/24"

        # The trimmed templates: no public IP and no NSG (the existing VNet is reused); an existing NIC;
        # a --count copy loop. Validated, not run (each would boot a VM).
        for extra, expected in (
                (("-n", "vm2", "--public-ip-address", "", "--nsg", ""), ["networkInterfaces/vm2VMNic", "virtualMachines/vm2"]),
                (("-n", "vm3", "--nics", nic["id"]), ["virtualMachines/vm3"]),
                (("-n", "vmc", "--count", "2"), ["networkSecurityGroups/vmcNSG", "publicIPAddresses/vmcPublicIP0",
                                                 "publicIPAddresses/vmcPublicIP1", "networkInterfaces/vmcVMNic0",
                                                 "networkInterfaces/vmcVMNic1", "virtualMachines/vmc0",
                                                 "virtualMachines/vmc1"])):
            validated = az.json("vm", "create", "-g", "rg", *extra, *common, "--validate")
            assert validated["properties"]["provisioningState"] == "Succeeded"
            assert ["/".join(r["id"].split("/")[-2:]) for r in validated["properties"]["validatedResources"]] == expected
        assert len(az.json("deployment", "group", "list", "-g", "rg")) == 1  # validation records nothing
    finally:
        _delete_group(az)  # stops and removes the VM: its QEMU process outlives a stopped server
    assert SUBSCRIPTION_A in vm["id"]


def _delete_group(az, timeout: float = 900) -> None:
    """Delete the group, waiting out a VM that is still being created (409 until then)."""
    from .test_az_cli import AzError
    deadline = time.monotonic() + timeout
    while True:
        try:
            az.run("group", "delete", "-n", "rg", "--yes")
            return
        except AzError:
            assert time.monotonic() < deadline, "the resource group could not be deleted"
            time.sleep(5)
