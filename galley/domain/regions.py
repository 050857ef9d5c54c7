"""Regions: Azure writes them as 'East US' or 'eastus'; Galley keeps the short lowercase form."""

from __future__ import annotations

from .errors import InvalidParameter


def normalize_region(value: object, known: frozenset[str], target: str = "location") -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidParameter("Required parameter 'location' is missing (null).", target=target)
    region = value.replace(" ", "").lower()
    if region not in known:
        raise InvalidParameter(
            f"The region '{value}' is not available. Configured regions: {', '.join(sorted(known))}.",
            target=target, code="LocationNotAvailableForResourceType")
    return region
