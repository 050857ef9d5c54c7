"""A sliver of Microsoft Graph, for the clients that name principals: `az role assignment list`
resolves the principals of the assignments it shows with

  POST /v1.0/directoryObjects/getByIds   {"ids": [...], "types": [...]}

Answers only with the service principals, users, groups and managed identities of tenants the caller
may manage (others' ids are left out, as Graph leaves out what it cannot see)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from ...domain.errors import InvalidParameter
from ..wire import json_body, json_response
from .accounts import caller_of

router = APIRouter(tags=["Directory"])


@router.post("/v1.0/directoryObjects/getByIds", operation_id="Directory_GetByIds")
def get_by_ids(request: Request, body: dict = Depends(json_body)) -> Response:
    ids = body.get("ids")
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids) or len(ids) > 1000:
        raise InvalidParameter("'ids' must be a list of at most 1000 object ids.", target="ids")
    caller = caller_of(request)
    wanted = {i.lower() for i in ids}
    found = []
    for principal in request.app.state.authority.list_principals(caller, None):
        if principal.id in wanted:
            found.append({"@odata.type": "#microsoft.graph.servicePrincipal", "id": principal.id,
                          "appId": principal.app_id, "displayName": principal.display_name,
                          "servicePrincipalNames": [principal.app_id], "servicePrincipalType": "Application"})
    for user in request.app.state.users.list(caller):
        if user.id in wanted:
            found.append(user.to_graph())
    for group in request.app.state.access.groups(caller):
        if group["id"] in wanted:
            found.append({"@odata.type": "#microsoft.graph.group", "id": group["id"],
                          "displayName": group["displayName"], "mailNickname": group["displayName"]})
    return json_response({"@odata.context": "https://graph.microsoft.com/v1.0/$metadata#directoryObjects",
                          "value": found})
