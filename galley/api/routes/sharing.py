"""Sharing galleries, and reading what is shared (current Azure's direct shared and community
galleries, seed 001's sharing across subscriptions and tenants).

Publisher:
  POST …/galleries/{g}/share              {"operationType": Add|Remove|Reset|EnableCommunity,
                                           "groups": [{"type": Subscriptions|AADTenants, "ids": [...]}]}
  GET  …/galleries/{g}?$select=Permissions (the gallery with its sharingProfile.groups)
Consumer, in its own subscription:
  GET /subscriptions/{sub}/providers/Microsoft.Compute/locations/{region}/sharedGalleries[?sharedTo=tenant]
      …/sharedGalleries/{uniqueName}[/images[/{definition}[/versions[/{version}]]]]
      …/communityGalleries/{publicName}[/images[/{definition}[/versions[/{version}]]]]
Who may share is decided with every route (Microsoft.Compute/galleries/share/action, which
Contributor lacks); whether a consumer may read is decided here, by the gallery's sharing profile.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from ...domain import sharing
from ...domain.errors import NotFound
from ...domain.gallery import unique_name
from ...domain.ids import IMAGE_DEFINITION_TYPE, IMAGE_VERSION_TYPE
from ...domain.resource import Resource
from ..api_versions import gallery_api
from ..wire import json_body, json_response
from .accounts import caller_of
from .resources import COMPUTE, service_of

router = APIRouter(tags=["GallerySharing"])
LOCATION = "/subscriptions/{subscriptionId}/providers/microsoft.compute/locations/{location}"
SHARED = LOCATION + "/sharedgalleries"
COMMUNITY = LOCATION + "/communitygalleries"


@router.post(COMPUTE + "/galleries/{galleryName}/share", operation_id="GallerySharingProfile_Update")
def share(request: Request, subscriptionId: str, resourceGroupName: str, galleryName: str,
          api_version: str = Depends(gallery_api), body: dict = Depends(json_body)) -> Response:
    gallery_id = (f"/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}/providers/"
                  f"Microsoft.Compute/galleries/{galleryName}")
    return json_response(service_of(request).share_gallery(gallery_id, body))


# ---- the consumer's view ----------------------------------------------------------------------

def _shape(kind: str, public: str, gallery: Resource, item: Resource | None, location: str) -> dict:
    """A gallery, definition or version as a shared (or community) gallery shows it."""
    root = f"/{'SharedGalleries' if kind == 'shared' else 'CommunityGalleries'}/{public}"
    if item is None:
        body = {"name": public, "location": location, "identifier": {"uniqueId": root}}
        if kind == "community":
            info = gallery.properties["sharingProfile"]["communityGalleryInfo"]
            body["properties"] = {"publisherUri": info["publisherUri"], "publisherContact": info["publisherContact"],
                                  "eula": info["eula"], "publicNames": info["publicNames"]}
        return body
    props = item.properties
    if item.type == IMAGE_DEFINITION_TYPE:
        unique = f"{root}/Images/{item.name}"
        properties = {k: props[k] for k in ("osType", "osState", "endOfLifeDate", "identifier", "recommended",
                                             "disallowed", "hyperVGeneration", "features", "purchasePlan",
                                             "architecture", "privacyStatementUri", "eula") if k in props}
    else:
        definition = item.id.rsplit("/versions/", 1)[0].rsplit("/", 1)[-1]
        unique = f"{root}/Images/{definition}/Versions/{item.name}"
        publishing = props.get("publishingProfile", {})
        storage = props.get("storageProfile", {})
        properties = {"publishedDate": publishing.get("publishedDate"),
                      "endOfLifeDate": publishing.get("endOfLifeDate"),
                      "excludeFromLatest": publishing.get("excludeFromLatest", False),
                      "storageProfile": {"osDiskImage": {"diskSizeGB": storage.get("osDiskImage", {}).get("sizeInGB"),
                                                         "hostCaching": storage.get("osDiskImage", {}).get("hostCaching")},
                                         "dataDiskImages": storage.get("dataDiskImages", [])}}
    return {"name": item.name, "location": location, "identifier": {"uniqueId": unique}, "properties": properties}


def _gallery(request: Request, kind: str, subscription: str, public: str) -> Resource:
    with service_of(request).store.read() as tx:
        if kind == "community":
            return sharing.community_gallery(tx, public)
        return sharing.shared_gallery(tx, public, subscription, caller_of(request).tenant_id)


def _children(request: Request, parent_id: str, resource_type: str) -> list[Resource]:
    service = service_of(request)
    subscription = parent_id.split("/")[2]
    items, token = [], None
    while True:
        page = service.list(resource_type, subscription, parent=parent_id, after=token)
        items.extend(r for r in page.items if r.provisioning_state == "Succeeded")
        token = page.next_token
        if token is None:
            return items


def _child(request: Request, resource_id: str, resource_type: str) -> Resource:
    try:
        return service_of(request).get(resource_id, resource_type)
    except NotFound:
        raise NotFound(f"'{resource_id.rsplit('/', 1)[-1]}' is not in the shared gallery.",
                       code="ResourceNotFound") from None


def _register(kind: str, base: str, name_param: str) -> None:
    prefix = "SharedGalleries" if kind == "shared" else "CommunityGalleries"

    def gallery(request: Request, subscriptionId: str, location: str, public: str,
                api_version: str = Depends(gallery_api)) -> Response:
        found = _gallery(request, kind, subscriptionId, public)
        return json_response(_shape(kind, public, found, None, location))

    def images(request: Request, subscriptionId: str, location: str, public: str,
               api_version: str = Depends(gallery_api)) -> Response:
        found = _gallery(request, kind, subscriptionId, public)
        return json_response({"value": [_shape(kind, public, found, d, location)
                                        for d in _children(request, found.id, IMAGE_DEFINITION_TYPE)]})

    def image(request: Request, subscriptionId: str, location: str, public: str, galleryImageName: str,
              api_version: str = Depends(gallery_api)) -> Response:
        found = _gallery(request, kind, subscriptionId, public)
        item = _child(request, f"{found.id}/images/{galleryImageName}", IMAGE_DEFINITION_TYPE)
        return json_response(_shape(kind, public, found, item, location))

    def versions(request: Request, subscriptionId: str, location: str, public: str, galleryImageName: str,
                 api_version: str = Depends(gallery_api)) -> Response:
        found = _gallery(request, kind, subscriptionId, public)
        definition_id = f"{found.id}/images/{galleryImageName}"
        _child(request, definition_id, IMAGE_DEFINITION_TYPE)
        return json_response({"value": [_shape(kind, public, found, v, location)
                                        for v in _children(request, definition_id, IMAGE_VERSION_TYPE)]})

    def version(request: Request, subscriptionId: str, location: str, public: str, galleryImageName: str,
                galleryImageVersionName: str, api_version: str = Depends(gallery_api)) -> Response:
        found = _gallery(request, kind, subscriptionId, public)
        item = _child(request, f"{found.id}/images/{galleryImageName}/versions/{galleryImageVersionName}",
                      IMAGE_VERSION_TYPE)
        return json_response(_shape(kind, public, found, item, location))

    item = base + "/{public}"
    for path, handler, operation in (
            (item, gallery, "Get"), (item + "/images", images, "Images_List"),
            (item + "/images/{galleryImageName}", image, "Images_Get"),
            (item + "/images/{galleryImageName}/versions", versions, "ImageVersions_List"),
            (item + "/images/{galleryImageName}/versions/{galleryImageVersionName}", version, "ImageVersions_Get")):
        router.add_api_route(path, handler, methods=["GET"], operation_id=f"{prefix}_{operation}")


@router.get(SHARED, operation_id="SharedGalleries_List")
def list_shared(request: Request, subscriptionId: str, location: str,
                shared_to: str | None = Query(None, alias="sharedTo"),
                api_version: str = Depends(gallery_api)) -> Response:
    with service_of(request).store.read() as tx:
        found = sharing.galleries_shared_with(tx, subscriptionId, caller_of(request).tenant_id,
                                              by_tenant=(shared_to or "").lower() == "tenant")
    return json_response({"value": [_shape("shared", unique_name(g), g, None, location) for g in found]})


_register("shared", SHARED, "galleryUniqueName")
_register("community", COMMUNITY, "publicGalleryName")
