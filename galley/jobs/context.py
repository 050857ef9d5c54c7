"""What a job handler works with."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Optional

from ..content.engine import ContentEngine
from ..content.locations import Locations
from ..store.sql_store import SqlStore

if TYPE_CHECKING:
    from ..access.service import AccessService
    from ..domain.service import ResourceService
    from .vm_work import Compute


@dataclass
class JobContext:
    sql: SqlStore
    content: ContentEngine
    locations: Locations
    heartbeat: Callable[[], None] = lambda: None
    # Only the build worker's handler uses these: it creates resources the way a user would.
    service: Optional["ResourceService"] = None
    home: Optional[Path] = None
    access: Optional["AccessService"] = None  # a build acts as its template's identity
    compute: Optional["Compute"] = None  # this host's VMs: QEMU machines and disk files
