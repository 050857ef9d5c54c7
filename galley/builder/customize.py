"""What an Image Builder template's customizers mean, as commands for the build sandbox.

Pure and testable without root: `parse_customizers` checks a template's `customize` list
before any work starts; `plan_customizer` fetches what a customizer needs (through the
caller's `fetch(uri) -> bytes`), enforces `sha256Checksum` and the File customizer's 20 MB
limit, and returns the commands to run inside the image (`galley.builder.sandbox` runs them).

    {"type": "Shell", "name": n, "inline": ["cmd", ...]}       the lines, as one script, with /bin/sh -e
    {"type": "Shell", "name": n, "scriptUri": u,                fetched, checked, copied to /tmp in the
     "sha256Checksum": h}                                       image and run (its #! line, or /bin/sh)
    {"type": "File", "name": n, "sourceUri": u,                 fetched (< 20 MB), checked, written to
     "destination": "/tmp/...", "sha256Checksum": h?}           `destination`: on Linux only under /tmp

Files reach the image through the sandbox too (a shell in the image copies its standard input
into place), so a symlink left in the image by an earlier customizer resolves inside the image,
never on the host.
"""
from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import PurePosixPath

FILE_MAX_BYTES = 20 * 1024 * 1024  # "the File customizer is only suitable for small downloads, < 20MB"
WINDOWS_ONLY_TYPES = {"powershell": "PowerShell", "windowsrestart": "WindowsRestart", "windowsupdate": "WindowsUpdate"}
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")

Fetch = Callable[[str], bytes]


class InvalidCustomizer(ValueError):
    """A template's customizer is not acceptable; rejected before the build starts."""

    def __init__(self, index: int, message: str):
        super().__init__(f"customize[{index}]: {message}")
        self.index = index


class CustomizerInputError(Exception):
    """What a customizer needs could not be fetched or is not what the template says."""

    def __init__(self, customizer: Customizer, message: str):
        super().__init__(f"{customizer.label}: {message}")
        self.customizer = customizer


@dataclass(frozen=True)
class Customizer:
    index: int
    type: str                      # "Shell" or "File"
    name: str
    inline: tuple[str, ...] = ()
    script_uri: str | None = None
    source_uri: str | None = None
    destination: str | None = None
    sha256: str | None = None      # lower-case hex

    @property
    def label(self) -> str:
        return f"customizer '{self.name}' ({self.type})"

    def describe(self) -> str:
        if self.type == "File":
            return f"{self.source_uri} -> {self.destination}"
        if self.script_uri:
            return f"script {self.script_uri}"
        return f"inline, {len(self.inline)} command{'s' if len(self.inline) != 1 else ''}"


@dataclass(frozen=True)
class SandboxCommand:
    """One command to run inside the image; `stdin` is given to it as standard input."""
    argv: tuple[str, ...]
    stdin: bytes | None = None


# --------------------------------------------------------------------------- checking a template

def parse_customizers(raw: object) -> list[Customizer]:
    """The template's `customize` list, checked; raises InvalidCustomizer naming the entry."""
    if raw is None:
        return []
    if not isinstance(raw, (list, tuple)):
        raise InvalidCustomizer(0, "customize must be a list of customizers")
    parsed = [_parse_one(i, entry) for i, entry in enumerate(raw)]
    seen: dict[str, int] = {}
    for c in parsed:
        if c.name in seen:
            raise InvalidCustomizer(c.index, f"name '{c.name}' is already used by customize[{seen[c.name]}]; "
                                             "names must be unique")
        seen[c.name] = c.index
    return parsed


