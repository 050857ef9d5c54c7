"""Access records over SQLAlchemy Core: custom roles, role assignments, groups and their members."""

from __future__ import annotations

import orjson
from sqlalchemy import delete, insert, or_, select

from ..domain.access import Assignment, RoleDefinition, CUSTOM, scope_key
from .identity_store import IdentityStore, IdentityTransaction
from ..domain.ids import USER_IDENTITY_TYPE
from .tables import group_members, groups, resources, role_assignments, role_definitions

_RD = role_definitions.c
_RA = role_assignments.c
_GR = groups.c
_GM = group_members.c


def _role(row) -> RoleDefinition:
    m = row._mapping
    return RoleDefinition(m["id"], m["role_name"], m["description"], tuple(orjson.loads(m["actions"])),
                          tuple(orjson.loads(m["not_actions"])), tuple(orjson.loads(m["assignable_scopes"])),
                          CUSTOM)


def _assignment(row) -> Assignment:
    m = row._mapping
    return Assignment(id=m["id"], scope=m["scope"], role_definition_id=m["role_definition_id"],
                      principal_id=m["principal_id"], principal_type=m["principal_type"],
                      description=m["description"], created_on=m["created_at"], created_by=m["created_by"])


class AccessTransaction(IdentityTransaction):
    # -- custom roles ----------------------------------------------------------------------
    def custom_roles(self) -> list[RoleDefinition]:
        return [_role(r) for r in self.c.execute(select(role_definitions).order_by(_RD.role_name))]

    def custom_role(self, role_id: str) -> RoleDefinition | None:
        row = self.c.execute(select(role_definitions).where(_RD.id == role_id.lower())).first()
        return _role(row) if row else None

    def put_custom_role(self, role: RoleDefinition, created_at: str) -> None:
        self.c.execute(delete(role_definitions).where(_RD.id == role.id))
        self.c.execute(insert(role_definitions).values(
            id=role.id, role_name=role.role_name, description=role.description,
            actions=orjson.dumps(list(role.actions)).decode(), not_actions=orjson.dumps(list(role.not_actions)).decode(),
            assignable_scopes=orjson.dumps(list(role.assignable_scopes)).decode(), created_at=created_at))

    def delete_custom_role(self, role_id: str) -> None:
        self.c.execute(delete(role_definitions).where(_RD.id == role_id))

    def role_in_use(self, role_id: str) -> bool:
        return self.c.execute(select(_RA.id).where(_RA.role_definition_id == role_id).limit(1)).first() is not None

    # -- assignments -----------------------------------------------------------------------
    def assignment(self, assignment_id: str) -> Assignment | None:
        row = self.c.execute(select(role_assignments).where(_RA.id == assignment_id.lower())).first()
        return _assignment(row) if row else None

    def assignments_of(self, principal_ids: list[str]) -> list[Assignment]:
        return [_assignment(r) for r in self.c.execute(
            select(role_assignments).where(_RA.principal_id.in_(principal_ids)))]

    def assignments_near(self, scope: str) -> list[Assignment]:
        """Assignments at the scope, above it and below it."""
        key = scope_key(scope)
        above = ["/"] + ["/" + "/".join(key.strip("/").split("/")[:i]) for i in range(1, key.count("/") + 1)]
        query = select(role_assignments).where(or_(_RA.scope_key.in_(above),
                                                   _RA.scope_key.like(key.rstrip("/") + "/%")))
        return [_assignment(r) for r in self.c.execute(query.order_by(_RA.created_at, _RA.id))]

    def add_assignment(self, assignment: Assignment) -> None:
        self.c.execute(insert(role_assignments).values(
            id=assignment.id, scope=assignment.scope, scope_key=scope_key(assignment.scope),
            role_definition_id=assignment.role_definition_id, principal_id=assignment.principal_id,
            principal_type=assignment.principal_type, description=assignment.description,
            created_at=assignment.created_on, created_by=assignment.created_by))

    def delete_assignment(self, assignment_id: str) -> None:
        self.c.execute(delete(role_assignments).where(_RA.id == assignment_id))

    def delete_assignments_of(self, principal_id: str) -> None:
        self.c.execute(delete(role_assignments).where(_RA.principal_id == principal_id))

    def delete_assignments_below(self, scope: str) -> None:
        key = scope_key(scope)
        self.c.execute(delete(role_assignments).where(or_(_RA.scope_key == key,
                                                          _RA.scope_key.like(key + "/%"))))

    def identity_with_principal(self, principal_id: str) -> bool:
        """Is `principal_id` the principal of a user-assigned managed identity?"""
        rows = self.c.execute(select(resources.c.properties).where(resources.c.type == USER_IDENTITY_TYPE))
        return any(orjson.loads(r[0]).get("principalId") == principal_id for r in rows)

    # -- groups ----------------------------------------------------------------------------
    def groups_of(self, member_id: str) -> list[str]:
        return list(self.c.execute(select(_GM.group_id).where(_GM.member_id == member_id)).scalars())

    def group(self, group_id: str) -> dict | None:
        row = self.c.execute(select(groups).where(_GR.id == group_id.lower())).first()
        return dict(row._mapping) if row else None

    def groups(self, tenant_id: str | None = None) -> list[dict]:
        query = select(groups).order_by(_GR.created_at)
        if tenant_id:
            query = query.where(_GR.tenant_id == tenant_id)
        return [dict(r._mapping) for r in self.c.execute(query)]

    def add_group(self, group_id: str, tenant_id: str, name: str, created_at: str) -> None:
        self.c.execute(insert(groups).values(id=group_id, tenant_id=tenant_id, display_name=name,
                                             created_at=created_at))

    def members(self, group_id: str) -> list[str]:
        return list(self.c.execute(select(_GM.member_id).where(_GM.group_id == group_id)).scalars())

    def add_member(self, group_id: str, member_id: str) -> None:
        if member_id not in self.members(group_id):
            self.c.execute(insert(group_members).values(group_id=group_id, member_id=member_id))

    def remove_member(self, group_id: str, member_id: str) -> None:
        self.c.execute(delete(group_members).where(_GM.group_id == group_id, _GM.member_id == member_id))

    def delete_group(self, group_id: str) -> None:
        self.c.execute(delete(group_members).where(_GM.group_id == group_id))
        self.c.execute(delete(groups).where(_GR.id == group_id))


class AccessStore(IdentityStore):
    transaction = AccessTransaction
