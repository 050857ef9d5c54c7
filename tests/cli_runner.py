"""Running the `galley` CLI in-process against a test server, as a user would type it."""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass

import pytest

from galley.cli import common
from galley.cli.main import main

# What a transfer prints on a stderr that is not a terminal when it takes longer than a few seconds.
PROGRESS_LINE = re.compile(r"^(uploaded|downloaded) \d[^\n]*/s$", re.MULTILINE)


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self):
        return json.loads(self.stdout)


@pytest.fixture
def galley(cli_server, capsys, monkeypatch, tmp_path_factory):
    """run(*args) -> Result: `galley args…` against the module's `cli_server`, signed in as its
    administrator the way a user on the server's machine is: through $GALLEY_HOME/credentials.json
    (and a CLI home of its own, so no `galley login` of the developer's interferes). `check=True`
    (the default) asserts exit code 0 and an empty stderr but for progress lines of transfers
    that happened to take long enough to print them (so no bar redraw or warning leaked into it). The CLI's pause between status polls is capped at 50 ms to keep the tests quick."""
    monkeypatch.setenv("GALLEY_URL", cli_server.url)
    monkeypatch.setenv("GALLEY_HOME", str(cli_server.home))
    monkeypatch.setenv("GALLEY_CLI_HOME", str(tmp_path_factory.mktemp("cli-home")))
    monkeypatch.delenv("GALLEY_SUBSCRIPTION", raising=False)
    real_make_client = common.make_client
    monkeypatch.setattr(common, "make_client", lambda server, **options: real_make_client(
        server, **{"sleep": lambda seconds: time.sleep(min(seconds, 0.05)), **options}))

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
