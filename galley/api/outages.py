"""The answer to a request that needed the database or an object store while it was out of reach:
503 with Retry-After, never a 500.

Every path ends here (app.py's last-resort handler, the Blob service's front door), so no handler
deals with outages itself: the request's database transaction was rolled back by the database (or
never began), a refused upload leaves the disk as it was, and the client is told to come back.
"""

from __future__ import annotations

import logging

from fastapi import Request
from fastapi.responses import Response

from ..content.store_outage import RETRY_AFTER_SECONDS as STORE_RETRY_SECONDS, store_unavailable
from ..domain.errors import ArmError
from ..store.outage import RETRY_AFTER_SECONDS as DATABASE_RETRY_SECONDS, database_unavailable, first_line
from . import request_ids
from .wire import error_response

log = logging.getLogger("galley.api")


class Outage:
    def __init__(self, what: str, retry_after: int, message: str) -> None:
        self.what, self.retry_after, self.message = what, retry_after, message


DATABASE = Outage("database", DATABASE_RETRY_SECONDS,
                  "The database did not answer (it is restarting, unreachable or busy), so the request was "
                  f"not carried out. Retry after {DATABASE_RETRY_SECONDS} seconds; if this persists, an "
                  "operator should check the database server and GET /readyz on this node.")
STORE = Outage("object store", STORE_RETRY_SECONDS,
               "The region's object store did not answer or refused the data (it is unreachable, or "
               "cannot keep the copies its replication asks for, e.g. a storage server is down), so the "
               f"request was not carried out and nothing was changed. Retry after {STORE_RETRY_SECONDS} "
               "seconds; if this persists, an operator should check the object store.")


def outage_of(error: BaseException) -> Outage | None:
    if database_unavailable(error):
        return DATABASE
    if store_unavailable(error):
        return STORE
    return None


def note(request: Request, error: BaseException, outage: Outage) -> None:
    # One line, no traceback: an outage fails every request alike, and the cause is not in Galley.
    log.warning("%s unavailable for %s %s (%s): %s", outage.what, request.method, request.url.path,
                request_ids.describe_current(), first_line(error))


def answer(request: Request, error: BaseException, outage: Outage) -> Response:
    note(request, error, outage)
    return error_response(ArmError(outage.message, code="ServiceUnavailable", status=503,
                                   retry_after=outage.retry_after))
