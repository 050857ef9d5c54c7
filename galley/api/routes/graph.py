"""Azure Resource Graph: `POST /providers/Microsoft.ResourceGraph/resources` answers a query
(galley/graph) over the resources the caller may read, in every subscription where it holds a
role, or in those of them the request lists. `az graph query` and `galley graph query` call it.

The route → action table lets any signed-in caller in (SIGNED_IN); the rows are filtered here,
each by the same evaluation a GET of it goes through: `{type}/read` at its id. So a principal
with Reader on one gallery finds that gallery and what is in it, and nothing else.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import orjson
from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from ... import graph
from ...deployments.template import DEPLOYMENT_TYPE
from ...domain import access as access_rules
from ...domain.errors import InvalidParameter
from ...domain.ids import RESOURCE_GROUP_TYPE
from ...graph import rows as graph_rows
from ..api_versions import graph_api
from ..wire import json_body, json_response, render

router = APIRouter(tags=["ResourceGraph"])
GRAPH = "/providers/microsoft.resourcegraph/resources"
DEFAULT_TOP, MAX_TOP = 100, 1000
MAX_SUBSCRIPTIONS = 1000
GROUP_READ = "Microsoft.Resources/subscriptions/resourceGroups/read"
SUBSCRIPTION_READ = "Microsoft.Resources/subscriptions/read"


@dataclass(frozen=True)
class GraphRequest:
    query: str
    subscriptions: set[str] | None  # lower-case; None: all of the caller's
    top: int
    skip: int
    table_format: bool


@router.post(GRAPH, operation_id="Resources")
def resources(request: Request, api_version: str = Depends(graph_api), body: dict = Depends(json_body)) -> Response:
    wanted = _graph_request(body)
    query = graph.parse(wanted.query)  # a bad query is refused before anything is read
    table = graph.table_of(query)
    result = graph.run(query, graph.COLUMNS, _readable_rows(request, table, wanted.subscriptions))
    return json_response(_answer(result, wanted))


def _readable_rows(request: Request, table: str, wanted: set[str] | None) -> list[dict]:
    state, caller = request.app.state, request.state.caller
    grants = state.access.grants(caller.object_id)
    subscriptions = {s.id: s for s in state.authority.list_subscriptions(caller)
                     if wanted is None or s.id in wanted}
    containers = table == graph_rows.CONTAINERS
    rows = []
    if containers:
        rows = [graph_rows.subscription_row(s.to_arm()) for s in subscriptions.values()
                if access_rules.allowed(grants, SUBSCRIPTION_READ, f"/subscriptions/{s.id}")]
    # A read allowed at a subscription reaches everything in it: only the rest is checked one by one.
    everywhere: dict[tuple[str, str], bool] = {}

    def readable(action: str, subscription_id: str, resource_id: str) -> bool:
        key = (subscription_id, action)
        if key not in everywhere:
            everywhere[key] = access_rules.allowed(grants, action, f"/subscriptions/{subscription_id}")
        return everywhere[key] or access_rules.allowed(grants, action, resource_id)

    for resource in state.service.in_subscriptions(list(subscriptions)):
        if resource.type == DEPLOYMENT_TYPE:  # as Azure's: deployments are no rows of the resources table
            continue
        is_group = resource.type == RESOURCE_GROUP_TYPE
        if is_group != containers:
            continue
        if not readable(GROUP_READ if is_group else f"{resource.type}/read", resource.subscription_id, resource.id):
            continue
        tenant_id = subscriptions[resource.subscription_id].tenant_id
        if is_group:
            rows.append(graph_rows.resource_group_row(
                resource.id, resource.name, resource.location, resource.tags, resource.provisioning_state,
                resource.subscription_id, tenant_id))
        else:
            rows.append(graph_rows.resource_row(render(resource), resource.subscription_id, tenant_id))
    return rows


def _answer(result: graph.Result, wanted: GraphRequest) -> dict:
    total = len(result.rows)
    page = result.rows[wanted.skip:wanted.skip + wanted.top]
    body: dict = {"totalRecords": total, "count": len(page), "resultTruncated": "false"}
    if wanted.skip + wanted.top < total:
        body["$skipToken"] = _skip_token(wanted.skip + wanted.top)
    if wanted.table_format:
        body["data"] = {
            "columns": [{"name": c, "type": graph_rows.column_type(c, [row[c] for row in page])}
                        for c in result.columns],
            "rows": [[row[c] for c in result.columns] for row in page]}
    else:
        body["data"] = page
    body["facets"] = []
    return body


# ---- the request --------------------------------------------------------------------------------

def _graph_request(body: dict) -> GraphRequest:
    query = body.get("query")
    if not isinstance(query, str) or not query.strip():
        raise InvalidParameter("The request needs 'query': a Resource Graph query such as "
                               "\"Resources | project name, type\".", target="query")
    if body.get("managementGroups"):
        raise InvalidParameter("Galley has no management groups: give 'subscriptions', or leave them out to "
                               "query every subscription you hold a role in.", target="managementGroups")
    subscriptions = body.get("subscriptions")
    if subscriptions is not None:
        if (not isinstance(subscriptions, list) or len(subscriptions) > MAX_SUBSCRIPTIONS
                or not all(isinstance(s, str) for s in subscriptions)):
            raise InvalidParameter(f"'subscriptions' must be a list of at most {MAX_SUBSCRIPTIONS} subscription "
                                   "ids.", target="subscriptions")
        subscriptions = {s.strip().lower() for s in subscriptions}
    options = body.get("options") or {}
    if not isinstance(options, dict):
        raise InvalidParameter("'options' must be an object.", target="options")
    top = _whole(options, "$top", DEFAULT_TOP, 1, MAX_TOP)
    skip = _whole(options, "$skip", 0, 0, None)
    if options.get("$skipToken"):
        skip = _skip_of(options["$skipToken"])
    result_format = options.get("resultFormat") or "objectArray"
    if not isinstance(result_format, str) or result_format.lower() not in ("objectarray", "table"):
        raise InvalidParameter("options.resultFormat must be objectArray or table.", target="options.resultFormat")
    return GraphRequest(query, subscriptions, top, skip, result_format.lower() == "table")


def _whole(options: dict, name: str, default: int, least: int, most: int | None) -> int:
    value = options.get(name)
    if value is None:
        return default
    if not isinstance(value, int) or isinstance(value, bool) or value < least or (most is not None and value > most):
        span = f"{least} to {most}" if most is not None else f"{least} or more"
        raise InvalidParameter(f"options.{name} must be a whole number, {span}.", target=f"options.{name}")
    return value


def _skip_token(skip: int) -> str:
    return base64.urlsafe_b64encode(orjson.dumps({"skip": skip})).decode().rstrip("=")


def _skip_of(token: object) -> int:
    try:
        skip = orjson.loads(base64.urlsafe_b64decode(str(token) + "=" * (-len(str(token)) % 4)))["skip"]
        if isinstance(skip, int) and not isinstance(skip, bool) and skip >= 0:
            return skip
    except (ValueError, TypeError, KeyError):
        pass
    raise InvalidParameter("options.$skipToken is not one this server gave out.", target="options.$skipToken")
