"""The rows Azure Resource Graph answers from: its tables, their columns, and a resource's row.

As in ARG, `type` is lower-cased ('microsoft.compute/galleries') and so is `resourceGroup`;
`kind` and `managedBy` are '' when a resource has none; sku, plan, identity, zones and
extendedLocation are null then. `Resources` holds resources; `ResourceContainers` holds
subscriptions and resource groups.
"""

from __future__ import annotations

from . import syntax as s
from .errors import QueryError

COLUMNS = ["id", "name", "type", "tenantId", "kind", "location", "resourceGroup", "subscriptionId", "managedBy",
           "sku", "plan", "properties", "tags", "identity", "zones", "extendedLocation"]
OBJECT_COLUMNS = {"sku", "plan", "properties", "tags", "identity", "zones", "extendedLocation"}
RESOURCES, CONTAINERS = "resources", "resourcecontainers"
TABLES = {RESOURCES: "Resources", CONTAINERS: "ResourceContainers"}
SUBSCRIPTION_TYPE = "microsoft.resources/subscriptions"
RESOURCE_GROUP_TYPE = "microsoft.resources/subscriptions/resourcegroups"


def table_of(query: s.Query) -> str:
    """The query's table, lower-cased: ARG reads `Resources` and `resources` alike."""
    table = query.table.lower()
    if table not in TABLES:
        raise QueryError(f"there is no table '{query.table}'; Galley answers {' and '.join(TABLES.values())}",
                         query.text, query.table_position, query.table)
    return table


def resource_row(arm: dict, subscription_id: str, tenant_id: str) -> dict:
    """A resource's row, from its ARM JSON (as a GET answers it)."""
    return {"id": arm["id"], "name": arm["name"], "type": arm["type"].lower(), "tenantId": tenant_id,
            "kind": arm.get("kind") or "", "location": arm.get("location") or "",
            "resourceGroup": _group_of(arm["id"]).lower(), "subscriptionId": subscription_id,
            "managedBy": arm.get("managedBy") or "", "sku": arm.get("sku"), "plan": arm.get("plan"),
            "properties": arm.get("properties") or {}, "tags": arm.get("tags") or {},
            "identity": arm.get("identity"), "zones": arm.get("zones"),
            "extendedLocation": arm.get("extendedLocation")}


def resource_group_row(group_id: str, name: str, location: str | None, tags: dict, provisioning_state: str,
                       subscription_id: str, tenant_id: str) -> dict:
    return {**resource_row({"id": group_id, "name": name, "type": RESOURCE_GROUP_TYPE, "location": location,
                            "tags": tags, "properties": {"provisioningState": provisioning_state}},
                           subscription_id, tenant_id), "resourceGroup": name.lower()}


def subscription_row(subscription_arm: dict) -> dict:
    """From a subscription as `GET /subscriptions` shows it."""
    sub = subscription_arm
    return resource_row({"id": sub["id"], "name": sub["displayName"], "type": SUBSCRIPTION_TYPE,
                         "properties": {"state": sub["state"],
                                        "subscriptionPolicies": sub.get("subscriptionPolicies") or {}}},
                        sub["subscriptionId"], sub["tenantId"])


def column_type(name: str, values: list) -> str:
    """A column's type for the table result format: ARG's string, integer, number, boolean, object."""
    if name in OBJECT_COLUMNS:
        return "object"
    sample = next((v for v in values if v is not None), None)
    if isinstance(sample, bool):
        return "boolean"
    if isinstance(sample, int):
        return "integer"
    if isinstance(sample, float):
        return "number"
    if isinstance(sample, (dict, list)):
        return "object"
    return "string"


def _group_of(resource_id: str) -> str:
    parts = resource_id.split("/")
    return parts[4] if len(parts) > 4 and parts[3].lower() == "resourcegroups" else ""
