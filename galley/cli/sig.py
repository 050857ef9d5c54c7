"""`galley sig …`: Compute Galleries (Shared Image Galleries).

The `image-definition` and `image-version` sub-groups are added in main.py."""

from typing import Annotated, Optional

import typer

from galley.cli import paths
from galley.cli.client import API_GALLERY, API_GROUP
from galley.cli.common import (
    LocationOpt,
    NoWaitOpt,
    OptionalResourceGroupOpt,
    ResourceGroupOpt,
    Session,
    TagsOpt,
    arm_command,
    location_of,
    parse_tags,
)
from galley.cli.output import DEFAULT_COLUMNS, field

app = typer.Typer(help="Manage Compute Galleries (Shared Image Gallery).", no_args_is_help=True)

COLUMNS = (*DEFAULT_COLUMNS, ("Description", field("properties.description")))

GalleryOpt = Annotated[str, typer.Option("--gallery-name", "-r", help="Gallery name.")]
DescriptionOpt = Annotated[Optional[str], typer.Option("--description", help="Description of the gallery.")]


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
    sub = session.subscription
    location = location or location_of(session, paths.resource_group(sub, resource_group), API_GROUP)
    body: dict = {"location": location, "properties": {}}
    if description is not None:
        body["properties"]["description"] = description
    if tags is not None:
        body["tags"] = parse_tags(tags)
    return session.client.put(paths.gallery(sub, resource_group, gallery), API_GALLERY, body, no_wait=no_wait)


@arm_command(app, "show", COLUMNS)
def show(session: Session, *, resource_group: ResourceGroupOpt, gallery: GalleryOpt):
    """Show a gallery."""
    return session.client.get(paths.gallery(session.subscription, resource_group, gallery), API_GALLERY)


@arm_command(app, "list", COLUMNS)
def list_(session: Session, *, resource_group: OptionalResourceGroupOpt = None):
    """List galleries in a resource group, or in the subscription without -g."""
    path = paths.compute_collection(session.subscription, resource_group, "galleries")
    return session.client.list(path, API_GALLERY)


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
    body: dict = {}
    if description is not None:
        body["properties"] = {"description": description}
    if tags is not None:
        body["tags"] = parse_tags(tags)
    path = paths.gallery(session.subscription, resource_group, gallery)
    return session.client.patch(path, API_GALLERY, body, no_wait=no_wait)


@arm_command(app, "delete")
def delete(
    session: Session, *, resource_group: ResourceGroupOpt, gallery: GalleryOpt, no_wait: NoWaitOpt = False
):
    """Delete a gallery (it must hold no image definitions)."""
    path = paths.gallery(session.subscription, resource_group, gallery)
    return session.client.delete(path, API_GALLERY, no_wait=no_wait)
