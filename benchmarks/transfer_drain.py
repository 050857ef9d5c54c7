#!/usr/bin/env python
"""The baseline server of transfer.py's bare steps: an endpoint that only drains, or only sends.

A PUT's body is read and thrown away (curl -T, or azure-storage-blob's Put Page): every request's body is read and thrown away, and the answer is what Put Blob / Put Page answer
(201 with ETag, Last-Modified, x-ms-version, x-ms-request-id), so `azure-storage-blob`'s
`upload_blob(blob_type="PageBlob", max_concurrency=N)` runs against it unmodified. No
authentication, no storage: what is left is the client's own cost, TLS and HTTP on the same
uvicorn + uvloop + httptools, with Galley's own HTTP protocol class, as `galley serve`. A GET
`?size=N` answers N bytes (one random MiB, over and over) without reading anything: the most a
download can do on this stack. transfer.py starts it with Galley's certificate:

    python benchmarks/transfer_drain.py --port P --ssl-certfile HOME/tls/server.pem --ssl-keyfile HOME/tls/server.key
"""

from __future__ import annotations

import argparse
import os
import sys
from email.utils import formatdate
from pathlib import Path
from urllib.parse import parse_qs

import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from galley.api.http_protocol import with_header_timeout  # noqa: E402

SEND_PIECE = 1024 * 1024
_PIECE = os.urandom(SEND_PIECE)


async def app(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["method"] == "GET":
        await send_bytes(scope, send)
        return
    drained = 0
    while True:
        message = await receive()
        drained += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    headers = [(b"etag", b'"0x8DC0000000000001"'), (b"last-modified", formatdate(usegmt=True).encode()),
               (b"x-ms-version", b"2025-01-05"), (b"x-ms-request-id", b"00000000-0000-0000-0000-000000000000"),
               (b"x-ms-request-server-encrypted", b"true"), (b"x-ms-blob-sequence-number", b"0"),
               (b"x-galley-drained", str(drained).encode()), (b"content-length", b"0")]
    await send({"type": "http.response.start", "status": 201, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


async def send_bytes(scope, send) -> None:
    size = int(parse_qs(scope["query_string"].decode()).get("size", ["0"])[-1])
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/octet-stream"), (b"content-length", str(size).encode())]})
    while True:
        piece = _PIECE if size >= SEND_PIECE else _PIECE[:size]
        size -= len(piece)
        await send({"type": "http.response.body", "body": piece, "more_body": size > 0})
        if size <= 0:
            return


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ssl-certfile", required=True)
    parser.add_argument("--ssl-keyfile", required=True)
    args = parser.parse_args()
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False, loop="auto",
                http=with_header_timeout(30.0), ssl_certfile=args.ssl_certfile, ssl_keyfile=args.ssl_keyfile)


if __name__ == "__main__":
    main()
