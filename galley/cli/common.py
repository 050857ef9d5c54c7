"""What every client command shares: the global options (`--server`,
`--subscription`, `--output`, `--query`, `--only-show-errors`), the session they produce, the `@arm_command`
decorator that adds them, error reporting, az-style option parsing
(tags, true/false flags, usage errors), options used by many commands, and
the small pieces of request bodies they all build (tags, given fields,
PATCH bodies, default locations). kinds.py builds show/list/delete on top."""

import inspect
import os
import sys
from dataclasses import dataclass
from enum import Enum
from typing import Annotated, Any, Callable, Optional

import typer

from galley.cli import paths, signin
from galley.cli.client import API_GROUP, DEFAULT_SUBSCRIPTION, DEFAULT_URL, ArmClient, ArmError
from galley.cli.output import Columns, QueryError, check_query, emit


class OutputFormat(str, Enum):
    json = "json"
    jsonc = "jsonc"
    table = "table"
    tsv = "tsv"
    yaml = "yaml"
    yamlc = "yamlc"
    none = "none"


GLOBAL_PANEL = "Global options"

ServerOpt = Annotated[
    Optional[str],
    typer.Option("--server", help=f"Galley server URL. Env GALLEY_URL; default {DEFAULT_URL}.",
                 rich_help_panel=GLOBAL_PANEL, show_default=False),
]
SubscriptionOpt = Annotated[
    Optional[str],
    typer.Option("--subscription", help=f"Subscription id. Env GALLEY_SUBSCRIPTION; default {DEFAULT_SUBSCRIPTION}.",
                 rich_help_panel=GLOBAL_PANEL, show_default=False),
]
OutputOpt = Annotated[
    Optional[OutputFormat],
    typer.Option("--output", "-o", help="Output format (default json).", case_sensitive=False,
                 rich_help_panel=GLOBAL_PANEL, show_default=False),
]


def parsed_query(value: Optional[str]) -> Optional[str]:
    """--query is parsed before the command runs: a bad query changes nothing (exit 2)."""
    try:
        return check_query(value)
    except QueryError as error:
        raise typer.BadParameter(str(error)) from None


QueryOpt = Annotated[
    Optional[str],
    typer.Option("--query", help="JMESPath query applied to the result before it is printed, "
                 "e.g. \"[?location=='eastus'].name\".",
                 callback=parsed_query, rich_help_panel=GLOBAL_PANEL, show_default=False),
]
OnlyShowErrorsOpt = Annotated[
    bool,
    typer.Option("--only-show-errors", help="Print only errors on stderr: no progress, no warnings.",
                 rich_help_panel=GLOBAL_PANEL),
]


# -- options used by many commands ------------------------------------------------

ResourceGroupOpt = Annotated[str, typer.Option("--resource-group", "-g", help="Name of the resource group.")]
OptionalResourceGroupOpt = Annotated[
    Optional[str], typer.Option("--resource-group", "-g", help="Name of the resource group (omit to list the whole subscription).")
]
LocationOpt = Annotated[
    Optional[str], typer.Option("--location", "-l", help="Region. Defaults to the location of the parent resource.")
]
TagsOpt = Annotated[
    Optional[list[str]],
    typer.Option("--tags", help='Space-separated tags: key[=value] ... Use "" to clear existing tags.'),
]
NoWaitOpt = Annotated[bool, typer.Option("--no-wait", help="Do not wait for the long-running operation to finish.")]
NameOpt = Annotated[str, typer.Option("--name", "-n", help="Name of the resource.")]
EndOfLifeOpt = Annotated[Optional[str], typer.Option("--end-of-life-date", help="End-of-life date, e.g. 2030-12-31.")]


class OsType(str, Enum):
    Linux = "Linux"
    Windows = "Windows"


class HyperVGeneration(str, Enum):
    V1 = "V1"
    V2 = "V2"


def enum_value(value: Optional[Enum]) -> Optional[str]:
    return value.value if value is not None else None


# -- az-style value parsing -----------------------------------------------------------


def parse_tags(values: Optional[list[str]]) -> Optional[dict]:
    """az tags: ['a=1', 'b'] -> {'a': '1', 'b': ''}; [''] -> {} (clear)."""
    if values is None:
        return None
    tags: dict[str, str] = {}
    for value in values:
        if not value:
            continue
        key, _, tag_value = value.partition("=")
        tags[key] = tag_value
    return tags


TRUE_WORDS = ("true", "yes", "y", "on", "1")
FALSE_WORDS = ("false", "no", "n", "off", "0")


def parse_bool_word(value: Any) -> Optional[bool]:
    """Parser of three-state flags (`--flag`, `--flag true`, `--flag false`)."""
    if value is None or isinstance(value, bool):
        return value
    word = str(value).lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise typer.BadParameter(f"expected true or false, not {value!r}")


THREE_STATE_METAVAR = "[true|false]"  # also how galley.cli.argv recognises these options


def three_state_option(*names: str, help: str) -> Any:
    """An option that may be given bare (meaning true) or with true/false.
    The bare form is turned into `--flag true` by galley.cli.argv."""
    return typer.Option(*names, help=help + " A bare flag means true.",
                        parser=parse_bool_word, metavar=THREE_STATE_METAVAR)


class UsageError(Exception):
    """Options that parse but do not fit together; printed as
    `ERROR: usage error: ...` with exit code 2."""


def usage_error(message: str) -> UsageError:
    return UsageError(message)


# -- session and the command decorator ---------------------------------------------------


