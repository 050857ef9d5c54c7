"""The query's text → syntax.Query, or a QueryError naming the token that does not fit."""

from __future__ import annotations

from . import syntax as s
from .errors import QueryError
from .tokens import END, NAME, NUMBER, STRING, SYMBOL, Token, tokenize

COMPARISONS = {"==", "!=", "=~", "!~", "<", "<=", ">", ">="}
WORD_COMPARISONS = {f"{neg}{word}{cs}" for neg in ("", "!") for word in ("contains", "startswith", "endswith", "has")
                    for cs in ("", "_cs")}
IN_OPERATORS = {"in", "!in", "in~", "!in~"}
FOLLOWERS = {"and", "or", "asc", "desc", "nulls", "by"}  # the words that may come after a value
FUNCTIONS = {"tolower": 1, "toupper": 1, "tostring": 1, "strlen": 1, "isempty": 1, "isnotempty": 1,
             "isnull": 1, "isnotnull": 1, "not": 1}
OPERATORS = ("where", "project", "project-away", "extend", "order by", "sort by", "top", "limit", "take",
             "count", "distinct", "summarize")
MAX_QUERY_LENGTH = 20_000
MAX_NESTING = 50


def parse(text: str) -> s.Query:
    if len(text) > MAX_QUERY_LENGTH:
        raise QueryError(f"the query is longer than {MAX_QUERY_LENGTH} characters", text, MAX_QUERY_LENGTH)
    return _Parser(text).query()


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.i = 0
        self.unnamed = 0
        self.depth = 0

    # ---- token handling ----------------------------------------------------------------------
    @property
    def token(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def at(self, text: str) -> bool:
        return self.token.kind in (NAME, SYMBOL) and self.token.text == text

    def accept(self, text: str) -> bool:
        if self.at(text):
            self.i += 1
            return True
        return False

    def expect(self, text: str, what: str | None = None) -> Token:
        if not self.at(text):
            self.fail(f"expected {what or repr(text)}")
        return self.take()

    def fail(self, expected: str, token: Token | None = None):
        token = token or self.token
        found = "the end of the query" if token.kind == END else f"'{token.text}'"
        raise QueryError(f"{expected}, found {found}", self.text, token.position, token.text)

    def name(self, what: str = "a name") -> tuple[str, int]:
        token = self.token
        if token.kind != NAME or token.text.startswith("!"):
            self.fail(f"expected {what}")
        self.i += 1
        return token.text, token.position

    # ---- the pipeline ------------------------------------------------------------------------
    def query(self) -> s.Query:
        table, position = self.name("a table name such as Resources")
        operators = []
        while self.accept("|"):
            operators.extend(self.operator())
        if self.token.kind != END:
            self.fail("expected '|' or the end of the query")
        return s.Query(self.text, table, position, tuple(operators))

    def operator(self) -> list:
        token = self.token
        word = token.text if token.kind == NAME else ""
        if word in ("order", "sort"):
            self.take()
            self.expect("by", f"'by' after '{word}'")
            return [s.Sort(tuple(self.listed(self.sort_key)), token.position)]
        handler = {"where": self.where, "project": self.project, "project-away": self.project_away,
                   "extend": self.extend, "top": self.top, "limit": self.limit, "take": self.limit,
                   "count": self.count, "distinct": self.distinct, "summarize": self.summarize}.get(word)
        if handler is None:
            supported = ", ".join(OPERATORS)
            if token.kind == NAME:
                raise QueryError(f"the operator '{word}' is not supported; Galley supports {supported}",
                                 self.text, token.position, word)
            self.fail(f"expected an operator ({supported})")
        self.take()
        return handler(token.position)

    def listed(self, parse_one) -> list:
        found = [parse_one()]
        while self.accept(","):
            found.append(parse_one())
        return found

    def where(self, position: int) -> list:
        return [s.Where(self.expr(), position)]

    def project(self, position: int) -> list:
        return [s.Project(tuple(self.listed(self.item)), position)]

    def project_away(self, position: int) -> list:
        return [s.ProjectAway(tuple(self.listed(lambda: self.name("a column name"))), position)]

    def extend(self, position: int) -> list:
        return [s.Extend(tuple(self.listed(self.item)), position)]

    def distinct(self, position: int) -> list:
        return [s.Distinct(tuple(self.listed(self.item)), position)]

    def top(self, position: int) -> list:
        count = self.whole_number()
        self.expect("by", "'by' after top's count")
        return [s.Sort((self.sort_key(),), position), s.Limit(count, position)]

    def limit(self, position: int) -> list:
        return [s.Limit(self.whole_number(), position)]

    def count(self, position: int) -> list:
        return [s.Count(position)]

    def summarize(self, position: int) -> list:
        counts = self.listed(self.aggregation)
        by = tuple(self.listed(self.item)) if self.accept("by") else ()
        return [s.Summarize(tuple(counts), by, position)]

    def aggregation(self) -> str:
        name = "count_"
        if self.token.kind == NAME and self.tokens[self.i + 1].text == "=":
            name = self.take().text
            self.take()
        if self.token.kind != NAME or self.token.text != "count":
            self.fail("expected count() (the only aggregation Galley supports)")
        self.take()
        self.expect("(", "'(' after count")
        self.expect(")", "')': count() takes no argument")
        return name

    def whole_number(self) -> int:
        token = self.token
        if token.kind != NUMBER or not isinstance(token.value, int):
            self.fail("expected a whole number")
        self.take()
        return token.value

    def sort_key(self) -> s.SortKey:
        expr = self.expr()
        descending = True  # KQL sorts descending unless told otherwise
        if self.accept("asc"):
            descending = False
        else:
            self.accept("desc")
        nulls_first = not descending
        if self.accept("nulls"):
            if self.accept("first"):
                nulls_first = True
            elif self.accept("last"):
                nulls_first = False
            else:
                self.fail("expected 'first' or 'last' after 'nulls'")
        return s.SortKey(expr, descending, nulls_first)

    def item(self) -> s.Item:
        token = self.token
        if token.kind == NAME and self.tokens[self.i + 1].text == "=" and self.tokens[self.i + 1].kind == SYMBOL:
            self.i += 2
            return s.Item(token.text, self.expr(), token.position)
        expr = self.expr()
        if isinstance(expr, s.Path):
            name = "_".join(str(step) for step in expr.steps)
        else:
            self.unnamed += 1
            name = f"Column{self.unnamed}"
        return s.Item(name, expr, token.position)

    # ---- expressions -------------------------------------------------------------------------
    def expr(self):
        self.depth += 1
        if self.depth > MAX_NESTING:  # before Python's own recursion limit turns it into a 500
            raise QueryError(f"parentheses and calls are nested more than {MAX_NESTING} deep", self.text,
                             self.token.position, self.token.text)
        found = self.logical("or", self.conjunct)
        self.depth -= 1
        return found

    def conjunct(self):
        return self.logical("and", self.comparison)

    def logical(self, op: str, parse_part):
        position = self.token.position
        parts = [parse_part()]
        while self.accept(op):
            parts.append(parse_part())
        return parts[0] if len(parts) == 1 else s.Logical(op, tuple(parts), position)

    def comparison(self):
        left = self.value()
        token = self.token
        if ((token.kind == SYMBOL and token.text in COMPARISONS)
                or (token.kind == NAME and token.text in WORD_COMPARISONS)):
            self.take()
            return s.Compare(token.text, left, self.value(), token.position)
        if token.kind == NAME and token.text in IN_OPERATORS:
            self.take()
            self.expect("(", f"'(' and a list of values after '{token.text}'")
            values = tuple(self.listed(self.literal))
            self.expect(")", "',' or ')'")
            return s.Compare(token.text, left, values, token.position)
        if token.kind == NAME and token.text not in FOLLOWERS:
            raise QueryError(f"the comparison '{token.text}' is not supported; Galley supports ==, !=, =~, !~, "
                             "<, <=, >, >=, contains, startswith, endswith, has (each also as !… and …_cs), "
                             "in, in~, !in, !in~", self.text, token.position, token.text)
        return left

    def value(self):
        token = self.token
        if (token.kind in (STRING, NUMBER) or (token.kind == NAME and token.text in ("true", "false"))
                or (token.kind == SYMBOL and token.text == "-")):
            return self.literal()
        if self.accept("("):
            inner = self.expr()
            self.expect(")", "')'")
            return inner
        if token.kind == NAME and not token.text.startswith("!") and self.tokens[self.i + 1].text == "(":
            return self.call()
        if token.kind == NAME and not token.text.startswith("!"):
            return self.path()
        self.fail("expected a column, a value or '('")

    def literal(self) -> s.Literal:
        token = self.take()
        if token.kind in (STRING, NUMBER):
            return s.Literal(token.value, token.position)
        if token.kind == NAME and token.text in ("true", "false"):
            return s.Literal(token.text == "true", token.position)
        if token.kind == SYMBOL and token.text == "-" and self.token.kind == NUMBER:
            return s.Literal(-self.take().value, token.position)
        self.fail("expected a string, a number, true or false", token)

    def call(self) -> s.Call:
        name, position = self.name()
        if name not in FUNCTIONS:
            raise QueryError(f"the function '{name}' is not supported; Galley supports "
                             f"{', '.join(sorted(FUNCTIONS))}", self.text, position, name)
        self.expect("(")
        args = tuple(self.listed(self.expr)) if not self.at(")") else ()
        self.expect(")", "',' or ')'")
        if len(args) != FUNCTIONS[name]:
            raise QueryError(f"{name}() takes {FUNCTIONS[name]} argument(s), not {len(args)}", self.text,
                             position, name)
        return s.Call(name, args, position)

    def path(self) -> s.Path:
        name, position = self.name("a column name")
        steps: list = [name]
        while True:
            if self.accept("."):
                steps.append(self.name("a property name after '.'")[0])
            elif self.accept("["):
                token = self.take()
                if token.kind == STRING or (token.kind == NUMBER and isinstance(token.value, int)):
                    steps.append(token.value)
                else:
                    self.fail("expected a quoted property name or a whole number inside '[ ]'", token)
                self.expect("]", "']'")
            else:
                return s.Path(tuple(steps), position)
