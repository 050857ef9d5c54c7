"""ARM template expressions: `"[concat(parameters('prefix'), '-vm')]"` parsed and evaluated.

A string value that starts with `[` and ends with `]` is an expression (`[[` escapes a literal
bracket). An expression is a function call, a string literal in single quotes (`''` is a quote),
an integer, and any chain of `.property` and `[index]` after them. Property names compare
case-insensitively, as ARM's do.

The functions are the ones templates commonly use (and every one `az vm create` emits), with
ARM's meaning; anything else is refused by name when the template is checked, before anything is
deployed. Functions that need the deployment (parameters, variables, copyIndex, resourceGroup,
reference, …) come from the `Scope` the evaluator is given. `reference()` reads a resource through
the same API as every other request, so evaluation is asynchronous.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ..domain.errors import ArmError


class TemplateError(ArmError):
    code = "InvalidTemplate"


# ---- parsing ---------------------------------------------------------------------------------

_TOKEN = re.compile(r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>-?\d+)|(?P<name>[A-Za-z_$][A-Za-z0-9_$]*)|"
                    r"(?P<punct>[(),.\[\]]))")


@dataclass(frozen=True)
class Literal:
    value: Any


@dataclass(frozen=True)
class Call:
    name: str
    args: tuple


@dataclass(frozen=True)
class Property:
    target: Any
    name: str


@dataclass(frozen=True)
class Index:
    target: Any
    index: Any


def is_expression(value: object) -> bool:
    return isinstance(value, str) and value.startswith("[") and value.endswith("]") \
        and not value.startswith("[[")


def parse(text: str):
    """The syntax tree of an expression string (with its brackets)."""
    tokens = _tokens(text[1:-1], text)
    parser = _Parser(tokens, text)
    node = parser.expression()
    if parser.position != len(tokens):
        raise TemplateError(f"The template language expression '{text}' is not valid: unexpected "
                            f"'{tokens[parser.position][1]}'.")
    return node


def _tokens(body: str, text: str) -> list[tuple[str, str]]:
    tokens, position = [], 0
    while position < len(body):
        if body[position:].strip() == "":
            break
        match = _TOKEN.match(body, position)
        if match is None:
            raise TemplateError(f"The template language expression '{text}' is not valid: cannot read "
                                f"'{body[position:].strip()[:20]}'.")
        kind = match.lastgroup
        tokens.append((kind, match.group(kind)))
        position = match.end()
    return tokens


MAX_NESTING = 64  # calls within calls: far beyond what templates use, far below Python's stack


class _Parser:
    def __init__(self, tokens: list[tuple[str, str]], text: str) -> None:
        self.tokens = tokens
        self.position = 0
        self.text = text
        self.depth = 0

    def _peek(self) -> tuple[str, str] | None:
        return self.tokens[self.position] if self.position < len(self.tokens) else None

    def _take(self, punct: str | None = None) -> tuple[str, str]:
        token = self._peek()
        if token is None or (punct is not None and token != ("punct", punct)):
            expected = f"'{punct}'" if punct else "more"
            raise TemplateError(f"The template language expression '{self.text}' is not valid: expected "
                                f"{expected}.")
        self.position += 1
        return token

    def expression(self):
        self.depth += 1
        if self.depth > MAX_NESTING:
            raise TemplateError(f"The template language expression '{self.text[:80]}…' nests deeper than "
                                f"{MAX_NESTING} levels.")
        try:
            return self._expression()
        finally:
            self.depth -= 1

    def _expression(self):
        node = self._primary()
        while (token := self._peek()) in (("punct", "."), ("punct", "[")):
            self.position += 1
            if token[1] == ".":
                kind, name = self._take()
                if kind != "name":
                    raise TemplateError(f"The template language expression '{self.text}' is not valid: a "
                                        f"property name must follow '.'.")
                node = Property(node, name)
            else:
                node = Index(node, self.expression())
                self._take("]")
        return node

    def _primary(self):
        kind, value = self._take()
        if kind == "str":
            return Literal(value[1:-1].replace("''", "'"))
        if kind == "num":
            return Literal(int(value))
        if kind == "name":
            self._take("(")
            args = []
            if self._peek() != ("punct", ")"):
                args.append(self.expression())
                while self._peek() == ("punct", ","):
                    self.position += 1
                    args.append(self.expression())
            self._take(")")
            return Call(value, tuple(args))
        raise TemplateError(f"The template language expression '{self.text}' is not valid: unexpected '{value}'.")


def function_names(node) -> set[str]:
    """Every function an expression calls (checked against the known ones before deploying)."""
    if isinstance(node, Call):
        return {node.name}.union(*(function_names(a) for a in node.args))
    if isinstance(node, Property):
        return function_names(node.target)
    if isinstance(node, Index):
        return function_names(node.target) | function_names(node.index)
    return set()


# ---- evaluating ------------------------------------------------------------------------------

class Scope:
    """What the deployment functions answer from; the template module fills it in."""

    parameters: Callable[[str], Any]
    variables: Callable[[str], Awaitable[Any]]
    copy_index: Callable[[str | None], int]
    resource_group: dict
    subscription: dict
    deployment: dict
    reference: Callable[[str, str | None, bool], Awaitable[Any]]
    resource_id: Callable[[list], str]


async def evaluate(value: Any, scope: Scope) -> Any:
    """A template value with every expression in it evaluated (objects and arrays walked)."""
    if isinstance(value, dict):
        return {await evaluate(k, scope) if is_expression(k) else k: await evaluate(v, scope)
                for k, v in value.items()}
    if isinstance(value, list):
        return [await evaluate(v, scope) for v in value]
    if isinstance(value, str):
        if is_expression(value):
            return await _eval(parse(value), scope, value)
        if value.startswith("[["):
            return value[1:]
    return value


async def _eval(node, scope: Scope, text: str) -> Any:
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, Property):
        target = await _eval(node.target, scope, text)
        return _property(target, node.name, text)
    if isinstance(node, Index):
        target = await _eval(node.target, scope, text)
        index = await _eval(node.index, scope, text)
        if isinstance(target, list) and isinstance(index, int) and not isinstance(index, bool):
            if not -len(target) <= index < len(target):
                raise TemplateError(f"Index {index} is out of range in '{text}' (the array has {len(target)} items).")
            return target[index]
        if isinstance(target, dict) and isinstance(index, str):
            return _property(target, index, text)
        raise TemplateError(f"Cannot index {_type_name(target)} with {_type_name(index)} in '{text}'.")
    name = node.name.lower()
    if name == "if":  # only the branch taken is evaluated, as ARM does
        _arity(node, 3, 3, text)
        condition = await _eval(node.args[0], scope, text)
        return await _eval(node.args[1] if _bool(condition, "if", text) else node.args[2], scope, text)
    function = FUNCTIONS.get(name)
    if function is None:
        raise TemplateError(f"The template function '{node.name}' is not known to Galley (in '{text}'). "
                            f"Known functions: {', '.join(sorted(FUNCTIONS) + ['if'])}.")
    low, high, body = function
    _arity(node, low, high, text)
    args = [await _eval(a, scope, text) for a in node.args]
    try:
        result = body(scope, *args)
    except TemplateError:
        raise
    except (TypeError, ValueError, KeyError, IndexError, ZeroDivisionError) as error:
        raise TemplateError(f"Unable to evaluate template function '{node.name}' in '{text}': {error}.") from None
    if hasattr(result, "__await__"):
        result = await result
    return result


def _arity(node: Call, low: int, high: int | None, text: str) -> None:
    count = len(node.args)
    if count < low or (high is not None and count > high):
        wanted = f"{low}" if low == high else f"{low} to {high}" if high is not None else f"at least {low}"
        raise TemplateError(f"The template function '{node.name}' takes {wanted} arguments; '{text}' gives {count}.")


def _property(target: Any, name: str, text: str) -> Any:
    if isinstance(target, dict):
        if name in target:
            return target[name]
        for key, value in target.items():
            if key.lower() == name.lower():
                return value
        raise TemplateError(f"The language expression property '{name}' doesn't exist, available properties are "
                            f"'{', '.join(target)}' (in '{text}').")
    raise TemplateError(f"The language expression property '{name}' cannot be read from {_type_name(target)} "
                        f"(in '{text}').")


def _type_name(value: Any) -> str:
    return {dict: "an object", list: "an array", str: "a string", bool: "a boolean", int: "an integer",
            type(None): "null"}.get(type(value), type(value).__name__)


def _bool(value: Any, function: str, text: str) -> bool:
    if not isinstance(value, bool):
        raise TemplateError(f"The template function '{function}' expects a boolean; got {_type_name(value)} in '{text}'.")
    return value


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return "" if value is None else str(value)


def _concat(_scope, *args):
    if args and all(isinstance(a, list) for a in args):
        return [item for a in args for item in a]
    if any(isinstance(a, (list, dict)) for a in args):
        raise TemplateError("concat() joins either strings or arrays, not both.")
    return "".join(_text(a) for a in args)


def _format(_scope, template: str, *args):
    return re.sub(r"\{(\d+)\}", lambda m: _text(args[int(m.group(1))]), template)


def _length(_scope, value):
    if isinstance(value, (str, list, dict)):
        return len(value)
    raise TemplateError(f"length() takes a string, an array or an object; got {_type_name(value)}.")


def _contains(_scope, container, item):
    if isinstance(container, str):
        return _text(item).lower() in container.lower()
    if isinstance(container, dict):
        return any(k.lower() == _text(item).lower() for k in container)
    return item in container


def _equals(_scope, a, b):
    if isinstance(a, str) and isinstance(b, str):
        return a == b  # ARM's equals is case-sensitive for strings
    return a == b


def _union(_scope, *args):
    if all(isinstance(a, dict) for a in args):
        merged: dict = {}
        for a in args:
            merged.update(a)
        return merged
    result: list = []
    for a in args:
        result.extend(item for item in a if item not in result)
    return result


def _int(_scope, value):
    return int(value)


def _bool_of(_scope, value):
    if isinstance(value, str):
        if value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise TemplateError(f"bool() cannot convert '{value}'.")
    return bool(value)


def _create_object(_scope, *args):
    if len(args) % 2:
        raise TemplateError("createObject() takes pairs of key and value.")
    return {args[i]: args[i + 1] for i in range(0, len(args), 2)}


def _pick(scope_attr: str):
    def call(scope, *args):
        return getattr(scope, scope_attr)(*args)
    return call


def _copy_index(scope, *args):
    loop, offset = None, 0
    for arg in args:
        if isinstance(arg, str):
            loop = arg
        else:
            offset = arg
    return scope.copy_index(loop) + offset


def _reference(scope, target, api_version=None, full=None):
    return scope.reference(target, api_version, isinstance(full, str) and full.lower() == "full")


# name → (fewest args, most args or None, implementation(scope, *args))
FUNCTIONS: dict[str, tuple[int, int | None, Callable]] = {
    "parameters": (1, 1, _pick("parameters")),
    "variables": (1, 1, _pick("variables")),
    "copyindex": (0, 2, _copy_index),
    "resourcegroup": (0, 0, lambda scope: scope.resource_group),
    "subscription": (0, 0, lambda scope: scope.subscription),
    "deployment": (0, 0, lambda scope: scope.deployment),
    "resourceid": (2, None, lambda scope, *args: scope.resource_id(list(args))),
    "subscriptionresourceid": (2, None, lambda scope, *args: scope.subscription_resource_id(list(args))),
    "reference": (1, 3, _reference),
    "concat": (1, None, _concat),
    "format": (1, None, _format),
    "string": (1, 1, lambda _s, v: _text(v)),
    "int": (1, 1, _int),
    "bool": (1, 1, _bool_of),
    "json": (1, 1, lambda _s, v: json.loads(v)),
    "tolower": (1, 1, lambda _s, v: v.lower()),
    "toupper": (1, 1, lambda _s, v: v.upper()),
    "trim": (1, 1, lambda _s, v: v.strip()),
    "replace": (3, 3, lambda _s, v, old, new: v.replace(old, new)),
    "split": (2, 2, lambda _s, v, sep: re.split("|".join(map(re.escape, sep if isinstance(sep, list) else [sep])), v)),
    "substring": (2, 3, lambda _s, v, start, length=None: v[start:] if length is None else v[start:start + length]),
    "startswith": (2, 2, lambda _s, v, p: v.lower().startswith(p.lower())),
    "endswith": (2, 2, lambda _s, v, p: v.lower().endswith(p.lower())),
    "indexof": (2, 2, lambda _s, v, p: v.lower().find(p.lower())),
    "base64": (1, 1, lambda _s, v: base64.b64encode(v.encode()).decode()),
    "base64tostring": (1, 1, lambda _s, v: base64.b64decode(v).decode()),
    "length": (1, 1, _length),
    "empty": (1, 1, lambda _s, v: v is None or len(v) == 0),
    "contains": (2, 2, _contains),
    "first": (1, 1, lambda _s, v: v[0]),
    "last": (1, 1, lambda _s, v: v[-1]),
    "take": (2, 2, lambda _s, v, n: v[:n]),
    "skip": (2, 2, lambda _s, v, n: v[n:]),
    "createarray": (0, None, lambda _s, *args: list(args)),
    "createobject": (0, None, _create_object),
    "union": (1, None, _union),
    "coalesce": (1, None, lambda _s, *args: next((a for a in args if a is not None), None)),
    "equals": (2, 2, _equals),
    "not": (1, 1, lambda _s, v: not _bool(v, "not", "not()")),
    "and": (2, None, lambda _s, *args: all(_bool(a, "and", "and()") for a in args)),
    "or": (2, None, lambda _s, *args: any(_bool(a, "or", "or()") for a in args)),
    "true": (0, 0, lambda _s: True),
    "false": (0, 0, lambda _s: False),
    "null": (0, 0, lambda _s: None),
    "less": (2, 2, lambda _s, a, b: a < b),
    "lessorequals": (2, 2, lambda _s, a, b: a <= b),
    "greater": (2, 2, lambda _s, a, b: a > b),
    "greaterorequals": (2, 2, lambda _s, a, b: a >= b),
    "min": (1, None, lambda _s, *args: min(args[0] if len(args) == 1 else args)),
    "max": (1, None, lambda _s, *args: max(args[0] if len(args) == 1 else args)),
    "add": (2, 2, lambda _s, a, b: a + b),
    "sub": (2, 2, lambda _s, a, b: a - b),
    "mul": (2, 2, lambda _s, a, b: a * b),
    "div": (2, 2, lambda _s, a, b: a // b),
    "mod": (2, 2, lambda _s, a, b: a % b),
}
KNOWN = frozenset(FUNCTIONS) | {"if"}


def unknown_functions(value: Any) -> set[str]:
    """Names of functions a template value calls that Galley does not evaluate (parse errors raise)."""
    found: set[str] = set()
    if isinstance(value, dict):
        for k, v in value.items():
            found |= unknown_functions(k) | unknown_functions(v)
    elif isinstance(value, list):
        for v in value:
            found |= unknown_functions(v)
    elif is_expression(value):
        found = {name for name in function_names(parse(value)) if name.lower() not in KNOWN}
    return found
