"""beginGetAccess / endGetAccess of disks and snapshots (Azure's Disks_GrantAccess,
Disks_RevokeAccess, Snapshots_GrantAccess, Snapshots_RevokeAccess).

Both are long-running operations in Azure; Galley's work ends at once, so the first answer is the
final one: 200 with the AccessUri for a grant, 200 with no body for a revoke (both SDK pollers and
az take a 200 without async headers as done). On several nodes, a grant or revoke of a disk whose
session another node holds is that node's to answer: it is forwarded there."""

from __future__ import annotations

import json

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from ...blobservice.session_holders import HOLDER_RETRY_SECONDS, HeldElsewhere
from ...domain import ids
from ...domain.errors import ArmError
from ..wire import json_body, json_response
from ._signature import with_parameters
from .resources import SPECS, ResourceSpec

router = APIRouter(tags=["DiskAccess"])


def _register(spec: ResourceSpec) -> None:
    async def grant(request: Request, api_version: str, body: dict, **params) -> Response:
        access = request.app.state.disk_access
        try:
            answer = await run_in_threadpool(access.grant, spec.ref(params).id, spec.type, body, str(request.base_url))
        except HeldElsewhere as elsewhere:
            return await _forward(request, elsewhere, json.dumps(body).encode())
        return json_response(answer)

    async def revoke(request: Request, api_version: str, **params) -> Response:
        try:
            await run_in_threadpool(request.app.state.disk_access.revoke, spec.ref(params).id, spec.type)
        except HeldElsewhere as elsewhere:
            return await _forward(request, elsewhere)
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


async def _forward(request: Request, elsewhere: HeldElsewhere, body: bytes | None = None) -> Response:
    response = await request.app.state.forwarder.to_holder(request, elsewhere, body)
    if response is not None:
        return response
    raise ArmError(f"The disk's access session is held by node '{elsewhere.holder.name}', which is not "
                   "answering; nothing was changed. Retry once it is back.", code="ServiceUnavailable",
                   status=503, retry_after=HOLDER_RETRY_SECONDS)


for _spec in SPECS:
    if _spec.type in (ids.DISK_TYPE, ids.SNAPSHOT_TYPE):
        _register(_spec)
