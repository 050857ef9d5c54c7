"""People sign in: users (galley ad user), the authorization-code + PKCE flow of Galley's
authority, the sign-in page (CSRF, security headers), sign-out revoking the session's tokens, the
password and refresh-token grants, and the portal's auth.js in a real browser."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import secrets
import socket
import sqlite3
import time
import uuid
from pathlib import Path

import httpx
import jwt
import pytest

from galley.identity.sign_in import AZURE_CLI_CLIENT_ID, PORTAL_CLIENT_ID
from galley.identity.tokens import SESSION_CACHE_SECONDS

from . import admin_http
from .browser import TOKEN_KEY, new_page, screenshot, sign_in
from .servers import SUBSCRIPTION, ThreadServer

GROUP = f"/subscriptions/{SUBSCRIPTION}/resourceGroups/rg"
GALLERY = f"{GROUP}/providers/Microsoft.Compute/galleries/gal"
SUBSCRIPTION_URL = f"/subscriptions/{SUBSCRIPTION}?api-version=2022-12-01"
AUTHORITY = "/organizations/oauth2/v2.0"
PASSWORD = "Correct-horse-7"


@pytest.fixture(scope="module")
def cli_server(tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        for name in [name for name in os.environ if name.startswith("GALLEY_")]:
            patch.delenv(name)
        with ThreadServer(tmp_path_factory.mktemp("sign-in")) as running:
            assert admin_http.put(f"{running.url}{GROUP}?api-version=2024-11-01",
                                  json={"location": "eastus"}).status_code in (200, 201)
            made = admin_http.put(f"{running.url}{GALLERY}?api-version=2024-03-03", json={"location": "eastus"})
            assert made.status_code in (200, 201, 202), made.text
            yield running


def new_user(url: str, name: str | None = None, password: str = PASSWORD) -> dict:
    response = admin_http.post(f"{url}/providers/Galley.Identity/users",
                               json={"name": name or f"u{uuid.uuid4().hex[:8]}", "password": password})
    assert response.status_code == 201, response.text
    return response.json()


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).decode().rstrip("=")
    return verifier, challenge


class Browser:
    """The authorize round trip as a browser makes it (cookies kept), without JavaScript."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.http = httpx.Client(base_url=url, follow_redirects=False)
        self.verifier, self.challenge = pkce()
        self.state = secrets.token_urlsafe(8)

    def params(self, **changes) -> dict:
        return {"client_id": PORTAL_CLIENT_ID, "response_type": "code", "redirect_uri": f"{self.url}/",
                "state": self.state, "code_challenge": self.challenge, "code_challenge_method": "S256",
                "scope": f"{self.url}/.default openid profile", **changes}

    def page(self, **changes) -> httpx.Response:
        return self.http.get(f"{AUTHORITY}/authorize", params=self.params(**changes))

    def submit(self, username: str, password: str, csrf: str | None = None, **changes) -> httpx.Response:
        page = self.page(**changes)
        assert page.status_code == 200, page.text
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        form = {**self.params(**changes), "csrf_token": token if csrf is None else csrf,
                "username": username, "password": password}
        return self.http.post(f"{AUTHORITY}/authorize", data=form)

    def code(self, username: str, password: str = PASSWORD) -> str:
        """A code: from the sign-in page, or at once while this browser's session lasts."""
        answer = self.page()
        if answer.status_code != 303:
            answer = self.submit(username, password)
        assert answer.status_code == 303, answer.text
        location = httpx.URL(answer.headers["location"])
        assert str(location.copy_with(query=None)) == f"{self.url}/"
        assert location.params["state"] == self.state
        return location.params["code"]

    def redeem(self, code: str, **changes) -> httpx.Response:
        return self.http.post(f"{AUTHORITY}/token", data={
            "grant_type": "authorization_code", "client_id": PORTAL_CLIENT_ID, "code": code,
            "redirect_uri": f"{self.url}/", "code_verifier": self.verifier, **changes})

    def token(self, username: str, password: str = PASSWORD) -> str:
        answer = self.redeem(self.code(username, password))
        assert answer.status_code == 200, answer.text
        return answer.json()["access_token"]


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def oauth_error(response: httpx.Response, status: int, error: str, code: int) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error and body["error_codes"] == [code], body
    return body


# ---- users ------------------------------------------------------------------------------------

