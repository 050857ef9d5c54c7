"""`galley serve`: the API and its worker in one process on the embedded default."""

from __future__ import annotations

import logging

import uvicorn

from .app import create_app


def run(host: str = "127.0.0.1", port: int = 8070, worker: bool = True) -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    app = create_app(run_worker=worker)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
