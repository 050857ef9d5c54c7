"""What operators and load balancers ask a node (galley/observability does the work):

  GET /healthz                              open: 200 {"status": "ok"} while the process answers
  GET /readyz                               open: 200 when the database and every region's store
                                            answer, 503 + Retry-After otherwise or while draining
  GET /metrics                              Prometheus text; Galley.Operations/metrics/read at '/'
  GET /providers/Galley.Operations/nodes    the nodes, their roles, heartbeats and held work;
                                            Galley.Operations/nodes/read at '/'

Health answers name checks and outcomes, never a URL, a path or an error's text.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from ...observability import metrics, nodes
from ...observability.health import RETRY_AFTER_SECONDS
from ..wire import json_response

router = APIRouter(tags=["Operations"])
NODES_PATH = "/providers/Galley.Operations/nodes"


@router.get("/healthz", include_in_schema=False)
async def healthz() -> Response:
    return json_response({"status": "ok"})


@router.get("/readyz", include_in_schema=False)
def readyz(request: Request) -> Response:
    readiness = request.app.state.health.readiness()
    if readiness.ready:
        return json_response(readiness.to_json())
    return json_response(readiness.to_json(), 503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


@router.get("/metrics", include_in_schema=False)
def prometheus_metrics(request: Request) -> Response:
    return Response(request.app.state.metrics.render(), media_type=metrics.CONTENT_TYPE)


@router.get(NODES_PATH, include_in_schema=False)
def list_nodes(request: Request) -> Response:
    return json_response({"value": nodes.describe(request.app.state.nodes)})
