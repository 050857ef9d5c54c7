"""Running a parsed query over rows (dicts of column → value): each expression is compiled once
into a Python function of a row, checking its column names against the columns there are at that
point of the pipeline, then each operator turns (columns, rows) into new ones.

Values follow KQL where it matters to the queries people write: `==`, `in`, `has_cs`, `contains_cs`
and friends compare case-sensitively, `=~`, `in~`, `contains`, `has`, `startswith`, `endswith`
ignore case; string operators read a missing value (null) as the empty string, as tostring() does;
`order by` sorts descending unless told `asc`, nulls last when descending and first when ascending.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import orjson

from . import syntax as s
from .errors import QueryError

Row = dict
Fn = Callable[[Row], object]


@dataclass(frozen=True)
class Result:
    columns: list[str]
    rows: list[Row]


def run(query: s.Query, columns: list[str], rows: list[Row]) -> Result:
    columns = list(columns)
    for operator in query.operators:
        columns, rows = _APPLY[type(operator)](query.text, operator, columns, rows)
    return Result(columns, [{c: row.get(c) for c in columns} for row in rows])


# ---- values -------------------------------------------------------------------------------------

def text_of(value: object) -> str:
    """KQL's tostring(): null is '', booleans are true/false, objects and arrays are JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return orjson.dumps(value).decode()
    return str(value)


def _number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _equal(a: object, b: object) -> bool:
    if _number(a) and _number(b):
        return a == b
    return text_of(a) == text_of(b)


def _order(a: object, b: object) -> int | None:
    """-1, 0, 1; None when the two cannot be ordered (a null, or a number against a word)."""
    if a is None or b is None:
        return None
    if not (_number(a) and _number(b)):
        if _number(a) or _number(b):
            try:
                a, b = float(a), float(b)
            except (TypeError, ValueError):
                return None
        else:
            a, b = text_of(a), text_of(b)
    return (a > b) - (a < b)


def _has(haystack: str, term: str) -> bool:
    """A whole term: not inside a longer run of letters and digits."""
    return re.search(rf"(?<![0-9A-Za-z]){re.escape(term)}(?![0-9A-Za-z])", haystack) is not None


# Case-sensitive; the operators without _cs apply them to lower-cased text.
_WORD_TESTS: dict[str, Callable[[str, str], bool]] = {
    "contains": lambda a, b: b in a, "startswith": str.startswith, "endswith": str.endswith, "has": _has,
}


def _comparison(op: str) -> Callable[[object, object], bool]:
    if op.startswith("!") and op not in ("!=", "!~"):
        positive = _comparison(op[1:])
        return lambda a, b: not positive(a, b)
    if op in ("==", "!="):
        return _equal if op == "==" else (lambda a, b: not _equal(a, b))
    if op in ("=~", "!~"):
        same = lambda a, b: text_of(a).lower() == text_of(b).lower()  # noqa: E731
        return same if op == "=~" else (lambda a, b: not same(a, b))
    if op in ("<", "<=", ">", ">="):
        accept = {"<": (-1,), "<=": (-1, 0), ">": (1,), ">=": (1, 0)}[op]
        return lambda a, b: _order(a, b) in accept
    if op in ("in", "in~"):
        if op == "in":
            return lambda a, values: any(_equal(a, v) for v in values)
        return lambda a, values: text_of(a).lower() in {text_of(v).lower() for v in values}
    word, case_sensitive = (op[:-3], True) if op.endswith("_cs") else (op, False)
    test = _WORD_TESTS[word]
    if case_sensitive:
        return lambda a, b: test(text_of(a), text_of(b))
    return lambda a, b: test(text_of(a).lower(), text_of(b).lower())


_FUNCTIONS: dict[str, Callable[[object], object]] = {
    "tolower": lambda v: text_of(v).lower(), "toupper": lambda v: text_of(v).upper(), "tostring": text_of,
    "strlen": lambda v: len(text_of(v)), "isempty": lambda v: text_of(v) == "",
    "isnotempty": lambda v: text_of(v) != "", "isnull": lambda v: v is None, "isnotnull": lambda v: v is not None,
    "not": lambda v: v is not True,
}


# ---- expressions --------------------------------------------------------------------------------

def compile_expr(text: str, node, columns: list[str]) -> Fn:
    if isinstance(node, s.Literal):
        value = node.value
        return lambda row: value
    if isinstance(node, s.Path):
        return _compile_path(text, node, columns)
    if isinstance(node, s.Call):
        function = _FUNCTIONS[node.function]
        argument = compile_expr(text, node.args[0], columns)
        return lambda row: function(argument(row))
    if isinstance(node, s.Logical):
        parts = [compile_expr(text, part, columns) for part in node.parts]
        if node.op == "and":
            return lambda row: all(part(row) is True for part in parts)
        return lambda row: any(part(row) is True for part in parts)
    if isinstance(node, s.Compare):
        test = _comparison(node.op)
        left = compile_expr(text, node.left, columns)
        if isinstance(node.right, tuple):  # in (…)
            values = tuple(literal.value for literal in node.right)
            return lambda row: test(left(row), values)
        right = compile_expr(text, node.right, columns)
        return lambda row: test(left(row), right(row))
    raise AssertionError(f"unknown expression {node!r}")


