"""The OpenAPI document, assembled from the routes the app has at the time it is asked for.

FastAPI lists the paths, their path and query parameters and operationIds; the routes read their
bodies themselves (raw JSON, or a stream of disk bytes) and answer with Response objects, so
FastAPI knows neither their bodies nor their answers. This module completes each operation from
operations.py: the request body, the real status codes with typed shapes, ARM's error shape for
every other status, and `api-version` required with the values the route accepts (read from its
api-version dependency, so the document and the server cannot disagree).
"""

from __future__ import annotations

import hashlib
from http import HTTPStatus
from typing import Any, Iterator

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from .. import api_versions
from ..authentication import OPEN_PATHS
from ..wire import json_body
from . import models
from .operations import ARRAY, BINARY, OBJECT, TEXT, Facts, Form, facts_for, spec_for

REF = "#/components/schemas/{model}"
BEARER = "bearer"
OAUTH2 = "oauth2"


def api_routes(routes) -> Iterator[APIRoute]:
    """Every APIRoute, also those of included routers."""
    for route in routes:
        if isinstance(route, APIRoute):
            yield route
        elif hasattr(route, "original_router"):
            yield from api_routes(route.original_router.routes)


def _dependency_calls(dependant) -> Iterator[Any]:
    for dependency in dependant.dependencies:
        yield dependency.call
        yield from _dependency_calls(dependency)


def accepted_api_versions(route: APIRoute) -> frozenset[str] | None:
    """The api-versions the route accepts, from its api-version check (api_versions.py)."""
    for call in _dependency_calls(route.dependant):
        if hasattr(call, "supported"):
            return call.supported
    spec = spec_for(route.operation_id)
    if spec is not None and route.operation_id.endswith(("_Upload", "_Download")):
        return spec.api.supported  # these check it themselves (they stream their bodies)
    return None


def takes_json_body(route: APIRoute) -> bool:
    return any(call is json_body for call in _dependency_calls(route.dependant))


class Schemas:
    """The models an operation names, gathered into components.schemas."""

    def __init__(self) -> None:
        self.models: set[type[BaseModel]] = set()
        self.patch_models: set[type[BaseModel]] = set()
        self.extra: dict[str, dict] = {}

    def ref(self, model: type[BaseModel], patch: bool = False) -> dict:
        (self.patch_models if patch else self.models).add(model)
        return {"$ref": REF.format(model=model.__name__ + ("Update" if patch else ""))}

    def shape(self, shape: Any) -> dict:
        if shape == OBJECT:
            return {"type": "object", "additionalProperties": True}
        if shape == ARRAY:
            return {"type": "array", "items": {"type": "object", "additionalProperties": True}}
        if isinstance(shape, list):
            return {"type": "array", "items": self.shape(shape[0])}
        return self.ref(shape)

    def components(self) -> dict[str, dict]:
        wanted = sorted(self.models | self.patch_models, key=lambda model: model.__name__)
        _, found = models_json_schema([(model, "validation") for model in wanted], ref_template=REF)
        schemas = found.get("$defs", {})
        for model in self.patch_models:
            # A PATCH sends only what changes: the same shape with nothing required at its top.
            patch = {k: v for k, v in schemas[model.__name__].items() if k != "required"}
            schemas[model.__name__ + "Update"] = {**patch, "title": model.__name__ + "Update"}
        return dict(sorted({**schemas, **self.extra}.items()))


def _content(shape: Any, schemas: Schemas) -> dict:
    if shape == BINARY:
        return {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}
    if shape == TEXT:
        return {"text/plain": {"schema": {"type": "string"}}}
    return {"application/json": {"schema": schemas.shape(shape)}}


def _responses(facts: Facts, method: str, schemas: Schemas) -> dict:
    answers: dict[str, Any] = {}
    for status, shape in facts.responses.items():
        answer: dict[str, Any] = {"description": HTTPStatus(status).phrase}
        if shape is not None and method != "HEAD":
            answer["content"] = _content(shape, schemas)
        if status in (201, 202) and method != "HEAD":
            answer["headers"] = ASYNC_HEADERS
        elif status == 503:
            answer["headers"] = UNAVAILABLE_HEADERS
        answers[str(status)] = answer
    error = models.OAuthErrorResponse if facts.oauth_errors else models.ErrorResponse
    default: dict[str, Any] = {"description": "An error: " + ("OAuth 2.0's shape" if facts.oauth_errors
                                                               else "ARM's shape")}
    if method != "HEAD":
        default["content"] = {"application/json": {"schema": schemas.ref(error)}}
    answers["default"] = default
    return answers


ASYNC_HEADERS = {
    "Azure-AsyncOperation": {"description": "The operation's status URL, while work goes on",
                             "schema": {"type": "string"}},
    "Location": {"description": "The operation's result URL, while work goes on", "schema": {"type": "string"}},
    "Retry-After": {"description": "Seconds to wait before polling", "schema": {"type": "string"}},
}


