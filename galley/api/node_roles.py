"""A node without the `api` role (`galley serve --role worker`) answers only what every node
answers, /healthz, /readyz and /metrics: anything else is a 421 MisdirectedRequest, so a client
or a misconfigured load balancer learns at once that it reached the wrong node."""

from __future__ import annotations

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from ..observability.nodes import API, ordered

EVERY_NODE = frozenset({"/healthz", "/readyz", "/metrics"})


class RoleGate:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        roles = scope["app"].state.roles if scope["type"] == "http" else None
        if roles is None or API in roles or scope["path"].rstrip("/") in EVERY_NODE:
            await self.app(scope, receive, send)
            return
        body = orjson.dumps({"error": {
            "code": "MisdirectedRequest", "target": None,
            "message": f"This Galley node runs the roles {', '.join(ordered(roles))}, not api: it answers only "
                       "/healthz, /readyz and /metrics. Send ARM requests to a node with the api role."}})
        await send({"type": "http.response.start", "status": 421, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
