"""What a job handler works with."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from ..content.engine import ContentEngine
from ..content.locations import Locations
from ..store.sql_store import SqlStore


@dataclass
class JobContext:
    sql: SqlStore
    content: ContentEngine
    locations: Locations
    heartbeat: Callable[[], None] = lambda: None
