"""`galley sig …`: Compute Galleries (Shared Image Galleries).

The `image-definition` and `image-version` sub-groups are added in main.py."""

from typing import Annotated, Optional

import typer

from galley.cli import paths
from galley.cli.client import API_GALLERY
from galley.cli.common import (
    LocationOpt, NoWaitOpt, ResourceGroupOpt, Session, TagsOpt, arm_command, given, group_location, location_of,
    patch_body, with_tags,
)
from galley.cli.kinds import OPTIONAL_RESOURCE_GROUP, RESOURCE_GROUP, Kind, option
from galley.cli.output import DEFAULT_COLUMNS, field

app = typer.Typer(help="Manage Compute Galleries (Shared Image Gallery).", no_args_is_help=True)

COLUMNS = (*DEFAULT_COLUMNS, ("Description", field("properties.description")))

GalleryOpt = Annotated[str, typer.Option("--gallery-name", "-r", help="Gallery name.")]
DescriptionOpt = Annotated[Optional[str], typer.Option("--description", help="Description of the gallery.")]

GALLERY = option("gallery", GalleryOpt)
GALLERIES = Kind(
    app, API_GALLERY, COLUMNS, keys=(RESOURCE_GROUP, GALLERY), path=paths.gallery,
    list_keys=(OPTIONAL_RESOURCE_GROUP,),
    list_path=lambda sub, rg: paths.compute_collection(sub, rg, "galleries"),
)


def gallery_location(session: Session, resource_group: str, gallery: str) -> str:
    """The location of a gallery: where its image definitions and versions go by default."""
    return location_of(session, paths.gallery(session.subscription, resource_group, gallery), API_GALLERY)


@arm_command(app, "create", COLUMNS)
def create(
    session: Session,
    *,
    resource_group: ResourceGroupOpt,
    gallery: GalleryOpt,
    location: LocationOpt = None,
    description: DescriptionOpt = None,
    tags: TagsOpt = None,
    no_wait: NoWaitOpt = False,
):
    """Create a gallery. The location defaults to the resource group's."""
    location = location or group_location(session, resource_group)
    body = with_tags({"location": location, "properties": given(description=description)}, tags)
    return session.client.put(paths.gallery(session.subscription, resource_group, gallery), API_GALLERY, body,
                              no_wait=no_wait)


GALLERIES.add_show("Show a gallery.")
GALLERIES.add_list("List galleries in a resource group, or in the subscription without -g.")


@arm_command(app, "update", COLUMNS)
def update(
    session: Session,
    *,
    resource_group: ResourceGroupOpt,
    gallery: GalleryOpt,
    description: DescriptionOpt = None,
    tags: TagsOpt = None,
    no_wait: NoWaitOpt = False,
):
    """Update a gallery's description or tags."""
    path = paths.gallery(session.subscription, resource_group, gallery)
    return session.client.patch(path, API_GALLERY, patch_body(given(description=description), tags), no_wait=no_wait)


GALLERIES.add_delete("Delete a gallery (it must hold no image definitions).")
