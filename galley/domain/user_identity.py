"""User-assigned managed identities (Microsoft.ManagedIdentity/userAssignedIdentities): a
principal of their own, which role assignments name (principalId) and which image template
builds act as. They sign in nowhere from outside: only Galley's builder acts as them."""

from __future__ import annotations

import re
import uuid

from .errors import InvalidResourceName
from .ids import USER_IDENTITY_TYPE
from .ports import Context
from .resource import Resource

TYPE = USER_IDENTITY_TYPE
KIND = "user assigned identity"
UPDATABLE: frozenset[str] = frozenset()
READ_ONLY = frozenset({"provisioningState", "principalId", "clientId", "tenantId"})
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{2,127}")


def check_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise InvalidResourceName(f"Identity name '{name}' is invalid: use 3-128 letters, digits, hyphens and "
                                  "underscores, starting with a letter or digit.", target="resourceName")


def normalize(ctx: Context, resource: Resource, props: dict, existing: Resource | None) -> dict:
    if existing is not None:
        return {k: existing.properties[k] for k in ("principalId", "clientId", "tenantId")}
    return {"principalId": str(uuid.uuid4()), "clientId": str(uuid.uuid4()),
            "tenantId": ctx.tx.tenant_of_subscription(resource.subscription_id)}
