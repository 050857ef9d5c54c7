"""Disk content over HTTP (Galley's extension to ARM): upload into a disk or snapshot, and
download any disk-holding resource as raw, VHD (fixed or dynamic) or qcow2, with Range support."""

from __future__ import annotations

import asyncio
import errno
import os
import tempfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import anyio

from fastapi import APIRouter, Query, Request
from fastapi.responses import FileResponse, Response, StreamingResponse
from starlette.background import BackgroundTask
from starlette.concurrency import run_in_threadpool

from ...content.disk_image import DiskFormatError
from ...content.engine import ContentDropped, ContentUnavailable
from ...content.formats import check_disk_size, open_disk, write_image
from ...content.object_store import StoreFull
from ...content.streaming import HEAD_BYTES, StreamingImage, needs_random_access
from ...content.vhd import FOOTER_SIZE, VhdFooter
from ...domain import ids
from ...domain.errors import ArmError, Conflict, InvalidParameter, NotFound
from ...domain.limits import BYTE_RANGE, MAX_NUMBER_DIGITS
from ... import uploads
from ..wire import json_response, render
from ._signature import with_parameters
from .resources import SPECS, ResourceSpec, service_of

router = APIRouter(tags=["DiskContent"])
UPLOAD_FORMATS = ("vhd", "vhd-fixed", "vhd-dynamic", "raw", "qcow2")
DOWNLOAD_FORMATS = ("raw", "vhd", "vhd-fixed", "vhd-dynamic", "qcow2")
VHD_FIXED_TYPE = 2


class InsufficientStorage(ArmError):
    code = "InsufficientStorage"
    status = 507


def _tmp_dir(request: Request) -> Path:
    path = request.app.state.settings.home / "tmp"
    path.mkdir(parents=True, exist_ok=True)
    return path


RENEW_EVERY_BYTES = 64 * 1024 * 1024
SPOOL_WRITE_BYTES = 4 * 1024 * 1024
STREAM_FEED_BYTES = 2 * 1024 * 1024
# Threads that hand a streamed upload's pieces to its writer (StreamingImage.feed_all). Not
# AnyIO's worker threads: the event loop wakes one of those through a Python-level
# queue.Queue (lock, Condition), and py-spy --gil showed the loop holding the GIL in that
# Condition.notify for about a third of its Python time during an upload; an executor's
# SimpleQueue hands over in C. A feed may wait for the engine's in-flight budget, which other
# threads release, so a busy pool delays uploads but never blocks them for good.
_FEEDERS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="galley-upload-feed")
SEND_BATCH_BYTES = 4 * 1024 * 1024


async def _spool(request: Request, directory: Path, renew=None, head: bytes = b"", rest=None) -> Path:
    """The request body in a temporary file: memory use stays bounded whatever the size.
    `renew` is called every so often while data keeps arriving (to keep an upload's lease).
    `head` and `rest`: the body when its first bytes were already read from request.stream()."""
    handle = tempfile.NamedTemporaryFile(dir=directory, prefix="upload-", delete=False)
    received = 0
    pending: list[bytes] = [head] if head else []
    pending_bytes = len(head)
    try:
        with handle:
            async for piece in (rest if rest is not None else request.stream()):
                # Hand the file system whole megabytes, not each small piece the socket yields.
                pending.append(piece)
                pending_bytes += len(piece)
                if pending_bytes >= SPOOL_WRITE_BYTES:
                    await run_in_threadpool(handle.write, b"".join(pending))
                    received += pending_bytes
                    pending, pending_bytes = [], 0
                if renew is not None and received >= RENEW_EVERY_BYTES:
                    received = 0
                    await run_in_threadpool(renew)
            if pending:
                await run_in_threadpool(handle.write, b"".join(pending))
    except OSError as error:
        os.unlink(handle.name)
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            raise InsufficientStorage("The server ran out of space while receiving the upload; nothing "
                                      "was changed.") from None
        raise
    except BaseException:
        os.unlink(handle.name)
        raise
    return Path(handle.name)


def check_upload_format(fmt: str | None) -> None:
    if fmt is not None and fmt not in UPLOAD_FORMATS:
        raise InvalidParameter(f"Unknown upload format '{fmt}'; use one of {', '.join(UPLOAD_FORMATS)}.",
                               target="format")


