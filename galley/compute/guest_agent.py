"""The host side of the QEMU guest agent (QGA): JSON commands over the machine's qga.sock.

The guest runs `qemu-guest-agent` on the virtio-serial port `org.qemu.guest_agent.0`; QEMU
exposes the other end as a unix socket. Every session starts with `guest-sync-delimited`, which
makes the agent drop half-read input and lets the host skip replies left over from an earlier
session that gave up (the reply follows a 0xFF byte and echoes a random id).
"""
from __future__ import annotations

import base64
import json
import random
import time
from dataclasses import dataclass
from pathlib import Path

from .unix_socket import JsonLines, connect

MAX_OUTPUT_BYTES = 1 << 20  # per stream; the tail is kept
_DELIMITER = b"\xff"


class GuestAgentUnavailable(RuntimeError):
    """The guest agent does not answer (the guest is booting, stopped, or has no agent)."""


class CommandTimeout(TimeoutError):
    """The command was still running in the guest when the timeout passed (it was killed)."""


class GuestAgentError(RuntimeError):
    """The guest agent answered with an error."""


@dataclass(frozen=True)
class CommandResult:
    exit_code: int
    stdout: str
    stderr: str


class GuestAgentSession:
    def __init__(self, socket_path: Path, timeout: float = 5.0) -> None:
        try:
            self._channel = JsonLines(connect(socket_path, timeout))
        except OSError as error:
            raise GuestAgentUnavailable(f"the guest agent's socket cannot be reached: {error}") from error
        try:
            self._sync()
        except BaseException:
            self.close()
            raise

    def _sync(self) -> None:
        token = random.randrange(1, 1 << 31)
        try:
            self._channel.send_raw(_DELIMITER)
            self._channel.send({"execute": "guest-sync-delimited", "arguments": {"id": token}})
            while True:
                self._channel.skip_past(_DELIMITER)
                reply = json.loads(self._channel.read_line())
                if reply.get("return") == token:
                    return
        except (OSError, ConnectionError, ValueError) as error:
            raise GuestAgentUnavailable(f"the guest agent does not answer: {error or type(error).__name__}") from error

    def call(self, command: str, arguments: dict | None = None):
        message = {"execute": command}
        if arguments is not None:
            message["arguments"] = arguments
        try:
            self._channel.send(message)
            reply = json.loads(self._channel.read_line())
        except (OSError, ConnectionError, ValueError) as error:
            raise GuestAgentUnavailable(f"the guest agent stopped answering ({command}): {error}") from error
        if "error" in reply:
            raise GuestAgentError(f"{command}: {reply['error'].get('desc', reply['error'])}")
        return reply.get("return")

    def close(self) -> None:
        self._channel.close()

    def __enter__(self) -> GuestAgentSession:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def ping(socket_path: Path, timeout: float = 3.0) -> bool:
    try:
        with GuestAgentSession(socket_path, timeout) as session:
            session.call("guest-ping")
        return True
    except (GuestAgentUnavailable, GuestAgentError):
        return False


def run_script(socket_path: Path, script: str, timeout: float, max_output: int = MAX_OUTPUT_BYTES) -> CommandResult:
    """Run `script` with /bin/sh as root in the guest (the script is its standard input)."""
    deadline = time.monotonic() + timeout
    with GuestAgentSession(socket_path) as session:
        started = session.call("guest-exec", {
            "path": "/bin/sh", "arg": ["-s"], "capture-output": True,
            "input-data": base64.b64encode(script.encode()).decode()})
        pid = started["pid"]
        pause = 0.1
        while True:
            status = session.call("guest-exec-status", {"pid": pid})
            if status.get("exited"):
                break
            if time.monotonic() >= deadline:
                _kill(session, pid)
                raise CommandTimeout(f"the script was still running after {timeout:g} s; it was killed")
            time.sleep(min(pause, max(0.0, deadline - time.monotonic())))
            pause = min(pause * 1.5, 1.0)
    exit_code = status.get("exitcode")
    if exit_code is None:  # killed by a signal: report it the way a shell does
        exit_code = 128 + int(status.get("signal", 0))
    return CommandResult(exit_code=int(exit_code),
                         stdout=_decode(status.get("out-data"), max_output),
                         stderr=_decode(status.get("err-data"), max_output))


def _decode(data: str | None, limit: int) -> str:
    raw = base64.b64decode(data) if data else b""
    return raw[-limit:].decode("utf-8", errors="replace")


def _kill(session: GuestAgentSession, pid: int) -> None:
    try:
        session.call("guest-exec", {"path": "/bin/sh", "arg": ["-c", f"pkill -KILL -P {pid}; kill -KILL {pid}"]})
    except (GuestAgentUnavailable, GuestAgentError):
        pass