UNAVAILABLE_HEADERS = {
    "Retry-After": {"description": "Seconds to wait before asking again", "schema": {"type": "string"}},
}


def _request_body(facts: Facts, schemas: Schemas) -> dict | None:
    if facts.body is None:
        return None
    if isinstance(facts.body, Form):
        content = {"application/x-www-form-urlencoded": {"schema": schemas.ref(facts.body.model)}}
    elif facts.body == BINARY:
        content = _content(BINARY, schemas)
    else:
        content = {"application/json": {"schema": schemas.ref(facts.body, patch=facts.patch_body)}}
    return {"required": facts.body_required, "content": content}


def api_version_schema_name(supported: frozenset[str]) -> str:
    """A name per family of api_versions.py (GALLERY → GalleryApiVersion), shared by its routes."""
    name = next((name for name, value in vars(api_versions).items() if name.isupper() and value is supported),
                None)
    if name is None:
        return "ApiVersion" + hashlib.sha256(",".join(sorted(supported)).encode()).hexdigest()[:8]
    return name.title().replace("_", "") + "ApiVersion"


def _api_version_parameter(supported: frozenset[str], schemas: Schemas) -> dict:
    name = api_version_schema_name(supported)
    schemas.extra[name] = {"type": "string", "enum": sorted(supported, reverse=True), "title": name}
    return {"name": "api-version", "in": "query", "required": True,
            "description": "The API version; the server refuses a request without one.",
            "schema": {"$ref": REF.format(model=name)}}


def _parameters(route: APIRoute, operation: dict, schemas: Schemas) -> list[dict]:
    supported = accepted_api_versions(route)
    parameters = [p for p in operation.get("parameters", ()) if p.get("name") != "api-version"]
    for parameter in parameters:
        if parameter["in"] == "path":  # a handler may type it `str | None` (shared with a root route)
            parameter["schema"] = {"type": "string"}
    if supported is not None:
        parameters.append(_api_version_parameter(supported, schemas))
    else:
        parameters += [p for p in operation.get("parameters", ()) if p.get("name") == "api-version"]
    return parameters


def _is_open(path: str) -> bool:
    filled = path
    while "{" in filled:
        start, end = filled.index("{"), filled.index("}")
        filled = filled[:start] + "x" + filled[end + 1:]
    return OPEN_PATHS.match(filled) is not None


def complete_operation(route: APIRoute, method: str, operation: dict, schemas: Schemas) -> None:
    facts = facts_for(route.operation_id)
    if facts is None:  # an operation operations.py does not know yet: JSON in and out, untyped
        facts = Facts({route.status_code or 200: OBJECT},
                      body=models.Open if takes_json_body(route) else None)
    operation["parameters"] = _parameters(route, operation, schemas)
    if not operation["parameters"]:
        del operation["parameters"]
    body = _request_body(facts, schemas)
    if body is not None:
        operation["requestBody"] = body
    else:
        operation.pop("requestBody", None)
    operation["responses"] = _responses(facts, method, schemas)
    if _is_open(route.path_format):
        operation["security"] = []


def add_links(operations: dict) -> None:
    """What a PUT made can be read, updated and deleted at the same path: OpenAPI links from its
    answers to those operations (stateful fuzzers and generated documentation follow them)."""
    put = operations.get("put")
    if put is None:
        return
    links = {}
    for method in ("get", "patch", "delete"):
        target = operations.get(method)
        if target is None or "operationId" not in target:
            continue
        names = [p["name"] for p in target.get("parameters", ()) if p["in"] == "path"]
        links[target["operationId"]] = {"operationId": target["operationId"],
                                        "parameters": {f"path.{n}": f"$request.path.{n}" for n in names}}
    for status, answer in put["responses"].items():
        if links and status.startswith("2"):
            answer["links"] = links


def security_schemes(token_url: str) -> dict:
    return {
        BEARER: {"type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                 "description": "An access token from this server's authority (or a trusted issuer)"},
        OAUTH2: {"type": "oauth2", "description": "Client credentials of a service principal",
                 "flows": {"clientCredentials": {"tokenUrl": token_url, "scopes": {}}}},
    }


def build(app: FastAPI, token_url: str) -> dict:
    document = get_openapi(title=app.title, version=app.version, description=app.description,
                           routes=app.routes)
    schemas = Schemas()
    for route in api_routes(app.routes):
        if not route.include_in_schema:
            continue
        operations = document["paths"].get(route.path_format, {})
        for method in route.methods:
            operation = operations.get(method.lower())
            if operation is not None:
                complete_operation(route, method, operation, schemas)
    for operations in document["paths"].values():
        add_links(operations)
    document["components"] = {"schemas": schemas.components(), "securitySchemes": security_schemes(token_url)}
    document["security"] = [{BEARER: []}, {OAUTH2: []}]
    return document
