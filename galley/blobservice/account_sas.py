"""Account SAS: a query string signed with a storage account's key (`ss`, `srt`, `sp`, `st`, `se`,
`sip`, `spr`, `sv`, `ses`, `sig`), as azure-storage-blob's `generate_account_sas` makes it.

The signature is HMAC-SHA256 over
  account \n sp \n ss \n srt \n st \n se \n sip \n spr \n sv \n [ses \n]
(`ses` from version 2020-12-06). Then what it allows is checked: the Blob service (`ss` has
`b`), the kind of resource the operation touches (`srt`: s service, c container, o object), one
of the permissions the operation accepts (`sp`), its time window, protocol and client address.
A failed signature or time window is 403 AuthenticationFailed; a valid SAS that does not cover
the operation is 403 AuthorizationPermissionMismatch (…ResourceTypeMismatch, …ServiceMismatch,
…ProtocolMismatch, …SourceIPMismatch), as Azure Storage answers.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from datetime import UTC, datetime

from ..identity.secrets import same_text
from .errors import BlobError, authentication_failed, permission_mismatch
from .shared_key import sign

ENCRYPTION_SCOPE_SINCE = "2020-12-06"


@dataclass(frozen=True)
class Need:
    """What an operation needs a SAS to allow: a resource type and any one of `permissions`."""

    resource_type: str  # "s" service, "c" container, "o" object
    permissions: str


def is_account_sas(params: dict[str, str]) -> bool:
    return "sig" in params and "ss" in params and "srt" in params


def strings_to_sign(account: str, params: dict[str, str]) -> list[str]:
    """Azure's form for the SAS's version, and the other one (older clients sign without `ses`
    whatever version they name)."""
    fields = ["sp", "ss", "srt", "st", "se", "sip", "spr", "sv"]
    without = account + "\n" + "".join(params.get(f, "") + "\n" for f in fields)
    with_scope = without + params.get("ses", "") + "\n"
    return [with_scope, without] if params.get("sv", "") >= ENCRYPTION_SCOPE_SINCE else [without, with_scope]


def parse_time(value: str, name: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise authentication_failed(f"The value of '{name}' ({value}) is not an ISO 8601 UTC time.") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def check_window(params: dict[str, str], now: datetime) -> None:
    """The SAS's time window (`st` optional, `se` required), as AuthenticationFailed otherwise."""
    if not params.get("se"):
        raise authentication_failed("Signed expiry time (se) must be given.")
    expiry = parse_time(params["se"], "se")
    start = parse_time(params["st"], "st") if params.get("st") else None
    if now >= expiry or (start is not None and now < start):
        raise authentication_failed(f"Signature not valid in the specified time frame: Start [{params.get('st', '')}]"
                                    f" - Expiry [{params['se']}] - Current [{now.strftime('%a, %d %b %Y %H:%M:%S GMT')}]")


def check_transport(params: dict[str, str], https: bool, client_ip: str | None) -> None:
    protocols = params.get("spr", "https,http")
    if protocols not in ("https", "https,http"):
        raise authentication_failed(f"spr must be 'https' or 'https,http', not '{protocols}'.")
    if protocols == "https" and not https:
        raise BlobError(403, "AuthorizationProtocolMismatch",
                        "This request is not authorized to perform this operation using this protocol.")
    if params.get("sip"):
        low, _, high = params["sip"].partition("-")
        try:
            inside = client_ip is not None and (
                ipaddress.ip_address(low) <= ipaddress.ip_address(client_ip) <= ipaddress.ip_address(high or low))
        except ValueError:
            raise authentication_failed(f"sip '{params['sip']}' is not an IP address or range.") from None
        if not inside:
            raise BlobError(403, "AuthorizationSourceIPMismatch",
                            "This request is not authorized to perform this operation using this source IP "
                            f"{client_ip}.")


def verify(params: dict[str, str], account: str, keys: list[bytes], need: Need, now: datetime,
           https: bool, client_ip: str | None) -> None:
    """Refuses (raises BlobError) unless the account SAS is the account's and covers `need`."""
    signature = params.get("sig", "")
    if not any(same_text(signature, sign(key, text))
               for key in keys for text in strings_to_sign(account, params)):
        raise authentication_failed("Signature did not match. String to sign used was the account SAS's fields.")
    check_window(params, now)
    check_transport(params, https, client_ip)
    if "b" not in params.get("ss", ""):
        raise BlobError(403, "AuthorizationServiceMismatch",
                        "This request is not authorized to perform this operation using this service.")
    if need.resource_type not in params.get("srt", ""):
        raise BlobError(403, "AuthorizationResourceTypeMismatch",
                        "This request is not authorized to perform this operation using this resource type.")
    if not set(need.permissions) & set(params.get("sp", "")):
        raise permission_mismatch()
