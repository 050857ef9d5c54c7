"""The activity log, as Azure Monitor serves it (`az monitor activity-log list`):

  GET /subscriptions/{s}/providers/Microsoft.Insights/eventtypes/management/values?api-version=2015-04-01
      &$filter=eventTimestamp ge '<iso>' and eventTimestamp le '<iso>'
              [and resourceGroupName eq '…' | resourceId eq '…' | resourceUri eq '…' | correlationId eq '…'
               | caller eq '…' | resourceProvider eq '…' | status eq 'Succeeded'|'Accepted'|'Failed']
      [&$select=…]  (accepted; every field is returned)

Newest first, a page at a time (`nextLink`), each entry in Azure's EventData shape. Reading it
needs Microsoft.Insights/eventtypes/values/read over the subscription (Reader has it); the rule is
authorization.py's like any other. This is the only route of the log: entries are made by the
authentication middleware and removed only by the retention period, never through the API.
"""

from __future__ import annotations

import base64
import binascii
import re
from datetime import datetime, timezone
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from ...activity.entry import ANONYMOUS, Entry, EventQuery, provider_and_type, status_of, sub_status_of
from ...domain.errors import InvalidParameter
from ...domain.names import check_subscription_id
from ...domain.resource import iso, utc_now
from ..api_versions import activity_log_api
from ..wire import json_response

router = APIRouter(tags=["ActivityLogs"])
PATH = "/subscriptions/{subscriptionId}/providers/microsoft.insights/eventtypes/management/values"

_CLAUSE = re.compile(r"\s*(\w+)\s+(eq|ge|le)\s+('(?:[^']|'')*'|[^\s']+)\s*", re.IGNORECASE)
_AND = re.compile(r"and\s+", re.IGNORECASE)
# $filter fields (lower-case) → EventQuery fields
_EQUALITIES = {"resourcegroupname": "resource_group", "resourceid": "resource_id", "resourceuri": "resource_id",
               "correlationid": "correlation_id", "caller": "caller", "resourceprovider": "resource_provider",
               "status": "status"}


@router.get(PATH, operation_id="ActivityLogs_List")
def list_activity_log(request: Request, subscriptionId: str, filter: str | None = Query(None, alias="$filter"),
                      select: str | None = Query(None, alias="$select"),
                      skiptoken: str | None = Query(None, alias="$skiptoken"),
                      api_version: str = Depends(activity_log_api)) -> Response:
    check_subscription_id(subscriptionId)
    query = parse_filter(filter, subscriptionId.lower())
    if getattr(request.state, "visible", None) is not None:
        # The caller reads only some things in the subscription (a grant below it), not its log.
        return json_response({"value": []})
    limit = request.app.state.settings.page_size
    entries = request.app.state.activity.query(query, limit + 1, _after(skiptoken))
    base = str(request.base_url).rstrip("/")
    body: dict = {"value": [event_data(e, base) for e in entries[:limit]]}
    if len(entries) > limit:
        last = entries[limit - 1]
        params = {k: v for k, v in request.query_params.items() if k != "$skiptoken"}
        params["$skiptoken"] = base64.urlsafe_b64encode(f"{last.event_timestamp}|{last.id}".encode()).decode()
        body["nextLink"] = f"{base}{request.url.path}?{urlencode(params)}"
    return json_response(body)


def parse_filter(text: str | None, subscription_id: str) -> EventQuery:
    """`eventTimestamp ge '…' [and eventTimestamp le '…'] [and <field> eq '…']…`; values quoted or
    not (az sends the times bare)."""
    if not text or not text.strip():
        raise InvalidParameter("$filter is required, with at least the start time: "
                               "$filter=eventTimestamp ge '2026-01-01T00:00:00Z'.", target="$filter")
    found: dict[str, str] = {}
    position = 0
    while True:
        match = _CLAUSE.match(text, position)
        if match is None:
            raise _unsupported(text)
        name, operator, value = match.group(1).lower(), match.group(2).lower(), match.group(3)
        value = value[1:-1].replace("''", "'") if value.startswith("'") else value
        if name == "eventtimestamp" and operator in ("ge", "le"):
            found["start" if operator == "ge" else "end"] = _moment(value)
        elif name in _EQUALITIES and operator == "eq":
            found[_EQUALITIES[name]] = value
        else:
            raise _unsupported(text)
        position = match.end()
        if position == len(text):
            break
        joined = _AND.match(text, position)
        if joined is None:
            raise _unsupported(text)
        position = joined.end()
    if "start" not in found:
        raise InvalidParameter("$filter must give the start time: eventTimestamp ge '<ISO 8601 time>'.",
                               target="$filter")
    found.setdefault("end", iso(utc_now()))
    return EventQuery(subscription_id=subscription_id, **found)


