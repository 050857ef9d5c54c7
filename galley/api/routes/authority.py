"""The authority's open endpoints, at the server's own origin and in Microsoft's shapes, so MSAL
based clients (az, azure-identity) sign in with nothing special:

  GET  /metadata/endpoints?api-version=…                 the cloud's endpoints (az cloud register)
  GET  /{tenant}/v2.0/.well-known/openid-configuration    OIDC discovery
  GET  /{tenant}/discovery/v2.0/keys                      JWKS
  POST /{tenant}/oauth2/v2.0/token                        client_credentials with client_secret;
                                                          for users (identity/sign_in.py):
                                                          authorization_code (PKCE), refresh_token,
                                                          password
The sign-in page, authorize and logout endpoints are in sign_in.py.
"""

from __future__ import annotations

import base64
from urllib.parse import parse_qs, unquote

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from ...identity.authority import OAuthError
from ...identity.sign_in import ANY_TENANT
from ..wire import json_response

router = APIRouter(tags=["Authority"])
MAX_FORM_BYTES = 64 * 1024


def _origin(request: Request) -> str:
    """The origin the client used, if it is one of this server's; else the canonical one."""
    audience = request.app.state.tokens.audience
    return audience.origin_for(f"{request.url.scheme}://{request.url.netloc}")


def _tenant_or_error(request: Request, tenant: str):
    if tenant.lower() in ANY_TENANT:  # users sign in here before their client knows their tenant
        return None
    with request.app.state.identity_store.read() as tx:
        found = tx.tenant(tenant)
    if found is None or found.issuer is not None:
        raise OAuthError(400, "invalid_tenant", f"AADSTS90002: Tenant '{tenant}' not found. This "
                         "server's authority signs in only its own tenants.", 90002)
    return found


@router.get("/metadata/endpoints", operation_id="Metadata_Endpoints")
def metadata_endpoints(request: Request, api_version: str | None = Query(None, alias="api-version")) -> Response:
    origin = _origin(request)
    cloud = {
        "name": "Galley",
        "portal": f"{origin}/",
        "authentication": {"loginEndpoint": f"{origin}/", "audiences": [f"{origin}/"],
                           "tenant": "common", "identityProvider": "AAD"},
        "resourceManager": f"{origin}/",
        "graph": f"{origin}/",
        "graphAudience": f"{origin}/",
        "microsoftGraphResourceId": f"{origin}/",
        "activeDirectoryDataLake": f"{origin}/",
        "batch": f"{origin}/",
        "media": f"{origin}/",
        "sqlManagement": f"{origin}/",
        "appInsightsResourceId": f"{origin}/",
        "appInsightsTelemetryChannelResourceId": f"{origin}/",
        "attestationResourceId": f"{origin}/",
        "synapseAnalyticsResourceId": f"{origin}/",
        "logAnalyticsResourceId": f"{origin}/",
        "ossrDbmsResourceId": f"{origin}/",
        "suffixes": {"storage": "core.windows.net", "keyVaultDns": "vault.galley.local",
                     "acrLoginServer": "azurecr.galley.local", "sqlServerHostname": "database.galley.local",
                     "azureDataLakeStoreFileSystem": "azuredatalakestore.galley.local",
                     "azureDataLakeAnalyticsCatalogAndJob": "azuredatalakeanalytics.galley.local",
                     "mysqlServerEndpoint": "mysql.galley.local",
                     "postgresqlServerEndpoint": "postgres.galley.local",
                     "mariadbServerEndpoint": "mariadb.galley.local",
                     "synapseAnalytics": "dev.galley.local", "attestationEndpoint": "attest.galley.local"},
    }
    # One cloud object, as az cloud register reads it (whatever api-version it sends).
    return json_response(cloud)


