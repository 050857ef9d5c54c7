"""`galley role assignment …` and `galley role definition …`: role-based access, shaped like `az role`."""

import json
import uuid
from pathlib import Path
from typing import Annotated, Optional

import typer

from galley.cli.client import ArmError
from galley.cli.common import Session, arm_command, usage_error
from galley.cli.output import field

app = typer.Typer(help="Manage role definitions and role assignments.", no_args_is_help=True)
assignment_app = typer.Typer(help="Manage role assignments.", no_args_is_help=True)
definition_app = typer.Typer(help="Manage role definitions.", no_args_is_help=True)
app.add_typer(assignment_app, name="assignment")
app.add_typer(definition_app, name="definition")

API = "2022-04-01"
AUTHORIZATION = "/providers/Microsoft.Authorization"
ASSIGNMENT_COLUMNS = (("Principal", field("principalId")), ("Role", field("roleDefinitionName")),
                      ("Scope", field("scope")))
DEFINITION_COLUMNS = (("Name", field("roleName")), ("Type", field("roleType")), ("Id", field("name")))
ScopeOpt = Annotated[Optional[str], typer.Option("--scope", help="Scope: /subscriptions/…, a resource group or any resource id (default: the subscription).")]


def _scope(session: Session, scope: Optional[str]) -> str:
    return (scope or f"/subscriptions/{session.subscription}").rstrip("/")


def _roles(session: Session, scope: str) -> list[dict]:
    return session.client.list(f"{scope}{AUTHORIZATION}/roleDefinitions", API)


def _role_id(session: Session, scope: str, role: str) -> str:
    try:
        return str(uuid.UUID(role.rstrip("/").split("/")[-1]))
    except ValueError:
        pass
    found = [r for r in _roles(session, scope) if r["properties"]["roleName"].lower() == role.lower()]
    if not found:
        raise ArmError("RoleNotFound", f"Role '{role}' doesn't exist.")
    return found[0]["name"]


def _assignee(session: Session, assignee: str) -> tuple[str, Optional[str]]:
    """(object id, principal type): an object id as given; a user's name or user principal name
    (alice, alice@<tenant id>.galley.local) looked up in the directory, as az looks up a UPN."""
    try:
        return str(uuid.UUID(assignee)), None
    except ValueError:
        pass
    try:
        user = session.client.get(f"/providers/Galley.Identity/users/{assignee}", "")
    except ArmError as error:
        raise ArmError("PrincipalNotFound", f"Cannot find user or service principal in graph database for "
                       f"'{assignee}'. Give an object id, or a user's name.") from error
    return user["id"], "User"


def _flat(assignment: dict, names: dict[str, str]) -> dict:
    """As az prints an assignment: its properties beside id/name/type, and the role's name."""
    props = assignment.get("properties", {})
    role_guid = props.get("roleDefinitionId", "").rstrip("/").split("/")[-1]
    return {"id": assignment["id"], "name": assignment["name"], "type": assignment["type"], **props,
            "roleDefinitionName": names.get(role_guid)}


@arm_command(assignment_app, "create", ASSIGNMENT_COLUMNS)
def assignment_create(
    session: Session,
    *,
    role: Annotated[str, typer.Option("--role", help="Role name or id, e.g. Reader.")],
    assignee_object_id: Annotated[str, typer.Option("--assignee-object-id", "--assignee", help="Object id of the service principal, user or group, or a user's name (alice or alice@<tenant id>.galley.local).")],
    assignee_principal_type: Annotated[Optional[str], typer.Option("--assignee-principal-type", help="ServicePrincipal, User or Group.")] = None,
    scope: ScopeOpt = None,
    description: Annotated[Optional[str], typer.Option("--description")] = None,
):
    """Give a principal a role at a scope (and everything below it)."""
    at = _scope(session, scope)
    role_id = _role_id(session, at, role)
    principal_id, principal_type = _assignee(session, assignee_object_id)
    props = {"roleDefinitionId": f"{AUTHORIZATION}/roleDefinitions/{role_id}", "principalId": principal_id}
    if assignee_principal_type or principal_type:
        props["principalType"] = assignee_principal_type or principal_type
    if description:
        props["description"] = description
    body = session.client.send("PUT", f"{at}{AUTHORIZATION}/roleAssignments/{uuid.uuid4()}", API,
                               body={"properties": props}).json()
    return _flat(body, {role_id: role})


