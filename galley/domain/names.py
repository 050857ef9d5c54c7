"""Naming rules for each resource type, as Azure documents them."""

from __future__ import annotations

import re

from .errors import InvalidParameter, InvalidResourceName

INT32_MAX = 2_147_483_647

_SUBSCRIPTION = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_RESOURCE_GROUP = re.compile(r"^[-\w._()]{1,90}$")
# Galleries: alphanumerics, with underscores and periods allowed in the middle; no dashes.
_GALLERY = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_.]{0,78}[A-Za-z0-9])?$")
# Image definitions: letters, digits, dots, dashes and underscores; starts and ends alphanumeric.
_IMAGE_DEFINITION = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,78}[A-Za-z0-9])?$")
_VERSION = re.compile(r"^([0-9]+)\.([0-9]+)\.([0-9]+)$")
# Managed images, disks, snapshots: start alphanumeric, end alphanumeric or underscore.
_COMPUTE_RESOURCE = re.compile(r"^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,78}[A-Za-z0-9_])?$")


def check_subscription_id(value: str) -> None:
    if not _SUBSCRIPTION.match(value):
        raise InvalidParameter(
            f"The subscription identifier '{value}' is malformed: it must be a GUID such as "
            "00000000-0000-0000-0000-000000000000.",
            target="subscriptionId", code="InvalidSubscriptionId")


def check_resource_group_name(value: str) -> None:
    if not _RESOURCE_GROUP.match(value) or value.endswith("."):
        raise InvalidResourceName(
            f"Resource group name '{value}' is invalid: use 1-90 letters, digits, underscores, "
            "parentheses, hyphens and periods, not ending in a period.",
            target="resourceGroupName", code="InvalidResourceGroupName")


def check_gallery_name(value: str) -> None:
    if not _GALLERY.match(value):
        raise InvalidResourceName(
            f"Gallery name '{value}' is invalid: use up to 80 English letters and digits, with "
            "underscores and periods allowed only in the middle; dashes and other characters are "
            "not allowed.", target="galleryName", code="InvalidGalleryName")


def check_image_definition_name(value: str) -> None:
    if not _IMAGE_DEFINITION.match(value):
        raise InvalidResourceName(
            f"Image definition name '{value}' is invalid: use up to 80 letters, digits, dots, "
            "dashes and underscores, starting and ending with a letter or digit.",
            target="galleryImageName")


def parse_version_name(value: str) -> tuple[int, int, int]:
    match = _VERSION.match(value)
    if not match:
        raise InvalidResourceName(
            f"Image version name '{value}' is invalid: it must be MajorVersion.MinorVersion.Patch, "
            "digits and periods only, such as 1.0.0.", target="galleryImageVersionName")
    parts = tuple(int(p) for p in match.groups())
    if any(p > INT32_MAX for p in parts):
        raise InvalidResourceName(
            f"Image version name '{value}' is invalid: each part must fit in a 32-bit integer "
            f"(at most {INT32_MAX}).", target="galleryImageVersionName")
    return parts  # type: ignore[return-value]


def check_version_name(value: str) -> None:
    parse_version_name(value)


def check_compute_resource_name(value: str, target: str = "name") -> None:
    if not _COMPUTE_RESOURCE.match(value):
        raise InvalidResourceName(
            f"Resource name '{value}' is invalid: use 1-80 letters, digits, underscores, periods "
            "and hyphens, starting with a letter or digit and ending with a letter, digit or "
            "underscore.", target=target)


def check_identifier_part(value: object, field: str, max_length: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidParameter(
            f"Required parameter 'identifier.{field}' is missing (null).",
            target=f"properties.identifier.{field}")
    if len(value) > max_length or not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", value):
        raise InvalidParameter(
            f"identifier.{field} '{value}' is invalid: use up to {max_length} letters, digits, "
            "periods, dashes and underscores, starting with a letter or digit.",
            target=f"properties.identifier.{field}")
    return value
