"""Group commit: writers that must make something durable at about the same time share one commit
(one database transaction, one fdatasync) instead of each queueing for its own.

    commits = GroupCommit(apply)   # apply(items) -> one result per item, in the same order
    result = commits.run(item)     # returns once the batch holding `item` has been applied

The first caller that finds no batch being applied applies everything queued so far, its own item
included; callers arriving meanwhile queue up for the next batch and wait. An exception raised by
`apply` is raised in every caller of that batch.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


class _Ticket:
    __slots__ = ("done", "error", "item", "result")

    def __init__(self, item) -> None:
        self.item, self.done, self.result, self.error = item, False, None, None


class GroupCommit(Generic[Item, Result]):
    def __init__(self, apply: Callable[[list[Item]], list[Result]]) -> None:
        self._apply = apply
        self._queue: list[_Ticket] = []
        self._busy = False
        self._changed = threading.Condition()

    def run(self, item: Item) -> Result:
        ticket, batch = _Ticket(item), None
        with self._changed:
            self._queue.append(ticket)
            while self._busy and not ticket.done:
                self._changed.wait()
            if not ticket.done:  # nobody is applying and our item is still queued: apply the queue
                batch, self._queue, self._busy = self._queue, [], True
        if batch is not None:
            self._lead(batch)
        if ticket.error is not None:
            raise ticket.error
        return ticket.result

    def _lead(self, batch: list[_Ticket]) -> None:
        try:
            results = self._apply([t.item for t in batch])
            for t, result in zip(batch, results, strict=True):
                t.result = result
        except BaseException as error:  # noqa: BLE001 - handed to every caller of the batch
            for t in batch:
                t.error = error
        with self._changed:
            for t in batch:
                t.done = True
            self._busy = False
            self._changed.notify_all()
