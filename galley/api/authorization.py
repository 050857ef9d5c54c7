"""The route → action table: what each request asks to do (an ARM action) and over which scope.

ARM paths are regular, so one parser covers every route: `/subscriptions/{s}/resourceGroups/{g}
/providers/{Namespace}/{type}/{name}/{type}/{name}…` is an item (read/write/delete by method),
a trailing collection word a list (read at the parent, answered filtered when the caller reads
only some items), a trailing action word an action on the item (`…/run/action`, `…/download/action`).
A path the parser cannot place gets no rule, and a request without a rule is refused: the route
walk in the tests fails on any registered route without one.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from starlette.routing import Match

from ..domain import access as access_rules
from ..domain import ids
from ..domain.errors import ArmError
from ..domain.names import check_subscription_id

# Collections under a provider (lower-case, as CanonicalPathMiddleware leaves them) with Azure's
# spelling for the actions they make.
COLLECTIONS = {
    "galleries": "galleries", "images": "images", "versions": "versions", "disks": "disks",
    "snapshots": "snapshots", "storageaccounts": "storageAccounts", "imagetemplates": "imageTemplates",
    "runoutputs": "runOutputs", "locations": "locations", "operations": "operations",
    "operationresults": "operationResults", "publishers": "publishers", "artifacttypes": "artifacttypes",
    "offers": "offers", "skus": "skus", "sharedgalleries": "sharedGalleries",
    "communitygalleries": "communityGalleries", "useridentities": "userAssignedIdentities",
    "userassignedidentities": "userAssignedIdentities", "eventtypes": "eventtypes", "values": "values",
    "virtualnetworks": "virtualNetworks", "subnets": "subnets", "networksecuritygroups": "networkSecurityGroups",
    "publicipaddresses": "publicIPAddresses", "networkinterfaces": "networkInterfaces",
    "deployments": "deployments", "operationstatuses": "operationStatuses",
    "virtualmachines": "virtualMachines", "vmsizes": "vmSizes", "usages": "usages",
}
# Words after an item that name an action on it: (Azure's spelling, read or action).
ITEM_ACTIONS = {
    "upload": ("upload", "action"), "download": ("download", "action"), "run": ("run", "action"),
    "cancel": ("cancel", "action"), "retryreplication": ("retryReplication", "action"),
    "begingetaccess": ("beginGetAccess", "action"), "endgetaccess": ("endGetAccess", "action"),
    "share": ("share", "action"), "logs": ("logs", "read"), "latestversion": ("latestVersion", "read"),
    "listkeys": ("listkeys", "action"), "regeneratekey": ("regeneratekey", "action"),
    "validate": ("validate", "action"), "whatif": ("whatIf", "action"),
    "start": ("start", "action"), "poweroff": ("powerOff", "action"), "restart": ("restart", "action"),
    "deallocate": ("deallocate", "action"), "generalize": ("generalize", "action"),
    "runcommand": ("runCommand", "action"), "instanceview": ("instanceView", "read"),
    "retrievebootdiagnosticsdata": ("retrieveBootDiagnosticsData", "action"),
}
# Subscription-wide reports: read at the subscription.
SUBSCRIPTION_REPORTS = {"galleyusage": "Microsoft.Compute/galleyUsage/read"}
NAMESPACES = {"microsoft.compute": "Microsoft.Compute", "microsoft.storage": "Microsoft.Storage",
              "microsoft.virtualmachineimages": "Microsoft.VirtualMachineImages",
              "microsoft.authorization": "Microsoft.Authorization",
              "microsoft.managedidentity": "Microsoft.ManagedIdentity", "microsoft.insights": "Microsoft.Insights",
              "microsoft.resourcegraph": "Microsoft.ResourceGraph", "microsoft.resources": "Microsoft.Resources",
              "microsoft.network": "Microsoft.Network"}
VERBS = {"GET": "read", "HEAD": "read", "PUT": "write", "PATCH": "write", "DELETE": "delete"}

# Rule kinds
ITEM = "item"              # `action` over `scope`
LIST = "list"              # read over `scope`, answered filtered to what the caller may read
OPERATION = "operation"    # read on the resource the operation is about
MEMBER = "member"          # any role in the subscription (its locations, the subscription itself)
SIGNED_IN = "signed-in"    # any signed-in principal; the handler answers from the caller's tenant
ADMIN = "admin"            # the installation's administrators (home tenant)
BLOB = "blob"              # `action` over the storage account the path names (found by its name)
OPERATIONS = "operations"  # the installation's own figures (metrics, nodes): administrators, or
                           # a role granting `action` at the root scope '/' (e.g. Reader there)
OPERATIONS_READS = {"metrics": "Galley.Operations/metrics/read",
                    "providers/galley.operations/nodes": "Galley.Operations/nodes/read"}


@dataclass(frozen=True)
class Rule:
    kind: str
    action: str | None = None
    scope: str = "/"
    subscription: str | None = None


def display_scope(path: str) -> str:
    """A scope with ARM's spelling of its fixed words (paths arrive with them lower-cased)."""
    parts = [p for p in path.split("/") if p]
    out, expect_name = [], False
    for i, part in enumerate(parts):
        lowered = part.lower()
        if expect_name:
            out.append(part)
            expect_name = False
        elif lowered == "subscriptions" or lowered == "providers":
            out.append(lowered)
            expect_name = lowered == "subscriptions"
        elif lowered == "resourcegroups":
            out.append("resourceGroups")
            expect_name = True
        elif i > 0 and parts[i - 1].lower() == "providers":
            out.append(NAMESPACES.get(lowered, part))
        else:
            out.append(COLLECTIONS.get(lowered, part))
            expect_name = True
    return "/" + "/".join(out)


