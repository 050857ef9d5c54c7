"""Async-operation status (Azure-AsyncOperation) and results (Location) endpoints."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from ...domain.resource import CANCELED, FAILED, IN_PROGRESS
from .. import answers
from ..api_versions import operation_api
from ..wire import json_response, operation_urls, render, render_operation
from .resources import service_of

router = APIRouter(tags=["Operations"])
BASE = "/subscriptions/{subscriptionId}/providers/microsoft.compute/locations/{location}"


@router.get(BASE + "/operations/{operationId}", operation_id="Operations_GetStatus")
def status(request: Request, subscriptionId: str, location: str, operationId: str,
           api_version: str = Depends(operation_api)) -> Response:
    operation = service_of(request).operation(operationId, subscriptionId)
    headers = {"Retry-After": str(answers.retry_after(request, operation))} \
        if operation.status == IN_PROGRESS else None
    return json_response(render_operation(operation), headers=headers)


@router.get(BASE + "/operationresults/{operationId}", operation_id="Operations_GetResult")
def result(request: Request, subscriptionId: str, location: str, operationId: str,
           api_version: str = Depends(operation_api)) -> Response:
    service = service_of(request)
    operation = service.operation(operationId, subscriptionId)
    if operation.status == IN_PROGRESS:
        return Response(status_code=202, headers=operation_urls(request, operation, api_version,
                                                                answers.retry_after(request, operation)))
    if operation.status in (FAILED, CANCELED):
        return json_response({"error": operation.error}, 409)
    if operation.action == "delete":
        return Response(status_code=204)
    if operation.result is not None:  # an action's own result (a run-command's output)
        return json_response(operation.result)
    if operation.resource_type.lower() == "microsoft.compute/virtualmachines" and operation.action != "create" \
            and operation.action != "update":
        return Response(status_code=200)  # a power operation has no body
    with service.store.read() as tx:
        resource = tx.get(operation.resource_id)
    return json_response(render(resource)) if resource else Response(status_code=204)
