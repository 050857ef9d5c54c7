"""The api-versions each resource family accepts: the current SDK's and the older stable ones."""

from __future__ import annotations

from fastapi import Query, Request

from ..domain.errors import ArmError

GALLERY = frozenset({
    "2018-06-01", "2019-03-01", "2019-07-01", "2019-12-01", "2020-09-30", "2021-07-01",
    "2021-10-01", "2022-01-03", "2022-03-03", "2022-08-03", "2023-07-03", "2024-03-03",
    "2025-03-03", "2025-12-03", "2026-03-03",
})
COMPUTE = frozenset({
    "2017-03-30", "2017-12-01", "2018-04-01", "2018-06-01", "2018-10-01", "2019-03-01",
    "2019-07-01", "2019-12-01", "2020-06-01", "2020-12-01", "2021-03-01", "2021-04-01",
    "2021-07-01", "2021-11-01", "2022-03-01", "2022-08-01", "2022-11-01", "2023-03-01",
    "2023-07-01", "2023-09-01", "2024-03-01", "2024-07-01", "2024-11-01", "2025-04-01",
    "2025-11-01", "2026-03-01", "2026-04-01",
})
DISK = frozenset({
    "2017-03-30", "2018-04-01", "2018-06-01", "2018-09-30", "2019-03-01", "2019-07-01",
    "2019-11-01", "2020-05-01", "2020-06-30", "2020-09-30", "2020-12-01", "2021-04-01",
    "2021-08-01", "2021-12-01", "2022-03-02", "2022-07-02", "2023-01-02", "2023-04-02",
    "2023-10-02", "2024-03-02", "2025-01-02", "2026-03-02",
})
RESOURCES = frozenset({
    "2014-04-01", "2015-01-01", "2016-02-01", "2016-06-01", "2016-09-01", "2017-05-10",
    "2018-02-01", "2018-05-01", "2019-05-01", "2019-06-01", "2019-07-01", "2019-08-01",
    "2019-10-01", "2019-11-01", "2020-01-01", "2020-06-01", "2020-08-01", "2020-10-01",
    "2021-01-01", "2021-04-01", "2022-01-01", "2022-09-01", "2022-12-01", "2023-07-01",
    "2024-03-01", "2024-07-01", "2024-11-01", "2025-03-01", "2025-04-01",
})
STORAGE = frozenset({
    "2019-04-01", "2019-06-01", "2021-04-01", "2021-09-01", "2022-05-01", "2022-09-01",
    "2023-01-01", "2023-05-01", "2024-01-01", "2025-01-01", "2025-06-01", "2025-08-01",
})
IMAGE_BUILDER = frozenset({
    "2019-05-01-preview", "2020-02-14", "2021-10-01", "2022-02-14", "2022-07-01", "2023-07-01",
    "2024-02-01", "2025-10-01",
})
AUTHORIZATION = frozenset({
    "2015-07-01", "2017-05-01", "2018-01-01-preview", "2018-09-01-preview", "2020-03-01-preview",
    "2020-04-01-preview", "2020-10-01-preview", "2022-01-01-preview", "2022-04-01", "2022-05-01-preview",
})
INSIGHTS = frozenset({"2015-04-01"})  # the activity log (eventtypes/management/values)
RESOURCE_GRAPH = frozenset({"2021-03-01", "2022-10-01", "2024-04-01"})
MANAGED_IDENTITY = frozenset({"2015-08-31-preview", "2018-11-30", "2021-09-30-preview", "2022-01-31-preview",
                              "2023-01-31", "2023-07-31-preview", "2024-11-30"})
# Microsoft.Network: az's VM template sends 2015-06-15 (VNet, NSG, NIC) and 2022-01-01 (public IP);
# its `az network` commands send 2022-01-01 to 2025-09-01.
NETWORK = frozenset({
    "2015-06-15", "2016-03-30", "2016-09-01", "2017-03-01", "2017-06-01", "2017-09-01", "2017-11-01",
    "2018-02-01", "2018-04-01", "2018-08-01", "2018-11-01", "2019-02-01", "2019-04-01", "2019-06-01",
    "2019-09-01", "2019-11-01", "2020-03-01", "2020-05-01", "2020-06-01", "2020-11-01", "2021-02-01",
    "2021-05-01", "2021-08-01", "2022-01-01", "2022-05-01", "2022-07-01", "2022-09-01", "2022-11-01",
    "2023-02-01", "2023-04-01", "2023-05-01", "2023-06-01", "2023-09-01", "2023-11-01", "2024-01-01",
    "2024-03-01", "2024-05-01", "2024-07-01", "2024-10-01", "2025-01-01", "2025-03-01", "2025-05-01",
    "2025-07-01", "2025-09-01",
})
# Operation-status URLs carry the api-version of the request that started them.
ANY_KNOWN = GALLERY | COMPUTE | DISK | RESOURCES | STORAGE | IMAGE_BUILDER | MANAGED_IDENTITY | NETWORK


def _checker(supported: frozenset[str], family: str):
    newest = sorted(supported)[-1]

    def validate(api_version: str | None) -> str:
        if api_version is None:
            raise ArmError(f"The api-version query parameter (?api-version=) is required for all "
                           f"requests. The newest supported for {family} is '{newest}'.",
                           code="MissingApiVersionParameter", target="api-version")
        if api_version not in supported:
            raise ArmError(
                f"The api-version '{api_version}' is invalid for {family}. The supported versions are "
                f"'{','.join(sorted(supported, reverse=True))}'.",
                code="InvalidApiVersionParameter", target="api-version")
        return api_version

    # async: a pure check, so it runs on the event loop instead of taking a thread-pool round trip.
    async def check(request: Request, api_version: str | None = Query(None, alias="api-version")) -> str:
        return validate(api_version)

    check.validate = validate
    check.supported = supported
    return check


gallery_api = _checker(GALLERY, "Microsoft.Compute/galleries")
compute_api = _checker(COMPUTE, "Microsoft.Compute/images")
disk_api = _checker(DISK, "Microsoft.Compute/disks and snapshots")
resources_api = _checker(RESOURCES, "Microsoft.Resources")
storage_api = _checker(STORAGE, "Microsoft.Storage/storageAccounts")
image_builder_api = _checker(IMAGE_BUILDER, "Microsoft.VirtualMachineImages/imageTemplates")
identity_api = _checker(MANAGED_IDENTITY, "Microsoft.ManagedIdentity/userAssignedIdentities")
network_api = _checker(NETWORK, "Microsoft.Network")
authorization_api = _checker(AUTHORIZATION, "Microsoft.Authorization")
activity_log_api = _checker(INSIGHTS, "Microsoft.Insights/eventtypes")
graph_api = _checker(RESOURCE_GRAPH, "Microsoft.ResourceGraph/resources")
operation_api = _checker(ANY_KNOWN, "Microsoft.Compute operations")
