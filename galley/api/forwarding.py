"""Handing a request on to the node that holds what it is about, and relaying that node's answer.

A disk access session's pages live in the home of the node that granted it, so on several nodes
behind a balancer a Put Page, a revoke or a second grant that reaches another node is sent on to
that one. The request goes as it came (same method, path, query, body and headers, the caller's
token or SAS included: the holder authenticates and authorizes it again, so forwarding grants
nothing) with the client's Host kept, so URLs the holder writes into its answer name the address
the client used. A forwarded request is marked, and a node never forwards a marked request again.
"""

from __future__ import annotations

import httpx
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from ..blobservice.session_holders import HeldElsewhere

FORWARDED_BY = "x-galley-forwarded-by"
# Headers about one connection, not the request (RFC 9110 7.6.1), and those httpx sets itself.
_HOP_BY_HOP = frozenset({"connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te",
                         "trailer", "transfer-encoding", "upgrade", "content-length"})
TIMEOUT = httpx.Timeout(60.0, connect=5.0)


class NodeUnreachable(Exception):
    """The holding node did not answer."""


class Forwarder:
    def __init__(self, node_name: str, ca_bundle: str | None) -> None:
        self.node_name = node_name
        self.verify: str | bool = ca_bundle or True
        self._client: httpx.AsyncClient | None = None

    @staticmethod
    def was_forwarded(request: Request) -> bool:
        return FORWARDED_BY in request.headers

    async def to_holder(self, request: Request, elsewhere: HeldElsewhere, body: bytes | None = None) -> Response | None:
        """The answer of the node holding the session; None when it cannot be had: the holder is
        down or does not answer, or this request was forwarded here already (never twice)."""
        if self.was_forwarded(request) or not elsewhere.reachable:
            return None
        try:
            return await self.forward(request, elsewhere.holder.url, body)
        except NodeUnreachable:
            return None

    async def forward(self, request: Request, node_url: str, body: bytes | None = None) -> Response:
        """`body`: the request's body when a dependency has read it already (as JSON)."""
        scope = request.scope
        target = node_url.rstrip("/") + scope.get("raw_path", scope["path"].encode()).decode("latin-1")
        if scope.get("query_string"):
            target += "?" + scope["query_string"].decode("latin-1")
        headers = [(k, v) for k, v in request.headers.raw if k.decode("latin-1").lower() not in _HOP_BY_HOP]
        headers.append((FORWARDED_BY.encode(), self.node_name.encode()))
        if body is None:
            body = await request.body()
        client = self._client_for_this_loop()
        try:
            upstream = await client.send(client.build_request(request.method, target, headers=headers, content=body),
                                         stream=True)
        except httpx.HTTPError as error:
            raise NodeUnreachable(f"{node_url}: {type(error).__name__}") from error
        answer_headers = {k: v for k, v in upstream.headers.items()
                          if k.lower() not in (_HOP_BY_HOP - {"content-length"}) | {"date", "server"}}
        return StreamingResponse(upstream.aiter_raw(), status_code=upstream.status_code, headers=answer_headers,
                                 background=BackgroundTask(upstream.aclose))

    def _client_for_this_loop(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(verify=self.verify, timeout=TIMEOUT, follow_redirects=False)
        return self._client
