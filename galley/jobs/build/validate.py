"""validate.inVMValidations: boot the built image under QEMU and run the validators inside it.

All validators run in one boot, in order, from one script on the validation disk: a Shell
validator's inline commands (under `sh -e`) or its downloaded script, a File validator's file
copied to its destination. The first one that fails ends the script with its exit code.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from ...builder.boot import BootCancelled, BootTestError, boot_test
from ...builder.customize import sha256_mismatch

MAX_BOOT_SECONDS = 900


class ValidationFailed(Exception):
    pass


@dataclass(frozen=True)
class Validation:
    exit_code: int
    output: str
    seconds: float
    accel: str


def validate(image: Path, validators: list[dict], fetch, *, seconds_left: float, work_dir: Path,
             say, cancel) -> Validation:
    """Raises ValidationFailed when no result came, BootCancelled when `cancel` was set."""
    script, files = _script(validators, fetch)
    timeout = max(60.0, min(MAX_BOOT_SECONDS, seconds_left))
    say(f"booting the image under QEMU to run {len(validators)} validator(s) (timeout {timeout:.0f} s)")
    try:
        result = boot_test(image, script, fmt="raw", timeout=timeout, extra_files=files, work_dir=work_dir,
                           cancel=cancel)
    except BootCancelled:
        raise
    except BootTestError as failed:
        first_line = str(failed).splitlines()[0]
        raise ValidationFailed(f"the image did not report a validation result: {first_line}. Images need the "
                               "galley-validate hook that `galley platform import` images carry.") from None
    for line in result.output.splitlines():
        say(f"[validate] {line}")
    say(f"validation exit code {result.exit_code} after {result.seconds:.1f} s ({result.accel})")
    return Validation(result.exit_code, result.output, result.seconds, result.accel)


def _script(validators: list[dict], fetch) -> tuple[str, dict[str, bytes]]:
    lines = ["#!/bin/sh", "cd \"$(dirname \"$0\")\""]
    files: dict[str, bytes] = {}
    for number, step in enumerate(validators, start=1):
        name = step.get("name") or f"validator {number}"
        banner = shlex.quote(f"--- {name} ({step['type']})")
        lines.append(f"echo {banner}")
        if step["type"] == "File":
            data = _download(step, step["sourceUri"], fetch)
            files[f"file-{number}"] = data
            destination = shlex.quote(step["destination"])
            lines.append(f"mkdir -p \"$(dirname {destination})\" && cp file-{number} {destination} || exit $?")
        elif "inline" in step:
            files[f"validator-{number}.sh"] = ("\n".join(step["inline"]) + "\n").encode()
            lines.append(f"/bin/sh -e -x ./validator-{number}.sh || exit $?")
        else:
            files[f"validator-{number}.sh"] = _download(step, step["scriptUri"], fetch)
            lines.append(f"/bin/sh ./validator-{number}.sh || exit $?")
    return "\n".join(lines) + "\n", files


def _download(step: dict, uri: str, fetch) -> bytes:
    try:
        data = fetch(uri)
    except Exception as failed:
        raise ValidationFailed(f"validator '{step.get('name', step['type'])}': cannot download {uri}: {failed}")
    mismatch = sha256_mismatch(data, step.get("sha256Checksum"), uri)
    if mismatch:
        raise ValidationFailed(f"validator '{step.get('name', step['type'])}': {mismatch}")
    return data
