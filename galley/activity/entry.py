"""An activity log entry and a question asked of the log: plain data, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from http import HTTPStatus

WRITE_METHODS = frozenset({"PUT", "PATCH", "DELETE", "POST"})
ANONYMOUS = "anonymous"


@dataclass(frozen=True)
class Entry:
    id: str  # eventDataId
    event_timestamp: str  # iso(): when the request arrived
    subscription_id: str | None  # None: not under a subscription (tenant-level, blob, unknown)
    tenant_id: str | None  # the caller's tenant (None when anonymous)
    caller: str  # appid, else object id, else ANONYMOUS
    caller_object_id: str | None
    method: str
    path: str  # never the query string: it may carry secrets
    action: str | None  # the ARM action its route maps to (None: no rule covers it)
    scope: str  # what the action is authorized over
    resource_id: str
    resource_group: str | None
    status_code: int
    correlation_id: str
    request_id: str
    client_request_id: str | None = None
    client_ip: str | None = None
    submission_timestamp: str | None = None  # when it was written (the writer sets it)


@dataclass(frozen=True)
class EventQuery:
    """What `$filter` asks for: a time window and, optionally, equalities."""

    subscription_id: str
    start: str  # iso(), inclusive
    end: str  # iso(), inclusive
    resource_group: str | None = None
    resource_id: str | None = None
    correlation_id: str | None = None
    caller: str | None = None
    resource_provider: str | None = None
    status: str | None = None  # Succeeded | Accepted | Failed


def should_record(method: str, status_code: int) -> bool:
    """Every write, and every request refused for want of a sign-in or a permission."""
    return method in WRITE_METHODS or status_code in (401, 403)


def status_of(status_code: int) -> str:
    """ARM's status of the operation as this request left it."""
    if status_code >= 400:
        return "Failed"
    return "Accepted" if status_code == 202 else "Succeeded"


def sub_status_of(status_code: int) -> str:
    """As ARM names HTTP statuses in subStatus ('Created', 'NoContent', 'Forbidden')."""
    try:
        return HTTPStatus(status_code).phrase.replace(" ", "").replace("-", "")
    except ValueError:
        return str(status_code)


def provider_and_type(action: str | None) -> tuple[str, str]:
    """('Microsoft.Compute', 'Microsoft.Compute/galleries') from 'Microsoft.Compute/galleries/write'."""
    if not action:
        return "", ""
    parts = action.split("/")
    if parts[-1].lower() in ("read", "write", "delete"):
        parts = parts[:-1]
    elif parts[-1].lower() == "action" and len(parts) > 2:
        parts = parts[:-2]
    return parts[0], "/".join(parts)
