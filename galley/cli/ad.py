"""`galley ad sp …` and `galley ad user …`: service principals and users of the server's
authority, shaped like `az ad sp` and `az ad user`."""

from typing import Annotated, Optional

import typer

from galley.cli.common import Session, arm_command, usage_error
from galley.cli.output import field

app = typer.Typer(help="Manage the authority's identities.", no_args_is_help=True)
sp_app = typer.Typer(help="Manage service principals.", no_args_is_help=True)
credential_app = typer.Typer(help="Manage a service principal's secrets.", no_args_is_help=True)
group_app = typer.Typer(help="Manage groups of principals (role assignments to a group reach its members).",
                        no_args_is_help=True)
member_app = typer.Typer(help="Manage a group's members.", no_args_is_help=True)
user_app = typer.Typer(help="Manage users: people who sign in to the portal with a password.",
                       no_args_is_help=True)
app.add_typer(user_app, name="user")
app.add_typer(sp_app, name="sp")
app.add_typer(group_app, name="group")
sp_app.add_typer(credential_app, name="credential")
group_app.add_typer(member_app, name="member")
GROUPS = "/providers/Galley.Identity/groups"
GroupOpt = Annotated[str, typer.Option("--group", "-g", help="The group's object id.")]

PRINCIPALS = "/providers/Galley.Identity/servicePrincipals"
COLUMNS = (("DisplayName", field("displayName")), ("AppId", field("appId")), ("Id", field("id")),
           ("Tenant", field("appOwnerOrganizationId")))
IdOpt = Annotated[str, typer.Option("--id", help="The service principal's appId or object id.")]
YearsOpt = Annotated[Optional[float], typer.Option("--years", help="Years the secret is valid (default 1).")]
EndDateOpt = Annotated[Optional[str], typer.Option("--end-date", help="When the secret stops working (ISO 8601); instead of --years.")]


def _secret_answer(body: dict) -> dict:
    """What az prints for a new secret: appId, displayName, password, tenant."""
    return {"appId": body["appId"], "displayName": body["displayName"], "password": body["password"],
            "tenant": body["tenant"]}


@arm_command(sp_app, "create-for-rbac")
def create_for_rbac(
    session: Session,
    *,
    name: Annotated[Optional[str], typer.Option("--name", "-n", help="Display name of the service principal.")] = None,
    tenant: Annotated[Optional[str], typer.Option("--tenant", help="Tenant to create it in (default: yours).")] = None,
    role: Annotated[Optional[str], typer.Option("--role", help="Role to give it at each of --scopes, e.g. Contributor.")] = None,
    scopes: Annotated[Optional[list[str]], typer.Option("--scopes", help="Scopes for --role (space-separated).")] = None,
    years: YearsOpt = None,
    end_date: EndDateOpt = None,
):
    """Create a service principal with a secret (and, with --role and --scopes, a role at those
    scopes). The secret is printed once: keep it safe."""
    body = {k: v for k, v in (("displayName", name), ("tenantId", tenant), ("years", years),
                              ("endDate", end_date), ("role", role), ("scopes", scopes)) if v is not None}
    return _secret_answer(session.client.send("POST", PRINCIPALS, body=body).json())


@arm_command(sp_app, "list", COLUMNS)
def list_principals(
    session: Session,
    *,
    tenant: Annotated[Optional[str], typer.Option("--tenant", help="Only this tenant's.")] = None,
):
    """List the service principals you may manage."""
    return session.client.list(PRINCIPALS, "", params={"tenantId": tenant} if tenant else None)


@arm_command(sp_app, "show", COLUMNS)
def show(session: Session, *, id: IdOpt):
    """Show a service principal and its secrets' hints and end dates (never the secrets)."""
    return session.client.get(f"{PRINCIPALS}/{id}", "")


@arm_command(sp_app, "delete")
def delete(session: Session, *, id: IdOpt):
    """Delete a service principal: its tokens stop working within seconds."""
    session.client.send("DELETE", f"{PRINCIPALS}/{id}")


