"""Who is receiving an upload: this process, named host:pid, and whether a named one still lives."""

from __future__ import annotations

import os
import socket

LEASE_SECONDS = 60.0


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
