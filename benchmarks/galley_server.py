"""`galley serve` as a child process for the benchmarks: its own GALLEY_HOME, 127.0.0.1 only,
stopped by its own process id (never by name, so other servers on the machine are left alone).

It is started the way it is meant to be run: HTTPS with Galley's own CA ($GALLEY_HOME/tls/ca.pem)
unless a benchmark asks for `--http` (loopback only). Every request but sign-in needs a token, so
once the server answers, this module reads $GALLEY_HOME/credentials.json (written on the home's
first start), gets a token from the server's own token endpoint
(`POST {url}/{tenantId}/oauth2/v2.0/token`, client_credentials) and hands callers an httpx client,
headers and a `verify` setting that carry it.
"""
from __future__ import annotations

import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
# The benchmarks' fixed first subscription (GALLEY_DEFAULT_SUBSCRIPTION_ID), as the tests use.
SUBSCRIPTION = "00000000-0000-0000-0000-000000000000"
# A token is fetched again this long before it expires.
REFRESH_BEFORE_SECONDS = 120


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def credentials(home: Path) -> dict:
    """$GALLEY_HOME/credentials.json: {server, tenantId, subscriptionId, clientId, clientSecret, caBundle}."""
    return json.loads((home / "credentials.json").read_text())


def request_token(client: httpx.Client, url: str, creds: dict, resource: str | None = None) -> dict:
    """POST {url}/{tenant}/oauth2/v2.0/token with the client credentials; the token endpoint's answer.

    `url` is where the request goes (it may be a TestClient's base URL); `resource` is the origin the
    token is for (its audience), by default `url` itself."""
    resource = (resource or url).rstrip("/")
    response = client.post(f"{url.rstrip('/')}/{creds['tenantId']}/oauth2/v2.0/token", data={
        "grant_type": "client_credentials", "client_id": creds["clientId"],
        "client_secret": creds["clientSecret"], "scope": f"{resource}/.default"})
    if response.status_code != 200 or "access_token" not in response.text:
        raise RuntimeError(f"token request at {url} -> {response.status_code}: {response.text[:500]}")
    return response.json()


def inprocess_token(client, home: Path, public_url: str) -> str:
    """A token for an in-process app (Starlette TestClient), for the audience `public_url` (the
    app's settings.public_url): the app accepts its canonical origin whatever host the request names."""
    body = request_token(client, str(client.base_url), credentials(home), resource=public_url)
    return body["access_token"]


def tls_context(cafile: str | Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(cafile))


class BearerAuth(httpx.Auth):
    """Adds the server's token to every request; fetches a new one shortly before it expires, or
    once after a 401 (for bodies that can be sent twice)."""

    def __init__(self, server: "Server") -> None:
        self.server = server

    def auth_flow(self, request: httpx.Request):
        request.headers["Authorization"] = f"Bearer {self.server.token()}"
        response = yield request
        if response.status_code == 401 and isinstance(request.stream, httpx.ByteStream):
            request.headers["Authorization"] = f"Bearer {self.server.token(fresh=True)}"
            yield request