@dataclass
class Session:
    """What a command needs to talk to the server."""

    client: ArmClient
    subscription: str
    output: str
    query: Optional[str] = None
    only_show_errors: bool = False

    def emit(self, result: Any, columns: Optional[Columns] = None) -> None:
        """Print `result` as the command line asked (--query, --output); for commands that print
        before failing, or print tables of their own making."""
        emit(result, self.output, columns, self.query)

    def warn(self, message: str) -> None:
        """`WARNING: message` on stderr, unless --only-show-errors."""
        if not self.only_show_errors:
            sys.stderr.write(f"WARNING: {message}\n")
            sys.stderr.flush()

    def close(self) -> None:
        self.client.close()


def make_client(server: str, **options: Any) -> ArmClient:
    """The HTTP client, signed in with the current profile (signin.py) when there is one; unit
    tests replace this to inject a transport."""
    profile = signin.load_profile()
    verify = signin.verify_setting(profile)
    auth = signin.ProfileAuth(server, profile, verify) if profile else None
    return ArmClient(server, auth=auth, verify=verify, **options)


def resolve_settings(
    server: Optional[str], subscription: Optional[str], output: Optional[Any], root: Optional[dict] = None
) -> tuple[str, str, str]:
    """Command option, else the same option given before the command (`root`),
    else environment, else default."""
    root = root or {}
    profile = signin.load_profile()
    server = (server or root.get("server") or os.environ.get("GALLEY_URL")
              or (profile.server if profile else None) or DEFAULT_URL)
    subscription = (subscription or root.get("subscription") or os.environ.get("GALLEY_SUBSCRIPTION")
                    or (profile.subscriptionId if profile else None) or DEFAULT_SUBSCRIPTION)
    output = output or root.get("output") or OutputFormat.json
    return server, subscription, OutputFormat(output).value


def report(error: ArmError) -> None:
    for line in error.lines():
        sys.stderr.write(line + "\n")
    sys.stderr.flush()


GLOBAL_PARAMETERS = [
    inspect.Parameter("ctx", inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context),
    inspect.Parameter("server", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=ServerOpt),
    inspect.Parameter("subscription", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=SubscriptionOpt),
    inspect.Parameter("output", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=OutputOpt),
    inspect.Parameter("query", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=QueryOpt),
    inspect.Parameter("only_show_errors", inspect.Parameter.KEYWORD_ONLY, default=False, annotation=OnlyShowErrorsOpt),
]


def arm_command(app: typer.Typer, name: str, columns: Optional[Columns] = None) -> Callable:
    """Register `func(session, **options)` as command `name` of `app`.

    The command gets the global options added to its signature; it receives a
    Session instead, returns the result to print (or None), and may raise
    ArmError, which is printed as `ERROR: (Code) message` with exit code 1.
    """

    def register(func: Callable) -> Callable:
        own = list(inspect.signature(func).parameters.values())[1:]  # drop `session`

        def command(**kwargs: Any) -> None:
            root = kwargs.pop("ctx").find_root().obj or {}
            server, subscription, output = resolve_settings(
                kwargs.pop("server"), kwargs.pop("subscription"), kwargs.pop("output"), root
            )
            query = kwargs.pop("query") or root.get("query")
            only_show_errors = kwargs.pop("only_show_errors") or bool(root.get("only_show_errors"))
            session = Session(make_client(server), subscription, output, query, only_show_errors)
            try:
                result = func(session, **kwargs)
            except ArmError as error:
                report(error)
                raise typer.Exit(1)
            except UsageError as error:
                sys.stderr.write(f"ERROR: usage error: {error}\n")
                raise typer.Exit(2)
            except QueryError as error:  # a command that printed its result itself before failing
                sys.stderr.write(f"ERROR: {error}\n")
                raise typer.Exit(1)
            except KeyboardInterrupt:
                sys.stderr.write("Interrupted. A started operation goes on in the server.\n")
                raise typer.Exit(130)
            finally:
                session.close()
            print_result(session, result, columns)

        command.__name__ = func.__name__
        command.__qualname__ = func.__qualname__
        command.__doc__ = func.__doc__
        command.__module__ = func.__module__
        command.__signature__ = inspect.Signature(own + GLOBAL_PARAMETERS)  # type: ignore[attr-defined]
        command.__annotations__ = {p.name: p.annotation for p in own + GLOBAL_PARAMETERS}
        app.command(name)(command)
        return func

    return register


def print_result(session: Session, result: Any, columns: Optional[Columns]) -> None:
    """The result as asked; a query that fails on it (a function given the wrong type) is an
    error, exit 1."""
    try:
        session.emit(result, columns)
    except QueryError as error:
        sys.stderr.write(f"ERROR: {error}\n")
        raise typer.Exit(1)


def location_of(session: Session, path: str, api_version: str) -> str:
    """The location of an existing parent resource (group, gallery, ...)."""
    return session.client.get(path, api_version)["location"]


def group_location(session: Session, resource_group: str) -> str:
    """The location of a resource group: where what is created in it goes by default."""
    return location_of(session, paths.resource_group(session.subscription, resource_group), API_GROUP)


def with_tags(body: dict, tags: Optional[list[str]]) -> dict:
    """`body` with the parsed --tags when they were given (a bare `--tags` clears them)."""
    if tags is not None:
        body["tags"] = parse_tags(tags)
    return body


def given(**values: Any) -> dict:
    """The values that are not None: the fields a command was given."""
    return {key: value for key, value in values.items() if value is not None}


def patch_body(properties: dict, tags: Optional[list[str]]) -> dict:
    """A PATCH body: `properties` when there are any, and the tags when given."""
    return with_tags({"properties": properties} if properties else {}, tags)