@arm_command(credential_app, "reset")
def reset(
    session: Session,
    *,
    id: Annotated[str, typer.Option("--id", "--name", help="The service principal's appId or object id.")],
    append: Annotated[bool, typer.Option("--append", help="Keep the existing secrets too.")] = False,
    years: YearsOpt = None,
    end_date: EndDateOpt = None,
):
    """Give a service principal a new secret (replacing the old ones unless --append)."""
    body = {"append": append, **({"years": years} if years is not None else {}),
            **({"endDate": end_date} if end_date else {})}
    return _secret_answer(session.client.send("POST", f"{PRINCIPALS}/{id}/resetCredential", body=body).json())


@arm_command(group_app, "create")
def group_create(
    session: Session,
    *,
    display_name: Annotated[str, typer.Option("--display-name", help="The group's name.")],
    tenant: Annotated[Optional[str], typer.Option("--tenant", help="Its tenant (default: yours).")] = None,
):
    """Create a group."""
    body = {"displayName": display_name, **({"tenantId": tenant} if tenant else {})}
    return session.client.send("POST", GROUPS, body=body).json()


@arm_command(group_app, "list")
def group_list(session: Session):
    """List the groups you may manage."""
    return session.client.list(GROUPS, "")


@arm_command(group_app, "show")
def group_show(session: Session, *, group: GroupOpt):
    """Show a group and its members."""
    return session.client.get(f"{GROUPS}/{group}", "")


@arm_command(group_app, "delete")
def group_delete(session: Session, *, group: GroupOpt):
    """Delete a group (and its role assignments)."""
    session.client.send("DELETE", f"{GROUPS}/{group}")


@arm_command(member_app, "add")
def member_add(session: Session, *, group: GroupOpt,
               member_id: Annotated[str, typer.Option("--member-id", help="Object id of the principal.")]):
    """Add a principal to a group."""
    return session.client.send("POST", f"{GROUPS}/{group}/members", body={"memberId": member_id}).json()


@arm_command(member_app, "remove")
def member_remove(session: Session, *, group: GroupOpt,
                  member_id: Annotated[str, typer.Option("--member-id", help="Object id of the principal.")]):
    """Remove a principal from a group."""
    return session.client.send("DELETE", f"{GROUPS}/{group}/members/{member_id}").json()


USERS = "/providers/Galley.Identity/users"
USER_COLUMNS = (("DisplayName", field("displayName")), ("UserPrincipalName", field("userPrincipalName")),
                ("Id", field("id")))
UserIdOpt = Annotated[str, typer.Option("--id", help="The user's name, user principal name or object id.")]


@arm_command(user_app, "create", USER_COLUMNS)
def user_create(
    session: Session,
    *,
    name: Annotated[Optional[str], typer.Option("--name", "-n", help="Sign-in name: the user principal name is <name>@<tenant id>.galley.local.")] = None,
    user_principal_name: Annotated[Optional[str], typer.Option("--user-principal-name", help="Instead of --name: the full name, in a domain of the tenant.")] = None,
    password: Annotated[str, typer.Option("--password", help="8 to 256 characters, three of: lower case, upper case, digits, symbols.")],
    display_name: Annotated[Optional[str], typer.Option("--display-name", help="Name shown for the user (default: --name).")] = None,
    tenant: Annotated[Optional[str], typer.Option("--tenant", help="Tenant to create it in (default: yours).")] = None,
):
    """Create a user who signs in with a password (the portal, or az login -u). The password is
    kept only as a slow hash."""
    if not name and not user_principal_name:
        raise usage_error("give --name or --user-principal-name")
    body = {k: v for k, v in (("name", name), ("userPrincipalName", user_principal_name), ("password", password),
                              ("displayName", display_name), ("tenantId", tenant)) if v is not None}
    return session.client.send("POST", USERS, body=body).json()


@arm_command(user_app, "list", USER_COLUMNS)
def user_list(
    session: Session,
    *,
    tenant: Annotated[Optional[str], typer.Option("--tenant", help="Only this tenant's.")] = None,
):
    """List the users you may see."""
    return session.client.list(USERS, "", params={"tenantId": tenant} if tenant else None)


@arm_command(user_app, "show", USER_COLUMNS)
def user_show(session: Session, *, id: UserIdOpt):
    """Show a user."""
    return session.client.get(f"{USERS}/{id}", "")


@arm_command(user_app, "delete")
def user_delete(session: Session, *, id: UserIdOpt):
    """Delete a user: its role assignments go too and its tokens stop working within seconds."""
    session.client.send("DELETE", f"{USERS}/{id}")
