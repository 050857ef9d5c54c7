"""`galley group …`: resource groups."""

from typing import Annotated

import typer

from galley.cli import paths
from galley.cli.client import API_GROUP
from galley.cli.common import NoWaitOpt, Session, TagsOpt, arm_command, parse_tags
from galley.cli.kinds import Kind, option
from galley.cli.output import LOCATION, NAME, STATE

app = typer.Typer(help="Manage resource groups.", no_args_is_help=True)

COLUMNS = (NAME, LOCATION, STATE)

GroupNameOpt = Annotated[str, typer.Option("--name", "-n", "--resource-group", "-g", help="Name of the resource group.")]
GROUPS = Kind(app, API_GROUP, COLUMNS, keys=(option("name", GroupNameOpt),), path=paths.resource_group)


@arm_command(app, "create", COLUMNS)
def create(
    session: Session,
    *,
    name: GroupNameOpt,
    location: Annotated[str, typer.Option("--location", "-l", help="Region of the resource group.")],
    tags: TagsOpt = None,
):
    """Create (or update) a resource group."""
    body = {"location": location, "tags": parse_tags(tags) or {}}
    return session.client.put(paths.resource_group(session.subscription, name), API_GROUP, body)


GROUPS.add_show("Show a resource group.")
GROUPS.add_list("List the subscription's resource groups.")


@arm_command(app, "delete")
def delete(
    session: Session,
    *,
    name: GroupNameOpt,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not prompt for confirmation.")] = False,
    no_wait: NoWaitOpt = False,
):
    """Delete a resource group and everything in it."""
    if not yes:
        typer.confirm("Are you sure you want to perform this operation?", abort=True, err=True)
    return session.client.delete(paths.resource_group(session.subscription, name), API_GROUP, no_wait=no_wait)


@arm_command(app, "exists")
def exists(session: Session, *, name: GroupNameOpt):
    """Print true if the resource group exists, else false."""
    return session.client.exists(paths.resource_group(session.subscription, name), API_GROUP)
