"""`galley status`: the installation's nodes (the processes sharing its database), their roles,
how long ago each beat, the operations each node's workers hold and the uploads each receives.

Read from GET /providers/Galley.Operations/nodes (Galley.Operations/nodes/read at '/')."""

from typing import Any

from galley.cli.common import Session
from galley.cli.output import build_table, make_console

NODES_PATH = "/providers/Galley.Operations/nodes"


def _props(key: str):
    return lambda row: (row.get("properties") or {}).get(key)


NODE_COLUMNS = (
    ("Node", _props("nodeName")),
    ("Roles", lambda row: ",".join(_props("roles")(row) or [])),
    ("State", _props("state")),
    ("HeartbeatAge", lambda row: f"{_props('heartbeatAgeSeconds')(row)} s"),
    ("Started", _props("startedAt")),
    ("Url", _props("url")),
    ("Work", lambda row: len(_props("work")(row) or []) + len(_props("uploads")(row) or [])),
)
WORK_COLUMNS = (
    ("Node", lambda row: row["node"]),
    ("Kind", lambda row: row["kind"]),
    ("Resource", lambda row: row["resourceId"]),
    ("Since", lambda row: row.get("since", "")),
    ("LeaseUntil", lambda row: row.get("until", "")),
)


def status(session: Session) -> Any:
    """Show the nodes of the installation: roles, state (Running, Lost: no heartbeat lately, or
    Stopped), heartbeat age, the operations each holds (kind, resource, since) and the uploads
    each receives (resource, lease until)."""
    nodes = (session.client.get(NODES_PATH, None) or {}).get("value") or []
    if session.output != "table" or session.query:
        return nodes
    console = make_console()
    console.print("Nodes", markup=False, highlight=False)
    console.print(build_table(nodes, NODE_COLUMNS))
    work = [{"node": _props("nodeName")(node), **item} for node in nodes
            for item in (_props("work")(node) or []) + (_props("uploads")(node) or [])]
    if work:
        console.print()
        console.print("Work held", markup=False, highlight=False)
        console.print(build_table(work, WORK_COLUMNS))
    return None
