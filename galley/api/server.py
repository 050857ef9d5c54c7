"""`galley serve`: the API and its worker in one process on the embedded default."""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import replace

import uvicorn

from ..config import load_settings, loopback_alternates
from ..identity.tls import ensure_tls
from .app import create_app


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", "::", ""):
        return "127.0.0.1"
    return f"[{host}]" if ":" in host else host


def run(host: str = "127.0.0.1", port: int = 8070, worker: bool = True, http: bool = False,
        tls_cert: str | None = None, tls_key: str | None = None, tls_names: tuple[str, ...] = (),
        public_url: str | None = None) -> None:
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
                       ca_bundle=settings.ca_bundle or ca_bundle)
    app = create_app(settings, run_worker=worker)
    lines = [f"Galley listening on {settings.public_url}"]
    if ca_bundle:
        lines.append(f"  CA certificate (trust it in clients): {ca_bundle}")
    credentials = settings.home / "credentials.json"
    if credentials.exists():
        written = " (written now, once: it holds the administrator's secret)" if app.state.credentials_written else ""
        lines.append(f"  administrator credentials: {credentials}{written}")
    print("\n".join(lines), file=sys.stderr, flush=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False,
                ssl_certfile=tls_cert if not http else None, ssl_keyfile=tls_key if not http else None)
