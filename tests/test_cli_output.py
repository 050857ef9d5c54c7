"""The CLI's az habits, without a server: `--query` (JMESPath) and `--output`
json/jsonc/table/tsv/yaml/yamlc/none on every command, progress lines for transfers when stderr is
not a terminal, and `--only-show-errors`."""

import io
import json
import re
from collections import OrderedDict

import httpx
import pytest
import yaml
from typer.testing import CliRunner

from galley.cli import common, output, transfer
from galley.cli.main import app, preprocess
from galley.cli.output import to_tsv
from galley.cli.transfer import ProgressLines, human_bytes

from .test_cli_unit import DEFINITION, DISK, SUB, FakeArm, ok

pytestmark = pytest.mark.usefixtures("galley_command_built_once")  # tests/cli_runner.py

VERSIONS = f"{DEFINITION}/versions"
GALLERIES = f"/subscriptions/{SUB}/resourceGroups/rg/providers/Microsoft.Compute/galleries"


def version(name: str, excluded: bool, state: str = "Succeeded") -> dict:
    return {"id": f"{VERSIONS}/{name}", "name": name, "location": "eastus", "type": "Microsoft.Compute/galleries/images/versions",
            "properties": {"publishingProfile": {"excludeFromLatest": excluded, "targetRegions": [{"name": "eastus"}]},
                           "provisioningState": state}}


@pytest.fixture
def fake(monkeypatch, tmp_path):
    monkeypatch.setenv("GALLEY_URL", "http://srv")
    monkeypatch.setenv("GALLEY_CLI_HOME", str(tmp_path / "cli"))
    monkeypatch.setenv("GALLEY_HOME", str(tmp_path / "home"))

    def install(routes):
        server = FakeArm(routes)
        monkeypatch.setattr(common, "make_client", server.client)
        return server

    return install


def run(*args: str):
    return CliRunner().invoke(app, preprocess(list(args)))


@pytest.fixture
def versions(fake):
    return fake({("GET", VERSIONS): ok({"value": [version("1.0.0", False), version("1.0.1", True),
                                                  version("1.0.2", False, "Failed")]})})


LIST = ("sig", "image-version", "list", "-g", "rg", "-r", "g", "-i", "def")


# -- --query -------------------------------------------------------------------------------------

def test_query_written_for_az_works_on_galleys_json(versions):
    """az prints `properties` flattened; the issue's own example query finds the versions."""
    result = run(*LIST, "--query", "[?publishingProfile.excludeFromLatest==`false`].name", "-o", "tsv")
    assert result.exit_code == 0, result.output
    assert result.stdout == "1.0.0\n1.0.2\n"
    same = run(*LIST, "--query", "[?properties.publishingProfile.excludeFromLatest==`false`].name", "-o", "tsv")
    assert same.stdout == result.stdout


def test_query_returning_whole_resources_prints_them_as_galley_does(versions):
    result = run(*LIST, "--query", "[?provisioningState=='Failed']")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == [version("1.0.2", False, "Failed")]  # not flattened, nothing added


def test_query_given_before_the_command_applies_to_it(versions):
    result = run("--query", "[].name", "-o", "tsv", *LIST)
    assert result.exit_code == 0, result.output
    assert result.stdout.split() == ["1.0.0", "1.0.1", "1.0.2"]
    assert run("--query", "[].name", *LIST, "--query", "length(@)").stdout.strip() == "3"  # the command's own wins


def test_invalid_query_is_refused_before_anything_is_sent(fake):
    server = fake({("PUT", f"{GALLERIES}/g"): ok({"name": "g"})})
    result = run("sig", "create", "-g", "rg", "-r", "g", "-l", "eastus", "--query", "[?name==")
    assert result.exit_code == 2
    assert "--query" in result.stderr and "invalid JMESPath query" in result.stderr
    assert server.requests == []


def test_query_failing_on_the_result_is_an_error(versions):
    result = run(*LIST, "--query", "length([0].nothing)")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.startswith("ERROR: --query 'length([0].nothing)': In function length()")


