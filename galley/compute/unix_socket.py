"""Connecting to a QEMU unix socket, whatever the length of its path.

A unix socket address holds at most 107 bytes, and machine folders under a deep $GALLEY_HOME
can be longer. QEMU binds its sockets relative to the folder (it starts with the folder as its
working directory); the host side connects through /proc/self/fd/<folder fd>/<name>, which is
short whatever the folder's path.
"""
from __future__ import annotations

import json
import os
import socket
from pathlib import Path

_MAX_ADDRESS = 100


def connect(path: Path, timeout: float) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    try:
        if len(os.fsencode(path)) <= _MAX_ADDRESS:
            sock.connect(os.fspath(path))
        else:
            folder = os.open(path.parent, os.O_PATH | os.O_CLOEXEC)
            try:
                sock.connect(f"/proc/self/fd/{folder}/{path.name}")
            finally:
                os.close(folder)
    except BaseException:
        sock.close()
        raise
    return sock


class JsonLines:
    """Newline-separated JSON messages over a connected socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self._buffer = b""

    def send(self, message: dict) -> None:
        self.sock.sendall(json.dumps(message).encode() + b"\n")

    def send_raw(self, data: bytes) -> None:
        self.sock.sendall(data)

    def read_line(self) -> bytes:
        while b"\n" not in self._buffer:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("the socket was closed")
            self._buffer += data
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def skip_past(self, marker: bytes) -> None:
        """Drop everything up to and including `marker` (QGA's 0xFF sync delimiter)."""
        while marker not in self._buffer:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("the socket was closed")
            self._buffer += data
        self._buffer = self._buffer.split(marker, 1)[1]

    def close(self) -> None:
        self.sock.close()
