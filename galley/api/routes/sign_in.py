"""The authority's pages for people (identity/sign_in.py does the work):

  GET  /{tenant}/oauth2/v2.0/authorize     the sign-in page (or, in a live session, a code at once)
  POST /{tenant}/oauth2/v2.0/authorize     the page's form: name, password, CSRF token
  GET  /{tenant}/oauth2/v2.0/logout        ends the session; back to post_logout_redirect_uri
  GET  /identity/static/sign-in.css        the page's style sheet

These paths are open (authentication.OPEN_PATHS): they are how a person gets a token. The page is
a static template with no script; its form carries a CSRF token that must equal the value of a
SameSite=Strict, HttpOnly cookie set with the page (double submit), so another site cannot post
a password into it. Every answer carries the portal's security headers and is never cached.
"""

from __future__ import annotations

import hmac
import secrets as random
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.concurrency import run_in_threadpool

from ...identity.authority import OAuthError
from ...identity.sign_in import PUBLIC_CLIENTS, AuthorizeError, AuthorizeRequest
from ...portal.routes import SECURITY_HEADERS
from .authority import read_form

router = APIRouter(tags=["Authority"])

PAGES = Path(__file__).resolve().parents[2] / "identity" / "sign_in_page"
STYLESHEET = "/identity/static/sign-in.css"
SESSION_COOKIE = "galley_session"
CSRF_COOKIE = "galley_csrf"
_templates = Environment(loader=FileSystemLoader(str(PAGES)), autoescape=select_autoescape(["html"]))
_NO_STORE = {**SECURITY_HEADERS, "Cache-Control": "no-store", "Pragma": "no-cache"}


def _origins(request: Request) -> tuple[str, ...]:
    return request.app.state.tokens.audience.origins


def _secure(request: Request) -> bool:
    return request.url.scheme == "https"


def _page(template: str, status: int = 200, **values) -> HTMLResponse:
    html = _templates.get_template(template).render(stylesheet=STYLESHEET, **values)
    return HTMLResponse(html, status_code=status, headers=_NO_STORE)


def _message(title: str, message: str, status: int, error: bool = True, link: str | None = None,
             link_text: str = "") -> HTMLResponse:
    return _page("message.html", status, title=title, message=message, error=error, link=link,
                 link_text=link_text)


def _redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303, headers=_NO_STORE)


def _sign_in_page(request: Request, wanted: AuthorizeRequest, error: str | None = None,
                  username: str = "", status: int = 200) -> HTMLResponse:
    csrf = request.cookies.get(CSRF_COOKIE, "")
    if not (32 <= len(csrf) <= 64 and csrf.replace("-", "").replace("_", "").isalnum()):
        csrf = random.token_urlsafe(32)
    page = _page("sign_in.html", status, action=request.url.path, fields=wanted.form_fields(),
                 csrf_token=csrf, client_name=PUBLIC_CLIENTS[wanted.client_id], error=error,
                 username=username or wanted.login_hint)
    page.set_cookie(CSRF_COOKIE, csrf, httponly=True, samesite="strict", secure=_secure(request), path="/")
    return page


def _refused(error: AuthorizeError) -> Response:
    if error.request is not None:
        return _redirect(error.request.error_redirect(error.error, error.description))
    return _message("Sign-in request refused", f"{error.error}: {error.description}", 400)


@router.get("/{tenant}/oauth2/v2.0/authorize", operation_id="Authority_Authorize", include_in_schema=False)
def authorize(request: Request, tenant: str) -> Response:
    sign_in = request.app.state.sign_in
    params = dict(request.query_params)
    try:
        wanted = sign_in.authorize_request(tenant, params, _origins(request))
    except AuthorizeError as error:
        return _refused(error)
    if wanted.prompt != "login":
        session = sign_in.session_of_cookie(request.cookies.get(SESSION_COOKIE), wanted.tenant)
        if session is not None:
            return _redirect(sign_in.code_redirect(wanted, session))
    if wanted.prompt == "none":
        return _redirect(wanted.error_redirect("login_required", "AADSTS50058: No one is signed in."))
    return _sign_in_page(request, wanted)


@router.post("/{tenant}/oauth2/v2.0/authorize", operation_id="Authority_SignIn", include_in_schema=False)
async def submit_sign_in(request: Request, tenant: str) -> Response:
    sign_in = request.app.state.sign_in
    try:
        form = await read_form(request)
    except OAuthError as error:
        return _message("Sign-in request refused", error.description, 400)
    try:
        wanted = sign_in.authorize_request(tenant, form, _origins(request))
    except AuthorizeError as error:
        return _refused(error)
    cookie = request.cookies.get(CSRF_COOKIE, "")
    if not cookie or not hmac.compare_digest(cookie.encode(), form.get("csrf_token", "").encode()):
        return _sign_in_page(request, wanted, "This sign-in form has expired or was not sent from this page. "
                             "Enter your name and password again.", form.get("username", ""), status=400)
    username, password = form.get("username", ""), form.get("password", "")
    try:
        session, session_cookie = await run_in_threadpool(sign_in.sign_in, wanted, username, password)
    except OAuthError as error:
        message = ("Your user name or password is incorrect." if error.code == 50126
                   else error.description.split(": ", 1)[-1])
        return _sign_in_page(request, wanted, message, username, status=400)
    answer = _redirect(sign_in.code_redirect(wanted, session))
    answer.set_cookie(SESSION_COOKIE, session_cookie, max_age=int(sign_in.session_seconds), httponly=True,
                      samesite="lax", secure=_secure(request), path="/")
    return answer


@router.get("/{tenant}/oauth2/v2.0/logout", operation_id="Authority_Logout", include_in_schema=False)
def logout(request: Request, tenant: str) -> Response:
    """Ends the browser's session (and so every token issued in it), then goes back to
    post_logout_redirect_uri when that is on this server; else says so on a page."""
    request.app.state.sign_in.sign_out(request.cookies.get(SESSION_COOKIE))
    back = request.query_params.get("post_logout_redirect_uri", "")
    if back and _on_this_server(back, _origins(request)):
        answer: Response = _redirect(back)
    else:
        answer = _message("Signed out", "You have signed out of Galley.", 200, error=False, link="/",
                          link_text="Sign in again")
    answer.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="lax", secure=_secure(request))
    return answer


def _on_this_server(uri: str, origins) -> bool:
    try:
        parts = urlsplit(uri)
    except ValueError:
        return False
    return f"{parts.scheme}://{parts.netloc}".lower() in {o.rstrip("/").lower() for o in origins} \
        and not parts.username


@router.get(STYLESHEET, operation_id="Authority_SignInStyles", include_in_schema=False)
def stylesheet() -> Response:
    return FileResponse(PAGES / "sign_in.css", media_type="text/css; charset=utf-8",
                        headers={**SECURITY_HEADERS, "Cache-Control": "no-cache"})
