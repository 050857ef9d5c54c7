"""Role definitions and role assignments (Microsoft.Authorization) at any scope: '/', a
subscription, a resource group or any resource; and groups of principals (Galley.Identity).

  GET             {scope}/providers/Microsoft.Authorization/roleDefinitions[?$filter=roleName eq '…']
  GET|PUT|DELETE  {scope}/providers/Microsoft.Authorization/roleDefinitions/{roleDefinitionId}
  GET             {scope}/providers/Microsoft.Authorization/roleAssignments[?$filter=atScope()|principalId eq '…']
  GET|PUT|DELETE  {scope}/providers/Microsoft.Authorization/roleAssignments/{roleAssignmentName}
  GET|POST        /providers/Galley.Identity/groups
  GET|DELETE      /providers/Galley.Identity/groups/{groupId}
  POST            /providers/Galley.Identity/groups/{groupId}/members      {"memberId"}
  DELETE          /providers/Galley.Identity/groups/{groupId}/members/{memberId}

Who may call them is decided with every other route (api/authorization.py): writing an
assignment needs Microsoft.Authorization/roleAssignments/write over the assignment's scope.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from ...domain import access as rules
from ..api_versions import authorization_api
from ..authorization import display_scope
from ..wire import json_body, json_response
from .accounts import _optional, caller_of

router = APIRouter(tags=["Authorization"])
AUTHORIZATION = "/providers/microsoft.authorization"
GROUPS = "/providers/Galley.Identity/groups"


def _access(request: Request):
    return request.app.state.access


def _scope(scope: str | None) -> str:
    return rules.check_scope(display_scope(scope or "")) if scope else "/"


def _routes(path: str):
    """The same path at the root scope and below any scope."""
    return (AUTHORIZATION + path, "/{scope:path}" + AUTHORIZATION + path)


def _add(path: str, handler, method: str, operation_id: str, status_code: int = 200) -> None:
    for i, route in enumerate(_routes(path)):
        router.add_api_route(route, handler, methods=[method], operation_id=f"{operation_id}{'AtScope' if i else ''}",
                             status_code=status_code)


# ---- role definitions -------------------------------------------------------------------------

def list_role_definitions(request: Request, scope: str | None = None, filter: str | None = Query(None, alias="$filter"),
                          api_version: str = Depends(authorization_api)) -> Response:
    at = _scope(scope)
    return json_response({"value": [r.to_arm(at) for r in _access(request).role_definitions(filter)]})


def get_role_definition(request: Request, roleDefinitionId: str, scope: str | None = None,
                        api_version: str = Depends(authorization_api)) -> Response:
    return json_response(_access(request).role_definition(roleDefinitionId).to_arm(_scope(scope)))


def put_role_definition(request: Request, roleDefinitionId: str, scope: str | None = None,
                        api_version: str = Depends(authorization_api), body: dict = Depends(json_body)) -> Response:
    role, created = _access(request).put_role_definition(caller_of(request), _scope(scope), roleDefinitionId, body)
    return json_response(role.to_arm(_scope(scope)), 201 if created else 200)


def delete_role_definition(request: Request, roleDefinitionId: str, scope: str | None = None,
                           api_version: str = Depends(authorization_api)) -> Response:
    role = _access(request).delete_role_definition(roleDefinitionId)
    return json_response(role.to_arm(_scope(scope))) if role else Response(status_code=204)


_add("/roledefinitions", list_role_definitions, "GET", "RoleDefinitions_List")
_add("/roledefinitions/{roleDefinitionId}", get_role_definition, "GET", "RoleDefinitions_Get")
_add("/roledefinitions/{roleDefinitionId}", put_role_definition, "PUT", "RoleDefinitions_CreateOrUpdate", 201)
_add("/roledefinitions/{roleDefinitionId}", delete_role_definition, "DELETE", "RoleDefinitions_Delete")


# ---- role assignments -------------------------------------------------------------------------

def list_role_assignments(request: Request, scope: str | None = None, filter: str | None = Query(None, alias="$filter"),
                          api_version: str = Depends(authorization_api)) -> Response:
    found = _access(request).assignments(caller_of(request), _scope(scope), filter)
    return json_response({"value": [a.to_arm() for a in found]})


def get_role_assignment(request: Request, roleAssignmentName: str, scope: str | None = None,
                        api_version: str = Depends(authorization_api)) -> Response:
    return json_response(_access(request).assignment(_scope(scope), roleAssignmentName).to_arm())


def put_role_assignment(request: Request, roleAssignmentName: str, scope: str | None = None,
                        api_version: str = Depends(authorization_api), body: dict = Depends(json_body)) -> Response:
    assignment, created = _access(request).put_assignment(caller_of(request), _scope(scope), roleAssignmentName, body)
    return json_response(assignment.to_arm(), 201 if created else 200)


def delete_role_assignment(request: Request, roleAssignmentName: str, scope: str | None = None,
                           api_version: str = Depends(authorization_api)) -> Response:
    found = _access(request).delete_assignment(_scope(scope), roleAssignmentName)
    return json_response(found.to_arm()) if found else Response(status_code=204)


_add("/roleassignments", list_role_assignments, "GET", "RoleAssignments_ListForScope")
_add("/roleassignments/{roleAssignmentName}", get_role_assignment, "GET", "RoleAssignments_Get")
_add("/roleassignments/{roleAssignmentName}", put_role_assignment, "PUT", "RoleAssignments_Create", 201)
_add("/roleassignments/{roleAssignmentName}", delete_role_assignment, "DELETE", "RoleAssignments_Delete")


# ---- groups -----------------------------------------------------------------------------------

@router.get(GROUPS, operation_id="Identity_ListGroups")
def list_groups(request: Request) -> Response:
    return json_response({"value": _access(request).groups(caller_of(request))})


@router.post(GROUPS, operation_id="Identity_CreateGroup", status_code=201)
def create_group(request: Request, body: dict = Depends(json_body)) -> Response:
    return json_response(_access(request).create_group(caller_of(request), body.get("displayName"),
                                                       _optional(body, "tenantId")), 201)


@router.get(GROUPS + "/{groupId}", operation_id="Identity_GetGroup")
def get_group(request: Request, groupId: str) -> Response:
    return json_response(_access(request).group(caller_of(request), groupId))


@router.delete(GROUPS + "/{groupId}", operation_id="Identity_DeleteGroup")
def delete_group(request: Request, groupId: str) -> Response:
    _access(request).delete_group(caller_of(request), groupId)
    return Response(status_code=204)


@router.post(GROUPS + "/{groupId}/members", operation_id="Identity_AddGroupMember")
def add_member(request: Request, groupId: str, body: dict = Depends(json_body)) -> Response:
    return json_response(_access(request).change_member(caller_of(request), groupId, body.get("memberId"), add=True))


@router.delete(GROUPS + "/{groupId}/members/{memberId}", operation_id="Identity_RemoveGroupMember")
def remove_member(request: Request, groupId: str, memberId: str) -> Response:
    return json_response(_access(request).change_member(caller_of(request), groupId, memberId, add=False))
