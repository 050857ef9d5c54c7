"""Disk and snapshot access (beginGetAccess / endGetAccess): which diskState allows which SAS,
and the state each step leaves. Azure's DiskState values: Unattached, Attached, Reserved,
Frozen, ActiveSAS, ActiveSASFrozen, ReadyToUpload, ActiveUpload."""

from __future__ import annotations

from . import fields
from .errors import Conflict, InvalidParameter
from .resource import SUCCEEDED, Resource

READ, WRITE = "Read", "Write"
ACTIVE_STATES = ("ActiveSAS", "ActiveUpload")
READY_TO_UPLOAD = "ReadyToUpload"
READABLE_STATES = ("Unattached", "Reserved", "ActiveSAS")
MAX_DURATION_SECONDS = 30 * 24 * 3600


def grant_request(body: dict) -> tuple[str, int]:
    """(access level, duration in seconds) of a GrantAccessData body."""
    level = body.get("access")
    if not isinstance(level, str) or level.lower() not in ("read", "write"):
        raise InvalidParameter("access must be Read or Write.", target="access")
    duration = fields.integer(body, "durationInSeconds", "durationInSeconds", minimum=1,
                              maximum=MAX_DURATION_SECONDS)
    if duration is None:
        raise InvalidParameter("durationInSeconds is required (how long the SAS stays valid).",
                               target="durationInSeconds")
    return (READ if level.lower() == "read" else WRITE), duration


def check_grant(resource: Resource, level: str, kind: str) -> str:
    """The diskState a grant leaves, or a 409 saying why the resource cannot be accessed so."""
    if resource.provisioning_state != SUCCEEDED:
        raise Conflict(f"'{resource.name}' is {resource.provisioning_state}; grant access once it has succeeded.",
                       code="OperationNotAllowed", target=resource.id)
    state = resource.properties.get("diskState", "Unattached")
    if level == WRITE and state not in ("ReadyToUpload", "ActiveUpload"):
        raise Conflict(f"Write access needs a {kind} created with createOption Upload that has not "
                       f"received its content yet (diskState ReadyToUpload); '{resource.name}' is {state}.",
                       code="OperationNotAllowed", target=resource.id)
    if level == READ and state not in READABLE_STATES:
        raise Conflict(f"Read access needs a {kind} with content (diskState Unattached); '{resource.name}' "
                       f"is {state}.", code="OperationNotAllowed", target=resource.id)
    return "ActiveUpload" if level == WRITE else "ActiveSAS"


def state_after_end(state: str, completed: bool) -> str:
    """diskState once a session ends: revoked (`completed`) or expired. An upload that expires
    leaves nothing visible: the disk is ready for an upload again."""
    if state == "ActiveUpload" and not completed:
        return "ReadyToUpload"
    return "Unattached" if state in ACTIVE_STATES else state


def record_content_size(properties: dict, virtual_size: int) -> None:
    """The sizes a disk or snapshot reports once content arrived (an upload, a revoked Write SAS)."""
    properties["diskSizeBytes"] = virtual_size
    properties["diskSizeGB"] = -(-virtual_size // (1024 ** 3))


def check_not_in_use(resource: Resource, what: str) -> None:
    """A disk or snapshot with an active SAS cannot be used as a source or deleted (Azure's 409)."""
    state = (resource.properties or {}).get("diskState")
    if state in ACTIVE_STATES:
        raise Conflict(f"'{resource.name}' has an active SAS (diskState {state}): it cannot be {what} until "
                       "access is revoked (endGetAccess).", code="OperationNotAllowed", target=resource.id)


def check_uploaded(resource: Resource, what: str) -> None:
    """A disk or snapshot created for upload holds nothing until its upload ends (diskState
    ReadyToUpload): it is no source of anything yet."""
    if (resource.properties or {}).get("diskState") == READY_TO_UPLOAD:
        raise Conflict(f"'{resource.name}' has not received its upload yet (diskState {READY_TO_UPLOAD}): it "
                       f"cannot be {what} until an upload ends (grant Write access, write its pages, revoke "
                       "access).", code="OperationNotAllowed", target=resource.id)
