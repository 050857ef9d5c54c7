"""Azure Resource Graph's query language, the part of it inventory queries use, as plain Python.

    Resources | where type =~ 'Microsoft.Compute/galleries' | project name, id, resourceGroup

tokens.py reads the words, parser.py builds syntax.py's tree (or a QueryError naming the token
and its place), evaluate.py runs it over rows, rows.py says what ARG's rows look like. No I/O:
the api layer reads the rows the caller may see and hands them in.
"""

from .errors import QueryError
from .evaluate import Result, run
from .parser import parse
from .rows import COLUMNS, table_of

__all__ = ["COLUMNS", "QueryError", "Result", "parse", "run", "table_of"]
