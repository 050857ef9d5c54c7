"""Galleries: a repository of image definitions. The description and the sharing profile's
permissions may change; whom a gallery is shared with changes through its share action.

Sharing (seed 001 "Acesso", and current Azure's direct shared and community galleries):
- permissions Private (the default): role assignments alone decide who reads it;
- Groups: the gallery is also readable, through `…/locations/{region}/sharedGalleries/{uniqueName}`,
  by the subscriptions and tenants listed in its groups (share: Add / Remove / Reset);
- Community: once enabled (share: EnableCommunity), every signed-in principal reads it through
  `…/communityGalleries/{publicName}`.
"""

from __future__ import annotations

import uuid

from . import fields
from .errors import InvalidParameter, OperationNotAllowed
from .ids import GALLERY_TYPE
from .names import check_gallery_name
from .ports import Context
from .resource import Resource

TYPE = GALLERY_TYPE
KIND = "gallery"
UPDATABLE = frozenset({"description", "sharingProfile"})
READ_ONLY = frozenset({"provisioningState", "identifier", "sharingStatus"})
check_name = check_gallery_name

PERMISSIONS = ("Private", "Groups", "Community")
GROUP_TYPES = ("Subscriptions", "AADTenants")
SHARE_OPERATIONS = ("Add", "Remove", "Reset", "EnableCommunity")
MAX_SHARE_IDS = 100


def normalize(ctx: Context, resource: Resource, props: dict, existing: Resource | None) -> dict:
    result = fields.drop_nones({
        "description": fields.string(props, "description", "properties.description", max_length=4096),
    })
    before = (existing.properties.get("sharingProfile") if existing else None) or {}
    sharing = fields.obj(props, "sharingProfile", "properties.sharingProfile")
    if sharing is not None or before:
        result["sharingProfile"] = _sharing_profile(sharing or {}, before)
    result["identifier"] = {"uniqueName": unique_name(resource)}
    return result


def unique_name(gallery: Resource) -> str:
    return f"{gallery.subscription_id}-{gallery.name.upper()}"


def _sharing_profile(given: dict, before: dict) -> dict:
    permissions = fields.string(given, "permissions", "properties.sharingProfile.permissions") \
        or before.get("permissions") or "Private"
    match = next((p for p in PERMISSIONS if p.lower() == permissions.lower()), None)
    if match is None:
        raise InvalidParameter(f"sharingProfile.permissions '{permissions}' is not one of {', '.join(PERMISSIONS)}.",
                               target="properties.sharingProfile.permissions")
    profile = {"permissions": match, "groups": before.get("groups", [])}
    info = fields.obj(given, "communityGalleryInfo", "properties.sharingProfile.communityGalleryInfo")
    if match == "Community":
        info = info or before.get("communityGalleryInfo")
        if not info:
            raise InvalidParameter("A community gallery needs sharingProfile.communityGalleryInfo (publisherUri, "
                                   "publisherContact, eula, publicNamePrefix).",
                                   target="properties.sharingProfile.communityGalleryInfo")
        profile["communityGalleryInfo"] = _community_info(info, before.get("communityGalleryInfo") or {})
    return profile


def _community_info(info: dict, before: dict) -> dict:
    where = "properties.sharingProfile.communityGalleryInfo"
    out = {name: fields.string(info, name, f"{where}.{name}", max_length=1024) or before.get(name)
           for name in ("publisherUri", "publisherContact", "eula", "publicNamePrefix")}
    missing = [name for name, value in out.items() if not value]
    if missing:
        raise InvalidParameter(f"communityGalleryInfo needs {', '.join(missing)}.", target=where)
    prefix = out["publicNamePrefix"]
    if not (5 <= len(prefix) <= 16) or not prefix.replace("-", "").isalnum():
        raise InvalidParameter("publicNamePrefix must be 5 to 16 letters, digits and hyphens.",
                               target=f"{where}.publicNamePrefix")
    out["communityGalleryEnabled"] = bool(before.get("communityGalleryEnabled"))
    out["publicNames"] = list(before.get("publicNames", []))
    return out


