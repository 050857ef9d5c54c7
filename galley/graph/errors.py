"""A query Galley cannot run, as Azure Resource Graph reports one: `BadRequest`, with details
naming the token and where it is."""

from __future__ import annotations

from ..domain.errors import ArmError


class QueryError(ArmError):
    code = "BadRequest"

    def __init__(self, problem: str, query: str, position: int, token: str | None = None) -> None:
        self.line, self.column = _line_and_column(query, position)
        self.problem = problem
        self.token = token
        super().__init__(f"The query is invalid: {problem} (line {self.line}, column {self.column + 1}).",
                         target="query")

    def to_body(self) -> dict:
        body = super().to_body()
        body["error"]["details"] = [
            {"code": "InvalidQuery", "message": self.message},
            {"code": "ParserFailure", "message": self.problem, "line": self.line,
             "characterPositionInLine": self.column, "token": self.token or ""},
        ]
        return body


def _line_and_column(query: str, position: int) -> tuple[int, int]:
    """1-based line; 0-based position in that line (ARG's characterPositionInLine)."""
    before = query[:position]
    line = before.count("\n") + 1
    return line, position - (before.rfind("\n") + 1)
