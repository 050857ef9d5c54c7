"""Running the `galley` CLI in-process against a test server, as a user would type it."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass

import pytest
import typer.main

from galley.cli import common, signin
from galley.cli.main import app, main

from .admin_http import default_verify

# What a transfer prints on a stderr that is not a terminal when it takes longer than a few seconds.
PROGRESS_LINE = re.compile(r"^(uploaded|downloaded) \d[^\n]*/s$", re.MULTILINE)


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self):
        return json.loads(self.stdout)


_build_command = typer.main.get_command
_galley_command = []


def _galley_command_built_once(typer_app):
    """typer.main.get_command, kept for Galley's app: main() builds the click command tree from the
    Typer app twice per command (a fifth of a second, more than most commands take against a
    loopback server); the tree is the same each time, and click makes a fresh context per call."""
    if typer_app is not app:
        return _build_command(typer_app)
    if not _galley_command:
        _galley_command.append(_build_command(app))
    return _galley_command[0]


@pytest.fixture
def galley_command_built_once(monkeypatch):
    """For tests that run the CLI through typer's CliRunner: its command tree built once too."""
    import typer.testing
    monkeypatch.setattr(typer.main, "get_command", _galley_command_built_once)
    monkeypatch.setattr(typer.testing, "_get_command", _galley_command_built_once)


@pytest.fixture
def galley(cli_server, capsys, monkeypatch, tmp_path_factory):
    """run(*args) -> Result: `galley args…` against the module's `cli_server`, signed in as its
    administrator the way a user on the server's machine is: through $GALLEY_HOME/credentials.json
    (and a CLI home of its own, so no `galley login` of the developer's interferes). `check=True`
    (the default) asserts exit code 0 and an empty stderr but for progress lines of transfers
    that happened to take long enough to print them (so no bar redraw or warning leaked into it). The CLI's pause between status polls is capped at 50 ms to keep the tests quick, and its command
    tree is built once (_galley_command_built_once)."""
    monkeypatch.setenv("GALLEY_URL", cli_server.url)
    monkeypatch.setenv("GALLEY_HOME", str(cli_server.home))
    monkeypatch.setenv("GALLEY_CLI_HOME", str(tmp_path_factory.mktemp("cli-home")))
    monkeypatch.delenv("GALLEY_SUBSCRIPTION", raising=False)
    real_make_client = common.make_client
    monkeypatch.setattr(common, "make_client", lambda server, **options: real_make_client(
        server, **{"sleep": lambda seconds: time.sleep(min(seconds, 0.05)), **options}))
    monkeypatch.setattr(typer.main, "get_command", _galley_command_built_once)
    # Where the CLI would trust the default CAs (verify=True), the same context built once: httpx
    # otherwise loads the CA bundle again for each command's client.
    real_verify_setting = signin.verify_setting
    monkeypatch.setattr(signin, "verify_setting", lambda profile: (
        lambda verify: default_verify() if verify is True else verify)(real_verify_setting(profile)))

    def run(*args, check: bool = True) -> Result:
        capsys.readouterr()  # drop anything printed before this command
        try:
            main([str(arg) for arg in args])
            code = 0
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        out, err = capsys.readouterr()
        result = Result(code, out, err)
        if check:
            assert code == 0 and not PROGRESS_LINE.sub("", err).strip(), f"galley {' '.join(map(str, args))} -> {code}\n{out}\n{err}"
        return result

    return run
