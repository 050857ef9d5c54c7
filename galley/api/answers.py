"""How a write is answered: at once with its final state when its work is quick, else with ARM's
long-running operation and a Retry-After that reflects the work left.

A PUT, PATCH or DELETE records the change and queues an operation that a worker finishes. Most
of that work (a gallery, a definition, an empty disk, a version of an empty disk) takes a few
milliseconds, so when this process runs the worker, the request waits up to
`settings.quick_answer_ms` for it, in its thread-pool thread (never on the event loop): the worker
notifies each operation it ends and the wait re-reads the operation's status then. If the
operation succeeded in time, the answer is the final resource with no Azure-AsyncOperation,
Location or Retry-After, and a status code the Azure SDK (and az) take as final without polling.
If it failed, or is still running, the answer is the asynchronous one, exactly as without a budget.
Image templates' PUT and PATCH are always asynchronous (see their ResourceSpec), and so are the
POSTs that start long work (template runs and cancels, retryReplication).
"""

from __future__ import annotations

import math

from fastapi import Request
from fastapi.responses import Response

from ..domain.resource import IN_PROGRESS, SUCCEEDED, Operation
from ..store.outage import database_unavailable
from ..store.sql_store import BUILD_ACTIONS, VM_ACTIONS, VM_TYPES
from .wire import accepted_response

MIN_RETRY_AFTER, MAX_RETRY_AFTER = 1, 30


def finished_in_time(request: Request, operation: Operation | None) -> bool:
    """Wait up to the quick-answer budget for `operation` to end; True if it succeeded in time.
    False at once when there is no budget, or no worker in this process to notify the end (the
    VM worker's for a VM's operations, the main worker's for the others)."""
    state = request.app.state
    budget = state.settings.quick_answer_ms
    worker = state.vms if operation is not None and _on_vm_worker(operation) else state.worker
    if operation is None or budget <= 0 or not worker.running or operation.action in BUILD_ACTIONS:
        return False
    service = state.service
    last = [operation]

    def ended() -> bool:
        last[0] = service.operation(operation.id)
        return last[0].status != IN_PROGRESS

    try:
        return worker.wait_until(ended, budget / 1000) and last[0].status == SUCCEEDED
    except Exception as error:
        if database_unavailable(error):
            return False  # the change is recorded: it is answered asynchronously, never with a 503
        raise


def _on_vm_worker(operation: Operation) -> bool:
    return operation.action in VM_ACTIONS or operation.resource_type in VM_TYPES


def retry_after(request: Request, operation: Operation) -> int:
    """Seconds a client should wait before polling: the work's expected remaining time where it
    can be estimated (a version's replication), within 1..30; else 1."""
    try:
        remaining = request.app.state.service.expected_remaining_seconds(operation)
    except Exception as error:
        if not database_unavailable(error):
            raise
        remaining = None
    if remaining is None:
        return MIN_RETRY_AFTER
    return max(MIN_RETRY_AFTER, min(MAX_RETRY_AFTER, math.ceil(remaining)))


def accepted(request: Request, body: dict | None, operation: Operation, api_version: str,
             status: int) -> Response:
    """ARM's asynchronous answer: the operation's URLs and when to look again."""
    return accepted_response(request, body, operation, api_version, status, retry_after(request, operation))
