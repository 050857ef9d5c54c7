"""Running the `galley` CLI in-process against a test server, as a user would type it."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

import pytest

from galley.cli import common
from galley.cli.client import ArmClient
from galley.cli.main import main


@dataclass
class Result:
    code: int
    stdout: str
    stderr: str

    def json(self):
        return json.loads(self.stdout)


@pytest.fixture
def galley(cli_server, capsys, monkeypatch):
    """run(*args) -> Result: `galley args…` against the module's `cli_server`. `check=True` (the
    default) asserts exit code 0 and an empty stderr (so no progress bar leaked into the output).
    The CLI's pause between status polls is capped at 50 ms to keep the tests quick."""
    monkeypatch.setenv("GALLEY_URL", cli_server.url)
    monkeypatch.delenv("GALLEY_SUBSCRIPTION", raising=False)
    monkeypatch.setattr(common, "make_client",
                        lambda server: ArmClient(server, sleep=lambda seconds: time.sleep(min(seconds, 0.05))))

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
            assert code == 0 and err == "", f"galley {' '.join(map(str, args))} -> {code}\n{out}\n{err}"
        return result

    return run
