"""Uploading a disk image the way Azure's tools do it (`az disk upload`, AzCopy): the disk or
snapshot is created with createOption Upload and uploadSizeBytes = the image as a fixed VHD (its
virtual size plus the 512-byte footer), a Write SAS is granted (beginGetAccess), the image's data
goes to the SAS URL in parallel Put Page requests, then the footer, and access is revoked
(endGetAccess), which makes the pages the content.

What is sent: only data. The image's extents (SEEK_DATA/SEEK_HOLE of a raw file or fixed VHD, the
block map of a dynamic VHD, `qemu-img map` of a qcow2) give the spans holding data; within each
4 MiB cell of the blob the span from its first to its last data byte is one Put Page, skipped when
it reads as zeros. A raw or qcow2 image is converted on the fly: its bytes, then a footer computed
here; a fixed VHD sends its own footer.

Resuming: a disk already in ReadyToUpload/ActiveUpload with the same uploadSizeBytes is an upload
that was interrupted. The Write SAS is granted again (the same session, so the same pages), Get
Page Ranges says which pages hold data, and a piece is sent only when some of its non-zero bytes
fall outside them. Pages already written are trusted, not read back: a re-run with a different
image of the same size keeps what the first run wrote there (delete the disk to start over).

Memory: each of the WRITERS threads reads the piece it sends (at most 4 MiB); pieces not yet
started are only offsets. No checksum is sent with a page (TLS protects it on the way); a failed
write is retried a few times, then the command stops and a re-run resumes.
"""

from __future__ import annotations

import os
import threading
import time
import xml.etree.ElementTree as ElementTree
from bisect import bisect_right
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterable, Iterator, Optional

import httpx

from galley.cli.client import ArmError
from galley.cli.transfer import local_file_errors
from galley.content.disk_image import is_zero
from galley.domain.limits import MIN_UPLOAD_SIZE_BYTES

PAGE = 512
PAGE_WRITE = 4 * 1024 * 1024  # Put Page's largest write, and the cell each write stays inside
WRITERS = 8
SAS_SECONDS = 24 * 3600  # how long an interrupted upload can be resumed
UPLOAD_STATES = ("ReadyToUpload", "ActiveUpload")
BLOB_VERSION = "2021-08-06"
WRITE_TIMEOUT = httpx.Timeout(60.0, read=600.0, write=600.0)
RETRIES = (0.5, 1.0, 2.0, 4.0)  # pauses before each retry of a failed page write
TRANSIENT = (408, 429, 500, 502, 503, 504)
FOOTER = 512
VHD_FIXED = 2

Span = tuple[int, int]  # [start, end)


# -- the local image ------------------------------------------------------------------------


def unusable(path: Path, error: Exception) -> ArmError:
    return ArmError("InvalidDiskImage", f"{path} is not a usable disk image: {error}")


@contextmanager
def local_image(path: Path, fmt: Optional[str]) -> Iterator[Optional[object]]:
    """The image opened for reading (galley.content.formats), checked as the server would check it;
    None when it cannot be read here (a qcow2 without qemu-img on this machine: the server reads it)."""
    from galley.content.formats import DiskFormatError, QemuImgError, check_disk_size, open_disk

    try:
        with local_file_errors(path):
            image = open_disk(path, fmt)
    except QemuImgError:
        yield None
        return
    except DiskFormatError as error:
        raise unusable(path, error) from None
    with image:
        try:
            check_disk_size(image)
        except DiskFormatError as error:
            raise unusable(path, error) from None
        yield image


def vhd_footer(path: Path, image) -> bytes:
    """The 512 bytes that follow the disk in the blob: a fixed VHD's own footer, else a new one."""
    if image.format == "vhd-fixed":
        with local_file_errors(path), open(path, "rb") as f:
            f.seek(-FOOTER, os.SEEK_END)
            return f.read(FOOTER)
    from galley.content.vhd import VhdFooter

    return VhdFooter.new(VHD_FIXED, image.virtual_size).pack()


def blob_size(image) -> int:
    """The uploadSizeBytes that holds `image` as a fixed VHD."""
    return image.virtual_size + FOOTER


def fits_sas_upload(size: int) -> bool:
    """Azure's smallest upload (20 MiB + footer); smaller images take Galley's own PUT …/upload."""
    return size >= MIN_UPLOAD_SIZE_BYTES


