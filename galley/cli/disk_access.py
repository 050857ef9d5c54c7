"""`galley disk|snapshot grant-access / revoke-access`: a SAS URL to write (upload) or read a
disk's bytes with any Azure Blob client, as `az disk grant-access` gives."""

from enum import Enum
from typing import Annotated

import typer

from galley.cli.common import NameOpt, ResourceGroupOpt, Session, arm_command
from galley.cli.kinds import Kind


class AccessLevel(str, Enum):
    Read = "Read"
    Write = "Write"


AccessOpt = Annotated[AccessLevel, typer.Option("--access-level", case_sensitive=False,
                                                help="Write (upload into a disk created with --upload-type Upload) or Read.")]
DurationOpt = Annotated[int, typer.Option("--duration-in-seconds", min=1, help="How long the SAS stays valid.")]


def grant_access(session: Session, kind: Kind, resource_group: str, name: str, access: str, seconds: int) -> dict:
    """The session's SAS URL (beginGetAccess answers with it at once, or after its operation)."""
    path = kind.path(session.subscription, resource_group, name) + "/beginGetAccess"
    answer = session.client.post(path, kind.api, body={"access": access, "durationInSeconds": seconds}, no_wait=True)
    return {"accessSAS": (answer or {}).get("accessSAS")}


def revoke_access(session: Session, kind: Kind, resource_group: str, name: str) -> None:
    session.client.post(kind.path(session.subscription, resource_group, name) + "/endGetAccess", kind.api)


def add_commands(app: typer.Typer, kind: Kind) -> None:
    @arm_command(app, "grant-access")
    def grant(session: Session, *, resource_group: ResourceGroupOpt, name: NameOpt,
              access_level: AccessOpt = AccessLevel.Read, duration_in_seconds: DurationOpt = 3600):
        """Grant a SAS URL to read or write the bytes (any Azure Blob client can use it)."""
        return grant_access(session, kind, resource_group, name, access_level.value, duration_in_seconds)

    @arm_command(app, "revoke-access")
    def revoke(session: Session, *, resource_group: ResourceGroupOpt, name: NameOpt):
        """Revoke the SAS; bytes written through a Write SAS become the content."""
        revoke_access(session, kind, resource_group, name)
