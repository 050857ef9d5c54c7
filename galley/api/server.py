"""`galley serve`: the API and its worker in one process on the embedded default."""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import replace

import uvicorn

from ..config import Settings, load_settings, loopback_alternates
from ..identity.tls import ensure_tls
from .app import create_app
from .http_protocol import with_header_timeout


class _Server(uvicorn.Server):
    """uvicorn's server, calling `on_ready` once its sockets listen and the app has started."""

    def __init__(self, config: uvicorn.Config, on_ready=None) -> None:
        super().__init__(config)
        self.on_ready = on_ready

    async def startup(self, sockets=None) -> None:
        await super().startup(sockets)
        if self.started and not self.should_exit and self.on_ready is not None:
            self.on_ready()


def make_server(app, settings: Settings, host: str, port: int, ssl_certfile: str | None = None,
                ssl_keyfile: str | None = None, on_ready=None) -> uvicorn.Server:
    """The HTTP server for `app`, as `galley serve` and the tests run it: Galley's access log
    instead of uvicorn's, and a deadline for request heads (settings.header_timeout). The event
    loop is uvloop when installed ("auto"): its transports and TLS are Cython, and TLS and socket
    work on the loop is what bounds an HTTPS upload's or download's speed."""
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                            http=with_header_timeout(settings.header_timeout), loop="auto",
                            ssl_certfile=ssl_certfile, ssl_keyfile=ssl_keyfile)
    return _Server(config, on_ready)


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def run(host: str = "127.0.0.1", port: int = 8070, worker: bool = True, http: bool = False,
        tls_cert: str | None = None, tls_key: str | None = None, tls_names: tuple[str, ...] = (),
        public_url: str | None = None, access_log: bool = True) -> None:
    """Serve until stopped: HTTPS with Galley's own CA unless the operator brings a certificate,
    or plain HTTP when asked (loopback only; the CLI checks)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
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
    app = create_app(settings, run_worker=worker)
    lines = [f"Galley listening on {settings.public_url}"]
    if ca_bundle:
        lines.append(f"  CA certificate (trust it in clients): {ca_bundle}")
    credentials = settings.home / "credentials.json"
    if credentials.exists():
        written = " (written now, once: it holds the administrator's secret)" if app.state.credentials_written else ""
        lines.append(f"  administrator credentials: {credentials}{written}")
    server = make_server(app, settings, host, port, ssl_certfile=tls_cert if not http else None,
                         ssl_keyfile=tls_key if not http else None,
                         on_ready=lambda: print("\n".join(lines), file=sys.stderr, flush=True))
    server.run()
