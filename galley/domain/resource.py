"""The records the service keeps: resources (any ARM type) and long-running operations."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone

# provisioningState values, as ARM spells them.
CREATING, UPDATING, DELETING = "Creating", "Updating", "Deleting"
SUCCEEDED, FAILED = "Succeeded", "Failed"
TRANSITIONAL_STATES = (CREATING, UPDATING, DELETING)

# Properties whose names start with this are Galley's own bookkeeping: never rendered, never
# taken from a request.
HIDDEN_PREFIX = "_"

# Async-operation statuses.
IN_PROGRESS, CANCELED = "InProgress", "Canceled"


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def iso(moment: datetime) -> str:
    """UTC, fixed width, so that these strings sort and compare as the moments do."""
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def sortable_time(text: str) -> str:
    return iso(datetime.fromisoformat(text.replace("Z", "+00:00")))


@dataclass
class Resource:
    id: str
    type: str
    name: str
    subscription_id: str
    resource_group: str | None
    location: str | None
    properties: dict = field(default_factory=dict)
    tags: dict = field(default_factory=dict)
    sku: dict | None = None
    provisioning_state: str = CREATING
    # Derived columns the store indexes on.
    identity_key: str | None = None
    version: tuple[int, int, int] | None = None
    exclude_from_latest: bool = False
    end_of_life: str | None = None
    source_key: str | None = None
    created_at: str = ""
    updated_at: str = ""

    @property
    def key(self) -> str:
        return self.id.lower()


@dataclass
class TargetRegion:
    """A version's replication target and the status of the work that places it there."""

    region: str
    replica_count: int
    storage_account_type: str
    exclude_from_latest: bool = False
    state: str = "Replicating"
    progress: int = 0
    details: str = ""


@dataclass
class Operation:
    resource_id: str
    resource_type: str
    action: str  # create | update | delete
    region: str
    subscription_id: str
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    status: str = IN_PROGRESS
    error: dict | None = None
    start_time: str = field(default_factory=lambda: iso(utc_now()))
    end_time: str | None = None
    attempts: int = 0  # how many times a worker claimed it (more than one: a worker died on it)
    payload: dict | None = None  # what the request asked beyond the resource (a run-command's script)
    result: dict | None = None   # what the action produced (a run-command's output)

    @property
    def resource_key(self) -> str:
        return self.resource_id.lower()