# -- output formats ------------------------------------------------------------------------------

def test_tsv_follows_az_rules():
    assert to_tsv(["a", "b"]) == "a\nb\n"
    assert to_tsv("bare") == "bare\n"
    assert to_tsv(True) == "true\n"
    assert to_tsv(3) == "3\n"
    # a plain object: values in sorted key order; a nested object is an empty field and a nested
    # list its length, so columns stay aligned
    assert to_tsv({"name": "n", "id": "i", "tags": {"a": "1"}, "regions": [1, 2, 3], "flag": False, "gone": None}) \
        == "False\tNone\ti\tn\t3\t\n"
    # an object a query built keeps the query's key order
    assert to_tsv([OrderedDict([("name", "n"), ("id", "i")])]) == "n\ti\n"
    assert to_tsv([["a", 1], ["b", 2]]) == "a\t1\nb\t2\n"


def test_tsv_of_a_query_keeps_its_key_order(versions):
    result = run(*LIST, "--query", "[].{name:name, state:provisioningState, regions:publishingProfile.targetRegions}",
                 "-o", "tsv")
    assert result.stdout == "1.0.0\tSucceeded\t1\n1.0.1\tSucceeded\t1\n1.0.2\tFailed\t1\n"


def test_yaml_and_none(versions):
    result = run(*LIST, "-o", "yaml")
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.stdout) == [version("1.0.0", False), version("1.0.1", True),
                                             version("1.0.2", False, "Failed")]
    assert result.stdout.startswith("- id: ")  # keys sorted, block style, as az writes it
    assert run(*LIST, "-o", "none").stdout == ""
    assert run(*LIST, "--query", "[0].name", "-o", "yaml").stdout == "1.0.0\n...\n"


def test_colored_formats_are_plain_when_stdout_is_not_a_terminal(versions):
    assert run(*LIST, "-o", "yamlc").stdout == run(*LIST, "-o", "yaml").stdout
    assert run(*LIST, "-o", "jsonc").stdout == run(*LIST, "-o", "json").stdout


def test_colored_formats_on_a_terminal(versions, monkeypatch):
    monkeypatch.setattr(output, "color_enabled", lambda: True)
    colored = run(*LIST, "-o", "yamlc").stdout
    plain = run(*LIST, "-o", "yaml").stdout
    assert "\x1b[" in colored and "\x1b[" not in plain
    assert re.sub(r"\x1b\[[0-9;]*m", "", colored) == plain
    jsonc = run(*LIST, "-o", "jsonc").stdout
    assert "\x1b[" in jsonc and json.loads(re.sub(r"\x1b\[[0-9;]*m", "", jsonc)) == json.loads(run(*LIST).stdout)


def test_table_of_a_query_has_the_querys_columns(versions):
    result = run(*LIST, "--query", "[].{Version:name, State:provisioningState, Regions:publishingProfile.targetRegions}",
                 "-o", "table")
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["Version", "State"]  # nested values are left out, as az does
    assert lines[2].split() == ["1.0.0", "Succeeded"]
    names = run(*LIST, "--query", "[].name", "-o", "table").stdout.splitlines()
    assert names[0].strip() == "Result" and [n.strip() for n in names[2:]] == ["1.0.0", "1.0.1", "1.0.2"]
    # without a query, the command's own columns
    assert run(*LIST, "-o", "table").stdout.splitlines()[0].split()[:2] == ["Name", "Location"]


def test_every_command_has_the_global_options():
    import typer.main

    from galley.cli.argv import walk

    missing = []
    for command in walk(typer.main.get_command(app)):
        if getattr(command, "commands", None) or command.name in ("serve", "logout"):
            continue
        names = {opt for param in command.params for opt in getattr(param, "opts", [])}
        if not {"--query", "--output", "--only-show-errors"} <= names:
            missing.append(command.name)
    assert missing == []


# -- progress ------------------------------------------------------------------------------------

