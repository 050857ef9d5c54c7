"""Where a template's build works on this host, and clearing what a dead build left there.

Each template has one folder, `$GALLEY_HOME/builds/{digest of the template id}`: the source
exported as raw, the image being built, and customization.log, which outlives the run so that
`logs` can show it until the next run starts.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

from ...builder.pipeline import LOG_NAME, loop_backing_files, mount_points

BUILDS = "builds"


def run_dir(home: Path, template_id: str) -> Path:
    digest = hashlib.sha256(template_id.lower().encode()).hexdigest()[:24]
    return home / BUILDS / digest


def log_path(home: Path, template_id: str) -> Path:
    return run_dir(home, template_id) / LOG_NAME


def clear(folder: Path) -> list[str]:
    """Remove `folder` and what a build killed with its server left in it: sandbox processes
    rooted there, mounts below it, loop devices on its files. Returns what had to be undone."""
    if not folder.exists():
        return []
    undone = _undo(folder)
    shutil.rmtree(folder, ignore_errors=True)
    return undone


def reclaim(home: Path) -> list[str]:
    """At a server's start, before its builder takes work: undo what the builds of this home's
    previous server left when it died (kill -9, a crash) and delete their images, keeping each
    customization.log. Another node may be running those builds again by now; what this
    machine holds of them would otherwise stay (a sandbox still running its customizer, mounts,
    loop devices) until the same template's next run here. Returns what had to be undone."""
    undone: list[str] = []
    builds = home / BUILDS
    if not builds.is_dir():
        return undone
    for folder in sorted(p for p in builds.iterdir() if p.is_dir()):
        undone += _undo(folder)
        for item in folder.iterdir():
            if item.name == LOG_NAME:
                continue
            if item.is_dir() and not item.is_symlink():
                shutil.rmtree(item, ignore_errors=True)
            else:
                item.unlink(missing_ok=True)
    return undone


def _undo(folder: Path) -> list[str]:
    undone: list[str] = []
    inside = str(folder.resolve())
    for pid in _processes_rooted_in(inside):
        try:
            os.kill(pid, signal.SIGKILL)
            undone.append(f"killed process {pid}")
        except ProcessLookupError:
            pass
    for mount_point in sorted(_mounts_below(inside), key=len, reverse=True):
        for _ in range(20):
            if subprocess.run(["umount", mount_point], capture_output=True).returncode == 0:
                break
            time.sleep(0.25)
        else:
            subprocess.run(["umount", "--lazy", mount_point], capture_output=True)
        undone.append(f"unmounted {mount_point}")
    for device in _loops_backed_below(inside):
        subprocess.run(["losetup", "--detach", device], capture_output=True)
        undone.append(f"detached {device}")
    return undone


def _processes_rooted_in(folder: str) -> list[int]:
    """Processes whose root or working folder is in `folder` (sandboxes), or that name a file in
    it on their command line (QEMU booting the image to validate it, a copy of the image)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            root = os.readlink(entry / "root")
            cwd = os.readlink(entry / "cwd")
            arguments = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if any(p == folder or p.startswith(folder + "/") for p in (root, cwd)) or \
                any(folder + "/" in argument for argument in arguments):
            found.append(int(entry.name))
    return found


def _mounts_below(folder: str) -> list[str]:
    return [p for p in mount_points() if p.startswith(folder + "/")]


def _loops_backed_below(folder: str) -> list[str]:
    return [device for device, name in loop_backing_files().items() if name.startswith(folder + "/")]
