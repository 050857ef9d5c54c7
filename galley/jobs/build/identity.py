"""A build acts as its template's user-assigned identity, as Azure Image Builder does: reading
the source and writing each distribute target are authorized for that identity's principal,
with the role assignments it holds (not those of whoever created or ran the template).

A template without an identity builds with the rights of its owner's subscription (Galley's
behaviour before identities); one with an identity is held to what the identity may do.
"""

from __future__ import annotations

from ...domain import access as rules
from ...domain.ids import USER_IDENTITY_TYPE
from ..context import JobContext


class IdentityDenied(Exception):
    """The run fails with this message: it names the identity, the action and the scope."""


def _principal(ctx: JobContext, template) -> tuple[str, str] | None:
    assigned = (template.properties.get("identity") or {}).get("userAssignedIdentities") or {}
    if not assigned:
        return None
    identity_id = next(iter(assigned))
    with ctx.sql.read() as tx:
        identity = tx.get(identity_id)
    if identity is None or identity.type != USER_IDENTITY_TYPE:
        raise IdentityDenied(f"The template's identity '{identity_id}' no longer exists; give the template an "
                             "existing identity and run it again.")
    return identity.id, identity.properties["principalId"]


def _require(ctx: JobContext, who: tuple[str, str], action: str, scope: str) -> None:
    identity_id, principal_id = who
    if ctx.access is None or not rules.allowed(ctx.access.grants(principal_id), action, scope):
        raise IdentityDenied(f"The template's identity '{identity_id}' (principal {principal_id}) does not have "
                             f"authorization to perform action '{action}' over scope '{scope}'. Give it a role "
                             "there (e.g. Contributor on the gallery or resource group, Reader on the source).")


def check_source(ctx: JobContext, template) -> None:
    who = _principal(ctx, template)
    source = template.properties["source"]
    if who is None or source["type"] == "PlatformImage":
        return
    if source["type"] == "ManagedImage":
        _require(ctx, who, "Microsoft.Compute/images/read", source["imageId"])
    else:
        _require(ctx, who, "Microsoft.Compute/galleries/images/versions/read", source["imageVersionId"])


def check_target(ctx: JobContext, template, target: dict) -> None:
    who = _principal(ctx, template)
    if who is None:
        return
    if target["type"] == "SharedImage":
        _require(ctx, who, "Microsoft.Compute/galleries/images/versions/write", target["galleryImageId"])
    elif target["type"] == "ManagedImage":
        _require(ctx, who, "Microsoft.Compute/images/write", target["imageId"])
    elif target.get("uri"):
        # a VHD into an account the user names (the default staging account is the template's own)
        account = target["uri"].split("//", 1)[-1].split(".", 1)[0]
        with ctx.sql.read() as tx:
            found = tx.find_named("Microsoft.Storage/storageAccounts", account)
        if found is not None:
            _require(ctx, who, "Microsoft.Storage/storageAccounts/blobServices/containers/blobs/write", found.id)
