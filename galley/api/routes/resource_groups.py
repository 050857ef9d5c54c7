"""Resource groups and locations (Microsoft.Resources): the containers and regions ARM clients check."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from ...domain import ids
from ...domain.errors import NotFound, ResourceGroupNotFound
from ...domain.names import check_subscription_id
from .. import answers
from ..answers import finished_in_time
from ..api_versions import resources_api
from ..wire import json_body, json_response, page_response
from .resources import service_of

router = APIRouter(tags=["ResourceGroups"])
GROUP = "/subscriptions/{subscriptionId}/resourcegroups/{resourceGroupName}"

DISPLAY_NAMES = {
    "eastus": "East US", "eastus2": "East US 2", "westus": "West US", "westus2": "West US 2",
    "westus3": "West US 3", "centralus": "Central US", "westcentralus": "West Central US",
    "southcentralus": "South Central US", "northcentralus": "North Central US",
    "northeurope": "North Europe", "westeurope": "West Europe", "uksouth": "UK South",
    "southeastasia": "Southeast Asia", "eastasia": "East Asia", "japaneast": "Japan East",
    "australiaeast": "Australia East", "brazilsouth": "Brazil South", "canadacentral": "Canada Central",
}


def _render_group(resource) -> dict:
    return {"id": resource.id, "name": resource.name, "type": resource.type, "location": resource.location,
            "tags": resource.tags, "properties": {"provisioningState": resource.provisioning_state}}


@router.put(GROUP, operation_id="ResourceGroups_CreateOrUpdate")
def create_or_update(request: Request, subscriptionId: str, resourceGroupName: str,
                     api_version: str = Depends(resources_api), body: dict = Depends(json_body)) -> Response:
    accepted = service_of(request).put_resource_group(subscriptionId, resourceGroupName, body)
    return json_response(_render_group(accepted.resource), 201 if accepted.created else 200)


@router.patch(GROUP, operation_id="ResourceGroups_Update")
def update(request: Request, subscriptionId: str, resourceGroupName: str,
           api_version: str = Depends(resources_api), body: dict = Depends(json_body)) -> Response:
    service = service_of(request)
    group = _get(request, subscriptionId, resourceGroupName)
    accepted = service.put_resource_group(subscriptionId, resourceGroupName,
                                          {"location": group.location, **body})
    return json_response(_render_group(accepted.resource))


def _get(request: Request, subscription: str, name: str):
    check_subscription_id(subscription)
    try:
        return service_of(request).get(ids.resource_group_id(subscription, name), ids.RESOURCE_GROUP_TYPE)
    except NotFound:
        raise ResourceGroupNotFound(f"Resource group '{name}' could not be found.",
                                    target="resourceGroupName") from None


@router.get(GROUP, operation_id="ResourceGroups_Get")
def get(request: Request, subscriptionId: str, resourceGroupName: str,
        api_version: str = Depends(resources_api)) -> Response:
    return json_response(_render_group(_get(request, subscriptionId, resourceGroupName)))


@router.head(GROUP, operation_id="ResourceGroups_CheckExistence")
def exists(request: Request, subscriptionId: str, resourceGroupName: str,
           api_version: str = Depends(resources_api)) -> Response:
    try:
        _get(request, subscriptionId, resourceGroupName)
    except ResourceGroupNotFound:
        return Response(status_code=404)
    return Response(status_code=204)


@router.delete(GROUP, operation_id="ResourceGroups_Delete")
def delete(request: Request, subscriptionId: str, resourceGroupName: str,
           api_version: str = Depends(resources_api)) -> Response:
    operation = service_of(request).delete_resource_group(subscriptionId, resourceGroupName)
    if operation is None:  # as ARM answers (azure-mgmt-resource accepts no 204 here)
        raise ResourceGroupNotFound(f"Resource group '{resourceGroupName}' could not be found.",
                                    target=resourceGroupName)
    if finished_in_time(request, operation):  # azure-mgmt-resource takes 200 or 202
        return Response(status_code=200)
    return answers.accepted(request, None, operation, api_version, 202)


@router.get("/subscriptions/{subscriptionId}/resourcegroups", operation_id="ResourceGroups_List")
def list_groups(request: Request, subscriptionId: str, api_version: str = Depends(resources_api),
                skiptoken: str | None = Query(None, alias="$skiptoken")) -> Response:
    page = service_of(request).list(ids.RESOURCE_GROUP_TYPE, subscriptionId, after=skiptoken)
    return page_response(request, page, [_render_group(r) for r in page.items])


@router.get("/subscriptions/{subscriptionId}/locations", operation_id="Subscriptions_ListLocations",
            tags=["Subscriptions"])
def list_locations(request: Request, subscriptionId: str, api_version: str = Depends(resources_api)) -> Response:
    check_subscription_id(subscriptionId)
    regions = request.app.state.settings.regions
    return json_response({"value": [{
        "id": f"/subscriptions/{subscriptionId}/locations/{region}",
        "name": region,
        "type": "Region",
        "displayName": DISPLAY_NAMES.get(region, region),
        "regionalDisplayName": DISPLAY_NAMES.get(region, region),
        "metadata": {"regionType": "Physical", "regionCategory": "Recommended"},
    } for region in regions]})
