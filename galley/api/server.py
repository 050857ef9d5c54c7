"""`galley serve`: the API and its worker in one process on the embedded default."""

from __future__ import annotations

import gc
import logging
import os
import sys
import threading
from dataclasses import replace

import uvicorn

from ..config import Settings, load_settings, loopback_alternates
from ..identity.tls import ensure_tls
from ..observability import logs
from .app import create_app
from .http_protocol import with_header_timeout


class _Server(uvicorn.Server):
    """uvicorn's server, calling `on_ready` once its sockets listen and the app has started.

    With `drain_seconds`, a stop signal first makes /readyz answer 503 (so a load balancer takes
    the node out) while requests are still served, and stops the server that much later."""

    def __init__(self, config: uvicorn.Config, on_ready=None, drain_seconds: float = 0.0) -> None:
        super().__init__(config)
        self.on_ready = on_ready
        self.drain_seconds = drain_seconds
        self._draining = False

    def handle_exit(self, sig, frame) -> None:
        health = getattr(getattr(self.config.app, "state", None), "health", None)
        if self.drain_seconds <= 0 or self._draining or health is None:
            super().handle_exit(sig, frame)
            return
        self._draining = True
        health.draining.set()
        logging.getLogger("galley.api").info("draining for %g s before stopping", self.drain_seconds)
        timer = threading.Timer(self.drain_seconds, super().handle_exit, (sig, frame))
        timer.daemon = True
        timer.start()

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets)
        # What start-up made (modules, routes, models) lives as long as the process: out of the
        # cyclic collector's reach, it is not walked again by every full collection that the
        # containers of each request and each piece of a body trigger (py-spy and perf showed
        # about 5% of an upload's CPU in gc_collect_main and its visitors; 0.07% after).
        gc.freeze()
        if self.started and not self.should_exit and self.on_ready is not None:
            self.on_ready()


def make_server(app, settings: Settings, host: str, port: int, ssl_certfile: str | None = None,
                ssl_keyfile: str | None = None, on_ready=None, drain_seconds: float = 0.0) -> uvicorn.Server:
    """The HTTP server for `app`, as `galley serve` and the tests run it: Galley's access log
    instead of uvicorn's, and a deadline for request heads (settings.header_timeout). The event
    loop is uvloop when installed ("auto"): its transports and TLS are Cython, and TLS and socket
    work on the loop is what bounds an HTTPS upload's or download's speed."""
    # log_config=None: uvicorn's own lines go through the root logger's handler (observability/logs.py),
    # so they too are JSON under --log-format json.
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, log_config=None,
                            http=with_header_timeout(settings.header_timeout), loop="auto",
                            ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile)
    return _Server(config, on_ready, drain_seconds)


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def run(host: str = "127.0.0.1", port: int = 8070, worker: bool = True, http: bool = False,
        tls_cert: str | None = None, tls_key: str | None = None, tls_names: tuple[str, ...] = (),
        public_url: str | None = None, access_log: bool = True, roles: frozenset[str] | None = None,
        log_format: str = "text", drain_seconds: float = 0.0) -> None:
    """Serve until stopped: HTTPS with Galley's own CA unless the operator brings a certificate,
    or plain HTTP when asked (loopback only; the CLI checks)."""
    logs.configure(log_format)
    settings = load_settings()
    settings.home.mkdir(parents=True, exist_ok=True)
    scheme = "http" if http else "https"
    ca_bundle = None
    if not http and not tls_cert:
        extra = tuple(n for n in (*tls_names, *([] if host in ("0.0.0.0", "::") else [host.strip("[]")])))
        files = ensure_tls(settings.home, extra)
        tls_cert, tls_key, ca_bundle = str(files.cert), str(files.key), str(files.ca_cert)
    url = public_url or os.environ.get("GALLEY_PUBLIC_URL") or f"{scheme}://{_url_host(host)}:{port}"
    alternates = settings.alternate_urls or tuple(f"{scheme}://{_url_host(name)}:{port}" for name in tls_names)
    settings = replace(settings, public_url=url.rstrip("/"),
                       alternate_urls=alternates + loopback_alternates(f"{scheme}://127.0.0.1:{port}"),
                       ca_bundle=settings.ca_bundle or ca_bundle, access_log=settings.access_log and access_log)
    app = create_app(settings, run_worker=worker, roles=roles, node_url=f"{scheme}://{_url_host(host)}:{port}")
    lines = [f"Galley listening on {settings.public_url}"]
    if ca_bundle:
        lines.append(f"  CA certificate (trust it in clients): {ca_bundle}")
    credentials = settings.home / "credentials.json"
    if credentials.exists():
        written = " (written now, once: it holds the administrator's secret)" if app.state.credentials_written else ""
        lines.append(f"  administrator credentials: {credentials}{written}")
    server = make_server(app, settings, host, port, ssl_certfile=tls_cert if not http else None,
                         ssl_keyfile=tls_key if not http else None,
                         on_ready=lambda: print("\n".join(lines), file=sys.stderr, flush=True),
                         drain_seconds=drain_seconds)
    server.run()
