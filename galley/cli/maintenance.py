"""`galley usage` (what the subscription's image versions occupy, per region, and the bytes
replication moved between regions) and `galley store …` (upkeep of the content stores)."""

import sys
from typing import Annotated, Any

import typer

from galley.cli.client import API_GALLERY, json_body
from galley.cli.common import Session, arm_command
from galley.cli.output import build_table, make_console

store_app = typer.Typer(help="Check and clean the server's content stores.", no_args_is_help=True)

LOST_EXIT_CODE = 3
INCOMPLETE_EXIT_CODE = 4  # some store could not be read: its chunks were not checked


# -- usage ----------------------------------------------------------------------------------


def usage_path(subscription: str) -> str:
    return f"/subscriptions/{subscription}/providers/Microsoft.Compute/galleyUsage"


def version_label(resource_id: str) -> str:
    """'…/galleries/g/images/d/versions/1.0.0' -> 'g/d/1.0.0' (what a person reads)."""
    parts = (resource_id or "").split("/")
    try:
        at = [p.lower() for p in parts].index("galleries")
        return f"{parts[at + 1]}/{parts[at + 3]}/{parts[at + 5]}"
    except (ValueError, IndexError):
        return resource_id


def get(key: str) -> Any:
    return lambda row: row.get(key)


def usage_tables(report: dict) -> list[tuple[str, list, tuple]]:
    """The usage report as (title, rows, columns) tables."""
    version_rows = []
    for version in report.get("versions") or []:
        regions = version.get("regions") or [{}]
        for region in regions:
            version_rows.append({"version": version_label(version.get("id", "")),
                                 "occupied": version.get("occupiedBytes"),
                                 "provisioned": version.get("provisionedBytes"),
                                 "region": region.get("region"), "replicas": region.get("replicas"),
                                 "storage": region.get("storageBytes")})
    totals = report.get("totals") or {}
    return [
        ("Image versions", version_rows, (
            ("Version", get("version")), ("OccupiedBytes", get("occupied")), ("ProvisionedBytes", get("provisioned")),
            ("Region", get("region")), ("Replicas", get("replicas")), ("StorageBytes", get("storage")))),
        ("Regions", report.get("regions") or [], (
            ("Region", get("region")), ("LogicalBytes", get("logicalBytes")), ("PhysicalBytes", get("physicalBytes")),
            ("PhysicalUncompressedBytes", get("physicalUncompressedBytes")))),
        ("Egress", report.get("egress") or [], (("From", get("from")), ("To", get("to")), ("Bytes", get("bytes")))),
        ("Totals", [totals], (("LogicalBytes", get("logicalBytes")), ("PhysicalBytes", get("physicalBytes")),
                              ("EgressBytes", get("egressBytes")))),
    ]


def print_usage_tables(report: dict) -> None:
    console = make_console()
    for i, (title, rows, columns) in enumerate(usage_tables(report)):
        if i:
            console.print()
        console.print(title, markup=False, highlight=False)
        console.print(build_table(rows, columns))


def usage(session: Session):
    """Show the storage the subscription's image versions use, and replication's egress.

    Per version: occupied bytes (the data written, not the provisioned size) and per region storage = occupied x replicas. Per region: logical and physical (deduplicated, compressed) bytes. Egress: bytes replication moved between regions."""
    report = session.client.get(usage_path(session.subscription), API_GALLERY)
    if session.output == "table" and not session.query:
        print_usage_tables(report or {})
        return None
    return report


# -- store upkeep ----------------------------------------------------------------------------

VERIFY_COLUMNS = (
    ("Checked", get("checked")),
    ("Damaged", lambda r: len(r.get("damaged") or [])),
    ("Repaired", lambda r: len(r.get("repaired") or [])),
    ("Lost", lambda r: len(r.get("lost") or [])),
    ("Skipped", lambda r: r.get("skipped") or 0),
    ("Unreachable", lambda r: ",".join(u["store"] for u in r.get("unreachable") or []) or "-"),
)
GC_COLUMNS = (("ContentsDropped", get("contents_dropped")), ("ChunksDeleted", get("chunks_deleted")),
              ("LogSegmentsDeleted", get("log_segments_deleted")))


def verify(
    session: Session,
    *,
    no_repair: Annotated[bool, typer.Option("--no-repair", help="Only report damage; do not re-copy damaged chunks from another store.")] = False,
):
    """Read every chunk every store should hold and re-copy damaged ones from another store.

    Exits with code 3 when some chunk is lost (damaged, with no good copy anywhere), and with 4
    when some store could not be reached (its chunks were skipped; run it again once it is back)."""
    response = session.client.send("POST", "/galley/store/verify",
                                   params={"repair": "false" if no_repair else "true"})
    report = json_body(response) or {}
    lost, unreachable = report.get("lost") or [], report.get("unreachable") or []
    if lost or unreachable:
        session.emit(report, VERIFY_COLUMNS)
    if lost:
        sys.stderr.write(f"ERROR: {len(lost)} chunk(s) lost: damaged in a store with no good copy elsewhere.\n")
    for store in unreachable:
        sys.stderr.write(f"WARNING: store {store['store']} could not be reached: {store['problem']}\n")
    if unreachable:
        sys.stderr.write(f"WARNING: {report.get('skipped', 0)} chunk(s) were not checked; run verify again "
                         "once the store is back.\n")
    if lost:
        raise typer.Exit(LOST_EXIT_CODE)
    if unreachable:
        raise typer.Exit(INCOMPLETE_EXIT_CODE)
    return report


def gc(
    session: Session,
    *,
    grace_seconds: Annotated[int | None, typer.Option(
        "--grace-seconds", min=0,
        help="Keep half-written contents and unrecorded chunks younger than this (default: the "
             "server's, 3600). Whatever the grace, what a live upload or job is writing is kept.")] = None,
):
    """Drop disk contents nothing uses any more and delete the chunks no content needs."""
    params = {} if grace_seconds is None else {"graceSeconds": str(grace_seconds)}
    return json_body(session.client.send("POST", "/galley/store/gc", params=params))


arm_command(store_app, "verify", VERIFY_COLUMNS)(verify)
arm_command(store_app, "gc", GC_COLUMNS)(gc)
