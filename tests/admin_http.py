"""httpx, signed in as the administrator of whichever test server a URL names.

Test servers register their administrator's token here when they start (servers.py), by origin;
requests to that origin then carry it unless they set their own Authorization header. Tests that
check what an anonymous or foreign caller gets use plain `httpx` instead.
"""

from __future__ import annotations

import os
import ssl
from contextlib import contextmanager
from functools import lru_cache, partial

import certifi
import httpx as _httpx
from httpx import *  # noqa: F401,F403 - Response, TransportError, ... as httpx has them

TOKENS: dict[str, str] = {}


def default_verify() -> ssl.SSLContext:
    """What httpx's verify=True builds (SSL_CERT_FILE, SSL_CERT_DIR or certifi's bundle), built
    once per setting: each httpx.get/put/... makes a client, and each client would otherwise load
    a CA bundle anew, which takes longer than a request to a loopback server."""
    return _context_for(os.environ.get("SSL_CERT_FILE") or None,
                        None if os.environ.get("SSL_CERT_FILE") else os.environ.get("SSL_CERT_DIR") or None)


@lru_cache(maxsize=8)
def _context_for(cafile: str | None, capath: str | None) -> ssl.SSLContext:
    if cafile or capath:
        return ssl.create_default_context(cafile=cafile, capath=capath)
    return ssl.create_default_context(cafile=certifi.where())


def origin_of(url: str | _httpx.URL) -> str:
    url = _httpx.URL(str(url))
    return f"{url.scheme}://{url.host}:{url.port}"


def register(url: str, token: str) -> None:
    port = _httpx.URL(url).port
    scheme = _httpx.URL(url).scheme
    for host in ("127.0.0.1", "localhost"):
        TOKENS[f"{scheme}://{host}:{port}"] = token


def token_for(url: str) -> str:
    return TOKENS[origin_of(url)]


class AdminAuth(_httpx.Auth):
    def auth_flow(self, request: _httpx.Request):
        token = TOKENS.get(origin_of(request.url))
        if token and "authorization" not in request.headers:
            request.headers["Authorization"] = f"Bearer {token}"
        yield request


ADMIN = AdminAuth()


def request(method: str, url, **kwargs) -> _httpx.Response:
    kwargs.setdefault("auth", ADMIN)
    kwargs.setdefault("verify", default_verify())
    return _httpx.request(method, url, **kwargs)


get = partial(request, "GET")
put = partial(request, "PUT")
post = partial(request, "POST")
patch = partial(request, "PATCH")
delete = partial(request, "DELETE")
head = partial(request, "HEAD")


@contextmanager
def stream(method: str, url, **kwargs):
    kwargs.setdefault("auth", ADMIN)
    kwargs.setdefault("verify", default_verify())
    with _httpx.stream(method, url, **kwargs) as response:
        yield response


class Client(_httpx.Client):
    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("auth", ADMIN)
        kwargs.setdefault("verify", default_verify())
        super().__init__(*args, **kwargs)
