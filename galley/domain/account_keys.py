"""Storage account keys, as Azure's listKeys and regenerateKey show them.

Each account has two keys, key1 and key2: 64 random bytes, shown base64-encoded. Clients sign
requests with them (Shared Key, SAS), so the server must keep them as they are — they cannot be
hashed like principals' secrets. They are kept out of the resource's properties (which Resource
Graph, lists and the activity log read) and are never logged.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass

from .errors import InvalidParameter

KEY_NAMES = ("key1", "key2")
KEY_BYTES = 64


@dataclass(frozen=True)
class AccountKey:
    name: str
    value: str  # base64
    created_at: str

    @property
    def secret(self) -> bytes:
        return base64.b64decode(self.value)

    def to_arm(self) -> dict:
        return {"keyName": self.name, "value": self.value, "permissions": "FULL", "creationTime": self.created_at}

    def __repr__(self) -> str:  # never show the value in a log or a traceback
        return f"AccountKey(name={self.name!r}, created_at={self.created_at!r})"


def new_value() -> str:
    return base64.b64encode(secrets.token_bytes(KEY_BYTES)).decode()


def key_name_of(body: dict) -> str:
    """The key a regenerateKey body names (keyName: key1 or key2)."""
    name = body.get("keyName")
    if not isinstance(name, str) or name.lower() not in KEY_NAMES:
        raise InvalidParameter(f"keyName must be one of {', '.join(KEY_NAMES)}; got {name!r}.", target="keyName")
    return name.lower()


def list_result(keys: list[AccountKey]) -> dict:
    return {"keys": [k.to_arm() for k in sorted(keys, key=lambda k: k.name)]}
