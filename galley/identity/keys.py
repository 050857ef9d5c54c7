"""Token signing keys, kept in the database so that every node behind it signs and verifies alike.

One key signs at a time (the newest). `rotate()` makes a new one and retires the others: a retired
key still verifies what it signed until every such token has expired (`valid_until` = retirement +
the token lifetime + a margin), then it leaves the JWKS and its tokens are refused.

Each node caches the keys and reads them again every REFRESH_SECONDS, or at once when a token
names a key it does not know (a key another node just made).
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from ..store.identity_store import IdentityStore

ALGORITHM = "RS256"
REFRESH_SECONDS = 30.0
MARGIN_SECONDS = 300.0
MISSING_RETRY_SECONDS = 5.0


@dataclass(frozen=True)
class SigningKey:
    kid: str
    private_key: rsa.RSAPrivateKey
    created_at: float
    valid_until: float | None  # None: the key is current

    def usable(self, now: float) -> bool:
        return self.valid_until is None or self.valid_until > now

    def jwk(self) -> dict:
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(self.private_key.public_key(), as_dict=True)
        return {**jwk, "kid": self.kid, "use": "sig", "alg": ALGORITHM}


def _new_private_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption()).decode()


class KeyRing:
    def __init__(self, store: IdentityStore, token_lifetime: float) -> None:
        self.store = store
        self.token_lifetime = token_lifetime
        self._keys: dict[str, SigningKey] = {}
        self._loaded_at = 0.0
        self._missing: dict[str, float] = {}
        self._lock = threading.Lock()

    def ensure(self) -> None:
        """Make the first key if the database has none (once, whichever node starts first)."""
        with self.store.write() as tx:
            tx.lock("identity/signing-keys")
            if not any(row["retired_at"] is None for row in tx.signing_keys()):
                tx.add_signing_key(uuid.uuid4().hex, _new_private_pem(), time.time())
        self._load()

    def rotate(self) -> str:
        kid = uuid.uuid4().hex
        now = time.time()
        with self.store.write() as tx:
            tx.lock("identity/signing-keys")
            tx.add_signing_key(kid, _new_private_pem(), now)
            tx.retire_signing_keys(kid, now, now + self.token_lifetime + MARGIN_SECONDS)
            tx.drop_signing_keys_before(now)
        self._load()
        return kid

    def _load(self) -> None:
        with self.store.read() as tx:
            rows = tx.signing_keys()
        keys = {}
        for row in rows:
            # A kid's key never changes (only its valid_until): parsing and checking an RSA key
            # costs ~36 ms, so keys already held are reused rather than parsed on every refresh.
            held = self._keys.get(row["kid"])
            private = held.private_key if held is not None else serialization.load_pem_private_key(
                row["private_pem"].encode(), password=None)
            keys[row["kid"]] = SigningKey(row["kid"], private, row["created_at"], row["valid_until"])
        with self._lock:
            self._keys = keys
            self._loaded_at = time.monotonic()

    def _fresh(self) -> dict[str, SigningKey]:
        if time.monotonic() - self._loaded_at > REFRESH_SECONDS:
            self._load()
        return self._keys

    def current(self) -> SigningKey:
        current = [k for k in self._fresh().values() if k.valid_until is None]
        if not current:
            self._load()
            current = [k for k in self._keys.values() if k.valid_until is None]
        return max(current, key=lambda k: k.created_at)

    def find(self, kid: str) -> SigningKey | None:
        """The key `kid`; one this node has not seen yet (another node just rotated) is read from
        the database at once, while a kid found missing is not looked up again for a few seconds
        (tokens with made-up kids must not turn into a query each)."""
        key = self._fresh().get(kid)
        if key is None:
            missed = self._missing.get(kid)
            if missed is None or time.monotonic() - missed > MISSING_RETRY_SECONDS:
                self._load()
                key = self._keys.get(kid)
                if key is None:
                    if len(self._missing) > 10_000:
                        self._missing.clear()
                    self._missing[kid] = time.monotonic()
        return key

    def jwks(self) -> dict:
        now = time.time()
        return {"keys": [k.jwk() for k in self._fresh().values() if k.usable(now)]}

    def summary(self) -> list[dict]:
        return [{"kid": k.kid, "current": k.valid_until is None, "validUntil": k.valid_until}
                for k in self._fresh().values()]
