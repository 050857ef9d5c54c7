"""The parsed query: a table, then a pipeline of operators over expressions.

    query      := table ('|' operator)*
    operator   := where expr | project item, … | project-away name, … | extend item, …
                | (order | sort) by key, … | top N by key | (limit | take) N | count
                | distinct item, … | summarize [name =] count(), … [by item, …]
    key        := expr [asc | desc] [nulls first | nulls last]
    item       := name = expr | expr
    expr       := conjunct (or conjunct)*
    conjunct   := comparison (and comparison)*
    comparison := value [op value | in-op (literal, …)]
    value      := literal | path | function(expr, …) | (expr)
    path       := name (.name | [string] | [number])*
"""

from __future__ import annotations

from dataclasses import dataclass

# ---- expressions --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Literal:
    value: object
    position: int


@dataclass(frozen=True)
class Path:
    steps: tuple  # a column name, then property names (str) and list indexes (int)
    position: int

    @property
    def column(self) -> str:
        return self.steps[0]


@dataclass(frozen=True)
class Call:
    function: str
    args: tuple
    position: int


@dataclass(frozen=True)
class Compare:
    op: str  # ==, =~, contains, !startswith, in~, <= …
    left: object
    right: object  # an expression, or a tuple of Literals for the in-operators
    position: int


@dataclass(frozen=True)
class Logical:
    op: str  # and | or
    parts: tuple
    position: int


# ---- operators ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Item:
    """A named expression: `name = expr`, or an expression named after itself."""

    name: str
    expr: object
    position: int


@dataclass(frozen=True)
class SortKey:
    expr: object
    descending: bool
    nulls_first: bool


@dataclass(frozen=True)
class Where:
    predicate: object
    position: int


@dataclass(frozen=True)
class Project:
    items: tuple
    position: int


@dataclass(frozen=True)
class ProjectAway:
    names: tuple  # (name, position) pairs
    position: int


@dataclass(frozen=True)
class Extend:
    items: tuple
    position: int


@dataclass(frozen=True)
class Sort:
    keys: tuple
    position: int


@dataclass(frozen=True)
class Limit:
    count: int
    position: int


@dataclass(frozen=True)
class Count:
    position: int


@dataclass(frozen=True)
class Distinct:
    items: tuple
    position: int


@dataclass(frozen=True)
class Summarize:
    counts: tuple  # names of count() columns
    by: tuple  # Items
    position: int


@dataclass(frozen=True)
class Query:
    text: str
    table: str
    table_position: int
    operators: tuple
