"""The baseline for the throughput comparison: a bare FastAPI app with one async route.

Run as `python benchmarks/bare_app.py --port P`; it is served exactly the way `galley serve`
serves Galley (uvicorn.run in one process, log_level="warning", access_log=False). With
`--ssl-certfile` and `--ssl-keyfile` (Galley's own $GALLEY_HOME/tls/server.pem and server.key)
it serves HTTPS with the same certificate, as `galley serve` does by default.
"""

from __future__ import annotations

import argparse

import uvicorn
from fastapi import FastAPI

app = FastAPI(title="bare")


@app.get("/ping")
async def ping() -> dict:
    return {"status": "ok", "service": "bare"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--ssl-certfile", default=None, help="PEM certificate: serve HTTPS")
    parser.add_argument("--ssl-keyfile", default=None, help="PEM private key of --ssl-certfile")
    args = parser.parse_args()
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False,
                ssl_certfile=args.ssl_certfile, ssl_keyfile=args.ssl_keyfile)


if __name__ == "__main__":
    main()