def test_users_made_with_the_cli_are_kept_hashed_and_can_be_listed_shown_and_deleted(galley, cli_server):
    password = "Plain-text-never-stored-42"
    made = galley("ad", "user", "create", "--name", "carol", "--password", password,
                  "--display-name", "Carol Jones").json()
    assert made["displayName"] == "Carol Jones" and made["userPrincipalName"].startswith("carol@")
    assert made["userPrincipalName"].endswith(".galley.local") and "password" not in json.dumps(made).lower()
    assert galley("ad", "user", "show", "--id", "carol").json()["id"] == made["id"]
    assert made["id"] in galley("ad", "user", "list", "-o", "tsv").stdout
    weak = galley("ad", "user", "create", "--name", "dave", "--password", "password", check=False)
    assert weak.code == 1 and "PasswordComplexity" in weak.stderr

    database = sqlite3.connect(cli_server.home / "galley.db")
    try:
        (stored,) = database.execute("SELECT password_hash FROM users WHERE id = ?", (made["id"],)).fetchone()
        assert stored.startswith("scrypt$") and password not in stored
        dump = "\n".join(database.iterdump())
        assert password not in dump
    finally:
        database.close()
    # The user signs in with that password; once deleted, its token stops working.
    token = Browser(cli_server.url).token("carol", password)
    assert httpx.get(f"{cli_server.url}/tenants?api-version=2022-12-01", headers=bearer(token)).status_code == 200
    galley("ad", "user", "delete", "--id", "carol")
    refused = httpx.get(f"{cli_server.url}/tenants?api-version=2022-12-01", headers=bearer(token))
    assert refused.status_code == 401


def test_a_users_token_carries_its_roles_given_by_name_with_the_cli(galley, cli_server):
    user = new_user(cli_server.url, "erin")
    token = Browser(cli_server.url).token("erin")
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["oid"] == user["id"] and claims["idtyp"] == "user" and claims["appid"] == PORTAL_CLIENT_ID
    assert claims["upn"] == user["userPrincipalName"] and claims["sid"]
    assert claims["exp"] - claims["iat"] == 3600
    assert httpx.get(cli_server.url + SUBSCRIPTION_URL, headers=bearer(token)).status_code == 403

    galley("role", "assignment", "create", "--assignee", "erin", "--role", "Reader", "--scope", GALLERY)
    gallery = f"{cli_server.url}{GALLERY}?api-version=2024-03-03"
    assert httpx.get(gallery, headers=bearer(token)).status_code == 200
    assert httpx.delete(gallery, headers=bearer(token)).status_code == 403
    listed = galley("role", "assignment", "list", "--scope", GALLERY, "--assignee", user["userPrincipalName"]).json()
    assert [(a["principalId"], a["principalType"], a["roleDefinitionName"]) for a in listed] == [
        (user["id"], "User", "Reader")]


def test_users_manage_no_directory_even_in_the_home_tenant(cli_server):
    new_user(cli_server.url, "frank")
    token = Browser(cli_server.url).token("frank")
    made = httpx.post(f"{cli_server.url}/providers/Galley.Identity/servicePrincipals", headers=bearer(token),
                      json={"displayName": "sneaky"})
    assert made.status_code == 404 and made.json()["error"]["code"] == "TenantNotFound"
    users = httpx.post(f"{cli_server.url}/providers/Galley.Identity/users", headers=bearer(token),
                       json={"name": "mallory", "password": PASSWORD})
    assert users.status_code == 404
    assert httpx.post(f"{cli_server.url}/providers/Galley.Identity/signingKeys/rotate",
                      headers=bearer(token)).status_code == 403
    # Reading its own tenant's directory is allowed (to name people in role assignments).
    listed = httpx.get(f"{cli_server.url}/v1.0/users", headers=bearer(token))
    assert listed.status_code == 200 and "frank@" in listed.text


