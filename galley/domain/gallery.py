"""Galleries: a repository of image definitions. Only the description may change."""

from __future__ import annotations

from . import fields
from .ids import GALLERY_TYPE
from .names import check_gallery_name
from .ports import Context
from .resource import Resource

TYPE = GALLERY_TYPE
KIND = "gallery"
UPDATABLE = frozenset({"description"})
READ_ONLY = frozenset({"provisioningState", "identifier", "sharingStatus"})
check_name = check_gallery_name


def normalize(ctx: Context, resource: Resource, props: dict, existing: Resource | None) -> dict:
    result = fields.drop_nones({
        "description": fields.string(props, "description", "properties.description", max_length=4096),
    })
    sharing = fields.obj(props, "sharingProfile", "properties.sharingProfile")
    if sharing is not None:
        result["sharingProfile"] = {"permissions": fields.string(
            sharing, "permissions", "properties.sharingProfile.permissions") or "Private"}
    result["identifier"] = {"uniqueName": f"{resource.subscription_id}-{resource.name.upper()}"}
    return result
