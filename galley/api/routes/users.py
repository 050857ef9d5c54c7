"""Users over HTTP (identity/users.py), in Galley's management shape (`galley ad user`) and in
Microsoft Graph's (`az ad user create|list|show|delete`, and az's lookup of `--assignee alice@…`):

  GET|POST /providers/Galley.Identity/users          {name, password, displayName?, tenantId?}
  GET      /providers/Galley.Identity/users/{user}    object id, user principal name, or bare name
  DELETE   /providers/Galley.Identity/users/{user}
  GET|POST /v1.0/users                                 ($filter=userPrincipalName eq '…')
  GET      /v1.0/users/{user}
  DELETE   /v1.0/users/{user}

Creating and deleting need a caller that manages the user's tenant (as for service principals);
reading is open to any principal of that tenant, so a user can name another in a role assignment.
Passwords come in, never go out.
"""

from __future__ import annotations

import re

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from ...domain.errors import InvalidParameter
from ..wire import json_body, json_response
from .accounts import caller_of

router = APIRouter(tags=["Identity"])
USERS = "/providers/Galley.Identity/users"
GRAPH_USERS = "/v1.0/users"
_UPN_FILTER = re.compile(r"^\s*userPrincipalName\s+eq\s+'([^']{1,320})'\s*$", re.IGNORECASE)


def _users(request: Request):
    return request.app.state.users


def _text(body: dict, name: str) -> str | None:
    value = body.get(name)
    if value is not None and not isinstance(value, str):
        raise InvalidParameter(f"'{name}' must be a string.", target=name)
    return value


# ---- Galley's shape ---------------------------------------------------------------------------

@router.get(USERS, operation_id="Identity_ListUsers")
def list_users(request: Request, tenantId: str | None = Query(None)) -> Response:
    found = _users(request).list(caller_of(request), tenantId)
    return json_response({"value": [u.to_graph() for u in found]})


@router.post(USERS, operation_id="Identity_CreateUser", status_code=201)
async def create_user(request: Request, body: dict = Depends(json_body)) -> Response:
    user = await run_in_threadpool(
        _users(request).create, caller_of(request), _text(body, "name"), body.get("password"),
        _text(body, "displayName"), _text(body, "tenantId"), _text(body, "userPrincipalName"))
    return json_response(user.to_graph(), 201)


@router.get(USERS + "/{userId}", operation_id="Identity_GetUser")
def get_user(request: Request, userId: str) -> Response:
    return json_response(_users(request).get(caller_of(request), userId).to_graph())


@router.delete(USERS + "/{userId}", operation_id="Identity_DeleteUser")
def delete_user(request: Request, userId: str) -> Response:
    _users(request).delete(caller_of(request), userId)
    return Response(status_code=204)


# ---- Microsoft Graph's shape ------------------------------------------------------------------

@router.get(GRAPH_USERS, operation_id="Graph_ListUsers")
def graph_list_users(request: Request, filter: str | None = Query(None, alias="$filter")) -> Response:
    found = _users(request).list(caller_of(request))
    if filter:
        match = _UPN_FILTER.match(filter)
        if match is None:
            raise InvalidParameter(f"The $filter '{filter}' is not supported: use userPrincipalName eq '<upn>'.",
                                   target="$filter")
        found = [u for u in found if u.user_principal_name == match.group(1).lower()]
    return json_response({"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users",
                          "value": [u.to_graph() for u in found]})


@router.post(GRAPH_USERS, operation_id="Graph_CreateUser", status_code=201)
async def graph_create_user(request: Request, body: dict = Depends(json_body)) -> Response:
    """As `az ad user create --display-name --password --user-principal-name` sends it."""
    profile = body.get("passwordProfile")
    if not isinstance(profile, dict):
        raise InvalidParameter("'passwordProfile' with 'password' is required.", target="passwordProfile")
    upn = _text(body, "userPrincipalName")
    if not upn:
        raise InvalidParameter("'userPrincipalName' is required.", target="userPrincipalName")
    user = await run_in_threadpool(
        _users(request).create, caller_of(request), None, profile.get("password"),
        _text(body, "displayName"), None, upn)
    return json_response({"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#users/$entity",
                          **user.to_graph()}, 201)


# A user's Graph URL answers as Galley's own does.
router.add_api_route(GRAPH_USERS + "/{userId}", get_user, methods=["GET"], operation_id="Graph_GetUser")
router.add_api_route(GRAPH_USERS + "/{userId}", delete_user, methods=["DELETE"], operation_id="Graph_DeleteUser")
