"""`galley identity …`: user-assigned managed identities, the principals image template builds
act as (shaped like `az identity`)."""

from typing import Optional

import typer

from galley.cli import paths
from galley.cli.common import LocationOpt, NameOpt, ResourceGroupOpt, Session, TagsOpt, arm_command, group_location, parse_tags
from galley.cli.kinds import OPTIONAL_RESOURCE_GROUP, RESOURCE_GROUP, Kind, option
from galley.cli.output import LOCATION, NAME, field

app = typer.Typer(help="Manage user-assigned managed identities.", no_args_is_help=True)
API = "2023-01-31"
COLLECTION = "Microsoft.ManagedIdentity/userAssignedIdentities"
COLUMNS = (NAME, LOCATION, ("PrincipalId", field("properties.principalId")),
           ("ClientId", field("properties.clientId")))


def _path(sub: str, rg: Optional[str], name: Optional[str] = None) -> str:
    base = (f"{paths.resource_group(sub, rg)}/providers/{COLLECTION}" if rg
            else f"/subscriptions/{sub}/providers/{COLLECTION}")
    return f"{base}/{name}" if name else base


IDENTITIES = Kind(app, API, COLUMNS, keys=(RESOURCE_GROUP, option("name", NameOpt)), path=_path,
                  list_keys=(OPTIONAL_RESOURCE_GROUP,), list_path=_path)


@arm_command(app, "create", COLUMNS)
def create(session: Session, *, resource_group: ResourceGroupOpt, name: NameOpt, location: LocationOpt = None,
           tags: TagsOpt = None):
    """Create a user-assigned identity (it gets a principal of its own: give it roles)."""
    body = {"location": location or group_location(session, resource_group), "tags": parse_tags(tags) or {}}
    return session.client.put(_path(session.subscription, resource_group, name), API, body)


IDENTITIES.add_show("Show an identity (its principalId and clientId).")
IDENTITIES.add_list("List identities of a resource group, or of the subscription.")
IDENTITIES.add_delete("Delete an identity.")
