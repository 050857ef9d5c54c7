"""Naming rules for each resource type, as Azure documents them."""

from __future__ import annotations

import re
import uuid

from .errors import InvalidParameter, InvalidResourceName

INT32_MAX = 2_147_483_647

# Every pattern here is matched in full (fullmatch: `$` would let a trailing newline through) and
# spells its classes in ASCII (\w and \d also match other scripts' letters and digits).
_SUBSCRIPTION = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
_RESOURCE_GROUP = re.compile(r"[-\w.()]{1,90}", re.ASCII)
# Galleries: alphanumerics, with underscores and periods allowed in the middle; no dashes.
_GALLERY = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_.]{0,78}[A-Za-z0-9])?")
# Image definitions: letters, digits, dots, dashes and underscores; starts and ends alphanumeric.
_IMAGE_DEFINITION = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,78}[A-Za-z0-9])?")
_VERSION = re.compile(r"([0-9]+)\.([0-9]+)\.([0-9]+)")
# Managed images, disks, snapshots: start alphanumeric, end alphanumeric or underscore.
_COMPUTE_RESOURCE = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,78}[A-Za-z0-9_])?")
_IDENTIFIER_PART = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_GUID = re.compile(r"[0-9a-fA-F]{32}|[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")


def guid(value: object) -> str | None:
    """A GUID in its canonical lower-case form, or None. Stricter than uuid.UUID, which also takes
    braces, 'urn:uuid:', underscores, surrounding whitespace and other scripts' digits."""
    if not isinstance(value, str) or not _GUID.fullmatch(value):
        return None
    return str(uuid.UUID(value))


def check_subscription_id(value: str) -> None:
    if not _SUBSCRIPTION.fullmatch(value):
        raise InvalidParameter(
            f"The subscription identifier '{value}' is malformed: it must be a GUID such as "
            "00000000-0000-0000-0000-000000000000.",
            target="subscriptionId", code="InvalidSubscriptionId")


def check_resource_group_name(value: str) -> None:
    if not _RESOURCE_GROUP.fullmatch(value) or value.endswith("."):
        raise InvalidResourceName(
            f"Resource group name '{value}' is invalid: use 1-90 letters, digits, underscores, "
            "parentheses, hyphens and periods, not ending in a period.",
            target="resourceGroupName", code="InvalidResourceGroupName")


def check_gallery_name(value: str) -> None:
    if not _GALLERY.fullmatch(value):
        raise InvalidResourceName(
            f"Gallery name '{value}' is invalid: use up to 80 English letters and digits, with "
            "underscores and periods allowed only in the middle; dashes and other characters are "
            "not allowed.", target="galleryName", code="InvalidGalleryName")


def check_image_definition_name(value: str) -> None:
    if not _IMAGE_DEFINITION.fullmatch(value):
        raise InvalidResourceName(
            f"Image definition name '{value}' is invalid: use up to 80 letters, digits, dots, "
            "dashes and underscores, starting and ending with a letter or digit.",
            target="galleryImageName")


def parse_version_name(value: str) -> tuple[int, int, int]:
    match = _VERSION.fullmatch(value)
    if not match:
        raise InvalidResourceName(
            f"Image version name '{value}' is invalid: it must be MajorVersion.MinorVersion.Patch, "
            "digits and periods only, such as 1.0.0.", target="galleryImageVersionName")
    if any(len(p) > len(str(INT32_MAX)) or int(p) > INT32_MAX for p in match.groups()):
        raise InvalidResourceName(
            f"Image version name '{value}' is invalid: each part must fit in a 32-bit integer "
            f"(at most {INT32_MAX}).", target="galleryImageVersionName")
    return tuple(int(p) for p in match.groups())  # type: ignore[return-value]


def check_version_name(value: str) -> None:
    parse_version_name(value)


def check_compute_resource_name(value: str, target: str = "name") -> None:
    if not _COMPUTE_RESOURCE.fullmatch(value):
        raise InvalidResourceName(
            f"Resource name '{value}' is invalid: use 1-80 letters, digits, underscores, periods "
            "and hyphens, starting with a letter or digit and ending with a letter, digit or "
            "underscore.", target=target)


def check_identifier_part(value: object, field: str, max_length: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidParameter(
            f"Required parameter 'identifier.{field}' is missing (null).",
            target=f"properties.identifier.{field}")
    if len(value) > max_length or not _IDENTIFIER_PART.fullmatch(value):
        raise InvalidParameter(
            f"identifier.{field} '{value}' is invalid: use up to {max_length} letters, digits, "
            "periods, dashes and underscores, starting with a letter or digit.",
            target=f"properties.identifier.{field}")
    return value


# Blob containers: 3-63 lower-case letters, digits and single hyphens, starting and ending with a
# letter or digit. Blob names: 1-1024 characters, none of them a control character.
_CONTAINER = re.compile(r"[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}")
MAX_BLOB_NAME_LENGTH = 1024


def check_container_name(value: str) -> None:
    if not _CONTAINER.fullmatch(value):
        raise InvalidResourceName(
            f"Container name '{value}' is invalid: use 3-63 lower-case letters, digits and single hyphens, "
            "starting and ending with a letter or digit.", target="container", code="InvalidResourceName")


def check_blob_name(value: str) -> None:
    if not 1 <= len(value) <= MAX_BLOB_NAME_LENGTH or any(ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise InvalidResourceName(
            f"Blob name {value[:80]!r} is invalid: use 1-{MAX_BLOB_NAME_LENGTH} characters, none of them a "
            "control character (such as a newline or NUL).", target="blob", code="InvalidResourceName")