def test_graph_users_as_az_ad_user_sends_them(cli_server):
    tenant = admin_http.get(f"{cli_server.url}/tenants?api-version=2022-12-01").json()["value"][0]["tenantId"]
    upn = f"grace@{tenant}.galley.local"
    made = admin_http.post(f"{cli_server.url}/v1.0/users", json={
        "accountEnabled": True, "displayName": "Grace", "mailNickname": "grace", "userPrincipalName": upn,
        "passwordProfile": {"password": PASSWORD, "forceChangePasswordNextSignIn": False}})
    assert made.status_code == 201, made.text
    found = admin_http.get(f"{cli_server.url}/v1.0/users", params={"$filter": f"userPrincipalName eq '{upn}'"})
    assert [u["id"] for u in found.json()["value"]] == [made.json()["id"]]
    by_ids = admin_http.post(f"{cli_server.url}/v1.0/directoryObjects/getByIds", json={"ids": [made.json()["id"]]})
    assert by_ids.json()["value"][0]["@odata.type"] == "#microsoft.graph.user"
    wrong_domain = admin_http.post(f"{cli_server.url}/v1.0/users", json={
        "displayName": "X", "userPrincipalName": "x@example.com", "passwordProfile": {"password": PASSWORD}})
    assert wrong_domain.status_code == 400 and wrong_domain.json()["error"]["target"] == "userPrincipalName"


# ---- the authorization-code flow --------------------------------------------------------------

def test_code_and_pkce_refusals(cli_server):
    new_user(cli_server.url, "heidi")
    flow = Browser(cli_server.url)
    # Wrong verifier; the code is spent by that attempt.
    code = flow.code("heidi")
    oauth_error(flow.redeem(code, code_verifier=pkce()[0]), 400, "invalid_grant", 501481)
    oauth_error(flow.redeem(code), 400, "invalid_grant", 54005)
    # Wrong redirect_uri, wrong client.
    elsewhere = flow.redeem(flow.code("heidi"), redirect_uri=f"{cli_server.url}/elsewhere")
    oauth_error(elsewhere, 400, "invalid_grant", 500117)
    oauth_error(flow.redeem(flow.code("heidi"), client_id=str(uuid.uuid4())), 400, "invalid_grant", 700005)
    # A reused code: refused, and the session it came from ends (its first token too).
    code = flow.code("heidi")
    first = flow.redeem(code)
    assert first.status_code == 200
    oauth_error(flow.redeem(code), 400, "invalid_grant", 54005)
    revoked = httpx.get(f"{cli_server.url}/tenants?api-version=2022-12-01",
                        headers=bearer(first.json()["access_token"]))
    assert revoked.status_code == 401 and "session" in revoked.json()["error"]["message"]
    # An expired code.
    sign_in = cli_server.app.state.sign_in
    sign_in.code_seconds = 0
    try:
        oauth_error(Browser(cli_server.url).redeem(Browser(cli_server.url).code("heidi")), 400, "invalid_grant", 70008)
    finally:
        sign_in.code_seconds = 60
    oauth_error(flow.redeem("not-a-code"), 400, "invalid_grant", 70008)


def test_wrong_password_and_unknown_user_get_the_same_answer(cli_server):
    new_user(cli_server.url, "ivan")
    pages = [Browser(cli_server.url).submit(name, password)
             for name, password in (("ivan", "Wrong-password-1"), ("nobody", PASSWORD))]
    alerts = []
    for page in pages:
        assert page.status_code == 400 and "location" not in page.headers
        assert "galley_session" not in page.headers.get("set-cookie", "")
        alerts.append(re.search(r'<p id="sign-in-error"[^>]*>([^<]*)</p>', page.text).group(1))
    assert alerts == ["Your user name or password is incorrect."] * 2
    grants = [httpx.post(f"{cli_server.url}{AUTHORITY}/token", data={
        "grant_type": "password", "client_id": PORTAL_CLIENT_ID, "username": name, "password": password})
        for name, password in (("ivan", "Wrong-password-1"), ("nobody", PASSWORD))]
    bodies = [oauth_error(g, 400, "invalid_grant", 50126) for g in grants]
    assert bodies[0]["error_description"] == bodies[1]["error_description"]


def test_repeated_wrong_passwords_lock_the_name_out_whether_or_not_it_is_a_users(cli_server):
    new_user(cli_server.url, "judy")
    alerts = []
    for name in ("judy", "nobody-at-all"):
        for _ in range(5):
            Browser(cli_server.url).submit(name, "Wrong-password-1")
        locked = Browser(cli_server.url).submit(name, PASSWORD)
        assert locked.status_code == 400 and "location" not in locked.headers
        alert = re.search(r'<p id="sign-in-error"[^>]*>([^<]*)</p>', locked.text).group(1)
        alerts.append(re.sub(r"\d+", "N", alert))  # "Try again in N seconds"
    assert "locked" in alerts[0] and alerts[0] == alerts[1]
    grant = httpx.post(f"{cli_server.url}{AUTHORITY}/token", data={
        "grant_type": "password", "client_id": PORTAL_CLIENT_ID, "username": "judy", "password": PASSWORD})
    assert oauth_error(grant, 400, "invalid_grant", 50053) and int(grant.headers["retry-after"]) <= 60


