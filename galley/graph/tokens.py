"""The query's words: names (keywords are names too), string and number literals, operators.

Every token keeps its offset in the query so that errors can say where they are.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import QueryError

NAME, STRING, NUMBER, SYMBOL, END = "name", "string", "number", "symbol", "end"

# Longest first: '==' before '='.
SYMBOLS = ("==", "!=", "=~", "!~", "<=", ">=", "|", ",", "(", ")", "[", "]", ".", "=", "<", ">", "-")
# KQL operators spelled with a hyphen, read as one word.
HYPHENATED = ("project-away", "project-rename", "project-keep", "project-reorder", "mv-expand",
              "mv-apply", "make-series")
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?")
MAX_NUMBER_LENGTH = 64  # longer literals are refused (int() of thousands of digits is slow, then refused)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"'}


@dataclass(frozen=True)
class Token:
    kind: str
    text: str  # as written (for errors)
    value: object  # a string literal's text, a number, or the name
    position: int


def tokenize(query: str) -> list[Token]:
    tokens: list[Token] = []
    i = 0
    while i < len(query):
        ch = query[i]
        if ch.isspace():
            i += 1
        elif query.startswith("//", i):  # a comment, to the end of the line
            end = query.find("\n", i)
            i = len(query) if end < 0 else end
        elif ch in "'\"" or (ch == "@" and query[i + 1:i + 2] in ("'", '"')):
            token = _string(query, i)
            tokens.append(token)
            i += len(token.text)
        elif ch in "0123456789":
            text = _NUMBER.match(query, i).group()
            if len(text) > MAX_NUMBER_LENGTH:
                raise QueryError(f"a number longer than {MAX_NUMBER_LENGTH} characters", query, i, text[:20])
            value = float(text) if any(c in text for c in ".eE") else int(text)
            tokens.append(Token(NUMBER, text, value, i))
            i += len(text)
        elif ch == "!" and _WORD.match(query, i + 1):  # !contains, !in~, !has ...
            word = _word(query, i + 1)
            tokens.append(Token(NAME, "!" + word, "!" + word, i))
            i += 1 + len(word)
        elif _WORD.match(query, i):
            word = _word(query, i)
            tokens.append(Token(NAME, word, word, i))
            i += len(word)
        else:
            symbol = next((s for s in SYMBOLS if query.startswith(s, i)), None)
            if symbol is None:
                raise QueryError(f"unexpected character '{ch}'", query, i, ch)
            tokens.append(Token(SYMBOL, symbol, symbol, i))
            i += len(symbol)
    tokens.append(Token(END, "", None, len(query)))
    return tokens


def _word(query: str, i: int) -> str:
    for hyphenated in HYPHENATED:
        if query.startswith(hyphenated, i) and not _WORD.match(query, i + len(hyphenated)):
            return hyphenated
    word = _WORD.match(query, i).group()
    if word == "in" and query.startswith("~", i + 2):  # in~
        return "in~"
    return word


def _string(query: str, start: int) -> Token:
    """'…' or "…" with backslash escapes; @'…' verbatim."""
    verbatim = query[start] == "@"
    i = start + 1 if verbatim else start
    quote = query[i]
    i += 1
    out = []
    while i < len(query) and query[i] != quote:
        if query[i] == "\\" and not verbatim:
            if i + 1 >= len(query) or query[i + 1] not in _ESCAPES:
                raise QueryError("unknown escape in a string literal (use \\\\, \\', \\\", \\n or \\t)", query, i,
                                 query[i:i + 2])
            out.append(_ESCAPES[query[i + 1]])
            i += 2
        else:
            out.append(query[i])
            i += 1
    if i >= len(query):
        raise QueryError("a string literal is not closed", query, start, query[start:start + 20])
    return Token(STRING, query[start:i + 1], "".join(out), start)
