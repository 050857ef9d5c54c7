"""`galley serve`: the API and its worker in one process on the embedded default."""

from __future__ import annotations

import logging
import os

import uvicorn

from .app import create_app


def run(host: str = "127.0.0.1", port: int = 8070, worker: bool = True) -> None:
    """Serve until stopped. GALLEY_TLS_CERT / GALLEY_TLS_KEY (PEM files) switch on HTTPS, which
    the az CLI requires of a management endpoint."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    app = create_app(run_worker=worker)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False,
                ssl_certfile=os.environ.get("GALLEY_TLS_CERT") or None,
                ssl_keyfile=os.environ.get("GALLEY_TLS_KEY") or None)