def _moment(value: str) -> str:
    try:
        moment = datetime.fromisoformat(value)
        return iso(moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc))
    except (ValueError, OverflowError):  # not a time, or one that in UTC falls outside years 1-9999
        raise InvalidParameter(f"'{value}' in $filter is not an ISO 8601 time within the years 1 to 9999 "
                               "(in UTC).", target="$filter") from None


def _unsupported(text: str) -> InvalidParameter:
    return InvalidParameter(
        f"The $filter '{text}' is not supported: use eventTimestamp ge '<time>' and eventTimestamp le '<time>', "
        "optionally with resourceGroupName, resourceId, correlationId, caller, resourceProvider or status "
        "eq '<value>', joined by 'and'.", target="$filter")


def _after(skiptoken: str | None) -> tuple[str, str] | None:
    if not skiptoken:
        return None
    try:
        timestamp, _, entry_id = base64.urlsafe_b64decode(skiptoken.encode()).decode().partition("|")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        timestamp = entry_id = ""
    if not timestamp or not entry_id:
        raise InvalidParameter("The $skiptoken is not one this server gave out.", target="$skiptoken")
    return timestamp, entry_id


def _text(value: str) -> dict:
    return {"value": value, "localizedValue": value}


def event_data(entry: Entry, base_url: str) -> dict:
    """Azure's EventData for one entry (one event per request: its end)."""
    provider, resource_type = provider_and_type(entry.action)
    failed = entry.status_code >= 400
    claims = {} if entry.caller == ANONYMOUS else {
        "appid": entry.caller, "http://schemas.microsoft.com/identity/claims/objectidentifier": entry.caller_object_id,
        "http://schemas.microsoft.com/identity/claims/tenantid": entry.tenant_id}
    return {
        "authorization": {"action": entry.action or "", "scope": entry.scope},
        "caller": entry.caller,
        "channels": "Operation",
        "claims": claims,
        "correlationId": entry.correlation_id,
        "description": "",
        "eventDataId": entry.id,
        "eventName": {"value": "EndRequest", "localizedValue": "End request"},
        "category": _text("Administrative"),
        "eventTimestamp": entry.event_timestamp,
        "id": f"{entry.resource_id}/events/{entry.id}/ticks/{_ticks(entry.event_timestamp)}",
        "level": "Error" if failed else "Informational",
        "operationId": entry.request_id,
        "operationName": _text(entry.action or f"{entry.method} (no access rule covers it)"),
        "resourceGroupName": entry.resource_group or "",
        "resourceProviderName": _text(provider),
        "resourceType": _text(resource_type),
        "resourceId": entry.resource_id,
        "status": _text(status_of(entry.status_code)),
        "subStatus": {"value": sub_status_of(entry.status_code),
                      "localizedValue": f"{sub_status_of(entry.status_code)} (HTTP Status Code: {entry.status_code})"},
        "submissionTimestamp": entry.submission_timestamp or entry.event_timestamp,
        "subscriptionId": entry.subscription_id or "",
        "tenantId": entry.tenant_id or "",
        "httpRequest": {"clientRequestId": entry.client_request_id or "", "clientIpAddress": entry.client_ip or "",
                        "method": entry.method, "uri": f"{base_url}{entry.path}"},
        "properties": {"statusCode": sub_status_of(entry.status_code), "httpStatusCode": str(entry.status_code),
                       "serviceRequestId": entry.request_id, "eventCategory": "Administrative",
                       "entity": entry.resource_id},
    }


def _ticks(timestamp: str) -> int:
    """.NET ticks (100 ns since 0001-01-01), as Azure's event ids end."""
    delta = datetime.fromisoformat(timestamp.replace("Z", "+00:00")) - datetime(1, 1, 1, tzinfo=timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 10_000_000 + delta.microseconds * 10