def test_bad_authorize_requests_are_shown_or_sent_back_as_oauth_errors(cli_server):
    flow = Browser(cli_server.url)
    # An untrusted client or redirect_uri: an error page, never a redirect to it.
    for changes in ({"client_id": str(uuid.uuid4())}, {"redirect_uri": "https://evil.example/"},
                    {"redirect_uri": f"{cli_server.url}/somewhere-else"}):
        page = flow.page(**changes)
        assert page.status_code == 400 and "location" not in page.headers, changes
    # The rest: back to the portal with error and state.
    for changes, error in (({"code_challenge": ""}, "invalid_request"),
                           ({"code_challenge_method": "plain"}, "invalid_request"),
                           ({"response_type": "token"}, "unsupported_response_type")):
        answer = flow.page(**changes)
        assert answer.status_code == 303, changes
        location = httpx.URL(answer.headers["location"])
        assert location.params["error"] == error and location.params["state"] == flow.state
    assert httpx.get(f"{cli_server.url}/{uuid.uuid4()}/oauth2/v2.0/authorize",
                     params=flow.params()).status_code == 400


def test_the_sign_in_page_is_a_static_page_with_strict_headers_and_a_csrf_token(cli_server):
    new_user(cli_server.url, "ken")
    flow = Browser(cli_server.url)
    page = flow.page()
    headers = page.headers
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert "script-src 'self'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff"
    assert headers["cache-control"] == "no-store" and headers["referrer-policy"] == "no-referrer"
    assert "<script" not in page.text and " style=" not in page.text
    assert '<label for="username">' in page.text and '<label for="password">' in page.text
    cookie = next(c for c in page.headers.get_list("set-cookie") if c.startswith("galley_csrf="))
    assert "HttpOnly" in cookie and "samesite=strict" in cookie.lower()
    css = httpx.get(f"{cli_server.url}/identity/static/sign-in.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    # A form posted without the cookie's token (from another site) is refused and signs no one in.
    forged = flow.submit("ken", PASSWORD, csrf="forged-token-forged-token-forged-token")
    assert forged.status_code == 400 and "location" not in forged.headers
    other = httpx.post(f"{cli_server.url}{AUTHORITY}/authorize", data={
        **flow.params(), "csrf_token": "x" * 43, "username": "ken", "password": PASSWORD})
    assert other.status_code == 400 and "location" not in other.headers and "galley_session" not in other.text


def test_a_session_answers_at_once_and_sign_out_revokes_its_tokens(cli_server):
    new_user(cli_server.url, "liam")
    flow = Browser(cli_server.url)
    token = flow.token("liam")
    tenants = f"{cli_server.url}/tenants?api-version=2022-12-01"
    assert httpx.get(tenants, headers=bearer(token)).status_code == 200
    # The authority's session: a new authorize request is answered with a code, no page.
    again = flow.page()
    assert again.status_code == 303 and "code=" in again.headers["location"]
    second = flow.redeem(httpx.URL(again.headers["location"]).params["code"]).json()["access_token"]

    out = flow.http.get(f"{AUTHORITY}/logout", params={"post_logout_redirect_uri": f"{cli_server.url}/"})
    assert out.status_code == 303 and out.headers["location"] == f"{cli_server.url}/"
    for revoked in (token, second):
        answer = httpx.get(tenants, headers=bearer(revoked))
        assert answer.status_code == 401 and answer.json()["error"]["code"] == "InvalidAuthenticationToken"
    assert flow.page().status_code == 200  # the sign-in page again
    # Somewhere else than this server: a page, not a redirect.
    assert flow.http.get(f"{AUTHORITY}/logout", params={"post_logout_redirect_uri": "https://evil.example/"}
                         ).status_code == 200


def test_password_and_refresh_token_grants(cli_server):
    user = new_user(cli_server.url, "mia")
    answer = httpx.post(f"{cli_server.url}{AUTHORITY}/token", data={
        "grant_type": "password", "client_id": AZURE_CLI_CLIENT_ID, "username": user["userPrincipalName"],
        "password": PASSWORD, "scope": f"{cli_server.url}/.default openid profile offline_access", "client_info": "1"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert jwt.decode(body["id_token"], options={"verify_signature": False})["oid"] == user["id"]
    refreshed = httpx.post(f"{cli_server.url}{AUTHORITY}/token", data={
        "grant_type": "refresh_token", "client_id": AZURE_CLI_CLIENT_ID,
        "refresh_token": body["refresh_token"], "scope": f"{cli_server.url}/.default"})
    assert refreshed.status_code == 200, refreshed.text
    assert httpx.get(f"{cli_server.url}/tenants?api-version=2022-12-01",
                     headers=bearer(refreshed.json()["access_token"])).status_code == 200
    reused = httpx.post(f"{cli_server.url}{AUTHORITY}/token", data={
        "grant_type": "refresh_token", "client_id": AZURE_CLI_CLIENT_ID,
        "refresh_token": body["refresh_token"]})
    oauth_error(reused, 400, "invalid_grant", 700082)
    # A service principal's secret grant never signs in a user by its object id.
    as_client = httpx.post(f"{cli_server.url}{AUTHORITY.replace('organizations', user['tenantId'])}/token", data={
        "grant_type": "client_credentials", "client_id": user["id"], "client_secret": PASSWORD,
        "scope": f"{cli_server.url}/.default"})
    assert as_client.status_code == 400 and as_client.json()["error"] == "invalid_client"


# ---- in the browser -----------------------------------------------------------------------------

def test_signing_in_and_out_of_the_portal_in_a_browser(browser, cli_server):
    expect = pytest.importorskip("playwright.sync_api").expect
    new_user(cli_server.url, "nina")
    page = new_page(browser)
    page.goto(cli_server.url + "/")
    expect(page.get_by_role("heading", name="Sign in to Galley")).to_be_visible()
    screenshot(page, "sign-in-page")
    page.get_by_label("User name").fill("nina")
    page.get_by_label("Password").fill("Wrong-password-1")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("Your user name or password is incorrect.")
    sign_in(page, cli_server.url, "nina", PASSWORD)
    record = json.loads(page.evaluate(f"sessionStorage.getItem({json.dumps(TOKEN_KEY)})"))
    claims = jwt.decode(record["accessToken"], options={"verify_signature": False})
    assert claims["name"] == "nina" and abs(record["expiresOn"] - claims["exp"]) <= 5
    assert "code=" not in page.url and "state=" not in page.url
    screenshot(page, "signed-in")
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in to Galley")).to_be_visible()
    assert page.evaluate(f"sessionStorage.getItem({json.dumps(TOKEN_KEY)})") is None
    gone = httpx.get(f"{cli_server.url}/tenants?api-version=2022-12-01", headers=bearer(record["accessToken"]))
    assert gone.status_code == 401


# ---- az login -u … -p … ------------------------------------------------------------------------

def _port_443_free() -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", 443))
            return True
        except OSError:
            return False


@pytest.mark.slow
def test_az_login_with_a_users_name_and_password(tmp_path):
    """MSAL asks `https://{host}/common/userrealm/…` without the port before a password grant, so
    `az login -u` works against a server on port 443 (here, if that port is free to bind)."""
    from .test_az_cli import AZ, SUBSCRIPTION_A, HttpsServer, new_az

    if not os.access(AZ, os.X_OK):
        pytest.skip(f"the Azure CLI is not installed at {AZ}")
    if not _port_443_free():
        pytest.skip("port 443 is taken or may not be bound here")
    (tmp_path / "home").mkdir()
    server = HttpsServer(tmp_path / "home")
    server.port, server.url = 443, "https://127.0.0.1:443"
    server.start()
    try:
        creds = server.credentials
        admin = httpx.post(f"{server.url}/{creds['tenantId']}/oauth2/v2.0/token", verify=server.tls(), data={
            "grant_type": "client_credentials", "client_id": creds["clientId"],
            "client_secret": creds["clientSecret"], "scope": f"{server.url}/.default"}).json()["access_token"]
        user = httpx.post(f"{server.url}/providers/Galley.Identity/users", verify=server.tls(), headers=bearer(admin),
                          json={"name": "olivia", "password": PASSWORD}).json()
        az = new_az(server, tmp_path / "az")
        granted = httpx.put(f"{server.url}/subscriptions/{SUBSCRIPTION_A}/providers/Microsoft.Authorization/"
                            f"roleAssignments/{uuid.uuid4()}?api-version=2022-04-01", verify=server.tls(),
                            headers=bearer(admin), json={"properties": {
                                "roleDefinitionId": "/providers/Microsoft.Authorization/roleDefinitions/"
                                                    "acdd72a7-3385-48ef-bd42-f606fba81ae7",
                                "principalId": user["id"]}})
        assert granted.status_code == 201, granted.text
        accounts = az.json("login", "-u", user["userPrincipalName"], "-p", PASSWORD)
        assert [(a["id"], a["user"]) for a in accounts] == [
            (SUBSCRIPTION_A, {"name": user["userPrincipalName"], "type": "user"})]
        assert az.json("group", "list") == []
        refused = az.fails("group", "create", "-n", "rg", "-l", "eastus")
        assert "AuthorizationFailed" in refused
        wrong = az.fails("login", "-u", user["userPrincipalName"], "-p", "Wrong-password-1")
        assert "AADSTS50126" in wrong
    finally:
        server.stop()


@pytest.mark.parametrize("width, height", [(1280, 720), (390, 844)])
def test_the_sign_in_page_has_no_serious_accessibility_violations(browser, cli_server, width, height):
    """axe-core (from axe-playwright-python), injected into a context that bypasses the CSP."""
    axe = pytest.importorskip("axe_playwright_python")
    context = browser.new_context(viewport={"width": width, "height": height}, bypass_csp=True)
    try:
        page = context.new_page()
        flow = Browser(cli_server.url)
        page.goto(f"{cli_server.url}{AUTHORITY}/authorize?{httpx.QueryParams(flow.params())}")
        page.get_by_label("User name").fill("nobody")
        page.get_by_label("Password").fill("Wrong-password-1")
        page.get_by_role("button", name="Sign in").click()  # the page with its error shown
        page.get_by_role("alert").wait_for()
        page.add_script_tag(path=str(Path(axe.__file__).parent / "axe.min.js"))
        result = page.evaluate("() => axe.run(document, {resultTypes: ['violations']})")
        serious = [f"{v['id']}: {v['help']}" for v in result["violations"] if v["impact"] in ("critical", "serious")]
        assert not serious, serious
        screenshot(page, f"sign-in-page-error-{width}")
    finally:
        context.close()


@pytest.mark.postgres
def test_two_nodes_share_codes_sessions_and_sign_out(tmp_path, postgres):
    """A code got from one node is redeemed at another; signing out at the first stops the token
    at the second within the session cache's time."""
    database = postgres.create_database(f"sign_in_{uuid.uuid4().hex[:8]}")
    with ThreadServer(tmp_path / "a", database) as a, ThreadServer(tmp_path / "b", database, public_url=a.url) as b:
        new_user(a.url, "pat")
        flow = Browser(a.url)
        code = flow.code("pat")
        redeemed = httpx.post(f"{b.url}{AUTHORITY}/token", data={
            "grant_type": "authorization_code", "client_id": PORTAL_CLIENT_ID, "code": code,
            "redirect_uri": f"{a.url}/", "code_verifier": flow.verifier, "scope": f"{a.url}/.default"})
        assert redeemed.status_code == 200, redeemed.text
        token = redeemed.json()["access_token"]
        tenants_at_b = f"{b.url}/tenants?api-version=2022-12-01"
        assert httpx.get(tenants_at_b, headers=bearer(token)).status_code == 200
        oauth_error(flow.redeem(code), 400, "invalid_grant", 54005)  # spent, whichever node asks
        token = flow.token("pat")  # the reuse ended that session; a new one
        assert httpx.get(tenants_at_b, headers=bearer(token)).status_code == 200
        assert flow.http.get(f"{AUTHORITY}/logout").status_code == 200
        deadline = time.monotonic() + SESSION_CACHE_SECONDS + 2
        while httpx.get(tenants_at_b, headers=bearer(token)).status_code == 200:
            assert time.monotonic() < deadline, "node b still honours a signed-out session's token"
            time.sleep(0.2)