def _register_upload(spec: ResourceSpec) -> None:
    async def upload(request: Request, subscriptionId: str, resourceGroupName: str, name: str,
                     format: str | None = Query(None, description="vhd, raw or qcow2; detected when omitted")):
        spec.api.validate(request.query_params.get("api-version"))
        check_upload_format(format)
        resource_id = spec.ref({"subscriptionId": subscriptionId, "resourceGroupName": resourceGroupName,
                                spec.name_params[0]: name}).id
        service = service_of(request)
        owner = uploads.this_process()
        await run_in_threadpool(uploads.settle, resource_id)  # an earlier upload's end an outage held up
        resource = await run_in_threadpool(service.begin_upload, resource_id, spec.type, owner,
                                           uploads.LEASE_SECONDS, uploads.owner_alive)
        virtual_size = None
        try:
            virtual_size = await receive_image(
                request, resource, format, _check_declared_size,
                precheck=lambda: _check_declared_length(request, resource),
                renew=lambda: service.renew_upload(resource_id, owner, uploads.LEASE_SECONDS))
        finally:
            finished = await run_in_threadpool(uploads.end, lambda: service.end_upload(resource_id, virtual_size),
                                               resource_id)
        return json_response(render(finished))

    upload.__name__ = f"upload_{spec.operation_prefix.lower()}"
    router.add_api_route(f"{spec.item_path.replace('{' + spec.name_params[0] + '}', '{name}')}/upload",
                         upload, methods=["PUT"], operation_id=f"{spec.operation_prefix}_Upload")


async def receive_image(request: Request, resource, fmt: str | None, check=None, renew=None,
                        whole_sectors: bool = True, precheck=None) -> int:
    """Store the request body, a disk image, as `resource`'s OS disk; its virtual size.

    Raw disks and fixed VHDs are stored as they arrive (content/streaming.py); dynamic VHDs and
    qcow2 need random access and are spooled to a file first. `check(resource, virtual_size)` may
    refuse the image before it becomes the disk's content; `renew` is called every so often while
    data keeps arriving. On any failure, a refusal or a client that goes away, the disk keeps its
    previous content. `whole_sectors` False takes any size (a blob that is a file, not a disk).
    `precheck()` may refuse a streamed body by its declared length before any of it is stored (a
    spooled qcow2 or dynamic VHD holds metadata besides its data: its length says nothing of its disk)."""
    rest = request.stream().__aiter__()
    head = b""
    async for piece in rest:
        head += piece
        if len(head) >= HEAD_BYTES:
            break
    with _image_errors():
        random_access = needs_random_access(head, fmt)
    if random_access:
        spooled = await _spool(request, _tmp_dir(request), renew, head, rest)
        try:
            return await run_in_threadpool(_ingest, request, resource, spooled, fmt, check, whole_sectors)
        finally:
            spooled.unlink(missing_ok=True)
    if precheck is not None:
        precheck()
    content = request.app.state.content
    writer = await run_in_threadpool(content.writer, content.locations.home_store(resource.location),
                                     _declared_length(request) or 0)
    feeding = None
    loop = asyncio.get_running_loop()
    try:
        with _image_errors():  # a full store, wherever it shows, is a 507
            image = StreamingImage(writer, fmt, whole_sectors)
            pending, pending_bytes, since_renew = [head], len(head), 0
            async for piece in rest:
                pending.append(piece)
                pending_bytes += len(piece)
                if pending_bytes >= STREAM_FEED_BYTES:
                    # A thread stores these few megabytes while the loop goes on receiving the next
                    # ones: the connection never waits for the store (nor the store for the network).
                    if feeding is not None:
                        await asyncio.shield(feeding)  # a cancelled request still waits for its thread below
                    feeding = loop.run_in_executor(_FEEDERS, image.feed_all, pending)
                    since_renew += pending_bytes
                    pending, pending_bytes = [], 0
                if since_renew >= RENEW_EVERY_BYTES:
                    since_renew = 0
                    await run_in_threadpool(_keep_alive, writer, renew)
            if feeding is not None:
                await asyncio.shield(feeding)
            await run_in_threadpool(image.feed_all, pending)
            _fmt, virtual_size = await run_in_threadpool(image.finish)
            if check is not None:
                check(resource, virtual_size)
            await run_in_threadpool(writer.finish, (resource.key, -1), virtual_size)
            return virtual_size
    except BaseException:
        with anyio.CancelScope(shield=True):
            if feeding is not None:
                await asyncio.wait([feeding])
            await run_in_threadpool(writer.abort)
        raise


