"""Enums are matched case-insensitively (the az CLI sends `standard_zrs`) and stored in Azure's spelling."""

from __future__ import annotations

from .errors import InvalidParameter

OS_TYPES = ("Windows", "Linux")
OS_STATES = ("Generalized", "Specialized")
HYPERV_GENERATIONS = ("V1", "V2")
ARCHITECTURES = ("x64", "Arm64")
GALLERY_STORAGE_ACCOUNT_TYPES = ("Standard_LRS", "Standard_ZRS", "Premium_LRS", "PremiumV2_LRS")
DISK_SKUS = ("Standard_LRS", "Premium_LRS", "StandardSSD_LRS", "UltraSSD_LRS", "Premium_ZRS",
             "StandardSSD_ZRS", "PremiumV2_LRS")
SNAPSHOT_SKUS = ("Standard_LRS", "Premium_LRS", "Standard_ZRS")
HOST_CACHING = ("None", "ReadOnly", "ReadWrite")
DISK_CREATE_OPTIONS = ("Empty", "Import", "Copy", "Upload", "FromImage", "Restore")


def normalize(value: object, allowed: tuple[str, ...], target: str, *, required: bool = False,
              default: str | None = None) -> str | None:
    if value is None:
        if required:
            raise InvalidParameter(f"Required parameter '{target.rsplit('.', 1)[-1]}' is missing "
                                   f"(null). Allowed values: {', '.join(allowed)}.", target=target)
        return default
    if isinstance(value, str):
        for candidate in allowed:
            if candidate.lower() == value.lower():
                return candidate
    raise InvalidParameter(
        f"The value '{value}' of parameter '{target.rsplit('.', 1)[-1]}' is not allowed. "
        f"Allowed values: {', '.join(allowed)}.", target=target)
