"""Resource providers (GET /subscriptions/{s}/providers/{namespace}): the types Galley serves under a
namespace and the api-versions each accepts, as clients read them to pick an api-version (az's
generic resource reads do)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response

from ...deployments.template import DEPLOYMENT_TYPE
from ...domain.errors import NotFound
from ...domain.names import check_subscription_id
from ..api_versions import network_api, resources_api
from ..wire import json_response
from .resources import SPECS

router = APIRouter(tags=["Providers"])


def _types() -> dict[str, list[tuple[str, str, frozenset[str]]]]:
    """namespace (lower-case) → [(namespace, resource type below it, its api-versions)]."""
    found: dict[str, list[tuple[str, str, frozenset[str]]]] = {}
    pairs = [(spec.type, spec.api.supported) for spec in SPECS]
    pairs += [("Microsoft.Network/virtualNetworks/subnets", network_api.supported),
              (DEPLOYMENT_TYPE, resources_api.supported)]
    for arm_type, versions in pairs:
        namespace, _, rest = arm_type.partition("/")
        found.setdefault(namespace.lower(), []).append((namespace, rest, versions))
    return found


@router.get("/subscriptions/{subscriptionId}/providers/{resourceProviderNamespace}", operation_id="Providers_Get")
def get(request: Request, subscriptionId: str, resourceProviderNamespace: str,
        api_version: str = Depends(resources_api)) -> Response:
    check_subscription_id(subscriptionId)
    types = _types().get(resourceProviderNamespace.lower())
    if types is None:
        raise NotFound(f"Galley serves no resource provider '{resourceProviderNamespace}'.",
                       code="InvalidResourceNamespace", target=resourceProviderNamespace)
    namespace = types[0][0]
    locations = list(request.app.state.settings.regions)
    return json_response({
        "id": f"/subscriptions/{subscriptionId}/providers/{namespace}", "namespace": namespace,
        "registrationState": "Registered", "registrationPolicy": "RegistrationRequired",
        "resourceTypes": [{"resourceType": rest, "locations": locations,
                           "apiVersions": sorted(versions, reverse=True)} for _, rest, versions in types]})
