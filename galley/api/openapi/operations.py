"""What each operation takes and answers, by operationId: request bodies, status codes and the
shapes sent with them. The CRUD and list operations of every ResourceSpec are derived from the
spec (its model, its status codes), so a new resource type is documented by adding its model to
RESOURCE_MODELS; an operation known nowhere here is still documented, with an untyped JSON body
(see document.py), and tests/test_openapi.py names it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ...domain import ids, network
from ..routes.resources import SPECS, ResourceSpec
from . import models as m

BINARY = "binary"  # application/octet-stream
TEXT = "text"  # text/plain
OBJECT = "object"  # a JSON object whose fields are not described
ARRAY = "array"  # a JSON array of objects whose fields are not described


@dataclass(frozen=True)
class Facts:
    """responses: status → a model, BINARY, TEXT, OBJECT, ARRAY, a list [model] or None (no body)."""

    responses: dict[int, Any]
    body: Any = None  # a model, BINARY, or Form(model)
    body_required: bool = True
    patch_body: bool = False  # the body is the model with nothing required (a PATCH)
    oauth_errors: bool = False


@dataclass(frozen=True)
class Form:
    model: type


RESOURCE_MODELS: dict[str, type] = {
    ids.GALLERY_TYPE: m.Gallery,
    ids.IMAGE_DEFINITION_TYPE: m.GalleryImage,
    ids.IMAGE_VERSION_TYPE: m.GalleryImageVersion,
    ids.MANAGED_IMAGE_TYPE: m.Image,
    ids.DISK_TYPE: m.Disk,
    ids.SNAPSHOT_TYPE: m.Snapshot,
    ids.STORAGE_ACCOUNT_TYPE: m.StorageAccount,
    ids.IMAGE_TEMPLATE_TYPE: m.ImageTemplate,
    ids.USER_IDENTITY_TYPE: m.UserAssignedIdentity,
    network.VIRTUAL_NETWORK_TYPE: m.VirtualNetwork,
    network.SECURITY_GROUP_TYPE: m.NetworkSecurityGroup,
    network.PUBLIC_IP_TYPE: m.PublicIPAddress,
    network.NETWORK_INTERFACE_TYPE: m.NetworkInterface,
    ids.VIRTUAL_MACHINE_TYPE: m.VirtualMachine,
}


def resource_facts(spec: ResourceSpec, operation: str) -> Facts | None:
    """The facts of `{spec.operation_prefix}_{operation}`, or None when the spec has no such one."""
    model = RESOURCE_MODELS.get(spec.type, m.Resource)
    if operation == "CreateOrUpdate":
        statuses = {200, spec.update_status, spec.create_status, spec.done_status(True)}
        return Facts({status: model for status in sorted(statuses)}, body=model)
    if operation == "Update":
        return Facts({status: model for status in sorted({200, spec.patch_status})}, body=model, patch_body=True)
    if operation in ("Get", "GetLatest", "GetLatestVersion"):
        return Facts({200: model})
    if operation == "Delete":
        return Facts({status: None for status in sorted({spec.deleted_status, 202, 204})})
    if operation == "List" or operation.startswith("ListBy"):
        return Facts({200: m.page_of(model)})
    if operation == "Upload":
        return Facts({200: model}, body=BINARY)
    if operation == "Download":
        return Facts({200: BINARY, 206: BINARY, 416: None})
    if operation == "GrantAccess":  # beginGetAccess
        return Facts({200: m.AccessUri, 202: None}, body=m.GrantAccessData)
    if operation == "RevokeAccess":  # endGetAccess
        return Facts({200: None, 202: None})
    if operation == "RetryReplication":
        return Facts({202: model})
    return None


def _access_pair(name: str, facts: Facts) -> dict[str, Facts]:
    """Role definitions and assignments are served at the root and below any scope."""
    return {name: facts, name + "AtScope": facts}


_shared_item = Facts({200: m.SharedGalleryItem})
_shared_list = Facts({200: m.page_of(m.SharedGalleryItem)})

FACTS: dict[str, Facts] = {
    # Microsoft.Resources
    "Providers_Get": Facts({200: m.Provider}),
    "Subnets_Get": Facts({200: m.Subnet}),
    "Subnets_List": Facts({200: m.page_of(m.Subnet)}),
    "Subnets_CreateOrUpdate": Facts({200: m.Subnet, 201: m.Subnet, 202: None}, body=m.Subnet),
    "Subnets_Delete": Facts({200: None, 202: None, 204: None}),
    "Deployments_CreateOrUpdate": Facts({200: m.DeploymentExtended, 201: m.DeploymentExtended}, body=m.Deployment),
    "Deployments_Get": Facts({200: m.DeploymentExtended}),
    "Deployments_Delete": Facts({204: None}),
    "Deployments_ListByResourceGroup": Facts({200: m.page_of(m.DeploymentExtended)}),
    "Deployments_Validate": Facts({200: m.DeploymentExtended}, body=m.Deployment),
    "Deployments_Cancel": Facts({204: None}),
    "Deployments_GetOperationStatus": Facts({200: m.DeploymentOperationStatus}),
    "DeploymentOperations_List": Facts({200: m.page_of(m.DeploymentOperation)}),
    "DeploymentOperations_Get": Facts({200: m.DeploymentOperation}),
    "ResourceGroups_CreateOrUpdate": Facts({200: m.ResourceGroup, 201: m.ResourceGroup}, body=m.ResourceGroup),
    "ResourceGroups_Update": Facts({200: m.ResourceGroup}, body=m.ResourceGroupPatch),
    "ResourceGroups_Get": Facts({200: m.ResourceGroup}),
    "ResourceGroups_CheckExistence": Facts({204: None, 404: None}),
    "ResourceGroups_Delete": Facts({200: None, 202: None}),
    "ResourceGroups_List": Facts({200: m.page_of(m.ResourceGroup)}),
    "Subscriptions_ListLocations": Facts({200: m.page_of(m.Location)}),
    "Subscriptions_List": Facts({200: m.page_of(m.Subscription)}),
    "Subscriptions_Get": Facts({200: m.Subscription}),
    "Tenants_List": Facts({200: m.page_of(m.Tenant)}),
    "StorageAccounts_ListKeys": Facts({200: m.StorageAccountKeys}),
    "StorageAccounts_RegenerateKey": Facts({200: m.StorageAccountKeys}, body=m.RegenerateKeyRequest),
    "StorageAccounts_CheckNameAvailability": Facts({200: m.CheckNameAvailabilityResult},
                                                   body=m.CheckNameAvailabilityRequest),
    # long-running operations
    "Operations_GetStatus": Facts({200: m.OperationStatus}),
    "Operations_GetResult": Facts({200: m.Resource, 202: None, 204: None}),
    # virtual machines beyond CRUD
    **{f"VirtualMachines_{action}": Facts({200: None, 202: None})
       for action in ("Start", "PowerOff", "Restart", "Deallocate")},
    "VirtualMachines_Generalize": Facts({200: None}),
    "VirtualMachines_RunCommand": Facts({202: None}, body=m.RunCommandInput),
    "VirtualMachines_InstanceView": Facts({200: m.VirtualMachineInstanceView}),
    "VirtualMachines_RetrieveBootDiagnosticsData": Facts({200: m.BootDiagnosticsUris}),
    "Galley_BootDiagnosticsSerialLog": Facts({200: TEXT}),
    "VirtualMachineSizes_List": Facts({200: m.page_of(m.VirtualMachineSize)}),
    "Usage_List": Facts({200: m.page_of(m.Usage)}),
    # image templates beyond CRUD
    "VirtualMachineImageTemplates_Run": Facts({202: None}),
    "VirtualMachineImageTemplates_Cancel": Facts({202: None}),
    "VirtualMachineImageTemplates_ListRunOutputs": Facts({200: m.page_of(m.RunOutput)}),
    "VirtualMachineImageTemplates_GetRunOutput": Facts({200: m.RunOutput}),
    "VirtualMachineImageTemplates_GetLog": Facts({200: TEXT}),
    # Galley's upkeep
    "Galley_Usage": Facts({200: OBJECT}),
    "Galley_VerifyStores": Facts({200: OBJECT}),
    "Galley_CollectGarbage": Facts({200: OBJECT}),
    # the node's health, its metrics, the installation's nodes
    "Galley_Liveness": Facts({200: m.Liveness}),
    "Galley_Readiness": Facts({200: m.Readiness, 503: m.Readiness}),
    "Galley_Metrics": Facts({200: TEXT}),
    "Galley_ListNodes": Facts({200: m.page_of(m.Node)}),
    # blobs
    "Blobs_Upload": Facts({201: m.Blob}, body=BINARY),
    "Blobs_Download": Facts({200: BINARY, 206: BINARY, 416: None}),
    "Blobs_GetProperties": Facts({200: None}),
    "Blobs_Delete": Facts({202: None}),
    "Blobs_List": Facts({200: m.page_of(m.Blob)}),
    # the authority (open)
    "Metadata_Endpoints": Facts({200: OBJECT}),
    "Authority_OpenIdConfiguration": Facts({200: OBJECT}, oauth_errors=True),
    "Authority_Keys": Facts({200: OBJECT}, oauth_errors=True),
    "Authority_Token": Facts({200: m.TokenResponse}, body=Form(m.TokenRequest), oauth_errors=True),
    # Galley.Identity
    "Identity_ListTenants": Facts({200: m.page_of(m.Tenant)}),
    "Identity_CreateTenant": Facts({201: m.Tenant}, body=m.NewTenant),
    "Identity_CreateSubscription": Facts({201: m.Subscription}, body=m.NewSubscription),
    "Identity_ListServicePrincipals": Facts({200: m.page_of(m.ServicePrincipal)}),
    "Identity_CreateServicePrincipal": Facts({201: m.ServicePrincipalSecret}, body=m.NewServicePrincipal),
    "Identity_GetServicePrincipal": Facts({200: m.ServicePrincipalWithCredentials}),
    "Identity_DeleteServicePrincipal": Facts({204: None}),
    "Identity_ResetServicePrincipalCredential": Facts({200: m.ServicePrincipalSecret}, body=m.CredentialReset,
                                                      body_required=False),
    "Identity_ListSigningKeys": Facts({200: m.SigningKeys}),
    "Identity_RotateSigningKeys": Facts({200: m.SigningKeys}),
    "Identity_ListGroups": Facts({200: m.page_of(m.Group)}),
    "Identity_CreateGroup": Facts({201: m.Group}, body=m.NewGroup),
    "Identity_GetGroup": Facts({200: m.Group}),
    "Identity_DeleteGroup": Facts({204: None}),
    "Identity_AddGroupMember": Facts({200: m.Group}, body=m.GroupMember),
    "Identity_RemoveGroupMember": Facts({200: m.Group}),
    "Directory_GetByIds": Facts({200: m.ListPage}, body=m.DirectoryObjectsRequest),
    "Identity_ListUsers": Facts({200: m.page_of(m.User)}),
    "Identity_CreateUser": Facts({201: m.User}, body=m.NewUser),
    "Identity_GetUser": Facts({200: m.User}),
    "Identity_DeleteUser": Facts({204: None}),
    "Graph_ListUsers": Facts({200: m.page_of(m.User)}),
    "Graph_CreateUser": Facts({201: m.User}, body=m.GraphNewUser),
    "Graph_GetUser": Facts({200: m.User}),
    "Graph_DeleteUser": Facts({204: None}),
    # Microsoft.Authorization
    **_access_pair("RoleDefinitions_List", Facts({200: m.page_of(m.RoleDefinition)})),
    **_access_pair("RoleDefinitions_Get", Facts({200: m.RoleDefinition})),
    **_access_pair("RoleDefinitions_CreateOrUpdate", Facts({200: m.RoleDefinition, 201: m.RoleDefinition},
                                                           body=m.RoleDefinition)),
    **_access_pair("RoleDefinitions_Delete", Facts({200: m.RoleDefinition, 204: None})),
    **_access_pair("RoleAssignments_ListForScope", Facts({200: m.page_of(m.RoleAssignment)})),
    **_access_pair("RoleAssignments_Get", Facts({200: m.RoleAssignment})),
    **_access_pair("RoleAssignments_Create", Facts({200: m.RoleAssignment, 201: m.RoleAssignment},
                                                   body=m.RoleAssignment)),
    **_access_pair("RoleAssignments_Delete", Facts({200: m.RoleAssignment, 204: None})),
    # Microsoft.Insights, Microsoft.ResourceGraph
    "ActivityLogs_List": Facts({200: m.ListPage}),
    "Resources": Facts({200: m.GraphQueryResponse}, body=m.GraphQueryRequest),
    # sharing
    "GallerySharingProfile_Update": Facts({200: m.SharingUpdate}, body=m.SharingUpdate),
    "SharedGalleries_List": _shared_list,
    **{f"{kind}_{op}": facts for kind in ("SharedGalleries", "CommunityGalleries")
       for op, facts in (("Get", _shared_item), ("Images_List", _shared_list), ("Images_Get", _shared_item),
                         ("ImageVersions_List", _shared_list), ("ImageVersions_Get", _shared_item))},
    # the platform image catalog
    "VirtualMachineImages_ListPublishers": Facts({200: [m.CatalogEntry]}),
    "VirtualMachineImages_ListOffers": Facts({200: [m.CatalogEntry]}),
    "VirtualMachineImages_ListSkus": Facts({200: [m.CatalogEntry]}),
    "VirtualMachineImages_List": Facts({200: [m.CatalogEntry]}),
    "VirtualMachineImages_Get": Facts({200: m.CatalogEntry}),
    "PlatformImages_Register": Facts({201: m.PlatformImage}, body=BINARY),
    "PlatformImages_Get": Facts({200: m.PlatformImage}),
    "PlatformImages_Delete": Facts({200: m.PlatformImage}),
    "PlatformImages_List": Facts({200: m.page_of(m.PlatformImage)}),
}


def facts_for(operation_id: str | None) -> Facts | None:
    if operation_id in FACTS:
        return FACTS[operation_id]
    prefix, _, operation = (operation_id or "").partition("_")
    for spec in SPECS:
        if spec.operation_prefix == prefix:
            return resource_facts(spec, operation)
    return None


def spec_for(operation_id: str | None) -> ResourceSpec | None:
    prefix = (operation_id or "").partition("_")[0]
    return next((spec for spec in SPECS if spec.operation_prefix == prefix), None)
