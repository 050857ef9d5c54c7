"""CRUD and list endpoints for every ARM resource type Galley holds, from one description each."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from ...domain import ids, network
from ...domain.errors import ArmError
from ...domain.service import ResourceRef, ResourceService
from .. import answers, api_versions
from ..answers import finished_in_time
from ..wire import TOP_LEVEL_FIELDS, json_body, json_response, page_response, render
from ._signature import with_parameters

SUB = "/subscriptions/{subscriptionId}"
GROUP = SUB + "/resourcegroups/{resourceGroupName}"
COMPUTE = GROUP + "/providers/microsoft.compute"
SUB_COMPUTE = SUB + "/providers/microsoft.compute"
STORAGE = GROUP + "/providers/microsoft.storage"
SUB_STORAGE = SUB + "/providers/microsoft.storage"
IMAGE_BUILDER = GROUP + "/providers/microsoft.virtualmachineimages"
SUB_IMAGE_BUILDER = SUB + "/providers/microsoft.virtualmachineimages"
IDENTITIES = GROUP + "/providers/microsoft.managedidentity/userassignedidentities"
SUB_IDENTITIES = SUB + "/providers/microsoft.managedidentity/userassignedidentities"
NETWORK = GROUP + "/providers/microsoft.network"
SUB_NETWORK = SUB + "/providers/microsoft.network"


@dataclass(frozen=True)
class ResourceSpec:
    type: str
    operation_prefix: str  # as in Azure's REST spec, e.g. GalleryImageVersions
    item_path: str
    name_params: list[str]
    api: Callable
    # Status codes of the asynchronous answers (Azure's, per type).
    create_status: int = 201
    update_status: int = 200
    patch_status: int = 200
    # The status of a DELETE whose work ended within the quick-answer budget: one the type's SDK
    # takes as final (a create or update that ended answers 201 or 200, see `done_status`).
    deleted_status: int = 200
    # Whether a PUT or PATCH whose work ended in time is answered with its final state.
    quick_writes: bool = True
    list_by_group: str | None = None
    list_by_subscription: str | None = None
    list_by_parent: str | None = None
    expandable: bool = False
    # Renders one item for GET and lists, given the request and $expand (VMs' instanceView);
    # None: `render`, with $expand=ReplicationStatus for expandable types.
    renderer: Callable | None = None
    # Request fields beside location/tags/sku that the type keeps with its properties (identity).
    @property
    def top_level(self) -> tuple[str, ...]:
        return TOP_LEVEL_FIELDS.get(self.type, ())

    def inbound(self, body: dict) -> dict:
        """Fields ARM puts beside `properties` are kept among them (render() lifts them out)."""
        if not self.top_level:
            return body
        props = body.get("properties")
        if props is not None and not isinstance(props, dict):
            return body  # the service rejects it, naming 'properties'
        props = {k: v for k, v in (props or {}).items() if k not in self.top_level}
        props.update({k: body[k] for k in self.top_level if k in body})
        return {**body, "properties": props}

    @property
    def path_params(self) -> list[str]:
        return ["subscriptionId", "resourceGroupName", *self.name_params]

    def ref(self, params: dict) -> ResourceRef:
        names = [params[n] for n in self.name_params]
        namespace, *segments = self.type.split("/")
        resource_id = ids.resource_group_id(params["subscriptionId"], params["resourceGroupName"]) + \
            f"/providers/{namespace}/" + "/".join(f"{s}/{n}" for s, n in zip(segments, names))
        return ResourceRef(id=resource_id, type=self.type, name=names[-1],
                           subscription_id=params["subscriptionId"],
                           resource_group=params["resourceGroupName"])

    def parent_id(self, params: dict) -> str:
        return ids.parent_id(self.ref({**params, self.name_params[-1]: "x"}).id)

    def done_status(self, created: bool) -> int:
        """The status of a PUT or PATCH whose work has ended: 201 for a create where the type's
        SDK takes 201 (galleries, definitions, versions, images), else 200 (for disks, snapshots and
        storage accounts 202 would mean "still running")."""
        return 201 if created and self.create_status == 201 else 200


SPECS = [
    ResourceSpec(ids.GALLERY_TYPE, "Galleries", COMPUTE + "/galleries/{galleryName}", ["galleryName"],
                 api_versions.gallery_api, list_by_group=COMPUTE + "/galleries",
                 list_by_subscription=SUB_COMPUTE + "/galleries"),
    ResourceSpec(ids.IMAGE_DEFINITION_TYPE, "GalleryImages",
                 COMPUTE + "/galleries/{galleryName}/images/{galleryImageName}",
                 ["galleryName", "galleryImageName"], api_versions.gallery_api,
                 list_by_parent=COMPUTE + "/galleries/{galleryName}/images"),
    ResourceSpec(ids.IMAGE_VERSION_TYPE, "GalleryImageVersions",
                 COMPUTE + "/galleries/{galleryName}/images/{galleryImageName}/versions/{galleryImageVersionName}",
                 ["galleryName", "galleryImageName", "galleryImageVersionName"], api_versions.gallery_api,
                 list_by_parent=COMPUTE + "/galleries/{galleryName}/images/{galleryImageName}/versions",
                 expandable=True),
    ResourceSpec(ids.MANAGED_IMAGE_TYPE, "Images", COMPUTE + "/images/{imageName}", ["imageName"],
                 api_versions.compute_api, list_by_group=COMPUTE + "/images",
                 list_by_subscription=SUB_COMPUTE + "/images"),
    ResourceSpec(ids.DISK_TYPE, "Disks", COMPUTE + "/disks/{diskName}", ["diskName"], api_versions.disk_api,
                 create_status=202, update_status=202, patch_status=202,
                 list_by_group=COMPUTE + "/disks", list_by_subscription=SUB_COMPUTE + "/disks"),
    ResourceSpec(ids.SNAPSHOT_TYPE, "Snapshots", COMPUTE + "/snapshots/{snapshotName}", ["snapshotName"],
                 api_versions.disk_api, create_status=202, update_status=202, patch_status=202,
                 list_by_group=COMPUTE + "/snapshots", list_by_subscription=SUB_COMPUTE + "/snapshots"),
    ResourceSpec(ids.STORAGE_ACCOUNT_TYPE, "StorageAccounts", STORAGE + "/storageaccounts/{accountName}",
                 ["accountName"], api_versions.storage_api, create_status=202, update_status=200,
                 list_by_group=STORAGE + "/storageaccounts",
                 list_by_subscription=SUB_STORAGE + "/storageaccounts"),
    ResourceSpec(ids.IMAGE_TEMPLATE_TYPE, "VirtualMachineImageTemplates",
                 IMAGE_BUILDER + "/imagetemplates/{imageTemplateName}", ["imageTemplateName"],
                 api_versions.image_builder_api, list_by_group=IMAGE_BUILDER + "/imagetemplates",
                 list_by_subscription=SUB_IMAGE_BUILDER + "/imagetemplates",
                 deleted_status=204,  # azure-mgmt-imagebuilder's delete takes 202 or 204
                 # Always asynchronous, as Azure's: azure-mgmt-imagebuilder 1.x (the one az ships)
                 # deserializes a final first answer twice, and the first pass pops the `type`
                 # discriminators (source, customize, distribute) that the second one needs.
                 quick_writes=False),
    ResourceSpec(ids.USER_IDENTITY_TYPE, "UserAssignedIdentities", IDENTITIES + "/{resourceName}", ["resourceName"],
                 api_versions.identity_api, list_by_group=IDENTITIES, list_by_subscription=SUB_IDENTITIES),
    *(ResourceSpec(kind.TYPE, prefix, f"{NETWORK}/{collection}/{{{name}}}", [name], api_versions.network_api,
                   list_by_group=f"{NETWORK}/{collection}", list_by_subscription=f"{SUB_NETWORK}/{collection}")
      for kind, prefix, collection, name in (
          (network.VIRTUAL_NETWORKS, "VirtualNetworks", "virtualnetworks", "virtualNetworkName"),
          (network.SECURITY_GROUPS, "NetworkSecurityGroups", "networksecuritygroups", "networkSecurityGroupName"),
          (network.PUBLIC_ADDRESSES, "PublicIPAddresses", "publicipaddresses", "publicIpAddressName"),
          (network.NETWORK_INTERFACES, "NetworkInterfaces", "networkinterfaces", "networkInterfaceName"))),
    ResourceSpec(ids.VIRTUAL_MACHINE_TYPE, "VirtualMachines", COMPUTE + "/virtualmachines/{vmName}", ["vmName"],
                 api_versions.compute_api, list_by_group=COMPUTE + "/virtualmachines",
                 list_by_subscription=SUB_COMPUTE + "/virtualmachines", deleted_status=200,
                 expandable=True, renderer=lambda request, vm, expand: _render_vm(request, vm, expand)),
]


def _render_vm(request: Request, vm, expand: str | None) -> dict:
    from .virtual_machines import render_vm  # the VM routes import this module
    return render_vm(request, vm, expand)


def _wants_replication_status(expand: str | None) -> bool:
    if expand is None:
        return False
    if expand.lower() != "replicationstatus":
        raise ArmError(f"$expand value '{expand}' is not supported; use ReplicationStatus.",
                       code="InvalidParameter", target="$expand")
    return True


def service_of(request: Request) -> ResourceService:
    return request.app.state.service


def register(router: APIRouter, spec: ResourceSpec) -> None:
    api = (str, Depends(spec.api))
    req = (Request, None)
    body = (dict, Depends(json_body))
    expand = (str | None, Query(None, alias="$expand"))
    skiptoken = (str | None, Query(None, alias="$skiptoken"))

    # Writes are sync handlers: they run in the thread pool, where answers.finished_in_time may
    # wait for the worker without holding the event loop.
    def put(request: Request, api_version: str, body: dict, **params) -> Response:
        ref = spec.ref(params)
        accepted = service_of(request).put(ref, spec.inbound(body))
        if spec.quick_writes and finished_in_time(request, accepted.operation):
            final = answers.read_after_write(lambda: service_of(request).get(ref.id, spec.type))
            if final is not None:
                return json_response(render(final), spec.done_status(accepted.created))
        status = spec.create_status if accepted.created else spec.update_status
        return answers.accepted(request, render(accepted.resource), accepted.operation, api_version, status)

    def patch(request: Request, api_version: str, body: dict, **params) -> Response:
        ref = spec.ref(params)
        accepted = service_of(request).put(ref, spec.inbound(body), patch=True)
        if spec.quick_writes and finished_in_time(request, accepted.operation):
            final = answers.read_after_write(lambda: service_of(request).get(ref.id, spec.type))
            if final is not None:
                return json_response(render(final), spec.done_status(False))
        return answers.accepted(request, render(accepted.resource), accepted.operation, api_version,
                                spec.patch_status)

    # Reads of one resource are a single indexed lookup: they run on the event loop, which saves
    # a thread-pool round trip on the busiest request there is.
    async def get(request: Request, api_version: str, expand: str | None = None, **params) -> Response:
        ref = spec.ref(params)
        service = service_of(request)
        if spec.renderer is not None:
            return json_response(spec.renderer(request, service.get(ref.id, spec.type), expand))
        if spec.expandable and _wants_replication_status(expand):
            resource, regions = service.get_with_regions(ref.id)
            return json_response(render(resource, regions))
        return json_response(render(service.get(ref.id, spec.type)))

    def delete(request: Request, api_version: str, **params) -> Response:
        operation = service_of(request).delete(spec.ref(params).id, spec.type)
        if operation is None:
            return Response(status_code=204)
        if finished_in_time(request, operation):
            return Response(status_code=spec.deleted_status)
        return answers.accepted(request, None, operation, api_version, 202)

    item_params = spec.path_params
    router.add_api_route(spec.item_path, with_parameters(put, item_params, {"request": req, "api_version": api, "body": body}),
                         methods=["PUT"], operation_id=f"{spec.operation_prefix}_CreateOrUpdate",
                         tags=[spec.operation_prefix])
    router.add_api_route(spec.item_path, with_parameters(patch, item_params, {"request": req, "api_version": api, "body": body}),
                         methods=["PATCH"], operation_id=f"{spec.operation_prefix}_Update",
                         tags=[spec.operation_prefix])
    get_extra = {"request": req, "api_version": api}
    if spec.expandable:
        get_extra["expand"] = expand
    router.add_api_route(spec.item_path, with_parameters(get, item_params, get_extra), methods=["GET"],
                         operation_id=f"{spec.operation_prefix}_Get", tags=[spec.operation_prefix])
    router.add_api_route(spec.item_path, with_parameters(delete, item_params, {"request": req, "api_version": api}),
                         methods=["DELETE"], operation_id=f"{spec.operation_prefix}_Delete",
                         tags=[spec.operation_prefix])

    def list_handler(scope: str):
        def list_items(request: Request, api_version: str, skiptoken: str | None = None,
                       expand: str | None = None, **params) -> Response:
            service = service_of(request)
            page = service.list(
                spec.type, params["subscriptionId"],
                resource_group=params.get("resourceGroupName") if scope == "group" else None,
                parent=spec.parent_id(params) if scope == "parent" else None, after=skiptoken)
            if spec.renderer is not None:
                items = [spec.renderer(request, r, expand) for r in page.items]
            elif spec.expandable and _wants_replication_status(expand):
                items = [render(*service.get_with_regions(r.id)) for r in page.items]
            else:
                items = [render(r) for r in page.items]
            return page_response(request, page, items)
        return list_items

    lists = [("group", spec.list_by_group, ["subscriptionId", "resourceGroupName"], "ListByResourceGroup"),
             ("subscription", spec.list_by_subscription, ["subscriptionId"], "List"),
             ("parent", spec.list_by_parent, spec.path_params[:-1],
              "ListBy" + ("GalleryImage" if spec.expandable else "Gallery"))]
    for scope, path, names, suffix in lists:
        if path is None:
            continue
        extra = {"request": req, "api_version": api, "skiptoken": skiptoken}
        if spec.expandable:
            extra["expand"] = expand
        router.add_api_route(path, with_parameters(list_handler(scope), names, extra), methods=["GET"],
                             operation_id=f"{spec.operation_prefix}_{suffix}", tags=[spec.operation_prefix])


def build_router() -> APIRouter:
    router = APIRouter()
    _register_latest(router)
    # Routes are tried in order: the most requested (versions, then definitions) go first.
    for spec in sorted(SPECS, key=lambda s: s.type != ids.IMAGE_VERSION_TYPE):
        register(router, spec)
    return router


def _register_latest(router: APIRouter) -> None:
    """Galley's extension: resolve 'latest' the way a VM deployment would, optionally in one region."""
    version_spec = SPECS[2]
    names = version_spec.path_params[:-1]

    # A plain function, so FastAPI runs it in its thread pool: choosing among a definition's
    # versions (10,000 may be there) must not hold up the event loop's other requests.
    def latest(request: Request, api_version: str, region: str | None = None,
               expand: str | None = None, **params) -> Response:
        service = service_of(request)
        definition_id = version_spec.parent_id(params)
        found = service.latest_version(definition_id, region)
        if _wants_replication_status(expand):
            return json_response(render(*service.get_with_regions(found.id)))
        return json_response(render(found))

    extra = {"request": (Request, None), "api_version": (str, Depends(version_spec.api)),
             "region": (str | None, Query(None, description="Only versions replicated to this region count")),
             "expand": (str | None, Query(None, alias="$expand"))}
    base = COMPUTE + "/galleries/{galleryName}/images/{galleryImageName}"
    # Declared before the item routes so that versions/latest is not read as a version name.
    for path, operation in ((base + "/versions/latest", "GalleryImageVersions_GetLatest"),
                            (base + "/latestversion", "GalleryImageVersions_GetLatestVersion")):
        router.add_api_route(path, with_parameters(latest, names, extra), methods=["GET"],
                             operation_id=operation, tags=["GalleryImageVersions"])
