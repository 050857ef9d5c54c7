"""Moving disk content between files and the server: uploads streamed from a file in 4 MiB
pieces, downloads streamed into `OUT.partial` and renamed to OUT once complete, both showing
progress on stderr (stdout stays clean JSON): a Rich bar on a terminal, else a plain line every
few seconds (`uploaded 512.0 MiB of 2.0 GiB (25%), 210.3 MiB/s`), so a piped or CI transfer is
not silent and its log is free of bar redraws. `--only-show-errors` silences both.

Also what an upload needs to know about a local image before sending it: its format and
the `uploadSizeBytes` of the disk that will receive it."""

import os
import struct
import sys
import time
from contextlib import contextmanager
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Callable, Iterator, Optional, TextIO

import typer
from rich.console import Console
from rich.progress import (
    BarColumn, DownloadColumn, Progress, TaskID, TextColumn, TimeRemainingColumn, TransferSpeedColumn,
)

from galley.cli.client import ArmError
from galley.cli.common import Session, usage_error

PIECE = 4 * 1024 * 1024  # bytes read from the file (or written to it) at a time
VHD_FOOTER = 512


class UploadFormat(str, Enum):
    vhd = "vhd"
    vhd_fixed = "vhd-fixed"
    vhd_dynamic = "vhd-dynamic"
    raw = "raw"
    qcow2 = "qcow2"


class DownloadFormat(str, Enum):
    raw = "raw"
    vhd = "vhd"
    vhd_fixed = "vhd-fixed"
    vhd_dynamic = "vhd-dynamic"
    qcow2 = "qcow2"


InFileOpt = Annotated[Path, typer.Option("--file", "-f", exists=True, dir_okay=False, readable=True,
                                         help="Disk image to upload: VHD (fixed or dynamic), raw or qcow2.")]
UploadFormatOpt = Annotated[Optional[UploadFormat], typer.Option(
    "--format", case_sensitive=False, help="Format of --file. Detected from its content when omitted.")]
OutFileOpt = Annotated[Path, typer.Option("--file", "-f", dir_okay=False,
                                          help="File to write; it appears only once complete (FILE.partial until then).")]
DownloadFormatOpt = Annotated[Optional[DownloadFormat], typer.Option(
    "--format", case_sensitive=False,
    help="Format to write: raw, vhd (fixed), vhd-dynamic or qcow2. Default: from --file's extension "
    "(.vhd, .qcow2), else raw.")]
LunOpt = Annotated[Optional[int], typer.Option(
    "--lun", min=-1, help="LUN of the data disk to download; -1 or omitted: the OS disk.")]


# -- progress -----------------------------------------------------------------------


PROGRESS_SECONDS = 2.0  # between progress lines when stderr is not a terminal


