"""Printing results as az does: `--query` (JMESPath) picks from the result first, then
`--output` formats it: json (default), jsonc (colored on a terminal), table, tsv, yaml, yamlc
(colored on a terminal) or none."""

import json
import os
import shutil
import sys
from collections import OrderedDict
from typing import Any, Callable, Optional, Sequence

import jmespath
import jmespath.exceptions
import yaml

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


class QueryError(Exception):
    """A --query that cannot be parsed, or fails on the result (a function given the wrong type)."""


def check_query(query: Optional[str]) -> Optional[str]:
    """The query, once JMESPath has parsed it (so a bad one stops a command before it runs)."""
    if query is not None:
        try:
            jmespath.compile(query)
        except jmespath.exceptions.JMESPathError as error:
            raise QueryError(f"invalid JMESPath query {query!r}: {one_line(error)}") from None
    return query


def apply_query(result: Any, query: str) -> Any:
    """`result` searched with `query`. Objects the query builds are OrderedDicts, as in az, so
    tsv and table keep the order the query names their keys in.

    az prints a resource with its `properties` flattened into it, so queries written for az say
    `publishingProfile.excludeFromLatest` where Galley's JSON has
    `properties.publishingProfile.excludeFromLatest`: the query sees each resource with both
    (see az_view), and a resource it returns whole prints as Galley's JSON shows it."""
    views: dict[int, dict] = {}
    try:
        found = jmespath.search(query, az_view(result, views), jmespath.Options(dict_cls=OrderedDict))
    except jmespath.exceptions.JMESPathError as error:
        raise QueryError(f"--query {query!r}: {one_line(error)}") from None
    return unview(found, views)


def az_view(result: Any, views: dict[int, dict]) -> Any:
    """The result with each resource (the result, or an item of it) also holding the keys of its
    `properties` that it has not itself; `views` maps each such copy's id to the original."""
    if isinstance(result, list):
        return [az_view(item, views) if isinstance(item, dict) else item for item in result]
    if isinstance(result, dict) and isinstance(result.get("properties"), dict):
        view = {**{k: v for k, v in result["properties"].items() if k not in result}, **result}
        views[id(view)] = result
        return view
    return result


def unview(found: Any, views: dict[int, dict]) -> Any:
    if isinstance(found, dict) and id(found) in views:
        return views[id(found)]
    if isinstance(found, list):
        return [unview(item, views) for item in found]
    if isinstance(found, dict):
        return type(found)((key, unview(value, views)) for key, value in found.items())
    return found


def one_line(error: Exception) -> str:
    return " ".join(str(error).split())


def emit(result: Any, fmt: str = "json", columns: Optional[Columns] = None, query: Optional[str] = None) -> None:
    """Print a command's result: `query` applied first, then the format. None prints nothing.
    With a query the command's own table columns no longer fit, so tables are built from the
    queried data's keys (as az does)."""
    if query is not None:
        result = apply_query(result, query)
        columns = None
    if result is None or fmt == "none":
        return
    if fmt == "table":
        if columns:
            print_table(result, columns)
        else:
            print_auto_table(result, sort_keys=query is None)
        return
    colored = fmt in ("jsonc", "yamlc") and color_enabled()
    if fmt in ("yaml", "yamlc"):
        text = to_yaml(result)
        lexer = "yaml"
    elif fmt == "tsv":
        text, lexer, colored = to_tsv(result), None, False
    else:
        text = json.dumps(result, indent=2, ensure_ascii=False) + "\n"
        lexer = "json"
    if colored:
        text = highlight(text, lexer)
    sys.stdout.write(text)
    sys.stdout.flush()


def color_enabled() -> bool:
    """Colors only on a terminal (and not when NO_COLOR is set): a pipe gets plain json/yaml."""
    try:
        return sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    except (AttributeError, ValueError):
        return False


def highlight(text: str, lexer: str) -> str:
    from pygments import highlight as pygments_highlight
    from pygments.formatters import TerminalFormatter
    from pygments.lexers import get_lexer_by_name

    return pygments_highlight(text, get_lexer_by_name(lexer), TerminalFormatter())


def to_yaml(result: Any) -> str:
    """YAML as az writes it (keys sorted, block style). The JSON round trip turns the
    OrderedDicts of a query into plain dicts, which safe_dump accepts."""
    return yaml.safe_dump(json.loads(json.dumps(result)), default_flow_style=False, allow_unicode=True)


def to_tsv(result: Any) -> str:
    """az's tsv: one line per item of a list (or for a single result); an object's values
    tab-separated in key order (sorted, or the order a query named them), a nested object as an
    empty field and a nested list as its length, so columns stay aligned; strings bare."""
    return "".join(tsv_row(item) + "\n" for item in (result if isinstance(result, list) else [result]))


def tsv_row(item: Any) -> str:
    if isinstance(item, OrderedDict):
        values = list(item.values())
    elif isinstance(item, dict):
        values = [value for _, value in sorted(item.items())]
    elif isinstance(item, list):
        values = item
    elif isinstance(item, bool):
        return str(item).lower()
    else:
        return tsv_field(item)
    return "\t".join(tsv_field(value) for value in values)


def tsv_field(value: Any) -> str:
    if isinstance(value, list):
        return str(len(value))
    if isinstance(value, dict):
        return ""
    return value if isinstance(value, str) else str(value)


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


# Keys az leaves out of tables it builds by itself.
AUTO_TABLE_SKIPS = ("id", "type", "etag")


def auto_columns(rows: list, sort_keys: bool) -> Columns:
    """Columns from the rows themselves (the result of a --query): each key holding a scalar,
    first letter capitalised, in the rows' key order (sorted when `sort_keys`)."""
    names: dict[str, None] = {}
    for row in rows:
        if isinstance(row, dict):
            for key in (sorted(row) if sort_keys else row):
                if key not in AUTO_TABLE_SKIPS and row[key] is not None and not isinstance(row[key], (dict, list)):
                    names.setdefault(key)
    return tuple((key[:1].upper() + key[1:], field_of(key)) for key in names)


def field_of(key: str) -> Getter:
    return lambda row: row.get(key)


def print_auto_table(result: Any, sort_keys: bool) -> None:
    """A table of whatever a query left: objects by their keys, a list of scalars as one column,
    Result; a scalar bare."""
    if not isinstance(result, (list, dict)):
        print_table(result, ())
        return
    rows = result if isinstance(result, list) else [result]
    if not any(isinstance(row, dict) for row in rows):
        rows = [{"Result": row} for row in rows]
    print_table(rows, auto_columns(rows, sort_keys))
