"""Reading typed fields out of request JSON, with ARM errors that name the property."""

from __future__ import annotations

import reprlib
from datetime import datetime, timezone

from . import limits
from .errors import InvalidParameter

_MISSING = object()
# A short picture of a wrong value for error messages: a few levels and items, whatever its size.
_PREVIEW = reprlib.Repr()
_PREVIEW.maxlevel, _PREVIEW.maxstring, _PREVIEW.maxother = 3, 60, 60


def _wrong_type(target: str, expected: str, value: object) -> InvalidParameter:
    return InvalidParameter(
        f"Property '{target}' must be {expected}; got {type(value).__name__} {_PREVIEW.repr(value):.80}.",
        target=target)


def obj(container: dict, key: str, target: str, *, required: bool = False) -> dict | None:
    value = container.get(key)
    if value is None:
        if required:
            raise InvalidParameter(f"Required parameter '{key}' is missing (null).", target=target)
        return None
    if not isinstance(value, dict):
        raise _wrong_type(target, "a JSON object", value)
    return value


def array(container: dict, key: str, target: str, *, max_items: int = limits.MAX_ARRAY_ITEMS) -> list | None:
    value = container.get(key)
    if value is None:
        return None
    if not isinstance(value, list):
        raise _wrong_type(target, "a JSON array", value)
    if len(value) > max_items:
        raise InvalidParameter(f"Property '{target}' has {len(value)} items; at most {max_items} are allowed.",
                               target=target)
    return value


def disks_by_lun(container: dict, key: str, target: str, what: str = "an object"):
    """(lun, item, item's target) for each item of a list of data disks, checked to be objects
    with a LUN of 0 to 63 (uniqueness is the caller's: its message says what repeats)."""
    for i, item in enumerate(array(container, key, target, max_items=limits.MAX_DATA_DISKS) or []):
        where = f"{target}[{i}]"
        if not isinstance(item, dict):
            raise InvalidParameter(f"{where} must be {what}.", target=where)
        lun = integer(item, "lun", f"{where}.lun", minimum=0, maximum=63)
        if lun is None:
            raise InvalidParameter(f"Required parameter 'lun' is missing in {where}.", target=f"{where}.lun")
        yield lun, item, where


def string(container: dict, key: str, target: str, *, required: bool = False,
           max_length: int = limits.MAX_STRING_LENGTH) -> str | None:
    value = container.get(key)
    if value is None:
        if required:
            raise InvalidParameter(f"Required parameter '{key}' is missing (null).", target=target)
        return None
    if not isinstance(value, str):
        raise _wrong_type(target, "a string", value)
    if len(value) > max_length:
        raise InvalidParameter(f"Property '{target}' is longer than {max_length} characters.",
                               target=target)
    return value


def integer(container: dict, key: str, target: str, *, minimum: int | None = None,
            maximum: int | None = None) -> int | None:
    value = container.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _wrong_type(target, "an integer", value)
    if minimum is not None and value < minimum:
        raise InvalidParameter(f"Property '{target}' must be at least {minimum}; got {value}.",
                               target=target)
    if maximum is not None and value > maximum:
        raise InvalidParameter(f"Property '{target}' must be at most {maximum}; got {value}.",
                               target=target)
    return value


def boolean(container: dict, key: str, target: str) -> bool | None:
    value = container.get(key)
    if value is None:
        return None
    if not isinstance(value, bool):
        raise _wrong_type(target, "true or false", value)
    return value


def timestamp(container: dict, key: str, target: str) -> str | None:
    """An ISO 8601 date or date-time, returned normalized to UTC as Azure echoes it."""
    value = string(container, key, target)
    if value is None:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidParameter(f"Property '{target}' must be an ISO 8601 date-time such as "
                               f"2030-12-01T00:00:00+00:00; got '{value}'.", target=target) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    try:
        return moment.astimezone(timezone.utc).isoformat()
    except OverflowError:  # e.g. 9999-12-31T23:59:59-01:00 is in the year 10000 in UTC
        raise InvalidParameter(f"Property '{target}' is '{value}', which in UTC falls outside the years "
                               "1 to 9999.", target=target) from None


def tags(body: dict) -> dict | None:
    value = body.get("tags")
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _wrong_type("tags", "a JSON object of string values", value)
    if len(value) > limits.MAX_TAGS:
        raise InvalidParameter(f"A resource can have at most {limits.MAX_TAGS} tags; {len(value)} were given.",
                               target="tags")
    for name, tag_value in value.items():
        if (not name or len(name) > limits.MAX_TAG_NAME_LENGTH or not isinstance(tag_value, str)
                or len(tag_value) > limits.MAX_TAG_VALUE_LENGTH):
            raise InvalidParameter(
                f"Tag '{name[:64]}' is invalid: names are 1 to {limits.MAX_TAG_NAME_LENGTH} characters and "
                f"values strings of at most {limits.MAX_TAG_VALUE_LENGTH} characters.", target="tags")
    return dict(value)


def drop_nones(value: dict) -> dict:
    return {k: v for k, v in value.items() if v is not None}
