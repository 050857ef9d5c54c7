"""Who is receiving an upload: this process, named host:pid, and whether a named one still lives."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from typing import Callable, TypeVar

from .store.outage import database_unavailable

LEASE_SECONDS = 60.0
log = logging.getLogger("galley.uploads")
T = TypeVar("T")


def this_process() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def owner_alive(owner: str) -> bool:
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True  # another machine's process: only its lease's time can end it
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# Upload endings that met a database outage, by resource id: run by whoever takes them first, the
# retry thread or the next upload to the same disk (settle), so that upload is not refused.
_unended: dict[str, Callable[[], object]] = {}
_unended_lock = threading.Lock()


def end(ending: Callable[[], T], resource_id: str, retry_seconds: float = 1.0) -> T:
    """Run an upload's `ending` (which records its outcome and releases its lease). When the
    database is out of reach, the error still goes to the client (a 503), and the ending is kept
    and retried for LEASE_SECONDS: the disk does not stay in ActiveUpload, refusing the client's
    next upload, until its lease runs out."""
    try:
        return ending()
    except Exception as error:
        if not database_unavailable(error):
            raise
        with _unended_lock:
            _unended[resource_id] = ending
        threading.Thread(target=_end_later, args=(resource_id, ending, retry_seconds),
                         name="galley-upload-end", daemon=True).start()
        raise


def settle(resource_id: str) -> None:
    """Before an upload begins: run the previous upload's ending if it is still owed (a database
    outage error if the database is still out of reach)."""
    _take_and_run(resource_id)


def _take_and_run(resource_id: str) -> None:
    """Run the owed ending of `resource_id`, if any."""
    with _unended_lock:
        ending = _unended.pop(resource_id, None)
    if ending is None:
        return
    try:
        ending()
    except Exception as error:
        if not database_unavailable(error):
            log.warning("could not end the upload to %s: %r", resource_id, error)
            return  # its lease ends it
        with _unended_lock:
            _unended.setdefault(resource_id, ending)
        raise
    log.info("the upload to %s ended once the database was back", resource_id)


def _end_later(resource_id: str, ending: Callable[[], object], retry_seconds: float) -> None:
    deadline = time.monotonic() + LEASE_SECONDS
    while time.monotonic() < deadline:
        time.sleep(retry_seconds)
        try:
            _take_and_run(resource_id)
            return
        except Exception:  # noqa: BLE001 - the database is still out of reach: retried
            continue
    with _unended_lock:
        if _unended.get(resource_id) is ending:
            del _unended[resource_id]  # its lease has run out: the next upload ends it