def rule_for(method: str, path: str) -> Rule | None:
    parts = [p for p in path.split("/") if p]
    if not parts:
        return None
    lowered = [p.lower() for p in parts]
    for i in range(len(parts) - 1):  # role assignments and definitions at any scope
        if lowered[i] == "providers" and lowered[i + 1] == "microsoft.authorization":
            return _authorization_rule(method, parts[i:], display_scope("/".join(parts[:i])))
    first = lowered[0]
    if first == "subscriptions":
        return _subscription_rule(method, parts)
    if first == "blob" and len(parts) >= 3:
        verb = {"GET": "read", "HEAD": "read", "PUT": "write", "DELETE": "delete"}.get(method)
        if verb is None:
            return None
        return Rule(BLOB, f"Microsoft.Storage/storageAccounts/blobServices/containers/blobs/{verb}", parts[1])
    if first == "galley":
        return Rule(ADMIN)
    if "/".join(lowered) in OPERATIONS_READS:
        return Rule(OPERATIONS, OPERATIONS_READS["/".join(lowered)]) if method in ("GET", "HEAD") else None
    if first == "tenants" and len(parts) == 1:
        return Rule(SIGNED_IN)
    if first == "v1.0" and lowered[1:] == ["directoryobjects", "getbyids"]:
        return Rule(SIGNED_IN)  # Graph's lookup of principals: answered from the caller's tenants
    if first == "v1.0" and len(parts) in (2, 3) and lowered[1] == "users":
        return Rule(SIGNED_IN)  # Graph's users: identity/users.py decides per tenant
    if first == "providers" and len(parts) >= 2:
        namespace = parts[1].lower()
        if namespace == "galley.platform":
            return Rule(SIGNED_IN) if method in ("GET", "HEAD") else Rule(ADMIN)
        if namespace == "galley.identity":
            return Rule(SIGNED_IN)
        if namespace == "microsoft.resourcegraph":
            return Rule(SIGNED_IN)
    return None


def _subscription_rule(method: str, parts: list[str]) -> Rule | None:
    if len(parts) == 1:
        return Rule(SIGNED_IN) if method == "GET" else None
    subscription = parts[1]
    sub_scope = f"/subscriptions/{subscription}"
    verb = VERBS.get(method)
    if len(parts) == 2:
        return Rule(MEMBER, "Microsoft.Resources/subscriptions/read", sub_scope, subscription) if verb == "read" else None
    rest = parts[2:]
    head = rest[0].lower()
    if head == "locations" and len(rest) == 1:
        return Rule(MEMBER, "Microsoft.Resources/subscriptions/locations/read", sub_scope, subscription)
    if head == "resourcegroups":
        if len(rest) == 1:
            return Rule(LIST, "Microsoft.Resources/subscriptions/resourceGroups/read", sub_scope, subscription) \
                if verb == "read" else None
        group_scope = f"{sub_scope}/resourceGroups/{rest[1]}"
        if len(rest) == 2:
            return Rule(ITEM, f"Microsoft.Resources/subscriptions/resourceGroups/{verb}", group_scope,
                        subscription) if verb else None
        if rest[2].lower() == "deployments":  # deployment operations: …/resourcegroups/{g}/deployments/{d}/operations
            return _provider_rule(method, ["Microsoft.Resources", *rest[2:]], group_scope, subscription)
        if rest[2].lower() != "providers":
            return None
        return _provider_rule(method, rest[3:], group_scope, subscription)
    if head == "providers":
        return _provider_rule(method, rest[1:], sub_scope, subscription)
    return None


