"""Printing results: `--output json` (default), `table`, or `none`."""

import json
import shutil
import sys
from typing import Any, Callable, Optional, Sequence

from rich.box import Box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from galley.cli.paths import resource_group_of


# az-like tables: a header, a row of dashes under each column, then plain rows.
DASHED = Box("    \n    \n -  \n    \n    \n    \n    \n    \n", ascii=True)

Getter = Callable[[dict], Any]
Columns = Sequence[tuple[str, Getter]]


def field(dotted: str) -> Getter:
    """Getter for a dotted path such as 'properties.identifier.sku'."""

    def get(resource: dict) -> Any:
        value: Any = resource
        for key in dotted.split("."):
            if not isinstance(value, dict):
                return None
            value = value.get(key)
        return value

    return get


def resource_group(resource: dict) -> str:
    return resource_group_of(resource.get("id"))


NAME = ("Name", field("name"))
GROUP = ("ResourceGroup", resource_group)
LOCATION = ("Location", field("location"))
STATE = ("ProvisioningState", field("properties.provisioningState"))
DEFAULT_COLUMNS: Columns = (NAME, GROUP, LOCATION, STATE)


def emit(result: Any, fmt: str = "json", columns: Optional[Columns] = None) -> None:
    """Print a command's result in the chosen format. None prints nothing."""
    if result is None or fmt == "none":
        return
    if fmt == "table":
        print_table(result, columns or DEFAULT_COLUMNS)
    else:
        sys.stdout.write(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
        sys.stdout.flush()


def cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def build_table(rows: list, columns: Columns) -> Table:
    table = Table(box=DASHED, show_edge=False, pad_edge=False, padding=(0, 1, 0, 0), header_style="bold")
    for header, _ in columns:
        table.add_column(header, overflow="fold")
    for row in rows:
        # Text(), not str: resource data must never be read as Rich markup.
        table.add_row(*(Text(cell(get(row)) if isinstance(row, dict) else "") for _, get in columns))
    return table


def make_console() -> Console:
    """A console that writes plain text when stdout is not a terminal, and
    never squeezes a table into 80 columns when piped."""
    if sys.stdout.isatty():
        return Console(highlight=False)
    width = max(shutil.get_terminal_size((200, 24)).columns, 200)
    return Console(highlight=False, no_color=True, width=width, force_terminal=False)


def print_table(result: Any, columns: Columns) -> None:
    console = make_console()
    if isinstance(result, list):
        rows = result
    elif isinstance(result, dict):
        rows = [result]
    else:  # a scalar such as `group exists`
        console.print(cell(result).lower() if isinstance(result, bool) else cell(result), markup=False)
        return
    console.print(build_table(rows, columns))