def _parse_one(index: int, entry: object) -> Customizer:
    if not isinstance(entry, dict):
        raise InvalidCustomizer(index, "each customizer must be an object with a 'type'")
    kind = entry.get("type")
    if not isinstance(kind, str) or not kind:
        raise InvalidCustomizer(index, "'type' is required: Shell or File")
    if kind.lower() in WINDOWS_ONLY_TYPES:
        raise InvalidCustomizer(index, f"type {WINDOWS_ONLY_TYPES[kind.lower()]} is for Windows images; "
                                       "this builder builds Linux images: use Shell or File")
    if kind.lower() not in ("shell", "file"):
        raise InvalidCustomizer(index, f"type '{kind}' is not supported: use Shell or File")
    kind = "Shell" if kind.lower() == "shell" else "File"
    name = entry.get("name")
    if name is None:
        name = f"{kind.lower()}-{index + 1}"
    if not isinstance(name, str) or not name.strip() or len(name) > 200 or any(ord(ch) < 32 for ch in name):
        raise InvalidCustomizer(index, "'name' must be a non-empty line of text (at most 200 characters)")
    sha = entry.get("sha256Checksum")
    if sha in ("", None):
        sha = None
    elif not isinstance(sha, str) or not _SHA256.match(sha):
        raise InvalidCustomizer(index, f"customizer '{name}': sha256Checksum must be 64 hexadecimal digits")
    else:
        sha = sha.lower()

    if kind == "Shell":
        inline, script_uri = entry.get("inline"), entry.get("scriptUri")
        if (inline is None) == (script_uri is None):
            raise InvalidCustomizer(index, f"customizer '{name}' (Shell): give exactly one of 'inline' and 'scriptUri'")
        if inline is not None:
            if isinstance(inline, str):
                inline = [inline]
            if (not isinstance(inline, (list, tuple)) or not inline
                    or not all(isinstance(line, str) for line in inline)):
                raise InvalidCustomizer(index, f"customizer '{name}' (Shell): 'inline' must be a non-empty list "
                                               "of commands")
            if sha is not None:
                raise InvalidCustomizer(index, f"customizer '{name}' (Shell): sha256Checksum checks a scriptUri; "
                                               "inline commands have none")
            return Customizer(index, kind, name, inline=tuple(inline))
        if not isinstance(script_uri, str) or not script_uri.strip():
            raise InvalidCustomizer(index, f"customizer '{name}' (Shell): 'scriptUri' must be a URI")
        return Customizer(index, kind, name, script_uri=script_uri, sha256=sha)

    source, destination = entry.get("sourceUri"), entry.get("destination")
    if not isinstance(source, str) or not source.strip():
        raise InvalidCustomizer(index, f"customizer '{name}' (File): 'sourceUri' is required")
    if not isinstance(destination, str) or not destination:
        raise InvalidCustomizer(index, f"customizer '{name}' (File): 'destination' is required (a file under /tmp)")
    problem = destination_problem(destination)
    if problem:
        raise InvalidCustomizer(index, f"customizer '{name}' (File): {problem}")
    return Customizer(index, kind, name, source_uri=source, destination=destination, sha256=sha)


def destination_problem(destination: str) -> str | None:
    """Why a File customizer may not write to `destination`, or None when it may."""
    if any(ord(ch) < 32 for ch in destination):
        return "destination contains a control character"
    outside = (f"destination '{destination}' is not allowed: on Linux the File customizer can only write "
               "to a file under /tmp (move it elsewhere with a Shell customizer)")
    if not destination.startswith("/"):
        return outside
    if destination.endswith("/") or "//" in destination or any(p in (".", "..") for p in destination.split("/")):
        return (f"destination '{destination}' must be a plain absolute file path under /tmp "
                "(no '.' or '..', no trailing '/')")
    parts = PurePosixPath(destination).parts
    if len(parts) < 3 or parts[1] != "tmp":
        return outside
    return None


# --------------------------------------------------------------------------- planning one customizer

# Copies standard input to $1 (in the image), makes it executable, runs it, removes it.
_PUT_AND_RUN = """\
set -e
f=$1; shift
cat > "$f"
chmod 0755 "$f"
exec </dev/null
set +e
"$@" "$f"
code=$?
rm -f -- "$f"
exit $code
"""
_PUT_AND_EXEC = _PUT_AND_RUN.replace('"$@" "$f"', '"$f"')
_PUT_FILE = 'cat > "$1"'