def _provider_rule(method: str, rest: list[str], scope: str, subscription: str) -> Rule | None:
    """`rest` starts at the namespace; `scope` is the subscription or resource group above it."""
    if not rest:
        return None
    namespace = rest[0].lower()
    canonical_ns = NAMESPACES.get(namespace, rest[0])
    tail = rest[1:]
    verb = VERBS.get(method)
    at_subscription = scope.count("/") == 2
    if not tail and at_subscription:  # a resource provider's registration: its types and api-versions
        return Rule(MEMBER, "Microsoft.Resources/subscriptions/providers/read", scope, subscription) \
            if verb == "read" else None
    if len(tail) == 1 and tail[0].lower() in SUBSCRIPTION_REPORTS and at_subscription:
        return Rule(ITEM, SUBSCRIPTION_REPORTS[tail[0].lower()], scope, subscription) if verb == "read" else None
    if len(tail) == 1 and tail[0].lower() == "checknameavailability" and at_subscription:
        return Rule(ITEM, f"{canonical_ns}/checknameavailability/read", scope, subscription) \
            if method == "POST" else None
    types, names = tail[0::2], tail[1::2]
    if not types:
        return None
    listing = len(types) > len(names)
    action_word = None
    if listing and types[-1].lower() not in COLLECTIONS:
        if types[-1].lower() not in ITEM_ACTIONS or not names:
            return None
        action_word, types, listing = types[-1].lower(), types[:-1], False
    if any(t.lower() not in COLLECTIONS for t in types):
        return None
    words = "/".join(COLLECTIONS[t.lower()] for t in types)
    item_path = f"{scope}/providers/{canonical_ns}/" + "/".join(
        f"{COLLECTIONS[t.lower()]}/{n}" for t, n in zip(types, names))
    if types[0].lower() == "locations":  # operations and the platform catalog: subscription-wide
        if verb != "read":
            return None
        if types[-1].lower() in ("operations", "operationresults"):
            return Rule(OPERATION, None, scope, subscription)
        return Rule(ITEM, f"{canonical_ns}/{words}/read", scope, subscription)
    if action_word is not None:
        word, kind = ITEM_ACTIONS[action_word]
        if kind == "read" and verb != "read":
            return None
        return Rule(ITEM, f"{canonical_ns}/{words}/{word}/{kind}", item_path, subscription)
    if listing:
        return Rule(LIST, f"{canonical_ns}/{words}/read", item_path if names else scope, subscription) \
            if verb == "read" else None
    return Rule(ITEM, f"{canonical_ns}/{words}/{verb}", item_path, subscription) if verb else None


def _authorization_rule(method: str, parts: list[str], scope: str) -> Rule | None:
    """`{scope}/providers/Microsoft.Authorization/roleAssignments[/{name}]` and roleDefinitions."""
    tail = parts[2:]
    if not tail or len(tail) > 2:
        return None
    kind = tail[0].lower()
    verb = VERBS.get(method)
    subscription = scope.split("/")[2] if scope.startswith("/subscriptions/") else None
    scope = scope or "/"
    if kind == "roledefinitions":
        if verb == "read":
            return Rule(SIGNED_IN, None, scope, subscription)
        if len(tail) == 2 and verb:
            return Rule(ITEM, f"Microsoft.Authorization/roleDefinitions/{verb}", scope, subscription)
        return None
    if kind == "roleassignments":
        if len(tail) == 1:
            return Rule(LIST, "Microsoft.Authorization/roleAssignments/read", scope, subscription) \
                if verb == "read" else None
        return Rule(ITEM, f"Microsoft.Authorization/roleAssignments/{verb}", scope, subscription) if verb else None
    return None


def read_action(resource_type: str | None) -> str:
    """The action that reads one item of a list (resource groups' is spelled under subscriptions)."""
    if resource_type and resource_type.lower() == ids.RESOURCE_GROUP_TYPE.lower():
        return "Microsoft.Resources/subscriptions/resourceGroups/read"
    return f"{resource_type}/read"


# ---- deciding ---------------------------------------------------------------------------------

