"""How the CLI signs in: a service principal's client credentials, from `galley login` (kept in
$GALLEY_CLI_HOME, default ~/.galley-cli, mode 0600) or else from the server's own
$GALLEY_HOME/credentials.json, written on the server's first start. Tokens come from the server's
authority (`POST {server}/{tenant}/oauth2/v2.0/token`) and are cached until shortly before they
expire; a 401 fetches a new one once.
"""

from __future__ import annotations

import hashlib
import json
import os
import ssl
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterator, Optional

import httpx

from galley.cli.client import ArmError

REFRESH_BEFORE_SECONDS = 300


@dataclass
class Profile:
    server: str
    tenantId: str
    clientId: str
    clientSecret: str
    subscriptionId: Optional[str] = None
    caBundle: Optional[str] = None
    source: str = ""

    def public(self) -> dict:
        return {k: v for k, v in asdict(self).items() if k not in ("clientSecret", "source")}


def cli_home() -> Path:
    return Path(os.environ.get("GALLEY_CLI_HOME") or Path.home() / ".galley-cli").expanduser()


def server_home() -> Path:
    return Path(os.environ.get("GALLEY_HOME") or Path.home() / ".galley").expanduser()


def _write_private(path: Path, document: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(document, out, indent=2)


def _read(path: Path) -> Optional[dict]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def load_profile() -> Optional[Profile]:
    for path in (cli_home() / "profile.json", server_home() / "credentials.json"):
        document = _read(path)
        if document and all(document.get(k) for k in ("server", "tenantId", "clientId", "clientSecret")):
            return Profile(server=document["server"], tenantId=document["tenantId"],
                           clientId=document["clientId"], clientSecret=document["clientSecret"],
                           subscriptionId=document.get("subscriptionId"), caBundle=document.get("caBundle"),
                           source=str(path))
    return None


def save_profile(profile: Profile) -> Path:
    path = cli_home() / "profile.json"
    _write_private(path, {k: v for k, v in asdict(profile).items() if k != "source"})
    return path


def forget() -> list[Path]:
    removed = []
    for name in ("profile.json", "tokens.json"):
        path = cli_home() / name
        if path.exists():
            path.unlink()
            removed.append(path)
    return removed


def verify_setting(profile: Optional[Profile]) -> ssl.SSLContext | bool:
    """What to trust: GALLEY_CA_BUNDLE, else the profile's CA, else REQUESTS_CA_BUNDLE, else the
    system's."""
    bundle = (os.environ.get("GALLEY_CA_BUNDLE") or (profile.caBundle if profile else None)
              or os.environ.get("REQUESTS_CA_BUNDLE"))
    if not bundle:
        return True
    try:
        return ssl.create_default_context(cafile=bundle)
    except (OSError, ssl.SSLError) as error:
        raise ArmError("InvalidCaBundle", f"cannot read the CA bundle {bundle}: {error}") from None


def request_token(server: str, profile: Profile, verify: ssl.SSLContext | bool) -> dict:
    """A fresh token: {accessToken, expiresOn (epoch seconds)}."""
    server = server.rstrip("/")
    try:
        response = httpx.post(f"{server}/{profile.tenantId}/oauth2/v2.0/token", verify=verify, timeout=30,
                              data={"grant_type": "client_credentials", "client_id": profile.clientId,
                                    "client_secret": profile.clientSecret, "scope": f"{server}/.default"})
    except httpx.HTTPError as error:
        raise ArmError("SignInFailed", f"cannot reach the authority at {server} to sign in ({error}).") from None
    try:
        body = response.json()
    except ValueError:
        body = {}
    if response.status_code != 200 or "access_token" not in body:
        raise ArmError("SignInFailed", f"signing in as {profile.clientId} at {server} failed: "
                       f"{body.get('error', response.status_code)}: {body.get('error_description', response.text[:200])}")
    return {"accessToken": body["access_token"], "expiresOn": int(time.time()) + int(body.get("expires_in", 3600))}


class TokenCache:
    """Tokens by (server, tenant, client), in $GALLEY_CLI_HOME/tokens.json (0600)."""

    def __init__(self, path: Optional[Path] = None) -> None:
        self.path = path or cli_home() / "tokens.json"

    @staticmethod
    def key(server: str, profile: Profile) -> str:
        return hashlib.sha256(f"{server.rstrip('/')}|{profile.tenantId}|{profile.clientId}".encode()).hexdigest()

    def get(self, key: str) -> Optional[dict]:
        entry = (_read(self.path) or {}).get(key)
        if entry and entry.get("expiresOn", 0) - REFRESH_BEFORE_SECONDS > time.time():
            return entry
        return None

    def put(self, key: str, entry: dict) -> None:
        entries = {k: v for k, v in (_read(self.path) or {}).items() if v.get("expiresOn", 0) > time.time()}
        entries[key] = entry
        try:
            _write_private(self.path, entries)
        except OSError:
            pass  # a read-only home: the token is used without being kept


class ProfileAuth(httpx.Auth):
    """Adds a bearer token from the profile to every request; on a 401, fetches a new one once."""

    def __init__(self, server: str, profile: Profile, verify: ssl.SSLContext | bool) -> None:
        self.server = server
        self.profile = profile
        self.verify = verify
        self.cache = TokenCache()
        self.key = TokenCache.key(server, profile)

    def token(self, fresh: bool = False) -> dict:
        entry = None if fresh else self.cache.get(self.key)
        if entry is None:
            entry = request_token(self.server, self.profile, self.verify)
            self.cache.put(self.key, entry)
        return entry

    def auth_flow(self, request: httpx.Request) -> Iterator[httpx.Request]:
        request.headers["Authorization"] = f"Bearer {self.token()['accessToken']}"
        response = yield request
        # A streamed upload cannot be sent twice; its first token was fresh enough.
        if response.status_code == 401 and isinstance(request.stream, httpx.ByteStream):
            request.headers["Authorization"] = f"Bearer {self.token(fresh=True)['accessToken']}"
            yield request