def apply_share(properties: dict, body: dict) -> tuple[dict, dict]:
    """The gallery's properties after a share action, and the answer (SharingUpdate)."""
    operation = body.get("operationType")
    match = next((o for o in SHARE_OPERATIONS if isinstance(operation, str) and o.lower() == operation.lower()), None)
    if match is None:
        raise InvalidParameter(f"operationType must be one of {', '.join(SHARE_OPERATIONS)}.", target="operationType")
    profile = dict(properties.get("sharingProfile") or {"permissions": "Private", "groups": []})
    groups = _share_groups(body.get("groups"), required=match in ("Add", "Remove"))
    if match == "EnableCommunity":
        if profile.get("permissions") != "Community":
            raise OperationNotAllowed("Only a gallery whose sharingProfile.permissions is Community can be "
                                      "shared with the community.", target="operationType")
        info = dict(profile["communityGalleryInfo"])
        if not info.get("communityGalleryEnabled"):
            info["communityGalleryEnabled"] = True
            info["publicNames"] = [f"{info['publicNamePrefix']}-{uuid.uuid4()}"]
        profile["communityGalleryInfo"] = info
    else:
        if profile.get("permissions") != "Groups":
            raise OperationNotAllowed("Sharing with subscriptions and tenants needs sharingProfile.permissions "
                                      "Groups; update the gallery first.", target="operationType")
        current = {g["type"]: list(g["ids"]) for g in profile.get("groups", [])}
        if match == "Reset":
            current = {}
        for group in groups:
            ids = current.setdefault(group["type"], [])
            for value in group["ids"]:
                if match == "Add" and value not in ids:
                    ids.append(value)
                elif match == "Remove" and value in ids:
                    ids.remove(value)
        if sum(len(v) for v in current.values()) > MAX_SHARE_IDS:
            raise InvalidParameter(f"A gallery can be shared with at most {MAX_SHARE_IDS} subscriptions and "
                                   "tenants.", target="groups")
        profile["groups"] = [{"type": t, "ids": ids} for t, ids in current.items() if ids]
    return {**properties, "sharingProfile": profile}, {"operationType": match, "groups": groups}


def _share_groups(value, required: bool) -> list[dict]:
    if value is None:
        if required:
            raise InvalidParameter("'groups' is required: [{type: Subscriptions|AADTenants, ids: [...]}].",
                                   target="groups")
        return []
    if not isinstance(value, list):
        raise InvalidParameter("'groups' must be a list.", target="groups")
    out = []
    for i, group in enumerate(value):
        if not isinstance(group, dict) or not isinstance(group.get("ids"), list):
            raise InvalidParameter(f"groups[{i}] must be an object with 'type' and 'ids'.", target=f"groups[{i}]")
        kind = next((t for t in GROUP_TYPES if isinstance(group.get("type"), str)
                     and t.lower() == group["type"].lower()), None)
        if kind is None:
            raise InvalidParameter(f"groups[{i}].type must be Subscriptions or AADTenants.", target=f"groups[{i}].type")
        ids = []
        for value_id in group["ids"]:
            try:
                ids.append(str(uuid.UUID(str(value_id))).lower())
            except ValueError:
                raise InvalidParameter(f"'{value_id}' in groups[{i}].ids is not a GUID.", target=f"groups[{i}].ids") from None
        out.append({"type": kind, "ids": ids})
    return out


def shared_with(gallery: Resource, subscription_id: str, tenant_id: str) -> bool:
    profile = gallery.properties.get("sharingProfile") or {}
    if profile.get("permissions") != "Groups":
        return False
    for group in profile.get("groups", []):
        wanted = subscription_id.lower() if group["type"] == "Subscriptions" else tenant_id.lower()
        if wanted in group["ids"]:
            return True
    return False


def community_name(gallery: Resource) -> str | None:
    info = (gallery.properties.get("sharingProfile") or {}).get("communityGalleryInfo") or {}
    names = info.get("publicNames") or []
    return names[0] if info.get("communityGalleryEnabled") and names else None
