"""Reading typed fields out of request JSON, with ARM errors that name the property."""

from __future__ import annotations

from datetime import datetime, timezone

from .errors import InvalidParameter

_MISSING = object()


def _wrong_type(target: str, expected: str, value: object) -> InvalidParameter:
    return InvalidParameter(
        f"Property '{target}' must be {expected}; got {type(value).__name__} {value!r:.80}.",
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


def array(container: dict, key: str, target: str) -> list | None:
    value = container.get(key)
    if value is None:
        return None
    if not isinstance(value, list):
        raise _wrong_type(target, "a JSON array", value)
    return value


def string(container: dict, key: str, target: str, *, required: bool = False,
           max_length: int = 4096) -> str | None:
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
    return moment.astimezone(timezone.utc).isoformat()


def tags(body: dict) -> dict | None:
    value = body.get("tags")
    if value is None:
        return None
    if not isinstance(value, dict):
        raise _wrong_type("tags", "a JSON object of string values", value)
    if len(value) > 50:
        raise InvalidParameter("A resource can have at most 50 tags.", target="tags")
    for name, tag_value in value.items():
        if len(name) > 512 or not isinstance(tag_value, str) or len(tag_value) > 256:
            raise InvalidParameter(
                f"Tag '{name[:64]}' is invalid: names are at most 512 characters and values "
                "strings of at most 256 characters.", target="tags")
    return dict(value)


def drop_nones(value: dict) -> dict:
    return {k: v for k, v in value.items() if v is not None}
