"""Galley's OpenAPI document (/openapi.json) and its Swagger UI (/docs), served with no internet:
the UI's assets come from the swagger-ui-bundle package, not a CDN.

`install(app)` replaces FastAPI's document with the one document.py assembles; create_app calls
it with the app built with docs_url=None and redoc_url=None. The document and the pages are open
(authentication.OPEN_PATHS): they tell nothing a client could not learn from Azure's own spec.
"""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

from .document import build

DOCS = "/docs"
ASSETS = DOCS + "/static"
OAUTH2_REDIRECT = DOCS + "/oauth2-redirect"


def _token_url(app: FastAPI) -> str:
    with app.state.identity_store.read() as tx:
        home = next((t.id for t in tx.tenants() if t.is_home), "organizations")
    return f"{app.state.settings.public_url.rstrip('/')}/{home}/oauth2/v2.0/token"


def install(app: FastAPI) -> None:
    cached: dict = {}

    def openapi() -> dict:
        # Rebuilt when routes are added after start (FastAPI counts its routers' changes).
        version = app.router._get_routes_version() if hasattr(app.router, "_get_routes_version") \
            else len(app.routes)
        if cached.get("version") != version:
            cached["document"] = build(app, _token_url(app))
            cached["version"] = version
        return cached["document"]

    app.openapi = openapi

    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(
            openapi_url=root + (app.openapi_url or "/openapi.json"), title=f"{app.title} API",
            swagger_js_url=f"{root}{ASSETS}/swagger-ui-bundle.js", swagger_css_url=f"{root}{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS}/favicon-32x32.png", oauth2_redirect_url=root + OAUTH2_REDIRECT,
            swagger_ui_parameters={"persistAuthorization": True})

    async def oauth2_redirect(_request: Request) -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    app.add_route(DOCS, swagger_ui, include_in_schema=False)
    app.add_route(OAUTH2_REDIRECT, oauth2_redirect, include_in_schema=False)
    app.mount(ASSETS, StaticFiles(directory=str(swagger_ui_path)), name="swagger-ui")
