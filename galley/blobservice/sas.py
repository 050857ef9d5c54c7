"""Service SAS for blobs (Azure Storage's "Create a service SAS"): the string to sign per signed
version `sv`, HMAC-SHA256 over it with a key, and the checks a request's SAS must pass.

The string to sign is the values below joined by newlines (absent values are empty):

  sv >= 2020-12-06:  sp st se /blob/{account}/{container}/{blob} si sip spr sv sr snapshot ses
                     rscc rscd rsce rscl rsct
  2018-11-09 ..:     the same without ses
  2015-04-05 ..:     sp st se resource si sip spr sv rscc rscd rsce rscl rsct

`sig` is base64(HMAC-SHA256(key, string to sign)); it is compared in constant time. A SAS is
good from `st` (if given) until `se`, for the operations its `sp` letters allow (r read,
a add, c create, w write, d delete, l list). A blob SAS (sr=b) signs /blob/{account}/{container}/{blob};
a container SAS (sr=c) signs /blob/{account}/{container} and serves every blob in it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from datetime import datetime, timezone
from urllib.parse import quote

from .errors import authentication_failed, permission_mismatch

_FIELDS_2020 = ("sp", "st", "se", "@resource", "si", "sip", "spr", "sv", "sr", "snapshot", "ses",
                "rscc", "rscd", "rsce", "rscl", "rsct")
_FIELDS_2018 = tuple(f for f in _FIELDS_2020 if f != "ses")
_FIELDS_2015 = ("sp", "st", "se", "@resource", "si", "sip", "spr", "sv", "rscc", "rscd", "rsce", "rscl", "rsct")
SAS_PARAMETERS = frozenset(_FIELDS_2020) - {"@resource"} | {"sig"}
SIGNED_VERSION = "2020-12-06"


def _fields(version: str) -> tuple[str, ...]:
    if version >= "2020-12-06":
        return _FIELDS_2020
    if version >= "2018-11-09":
        return _FIELDS_2018
    return _FIELDS_2015


def canonical_resource(account: str, container: str, blob: str | None = None) -> str:
    return f"/blob/{account}/{container}" + (f"/{blob}" if blob else "")


def string_to_sign(params: dict[str, str], resource: str) -> str:
    return "\n".join(resource if f == "@resource" else params.get(f, "")
                     for f in _fields(params.get("sv", "")))


def sign(key: bytes, params: dict[str, str], resource: str) -> str:
    digest = hmac.new(key, string_to_sign(params, resource).encode("utf-8"), hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def make_token(key: bytes, resource: str, permissions: str, expiry: datetime, *,
               protocol: str | None = None) -> str:
    """A SAS query string (without '?') for one blob."""
    params = {"sv": SIGNED_VERSION, "sr": "b", "sp": permissions, "se": iso(expiry)}
    if protocol:
        params["spr"] = protocol
    params["sig"] = sign(key, params, resource)
    order = ("sv", "spr", "sr", "sp", "se", "sig")
    return "&".join(f"{k}={quote(params[k], safe='')}" for k in order if k in params)


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_time(value: str) -> datetime | None:
    for fmt in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S.%fZ", "%Y-%m-%dT%H:%MZ", "%Y-%m-%d"):
        try:
            return datetime.strptime(value, fmt).replace(tzinfo=timezone.utc)
        except ValueError:
            continue
    return None


@dataclass(frozen=True)
class SignedAccess:
    permissions: str
    expiry: datetime


def verify(key: bytes, params: dict[str, str], resource: str, *, now: datetime | None = None,
           need: str = "r", scheme: str = "https", signed_resource: str = "b") -> SignedAccess:
    """Check a request's SAS against `key` for `resource` (a blob's, or a container's when
    `signed_resource` is "c"); raise Storage's 403 otherwise. `need` is the permission letter the
    operation requires."""
    if not params.get("sig") or not params.get("sv") or not params.get("se"):
        raise authentication_failed("The SAS is incomplete: sv, se and sig are required.")
    if params.get("sr", "b") != signed_resource:
        kind = "c (container)" if signed_resource == "c" else "b (blob)"
        raise authentication_failed(f"Signed resource (sr) must be {kind} here.")
    expected = sign(key, params, resource)
    if not hmac.compare_digest(expected.encode("ascii"), params["sig"].encode("ascii", "replace")):
        raise authentication_failed("Signature did not match. The string to sign was computed over "
                                    "the signed fields of this URL.")
    now = now or datetime.now(timezone.utc)
    expiry, start = _parse_time(params["se"]), _parse_time(params["st"]) if params.get("st") else None
    if expiry is None or (params.get("st") and start is None):
        raise authentication_failed("The signed start or expiry time is not in ISO 8601 UTC form.")
    if now >= expiry or (start is not None and now < start):
        raise authentication_failed(f"Signed expiry time [{params['se']}] must be after the current time "
                                    f"[{iso(now)}]; the SAS is not valid now.")
    if params.get("spr") == "https" and scheme != "https":
        raise authentication_failed("This SAS is only valid over HTTPS.")
    if need not in params.get("sp", ""):
        raise permission_mismatch()
    return SignedAccess(params.get("sp", ""), expiry)
