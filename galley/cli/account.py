"""Signing in and the account: `galley login`, `galley logout`, `galley account …` (show, list,
set, get-access-token; tenants, subscriptions and signing keys of the server's authority)."""

import datetime as dt
import os
import sys
from typing import Annotated, Optional

import typer

from galley.cli import signin
from galley.cli.client import API_GROUP, ArmClient, ArmError
from galley.cli.common import OnlyShowErrorsOpt, OutputOpt, QueryOpt, Session, arm_command, report
from galley.cli.output import QueryError, emit, field

app = typer.Typer(help="Manage the account: subscriptions, tenants, tokens, signing keys.", no_args_is_help=True)
tenant_app = typer.Typer(help="Manage tenants (the home tenant's administrators create them).", no_args_is_help=True)
subscription_app = typer.Typer(help="Manage subscriptions.", no_args_is_help=True)
keys_app = typer.Typer(help="The authority's token signing keys.", no_args_is_help=True)
app.add_typer(tenant_app, name="tenant")
app.add_typer(subscription_app, name="subscription")
app.add_typer(keys_app, name="keys")

IDENTITY = "/providers/Galley.Identity"
API_SUBSCRIPTIONS = "2022-12-01"

SUBSCRIPTION_COLUMNS = (("SubscriptionId", field("subscriptionId")), ("Name", field("displayName")),
                        ("TenantId", field("tenantId")), ("State", field("state")))
TENANT_COLUMNS = (("TenantId", field("tenantId")), ("DisplayName", field("displayName")),
                  ("Issuer", field("issuer")))
ACCOUNT_COLUMNS = (("Name", field("name")), ("SubscriptionId", field("id")), ("TenantId", field("tenantId")),
                   ("IsDefault", field("isDefault")))


def _account_entry(subscription: dict, profile: signin.Profile, default: Optional[str]) -> dict:
    """A subscription the way `az account list/show` prints it."""
    return {"cloudName": "Galley", "homeTenantId": subscription.get("tenantId"),
            "id": subscription.get("subscriptionId"), "isDefault": subscription.get("subscriptionId") == default,
            "managedByTenants": subscription.get("managedByTenants", []), "name": subscription.get("displayName"),
            "state": subscription.get("state"), "tenantId": subscription.get("tenantId"),
            "user": {"name": profile.clientId, "type": "servicePrincipal"}}


def _profile_or_error() -> signin.Profile:
    profile = signin.load_profile()
    if profile is None:
        raise ArmError("NotSignedIn", "Please run 'galley login' to set up an account (or run the CLI "
                       "where the server's $GALLEY_HOME/credentials.json is readable).")
    return profile


def login(
    ctx: typer.Context,
    service_principal: Annotated[bool, typer.Option("--service-principal", help="Sign in as a service principal (the only kind for now).")] = False,
    username: Annotated[Optional[str], typer.Option("--username", "-u", help="The service principal's appId.")] = None,
    password: Annotated[Optional[str], typer.Option("--password", "-p", help="The service principal's secret. Env GALLEY_CLIENT_SECRET.")] = None,
    tenant: Annotated[Optional[str], typer.Option("--tenant", "-t", help="The tenant id.")] = None,
    server: Annotated[Optional[str], typer.Option("--server", help="Galley server URL. Env GALLEY_URL.")] = None,
    ca_bundle: Annotated[Optional[str], typer.Option("--ca-bundle", help="PEM file of the CA to trust for the server (e.g. its $GALLEY_HOME/tls/ca.pem).")] = None,
    output: OutputOpt = None,
    query: QueryOpt = None,
    only_show_errors: OnlyShowErrorsOpt = False,
):
    """Sign in as a service principal; the account is kept in ~/.galley-cli (mode 0600)."""
    password = password or os.environ.get("GALLEY_CLIENT_SECRET")
    server = server or os.environ.get("GALLEY_URL")
    missing = [name for name, value in (("--username", username), ("--password", password),
                                        ("--tenant", tenant), ("--server", server)) if not value]
    if not service_principal or missing:
        sys.stderr.write("ERROR: usage error: galley login --service-principal -u APPID -p SECRET --tenant "
                         f"TENANT --server URL (missing: {', '.join(missing) or '--service-principal'})\n")
        raise typer.Exit(2)
    profile = signin.Profile(server=server.rstrip("/"), tenantId=tenant, clientId=username, clientSecret=password,
                             caBundle=os.path.abspath(ca_bundle) if ca_bundle else None)
    try:
        verify = signin.verify_setting(profile)
        client = ArmClient(profile.server, auth=signin.ProfileAuth(profile.server, profile, verify), verify=verify)
        try:
            found = client.list("/subscriptions", API_SUBSCRIPTIONS)
        finally:
            client.close()
    except ArmError as error:
        report(error)
        raise typer.Exit(1)
    enabled = [s for s in found if s.get("state") == "Enabled"]
    profile.subscriptionId = (enabled or found or [{}])[0].get("subscriptionId")
    signin.save_profile(profile)
    root = ctx.find_root().obj or {}
    if not found and not (only_show_errors or root.get("only_show_errors")):
        sys.stderr.write(f"WARNING: No subscriptions found for {username}.\n")
    try:
        emit([_account_entry(s, profile, profile.subscriptionId) for s in found],
             (output or root.get("output") or "json"), ACCOUNT_COLUMNS, query or root.get("query"))
    except QueryError as error:
        sys.stderr.write(f"ERROR: {error}\n")
        raise typer.Exit(1)


