"""`galley graph query`: Azure Resource Graph queries over every resource you may read, across
your subscriptions, shaped like `az graph query` (same options, same JSON)."""

from typing import Annotated, Optional

import typer

from galley.cli.common import Session, arm_command, given
from galley.cli.output import emit

app = typer.Typer(help="Query the resources you may read, across subscriptions (Azure Resource Graph).",
                  no_args_is_help=True)

API = "2021-03-01"
PATH = "/providers/Microsoft.ResourceGraph/resources"


@arm_command(app, "query")
def query(
    session: Session,
    *,
    graph_query: Annotated[str, typer.Option("--graph-query", "-q", help="The query, e.g. \"Resources | where type =~ 'Microsoft.Compute/galleries' | project name, id, resourceGroup\".")],
    subscriptions: Annotated[Optional[list[str]], typer.Option("--subscriptions", help="Only these subscriptions (default: every one you hold a role in).")] = None,
    first: Annotated[Optional[int], typer.Option("--first", min=1, max=1000, help="At most this many rows (1-1000; the server's default is 100).")] = None,
    skip: Annotated[Optional[int], typer.Option("--skip", min=0, help="Leave out the first N rows.")] = None,
    skip_token: Annotated[Optional[str], typer.Option("--skip-token", help="The skip_token of the previous answer: its next page.")] = None,
):
    """Run a Resource Graph query: Resources or ResourceContainers, then where, project, extend,
    order by, top, limit, count, distinct and summarize count() by."""
    table = session.output == "table" and not session.query  # a query picks from the JSON answer
    options = given(**{"$top": first, "$skip": skip, "$skipToken": skip_token})
    options["resultFormat"] = "table" if table else "objectArray"
    body = {"query": graph_query, "options": options, **given(subscriptions=subscriptions or None)}
    answer = session.client.send("POST", PATH, API, body=body).json()
    if table:  # the server names the columns, even when there is no row
        names = [column["name"] for column in answer["data"]["columns"]]
        rows = [dict(zip(names, row)) for row in answer["data"]["rows"]]
        emit(rows, "table", [(name, lambda row, name=name: row.get(name)) for name in names])
        return None
    return {"count": answer["count"], "data": answer["data"], "skip_token": answer.get("$skipToken"),
            "total_records": answer["totalRecords"]}
