"""README.md's examples run word for word against a fresh server.

Every ```console block of README.md is a list of commands: lines starting with `$ `, continued by
lines while a line ends with `\\`; other lines are what the reader would see. Every ```python
block is a script. They run in document order in one bash session (so `SUB=…` set in one block is
there in the next) in an empty working folder, as a user on the server's machine runs them:
`~/.galley` is the server's home (a fresh `galley serve`, HTTPS with its own CA, on a free port),
`.venv` is this checkout's, no GALLEY_* variable is set, and the `galley` CLI signs in from
`~/.galley/credentials.json` by itself. Each command must exit 0.

A block that is not meant to run here is marked by an HTML comment (invisible on GitHub) on the
line before its fence, saying why:

    <!-- readme-test: skip (needs azure-cli; tests/test_az_cli.py runs these) -->

Fences without a language (such as the first-start transcript) are never run.
"""

import os
import re
import shlex
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .servers import ProcessServer

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
SKIP = re.compile(r"<!--\s*readme-test:\s*skip\b")
FENCE = re.compile(r"^```(\w*)\s*$")
MARK = "@@readme-command"


@dataclass
class Block:
    language: str  # console or python
    line: int  # of its opening fence in README.md
    skipped: bool
    body: list[str] = field(default_factory=list)

    def commands(self) -> list[str]:
        """A console block's commands, continuation lines joined as bash would read them."""
        commands: list[str] = []
        continued = False
        for text in self.body:
            if continued:
                commands[-1] += "\n" + text
            elif text.startswith("$ "):
                commands.append(text[2:])
            else:
                continue  # what the command printed
            continued = text.rstrip().endswith("\\")
        return commands


def readme_blocks(text: str) -> list[Block]:
    """The console and python blocks of a README, in order, each marked skipped or not."""
    blocks: list[Block] = []
    current: Block | None = None
    previous = ""  # the last non-blank line outside a block
    for number, line in enumerate(text.splitlines(), 1):
        fence = FENCE.match(line)
        if current is not None:
            if fence:
                blocks.append(current)
                current = None
                previous = line
            else:
                current.body.append(line)
        elif fence:
            current = Block(fence.group(1), number, bool(SKIP.search(previous)))
        elif line.strip():
            previous = line
    return [block for block in blocks if block.language in ("console", "python")]


def session_script(blocks: list[Block]) -> tuple[str, list[str]]:
    """One bash script running the blocks' commands in order, each announced on stdout with its
    number and stopping the script with its exit code when it fails; and the commands."""
    lines: list[str] = []
    commands: list[str] = []
    for block in blocks:
        if block.skipped:
            continue
        if block.language == "python":
            steps = ["python3 - <<'README_PYTHON'\n" + "\n".join(block.body) + "\nREADME_PYTHON"]
        else:
            steps = block.commands()
        for step in steps:
            number = len(commands)
            commands.append(step)
            lines += [f"echo '{MARK} {number}'; echo '{MARK} {number}' >&2", step,
                      "status=$?; if [ $status -ne 0 ]; then exit $status; fi"]
    return "\n".join(lines) + "\n", commands


def split_output(text: str) -> dict[int, str]:
    """Output of the session script per command number."""
    parts: dict[int, str] = {}
    current = None
    for line in text.splitlines(keepends=True):
        if line.startswith(MARK):
            current = int(line.split()[1])
            parts[current] = ""
        elif current is not None:
            parts[current] += line
    return parts


def test_readme_blocks_are_found_and_marked():
    blocks = readme_blocks(README.read_text())
    console = [b for b in blocks if b.language == "console"]
    using_it = console[0]
    assert not using_it.skipped
    assert using_it.commands()[0].startswith("source .venv/bin/activate")
    assert any("image-version create" in c and "--os-snapshot" in c for c in using_it.commands())
    skipped = [b for b in console if b.skipped]
    assert skipped and all(any(c.startswith(("az ", "export ", "sudo ")) for c in b.commands()) for b in skipped)
    # what runs holds no placeholder left for the reader to fill in (`$APPID` is a variable)
    _, commands = session_script(blocks)
    for command in commands:
        assert not re.search(r"(?<![$\w])(APPID|SECRET|TENANT|OBJECT_ID|GROUP_ID)(?![\w=])", command), command


def test_parser_joins_continuations_and_skips_marked_blocks():
    text = "\n".join([
        "<!-- readme-test: skip (example) -->", "```console", "$ never", "```",
        "```console", "$ a \\", "    b   # c", "printed", "$ d", "```",
        "```", "$ not a console block", "```",
        "```python", "print(1)", "```",
    ])
    blocks = readme_blocks(text)
    assert [(b.language, b.skipped) for b in blocks] == [("console", True), ("console", False),
                                                         ("python", False)]
    assert blocks[1].commands() == ["a \\\n    b   # c", "d"]
    script, commands = session_script(blocks)
    assert commands == ["a \\\n    b   # c", "d", "python3 - <<'README_PYTHON'\nprint(1)\nREADME_PYTHON"]
    assert "never" not in script


@pytest.mark.slow
def test_readme_runs_word_for_word(tmp_path):
    home = tmp_path / "home"
    (home / ".galley").mkdir(parents=True)
    work = tmp_path / "work"
    work.mkdir()
    (work / ".venv").symlink_to(ROOT / ".venv")
    server = ProcessServer(home / ".galley", https=True).start()
    try:
        script, commands = session_script(readme_blocks(README.read_text()))
        env = {name: value for name, value in os.environ.items()
               if not name.startswith(("GALLEY_", "VIRTUAL_ENV", "AZURE_", "REQUESTS_CA_BUNDLE"))}
        env.update(HOME=str(home), GALLEY_QEMU_ACCEL=os.environ.get("GALLEY_QEMU_ACCEL", "tcg"))
        done = subprocess.run(["bash", "-c", script], cwd=work, env=env, capture_output=True, text=True,
                              timeout=900)
        out, err = split_output(done.stdout), split_output(done.stderr)
        if done.returncode != 0:
            failed = max(out)
            pytest.fail(f"README command {failed} exited {done.returncode}:\n$ {commands[failed]}\n"
                        f"--- stdout\n{out.get(failed, '')[-3000:]}\n--- stderr\n{err.get(failed, '')[-3000:]}")
        assert len(out) == len(commands)

        def output_of(prefix: str) -> str:
            [number] = [i for i, c in enumerate(commands) if c.startswith(prefix)]
            return out[number]

        assert output_of("galley sig image-version list -g myGalleryRG -r myGallery -i myImageDefinition \\"
                         ).split() == ["1.0.0"]
        table = output_of("galley sig image-version list -g myGalleryRG -r myGallery -i myImageDefinition --output table")
        assert "1.0.0" in table and "Succeeded" in table
        assert (work / "out.vhd").stat().st_size == 2 * 1024**3 + 512
        assert '"lost": []' in output_of("galley store verify")
        assert "team-b" in output_of("galley account subscription create")
        assert err and not any("Traceback" in text for text in err.values())
    finally:
        server.stop()


def test_readme_console_commands_parse_as_shell():
    """Quoting mistakes show up here, fast, rather than as a failing command in the slow run."""
    _, commands = session_script([b for b in readme_blocks(README.read_text()) if b.language == "console"])
    for command in commands:
        shlex.split(command.replace("\\\n", " "), comments=True)
