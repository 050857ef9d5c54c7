"""Galleries shared directly with subscriptions and tenants, and community galleries: finding
them by the names consumers use, and turning a consumer's shared id into the version it names.

  /SharedGalleries/{uniqueName}/Images/{definition}/Versions/{version}
  /CommunityGalleries/{publicName}/Images/{definition}/Versions/{version}

A consumer is the subscription a request works in and the tenant of its caller; what is shared
with either may be read and used as a source, whatever the caller's roles on the gallery itself.
"""

from __future__ import annotations

from .errors import InvalidParameter, NotFound
from .gallery import community_name, shared_with, unique_name
from .ids import GALLERY_TYPE
from .resource import Resource

SHARED = "sharedgalleries"
COMMUNITY = "communitygalleries"


def is_shared_id(value: object) -> bool:
    return isinstance(value, str) and value.strip("/").split("/")[0].lower() in (SHARED, COMMUNITY)


def shared_gallery(reader, unique: str, subscription_id: str, tenant_id: str) -> Resource:
    gallery = next((g for g in reader.all_of_type(GALLERY_TYPE) if unique_name(g).lower() == unique.lower()), None)
    if gallery is None or not shared_with(gallery, subscription_id, tenant_id):
        raise NotFound(f"The shared gallery '{unique}' does not exist or is not shared with subscription "
                       f"'{subscription_id}' or its tenant.", code="ResourceNotFound", target="galleryUniqueName")
    return gallery


def community_gallery(reader, public_name: str) -> Resource:
    gallery = next((g for g in reader.all_of_type(GALLERY_TYPE)
                    if (community_name(g) or "").lower() == public_name.lower()), None)
    if gallery is None:
        raise NotFound(f"The community gallery '{public_name}' does not exist.", code="ResourceNotFound",
                       target="publicGalleryName")
    return gallery


def galleries_shared_with(reader, subscription_id: str, tenant_id: str, by_tenant: bool) -> list[Resource]:
    found = []
    for gallery in reader.all_of_type(GALLERY_TYPE):
        if by_tenant and shared_with(gallery, "-", tenant_id):
            found.append(gallery)
        elif not by_tenant and shared_with(gallery, subscription_id, "-"):
            found.append(gallery)
    return found


def resolve_version_id(reader, shared_id: str, target: str, consumer: tuple[str, str] | None) -> str:
    """The real id of the version a shared or community id names, if it is shared with `consumer`."""
    parts = shared_id.strip("/").split("/")
    if len(parts) != 6 or parts[2].lower() != "images" or parts[4].lower() != "versions":
        raise InvalidParameter(f"'{shared_id}' is not a shared image version id such as /SharedGalleries/{{uniqueName}}"
                               "/Images/{definition}/Versions/{version}.", target=target, code="InvalidResourceId")
    if parts[0].lower() == COMMUNITY:
        gallery = community_gallery(reader, parts[1])
    else:
        if consumer is None:
            raise NotFound(f"The shared gallery '{parts[1]}' is not shared here.", target=target)
        gallery = shared_gallery(reader, parts[1], *consumer)
    return f"{gallery.id}/images/{parts[3]}/versions/{parts[5]}"
