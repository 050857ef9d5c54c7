"""GET of one resource, the request a fleet makes most, served without FastAPI's routing and
parameter solving (which cost several times the lookup itself).

Only the plain case is taken here: a GET of an item path with a supported api-version and no
other query parameters, for a resource that exists. Anything else (errors included) goes on to
the regular routes, so every answer other than a found resource comes from one place.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from ..domain.errors import ArmError
from .routes.resources import SPECS
from .wire import render

_HEADERS = [(b"content-type", b"application/json")]


def _pattern(item_path: str) -> re.Pattern:
    return re.compile("^" + re.sub(r"\{[^}]+\}", "([^/]+)", re.escape(item_path).replace(r"\{", "{")
                                   .replace(r"\}", "}")) + "$")


class FastResourceReads:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.routes = [(_pattern(spec.item_path), spec) for spec in SPECS]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET":
            body = self._try(scope)
            if body is not None:
                await send({"type": "http.response.start", "status": 200,
                            "headers": [*_HEADERS, (b"content-length", str(len(body)).encode())]})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)

    def _try(self, scope: Scope) -> bytes | None:
        query = parse_qsl(scope["query_string"].decode("latin-1"))
        if len(query) != 1 or query[0][0] != "api-version":
            return None
        path = scope["path"]
        for pattern, spec in self.routes:
            match = pattern.match(path)
            if match is None:
                continue
            if query[0][1] not in spec.api.supported:
                return None
            params = dict(zip(spec.path_params, match.groups()))
            service = scope["app"].state.service
            try:
                body = orjson.dumps(render(service.get(spec.ref(params).id, spec.type)))
                scope.setdefault("state", {})["route_template"] = spec.item_path  # for the metrics
                return body
            except ArmError:
                return None
        return None
