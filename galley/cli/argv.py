"""az-style option values that click does not parse by itself.

az lets one option take several values (`--target-regions a b=1 c=1=standard_zrs`)
and lets a true/false option be given bare (`--exclude-from-latest`). Click wants
`--target-regions a --target-regions b=1 ...` and `--exclude-from-latest true`,
so `expand_argv` rewrites the command line before click sees it.
"""

from typing import Any, Iterable

from galley.cli.common import THREE_STATE_METAVAR


def is_option(token: str) -> bool:
    """True for `-x`, `--name`, `--name=value`; false for values like `-` or `-1`."""
    if len(token) < 2 or not token.startswith("-"):
        return False
    return not token[1:].replace(".", "", 1).isdigit()


def expand_argv(argv: list[str], multi_value: Iterable[str], three_state: Iterable[str] = ()) -> list[str]:
    """Rewrite az-style arguments into ones click understands.

    - Every value token after a multi-value option, up to the next option, gets
      its own copy of the option: `--tags a=1 b=2` -> `--tags a=1 --tags b=2`.
      A multi-value option given with no value gets one empty value
      (`--tags` -> `--tags ""`, which clears tags, as in az).
    - A three-state option followed by another option (or nothing) gets `true`:
      `--exclude-from-latest -g rg` -> `--exclude-from-latest true -g rg`.
    - Everything after `--` is left alone.
    """
    multi = set(multi_value)
    flags = set(three_state)
    out: list[str] = []
    current: str | None = None  # the multi-value option whose values we are reading
    i = 0
    while i < len(argv):
        token = argv[i]
        i += 1
        if token == "--":
            out.extend(argv[i - 1:])
            break
        if is_option(token):
            name, has_value, _ = token.partition("=")
            out.append(token)
            current = name if name in multi else None
            if current and not has_value:
                if i < len(argv) and not is_option(argv[i]):
                    out.append(argv[i])
                    i += 1
                else:  # given bare, as az allows: an empty value (`--tags` clears tags)
                    out.append("")
            if name in flags and not has_value and (i >= len(argv) or is_option(argv[i])):
                out.append("true")
            continue
        if current:
            out.extend([current, token])
        else:
            out.append(token)
    return out


def option_names(command: Any) -> tuple[set[str], set[str]]:
    """Names of multi-value options and of three-state options anywhere under
    `command` (the click command tree of `typer.main.get_command(app)`; duck
    typed, since Typer may use its own copy of click)."""
    multi: set[str] = set()
    flags: set[str] = set()
    for cmd in walk(command):
        for param in cmd.params:
            if getattr(param, "param_type_name", None) != "option":
                continue
            if param.multiple:
                multi.update(param.opts)
            if getattr(param, "metavar", None) == THREE_STATE_METAVAR:
                flags.update(param.opts)
    return multi, flags


def walk(command: Any) -> Iterable[Any]:
    yield command
    for sub in (getattr(command, "commands", None) or {}).values():
        yield from walk(sub)