class Clock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def test_progress_lines_every_interval_with_bytes_and_rate():
    clock, stream = Clock(), io.StringIO()
    lines = ProgressLines("uploaded", 2 * 1024**3, stream=stream, clock=clock, interval=2)
    for _ in range(4):  # 512 MiB per second
        clock.now += 1
        lines.advance(512 * 1024**2)
    lines.finish()
    assert stream.getvalue().splitlines() == [
        "uploaded 1.0 GiB of 2.0 GiB (50%), 512.0 MiB/s",
        "uploaded 2.0 GiB of 2.0 GiB (100%), 512.0 MiB/s",
        "uploaded 2.0 GiB of 2.0 GiB (100%), 512.0 MiB/s",
    ]


def test_a_quick_transfer_prints_no_progress_and_unknown_totals_print_bytes():
    clock, stream = Clock(), io.StringIO()
    quick = ProgressLines("downloaded", 10, stream=stream, clock=clock, interval=2)
    quick.advance(10)
    quick.finish()
    assert stream.getvalue() == ""
    unknown = ProgressLines("downloaded", None, stream=stream, clock=clock, interval=2)
    clock.now += 4
    unknown.advance(3 * 1024)
    assert stream.getvalue() == "downloaded 3.0 KiB, 768 B/s\n"
    assert [human_bytes(n) for n in (0, 1023, 1024, 1536, 5 * 1024**4)] == ["0 B", "1023 B", "1.0 KiB", "1.5 KiB",
                                                                            "5.0 TiB"]


@pytest.fixture
def disk_upload(fake, tmp_path, monkeypatch):
    monkeypatch.setattr(transfer, "PROGRESS_SECONDS", 0)  # a line on every piece
    monkeypatch.setattr(transfer, "PIECE", 1024 * 1024)
    image = tmp_path / "disk.raw"
    image.write_bytes(b"\1" * (3 * 1024 * 1024))
    fake({("GET", DISK): ok({"name": "d1", "properties": {}}),
          ("PUT", DISK + "/upload"): ok({"name": "d1", "properties": {"diskState": "Unattached"}})})
    return ("disk", "upload", "-g", "rg", "-n", "d1", "--file", str(image), "--format", "raw", "--os-type", "Linux")


def test_upload_progress_shows_when_stderr_is_not_a_terminal(disk_upload):
    result = run(*disk_upload)
    assert result.exit_code == 0, result.output
    lines = result.stderr.splitlines()
    assert lines[0].startswith("WARNING: disk 'd1' exists already")
    assert lines[1].startswith("uploaded 1.0 MiB of 3.0 MiB (33%), ")
    assert lines[-1].startswith("uploaded 3.0 MiB of 3.0 MiB (100%), ") and lines[-1].endswith("/s")
    assert json.loads(result.stdout)["name"] == "d1"  # stdout holds only the result


def test_only_show_errors_silences_progress_and_warnings(disk_upload):
    for args in (("--only-show-errors", *disk_upload), (*disk_upload, "--only-show-errors")):
        result = run(*args)
        assert result.exit_code == 0, result.output
        assert result.stderr == ""
        assert json.loads(result.stdout)["name"] == "d1"


def test_only_show_errors_keeps_errors(fake):
    fake({})
    result = run("sig", "show", "-g", "rg", "-r", "nope", "--only-show-errors")
    assert result.exit_code == 1
    assert result.stderr.startswith("ERROR:")


def test_download_progress_lines(fake, tmp_path, monkeypatch):
    monkeypatch.setattr(transfer, "PROGRESS_SECONDS", 0)
    monkeypatch.setattr(transfer, "PIECE", 1024 * 1024)
    fake({("GET", DISK + "/download"): httpx.Response(200, content=b"\1" * (2 * 1024 * 1024))})
    result = run("disk", "download", "-g", "rg", "-n", "d1", "--file", str(tmp_path / "d.raw"))
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines()[-1].startswith("downloaded 2.0 MiB of 2.0 MiB (100%), ")