def _openid_configuration(request: Request, tenant: str) -> dict:
    found = _tenant_or_error(request, tenant)
    origin = _origin(request)
    base = f"{origin}/{found.id if found else tenant.lower()}"
    return {
        "issuer": f"{base}/v2.0" if found else f"{origin}/{{tenantid}}/v2.0",
        "token_endpoint": f"{base}/oauth2/v2.0/token",
        "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
        "jwks_uri": f"{base}/discovery/v2.0/keys",
        "token_endpoint_auth_methods_supported": ["client_secret_post", "client_secret_basic"],
        "grant_types_supported": ["client_credentials", "authorization_code", "refresh_token", "password"],
        "end_session_endpoint": f"{base}/oauth2/v2.0/logout",
        "code_challenge_methods_supported": ["S256"],
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "subject_types_supported": ["pairwise"],
        "id_token_signing_alg_values_supported": ["RS256"],
        "scopes_supported": ["openid", "profile", "email", "offline_access"],
        "claims_supported": ["sub", "iss", "aud", "exp", "iat", "nbf", "tid", "oid", "appid", "azp"],
        "request_uri_parameter_supported": False,
        "tenant_region_scope": None,
        "cloud_instance_name": request.url.hostname,
        "cloud_graph_host_name": request.url.hostname,
        "msgraph_host": request.url.hostname,
    }


@router.get("/{tenant}/v2.0/.well-known/openid-configuration", operation_id="Authority_OpenIdConfiguration")
def openid_configuration(request: Request, tenant: str) -> Response:
    try:
        return json_response(_openid_configuration(request, tenant))
    except OAuthError as error:
        return _oauth_error(error)


@router.get("/{tenant}/discovery/v2.0/keys", operation_id="Authority_Keys")
def keys(request: Request, tenant: str) -> Response:
    try:
        _tenant_or_error(request, tenant)
    except OAuthError as error:
        return _oauth_error(error)
    return json_response(request.app.state.keys.jwks())


@router.get("/common/userrealm/{username}", operation_id="Authority_UserRealm", include_in_schema=False)
def user_realm(request: Request, username: str) -> Response:
    """MSAL asks before a password grant whether a user's domain is federated: never, here (and
    the same answer for every name, so it tells no one which users exist)."""
    return json_response({"ver": "1.0", "account_type": "Managed", "domain_name": username.rpartition("@")[2],
                          "cloud_instance_name": request.url.hostname,
                          "cloud_audience_urn": "urn:federation:MicrosoftOnline"})


def _oauth_error(error: OAuthError) -> Response:
    headers = {"Retry-After": str(error.retry_after)} if error.retry_after else None
    return json_response(error.to_body(), error.status, headers=headers)


def _basic_credentials(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("basic "):
        return None
    try:
        user, _, password = base64.b64decode(header[6:].strip()).decode().partition(":")
    except (ValueError, UnicodeDecodeError):
        return None
    return unquote(user), unquote(password)


async def read_form(request: Request) -> dict[str, str]:
    """An application/x-www-form-urlencoded body (its first value of each name)."""
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_FORM_BYTES:
            raise OAuthError(400, "invalid_request", "AADSTS900144: The request body is too large.", 900144)
    try:
        form = {k: v[0] for k, v in parse_qs(raw.decode(), keep_blank_values=True).items()}
    except UnicodeDecodeError:
        return {}
    if any("\x00" in key or "\x00" in value for key, value in form.items()):
        raise OAuthError(400, "invalid_request", "AADSTS900144: A field of the request holds a NUL character.",
                         900144)
    return form


USER_GRANTS = {"authorization_code": "redeem_code", "refresh_token": "refresh", "password": "password_grant"}


@router.post("/{tenant}/oauth2/v2.0/token", operation_id="Authority_Token")
async def token(request: Request, tenant: str) -> Response:
    try:
        form = await read_form(request)
    except OAuthError as error:
        return _oauth_error(error)
    grant = form.get("grant_type", "")
    if grant in USER_GRANTS:
        grant_of = getattr(request.app.state.sign_in, USER_GRANTS[grant])
        try:
            body = await run_in_threadpool(grant_of, tenant.lower(), form, _origin(request))
        except OAuthError as error:
            return _oauth_error(error)
        return json_response(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})
    if grant != "client_credentials":
        return _oauth_error(OAuthError(400, "unsupported_grant_type", f"AADSTS70003: The grant type "
                                       f"'{grant}' is not supported; use client_credentials, "
                                       "authorization_code, refresh_token or password.", 70003))
    client_id, secret = form.get("client_id", ""), form.get("client_secret", "")
    basic = _basic_credentials(request)
    if basic and not secret:
        client_id, secret = client_id or basic[0], basic[1]
    authority = request.app.state.authority
    try:
        body = await run_in_threadpool(authority.client_credentials, tenant.lower(), client_id.strip().lower(),
                                       secret, form.get("scope", ""), _origin(request))
    except OAuthError as error:
        return _oauth_error(error)
    return json_response(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})
