"""Identity: the authority's endpoints, what every request must carry, and what a token may not do.

How we know: each case is a real HTTP request to a running server (the real token endpoint, the
real middleware); "changes nothing" is checked by reading the state back as the administrator;
forged tokens are signed with the server's own private key read from its database, so only the
one property under test is wrong.
"""
from __future__ import annotations

import base64
import json
import time
import uuid

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from . import admin_http
from .servers import SUBSCRIPTION, ThreadServer, credentials

API = "api-version=2022-12-01"
GROUPS = f"/subscriptions/{SUBSCRIPTION}/resourcegroups"


def token_for(url: str, tenant: str, client_id: str, secret: str, scope: str | None = None) -> httpx.Response:
    return httpx.post(f"{url}/{tenant}/oauth2/v2.0/token", data={
        "grant_type": "client_credentials", "client_id": client_id, "client_secret": secret,
        "scope": scope or f"{url}//.default"})


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def new_principal(url: str, tenant: str | None = None, name: str = "sp", **extra) -> dict:
    body = {"displayName": name, **({"tenantId": tenant} if tenant else {}), **extra}
    response = admin_http.post(f"{url}/providers/Galley.Identity/servicePrincipals", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def new_tenant(url: str, name: str = "B", **extra) -> dict:
    response = admin_http.post(f"{url}/providers/Galley.Identity/tenants", json={"displayName": name, **extra})
    assert response.status_code == 201, response.text
    return response.json()


def signed_in(url: str, principal: dict) -> str:
    response = token_for(url, principal["tenant"], principal["appId"], principal["password"])
    assert response.status_code == 200, response.text
    return response.json()["access_token"]


def assert_401(response: httpx.Response, mentions: str, code: str = "InvalidAuthenticationToken") -> None:
    assert response.status_code == 401, response.text
    error = response.json()["error"]
    assert error["code"] == code, error
    assert mentions.lower() in error["message"].lower(), error
    assert response.headers["www-authenticate"].startswith('Bearer authorization_uri="')


def group_names(url: str) -> list[str]:
    response = admin_http.get(f"{url}{GROUPS}?{API}")
    assert response.status_code == 200, response.text
    return [g["name"] for g in response.json()["value"]]


@pytest.fixture
def server(sqlite_server):
    """A fresh server, for the tests that look at or change server-wide state (the first start's
    lists, every secret's end date, the signing keys the administrator's token is signed with)."""
    return sqlite_server


@pytest.fixture(scope="module")
def shared(tmp_path_factory):
    """One server for the tests that touch only what they create (their own tenants, principals)
    or nothing at all: each server started and stopped costs half a second."""
    with ThreadServer(tmp_path_factory.mktemp("identity")) as running:
        yield running


# ---- first start ------------------------------------------------------------------------------

def test_first_start_writes_credentials_once_with_mode_0600(server):
    path = server.home / "credentials.json"
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    creds = credentials(server.home)
    assert set(creds) == {"server", "tenantId", "subscriptionId", "clientId", "clientSecret", "caBundle"}
    assert creds["server"] == server.url and creds["subscriptionId"] == SUBSCRIPTION
    subscriptions = admin_http.get(f"{server.url}/subscriptions?{API}").json()["value"]
    assert [(s["subscriptionId"], s["displayName"], s["state"], s["tenantId"]) for s in subscriptions] == [
        (SUBSCRIPTION, "Galley", "Enabled", creds["tenantId"])]
    tenants = admin_http.get(f"{server.url}/tenants?{API}").json()["value"]
    assert [t["tenantId"] for t in tenants] == [creds["tenantId"]]


def test_subscriptions_do_not_spring_into_existence(server):
    other = str(uuid.uuid4())
    response = admin_http.put(f"{server.url}/subscriptions/{other}/resourcegroups/rg?api-version=2024-11-01",
                              json={"location": "eastus"})
    assert response.status_code == 404 and response.json()["error"]["code"] == "SubscriptionNotFound"
    assert admin_http.get(f"{server.url}/subscriptions/{other}?{API}").status_code == 404
    assert [s["subscriptionId"] for s in admin_http.get(f"{server.url}/subscriptions?{API}").json()["value"]] == [
        SUBSCRIPTION]


# ---- the token endpoint -----------------------------------------------------------------------

def test_client_credentials_token_has_the_claims_of_an_azure_token(shared):
    creds = credentials(shared.home)
    response = token_for(shared.url, creds["tenantId"], creds["clientId"], creds["clientSecret"])
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["token_type"] == "Bearer" and isinstance(body["expires_in"], int) and body["expires_in"] >= 3000
    claims = jwt.decode(body["access_token"], options={"verify_signature": False})
    assert claims["iss"] == f"{shared.url}/{creds['tenantId']}/v2.0"
    assert claims["aud"] == f"{shared.url}/"  # the double slash of az's scope names this resource
    assert claims["tid"] == creds["tenantId"] and claims["appid"] == creds["clientId"]
    assert claims["nbf"] <= claims["iat"] <= time.time() < claims["exp"]
    uuid.UUID(claims["oid"])
    header = jwt.get_unverified_header(body["access_token"])
    assert header["alg"] == "RS256"
    jwks = httpx.get(f"{shared.url}/{creds['tenantId']}/discovery/v2.0/keys").json()
    key = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    public = jwt.PyJWK(key).key
    assert jwt.decode(body["access_token"], public, algorithms=["RS256"], audience=f"{shared.url}/")["oid"] == claims["oid"]


def test_openid_configuration_and_cloud_metadata(shared):
    creds = credentials(shared.home)
    config = httpx.get(f"{shared.url}/{creds['tenantId']}/v2.0/.well-known/openid-configuration").json()
    assert config["issuer"] == f"{shared.url}/{creds['tenantId']}/v2.0"
    assert config["token_endpoint"] == f"{shared.url}/{creds['tenantId']}/oauth2/v2.0/token"
    assert config["jwks_uri"].startswith(shared.url) and config["authorization_endpoint"]
    # az joins an endpoint that ends in '/' with '/metadata/...'
    cloud = httpx.get(f"{shared.url}//metadata/endpoints?api-version=2022-09-01").json()
    assert cloud["authentication"]["loginEndpoint"] == f"{shared.url}/"
    assert cloud["authentication"]["audiences"] == [f"{shared.url}/"]
    assert cloud["resourceManager"] == f"{shared.url}/" and isinstance(cloud["suffixes"], dict)
    unknown = httpx.get(f"{shared.url}/{uuid.uuid4()}/v2.0/.well-known/openid-configuration")
    assert unknown.status_code == 400 and "AADSTS90002" in unknown.json()["error_description"]


@pytest.mark.parametrize("change, status, error, aadsts", [
    ({"client_secret": "wrong"}, 401, "invalid_client", "AADSTS7000215"),
    ({"client_id": str(uuid.uuid4())}, 400, "invalid_client", "AADSTS700016"),
    ({"tenant": str(uuid.uuid4())}, 400, "invalid_request", "AADSTS90002"),
    ({"grant_type": "implicit"}, 400, "unsupported_grant_type", "AADSTS70003"),
    ({"scope": "openid"}, 400, "invalid_scope", "AADSTS1002012"),
    ({"client_secret": ""}, 400, "invalid_request", "AADSTS900144"),
])
def test_token_endpoint_refusals(shared, change, status, error, aadsts):
    creds = credentials(shared.home)
    form = {"grant_type": "client_credentials", "client_id": creds["clientId"],
            "client_secret": creds["clientSecret"], "scope": f"{shared.url}/.default", **change}
    tenant = form.pop("tenant", creds["tenantId"])
    response = httpx.post(f"{shared.url}/{tenant}/oauth2/v2.0/token", data=form)
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == error and aadsts in body["error_description"] and "access_token" not in body


def test_a_principal_of_another_tenant_cannot_sign_in_through_this_tenant(shared):
    tenant_b = new_tenant(shared.url)
    principal = new_principal(shared.url, tenant_b["tenantId"])
    wrong = token_for(shared.url, credentials(shared.home)["tenantId"], principal["appId"], principal["password"])
    assert wrong.status_code == 400 and wrong.json()["error"] == "invalid_client"
    assert "access_token" not in wrong.json()
    assert signed_in(shared.url, principal)


def test_an_expired_secret_gives_no_token(server):
    principal = new_principal(server.url, years=0.5)
    assert signed_in(server.url, principal)
    with server.app.state.identity_store.write() as tx:  # the secret's end date passes
        tx.c.exec_driver_sql("UPDATE principal_secrets SET expires_at = ?", (time.time() - 1,))
    response = token_for(server.url, principal["tenant"], principal["appId"], principal["password"])
    assert response.status_code == 401 and "AADSTS7000222" in response.json()["error_description"]


def test_credential_reset_replaces_the_secret(shared):
    principal = new_principal(shared.url)
    reset = admin_http.post(f"{shared.url}/providers/Galley.Identity/servicePrincipals/{principal['appId']}"
                            "/resetCredential", json={})
    assert reset.status_code == 200
    fresh = reset.json()["password"]
    assert fresh != principal["password"]
    assert token_for(shared.url, principal["tenant"], principal["appId"], principal["password"]).status_code == 401
    assert signed_in(shared.url, {**principal, "password": fresh})


def test_repeated_wrong_secrets_lock_the_client_out_for_a_while(server):
    from galley.domain import identity
    victim, bystander = new_principal(server.url, name="victim"), new_principal(server.url, name="bystander")
    for _ in range(identity.LOCKOUT_THRESHOLD):
        wrong = token_for(server.url, victim["tenant"], victim["appId"], "not-the-secret")
        assert wrong.status_code == 401
    locked = token_for(server.url, victim["tenant"], victim["appId"], victim["password"])  # even the right one
    assert locked.status_code == 400, locked.text
    assert "AADSTS50053" in locked.json()["error_description"] and "locked" in locked.json()["error_description"]
    assert int(locked.headers["retry-after"]) >= 1 and "access_token" not in locked.json()
    assert signed_in(server.url, bystander)  # another client is not affected
    with server.app.state.identity_store.write() as tx:  # the lockout's time passes, without waiting for it
        locked_out = tx.principal_by_app_id(victim["appId"])
        assert locked_out.locked_until > time.time() + identity.LOCKOUT_SECONDS / 2
        tx.set_sign_in_state(locked_out.id, locked_out.failed_sign_ins, time.time() - 1)
    assert signed_in(server.url, victim)


# ---- what every request must carry ------------------------------------------------------------

def forge(server, claims: dict | None = None, drop: tuple = (), key=None, headers: dict | None = None,
          algorithm: str = "RS256") -> str:
    creds = credentials(server.home)
    now = int(time.time())
    body = {"iss": f"{server.url}/{creds['tenantId']}/v2.0", "aud": f"{server.url}/", "iat": now, "nbf": now,
            "exp": now + 600, "tid": creds["tenantId"], "oid": _admin_object_id(server), "appid": creds["clientId"]}
    body.update(claims or {})
    for name in drop:
        body.pop(name)
    signing = server.app.state.keys.current()
    return jwt.encode(body, key if key is not None else signing.private_key, algorithm=algorithm,
                      headers={"kid": signing.kid, **(headers or {})})


def _admin_object_id(server) -> str:
    with server.app.state.identity_store.read() as tx:
        return tx.principal_by_app_id(credentials(server.home)["clientId"]).id


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def test_the_forging_helper_makes_a_token_the_server_accepts(shared):
    """So that each refusal below is about the one thing changed, not the helper."""
    assert httpx.get(f"{shared.url}{GROUPS}?{API}", headers=bearer(forge(shared))).status_code == 200


def test_missing_and_malformed_authorization(shared):
    url = f"{shared.url}{GROUPS}?{API}"
    assert_401(httpx.get(url), "header is missing", "AuthenticationFailed")
    assert_401(httpx.get(url, headers={"Authorization": "Basic abc"}), "invalid format", "AuthenticationFailed")
    assert_401(httpx.get(url, headers={"Authorization": "Bearer"}), "invalid format", "AuthenticationFailed")
    assert_401(httpx.get(url, headers=bearer("not.a.jwt")), "malformed")


@pytest.mark.parametrize("case, mentions", [
    ("expired", "expired"),
    ("not yet valid", "not yet valid"),
    ("wrong audience", "wrong audience"),
    ("wrong issuer", "issuer"),
    ("no exp", "'exp'"),
    ("tampered payload", "signature"),
    ("tampered signature", "signature"),
    ("alg none", "algorithm 'none'"),
    ("HS256 with the public key", "algorithm 'HS256'"),
    ("unknown key", "does not know"),
])
def test_bad_tokens_are_refused_and_change_nothing(shared, case, mentions):
    now = int(time.time())
    if case == "expired":
        token = forge(shared, {"exp": now - 120, "iat": now - 800, "nbf": now - 800})
    elif case == "not yet valid":
        token = forge(shared, {"nbf": now + 3600, "iat": now + 3600, "exp": now + 7200})
    elif case == "wrong audience":
        token = forge(shared, {"aud": "https://management.azure.com/"})
    elif case == "wrong issuer":
        token = forge(shared, {"iss": f"https://login.microsoftonline.com/{uuid.uuid4()}/v2.0"})
    elif case == "no exp":
        token = forge(shared, drop=("exp",))
    elif case == "tampered payload":
        header, payload, signature = forge(shared).split(".")
        claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
        claims["tid"] = str(uuid.uuid4())
        token = ".".join([header, _b64(claims), signature])
    elif case == "tampered signature":
        header, payload, signature = forge(shared).split(".")
        token = ".".join([header, payload, signature[:-6] + ("AAAAAA" if signature[-6:] != "AAAAAA" else "BBBBBB")])
    elif case == "alg none":
        header, payload, _ = forge(shared).split(".")
        token = ".".join([_b64({"alg": "none", "typ": "JWT", "kid": shared.app.state.keys.current().kid}),
                          payload, ""])
    elif case == "HS256 with the public key":
        public_pem = shared.app.state.keys.current().private_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        header, payload, _ = forge(shared).split(".")
        import hashlib
        import hmac
        signing_input = f"{_b64({'alg': 'HS256', 'typ': 'JWT', 'kid': shared.app.state.keys.current().kid})}.{payload}"
        signature = base64.urlsafe_b64encode(hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest())
        token = f"{signing_input}.{signature.decode().rstrip('=')}"
    else:
        from cryptography.hazmat.primitives.asymmetric import rsa
        token = forge(shared, key=rsa.generate_private_key(public_exponent=65537, key_size=2048),
                      headers={"kid": "not-a-key-of-this-server"})
    response = httpx.put(f"{shared.url}{GROUPS}/forged?api-version=2024-11-01", json={"location": "eastus"},
                         headers=bearer(token))
    assert_401(response, mentions)
    assert "forged" not in group_names(shared.url)


def test_a_token_of_another_tenant_gets_403_and_changes_nothing(shared):
    principal = new_principal(shared.url, new_tenant(shared.url)["tenantId"])
    token = signed_in(shared.url, principal)
    response = httpx.put(f"{shared.url}{GROUPS}/theirs?api-version=2024-11-01", json={"location": "eastus"},
                         headers=bearer(token))
    assert response.status_code == 403, response.text
    assert response.json()["error"]["code"] == "InvalidAuthenticationTokenTenant"
    assert "theirs" not in group_names(shared.url)
    # and tenant B sees its own world only
    assert httpx.get(f"{shared.url}/subscriptions?{API}", headers=bearer(token)).json()["value"] == []
    tenants = httpx.get(f"{shared.url}/tenants?{API}", headers=bearer(token)).json()["value"]
    assert [t["tenantId"] for t in tenants] == [principal["tenant"]]


def test_a_deleted_principal_is_refused_within_seconds(shared):
    principal = new_principal(shared.url, role="Reader", scopes=[f"/subscriptions/{SUBSCRIPTION}"])
    token = signed_in(shared.url, principal)
    assert httpx.get(f"{shared.url}{GROUPS}?{API}", headers=bearer(token)).status_code == 200
    deleted = admin_http.delete(f"{shared.url}/providers/Galley.Identity/servicePrincipals/{principal['appId']}")
    assert deleted.status_code == 204
    assert_401(httpx.get(f"{shared.url}{GROUPS}?{API}", headers=bearer(token)), "no longer exists")


def test_rotated_keys_verify_their_tokens_until_they_expire(server):
    old_token = admin_http.token_for(server.url)
    old_kid = jwt.get_unverified_header(old_token)["kid"]
    rotated = admin_http.post(f"{server.url}/providers/Galley.Identity/signingKeys/rotate")
    assert rotated.status_code == 200 and rotated.json()["kid"] != old_kid
    assert httpx.get(f"{server.url}{GROUPS}?{API}", headers=bearer(old_token)).status_code == 200
    creds = credentials(server.home)
    new_token = token_for(server.url, creds["tenantId"], creds["clientId"], creds["clientSecret"]).json()["access_token"]
    assert jwt.get_unverified_header(new_token)["kid"] == rotated.json()["kid"]
    kids = {k["kid"] for k in httpx.get(f"{server.url}/{creds['tenantId']}/discovery/v2.0/keys").json()["keys"]}
    assert kids == {old_kid, rotated.json()["kid"]}
    # Once the old key's tokens have all expired, it signs nothing that is accepted, even a
    # token whose own exp is still ahead (made here with the old private key).
    old_key = server.app.state.keys.find(old_kid)
    with server.app.state.identity_store.write() as tx:
        tx.c.exec_driver_sql("UPDATE signing_keys SET valid_until = ? WHERE kid = ?", (time.time() - 1, old_kid))
    server.app.state.keys._load()
    late = forge(server, key=old_key.private_key, headers={"kid": old_kid})
    assert_401(httpx.get(f"{server.url}{GROUPS}?{API}", headers=bearer(late)), "rotated out")
    assert_401(httpx.get(f"{server.url}{GROUPS}?{API}", headers=bearer(old_token)), "rotated out")
    kids = {k["kid"] for k in httpx.get(f"{server.url}/{creds['tenantId']}/discovery/v2.0/keys").json()["keys"]}
    assert kids == {rotated.json()["kid"]}


# ---- secrets are kept only as hashes ---------------------------------------------------------

def test_secrets_are_not_logged_returned_or_stored_in_clear(shared, caplog):
    import logging
    caplog.set_level(logging.DEBUG)
    principal = new_principal(shared.url)
    secret = principal["password"]
    signed_in(shared.url, principal)
    token_for(shared.url, principal["tenant"], principal["appId"], secret + "x")  # a wrong one, logged?
    reset = admin_http.post(f"{shared.url}/providers/Galley.Identity/servicePrincipals/{principal['id']}"
                            "/resetCredential", json={"append": True}).json()["password"]
    for url in (f"/providers/Galley.Identity/servicePrincipals/{principal['appId']}",
                "/providers/Galley.Identity/servicePrincipals", "/providers/Galley.Identity/tenants"):
        text = admin_http.get(shared.url + url).text
        assert secret not in text and reset not in text
    shown = admin_http.get(f"{shared.url}/providers/Galley.Identity/servicePrincipals/{principal['appId']}").json()
    assert [c["hint"] for c in shown["passwordCredentials"]] == [secret[:3], reset[:3]]
    admin_secret = credentials(shared.home)["clientSecret"]
    database = b"".join(p.read_bytes() for p in shared.home.glob("galley.db*"))
    for value in (secret, reset, admin_secret):
        assert value.encode() not in database
        assert value not in caplog.text
    assert b"scrypt$" in database


# ---- the route walk ---------------------------------------------------------------------------

# Routes a signed-in principal of any tenant may call: their handlers answer from the caller's
# own tenant only (checked below by looking for the home tenant's ids in tenant B's answers).
TENANT_FILTERED = {
    "/subscriptions", "/tenants",
    "/providers/Galley.Identity/tenants", "/providers/Galley.Identity/subscriptions",
    "/providers/Galley.Identity/servicePrincipals", "/providers/Galley.Identity/servicePrincipals/{principalId}",
    "/providers/Galley.Identity/servicePrincipals/{principalId}/resetCredential",
    "/providers/Galley.Identity/signingKeys", "/providers/Galley.Identity/signingKeys/rotate",
    "/providers/Galley.Identity/groups", "/providers/Galley.Identity/groups/{groupId}",
    "/providers/Galley.Identity/groups/{groupId}/members",
    "/providers/Galley.Identity/groups/{groupId}/members/{memberId}",
    "/providers/microsoft.resourcegraph/resources",  # rows filtered by the caller's roles
    "/v1.0/directoryObjects/getByIds",  # principals of the caller's tenants only
    "/providers/Galley.Identity/users", "/providers/Galley.Identity/users/{userId}",  # users of the
    "/v1.0/users", "/v1.0/users/{userId}",  # caller's tenant (read) or of tenants it manages (write)
}


def _fill(path: str, account: str, creds: dict) -> str:
    values = {"subscriptionId": SUBSCRIPTION, "account": account, "principalId": creds["clientId"],
              "tenant": creds["tenantId"], "groupId": str(uuid.UUID(int=1))}
    out = path
    while "{" in out:
        start, end = out.index("{"), out.index("}")
        name = out[start + 1:end].split(":")[0]
        out = out[:start] + values.get(name, "x1") + out[end + 1:]
    return out


def registered_routes(routes) -> list:
    """Every APIRoute, also inside included routers (FastAPI 0.16x wraps them; none has a prefix here)."""
    from fastapi.routing import APIRoute
    found = []
    for route in routes:
        if isinstance(route, APIRoute):
            found.append(route)
        elif hasattr(route, "original_router"):
            assert not route.include_context.prefix if hasattr(route, "include_context") and hasattr(
                route.include_context, "prefix") else True
            found += registered_routes(route.original_router.routes)
    return found


def test_every_route_refuses_anonymous_and_foreign_callers(sqlite_server):
    """Walks the routes the app registers (not a list kept by hand): each must be open by
    design, or refuse a request without a token (401) and one with a token of another tenant
    (403/404), or be one of the few whose answers are filtered to the caller's tenant.
    The rules do not depend on the database engine, so SQLite alone is walked."""
    server = sqlite_server
    from galley.api.authentication import OPEN_PATHS

    creds = credentials(server.home)
    admin_http.put(f"{server.url}{GROUPS}/rg?api-version=2024-11-01", json={"location": "eastus"})
    account = admin_http.put(f"{server.url}/subscriptions/{SUBSCRIPTION}/resourceGroups/rg/providers/"
                             "Microsoft.Storage/storageAccounts/walkacct?api-version=2023-05-01",
                             json={"location": "eastus"})
    assert account.status_code in (200, 201, 202), account.text
    foreign = signed_in(server.url, new_principal(server.url, new_tenant(server.url)["tenantId"]))
    routes = [(route.path, method) for route in registered_routes(server.app.routes)
              for method in sorted(route.methods - {"HEAD"} or route.methods)]
    assert len(routes) > 60
    unclassified, walked = [], 0
    verify = admin_http.default_verify()  # built once for the walk's few hundred requests
    for path, method in routes:
        url = server.url + _fill(path, "walkacct", creds)
        if OPEN_PATHS.match(_fill(path, "walkacct", creds)):
            continue
        walked += 1
        anonymous = httpx.request(method, url, params={"api-version": "2024-11-01"}, content=b"{}",
                                  verify=verify)
        assert anonymous.status_code == 401, (method, path, anonymous.status_code, anonymous.text)
        answer = httpx.request(method, url, params={"api-version": "2024-11-01"}, content=b"{}",
                               headers=bearer(foreign), verify=verify)
        if "/microsoft.authorization/" in path.lower():
            # role definitions are readable by all (built-in ones; custom ones where the caller has a
            # role); assignments need a role over their scope
            assert answer.status_code in (200, 400, 403, 404), (method, path, answer.text)
            for value in (creds["tenantId"], SUBSCRIPTION, creds["clientId"]):
                assert value not in answer.text, (method, path, answer.text)
        elif path in TENANT_FILTERED:
            if "{principalId}" in path or "{groupId}" in path or path.endswith("/rotate"):  # the home tenant's principal / keys
                assert answer.status_code in (403, 404), (method, path, answer.status_code, answer.text)
            else:
                assert answer.status_code < 500, (method, path, answer.text)
                for value in (creds["tenantId"], SUBSCRIPTION, creds["clientId"]):
                    assert value not in answer.text, (method, path, answer.text)
        elif path.startswith(("/subscriptions/", "/blob/")):
            assert answer.status_code in (403, 404), (method, path, answer.status_code, answer.text)
            if method != "HEAD":  # HEAD answers carry no body
                assert answer.json()["error"]["code"] in ("InvalidAuthenticationTokenTenant", "SubscriptionNotFound")
        elif path.startswith("/galley/") or (path.startswith("/providers/Galley.Platform") and method != "GET"):
            assert answer.status_code == 403 and answer.json()["error"]["code"] == "AuthorizationFailed", (method, path)
        elif path.startswith("/providers/Galley.Platform"):
            assert answer.status_code in (200, 404), (method, path, answer.text)  # the catalog is shared
        elif path in ("/metrics", "/providers/Galley.Operations/nodes"):  # Reader at '/' or an administrator
            assert answer.status_code == 403 and answer.json()["error"]["code"] == "AuthorizationFailed", (method, path)
        else:
            unclassified.append((method, path))
    assert not unclassified, f"routes without an access rule in this walk: {unclassified}"
    assert walked > 60
    assert group_names(server.url) == ["rg"]  # nothing the walk sent changed anything


# ---- two servers -----------------------------------------------------------------------------

@pytest.mark.postgres
def test_two_servers_on_one_postgresql_database_accept_each_others_tokens(tmp_path, postgres):
    database = postgres.create_database(f"identity_{uuid.uuid4().hex[:8]}")
    with ThreadServer(tmp_path / "a", database) as a:
        # Behind one load balancer both nodes answer to one public URL; each is reached directly too.
        with ThreadServer(tmp_path / "b", database, public_url=a.url) as b:
            assert not (tmp_path / "b" / "credentials.json").exists()  # bootstrapped once, by a
            creds = credentials(a.home)
            from_b = token_for(b.url, creds["tenantId"], creds["clientId"], creds["clientSecret"],
                               scope=f"{a.url}/.default")
            assert from_b.status_code == 200, from_b.text
            token_b = from_b.json()["access_token"]
            assert httpx.get(f"{a.url}{GROUPS}?{API}", headers=bearer(token_b)).status_code == 200
            assert httpx.get(f"{b.url}{GROUPS}?{API}", headers=bearer(a.token)).status_code == 200
            rotated = httpx.post(f"{a.url}/providers/Galley.Identity/signingKeys/rotate", headers=bearer(a.token))
            assert rotated.status_code == 200
            fresh = token_for(a.url, creds["tenantId"], creds["clientId"], creds["clientSecret"]).json()["access_token"]
            assert jwt.get_unverified_header(fresh)["kid"] == rotated.json()["kid"]
            assert httpx.get(f"{b.url}{GROUPS}?{API}", headers=bearer(fresh)).status_code == 200


@pytest.mark.slow
def test_tokens_survive_a_restart_and_credentials_are_not_rewritten(tmp_path):
    from .servers import ProcessServer
    (tmp_path / "home").mkdir()
    server = ProcessServer(tmp_path / "home").start()
    try:
        before = (tmp_path / "home" / "credentials.json").read_bytes()
        token = server.token
        server.kill()
        server.start()
        assert (tmp_path / "home" / "credentials.json").read_bytes() == before
        assert httpx.get(f"{server.url}{GROUPS}?{API}", headers=bearer(token)).status_code == 200
    finally:
        server.stop()


@pytest.mark.slow
def test_an_external_issuer_speaks_for_a_tenant_registered_with_it(tmp_path):
    """Server B is the external issuer (any OIDC authority would do); server A trusts it and
    maps B's tenant to a tenant of its own."""
    with ThreadServer(tmp_path / "issuer") as issuer:
        issuer_creds = credentials(issuer.home)
        issuer_url = f"{issuer.url}/{issuer_creds['tenantId']}/v2.0"
        with ThreadServer(tmp_path / "a", trusted_issuers=(issuer_url,)) as a:
            tenant = new_tenant(a.url, "partner", issuer=issuer_url, tenantId=issuer_creds["tenantId"])
            partner_sub = str(uuid.uuid4())
            made = admin_http.post(f"{a.url}/providers/Galley.Identity/subscriptions",
                                   json={"displayName": "partner", "tenantId": tenant["tenantId"],
                                         "subscriptionId": partner_sub})
            assert made.status_code == 201, made.text
            for_a = token_for(issuer.url, issuer_creds["tenantId"], issuer_creds["clientId"],
                              issuer_creds["clientSecret"], scope=f"{a.url}/.default").json()["access_token"]
            external_oid = jwt.decode(for_a, options={"verify_signature": False})["oid"]
            owner = admin_http.put(f"{a.url}/subscriptions/{partner_sub}/providers/Microsoft.Authorization/"
                                   f"roleAssignments/{uuid.uuid4()}?api-version=2022-04-01", json={"properties": {
                                       "roleDefinitionId": "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",
                                       "principalId": external_oid, "principalType": "ServicePrincipal"}})
            assert owner.status_code == 201, owner.text
            listed = httpx.get(f"{a.url}/subscriptions?{API}", headers=bearer(for_a)).json()["value"]
            assert [s["subscriptionId"] for s in listed] == [partner_sub]
            created = httpx.put(f"{a.url}/subscriptions/{partner_sub}/resourcegroups/partner-rg?api-version=2024-11-01",
                                json={"location": "eastus"}, headers=bearer(for_a))
            assert created.status_code == 201, created.text
            # not A's own subscription, and not a token the issuer made for itself
            assert httpx.get(f"{a.url}{GROUPS}?{API}", headers=bearer(for_a)).status_code == 403
            own_audience = issuer.token
            assert_401(httpx.get(f"{a.url}/subscriptions?{API}", headers=bearer(own_audience)), "wrong audience")


def test_an_untrusted_issuer_is_refused(tmp_path):
    with ThreadServer(tmp_path / "issuer") as issuer, ThreadServer(tmp_path / "a") as a:
        creds = credentials(issuer.home)
        token = token_for(issuer.url, creds["tenantId"], creds["clientId"], creds["clientSecret"],
                          scope=f"{a.url}/.default").json()["access_token"]
        assert_401(httpx.get(f"{a.url}/subscriptions?{API}", headers=bearer(token)), "does not trust")


def test_a_set_up_that_never_committed_is_made_again(tmp_path):
    """credentials.json is written just before the first start's set-up commits; if the process
    died in between, the database is empty on the next start, which makes everything anew and
    writes a secret that works (the stale file does not stop it)."""
    home = tmp_path / "home"
    with ThreadServer(home, default_subscription_id=SUBSCRIPTION):
        stale = credentials(home)
    for database_file in home.glob("galley.db*"):
        database_file.unlink()  # as if the set-up's transaction had never committed
    with ThreadServer(home, default_subscription_id=SUBSCRIPTION) as again:
        fresh = credentials(home)
        assert fresh["clientSecret"] != stale["clientSecret"]
        answer = token_for(again.url, fresh["tenantId"], fresh["clientId"], fresh["clientSecret"])
        assert answer.status_code == 200
        assert httpx.get(f"{again.url}{GROUPS}?{API}", headers=bearer(answer.json()["access_token"])).status_code == 200
