"""Resource-group deployments (Microsoft.Resources/deployments): create (runs the template), get,
list, delete, validate, cancel, the run's status (Azure-AsyncOperation) and its operations."""

from __future__ import annotations

from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from ...deployments import engine, records
from ...deployments.template import DEPLOYMENT_TYPE
from ...domain.errors import Conflict, NotFound
from ...domain.names import check_resource_group_name, check_subscription_id
from ..api_versions import resources_api
from ..wire import json_body, json_response, page_response
from .resources import GROUP, service_of

router = APIRouter(tags=["Deployments"])
DEPLOYMENTS = GROUP + "/providers/microsoft.resources/deployments"
ITEM = DEPLOYMENTS + "/{deploymentName}"


def _record_id(subscription_id: str, group: str, name: str) -> str:
    check_subscription_id(subscription_id)
    check_resource_group_name(group)
    records.check_name(name)
    return records.deployment_id(subscription_id, group, name)


def _status_url(request: Request, record, api_version: str) -> str:
    return (f"{str(request.base_url).rstrip('/')}{record.id}/operationStatuses/"
            f"{record.properties['correlationId']}?{urlencode({'api-version': api_version})}")


@router.put(ITEM, operation_id="Deployments_CreateOrUpdate")
async def create_or_update(request: Request, subscriptionId: str, resourceGroupName: str, deploymentName: str,
                           api_version: str = Depends(resources_api), body: dict = Depends(json_body)) -> Response:
    record_id = _record_id(subscriptionId, resourceGroupName, deploymentName)
    store = service_of(request).store
    prepared = await engine.prepare(store, subscriptionId, resourceGroupName, deploymentName, body)
    with store.read_one() as tx:
        existed = tx.get(record_id) is not None
    record = await engine.start(store, request.app, request.headers.get("authorization", ""),
                                str(request.base_url), subscriptionId, resourceGroupName, deploymentName, prepared)
    return json_response(records.render(record), 200 if existed else 201,
                         headers={"Azure-AsyncOperation": _status_url(request, record, api_version),
                                  "Retry-After": "1"})


@router.get(ITEM, operation_id="Deployments_Get")
def get(request: Request, subscriptionId: str, resourceGroupName: str, deploymentName: str,
        api_version: str = Depends(resources_api)) -> Response:
    record_id = _record_id(subscriptionId, resourceGroupName, deploymentName)
    return json_response(records.render(records.get(service_of(request).store, record_id, deploymentName)))


@router.delete(ITEM, operation_id="Deployments_Delete")
def delete(request: Request, subscriptionId: str, resourceGroupName: str, deploymentName: str,
           api_version: str = Depends(resources_api)) -> Response:
    record_id = _record_id(subscriptionId, resourceGroupName, deploymentName)
    store = service_of(request).store
    records.get(store, record_id, deploymentName)  # an interrupted run is marked ended first
    records.delete(store, record_id)
    return Response(status_code=204)


@router.get(DEPLOYMENTS, operation_id="Deployments_ListByResourceGroup")
def list_by_group(request: Request, subscriptionId: str, resourceGroupName: str,
                  api_version: str = Depends(resources_api),
                  skiptoken: str | None = Query(None, alias="$skiptoken")) -> Response:
    page = service_of(request).list(DEPLOYMENT_TYPE, subscriptionId, resource_group=resourceGroupName, after=skiptoken)
    return page_response(request, page, [records.render(r) for r in page.items])


@router.post(ITEM + "/validate", operation_id="Deployments_Validate")
async def validate(request: Request, subscriptionId: str, resourceGroupName: str, deploymentName: str,
                   api_version: str = Depends(resources_api), body: dict = Depends(json_body)) -> Response:
    record_id = _record_id(subscriptionId, resourceGroupName, deploymentName)
    prepared = await engine.prepare(service_of(request).store, subscriptionId, resourceGroupName, deploymentName, body)
    return json_response(engine.validated(prepared, record_id, deploymentName))


@router.post(ITEM + "/cancel", operation_id="Deployments_Cancel", status_code=204)
async def cancel(request: Request, subscriptionId: str, resourceGroupName: str, deploymentName: str,
                 api_version: str = Depends(resources_api)) -> Response:
    record_id = _record_id(subscriptionId, resourceGroupName, deploymentName)
    store = service_of(request).store
    await run_in_threadpool(records.get, store, record_id, deploymentName)
    if not await engine.cancel(store, record_id):
        raise Conflict(f"Deployment '{deploymentName}' is not running; only a running deployment can be canceled.",
                       code="DeploymentNotActive", target=record_id)
    return Response(status_code=204)


@router.get(ITEM + "/operationstatuses/{operationId}", operation_id="Deployments_GetOperationStatus")
def operation_status(request: Request, subscriptionId: str, resourceGroupName: str, deploymentName: str,
                     operationId: str, api_version: str = Depends(resources_api)) -> Response:
    record_id = _record_id(subscriptionId, resourceGroupName, deploymentName)
    record = records.get(service_of(request).store, record_id, deploymentName)
    if record.properties.get("correlationId") != operationId:
        raise NotFound(f"Operation '{operationId}' of deployment '{deploymentName}' was not found (a newer run "
                       "replaced it).", code="OperationNotFound", target=operationId)
    state = record.provisioning_state
    body = {"status": "Running" if state in records.ACTIVE else state}
    if record.properties.get("error"):
        body["error"] = record.properties["error"]
    headers = {"Retry-After": "1"} if state in records.ACTIVE else None
    return json_response(body, headers=headers)


# Azure serves a deployment's operations without the provider segment.
OPERATIONS = GROUP + "/deployments/{deploymentName}/operations"


@router.get(OPERATIONS, operation_id="DeploymentOperations_List")
def list_operations(request: Request, subscriptionId: str, resourceGroupName: str, deploymentName: str,
                    api_version: str = Depends(resources_api)) -> Response:
    record_id = _record_id(subscriptionId, resourceGroupName, deploymentName)
    record = records.get(service_of(request).store, record_id, deploymentName)
    return json_response({"value": records.render_operations(record)})


@router.get(OPERATIONS + "/{operationId}", operation_id="DeploymentOperations_Get")
def get_operation(request: Request, subscriptionId: str, resourceGroupName: str, deploymentName: str,
                  operationId: str, api_version: str = Depends(resources_api)) -> Response:
    record_id = _record_id(subscriptionId, resourceGroupName, deploymentName)
    record = records.get(service_of(request).store, record_id, deploymentName)
    found = [op for op in records.render_operations(record) if op["operationId"] == operationId]
    if not found:
        raise NotFound(f"Operation '{operationId}' of deployment '{deploymentName}' was not found.",
                       code="OperationNotFound", target=operationId)
    return json_response(found[0])
