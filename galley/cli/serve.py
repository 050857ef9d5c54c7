"""`galley serve`: run the Galley server (API and, by default, the job worker).

`--role api|worker|builder|all` (a comma list, e.g. `--role worker,builder`) splits a multi-node installation:
api nodes serve the ARM API, worker nodes claim jobs (replication, GC, VM operations), builder
nodes run image builds; every node answers /healthz, /readyz and /metrics. `--no-worker` drops the
worker and builder roles, as it always did.

HTTPS by default: on first start a private CA and a server certificate are made under
$GALLEY_HOME/tls/ (or --tls-cert/--tls-key name the operator's own). Plain HTTP needs --http and a
loopback address, since bearer tokens must not cross a network in clear.
"""

import ipaddress
import os
from typing import Annotated, Optional

import typer


def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8070,
    home: Annotated[Optional[str], typer.Option("--home", help="Data folder. Sets GALLEY_HOME.")] = None,
    database_url: Annotated[Optional[str], typer.Option("--database-url", help="SQLAlchemy database URL. Sets GALLEY_DATABASE_URL.")] = None,
    regions: Annotated[Optional[str], typer.Option("--regions", help="Comma-separated regions to serve, e.g. eastus,westus2. Sets GALLEY_REGIONS.")] = None,
    worker: Annotated[bool, typer.Option("--worker/--no-worker", help="Also run the job worker (replication, builds) in this process; --no-worker leaves only the api role.")] = True,
    role: Annotated[Optional[str], typer.Option("--role", help="What this node does: api, worker, builder or all, comma-separated (default all).")] = None,
    log_format: Annotated[str, typer.Option("--log-format", envvar="GALLEY_LOG_FORMAT", help="The server log's lines: text, or json (one object per event, with node name and request ids).")] = "text",
    drain_seconds: Annotated[float, typer.Option("--drain-seconds", envvar="GALLEY_DRAIN_SECONDS", help="On a stop signal, answer /readyz with 503 for this long (still serving) before stopping.")] = 0.0,
    http: Annotated[bool, typer.Option("--http", help="Serve plain HTTP instead of HTTPS (only on a loopback address).")] = False,
    tls_cert: Annotated[Optional[str], typer.Option("--tls-cert", help="PEM certificate (chain) to serve instead of Galley's own.")] = None,
    tls_key: Annotated[Optional[str], typer.Option("--tls-key", help="PEM private key of --tls-cert.")] = None,
    tls_san: Annotated[Optional[list[str]], typer.Option("--tls-san", help="Another DNS name or IP address for Galley's own certificate (repeatable).")] = None,
    public_url: Annotated[Optional[str], typer.Option("--public-url", help="The URL clients use, e.g. behind a load balancer. Sets GALLEY_PUBLIC_URL.")] = None,
    trust_issuer: Annotated[Optional[list[str]], typer.Option("--trust-issuer", help="An external OIDC issuer whose tokens are accepted too (repeatable). Adds to GALLEY_OIDC_ISSUERS.")] = None,
    access_log: Annotated[bool, typer.Option("--access-log/--no-access-log", help="Log one line per request (method, path, status, duration, request id). Off also with GALLEY_ACCESS_LOG=0.")] = True,
):
    """Run the Galley server."""
    if http and not _is_loopback(host):
        raise typer.BadParameter(f"plain HTTP is served only on a loopback address, not {host!r}; "
                                 "drop --http to serve HTTPS", param_hint="--http")
    if bool(tls_cert) != bool(tls_key):
        raise typer.BadParameter("give --tls-cert and --tls-key together", param_hint="--tls-cert")
    roles = node_roles(role, worker)
    if log_format not in ("text", "json"):
        raise typer.BadParameter(f"{log_format!r} is not a log format: use text or json", param_hint="--log-format")
    for name, value in server_environment(home, database_url, regions).items():
        os.environ[name] = value
    if trust_issuer:
        known = [i for i in os.environ.get("GALLEY_OIDC_ISSUERS", "").split(",") if i.strip()]
        os.environ["GALLEY_OIDC_ISSUERS"] = ",".join(known + list(trust_issuer))
    from galley.api.server import run  # imported late: the client must not need the server's dependencies

    run(host=host, port=port, worker=worker, http=http, tls_cert=tls_cert, tls_key=tls_key,
        tls_names=tuple(tls_san or ()), public_url=public_url, access_log=access_log, roles=roles,
        log_format=log_format, drain_seconds=drain_seconds)


def node_roles(role: Optional[str], worker: bool) -> frozenset[str]:
    from galley.observability.nodes import API, parse_roles

    try:
        roles = parse_roles([role] if role else None)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint="--role") from None
    roles = roles if worker else roles & {API}
    if not roles:
        raise typer.BadParameter("--no-worker leaves this node no role: add --role api", param_hint="--role")
    return roles


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def server_environment(home: Optional[str], database_url: Optional[str], regions: Optional[str]) -> dict:
    """The environment variables `serve` sets for the options that were given."""
    env = {}
    if home:
        env["GALLEY_HOME"] = home
    if database_url:
        env["GALLEY_DATABASE_URL"] = database_url
    if regions:
        env["GALLEY_REGIONS"] = ",".join(r.strip() for r in regions.split(",") if r.strip())
    return env