def plan_customizer(c: Customizer, fetch: Fetch | None) -> list[SandboxCommand]:
    """Fetch and check what `c` needs; the commands that carry it out inside the image."""
    if c.type == "File":
        data = fetch_checked(c, c.source_uri, fetch, max_bytes=FILE_MAX_BYTES)
        return [SandboxCommand(("/bin/sh", "-c", _PUT_FILE, "galley-file", c.destination), stdin=data)]
    script_path = f"/tmp/galley-customizer-{c.index + 1:02d}.sh"
    if c.script_uri is None:
        script = "\n".join(c.inline) + "\n"
        return [SandboxCommand(("/bin/sh", "-c", _PUT_AND_RUN, "galley-shell", script_path, "/bin/sh", "-e"),
                               stdin=script.encode())]
    data = fetch_checked(c, c.script_uri, fetch)
    if data.startswith(b"#!"):
        return [SandboxCommand(("/bin/sh", "-c", _PUT_AND_EXEC, "galley-shell", script_path), stdin=data)]
    return [SandboxCommand(("/bin/sh", "-c", _PUT_AND_RUN, "galley-shell", script_path, "/bin/sh"), stdin=data)]


def fetch_checked(c: Customizer, uri: str, fetch: Fetch | None, *, max_bytes: int | None = None) -> bytes:
    if fetch is None:
        raise CustomizerInputError(c, f"cannot download {uri}: the build was given no way to fetch URIs")
    try:
        data = fetch(uri)
    except Exception as failed:  # any download failure fails the customizer
        raise CustomizerInputError(c, f"cannot download {uri}: {failed}") from failed
    if isinstance(data, str):
        data = data.encode()
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise CustomizerInputError(c, f"downloading {uri} gave {type(data).__name__}, not bytes")
    data = bytes(data)
    if max_bytes is not None and len(data) > max_bytes:
        raise CustomizerInputError(c, f"{uri} is {len(data):,} bytes; the File customizer takes files up to "
                                      f"{max_bytes:,} bytes (20 MB): download bigger files with a Shell customizer "
                                      "(curl or wget)")
    mismatch = sha256_mismatch(data, c.sha256, uri)
    if mismatch:
        raise CustomizerInputError(c, mismatch)
    return data


def sha256_mismatch(data: bytes, expected: str | None, uri: str) -> str | None:
    """What is wrong when `data` (downloaded from `uri`) does not have the sha256Checksum `expected`."""
    if expected is None:
        return None
    actual = hashlib.sha256(data).hexdigest()
    if actual == expected.lower():
        return None
    return f"sha256 mismatch for {uri}: sha256Checksum is {expected} but the downloaded file's sha256 is {actual}"


# --------------------------------------------------------------------------- around the customizers

POLICY_RC_D = "/usr/sbin/policy-rc.d"
_POLICY_MARK = "galley-build: no services start while the image is customized"

# Debian's invoke-rc.d asks policy-rc.d before starting a service a package installs: 101 says no.
PREPARE = SandboxCommand(("/bin/sh", "-c", f"""\
if [ -d /usr/sbin ] && [ ! -e {POLICY_RC_D} ] && [ ! -L {POLICY_RC_D} ]; then
    printf '#!/bin/sh\\n# {_POLICY_MARK}\\nexit 101\\n' > {POLICY_RC_D}
    chmod 0755 {POLICY_RC_D}
fi
"""))
UNPREPARE = SandboxCommand(("/bin/sh", "-c", f"""\
if [ -f {POLICY_RC_D} ] && grep -q '{_POLICY_MARK}' {POLICY_RC_D}; then rm -f {POLICY_RC_D}; fi
"""))
