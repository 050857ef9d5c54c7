"""`galley vm …`: virtual machines (their commands are in vm_commands.py), and `boot-test`, which
boots an image here to test it without making a VM.

`galley vm boot-test SOURCE --script FILE` downloads the OS disk of a managed image, disk, snapshot
or gallery image version as raw into a temporary folder, boots it under QEMU on this machine
(galley.builder.boot) with the script on a validation disk, and reports the script's exit code and
output. The command exits with the script's exit code."""

import tempfile
from pathlib import Path
from typing import Annotated, Optional

import typer

from galley.cli.client import API_DISK, API_GALLERY, API_IMAGE, ArmError
from galley.cli import paths
from galley.cli.common import Session, arm_command, usage_error
from galley.cli.output import field
from galley.cli.transfer import download_file, local_file_errors

app = typer.Typer(help="Manage virtual machines, and test images by booting them on this machine.",
                  no_args_is_help=True)

# The resources whose OS disk can be downloaded, by their Microsoft.Compute type words.
DOWNLOAD_APIS = {
    ("images",): API_IMAGE,
    ("disks",): API_DISK,
    ("snapshots",): API_DISK,
    ("galleries", "images", "versions"): API_GALLERY,
}
BOOT_COLUMNS = (("ExitCode", field("exitCode")), ("Seconds", field("seconds")), ("Accel", field("accel")),
                ("Output", field("output")))


def download_api(source: str) -> str:
    """The api-version to download SOURCE's disk with; a usage error for ids of other kinds."""
    api = DOWNLOAD_APIS.get(tuple(paths.compute_types(source) or ()))
    if api is None:
        raise usage_error(f"SOURCE must be the id of a managed image, disk, snapshot or gallery image version "
                          f"(/subscriptions/.../providers/Microsoft.Compute/...), not {source!r}.")
    return api


def boot_test(
    session: Session,
    source: Annotated[str, typer.Argument(help="Id of a managed image, disk, snapshot or gallery image version.",
                                          show_default=False)],
    *,
    script: Annotated[Path, typer.Option("--script", exists=True, dir_okay=False, readable=True,
                                         help="Shell script to run as root inside the booted VM.")],
    location: Annotated[Optional[str], typer.Option(
        "--location", "-l", help="Region to download the disk from (a gallery image version's replica).")] = None,
    timeout: Annotated[float, typer.Option("--timeout", min=1, help="Seconds for the whole test, boot included.")] = 300,
    memory_mib: Annotated[int, typer.Option("--memory-mib", min=128, help="Memory of the VM, in MiB.")] = 1024,
):
    """Boot an image's OS disk under QEMU here, run --script in it and report its exit code and output.

    Exits with the script's exit code (1 with an error when the VM never reported one)."""
    from galley.builder import boot  # QEMU tooling: imported only when used

    api = download_api(source)
    with local_file_errors(script):
        script_text = script.read_text()
    with tempfile.TemporaryDirectory(prefix="galley-boot-test-") as folder:
        disk = Path(folder) / "os-disk.raw"
        params = {"format": "raw", **({"region": location} if location else {})}
        download_file(session, source.rstrip("/") + "/download", api, disk, params, label="OS disk")
        try:
            result = boot.boot_test(disk, script_text, fmt="raw", timeout=timeout, memory_mib=memory_mib)
        except boot.BootTestError as error:
            code = "BootTimeout" if isinstance(error, TimeoutError) else "BootTestFailed"
            raise ArmError(code, f"the VM never reported the script's result: {error}") from None
    report = {"exitCode": result.exit_code, "output": result.output, "seconds": result.seconds,
              "accel": result.accel}
    if result.exit_code != 0:
        session.emit(report, BOOT_COLUMNS)
        raise typer.Exit(result.exit_code)
    return report


arm_command(app, "boot-test", BOOT_COLUMNS)(boot_test)
