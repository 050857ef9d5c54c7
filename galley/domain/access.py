"""Role-based access: role definitions, assignments and the one evaluation every request goes through.

A role grants `actions` less `notActions` (ARM's patterns: `*`, `*/read`, `Microsoft.Compute/*`,
matched case-insensitively); an assignment gives a role to a principal (or a group) at a scope
(`/`, a subscription, a resource group or any resource) and everything below it. A caller may do
an action at a scope when one of its grants covers both. Seed 001's sharing matrix follows:
Reader on a gallery reads its definitions and versions; Reader on a definition reads that
definition and its versions, not the gallery (a grant reaches down, never up).

Plain data and decisions; the store keeps assignments and custom roles, the api layer maps each
request to an (action, scope).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .errors import ArmError, InvalidParameter
from .names import guid

ROLE_DEFINITION_TYPE = "Microsoft.Authorization/roleDefinitions"
ROLE_ASSIGNMENT_TYPE = "Microsoft.Authorization/roleAssignments"
BUILT_IN = "BuiltInRole"
CUSTOM = "CustomRole"
PRINCIPAL_TYPES = ("ServicePrincipal", "Group", "User", "ForeignGroup", "Device")


class AuthorizationFailed(ArmError):
    code = "AuthorizationFailed"
    status = 403


@dataclass(frozen=True)
class RoleDefinition:
    id: str  # the GUID
    role_name: str
    description: str
    actions: tuple[str, ...]
    not_actions: tuple[str, ...] = ()
    assignable_scopes: tuple[str, ...] = ("/",)
    role_type: str = BUILT_IN
    _allow: re.Pattern = field(init=False, repr=False, compare=False)
    _deny: re.Pattern | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_allow", _patterns(self.actions))
        object.__setattr__(self, "_deny", _patterns(self.not_actions) if self.not_actions else None)

    def allows(self, action: str) -> bool:
        return bool(self._allow.match(action)) and not (self._deny and self._deny.match(action))

    def to_arm(self, at_scope: str = "/") -> dict:
        """As listed at a scope: ids carry the scope's subscription (as Azure answers), so they
        equal the roleDefinitionId of assignments in that subscription."""
        subscription = subscription_of(at_scope)
        prefix = f"/subscriptions/{subscription}" if subscription else ""
        return {"id": f"{prefix}/providers/{ROLE_DEFINITION_TYPE}/{self.id}",
                "name": self.id, "type": ROLE_DEFINITION_TYPE,
                "properties": {"roleName": self.role_name, "type": self.role_type,
                               "description": self.description,
                               "assignableScopes": list(self.assignable_scopes),
                               "permissions": [{"actions": list(self.actions), "notActions": list(self.not_actions),
                                                "dataActions": [], "notDataActions": []}]}}


def _patterns(patterns: tuple[str, ...]) -> re.Pattern:
    """ARM's wildcards: `*` matches anything, and a whole segment `/*/` may also match nothing
    (Managed Identity Operator's `userAssignedIdentities/*/assign/action` covers
    `userAssignedIdentities/assign/action`)."""
    alternatives = [re.escape(p).replace("/\\*/", "(?:/.*)?/").replace("\\*", ".*") for p in patterns]
    return re.compile("^(?:" + "|".join(alternatives or ["(?!)"]) + ")$", re.IGNORECASE)


# Azure's built-in roles, with their ids and (the parts of) their permissions that matter here.
OWNER = RoleDefinition("8e3af657-a8ff-443c-a75c-2fe8c4bcb635", "Owner",
                       "Grants full access to manage all resources, including the ability to assign roles.",
                       ("*",))
CONTRIBUTOR = RoleDefinition(
    "b24988ac-6180-42a0-ab88-20f7382dd24c", "Contributor",
    "Grants full access to manage all resources, but does not allow you to assign roles, manage "
    "assignments, or share image galleries.",
    ("*",), ("Microsoft.Authorization/*/Delete", "Microsoft.Authorization/*/Write",
             "Microsoft.Authorization/elevateAccess/Action", "Microsoft.Compute/galleries/share/action"))
READER = RoleDefinition("acdd72a7-3385-48ef-bd42-f606fba81ae7", "Reader",
                        "View all resources, but does not allow you to make any changes.", ("*/read",))
USER_ACCESS_ADMINISTRATOR = RoleDefinition(
    "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9", "User Access Administrator",
    "Lets you manage user access to Azure resources.", ("*/read", "Microsoft.Authorization/*"))
BUILT_IN_ROLES = (OWNER, CONTRIBUTOR, READER, USER_ACCESS_ADMINISTRATOR)


@dataclass(frozen=True)
class Assignment:
    id: str  # the assignment's name (a GUID)
    scope: str
    role_definition_id: str  # GUID
    principal_id: str
    principal_type: str = "ServicePrincipal"
    description: str | None = None
    created_on: str | None = None
    created_by: str | None = None

    def arm_id(self) -> str:
        return f"{scope_prefix(self.scope)}/providers/{ROLE_ASSIGNMENT_TYPE}/{self.id}"

    def to_arm(self) -> dict:
        subscription = subscription_of(self.scope)
        definition_scope = f"/subscriptions/{subscription}" if subscription else ""
        return {"id": self.arm_id(), "name": self.id, "type": ROLE_ASSIGNMENT_TYPE,
                "properties": {"roleDefinitionId": f"{definition_scope}/providers/{ROLE_DEFINITION_TYPE}/"
                                                   f"{self.role_definition_id}",
                               "principalId": self.principal_id, "principalType": self.principal_type,
                               "scope": self.scope, "condition": None, "conditionVersion": None,
                               "description": self.description, "createdOn": self.created_on,
                               "updatedOn": self.created_on, "createdBy": self.created_by,
                               "updatedBy": self.created_by, "delegatedManagedIdentityResourceId": None}}


@dataclass(frozen=True)
class Grant:
    """One role at one scope, for the caller (directly or through a group)."""

    scope_key: str
    role: RoleDefinition


# ---- scopes ---------------------------------------------------------------------------------

def scope_key(scope: str) -> str:
    """Scopes compare case-insensitively, segment by segment; '/' is the root."""
    return "/" + "/".join(s for s in scope.lower().split("/") if s)


def scope_prefix(scope: str) -> str:
    """The scope as the start of an id ('' for the root, so ids do not start with '//')."""
    key = scope.rstrip("/")
    return key


def contains(outer_key: str, inner_key: str) -> bool:
    return outer_key == "/" or inner_key == outer_key or inner_key.startswith(outer_key + "/")


def subscription_of(scope: str) -> str | None:
    parts = [s for s in scope.split("/") if s]
    return parts[1].lower() if len(parts) >= 2 and parts[0].lower() == "subscriptions" else None


def check_scope(scope: str) -> str:
    """A scope a role can be assigned at: '/', or an ARM id below /subscriptions/{guid}."""
    parts = [s for s in scope.split("/") if s]
    if scope.strip() != scope or any(ch in scope for ch in "\n\r\t\0 ") or (parts and (
            parts[0].lower() != "subscriptions" or len(parts) < 2)):
        raise InvalidParameter(f"The scope '{scope}' is not valid: use '/', /subscriptions/{{id}}, a resource "
                               "group or a resource id.", target="scope", code="InvalidScope")
    if parts:
        if guid(parts[1]) is None:
            raise InvalidParameter(f"The scope '{scope}' names no subscription GUID.", target="scope",
                                   code="InvalidScope")
    return "/" + "/".join(parts)


# ---- the evaluation -------------------------------------------------------------------------

def allowed(grants: list[Grant], action: str, scope: str) -> bool:
    key = scope_key(scope)
    return any(contains(g.scope_key, key) and g.role.allows(action) for g in grants)


def may_list(grants: list[Grant], action: str, scope: str) -> bool:
    """A list at `scope` is answered (perhaps filtered) when some grant reads that type at, above
    or below the scope."""
    key = scope_key(scope)
    return any((contains(g.scope_key, key) or contains(key, g.scope_key)) and g.role.allows(action)
               for g in grants)


def has_any_role_in(grants: list[Grant], scope: str) -> bool:
    key = scope_key(scope)
    return any(contains(g.scope_key, key) or contains(key, g.scope_key) for g in grants)


def denial(caller, action: str, scope: str, *, linked: bool = False) -> ArmError:
    """ARM's refusal of `action` over `scope` to `caller` (a domain.identity.Caller); `linked` when
    the scope is a resource the request names in its body (a source, an identity to assign)."""
    where = "on the linked resource it names " if linked else ""
    return AuthorizationFailed(
        f"The client '{caller.client_name}' with object id '{caller.object_id}' does not have "
        f"authorization {where}to perform action '{action}' over scope '{scope}' or the scope is invalid. If "
        "access was recently granted, please refresh your credentials.", target=None,
        code="LinkedAuthorizationFailed" if linked else None)


# ---- custom roles and assignments -----------------------------------------------------------

def parse_role_definition(role_id: str, body: dict, existing_builtin_names: set[str]) -> RoleDefinition:
    props = body.get("properties")
    if not isinstance(props, dict):
        raise InvalidParameter("The role definition needs 'properties'.", target="properties")
    name = props.get("roleName")
    if not isinstance(name, str) or not name.strip() or len(name) > 512:
        raise InvalidParameter("'properties.roleName' is required (1 to 512 characters).",
                               target="properties.roleName")
    if name.lower() in existing_builtin_names:
        raise ArmError(f"A built-in role named '{name}' exists already.", code="RoleDefinitionWithSameNameExists",
                       status=409, target="properties.roleName")
    permissions = props.get("permissions")
    if (not isinstance(permissions, list) or len(permissions) != 1 or not isinstance(permissions[0], dict)):
        raise InvalidParameter("'properties.permissions' must be a list of one permission object.",
                               target="properties.permissions")
    actions = _strings(permissions[0].get("actions", []), "properties.permissions[0].actions")
    not_actions = _strings(permissions[0].get("notActions", []), "properties.permissions[0].notActions")
    if not actions:
        raise InvalidParameter("A role needs at least one action.", target="properties.permissions[0].actions")
    scopes = _strings(props.get("assignableScopes"), "properties.assignableScopes")
    if not scopes:
        raise InvalidParameter("'properties.assignableScopes' must name at least one scope.",
                               target="properties.assignableScopes")
    description = props.get("description") or ""
    if not isinstance(description, str) or len(description) > 2048:
        raise InvalidParameter("'properties.description' must be a string of at most 2048 characters.",
                               target="properties.description")
    return RoleDefinition(role_id, name.strip(), description, tuple(actions), tuple(not_actions),
                          tuple(check_scope(s) for s in scopes), CUSTOM)


_ACTION = re.compile(r"[A-Za-z0-9.*/_-]{1,256}")


def _strings(value, target: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value) or len(value) > 200:
        raise InvalidParameter(f"'{target}' must be a list of at most 200 strings.", target=target)
    if target.endswith("ctions") and not all(_ACTION.fullmatch(v) for v in value):
        raise InvalidParameter(f"'{target}' holds an action that is not an ARM action pattern "
                               "(e.g. Microsoft.Compute/galleries/read, */read, *).", target=target)
    return value


def role_guid(role_definition_id: object) -> str:
    """The GUID at the end of a roleDefinitionId (any scope prefix)."""
    if not isinstance(role_definition_id, str) or not role_definition_id:
        raise InvalidParameter("'properties.roleDefinitionId' is required.", target="properties.roleDefinitionId")
    last = role_definition_id.rstrip("/").split("/")[-1]
    canonical = guid(last)
    if canonical is None:
        raise InvalidParameter(f"The role definition id '{role_definition_id}' is not valid.",
                               target="properties.roleDefinitionId", code="InvalidRoleDefinitionId")
    return canonical


def check_assignable(role: RoleDefinition, scope: str) -> None:
    """A role may be assigned only within its assignable scopes (so a custom role defined for one
    resource group cannot be handed out over a whole subscription)."""
    key = scope_key(scope)
    if not any(contains(scope_key(s), key) for s in role.assignable_scopes):
        raise ArmError(f"The role '{role.role_name}' cannot be assigned at scope '{scope}': its assignable "
                       f"scopes are {list(role.assignable_scopes)}.", code="InvalidRoleAssignmentScope",
                       status=403, target="properties.scope")
