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


@router.get("/healthz", operation_id="Galley_Liveness", summary="Whether the node's process answers",
            description="Open (no token): 200 `{\"status\": \"ok\"}` as long as the process serves "
                        "requests. A liveness probe: it checks nothing beyond the process.")
async def healthz() -> Response:
    return json_response({"status": "ok"})


@router.get("/readyz", operation_id="Galley_Readiness", summary="Whether the node can serve requests now",
            description="Open (no token): 200 when the database and every region's store answer, else "
                        "503 with Retry-After, also while the node drains before it stops. The answer "
                        "names each check and its outcome, never a URL, a path or an error's text. Load "
                        "balancers route by it.")
def readyz(request: Request) -> Response:
    readiness = request.app.state.health.readiness()
    if readiness.ready:
        return json_response(readiness.to_json())
    return json_response(readiness.to_json(), 503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})


@router.get("/metrics", operation_id="Galley_Metrics", summary="The node's metrics for Prometheus",
            description="Prometheus text exposition of this node's metrics: requests by route and "
                        "status, job queue depth and age by kind, replication bytes by region pair, "
                        "build durations, store bytes by region, token issuance, authentication "
                        "failures. Needs Galley.Operations/metrics/read at '/' (Reader there, or an "
                        "administrator).")
def prometheus_metrics(request: Request) -> Response:
    return Response(request.app.state.metrics.render(), media_type=metrics.CONTENT_TYPE)


@router.get(NODES_PATH, operation_id="Galley_ListNodes", summary="The nodes sharing this installation's database",
            description="Every Galley process registered in the database: its roles, state (Running, Lost "
                        "when its heartbeat is late, Stopped), heartbeat age, the operations its workers "
                        "hold and the uploads it is receiving. What `galley status` shows. Needs "
                        "Galley.Operations/nodes/read at '/'.")
def list_nodes(request: Request) -> Response:
    return json_response({"value": nodes.describe(request.app.state.nodes)})