def _keep_alive(writer, renew) -> None:
    writer.keep_alive()
    if renew is not None:
        renew()


def _declared_length(request: Request) -> int | None:
    value = request.headers.get("content-length", "")
    return int(value) if value.isdigit() and len(value) <= MAX_NUMBER_DIGITS else None


@contextmanager
def _image_errors():
    """An unusable image or a full store as the ARM errors clients get."""
    try:
        yield
    except DiskFormatError as error:
        raise InvalidParameter(f"The uploaded image is not usable: {error}", target="body",
                               code="InvalidDiskImage") from None
    except ContentDropped:
        raise Conflict("The upload was discarded before it ended: garbage collection took it for abandoned "
                       "(nothing arrived within its grace, or `galley store gc` ran with a shorter grace). "
                       "The disk keeps its previous content; upload the image again.",
                       code="UploadDiscarded") from None
    except (StoreFull, OSError) as error:
        if isinstance(error, StoreFull) or getattr(error, "errno", None) in (errno.ENOSPC, errno.EDQUOT):
            raise InsufficientStorage(f"The region store ran out of space during the upload; the disk "
                                      f"keeps its previous content. ({error})") from None
        raise


def _ingest(request: Request, resource, path: Path, fmt: str | None, check=None,
            whole_sectors: bool = True) -> int:
    """Store the image at `path` as `resource`'s OS disk; `check(resource, virtual_size)` may refuse it first."""
    content = request.app.state.content
    with _image_errors(), open_disk(path, fmt, tmp_dir=_tmp_dir(request)) as image:
        if whole_sectors:
            check_disk_size(image)
        if check is not None:
            check(resource, image.virtual_size)
        content.ingest(image, content.locations.home_store(resource.location), (resource.key, -1))
        return image.virtual_size


def _check_declared_length(request: Request, resource) -> None:
    """A body longer than the disk's uploadSizeBytes is refused before any of it is read."""
    length = _declared_length(request)
    if length is not None and length > FOOTER_SIZE:
        least = length - FOOTER_SIZE  # a VHD's footer is the most an image's bytes can exceed its disk by
        _check_declared_size(resource, least, f"The upload is {length:,} bytes, a disk of at least {least:,} bytes,")


def _check_declared_size(resource, virtual_size: int, held: str | None = None) -> None:
    """A disk created for upload holds at most what it declared (uploadSizeBytes counts the VHD
    footer's 512 bytes); a smaller image is accepted and sets the disk's size."""
    declared = (resource.properties.get("creationData") or {}).get("uploadSizeBytes")
    if declared is not None and virtual_size > declared - 512:
        held = held or f"The uploaded image holds {virtual_size:,} bytes"
        raise InvalidParameter(f"{held} but '{resource.name}' was created "
                               f"with uploadSizeBytes {declared:,} (room for {declared - 512:,} bytes of disk "
                               "plus the 512-byte VHD footer). Create the disk with a larger uploadSizeBytes.",
                               target="body", code="InvalidUploadSize")


def _register_download(spec: ResourceSpec) -> None:
    def download(request: Request, lun: int = Query(-1, description="-1 (default) is the OS disk"),
                 format: str = Query("raw"), region: str | None = Query(None), **params):
        spec.api.validate(request.query_params.get("api-version"))
        if format not in DOWNLOAD_FORMATS:
            raise InvalidParameter(f"Unknown download format '{format}'; use one of "
                                   f"{', '.join(DOWNLOAD_FORMATS)}.", target="format")
        resource = service_of(request).get(spec.ref(params).id, spec.type)
        reader = _reader(request, resource, lun, region)
        if format == "raw":
            return _ranged(request, reader, b"", "application/octet-stream")
        if format in ("vhd", "vhd-fixed"):
            if reader.virtual_size % 512:
                raise InvalidParameter("A VHD holds a whole number of 512-byte sectors; this disk's size "
                                       f"({reader.virtual_size}) is not one. Download it as raw.", target="format")
            footer = VhdFooter.new(VHD_FIXED_TYPE, reader.virtual_size).pack()
            return _ranged(request, reader, footer, "application/octet-stream")
        handle = tempfile.NamedTemporaryFile(dir=_tmp_dir(request), prefix="export-", delete=False)
        handle.close()
        try:
            write_image(reader, format, handle.name, tmp_dir=_tmp_dir(request))
        except ContentUnavailable as error:
            os.unlink(handle.name)
            raise _unavailable(error) from None
        return FileResponse(handle.name, media_type="application/octet-stream",
                            background=BackgroundTask(os.unlink, handle.name))

    extra = {"request": (Request, None), "lun": (int, Query(-1)), "format": (str, Query("raw")),
             "region": (str | None, Query(None))}
    router.add_api_route(f"{spec.item_path}/download", with_parameters(download, spec.path_params, extra),
                         methods=["GET"], operation_id=f"{spec.operation_prefix}_Download")


