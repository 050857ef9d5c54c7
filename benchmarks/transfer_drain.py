#!/usr/bin/env python
"""The baseline server of transfer.py's page-write step: a bare Blob endpoint that only drains.

Every request's body is read and thrown away, and the answer is what Put Blob / Put Page answer
(201 with ETag, Last-Modified, x-ms-version, x-ms-request-id), so `azure-storage-blob`'s
`upload_blob(blob_type="PageBlob", max_concurrency=N)` runs against it unmodified. No
authentication, no storage: what is left is the client's own cost, TLS and HTTP on the same
uvicorn + uvloop + httptools as `galley serve`. transfer.py starts it with Galley's certificate:

    python benchmarks/transfer_drain.py --port P --ssl-certfile HOME/tls/server.pem --ssl-keyfile HOME/tls/server.key
"""

from __future__ import annotations

import argparse
from email.utils import formatdate

import uvicorn


async def app(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ssl-certfile", required=True)
    parser.add_argument("--ssl-keyfile", required=True)
    args = parser.parse_args()
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False, loop="auto",
                http="httptools", ssl_certfile=args.ssl_certfile, ssl_keyfile=args.ssl_keyfile)


if __name__ == "__main__":
    main()