def show_progress() -> bool:
    """Bars only on a terminal: piped or captured stderr gets no redraw noise."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


def human_bytes(count: float) -> str:
    """1536 -> '1.5 KiB' (binary units, one decimal; bytes as they are)."""
    if count < 1024:
        return f"{int(count)} B"
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        count /= 1024
        if count < 1024 or unit == "TiB":
            break
    return f"{count:.1f} {unit}"


class ProgressLines:
    """Progress as plain lines for a stderr that is not a terminal: one every `interval` seconds,
    `uploaded 512.0 MiB of 2.0 GiB (25%), 210.3 MiB/s` (rate: the average so far). A transfer
    over before the first line prints nothing; one that printed lines ends with a last one."""

    def __init__(self, verb: str, total: Optional[int], stream: Optional[TextIO] = None,
                 clock: Callable[[], float] = time.monotonic, interval: Optional[float] = None) -> None:
        self.verb, self.total, self.stream, self.clock = verb, total, stream or sys.stderr, clock
        self.interval = PROGRESS_SECONDS if interval is None else interval
        self.done = 0
        self.started = self.last = clock()
        self.printed = False

    def advance(self, n: int = 0, description: Optional[str] = None) -> None:
        self.done += n
        now = self.clock()
        if now - self.last >= self.interval:
            self.last = now
            self.write(self.line(now))

    def finish(self) -> None:
        if self.printed:
            self.write(self.line(self.clock()))

    def line(self, now: float) -> str:
        elapsed = max(now - self.started, 1e-9)
        text = f"{self.verb} {human_bytes(self.done)}"
        if self.total:
            text += f" of {human_bytes(self.total)} ({100 * self.done // self.total}%)"
        return f"{text}, {human_bytes(self.done / elapsed)}/s"

    def write(self, line: str) -> None:
        self.stream.write(line + "\n")
        self.stream.flush()
        self.printed = True


@contextmanager
def progress_bar(description: str, total: Optional[int], *, quiet: bool = False) -> Iterator[Callable[..., None]]:
    """Yields advance(n, description=None): adds n bytes to the progress shown on stderr: a bar
    on a terminal, else ProgressLines; nothing when `quiet` (--only-show-errors)."""
    if quiet:
        yield lambda n=0, description=None: None
        return
    if not show_progress():
        lines = ProgressLines("downloaded" if description.startswith("download") else "uploaded", total)
        yield lines.advance
        lines.finish()
        return
    progress = Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
        TimeRemainingColumn(), console=Console(stderr=True, force_terminal=True), transient=True,
    )
    with progress:
        task: TaskID = progress.add_task(description, total=total)

        def advance(n: int = 0, description: Optional[str] = None) -> None:
            if description is not None:
                progress.update(task, description=description)
            if n:
                progress.advance(task, n)

        yield advance


# -- local images -------------------------------------------------------------------


def detect_format(path: Path) -> str:
    """'vhd', 'qcow2' or 'raw', as the server will detect it."""
    from galley.content.formats import detect_format as detect  # the content layer, not the server

    return detect(path)


def qcow2_virtual_size(path: Path) -> int:
    """The virtual size in a qcow2 header (big-endian u64 at offset 24)."""
    with open(path, "rb") as f:
        header = f.read(32)
    if len(header) < 32 or header[:4] != b"QFI\xfb":
        raise usage_error(f"{path} is not a qcow2 image.")
    return struct.unpack(">Q", header[24:32])[0]


def upload_size_bytes(path: Path, fmt: Optional[str]) -> int:
    """The uploadSizeBytes of a disk that is to receive `path`: the image's virtual size plus
    the 512-byte VHD footer (for a fixed VHD, the file's size). When the image cannot be read
    here, a size good enough to create the disk is returned and the server's check of the
    upload tells what is wrong with it."""
    from galley.content.formats import DiskFormatError, QemuImgError, open_disk

    with local_file_errors(path):
        kind = fmt or detect_format(path)
    try:
        with open_disk(path, fmt) as image:
            return image.virtual_size + VHD_FOOTER
    except (DiskFormatError, QemuImgError, OSError):
        if kind.startswith("vhd"):
            return path.stat().st_size
        if kind == "qcow2":
            return qcow2_virtual_size(path) + VHD_FOOTER
        return path.stat().st_size + VHD_FOOTER


@contextmanager
def local_file_errors(path: Path) -> Iterator[None]:
    """A local file that cannot be read or written is reported like any other error."""
    try:
        yield
    except OSError as error:
        raise ArmError("FileError", f"{path}: {error.strerror or error}") from None


def file_pieces(path: Path, length: int, advance: Callable[..., None]) -> Iterator[bytes]:
    """The first `length` bytes of `path` in PIECE-sized pieces, counted on the bar.
    When the file shrinks under us the upload is stopped rather than sent short."""
    sent = 0
    with local_file_errors(path), open(path, "rb") as f:
        while sent < length:
            piece = f.read(min(PIECE, length - sent))
            if not piece:
                raise ArmError("FileChanged", f"{path} became shorter while it was being uploaded "
                               f"({sent} of {length} bytes sent).")
            sent += len(piece)
            advance(len(piece))
            yield piece
    advance(0, description="server storing")


def upload_file(session: Session, url: str, api_version: Optional[str], path: Path,
                params: Optional[dict] = None, label: Optional[str] = None) -> Any:
    """PUT the file at `path` to `url` as a stream; the server's JSON answer."""
    with local_file_errors(path):
        length = path.stat().st_size
    with progress_bar(f"upload {label or path.name}", length, quiet=session.only_show_errors) as advance:
        response = session.client.send_content("PUT", url, api_version, file_pieces(path, length, advance),
                                               length, params=params)
    try:
        return response.json() if response.content.strip() else None
    except ValueError:
        raise ArmError("InvalidResponse", f"the server answered the upload with non-JSON content: "
                       f"{response.text[:200]}") from None


# -- downloads ----------------------------------------------------------------------


def format_for(path: Path, fmt: Optional[Enum]) -> str:
    """--format as given, else from OUT's extension (.vhd: a fixed VHD, .qcow2), else raw."""
    if fmt is not None:
        return fmt.value
    suffix = path.suffix.lower()
    if suffix == ".vhd":
        return "vhd"
    if suffix in (".qcow2", ".qcow"):
        return "qcow2"
    return "raw"


def partial_path(out: Path) -> Path:
    return out.with_name(out.name + ".partial")


def is_zero(piece: bytes) -> bool:
    return piece.count(0) == len(piece)


def download_file(session: Session, url: str, api_version: Optional[str], out: Path,
                  params: Optional[dict] = None, label: Optional[str] = None) -> int:
    """GET `url` into OUT.partial, then rename it to OUT; the number of bytes written.
    Runs of zeros are left as holes (disk images are mostly empty); a short body is an
    error and leaves no file behind."""
    if out.is_dir():
        raise usage_error(f"--file {out} is a directory.")
    partial = partial_path(out)
    written = 0
    try:
        with session.client.receive_content(url, api_version, params=params) as response:
            declared = response.headers.get("Content-Length")
            total = int(declared) if declared and declared.isdigit() else None
            with local_file_errors(partial), open(partial, "wb") as f, progress_bar(f"download {label or out.name}", total, quiet=session.only_show_errors) as advance:
                for piece in response.iter_bytes(PIECE):
                    if is_zero(piece):
                        f.seek(len(piece), os.SEEK_CUR)
                    else:
                        f.write(piece)
                    written += len(piece)
                    advance(len(piece))
                f.truncate(written)  # a trailing hole still counts towards the size
        if total is not None and written != total:
            raise ArmError("IncompleteDownload", f"the server sent {written} of {total} bytes.")
        with local_file_errors(out):
            os.replace(partial, out)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return written


def download_result(out: Path, fmt: str, size: int, source: str) -> dict:
    return {"file": str(out.resolve()), "format": fmt, "bytes": size, "source": source}


DOWNLOAD_COLUMNS = (
    ("File", lambda r: r.get("file")), ("Format", lambda r: r.get("format")),
    ("Bytes", lambda r: r.get("bytes")), ("Source", lambda r: r.get("source")),
)


def download_resource(session: Session, path: str, api_version: str, out: Path, fmt: Optional[Enum],
                      label: str, **params: Any) -> dict:
    """Download the disk content of the resource at ARM `path` into OUT; what was written.
    `params` (lun, region) are sent when not None."""
    chosen = format_for(out, fmt)
    query = {"format": chosen, **{key: value for key, value in params.items() if value is not None}}
    size = download_file(session, path + "/download", api_version, out, query, label=label)
    return download_result(out, chosen, size, path)
