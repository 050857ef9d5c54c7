"""A minimal synchronous QMP (QEMU Machine Protocol) client: connect, negotiate, run a command.

Only what Galley needs (system_powerdown, system_reset, query-status); events QEMU sends in
between are skipped. A new connection per call: QEMU serves one QMP client at a time.
"""
from __future__ import annotations

import json
from pathlib import Path

from .unix_socket import JsonLines, connect


class QmpError(RuntimeError):
    """QEMU refused the command, or its monitor could not be reached."""


def execute(socket_path: Path, command: str, arguments: dict | None = None, timeout: float = 10.0):
    """Run one QMP command and return its `return` value."""
    try:
        channel = JsonLines(connect(socket_path, timeout))
    except OSError as error:
        raise QmpError(f"cannot reach QEMU's monitor at {socket_path}: {error}") from error
    try:
        greeting = json.loads(channel.read_line())
        if "QMP" not in greeting:
            raise QmpError(f"unexpected QMP greeting: {greeting}")
        _call(channel, "qmp_capabilities", None)
        return _call(channel, command, arguments)
    except (OSError, ConnectionError, ValueError) as error:
        raise QmpError(f"QMP {command} failed: {error}") from error
    finally:
        channel.close()


def _call(channel: JsonLines, command: str, arguments: dict | None):
    message = {"execute": command}
    if arguments:
        message["arguments"] = arguments
    channel.send(message)
    while True:
        reply = json.loads(channel.read_line())
        if "event" in reply:
            continue
        if "error" in reply:
            raise QmpError(f"QMP {command}: {reply['error'].get('desc', reply['error'])}")
        return reply.get("return")
