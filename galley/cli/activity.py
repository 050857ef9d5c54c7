"""`galley activity-log list`: the subscription's activity log, shaped like `az monitor activity-log list`."""

import re
from datetime import datetime, timedelta, timezone
from typing import Annotated, Optional

import typer

from galley.cli.common import OptionalResourceGroupOpt, Session, arm_command, usage_error
from galley.cli.output import field

app = typer.Typer(help="Read the activity log: every write and every refused request.", no_args_is_help=True)

API = "2015-04-01"
COLUMNS = (("Time", field("eventTimestamp")), ("Caller", field("caller")),
           ("Operation", field("operationName.value")), ("Status", field("status.value")),
           ("SubStatus", field("subStatus.value")), ("Resource", field("resourceId")))
_OFFSET = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_offset(text: str) -> timedelta:
    """az's period: '6h', '7d', '1d12h', '30m'."""
    match = _OFFSET.match(text.strip().lower())
    if not text.strip() or match is None:
        raise usage_error(f"--offset '{text}' is not a period such as 1h, 7d or 1d12h")
    days, hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


def _moment(text: str, option: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise usage_error(f"{option} '{text}' is not an ISO 8601 time such as 2026-01-31T12:00:00Z")
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def time_window(start_time: Optional[str], end_time: Optional[str], offset: str) -> tuple[str, str]:
    """As az: neither given, the last `offset`; one given, `offset` from it."""
    period = parse_offset(offset)
    end = _moment(end_time, "--end-time") if end_time else None
    start = _moment(start_time, "--start-time") if start_time else None
    if start is None:
        end = end or datetime.now(timezone.utc)
        start = end - period
    elif end is None:
        end = start + period
    return _iso(start), _iso(end)


def _quoted(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


@arm_command(app, "list", COLUMNS)
def activity_list(
    session: Session,
    *,
    start_time: Annotated[Optional[str], typer.Option("--start-time", help="Start of the window (ISO 8601). Default: end time minus --offset.")] = None,
    end_time: Annotated[Optional[str], typer.Option("--end-time", help="End of the window (ISO 8601). Default: now, or start time plus --offset.")] = None,
    offset: Annotated[str, typer.Option("--offset", help="Length of the window when one end is missing: 1h, 7d, 1d12h.")] = "6h",
    resource_group: OptionalResourceGroupOpt = None,
    resource_id: Annotated[Optional[str], typer.Option("--resource-id", help="Only events of this resource.")] = None,
    correlation_id: Annotated[Optional[str], typer.Option("--correlation-id", help="Only events of this correlation id.")] = None,
    caller: Annotated[Optional[str], typer.Option("--caller", help="Only events of this caller (appid or object id, or 'anonymous').")] = None,
    status: Annotated[Optional[str], typer.Option("--status", help="Succeeded, Accepted or Failed.")] = None,
    max_events: Annotated[int, typer.Option("--max-events", help="Most events to show (newest first).")] = 50,
):
    """List the activity log's events in a time window (newest first)."""
    start, end = time_window(start_time, end_time, offset)
    clauses = [f"eventTimestamp ge {_quoted(start)}", f"eventTimestamp le {_quoted(end)}"]
    for name, value in (("resourceGroupName", resource_group), ("resourceId", resource_id),
                        ("correlationId", correlation_id), ("caller", caller), ("status", status)):
        if value is not None:
            clauses.append(f"{name} eq {_quoted(value)}")
    path = f"/subscriptions/{session.subscription}/providers/Microsoft.Insights/eventtypes/management/values"
    return session.client.list(path, API, params={"$filter": " and ".join(clauses)})[:max_events]
