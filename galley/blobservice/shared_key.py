"""Shared Key authorization (`Authorization: SharedKey {account}:{signature}`), as Azure Storage
defines it for the Blob service ("Authorize with Shared Key", versions 2009-09-19 and later).

The signature is HMAC-SHA256, keyed with one of the account's keys, over:

  VERB \n Content-Encoding \n Content-Language \n Content-Length (empty when 0) \n Content-MD5 \n
  Content-Type \n Date \n If-Modified-Since \n If-Match \n If-None-Match \n If-Unmodified-Since \n
  Range \n CanonicalizedHeaders CanonicalizedResource

CanonicalizedHeaders: every `x-ms-*` header as `name:value\n`, names lower-cased and sorted the way
the service sorts them (hyphens weigh nothing at first). CanonicalizedResource: `/{account}` then
the request's path as sent (path-style, so the account appears twice: `/acct/acct/container/blob`),
then `\nname:value` for each query parameter, names lower-cased and sorted, values decoded.

Limits: the `Range` header is signed by some clients and not by others (azure-storage-blob signs
an empty line there and sends `x-ms-range`), so both forms are accepted; the path is tried as sent
and decoded. Nothing here logs a key, a signature or a string-to-sign.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from dataclasses import dataclass
from urllib.parse import unquote

from ..identity.secrets import same_text

STANDARD_HEADERS = ("content-encoding", "content-language", "content-length", "content-md5", "content-type",
                    "date", "if-modified-since", "if-match", "if-none-match", "if-unmodified-since")


@dataclass(frozen=True)
class SignedRequest:
    """What a signature covers: the request as it came in."""

    method: str
    raw_path: str  # percent-encoded, as on the request line, without the query
    query_string: str
    headers: dict[str, str]  # lower-cased names

    def query_pairs(self) -> list[tuple[str, str]]:
        """Decoded as Azure does: %XX only (a '+' stays a '+')."""
        pairs = []
        for part in self.query_string.split("&"):
            if part:
                name, _, value = part.partition("=")
                pairs.append((unquote(name), unquote(value)))
        return pairs


def parse_authorization(header: str) -> tuple[str, str] | None:
    """(account, signature) of a `SharedKey account:signature` header; None for other schemes."""
    scheme, _, credentials = header.strip().partition(" ")
    if scheme != "SharedKey":
        return None
    account, sep, signature = credentials.strip().partition(":")
    return (account, signature) if sep and account and signature else None


def header_order(name: str) -> tuple[str, tuple[bool, ...]]:
    """The service's order of x-ms- header names: hyphens weigh nothing at first; between names
    equal without them, the first place where only one has a hyphen puts the other first."""
    return name.replace("-", ""), tuple(c == "-" for c in name)


def canonicalized_headers(headers: dict[str, str]) -> str:
    names = sorted((n for n in headers if n.startswith("x-ms-")), key=header_order)
    return "".join(f"{n}:{headers[n]}\n" for n in names)


def canonicalized_resource(account: str, path: str, query: list[tuple[str, str]]) -> str:
    grouped: dict[str, list[str]] = {}
    for name, value in query:
        grouped.setdefault(name.lower(), []).append(value)
    tail = "".join(f"\n{name}:{','.join(sorted(values))}" for name, values in sorted(grouped.items()))
    return f"/{account}{path}{tail}"


def strings_to_sign(request: SignedRequest, account: str) -> list[str]:
    """Every string a well-behaved client may have signed for this request."""
    headers = request.headers
    fixed = [headers.get(name, "") for name in STANDARD_HEADERS]
    if fixed[2] == "0":
        fixed[2] = ""
    ranges = {headers.get("range", ""), ""}
    paths = {request.raw_path, unquote(request.raw_path)}
    canonical = canonicalized_headers(headers)
    query = request.query_pairs()
    return [f"{request.method}\n" + "\n".join(fixed) + f"\n{byte_range}\n" + canonical
            + canonicalized_resource(account, path, query)
            for byte_range in sorted(ranges) for path in sorted(paths)]


def sign(key: bytes, text: str) -> str:
    return base64.b64encode(hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()).decode()


def verify(request: SignedRequest, account: str, signature: str, keys: list[bytes]) -> bool:
    """Whether `signature` is the request's, made with one of `keys`."""
    texts = strings_to_sign(request, account)
    return any(same_text(signature, sign(key, text)) for key in keys for text in texts)
