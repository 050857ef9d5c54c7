"""Request bodies in, ARM JSON and long-running-operation headers out."""

from __future__ import annotations

from urllib.parse import urlencode

import orjson
from fastapi import Request
from fastapi.responses import Response

from ..domain.errors import ArmError
from ..domain.ids import DISK_TYPE, IMAGE_TEMPLATE_TYPE, STORAGE_ACCOUNT_TYPE
from ..domain.image_version import aggregated_state
from ..domain.limits import MAX_JSON_DEPTH, MAX_NUMBER_DIGITS, nesting_depth
from ..domain.ports import Page
from ..domain.resource import HIDDEN_PREFIX, Operation, Resource, TargetRegion

MAX_BODY_BYTES = 1_048_576
# Fields ARM puts beside `properties` that Galley keeps among them (see ResourceSpec.inbound).
# Fields ARM puts beside `properties` that Galley keeps among them (a disk's managedBy: the VM
# it is attached to).
TOP_LEVEL_FIELDS = {IMAGE_TEMPLATE_TYPE: ("identity",), STORAGE_ACCOUNT_TYPE: ("kind",), DISK_TYPE: ("managedBy",)}


def json_response(body: object, status: int = 200, headers: dict | None = None) -> Response:
    return Response(orjson.dumps(body), status_code=status, headers=headers,
                    media_type="application/json")


def error_response(error: ArmError) -> Response:
    response = json_response(error.to_body(), error.status)
    if error.retry_after:
        response.headers["Retry-After"] = str(error.retry_after)
    return response


async def json_body(request: Request) -> dict:
    """The request's JSON object; anything else is a 4xx before any work is done."""
    declared = request.headers.get("content-length")
    limit = getattr(request.app.state, "max_body_bytes", MAX_BODY_BYTES)
    if declared is not None and not (declared.isascii() and declared.isdigit()):
        raise ArmError(f"The Content-Length header must be a whole number of bytes; got '{declared[:40]}'.",
                       code="InvalidRequestContent", target="Content-Length")
    if declared is not None and (len(declared) > MAX_NUMBER_DIGITS or int(declared) > limit):
        raise _too_large(limit)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
    raw = b"".join(chunks)
    if not raw.strip():
        raise ArmError("The request body is empty; a JSON object is required.",
                       code="InvalidRequestContent")
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise ArmError(f"The request content is not valid JSON: {error}.",
                       code="InvalidRequestContent") from None
    if not isinstance(body, dict):
        raise ArmError(f"The request content must be a JSON object, not {type(body).__name__}.",
                       code="InvalidRequestContent")
    if nesting_depth(body) > MAX_JSON_DEPTH:
        raise ArmError(f"The request content nests objects and arrays more than {MAX_JSON_DEPTH} levels "
                       "deep; ARM request bodies are far shallower.", code="InvalidRequestContent")
    if b"\\u0000" in raw and _holds_nul(body):  # the only way JSON carries a NUL
        raise ArmError("A string in the request content holds a NUL character (\\u0000), which no name, "
                       "value or key may hold.", code="InvalidRequestContent")
    return body


def _holds_nul(value) -> bool:
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return False


def _too_large(limit: int) -> ArmError:
    return ArmError(f"The request body is larger than {limit} bytes.",
                    code="RequestEntityTooLarge", status=413)


def render(resource: Resource, regions: list[TargetRegion] | None = None) -> dict:
    properties = {k: v for k, v in resource.properties.items() if not k.startswith(HIDDEN_PREFIX)}
    properties["provisioningState"] = resource.provisioning_state
    if regions is not None:
        properties["replicationStatus"] = {
            "aggregatedState": aggregated_state(regions),
            "summary": [{"region": r.region, "state": r.state, "details": r.details,
                         "progress": r.progress} for r in regions],
        }
    body = {"id": resource.id, "name": resource.name, "type": resource.type,
            "location": resource.location, "tags": resource.tags, "properties": properties}
    for key in TOP_LEVEL_FIELDS.get(resource.type, ()):
        if key in properties:
            body[key] = properties.pop(key)
    if resource.sku is not None:
        body["sku"] = resource.sku
    return body


def page_response(request: Request, page: Page, items: list[dict]) -> Response:
    visible = getattr(request.state, "visible", None)  # the caller may read only some items
    body: dict = {"value": [item for item in items if visible(item)] if visible else items}
    if page.next_token:
        params = {k: v for k, v in request.query_params.items() if k != "$skiptoken"}
        params["$skiptoken"] = page.next_token
        body["nextLink"] = f"{str(request.base_url).rstrip('/')}{request.url.path}?{urlencode(params)}"
    return json_response(body)


def operation_urls(request: Request, operation: Operation, api_version: str,
                   retry_after: int = 1) -> dict[str, str]:
    base = (f"{str(request.base_url).rstrip('/')}/subscriptions/{operation.subscription_id}"
            f"/providers/Microsoft.Compute/locations/{operation.region}")
    query = urlencode({"api-version": api_version})
    return {
        "Azure-AsyncOperation": f"{base}/operations/{operation.id}?{query}",
        "Location": f"{base}/operationResults/{operation.id}?{query}",
        "Retry-After": str(retry_after),
    }


def accepted_response(request: Request, body: dict | None, operation: Operation, api_version: str,
                      status: int, retry_after: int = 1) -> Response:
    headers = operation_urls(request, operation, api_version, retry_after)
    if body is None:
        return Response(status_code=status, headers=headers)
    return json_response(body, status, headers)


def render_operation(operation: Operation) -> dict:
    body = {"name": operation.id, "status": operation.status, "startTime": operation.start_time}
    if operation.end_time:
        body["endTime"] = operation.end_time
    if operation.error:
        body["error"] = operation.error
    return body
