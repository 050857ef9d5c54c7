"""A virtual network's subnets as child resources (…/virtualNetworks/{vnet}/subnets/{subnet}): read,
created, changed and removed through their network, whose `subnets` list holds them (so the
network's own rules check each change, and a subnet is never stored twice)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from ...domain import fields, network
from ...domain.errors import NotFound
from ...domain.service import ResourceRef
from .. import answers
from ..answers import finished_in_time
from ..api_versions import network_api
from ..wire import json_body, json_response
from .resources import NETWORK, service_of

router = APIRouter(tags=["Subnets"])
NETWORK_ITEM = NETWORK + "/virtualnetworks/{virtualNetworkName}"
SUBNETS = NETWORK_ITEM + "/subnets"
SUBNET = SUBNETS + "/{subnetName}"


def _network_ref(subscription_id: str, group: str, name: str) -> ResourceRef:
    return ResourceRef(id=f"/subscriptions/{subscription_id}/resourceGroups/{group}/providers/"
                          f"{network.VIRTUAL_NETWORK_TYPE}/{name}",
                       type=network.VIRTUAL_NETWORK_TYPE, name=name, subscription_id=subscription_id,
                       resource_group=group)


def _subnets(resource) -> list[dict]:
    return resource.properties.get("subnets", [])


def _find(resource, name: str) -> dict:
    for subnet in _subnets(resource):
        if subnet["name"].lower() == name.lower():
            return subnet
    raise NotFound(f"Subnet '{name}' of virtual network '{resource.name}' was not found.", code="NotFound",
                   target=f"{resource.id}/subnets/{name}")


@router.get(SUBNET, operation_id="Subnets_Get")
def get(request: Request, subscriptionId: str, resourceGroupName: str, virtualNetworkName: str, subnetName: str,
        api_version: str = Depends(network_api)) -> Response:
    ref = _network_ref(subscriptionId, resourceGroupName, virtualNetworkName)
    resource = service_of(request).get(ref.id, ref.type)
    return json_response(_find(resource, subnetName))


@router.get(SUBNETS, operation_id="Subnets_List")
def list_subnets(request: Request, subscriptionId: str, resourceGroupName: str, virtualNetworkName: str,
                 api_version: str = Depends(network_api),
                 skiptoken: str | None = Query(None, alias="$skiptoken")) -> Response:
    ref = _network_ref(subscriptionId, resourceGroupName, virtualNetworkName)
    resource = service_of(request).get(ref.id, ref.type)
    return json_response({"value": _subnets(resource)})


def _write(request: Request, ref: ResourceRef, subnets: list[dict], api_version: str, answer, status: int) -> Response:
    service = service_of(request)
    current = service.get(ref.id, ref.type)
    body = {"location": current.location,
            "properties": {"subnets": [{"name": s["name"], "properties": s["properties"]} for s in subnets]}}
    accepted = service.put(ref, body, patch=True)
    if finished_in_time(request, accepted.operation):
        final = answers.read_after_write(lambda: service.get(ref.id, ref.type))
        if final is not None:
            return answer(final, status)
    return answers.accepted(request, None, accepted.operation, api_version, 202 if status == 200 else status)


@router.put(SUBNET, operation_id="Subnets_CreateOrUpdate")
def create_or_update(request: Request, subscriptionId: str, resourceGroupName: str, virtualNetworkName: str,
                     subnetName: str, api_version: str = Depends(network_api),
                     body: dict = Depends(json_body)) -> Response:
    ref = _network_ref(subscriptionId, resourceGroupName, virtualNetworkName)
    current = service_of(request).get(ref.id, ref.type)
    props = fields.obj(body, "properties", "properties") or {}
    wanted = {"name": subnetName, "properties": props}
    subnets = [s for s in _subnets(current) if s["name"].lower() != subnetName.lower()]
    created = len(subnets) == len(_subnets(current))
    if created:
        subnets.append(wanted)
    else:
        subnets = [wanted if s["name"].lower() == subnetName.lower() else s for s in _subnets(current)]
    return _write(request, ref, subnets, api_version,
                  lambda resource, status: json_response(_find(resource, subnetName),
                                                         status), 201 if created else 200)


@router.delete(SUBNET, operation_id="Subnets_Delete")
def delete(request: Request, subscriptionId: str, resourceGroupName: str, virtualNetworkName: str, subnetName: str,
           api_version: str = Depends(network_api)) -> Response:
    ref = _network_ref(subscriptionId, resourceGroupName, virtualNetworkName)
    current = service_of(request).get(ref.id, ref.type)
    remaining = [s for s in _subnets(current) if s["name"].lower() != subnetName.lower()]
    if len(remaining) == len(_subnets(current)):
        return Response(status_code=204)
    return _write(request, ref, remaining, api_version, lambda _resource, status: Response(status_code=status), 200)
