"""Tenants, subscriptions and service principals over HTTP.

ARM's own reads, as az and the SDK's SubscriptionClient call them:
  GET /subscriptions                  the caller's tenant's subscriptions
  GET /subscriptions/{id}
  GET /tenants                        the caller's tenant

Galley's management endpoints (the `galley account` and `galley ad sp` commands):
  GET|POST /providers/Galley.Identity/tenants                    (create: home tenant only)
  POST     /providers/Galley.Identity/subscriptions              {displayName, tenantId?, subscriptionId?}
  GET|POST /providers/Galley.Identity/servicePrincipals          {displayName, tenantId?, years?, endDate?}
  GET      /providers/Galley.Identity/servicePrincipals/{id}     (object id or appId)
  DELETE   /providers/Galley.Identity/servicePrincipals/{id}
  POST     /providers/Galley.Identity/servicePrincipals/{id}/resetCredential {append?, years?, endDate?}
  GET      /providers/Galley.Identity/signingKeys
  POST     /providers/Galley.Identity/signingKeys/rotate         (home tenant only)
A secret appears once, in the answer to the request that made it.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from ...domain.errors import InvalidParameter, NotFound
from ...domain.identity import Caller
from ...domain.access import check_assignable, check_scope
from ...identity.authority import AuthorizationFailed, NewSecret
from ..authorization import display_scope
from ..api_versions import resources_api
from ..wire import json_body, json_response

router = APIRouter(tags=["Identity"])
IDENTITY = "/providers/Galley.Identity"


def caller_of(request: Request) -> Caller:
    return request.state.caller


def _authority(request: Request):
    return request.app.state.authority


def _optional(body: dict, name: str, kind: type = str):
    value = body.get(name)
    if value is not None and not isinstance(value, kind if kind is not float else (int, float)):
        raise InvalidParameter(f"'{name}' must be a {kind.__name__}.", target=name)
    return value


# ---- ARM's reads ------------------------------------------------------------------------------

@router.get("/subscriptions", operation_id="Subscriptions_List")
def list_subscriptions(request: Request, api_version: str = Depends(resources_api)) -> Response:
    found = _authority(request).list_subscriptions(caller_of(request))
    return json_response({"value": [s.to_arm() for s in found], "count": {"type": "Total", "value": len(found)}})


@router.get("/subscriptions/{subscriptionId}", operation_id="Subscriptions_Get")
def get_subscription(request: Request, subscriptionId: str, api_version: str = Depends(resources_api)) -> Response:
    # The authentication middleware has already refused a missing or foreign subscription.
    subscription = _authority(request).subscription(subscriptionId)
    if subscription is None:
        raise NotFound(f"The subscription '{subscriptionId}' could not be found.", code="SubscriptionNotFound")
    return json_response(subscription.to_arm())


@router.get("/tenants", operation_id="Tenants_List")
def list_tenants(request: Request, api_version: str = Depends(resources_api)) -> Response:
    return json_response({"value": [t.to_arm() for t in _authority(request).list_tenants(caller_of(request))]})


# ---- Galley's management endpoints ------------------------------------------------------------

@router.get(IDENTITY + "/tenants", operation_id="Identity_ListTenants")
def manage_list_tenants(request: Request) -> Response:
    return json_response({"value": [t.to_arm() for t in _authority(request).all_tenants(caller_of(request))]})


@router.post(IDENTITY + "/tenants", operation_id="Identity_CreateTenant", status_code=201)
def create_tenant(request: Request, body: dict = Depends(json_body)) -> Response:
    tenant = _authority(request).create_tenant(caller_of(request), _optional(body, "displayName"),
                                               _optional(body, "issuer"), _optional(body, "tenantId"))
    return json_response(tenant.to_arm(), 201)


@router.post(IDENTITY + "/subscriptions", operation_id="Identity_CreateSubscription", status_code=201)
def create_subscription(request: Request, body: dict = Depends(json_body)) -> Response:
    subscription = _authority(request).create_subscription(
        caller_of(request), _optional(body, "displayName"), _optional(body, "tenantId"),
        _optional(body, "subscriptionId"))
    return json_response(subscription.to_arm(), 201)


def _with_secret(created: NewSecret) -> dict:
    return {**created.principal.to_wire(), "password": created.secret, "tenant": created.principal.tenant_id}


@router.get(IDENTITY + "/servicePrincipals", operation_id="Identity_ListServicePrincipals")
def list_principals(request: Request, tenantId: str | None = Query(None)) -> Response:
    found = _authority(request).list_principals(caller_of(request), tenantId)
    return json_response({"value": [p.to_wire() for p in found]})


@router.post(IDENTITY + "/servicePrincipals", operation_id="Identity_CreateServicePrincipal", status_code=201)
async def create_principal(request: Request, body: dict = Depends(json_body)) -> Response:
    """With `role` and `scopes` (az ad sp create-for-rbac --role R --scopes S…), the new principal
    is given that role at each scope, which the caller must be allowed to assign."""
    caller, access = caller_of(request), request.app.state.access
    role_name, scopes = _optional(body, "role"), body.get("scopes") or []
    if not isinstance(scopes, list) or not all(isinstance(s, str) for s in scopes) or (scopes and not role_name):
        raise InvalidParameter("'scopes' must be a list of scopes, given together with 'role'.", target="scopes")
    role = None
    if role_name:
        role = next((r for r in access.role_definitions(None) if r.role_name.lower() == role_name.lower()), None)
        if role is None:
            raise InvalidParameter(f"Role '{role_name}' does not exist.", target="role", code="RoleNotFound")
        scopes = [check_scope(display_scope(s)) for s in scopes]
        for scope in scopes:
            access.check(caller, "Microsoft.Authorization/roleAssignments/write", scope)
            check_assignable(role, scope)
    created = await run_in_threadpool(
        _authority(request).create_service_principal, caller, _optional(body, "displayName"),
        _optional(body, "tenantId"), _optional(body, "years", float), _optional(body, "endDate"))
    for scope in scopes:
        access.grant(caller, created.principal.id, role, scope)
    return json_response(_with_secret(created), 201, headers={"Cache-Control": "no-store"})


@router.get(IDENTITY + "/servicePrincipals/{principalId}", operation_id="Identity_GetServicePrincipal")
def get_principal(request: Request, principalId: str) -> Response:
    principal, secrets = _authority(request).principal_secrets(caller_of(request), principalId)
    return json_response({**principal.to_wire(), "passwordCredentials": [s.to_wire() for s in secrets]})


@router.delete(IDENTITY + "/servicePrincipals/{principalId}", operation_id="Identity_DeleteServicePrincipal")
def delete_principal(request: Request, principalId: str) -> Response:
    _authority(request).delete_principal(caller_of(request), principalId)
    return Response(status_code=204)


@router.post(IDENTITY + "/servicePrincipals/{principalId}/resetCredential",
             operation_id="Identity_ResetServicePrincipalCredential")
async def reset_credential(request: Request, principalId: str) -> Response:
    body = await json_body(request) if request.headers.get("content-length", "0") != "0" else {}
    created = await run_in_threadpool(
        _authority(request).reset_credential, caller_of(request), principalId,
        bool(_optional(body, "append", bool)), _optional(body, "years", float), _optional(body, "endDate"))
    return json_response(_with_secret(created), headers={"Cache-Control": "no-store"})


@router.get(IDENTITY + "/signingKeys", operation_id="Identity_ListSigningKeys")
def list_keys(request: Request) -> Response:
    return json_response({"value": request.app.state.keys.summary()})


@router.post(IDENTITY + "/signingKeys/rotate", operation_id="Identity_RotateSigningKeys")
def rotate_keys(request: Request) -> Response:
    caller = caller_of(request)
    if not caller.home:
        raise AuthorizationFailed(f"The client '{caller.object_id}' may not rotate signing keys: only "
                                  "principals of the home tenant may.")
    kid = request.app.state.keys.rotate()
    return json_response({"kid": kid, "value": request.app.state.keys.summary()})
