"""What may change after creation: everything else is rejected naming the property."""

from __future__ import annotations

from .errors import PropertyChangeNotAllowed


def merge(base: dict, patch: dict) -> dict:
    """JSON merge-patch (RFC 7386): objects merge, null removes, anything else replaces."""
    result = dict(base)
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict) and isinstance(result.get(key), dict):
            result[key] = merge(result[key], value)
        else:
            result[key] = value
    return result


def strip_paths(properties: dict, paths: frozenset[str]) -> dict:
    """A copy of `properties` without the (dotted) paths, used for read-only output fields."""
    result = dict(properties)
    for path in paths:
        head, _, rest = path.partition(".")
        if head not in result:
            continue
        if not rest:
            result.pop(head)
        elif isinstance(result[head], dict):
            result[head] = strip_paths(result[head], frozenset({rest}))
    return result


def changed_paths(old: object, new: object, prefix: str = "") -> list[str]:
    if isinstance(old, dict) and isinstance(new, dict):
        found: list[str] = []
        for key in sorted(set(old) | set(new)):
            path = f"{prefix}.{key}" if prefix else key
            found.extend(changed_paths(old.get(key), new.get(key), path))
        return found
    return [] if old == new else [prefix]


def reject_frozen_changes(old: dict, new: dict, updatable: frozenset[str], kind: str) -> None:
    for path in changed_paths(old, new):
        if not any(path == allowed or path.startswith(allowed + ".") for allowed in updatable):
            allowed = ", ".join(sorted(updatable)) or "none besides tags"
            raise PropertyChangeNotAllowed(
                f"Changing property 'properties.{path}' of an existing {kind} is not allowed. "
                f"Properties that may change after creation: {allowed} (and tags).",
                target=f"properties.{path}")


def _casefold(value: object) -> object:
    if isinstance(value, dict):
        return {k: _casefold(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_casefold(v) for v in value]
    return value.lower() if isinstance(value, str) else value


def _fill_omitted(stored: object, requested: object) -> object:
    """Items of a requested list may leave out what was derived when they were stored (a data
    disk's sizeInGB, its default hostCaching): resending them unchanged is not a change."""
    if isinstance(stored, dict) and isinstance(requested, dict):
        return {k: _fill_omitted(stored[k], v) if k in stored else v for k, v in requested.items()}
    if isinstance(stored, list) and isinstance(requested, list) and len(stored) == len(requested):
        return [merge(s, r) if isinstance(s, dict) and isinstance(r, dict) else r
                for s, r in zip(stored, requested)]
    return requested


def reject_source_change(stored: dict, requested: object, prefix: str, kind: str) -> None:
    """What a resource was made from is fixed; ids and enums compare case-insensitively."""
    changed = changed_paths(_casefold(stored), _casefold(_fill_omitted(stored, requested)))
    if changed:
        raise PropertyChangeNotAllowed(
            f"Changing property '{prefix}.{changed[0]}' of an existing {kind} is not allowed: what a "
            f"{kind} is made from is fixed when it is created.", target=f"{prefix}.{changed[0]}")
