"""beginGetAccess / endGetAccess of disks and snapshots (Azure's Disks_GrantAccess,
Disks_RevokeAccess, Snapshots_GrantAccess, Snapshots_RevokeAccess).

Both are long-running operations in Azure; Galley's work ends at once, so the first answer is the
final one: 200 with the AccessUri for a grant, 200 with no body for a revoke (both SDK pollers and
az take a 200 without async headers as done)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from ...domain import ids
from ..wire import json_body, json_response
from ._signature import with_parameters
from .resources import SPECS, ResourceSpec

router = APIRouter(tags=["DiskAccess"])


def _register(spec: ResourceSpec) -> None:
    def grant(request: Request, api_version: str, body: dict, **params) -> Response:
        answer = request.app.state.disk_access.grant(spec.ref(params).id, spec.type, body, str(request.base_url))
        return json_response(answer)

    async def revoke(request: Request, api_version: str, **params) -> Response:
        await run_in_threadpool(request.app.state.disk_access.revoke, spec.ref(params).id, spec.type)
        return Response(status_code=200)

    api = (str, Depends(spec.api))
    req = (Request, None)
    router.add_api_route(f"{spec.item_path}/begingetaccess",
                         with_parameters(grant, spec.path_params, {"request": req, "api_version": api,
                                                                  "body": (dict, Depends(json_body))}),
                         methods=["POST"], operation_id=f"{spec.operation_prefix}_GrantAccess")
    router.add_api_route(f"{spec.item_path}/endgetaccess",
                         with_parameters(revoke, spec.path_params, {"request": req, "api_version": api}),
                         methods=["POST"], operation_id=f"{spec.operation_prefix}_RevokeAccess")


for _spec in SPECS:
    if _spec.type in (ids.DISK_TYPE, ids.SNAPSHOT_TYPE):
        _register(_spec)
