"""Trust in external OIDC issuers (Keycloak, Entra ID, Dex, another Galley): their signing keys
come from their discovery document's `jwks_uri`, cached for an hour and fetched again at most
every 30 s when a token names a key not yet seen (the issuer rotated its keys)."""

from __future__ import annotations

import logging
import ssl
import threading
import time

import httpx
import jwt

log = logging.getLogger("galley.identity")

CACHE_SECONDS = 3600.0
REFETCH_SECONDS = 30.0


def normalize_issuer(issuer: str) -> str:
    return issuer.rstrip("/")


class ExternalIssuers:
    def __init__(self, issuers: tuple[str, ...], ca_bundle: str | None = None) -> None:
        self.issuers = frozenset(normalize_issuer(i) for i in issuers if i.strip())
        self._verify: ssl.SSLContext | bool = True
        if ca_bundle:
            context = ssl.create_default_context()
            context.load_verify_locations(ca_bundle)
            self._verify = context
        self._keys: dict[str, tuple[float, dict[str, jwt.PyJWK]]] = {}
        self._last_fetch: dict[str, float] = {}
        self._lock = threading.Lock()

    def trusts(self, issuer: str) -> bool:
        return normalize_issuer(issuer) in self.issuers

    def key(self, issuer: str, kid: str) -> jwt.PyJWK | None:
        issuer = normalize_issuer(issuer)
        fetched_at, keys = self._keys.get(issuer, (0.0, {}))
        stale = time.monotonic() - fetched_at > CACHE_SECONDS
        if (kid not in keys or stale) and time.monotonic() - self._last_fetch.get(issuer, -1e9) > REFETCH_SECONDS:
            keys = self._fetch(issuer) or keys
        return keys.get(kid)

    def _fetch(self, issuer: str) -> dict[str, jwt.PyJWK] | None:
        with self._lock:
            self._last_fetch[issuer] = time.monotonic()
            try:
                with httpx.Client(verify=self._verify, timeout=10) as client:
                    discovery = client.get(f"{issuer}/.well-known/openid-configuration").raise_for_status().json()
                    jwks = client.get(discovery["jwks_uri"]).raise_for_status().json()
                keys = {}
                for entry in jwks.get("keys", []):
                    try:
                        keys[entry["kid"]] = jwt.PyJWK(entry)
                    except (jwt.PyJWKError, KeyError):
                        continue
            except (httpx.HTTPError, KeyError, ValueError) as error:
                log.warning("could not fetch the signing keys of issuer %s: %s", issuer, error)
                return None
            self._keys[issuer] = (time.monotonic(), keys)
            return keys