def data_pieces(extents: Iterable[tuple[int, int, bool]], size: int, cell: int = PAGE_WRITE) -> Iterator[Span]:
    """The spans to write: in each `cell`-aligned cell, from its first to its last byte of data,
    rounded out to whole 512-byte pages (so each is one Put Page, and whole cells line up with
    the server's chunks)."""
    current, lo, hi = None, 0, 0
    for offset, length, has_data in extents:
        if not has_data or length <= 0:
            continue
        a = offset // PAGE * PAGE
        b = min(size, -(-(offset + length) // PAGE) * PAGE)
        while a < b:
            index = a // cell
            end = min(b, (index + 1) * cell)
            if index == current:
                hi = max(hi, end)
            else:
                if current is not None:
                    yield lo, hi
                current, lo, hi = index, a, end
            a = end
    if current is not None:
        yield lo, hi


class WrittenPages:
    """The page ranges the blob holds already (Get Page Ranges), to find what is still missing."""

    def __init__(self, spans: Iterable[Span]) -> None:
        self.spans = sorted(spans)
        self.starts = [a for a, _ in self.spans]

    def gaps(self, start: int, end: int) -> list[Span]:
        """The parts of [start, end) no written range covers."""
        out, position = [], start
        first = max(bisect_right(self.starts, start) - 1, 0)
        for a, b in self.spans[first:]:
            if a >= end:
                break
            if b <= position:
                continue
            if a > position:
                out.append((position, a))
            position = max(position, b)
            if position >= end:
                break
        if position < end:
            out.append((position, end))
        return out

    def total(self) -> int:
        return sum(b - a for a, b in self.spans)


# -- the blob behind the SAS ------------------------------------------------------------------


class SasPageBlob:
    """Put Page and Get Page Ranges on a SAS URL, through the CLI's HTTP client (its connection
    pool and TLS trust) without its bearer token: the SAS is the credential."""

    def __init__(self, http: httpx.Client, url: str, sleep: Callable[[float], None] = time.sleep) -> None:
        self.http, self.url, self.sleep = http, url, sleep

    def put_page(self, offset: int, data: bytes) -> None:
        headers = {"x-ms-page-write": "update", "x-ms-range": f"bytes={offset}-{offset + len(data) - 1}",
                   "x-ms-version": BLOB_VERSION, "Content-Type": "application/octet-stream"}
        self._send("PUT", {"comp": "page"}, headers, data)

    def page_ranges(self) -> list[Span]:
        """[start, end) of every page holding data, following NextMarker."""
        spans: list[Span] = []
        marker = None
        while True:
            params = {"comp": "pagelist", **({"marker": marker} if marker else {})}
            response = self._send("GET", params, {"x-ms-version": BLOB_VERSION}, None)
            try:
                root = ElementTree.fromstring(response.content)
            except ElementTree.ParseError as error:
                raise ArmError("InvalidResponse", f"Get Page Ranges answered with unreadable XML: {error}") from None
            for page_range in root.iter("PageRange"):
                spans.append((int(page_range.findtext("Start")), int(page_range.findtext("End")) + 1))
            marker = (root.findtext("NextMarker") or "").strip()
            if not marker:
                return spans

    def _send(self, method: str, params: dict, headers: dict, content: Optional[bytes]) -> httpx.Response:
        for pause in (*RETRIES, None):
            try:
                response = self.http.request(method, httpx.URL(self.url).copy_merge_params(params),
                                             headers=headers, content=content, auth=None, timeout=WRITE_TIMEOUT)
            except httpx.TransportError as error:
                if pause is None:
                    raise ArmError("ConnectionError", f"the blob endpoint did not answer ({error}).") from None
            else:
                if response.is_success:
                    return response
                if response.status_code not in TRANSIENT or pause is None:
                    raise blob_error(response)
            self.sleep(pause)
        raise AssertionError("unreachable")


def blob_error(response: httpx.Response) -> ArmError:
    """Storage's XML error (`<Error><Code/><Message/>`) as an ArmError."""
    code = response.headers.get("x-ms-error-code") or response.reason_phrase.replace(" ", "") or "BlobError"
    message = ""
    try:
        root = ElementTree.fromstring(response.content)
        code = root.findtext("Code") or code
        message = (root.findtext("Message") or "").split("\n", 1)[0]
    except ElementTree.ParseError:
        message = response.text.strip()[:300]
    return ArmError(code, f"the blob endpoint answered {response.status_code}: {message}".rstrip(": "),
                    status=response.status_code)


# -- the upload -------------------------------------------------------------------------------


class PageUpload:
    """Sends an opened image's missing pieces, then its footer, to a Write SAS blob.
    `advance(n)` is called (from the calling thread only) as bytes are sent or found not to need sending."""

    def __init__(self, blob: SasPageBlob, image, footer: bytes, advance: Callable[..., None]) -> None:
        self.blob, self.image, self.footer, self.advance = blob, image, footer, advance
        self._stop = threading.Event()

    def run(self, written: Optional[WrittenPages] = None) -> None:
        """Send what `written` (default: the blob's page ranges now) does not hold yet."""
        if written is None:
            written = WrittenPages(self.blob.page_ranges())
        size = self.image.virtual_size
        if getattr(self.image, "format", "") == "qcow2" and size:
            self.image.read(0, min(PAGE, size))  # its raw copy is made once, here, before the threads read
        position = 0
        in_flight: set[Future] = set()
        pool = ThreadPoolExecutor(WRITERS, thread_name_prefix="galley-upload")
        try:
            for start, end in data_pieces(self.image.extents(), size):
                self.advance(start - position)  # a hole: nothing to send
                position = end
                if not written.gaps(start, end):
                    self.advance(end - start)
                    continue
                while len(in_flight) >= 2 * WRITERS:
                    in_flight = self._collect(in_flight)
                in_flight.add(pool.submit(self._send_piece, start, end, written))
            while in_flight:
                in_flight = self._collect(in_flight)
        finally:
            self._stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
        self.advance(size - position)
        if written.gaps(size, size + len(self.footer)):
            self.blob.put_page(size, self.footer)
        self.advance(len(self.footer))

    def _collect(self, in_flight: set[Future]) -> set[Future]:
        done, pending = wait(in_flight, return_when=FIRST_COMPLETED)
        for future in done:
            self.advance(future.result())  # raises the first failed write's error
        return pending

    def _send_piece(self, start: int, end: int, written: WrittenPages) -> int:
        """Send [start, end) unless its bytes outside the written pages are all zeros; its length."""
        if self._stop.is_set():
            return 0
        try:
            data = self.image.read(start, end - start)
        except (OSError, ValueError) as error:  # the file changed or shrank under us
            raise ArmError("FileError", f"{self.image.path}: cannot read {end - start} bytes at {start}: "
                           f"{getattr(error, 'strerror', None) or error}") from None
        view = memoryview(data)
        if any(not is_zero(view[a - start:b - start]) for a, b in written.gaps(start, end)):
            self.blob.put_page(start, data)
        return end - start


# -- the command's path -------------------------------------------------------------------------


def takes_sas_path(existing: Optional[dict], size: int) -> bool:
    """Whether an image whose blob is `size` bytes goes Azure's way: into a new disk (20 MiB and
    more), or into one that waits for an upload of exactly this size (a re-run resumes it)."""
    if existing is None:
        return fits_sas_upload(size)
    props = existing.get("properties") or {}
    return (props.get("diskState") in UPLOAD_STATES
            and (props.get("creationData") or {}).get("uploadSizeBytes") == size)


def upload_through_sas(session, kind, resource_group: str, name: str, path: Path, image,
                       existing: Optional[dict], create_body: Callable[[int], dict]) -> dict:
    """Create the disk or snapshot (unless `existing`), grant Write, send what is missing, revoke;
    the resource as it is then."""
    from galley.cli.disk_access import grant_access, revoke_access
    from galley.cli.transfer import human_bytes, progress_bar

    arm_path = kind.path(session.subscription, resource_group, name)
    word = "snapshot" if "/snapshots/" in arm_path.lower() else "disk"
    size = blob_size(image)
    if existing is None:
        session.client.put(arm_path, kind.api, create_body(size))
    sas = grant_access(session, kind, resource_group, name, "Write", SAS_SECONDS).get("accessSAS")
    if not sas:
        raise ArmError("InvalidResponse", f"beginGetAccess of {word} '{name}' answered without an accessSAS.")
    blob = SasPageBlob(session.client.http, sas)
    written = WrittenPages(blob.page_ranges())
    if written.total():
        session.warn(f"resuming the upload into {word} '{name}': {human_bytes(written.total())} written by an "
                     "earlier run are kept as they are (not read back); only the missing pages are sent.")
    hint = (f"The pages sent so far are kept: run the same command again within {SAS_SECONDS // 3600} hours "
            f"to send only the rest, or delete the {word} to start over.")
    footer = vhd_footer(path, image)
    with progress_bar(f"upload {name}", size, quiet=session.only_show_errors) as advance:
        try:
            PageUpload(blob, image, footer, advance).run(written)
        except ArmError as error:
            error.message = f"{error.message.rstrip()} {hint}"
            raise
        except KeyboardInterrupt:
            session.warn(hint)
            raise
        advance(0, description="finishing")
        revoke_access(session, kind, resource_group, name)
    return session.client.get(arm_path, kind.api)