def _reader(request: Request, resource, lun: int, region: str | None):
    content = request.app.state.content
    found = content.repo.disk_contents(resource.key)
    if lun not in found:
        what = "an OS disk" if lun == -1 else f"a data disk at LUN {lun}"
        raise NotFound(f"'{resource.name}' has no content for {what} (LUNs held: "
                       f"{', '.join(str(k) for k in sorted(found)) or 'none'}).", target="lun")
    stores = content.repo.placements(found[lun])
    if resource.type == ids.IMAGE_VERSION_TYPE and region is not None:
        region = region.replace(" ", "").lower()
        completed = [r["store"] for r in content.repo.replicas_of(resource.key)
                     if r["region"] == region and r["state"] == "Completed"]
        if not completed:
            raise NotFound(f"Version '{resource.name}' has no completed replica in region '{region}'.",
                           target="region")
        stores = completed
    else:
        home = content.locations.home_store(resource.location)
        stores = sorted(stores, key=lambda s: s != home)
    return content.reader(found[lun], stores)


def _unavailable(error: ContentUnavailable) -> ArmError:
    """A chunk of the disk has no readable copy in any store (lost, not an outage)."""
    return ArmError(str(error), code="ContentUnavailable", status=409)


def _next_pieces(pieces, limit: int) -> list:
    """The next pieces of `pieces`, about `limit` bytes of them; [] at the end."""
    batch, size = [], 0
    for piece in pieces:
        batch.append(piece)
        size += len(piece)
        if size >= limit:
            break
    return batch


def _ranged(request: Request, reader, trailer: bytes, media_type: str) -> Response:
    """Stream the virtual disk followed by `trailer`, honouring a single Range request."""
    total = reader.virtual_size + len(trailer)
    start, end = 0, total - 1
    status = 200
    header = request.headers.get("range")
    if header:
        match = BYTE_RANGE.fullmatch(header.strip())
        if not match or (not match.group(1) and not match.group(2)):
            return Response(status_code=416, headers={"Content-Range": f"bytes */{total}"})
        if match.group(1):
            start = int(match.group(1))
            end = min(int(match.group(2)), total - 1) if match.group(2) else total - 1
        else:
            start = max(0, total - int(match.group(2)))
        if start > end or start >= total:
            return Response(status_code=416, headers={"Content-Range": f"bytes */{total}"})
        status = 206

    # The first few megabytes are read before the answer starts (callers are sync routes, on a
    # thread): a store that cannot be read at all is a 503 (or 409) with a body, not a cut-off one.
    pieces = reader.pieces(start, end + 1)
    try:
        first = _next_pieces(pieces, SEND_BATCH_BYTES)
    except ContentUnavailable as error:
        pieces.close()
        raise _unavailable(error) from None
    except BaseException:
        pieces.close()
        raise

    async def body():
        batch = first
        try:
            # One trip to a thread per few megabytes, each chunk then sent as it is (no join).
            while batch:
                for piece in batch:
                    yield piece
                batch = await run_in_threadpool(_next_pieces, pieces, SEND_BATCH_BYTES)
        finally:
            pieces.close()
        if end >= reader.virtual_size:
            yield trailer[max(0, start - reader.virtual_size):end + 1 - reader.virtual_size]

    headers = {"Content-Length": str(end - start + 1), "Accept-Ranges": "bytes"}
    if status == 206:
        headers["Content-Range"] = f"bytes {start}-{end}/{total}"
    return StreamingResponse(body(), status_code=status, headers=headers, media_type=media_type)


for _spec in SPECS:
    if _spec.type in (ids.DISK_TYPE, ids.SNAPSHOT_TYPE):
        _register_upload(_spec)
    if _spec.type in (ids.DISK_TYPE, ids.SNAPSHOT_TYPE, ids.MANAGED_IMAGE_TYPE, ids.IMAGE_VERSION_TYPE):
        _register_download(_spec)