def _compile_path(text: str, node: s.Path, columns: list[str]) -> Fn:
    column, steps = node.column, node.steps[1:]
    if column not in columns:
        raise _unknown_column(text, column, node.position, columns)

    def get(row: Row) -> object:
        value = row.get(column)
        for step in steps:
            if isinstance(step, str) and isinstance(value, dict):
                value = value.get(step)
            elif isinstance(step, int) and isinstance(value, list) and -len(value) <= step < len(value):
                value = value[step]
            else:
                return None
        return value
    return get


def _unknown_column(text: str, name: str, position: int, columns: list[str]) -> QueryError:
    hint = next((f"; did you mean '{c}'? (column names are case-sensitive)" for c in columns
                 if c.lower() == name.lower()), f"; the columns here are {', '.join(columns)}")
    return QueryError(f"there is no column '{name}'{hint}", text, position, name)


# ---- operators ----------------------------------------------------------------------------------

def _where(text, op: s.Where, columns, rows):
    predicate = compile_expr(text, op.predicate, columns)
    return columns, [row for row in rows if predicate(row) is True]


def _named(text, items, columns) -> list[tuple[str, Fn]]:
    named, seen = [], set()
    for item in items:
        if item.name in seen:
            raise QueryError(f"the column '{item.name}' is named twice", text, item.position, item.name)
        seen.add(item.name)
        named.append((item.name, compile_expr(text, item.expr, columns)))
    return named


def _project(text, op: s.Project, columns, rows):
    named = _named(text, op.items, columns)
    return [n for n, _ in named], [{n: f(row) for n, f in named} for row in rows]


def _project_away(text, op: s.ProjectAway, columns, rows):
    for name, position in op.names:
        if name not in columns:
            raise _unknown_column(text, name, position, columns)
    gone = {name for name, _ in op.names}
    return [c for c in columns if c not in gone], rows


def _extend(text, op: s.Extend, columns, rows):
    named = _named(text, op.items, columns)
    added = [n for n, _ in named if n not in columns]
    return columns + added, [{**row, **{n: f(row) for n, f in named}} for row in rows]


def _sort(text, op: s.Sort, columns, rows):
    rows = list(rows)
    for key in reversed(op.keys):  # stable sorts, the last key first
        get = compile_expr(text, key.expr, columns)
        null_rank = 0 if key.nulls_first != key.descending else 1
        rows.sort(key=lambda row: _sort_key(get(row), null_rank), reverse=key.descending)
    return columns, rows


def _sort_key(value: object, null_rank: int) -> tuple:
    if value is None:
        return (null_rank, 0, 0)
    rank = 1 - null_rank
    if isinstance(value, bool):
        return (rank, 0, value)
    if _number(value):
        return (rank, 1, value)
    if isinstance(value, str):
        return (rank, 2, value)
    return (rank, 3, text_of(value))


def _limit(text, op: s.Limit, columns, rows):
    return columns, rows[:op.count]


def _count(text, op: s.Count, columns, rows):
    return ["Count"], [{"Count": len(rows)}]


def _distinct(text, op: s.Distinct, columns, rows):
    named = _named(text, op.items, columns)
    seen: dict[bytes, Row] = {}
    for row in rows:
        picked = {n: f(row) for n, f in named}
        seen.setdefault(orjson.dumps(list(picked.values())), picked)
    return [n for n, _ in named], list(seen.values())


def _summarize(text, op: s.Summarize, columns, rows):
    named = _named(text, op.by, columns)
    counts = list(op.counts)
    names = [n for n, _ in named] + counts
    if len(set(names)) < len(names):
        twice = next(n for n in names if names.count(n) > 1)
        raise QueryError(f"the column '{twice}' is named twice", text, op.position, twice)
    groups: dict[bytes, tuple[Row, int]] = {}
    for row in rows:
        picked = {n: f(row) for n, f in named}
        group_key = orjson.dumps(list(picked.values()))
        found = groups.get(group_key)
        groups[group_key] = (picked, found[1] + 1 if found else 1)
    if not named and not groups:
        groups[b""] = ({}, 0)  # `summarize count()` of nothing is one row: 0
    return names, [{**picked, **{name: total for name in counts}} for picked, total in groups.values()]


_APPLY = {s.Where: _where, s.Project: _project, s.ProjectAway: _project_away, s.Extend: _extend, s.Sort: _sort,
          s.Limit: _limit, s.Count: _count, s.Distinct: _distinct, s.Summarize: _summarize}
