"""Serving the portal: `GET /` answers the shell (index.html) and `GET /portal/static/{path}` the
files under static/, with their MIME types and ETags (Starlette's StaticFiles).

Nothing here reads data: the page and its scripts are open paths (authentication.OPEN_PATHS) and
every request with data goes from the browser to the authenticated ARM API with the user's token.
Every answer carries the security headers below; the CSP allows no inline script or style, so
the portal's HTML and scripts must not use them either.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

STATIC = Path(__file__).parent / "static"
STATIC_URL = "/portal/static"

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
}


class _Secured:
    """Adds the security headers to every answer of the wrapped app (the static files); asks
    browsers to revalidate (ETag) rather than keep stale scripts after an upgrade."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def secured(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"cache-control"]
                headers += [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
                headers.append((b"cache-control", b"no-cache"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, secured)


def _shell() -> str:
    """index.html with a modulepreload link for every module under js/: the browser then fetches
    them all at once instead of discovering them import by import (a round trip per level)."""
    modules = sorted(p.relative_to(STATIC).as_posix() for p in (STATIC / "js").rglob("*.js"))
    links = "\n".join(f'  <link rel="modulepreload" href="{STATIC_URL}/{m}">' for m in modules)
    return (STATIC / "index.html").read_text().replace("  <!-- modulepreload -->", links)


def install(app: FastAPI) -> None:
    shell = _shell()  # read once: the package's files do not change while it runs

    async def index(_request: Request) -> HTMLResponse:
        return HTMLResponse(shell, headers={**SECURITY_HEADERS, "Cache-Control": "no-store"})

    app.add_route("/", index, methods=["GET", "HEAD"], include_in_schema=False)
    app.mount(STATIC_URL, _Secured(StaticFiles(directory=str(STATIC))), name="portal-static")