class Refusal(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


SUBSCRIPTION_CACHE_SECONDS = 5.0


class Authorizer:
    """Decides one request: its rule, the subscription's tenant, the caller's grants. Returns a
    predicate that filters a list's items when the caller may read only some of them."""

    def __init__(self, authority, access, service) -> None:
        self.authority = authority
        self.access = access
        self.service = service
        self._subscriptions: dict[str, tuple[str, float]] = {}
        self.routes: list = []  # the app's, set once they are all registered

    def authorize(self, method: str, path: str, caller) -> Callable[[dict], bool] | None:
        rule = rule_for(method, path)
        if rule is None:
            if not self._served(method, path):
                return None  # no route either: the app answers 404 NotFound or 405 MethodNotAllowed
            raise Refusal(403, "AuthorizationFailed", f"No access rule covers {method} {path}; it is refused.")
        if rule.kind == SIGNED_IN:
            return None
        if rule.kind == ADMIN:
            if not caller.home:
                raise Refusal(403, "AuthorizationFailed",
                              f"The client '{caller.client_name}' with object id '{caller.object_id}' "
                              f"does not have authorization to perform {method} {path}: it is reserved to the "
                              "installation's administrators (principals of the home tenant).")
            return None
        if rule.kind == BLOB:
            with self.service.store.read() as tx:
                account = tx.find_named(ids.STORAGE_ACCOUNT_TYPE, rule.scope)
            if account is None:
                return None  # the route answers 404 AccountNotFound
            rule = Rule(ITEM, rule.action, account.id, account.subscription_id)
        if rule.kind == OPERATIONS or (rule.kind == ITEM and rule.scope == "/"):
            # At the root scope the installation's administrators may act (as Azure's elevated
            # Global Administrators do): so they can give a monitoring principal Reader at '/'.
            if caller.home or access_rules.allowed(self.access.grants(caller.object_id), rule.action, "/"):
                return None
            raise self._denied(caller, rule.action, "/")
        grants = self.access.grants(caller.object_id)
        if rule.subscription is not None:
            self._check_subscription(caller, rule.subscription, grants)
        if rule.kind == MEMBER:
            if not access_rules.has_any_role_in(grants, rule.scope):
                raise self._denied(caller, rule.action, rule.scope)
            return None
        if rule.kind == OPERATION:
            operation_id = path.rstrip("/").split("/")[-1]
            with self.service.store.read() as tx:
                operation = tx.get_operation(operation_id)
            if operation is None or operation.subscription_id.lower() != (rule.subscription or "").lower():
                if not access_rules.has_any_role_in(grants, rule.scope):
                    raise self._denied(caller, "Microsoft.Compute/locations/operations/read", rule.scope)
                return None  # the route answers 404
            action = f"{operation.resource_type}/read"
            if not access_rules.allowed(grants, action, operation.resource_id):
                raise self._denied(caller, action, operation.resource_id)
            return None
        if rule.kind == LIST:
            if access_rules.allowed(grants, rule.action, rule.scope):
                return None
            if not access_rules.may_list(grants, rule.action, rule.scope):
                raise self._denied(caller, rule.action, rule.scope)
            return lambda item: access_rules.allowed(grants, read_action(item.get("type")), item.get("id") or "") \
                if item.get("type") and item.get("id") else False
        if not access_rules.allowed(grants, rule.action, rule.scope):
            raise self._denied(caller, rule.action, rule.scope)
        return None

    def _served(self, method: str, path: str) -> bool:
        """Does a route take this request? (Asked only of requests no rule covers.)"""
        probe = {"type": "http", "method": method, "path": path, "root_path": "", "headers": []}
        return any(route.matches(probe)[0] == Match.FULL for route in self.routes)

    def _check_subscription(self, caller, subscription_id: str, grants) -> None:
        try:
            check_subscription_id(subscription_id)
        except ArmError as error:
            raise Refusal(error.status, error.code, error.message) from None
        key = subscription_id.lower()
        cached = self._subscriptions.get(key)
        if cached is not None and time.monotonic() - cached[1] < SUBSCRIPTION_CACHE_SECONDS:
            tenant_id = cached[0]
        else:
            subscription = self.authority.subscription(key)
            if subscription is None:
                raise Refusal(404, "SubscriptionNotFound", f"The subscription '{subscription_id}' could not be found.")
            tenant_id = subscription.tenant_id
            self._subscriptions[key] = (tenant_id, time.monotonic())
        # A principal of another tenant reaches a subscription only through a role it was given there.
        if tenant_id != caller.tenant_id and not access_rules.has_any_role_in(grants, f"/subscriptions/{key}"):
            raise Refusal(403, "InvalidAuthenticationTokenTenant",
                          f"The access token is from the wrong issuer '{caller.issuer}'. It must match the tenant "
                          f"associated with subscription '{subscription_id}', or its principal must hold a role "
                          "there.")

    @staticmethod
    def _denied(caller, action: str | None, scope: str) -> Refusal:
        error = access_rules.denial(caller, action or "", scope)
        return Refusal(error.status, error.code, error.message)
