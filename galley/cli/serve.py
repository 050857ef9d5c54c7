"""`galley serve`: run the Galley server (API and, by default, the job worker)."""

import os
from typing import Annotated, Optional

import typer


def serve(
    host: Annotated[str, typer.Option("--host", help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on.")] = 8070,
    home: Annotated[Optional[str], typer.Option("--home", help="Data folder. Sets GALLEY_HOME.")] = None,
    database_url: Annotated[Optional[str], typer.Option("--database-url", help="SQLAlchemy database URL. Sets GALLEY_DATABASE_URL.")] = None,
    regions: Annotated[Optional[str], typer.Option("--regions", help="Comma-separated regions to serve, e.g. eastus,westus2. Sets GALLEY_REGIONS.")] = None,
    worker: Annotated[bool, typer.Option("--worker/--no-worker", help="Also run the job worker (replication, builds) in this process.")] = True,
):
    """Run the Galley server."""
    for name, value in server_environment(home, database_url, regions).items():
        os.environ[name] = value
    from galley.api.server import run  # imported late: the client must not need the server's dependencies

    run(host=host, port=port, worker=worker)


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
