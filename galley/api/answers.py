"""How a write is answered: at once with its final state when its work is quick, else with ARM's
long-running operation and a Retry-After that reflects the work left.

A PUT, PATCH or DELETE records the change and queues an operation that a worker finishes. Most
of that work (a gallery, a definition, an empty disk, a version of an empty disk) takes a few
milliseconds, so the request waits up to `settings.quick_answer_ms` for it, in its thread-pool
thread (never on the event loop), re-reading the operation's status each time this process's
worker ends an operation and every RECHECK_SECONDS besides: in a cluster, another node's worker
may be the one that claims it. A node without a worker waits only while some worker node is
alive (heartbeats in the nodes table); with none, nothing would end the work in time. If the
operation succeeded in time, the answer is the final resource with no Azure-AsyncOperation,
Location or Retry-After, and a status code the Azure SDK (and az) take as final without polling.
If it failed, or is still running, the answer is the asynchronous one, exactly as without a budget.
Image templates' PUT and PATCH are always asynchronous (see their ResourceSpec), and so are the
POSTs that start long work (template runs and cancels, retryReplication).
"""

from __future__ import annotations

import math
from typing import Callable, TypeVar

from fastapi import Request
from fastapi.responses import Response

from ..domain.resource import IN_PROGRESS, SUCCEEDED, Operation
from ..observability.nodes import WORKER
from ..store.outage import database_unavailable
from ..store.sql_store import BUILD_ACTIONS, VM_ACTIONS, VM_TYPES
from .wire import accepted_response

T = TypeVar("T")

MIN_RETRY_AFTER, MAX_RETRY_AFTER = 1, 30
# One indexed read of the operation this often while waiting: work ended by another node's worker
# is seen within this, without a notice from it.
RECHECK_SECONDS = 0.025


def finished_in_time(request: Request, operation: Operation | None) -> bool:
    """Wait up to the quick-answer budget for `operation` to end; True if it succeeded in time.
    False at once when there is no budget, or no worker to end it: none running in this process
    (the VM worker's for a VM's operations, the main worker's for the others) and no live worker
    node."""
    state = request.app.state
    budget = state.settings.quick_answer_ms
    if operation is None or budget <= 0 or operation.action in BUILD_ACTIONS:
        return False
    worker = state.vms if _on_vm_worker(operation) else state.worker
    service = state.service
    last = [operation]

    def ended() -> bool:
        last[0] = service.operation(operation.id)
        return last[0].status != IN_PROGRESS

    try:
        if not worker.running and not state.node.role_alive(WORKER):
            return False
        return worker.wait_until(ended, budget / 1000, recheck=RECHECK_SECONDS) and last[0].status == SUCCEEDED
    except Exception as error:
        if database_unavailable(error):
            return False  # the change is recorded: it is answered asynchronously, never with a 503
        raise


def read_after_write(read: Callable[[], T]) -> T | None:
    """The resource as the finished work left it, for a quick answer; None when the database went
    away in the meantime. The write is committed by then, so its answer must not become a 503 (a
    client would take the write for refused): the caller answers asynchronously instead."""
    try:
        return read()
    except Exception as error:
        if database_unavailable(error):
            return None
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
