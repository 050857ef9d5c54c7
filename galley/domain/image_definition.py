"""Gallery image definitions: publisher/offer/sku unique in the gallery, osType and osState required."""

from __future__ import annotations

from . import enums, fields, limits
from .errors import Conflict, InvalidParameter
from .ids import IMAGE_DEFINITION_TYPE, parent_id
from .names import check_identifier_part, check_image_definition_name
from .ports import Context
from .resource import Resource

TYPE = IMAGE_DEFINITION_TYPE
KIND = "image definition"
UPDATABLE = frozenset({"description", "recommended", "endOfLifeDate"})
READ_ONLY = frozenset({"provisioningState"})
check_name = check_image_definition_name


def _range(container: dict, key: str, target: str) -> dict | None:
    value = fields.obj(container, key, target)
    if value is None:
        return None
    low = fields.integer(value, "min", f"{target}.min", minimum=0)
    high = fields.integer(value, "max", f"{target}.max", minimum=0)
    if low is not None and high is not None and low > high:
        raise InvalidParameter(f"'{target}.min' ({low}) is greater than '{target}.max' ({high}).",
                               target=target)
    return fields.drop_nones({"min": low, "max": high})


def _recommended(props: dict) -> dict | None:
    value = fields.obj(props, "recommended", "properties.recommended")
    if value is None:
        return None
    return fields.drop_nones({
        "vCPUs": _range(value, "vCPUs", "properties.recommended.vCPUs"),
        "memory": _range(value, "memory", "properties.recommended.memory"),
    })


def _identifier(props: dict) -> dict:
    value = fields.obj(props, "identifier", "properties.identifier", required=True)
    return {
        "publisher": check_identifier_part(value.get("publisher"), "publisher", 128),
        "offer": check_identifier_part(value.get("offer"), "offer", 64),
        "sku": check_identifier_part(value.get("sku"), "sku", 64),
    }


def normalize(ctx: Context, resource: Resource, props: dict, existing: Resource | None) -> dict:
    identifier = _identifier(props)
    result = fields.drop_nones({
        "identifier": identifier,
        "osType": enums.normalize(props.get("osType"), enums.OS_TYPES, "properties.osType",
                                  required=True),
        "osState": enums.normalize(props.get("osState"), enums.OS_STATES, "properties.osState",
                                   required=True),
        "hyperVGeneration": enums.normalize(props.get("hyperVGeneration"), enums.HYPERV_GENERATIONS,
                                            "properties.hyperVGeneration", default="V1"),
        "architecture": enums.normalize(props.get("architecture"), enums.ARCHITECTURES,
                                        "properties.architecture", default="x64"),
        "description": fields.string(props, "description", "properties.description"),
        "eula": fields.string(props, "eula", "properties.eula"),
        "privacyStatementUri": fields.string(props, "privacyStatementUri", "properties.privacyStatementUri",
                                             max_length=limits.MAX_URI_LENGTH),
        "releaseNoteUri": fields.string(props, "releaseNoteUri", "properties.releaseNoteUri",
                                        max_length=limits.MAX_URI_LENGTH),
        "endOfLifeDate": fields.timestamp(props, "endOfLifeDate", "properties.endOfLifeDate"),
        "recommended": _recommended(props),
        "disallowed": _disallowed(props),
        "purchasePlan": _purchase_plan(props),
        "features": _features(props),
    })
    resource.identity_key = "|".join(identifier[k].lower() for k in ("publisher", "offer", "sku"))
    twin = ctx.tx.find_identity(parent_id(resource.id), resource.identity_key)
    if twin is not None and twin.key != resource.key:
        raise Conflict(
            f"Image definition '{twin.name}' in this gallery already has publisher "
            f"'{identifier['publisher']}', offer '{identifier['offer']}' and sku '{identifier['sku']}'; "
            "each definition needs its own combination.",
            target="properties.identifier", code="GalleryImageIdentifierAlreadyExists")
    return result


def _disallowed(props: dict) -> dict | None:
    value = fields.obj(props, "disallowed", "properties.disallowed")
    if value is None:
        return None
    disk_types = fields.array(value, "diskTypes", "properties.disallowed.diskTypes") or []
    for item in disk_types:
        if not isinstance(item, str):
            raise InvalidParameter("properties.disallowed.diskTypes must be a list of strings.",
                                   target="properties.disallowed.diskTypes")
    return {"diskTypes": disk_types}


def _purchase_plan(props: dict) -> dict | None:
    value = fields.obj(props, "purchasePlan", "properties.purchasePlan")
    if value is None:
        return None
    return fields.drop_nones({k: fields.string(value, k, f"properties.purchasePlan.{k}")
                              for k in ("name", "publisher", "product")})


def _features(props: dict) -> list | None:
    value = fields.array(props, "features", "properties.features")
    if value is None:
        return None
    result = []
    for i, item in enumerate(value):
        target = f"properties.features[{i}]"
        if not isinstance(item, dict):
            raise InvalidParameter(f"{target} must be an object with name and value.", target=target)
        result.append({"name": fields.string(item, "name", f"{target}.name", required=True),
                       "value": fields.string(item, "value", f"{target}.value", required=True)})
    return result
