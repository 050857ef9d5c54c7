"""Each request's part in the activity log, for the authentication middleware.

The entry names the request's ARM ids (request_ids.py makes them and sends them back as
response headers). When its response has started, its status is known; if it was a write
(PUT, PATCH, DELETE, POST) or was refused (401, 403), one entry is queued for the activity log:
who, what (the ARM action the route maps to), over which scope, with which outcome. A read that
succeeds costs nothing more. Recording never fails a request: errors are logged.
"""

from __future__ import annotations

import logging
import time
import uuid
from datetime import datetime, timezone

from starlette.types import Scope, Send

from ..activity.entry import ANONYMOUS, Entry, should_record
from ..domain.resource import iso
from .authorization import ITEM, ITEM_ACTIONS, display_scope, rule_for
from . import request_ids
from .request_ids import CLIENT_REQUEST_HEADER, client_id

log = logging.getLogger("galley.activity")


class Recording:
    __slots__ = ("correlation_id", "request_id", "started", "status", "caller")

    def __init__(self, scope: Scope) -> None:
        ids = request_ids.of(scope)
        self.correlation_id = ids.correlation_id
        self.request_id = ids.request_id
        self.started = time.time()
        self.status: int | None = None
        self.caller = None  # set by the middleware once the token is verified

    def wrap(self, send: Send) -> Send:
        async def sending(message) -> None:
            if message["type"] == "http.response.start":
                self.status = message["status"]
            await send(message)
        return sending

    def finish(self, scope: Scope) -> None:
        """After the response (or the exception that ended the request)."""
        status = self.status or 500
        if not should_record(scope["method"], status):
            return
        try:
            activity = getattr(scope["app"].state, "activity", None)
            if activity is not None:
                activity.record(self.entry(scope, status))
        except Exception:  # noqa: BLE001 - the activity log must never fail a request
            log.exception("activity log: could not record %s %s (%s)", scope["method"], scope["path"],
                          request_ids.describe_current())

    def entry(self, scope: Scope, status: int) -> Entry:
        method, path = scope["method"], scope["path"]
        rule = rule_for(method, path)
        parts = [p for p in path.split("/") if p]
        resource_id = display_scope(path) if parts and parts[0].lower() == "subscriptions" else path
        if rule is not None and rule.kind == ITEM and parts and parts[-1].lower() in ITEM_ACTIONS:
            resource_id = resource_id.rsplit("/", 1)[0]  # …/galleries/g/share acts on the gallery
        caller = self.caller
        client = scope.get("client")
        return Entry(
            id=str(uuid.uuid4()),
            event_timestamp=iso(datetime.fromtimestamp(self.started, timezone.utc)),
            subscription_id=_subscription(rule.subscription if rule else None, parts),
            tenant_id=caller.tenant_id[:64] if caller else None,
            caller=(caller.client_name if caller else ANONYMOUS)[:256],
            caller_object_id=caller.object_id[:64] if caller else None,
            method=method[:16],
            path=path,
            action=rule.action[:512] if rule and rule.action else None,
            scope=rule.scope if rule else resource_id,
            resource_id=resource_id,
            resource_group=parts[3][:128] if len(parts) > 3 and parts[2].lower() == "resourcegroups" else None,
            status_code=status,
            correlation_id=self.correlation_id,
            request_id=self.request_id,
            client_request_id=client_id(scope, CLIENT_REQUEST_HEADER),
            client_ip=client[0][:64] if client else None,
        )


def _subscription(from_rule: str | None, parts: list[str]) -> str | None:
    """The subscription the request is under (refused or not), when the path names a GUID."""
    candidate = from_rule or (parts[1] if len(parts) > 1 and parts[0].lower() == "subscriptions" else None)
    if candidate is None:
        return None
    try:
        return str(uuid.UUID(candidate))
    except ValueError:
        return None