def logout():
    """Forget the signed-in account and its cached tokens."""
    signin.forget()


@arm_command(app, "show", ACCOUNT_COLUMNS)
def show(session: Session):
    """Show the current subscription and who is signed in."""
    profile = _profile_or_error()
    subscription = session.client.get(f"/subscriptions/{session.subscription}", API_SUBSCRIPTIONS)
    return _account_entry(subscription, profile, session.subscription)


@arm_command(app, "list", ACCOUNT_COLUMNS)
def list_accounts(session: Session):
    """List the subscriptions the signed-in principal's tenant holds."""
    profile = _profile_or_error()
    return [_account_entry(s, profile, session.subscription)
            for s in session.client.list("/subscriptions", API_SUBSCRIPTIONS)]


@arm_command(app, "set")
def set_subscription(session: Session):
    """Make --subscription the default for later commands."""
    profile = _profile_or_error()
    session.client.get(f"/subscriptions/{session.subscription}", API_SUBSCRIPTIONS)  # it exists and is ours
    profile.subscriptionId = session.subscription
    signin.save_profile(profile)


@arm_command(app, "get-access-token")
def get_access_token(session: Session):
    """Print an access token for the server, as `az account get-access-token` does."""
    profile = _profile_or_error()
    auth = signin.ProfileAuth(session.client.base_url, profile, signin.verify_setting(profile))
    entry = auth.token()
    expires = dt.datetime.fromtimestamp(entry["expiresOn"])
    return {"accessToken": entry["accessToken"], "expiresOn": expires.strftime("%Y-%m-%d %H:%M:%S.%f"),
            "expires_on": entry["expiresOn"], "subscription": session.subscription,
            "tenant": profile.tenantId, "tokenType": "Bearer"}


# -- tenants ------------------------------------------------------------------------------------

@arm_command(tenant_app, "create", TENANT_COLUMNS)
def tenant_create(
    session: Session,
    *,
    display_name: Annotated[str, typer.Option("--display-name", help="The tenant's name.")] = "Tenant",
    issuer: Annotated[Optional[str], typer.Option("--issuer", help="An external OIDC issuer whose tokens sign this tenant's principals in (it must also be trusted: GALLEY_OIDC_ISSUERS).")] = None,
    tenant_id: Annotated[Optional[str], typer.Option("--tenant-id", help="The tenant's id (GUID); with --issuer, the issuer's 'tid'.")] = None,
):
    """Create a tenant."""
    body = {"displayName": display_name, **({"issuer": issuer} if issuer else {}),
            **({"tenantId": tenant_id} if tenant_id else {})}
    return session.client.send("POST", f"{IDENTITY}/tenants", body=body).json()


@arm_command(tenant_app, "list", TENANT_COLUMNS)
def tenant_list(session: Session):
    """List the tenants you may manage (all of them for the home tenant's principals)."""
    return session.client.list(f"{IDENTITY}/tenants", API_GROUP)


# -- subscriptions ------------------------------------------------------------------------------

@arm_command(subscription_app, "create", SUBSCRIPTION_COLUMNS)
def subscription_create(
    session: Session,
    *,
    display_name: Annotated[str, typer.Option("--display-name", help="The subscription's name.")],
    tenant: Annotated[Optional[str], typer.Option("--tenant", help="Its tenant (default: yours).")] = None,
    subscription_id: Annotated[Optional[str], typer.Option("--subscription-id", help="Its id (default: a new GUID).")] = None,
):
    """Create a subscription."""
    body = {"displayName": display_name, **({"tenantId": tenant} if tenant else {}),
            **({"subscriptionId": subscription_id} if subscription_id else {})}
    return session.client.send("POST", f"{IDENTITY}/subscriptions", body=body).json()


@arm_command(subscription_app, "list", SUBSCRIPTION_COLUMNS)
def subscription_list(session: Session):
    """List your tenant's subscriptions."""
    return session.client.list("/subscriptions", API_SUBSCRIPTIONS)


@arm_command(subscription_app, "show", SUBSCRIPTION_COLUMNS)
def subscription_show(session: Session, *, id: Annotated[Optional[str], typer.Option("--id", help="Subscription id (default: --subscription).")] = None):
    """Show a subscription."""
    return session.client.get(f"/subscriptions/{id or session.subscription}", API_SUBSCRIPTIONS)


# -- signing keys -------------------------------------------------------------------------------

@arm_command(keys_app, "rotate")
def keys_rotate(session: Session):
    """Sign new tokens with a new key; tokens signed by the old ones stay valid until they expire."""
    return session.client.send("POST", f"{IDENTITY}/signingKeys/rotate").json()


@arm_command(keys_app, "list")
def keys_list(session: Session):
    """List the signing keys (ids, which is current, until when retired ones verify)."""
    return session.client.list(f"{IDENTITY}/signingKeys", API_GROUP)