@arm_command(assignment_app, "list", ASSIGNMENT_COLUMNS)
def assignment_list(
    session: Session,
    *,
    scope: ScopeOpt = None,
    assignee: Annotated[Optional[str], typer.Option("--assignee", help="Only this principal's (object id, or a user's name).")] = None,
    include_inherited: Annotated[bool, typer.Option("--include-inherited", help="Also assignments above --scope.")] = False,
):
    """List role assignments at a scope (and below it; --include-inherited adds those above)."""
    at = _scope(session, scope)
    params = {"$filter": f"principalId eq '{_assignee(session, assignee)[0]}'"} if assignee else None
    found = session.client.list(f"{at}{AUTHORIZATION}/roleAssignments", API, params=params)
    if not include_inherited and scope is not None:
        key = at.lower()
        found = [a for a in found if a["properties"]["scope"].lower().startswith(key)]
    names = {r["name"]: r["properties"]["roleName"] for r in _roles(session, at)}
    return [_flat(a, names) for a in found]


@arm_command(assignment_app, "delete")
def assignment_delete(
    session: Session,
    *,
    ids: Annotated[Optional[list[str]], typer.Option("--ids", help="Assignment ids.")] = None,
    role: Annotated[Optional[str], typer.Option("--role")] = None,
    assignee: Annotated[Optional[str], typer.Option("--assignee", help="Object id, or a user's name.")] = None,
    scope: ScopeOpt = None,
):
    """Delete role assignments, by id or by role, assignee and scope."""
    if ids:
        targets = ids
    else:
        if not (role or assignee):
            raise usage_error("give --ids, or --role/--assignee (with --scope)")
        at = _scope(session, scope)
        role_id = _role_id(session, at, role) if role else None
        assignee = _assignee(session, assignee)[0] if assignee else None
        found = session.client.list(f"{at}{AUTHORIZATION}/roleAssignments", API)
        targets = [a["id"] for a in found if a["properties"]["scope"].lower() == at.lower()
                   and (not assignee or a["properties"]["principalId"] == assignee)
                   and (not role_id or a["properties"]["roleDefinitionId"].endswith(role_id))]
    for target in targets:
        session.client.send("DELETE", target, API)


@arm_command(definition_app, "list", DEFINITION_COLUMNS)
def definition_list(
    session: Session,
    *,
    name: Annotated[Optional[str], typer.Option("--name", help="Only the role with this name.")] = None,
    custom_role_only: Annotated[bool, typer.Option("--custom-role-only")] = False,
    scope: ScopeOpt = None,
):
    """List role definitions (built-in and custom)."""
    clauses = ([f"roleName eq '{name}'"] if name else []) + (["type eq 'CustomRole'"] if custom_role_only else [])
    params = {"$filter": " and ".join(clauses)} if clauses else None
    found = session.client.list(f"{_scope(session, scope)}{AUTHORIZATION}/roleDefinitions", API, params=params)
    return [{"id": r["id"], "name": r["name"], "type": r["type"], **r["properties"],
             "roleType": r["properties"]["type"]} for r in found]


@arm_command(definition_app, "create")
def definition_create(
    session: Session,
    *,
    role_definition: Annotated[str, typer.Option("--role-definition", help="JSON (or @file) with Name, Description, Actions, NotActions, AssignableScopes, as az takes it.")],
):
    """Create a custom role."""
    text = Path(role_definition[1:]).read_text() if role_definition.startswith("@") else role_definition
    try:
        spec = {k.lower(): v for k, v in json.loads(text).items()}
    except (ValueError, AttributeError) as error:
        raise usage_error(f"--role-definition is not a JSON object: {error}")
    scopes = spec.get("assignablescopes") or [f"/subscriptions/{session.subscription}"]
    body = {"properties": {"roleName": spec.get("name") or spec.get("rolename"),
                           "description": spec.get("description", ""), "assignableScopes": scopes,
                           "permissions": [{"actions": spec.get("actions", []),
                                            "notActions": spec.get("notactions", [])}]}}
    role_id = spec.get("id") or str(uuid.uuid4())
    return session.client.send("PUT", f"{scopes[0]}{AUTHORIZATION}/roleDefinitions/{role_id}", API, body=body).json()


@arm_command(definition_app, "delete")
def definition_delete(session: Session, *, name: Annotated[str, typer.Option("--name", help="Role name or id.")],
                      scope: ScopeOpt = None):
    """Delete a custom role (none of its assignments may remain)."""
    at = _scope(session, scope)
    session.client.send("DELETE", f"{at}{AUTHORIZATION}/roleDefinitions/{_role_id(session, at, name)}", API)
