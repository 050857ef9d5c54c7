"""Who may do what: role definitions (built-in and custom), role assignments, groups, and each
caller's grants.

Grants are cached per principal for GRANT_CACHE_SECONDS: an assignment made or removed on this
node takes effect on its next request; on another node of the same database within that time.
"""

from __future__ import annotations

import threading
import time
import uuid

from ..domain import access as rules
from ..domain.access import Assignment, Grant, RoleDefinition
from ..domain.errors import ArmError, Conflict, InvalidParameter, NotFound
from ..domain.identity import Caller
from ..domain.names import guid
from ..domain.resource import iso, utc_now
from ..store.access_store import AccessStore

GRANT_CACHE_SECONDS = 2.0
_BUILT_IN = {r.id: r for r in rules.BUILT_IN_ROLES}


class AccessService:
    def __init__(self, store: AccessStore) -> None:
        self.store = store
        self._grants: dict[str, tuple[float, list[Grant]]] = {}
        self._roles: tuple[float, dict[str, RoleDefinition]] = (0.0, {})
        self._lock = threading.Lock()

    # -- evaluation ------------------------------------------------------------------------------
    def roles(self) -> dict[str, RoleDefinition]:
        loaded_at, roles = self._roles
        if time.monotonic() - loaded_at > GRANT_CACHE_SECONDS:
            with self.store.read() as tx:
                roles = {**_BUILT_IN, **{r.id: r for r in tx.custom_roles()}}
            self._roles = (time.monotonic(), roles)
        return roles

    def grants(self, principal_id: str) -> list[Grant]:
        cached = self._grants.get(principal_id)
        if cached is not None and time.monotonic() - cached[0] < GRANT_CACHE_SECONDS:
            return cached[1]
        with self.store.read() as tx:
            principal_ids = [principal_id, *tx.groups_of(principal_id)]
            assignments = tx.assignments_of(principal_ids)
        roles = self.roles()
        grants = [Grant(rules.scope_key(a.scope), roles[a.role_definition_id])
                  for a in assignments if a.role_definition_id in roles]
        with self._lock:
            if len(self._grants) > 50_000:
                self._grants.clear()
            self._grants[principal_id] = (time.monotonic(), grants)
        return grants

    def forget(self) -> None:
        """This node's caches, after a change made here."""
        with self._lock:
            self._grants.clear()
        self._roles = (0.0, {})

    def allowed(self, caller: Caller, action: str, scope: str) -> bool:
        return rules.allowed(self.grants(caller.object_id), action, scope)

    def check(self, caller: Caller, action: str, scope: str, *, linked: bool = False) -> None:
        if not self.allowed(caller, action, scope):
            raise rules.denial(caller, action, scope, linked=linked)

    def subscriptions_with_roles(self, caller: Caller) -> set[str]:
        return {sub for g in self.grants(caller.object_id) if (sub := rules.subscription_of(g.scope_key))}

    # -- role definitions ------------------------------------------------------------------------
    def role_definitions(self, role_filter: str | None) -> list[RoleDefinition]:
        found = sorted(self.roles().values(), key=lambda r: (r.role_type != rules.BUILT_IN, r.role_name.lower()))
        name, kind = _role_filter(role_filter)
        if name is not None:
            found = [r for r in found if r.role_name.lower() == name.lower()]
        if kind is not None:
            found = [r for r in found if r.role_type.lower() == kind.lower()]
        return found

    def role_definition(self, role_id: str) -> RoleDefinition:
        role = self.roles().get(_guid(role_id, "roleDefinitionId"))
        if role is None:
            raise NotFound(f"The role definition '{role_id}' does not exist.", code="RoleDefinitionDoesNotExist")
        return role

    def put_role_definition(self, caller: Caller, scope: str, role_id: str, body: dict) -> tuple[RoleDefinition, bool]:
        role_id = _guid(role_id, "roleDefinitionId")
        if role_id in _BUILT_IN:
            raise ArmError("Built-in roles cannot be changed.", code="RoleDefinitionUpdateNotAllowed", status=409)
        role = rules.parse_role_definition(role_id, body, {r.role_name.lower() for r in rules.BUILT_IN_ROLES})
        for assignable in role.assignable_scopes:  # you may define a role only where you may manage roles
            if not self.allowed(caller, "Microsoft.Authorization/roleDefinitions/write", assignable):
                raise rules.denial(caller, "Microsoft.Authorization/roleDefinitions/write", assignable)
        with self.store.write() as tx:
            existing = tx.custom_role(role_id)
            clash = next((r for r in tx.custom_roles() if r.role_name.lower() == role.role_name.lower()
                          and r.id != role_id), None)
            if clash is not None:
                raise Conflict(f"A custom role named '{role.role_name}' exists already ({clash.id}).",
                               code="RoleDefinitionWithSameNameExists")
            tx.put_custom_role(role, iso(utc_now()))
        self.forget()
        return role, existing is None

    def delete_role_definition(self, role_id: str) -> RoleDefinition | None:
        role_id = _guid(role_id, "roleDefinitionId")
        if role_id in _BUILT_IN:
            raise ArmError("Built-in roles cannot be deleted.", code="RoleDefinitionUpdateNotAllowed", status=409)
        with self.store.write() as tx:
            role = tx.custom_role(role_id)
            if role is None:
                return None
            if tx.role_in_use(role_id):
                raise Conflict(f"The role '{role.role_name}' is still assigned; delete its assignments first.",
                               code="RoleDefinitionHasAssignments")
            tx.delete_custom_role(role_id)
        self.forget()
        return role

    # -- role assignments ------------------------------------------------------------------------
    def put_assignment(self, caller: Caller, scope: str, name: str, body: dict) -> tuple[Assignment, bool]:
        name = _guid(name, "roleAssignmentName")
        props = body.get("properties")
        if not isinstance(props, dict):
            raise InvalidParameter("The role assignment needs 'properties'.", target="properties")
        role = self.role_definition(rules.role_guid(props.get("roleDefinitionId")))
        rules.check_assignable(role, scope)
        principal_id = props.get("principalId")
        if not isinstance(principal_id, str):
            raise InvalidParameter("'properties.principalId' is required.", target="properties.principalId")
        principal_id = _guid(principal_id, "principalId")
        principal_type = props.get("principalType") or None
        if principal_type is not None and principal_type not in rules.PRINCIPAL_TYPES:
            raise InvalidParameter(f"principalType '{principal_type}' is not one of {list(rules.PRINCIPAL_TYPES)}.",
                                   target="properties.principalType")
        description = props.get("description")
        if description is not None and (not isinstance(description, str) or len(description) > 2048):
            raise InvalidParameter("'properties.description' must be a string of at most 2048 characters.",
                                   target="properties.description")
        with self.store.write() as tx:
            kind = _principal_kind(tx, principal_id) or principal_type
            if kind is None:  # an external issuer's principal is not in the directory: name its type
                raise ArmError(f"Principal {principal_id} does not exist in the directory. For a principal "
                               "of an external issuer, give properties.principalType.",
                               code="PrincipalNotFound", target="properties.principalId")
            existing = tx.assignment(name)
            if existing is not None:
                if (rules.scope_key(existing.scope) == rules.scope_key(scope) and existing.principal_id == principal_id
                        and existing.role_definition_id == role.id):
                    return existing, False
                raise Conflict("A role assignment with this name exists with other properties; role "
                               "assignments cannot be updated.", code="RoleAssignmentUpdateNotPermitted")
            twin = next((a for a in tx.assignments_of([principal_id])
                         if a.role_definition_id == role.id and rules.scope_key(a.scope) == rules.scope_key(scope)), None)
            if twin is not None:
                raise Conflict(f"The role assignment already exists ({twin.arm_id()}).", code="RoleAssignmentExists")
            assignment = Assignment(id=name, scope=scope, role_definition_id=role.id, principal_id=principal_id,
                                    principal_type=principal_type or kind, description=description,
                                    created_on=iso(utc_now()), created_by=caller.object_id)
            tx.add_assignment(assignment)
        self.forget()
        return assignment, True

    def assignment(self, scope: str, name: str) -> Assignment:
        with self.store.read() as tx:
            found = tx.assignment(name)
        if found is None or rules.scope_key(found.scope) != rules.scope_key(scope):
            raise NotFound(f"The role assignment '{name}' is not found.", code="RoleAssignmentNotFound")
        return found

    def delete_assignment(self, scope: str, name: str) -> Assignment | None:
        with self.store.write() as tx:
            found = tx.assignment(name)
            if found is None or rules.scope_key(found.scope) != rules.scope_key(scope):
                return None
            tx.delete_assignment(found.id)
        self.forget()
        return found

    def assignments(self, caller: Caller, scope: str, assignment_filter: str | None) -> list[Assignment]:
        at_scope, principal = _assignment_filter(assignment_filter)
        key = rules.scope_key(scope)
        with self.store.read() as tx:
            found = tx.assignments_near(scope)
            if principal is not None:
                principal_ids = {principal, *tx.groups_of(principal)}
                found = [a for a in found if a.principal_id in principal_ids]
        if at_scope:
            found = [a for a in found if rules.contains(rules.scope_key(a.scope), key)]
        grants = self.grants(caller.object_id)
        action = "Microsoft.Authorization/roleAssignments/read"
        return [a for a in found if rules.allowed(grants, action, a.scope) or rules.allowed(grants, action, scope)]

    def grant(self, caller: Caller | None, principal_id: str, role: RoleDefinition, scope: str,
              principal_type: str = "ServicePrincipal") -> Assignment:
        """An assignment Galley makes itself (the creator of a subscription becomes its Owner)."""
        assignment = Assignment(id=str(uuid.uuid4()), scope=scope, role_definition_id=role.id,
                                principal_id=principal_id, principal_type=principal_type,
                                created_on=iso(utc_now()), created_by=caller.object_id if caller else None)
        with self.store.write() as tx:
            tx.add_assignment(assignment)
        self.forget()
        return assignment

    # -- groups ----------------------------------------------------------------------------------
    def create_group(self, caller: Caller, display_name: str, tenant_id: str | None) -> dict:
        tenant_id = (tenant_id or caller.tenant_id).lower()
        if not caller.may_manage_tenant(tenant_id):
            raise NotFound(f"Tenant '{tenant_id}' does not exist or is not yours to manage.", code="TenantNotFound")
        if not isinstance(display_name, str) or not display_name.strip() or len(display_name) > 256:
            raise InvalidParameter("The group's display name must be 1 to 256 characters.", target="displayName")
        group_id = str(uuid.uuid4())
        with self.store.write() as tx:
            if tx.tenant(tenant_id) is None:
                raise NotFound(f"Tenant '{tenant_id}' does not exist.", code="TenantNotFound")
            tx.add_group(group_id, tenant_id, display_name.strip(), iso(utc_now()))
        return self.group(caller, group_id)

    def group(self, caller: Caller, group_id: str) -> dict:
        with self.store.read() as tx:
            found = tx.group(_guid(group_id, "groupId"))
            if found is None or not caller.may_manage_tenant(found["tenant_id"]):
                raise NotFound(f"Group '{group_id}' does not exist or is not yours to manage.", code="GroupNotFound")
            members = tx.members(found["id"])
        return {"id": found["id"], "displayName": found["display_name"], "tenantId": found["tenant_id"],
                "objectType": "Group", "members": members}

    def groups(self, caller: Caller) -> list[dict]:
        with self.store.read() as tx:
            found = [g for g in tx.groups() if caller.may_manage_tenant(g["tenant_id"])]
        return [{"id": g["id"], "displayName": g["display_name"], "tenantId": g["tenant_id"],
                 "objectType": "Group"} for g in found]

    def change_member(self, caller: Caller, group_id: str, member_id: str, add: bool) -> dict:
        group = self.group(caller, group_id)
        member_id = _guid(member_id, "memberId")
        with self.store.write() as tx:
            if add:
                if tx.principal(member_id) is None:
                    raise ArmError(f"Principal {member_id} does not exist in the directory.",
                                   code="PrincipalNotFound", target="memberId")
                tx.add_member(group["id"], member_id)
            else:
                tx.remove_member(group["id"], member_id)
        self.forget()
        return self.group(caller, group_id)

    def delete_group(self, caller: Caller, group_id: str) -> None:
        group = self.group(caller, group_id)
        with self.store.write() as tx:
            tx.delete_assignments_of(group["id"])
            tx.delete_group(group["id"])
        self.forget()


