"""The server's log: text lines for a person, or JSON lines for a log pipeline
(`galley serve --log-format json`, GALLEY_LOG_FORMAT=json).

Each JSON line is one event: time (UTC, ISO 8601), level, logger, message, node (GALLEY_NODE_NAME,
the host's name by default), and, for events of a request, its request and correlation ids;
an exception's traceback goes in `exception`. Messages are what Galley's code logs: the access
log redacts secret query values and no code logs a token, a secret or a signature (the tests
check the access log's lines for bearer tokens and SAS signatures).
"""

from __future__ import annotations

import logging
import os
import socket
from datetime import datetime, timezone

import orjson

from ..api import request_ids

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(name)s %(levelname)s %(message)s"


def node_name() -> str:
    return os.environ.get("GALLEY_NODE_NAME", "").strip() or socket.gethostname()


class JsonFormatter(logging.Formatter):
    def __init__(self, node: str) -> None:
        super().__init__()
        self.node = node

    def format(self, record: logging.LogRecord) -> str:
        event = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "node": self.node,
        }
        ids = request_ids.current()
        if ids is not None:
            event["requestId"] = ids.request_id
            event["correlationId"] = ids.correlation_id
        if record.exc_info:
            event["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(event).decode()


def configure(log_format: str = "text") -> None:
    """The root logger's one handler (stderr) at INFO, in `log_format`."""
    if log_format not in FORMATS:
        raise ValueError(f"unknown log format {log_format!r}: use one of {', '.join(FORMATS)}")
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter(node_name()) if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
