"""The sign-in pages and the token endpoint under hostile input: the authorize page (GET and its
form's POST), logout, user realm discovery and the token endpoint, with made-up tenants, query
parameters, form fields and cookies. Whatever arrives, the answer is a page, a redirect or an
OAuth error, never a 5xx (the authorize and logout routes are not in the OpenAPI document, so
test_fuzz.py does not reach them)."""

from __future__ import annotations

import os
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from galley.identity.sign_in import AZURE_CLI_CLIENT_ID, PORTAL_CLIENT_ID

from .servers import ThreadServer

EXAMPLES = int(os.environ.get("GALLEY_FUZZ_EXAMPLES", "25")) * 8
HOSTILE = st.one_of(
    st.sampled_from(["", "common", "organizations", "consumers", "00000000-0000-0000-0000-000000000000",
                     "S256", "plain", "code", "token id_token", "login", "none", "consent", "select_account",
                     "form_post", "query", "fragment", "openid offline_access", "https://management.core.windows.net//.default",
                     "http://127.0.0.1:1/", "javascript:alert(1)", "//evil.example/", "https://user:pw@127.0.0.1/",
                     "http://[::1", "\u00e9\u00e8", "a" * 5000, "%00", "\x00", "authorization_code", "password",
                     "refresh_token", "client_credentials", "urn:ietf:params:oauth:grant-type:device_code",
                     "alice", "alice@x.galley.local", "Example-Passw0rd", "'; DROP TABLE users; --"]),
    st.text(max_size=60))
FIELDS = st.dictionaries(st.sampled_from([
    "client_id", "redirect_uri", "response_type", "code_challenge", "code_challenge_method", "state", "scope",
    "prompt", "login_hint", "nonce", "response_mode", "username", "password", "csrf_token", "grant_type",
    "code", "code_verifier", "refresh_token", "client_secret", "client_assertion", "resource", "domain_hint",
    "post_logout_redirect_uri"]), HOSTILE, max_size=8)
CLIENTS = st.sampled_from([PORTAL_CLIENT_ID, AZURE_CLI_CLIENT_ID, "not-a-client"])


@pytest.fixture(scope="module")
def galley(tmp_path_factory):
    with ThreadServer(tmp_path_factory.mktemp("signinfuzz")) as running:
        yield running


def _ok(response: httpx.Response, what: str) -> None:
    assert response.status_code < 500, f"{what} -> {response.status_code}: {response.text[:400]}"


def _path_segment(value: str) -> str:
    return quote(value, safe="") or "common"


@settings(max_examples=EXAMPLES, deadline=None, derandomize=os.environ.get("GALLEY_FUZZ_RANDOM") != "1",
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(tenant=HOSTILE, client=CLIENTS, fields=FIELDS, cookie=HOSTILE,
       route=st.sampled_from(["authorize", "sign-in", "logout", "realm", "token"]))
def test_no_sign_in_request_is_a_server_error(galley, tenant, client, fields, cookie, route):
    base = f"{galley.url}/{_path_segment(tenant)}/oauth2/v2.0"
    fields = {"client_id": client, **fields}
    cookies = {"galley_csrf": cookie.encode("ascii", "ignore").decode(),
               "galley_session": cookie.encode("ascii", "ignore").decode()}
    with httpx.Client(timeout=30, follow_redirects=False) as client_session:
        for name, value in cookies.items():
            if value and value.isprintable() and ";" not in value and value.strip() == value:
                client_session.cookies.set(name, value)
        try:
            if route == "authorize":
                response = client_session.get(f"{base}/authorize", params=fields)
            elif route == "sign-in":
                response = client_session.post(f"{base}/authorize", data=fields)
            elif route == "logout":
                response = client_session.get(f"{base}/logout", params=fields)
            elif route == "realm":
                response = client_session.get(f"{galley.url}/common/userrealm/{_path_segment(tenant)}",
                                              params={"api-version": "1.0"})
            else:
                response = client_session.post(f"{base}/token", data=fields)
        except httpx.InvalidURL:  # the client library itself refuses such a URL
            return
    _ok(response, f"{route} tenant={tenant!r} fields={fields!r}")