class Server:
    """`galley serve` (API and workers); the environment's GALLEY_* settings are not passed on.

    https (the default): `galley serve --host 127.0.0.1 --port P`, trusted through its own CA.
    http=True: `galley serve ... --http`, for data-plane comparisons where TLS would be part of
    what is compared against a baseline that has none; callers say so in their output."""

    def __init__(self, home: Path, http: bool = False, log_path: Path | None = None,
                 extra_args: tuple[str, ...] = (), extra_env: dict | None = None) -> None:
        self.home = home
        self.http = http
        self.port = free_port()
        self.scheme = "http" if http else "https"
        self.url = f"{self.scheme}://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self.log_path = log_path or home / "server.log"
        self.extra_args = tuple(extra_args)
        self.extra_env = dict(extra_env or {})
        self._token: tuple[str, float] | None = None
        self._token_lock = threading.Lock()
        self._verify: ssl.SSLContext | bool = True

    @property
    def argv(self) -> list[str]:
        return [sys.executable, "-m", "galley.cli.main", "serve", "--host", "127.0.0.1", "--port",
                str(self.port), *(["--http"] if self.http else []), *self.extra_args]

    @property
    def started_with(self) -> str:
        return "python -m galley.cli.main serve --host 127.0.0.1 --port P" + (" --http" if self.http else "") \
            + "".join(f" {a}" for a in self.extra_args)

    @property
    def ca_file(self) -> Path | None:
        """Galley's own CA (None over plain HTTP)."""
        return None if self.http else self.home / "tls" / "ca.pem"

    @property
    def verify(self) -> ssl.SSLContext | bool:
        """What httpx should trust: an SSL context with Galley's CA (True over plain HTTP)."""
        return self._verify

    def env(self) -> dict:
        """The server's environment; also right for `galley` CLI commands against it: GALLEY_HOME
        holds credentials.json, and the CLI's own home (profile, token cache) is kept in the server's
        home so a `galley login` elsewhere on the machine is not used."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("GALLEY_")}
        env["GALLEY_HOME"] = str(self.home)
        env["GALLEY_DEFAULT_SUBSCRIPTION_ID"] = SUBSCRIPTION
        env["GALLEY_CLI_HOME"] = str(self.home / "cli")
        env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
        env.update(self.extra_env)
        return env

    def start(self, timeout: float = 60.0) -> "Server":
        self.home.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as errors:
            self.process = subprocess.Popen(self.argv, cwd=ROOT, env=self.env(), stdin=subprocess.DEVNULL,
                                            stdout=subprocess.DEVNULL, stderr=errors)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"galley serve exited with {self.process.returncode}:\n"
                                   f"{self.log_path.read_text()[-2000:]}")
            if self.http or (self.ca_file is not None and self.ca_file.exists()):
                try:
                    verify = True if self.http else tls_context(self.ca_file)
                    # /openapi.json is one of the few open paths: it answers before any sign-in.
                    if httpx.get(self.url + "/openapi.json", timeout=2, verify=verify).status_code == 200:
                        self._verify = verify
                        self.token(fresh=True)
                        return self
                except (httpx.TransportError, ssl.SSLError, OSError):
                    pass
            time.sleep(0.1)
        self.stop()
        raise TimeoutError(f"galley serve did not answer at {self.url}")

    def credentials(self) -> dict:
        return credentials(self.home)

    def token(self, fresh: bool = False) -> str:
        """A bearer token of the home's administrator (credentials.json) for this server."""
        with self._token_lock:
            if fresh or self._token is None or self._token[1] - REFRESH_BEFORE_SECONDS < time.time():
                with httpx.Client(verify=self._verify, timeout=30) as client:
                    body = request_token(client, self.url, self.credentials())
                self._token = (body["access_token"], time.time() + float(body.get("expires_in", 3600)))
            return self._token[0]

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token()}"}

    def auth(self) -> BearerAuth:
        return BearerAuth(self)

    def client(self, **options) -> httpx.Client:
        """A keep-alive httpx client on this server: its base URL, its CA, a token on every request."""
        return httpx.Client(base_url=self.url, verify=self._verify, auth=self.auth(), **options)

    def curl_args(self) -> list[str]:
        """curl options for this server: the token header and, over HTTPS, the CA."""
        args = ["-H", f"Authorization: Bearer {self.token()}"]
        if not self.http:
            args += ["--cacert", str(self.ca_file)]
        return args

    def rss(self) -> dict:
        """VmRSS and VmHWM of the server process, in MB."""
        assert self.process is not None
        values = {}
        with open(f"/proc/{self.process.pid}/status") as status:
            for line in status:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    key, amount, _unit = line.split()
                    values[key.rstrip(":")] = int(amount) / 1024.0
        return {"rss_mb": values.get("VmRSS", float("nan")), "peak_mb": values.get("VmHWM", float("nan"))}

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