def _principal_kind(tx, principal_id: str) -> str | None:
    principal = tx.principal(principal_id)
    if principal is not None:
        return principal.kind
    if tx.group(principal_id) is not None:
        return "Group"
    return "ServicePrincipal" if tx.identity_with_principal(principal_id) else None


def _guid(value: str, what: str) -> str:
    canonical = guid(value)
    if canonical is None:
        raise InvalidParameter(f"'{value}' is not a valid {what}: expected a GUID.", target=what)
    return canonical


def _quoted(clause: str, prefix: str) -> str | None:
    clause = clause.strip()
    if clause.lower().startswith(prefix):
        rest = clause[len(prefix):].strip()
        if len(rest) >= 2 and rest[0] == rest[-1] == "'":
            return rest[1:-1]
    return None


def _role_filter(text: str | None) -> tuple[str | None, str | None]:
    """`roleName eq 'Reader'`, `type eq 'BuiltInRole'` (and both joined by `and`)."""
    name = kind = None
    for clause in (text or "").split(" and ") if text else []:
        if (value := _quoted(clause, "rolename eq")) is not None:
            name = value
        elif (value := _quoted(clause, "type eq")) is not None:
            kind = value
        else:
            raise InvalidParameter(f"The $filter '{text}' is not supported: use roleName eq '<name>' or "
                                   "type eq 'BuiltInRole'|'CustomRole'.", target="$filter")
    return name, kind


def _assignment_filter(text: str | None) -> tuple[bool, str | None]:
    """`atScope()`, `principalId eq '<id>'`, `assignedTo('<id>')`, joined by `and`."""
    at_scope, principal = False, None
    for clause in (text or "").split(" and ") if text else []:
        lowered = clause.strip().lower()
        if lowered == "atscope()":
            at_scope = True
        elif (value := _quoted(clause, "principalid eq")) is not None:
            principal = _guid(value, "principalId")
        elif lowered.startswith("assignedto(") and lowered.endswith(")"):
            principal = _guid(clause.strip()[len("assignedTo("):-1].strip("'\" "), "principalId")
        else:
            raise InvalidParameter(f"The $filter '{text}' is not supported: use atScope(), principalId eq "
                                   "'<id>' or assignedTo('<id>').", target="$filter")
    return at_scope, principal
