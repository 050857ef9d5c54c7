"""Block blobs of storage accounts: Put Blob (BlockBlob), Put Block, Put Block List, and Delete
Blob for every blob of an account, registered with operations.py's dispatcher.

Bodies are streamed to a file in the server's tmp folder (never held in memory whole); a
Content-MD5 that does not match the body is 400 Md5Mismatch and nothing is kept.
"""

from __future__ import annotations

import base64
import hashlib
import tempfile
from email.utils import format_datetime
from pathlib import Path
from xml.etree import ElementTree

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from .account_blobs import AccountBlobs, block_id_key
from .accounts import (
    ABORT_COPY_BLOB,
    COPY_BLOB,
    DELETE_BLOB,
    PUT_BLOB,
    PUT_BLOCK,
    PUT_BLOCK_LIST,
    BlobAccount,
    BlobRequest,
)
from .errors import BlobError, standard_headers, unsupported
from .operations import read_body, refuse_declared_over, register

MAX_BLOCK_BYTES = 4000 * 1024 * 1024
MAX_PUT_BLOB_BYTES = 5000 * 1024 * 1024
MAX_BLOCK_LIST_BYTES = 8 * 1024 * 1024
WRITE_BYTES = 4 * 1024 * 1024


def account_blobs(account: BlobAccount, request: BlobRequest) -> AccountBlobs:
    """The storage account's blobs `request` works on; a disk access session (which has none)
    refuses the operation, saying what to do instead where there is something."""
    blobs = getattr(account, "blobs", None)
    if blobs is None:
        if request.operation in (PUT_BLOB, PUT_BLOCK, PUT_BLOCK_LIST):
            raise BlobError(409, "InvalidBlobType", "The blob type is invalid for this operation: a disk's "
                            "blob is a page blob. Write it with Put Page (az storage blob upload --type page, "
                            "azure-storage-blob upload_blob(blob_type=\"PageBlob\")).")
        if request.operation in (COPY_BLOB, ABORT_COPY_BLOB):
            raise BlobError(400, "UnsupportedOperation", f"{request.operation} cannot write into a disk or "
                            "snapshot access SAS: copy into a storage account's container, then create the disk "
                            "from the copied blob's URI (createOption Import), or upload the disk with Put Page.")
        raise unsupported(request.operation)
    return blobs


def tmp_dir(request: BlobRequest) -> Path:
    path = request.http.app.state.settings.home / "tmp"
    path.mkdir(parents=True, exist_ok=True)
    return path


async def spool_body(request: BlobRequest, limit: int) -> tuple[Path, str]:
    """The body in a temporary file, and its MD5 (base64), checked against Content-MD5 if sent."""
    refuse_declared_over(request, limit)
    handle = tempfile.NamedTemporaryFile(dir=tmp_dir(request), prefix="blob-", delete=False)
    path, digest, size, pending = Path(handle.name), hashlib.md5(), 0, []
    try:
        with handle:
            async for piece in request.http.stream():
                size += len(piece)
                if size > limit:
                    raise BlobError(413, "RequestBodyTooLarge", f"The request body is larger than {limit} bytes.")
                digest.update(piece)
                pending.append(piece)
                if sum(len(p) for p in pending) >= WRITE_BYTES:
                    await run_in_threadpool(handle.write, b"".join(pending))
                    pending = []
            if pending:
                await run_in_threadpool(handle.write, b"".join(pending))
        md5 = base64.b64encode(digest.digest()).decode()
        sent = request.headers.get("content-md5")
        if sent and sent != md5:
            raise BlobError(400, "Md5Mismatch", "The MD5 value specified in the request did not match with the "
                            "MD5 value calculated by the server.", UserSpecifiedMd5=sent, ServerCalculatedMd5=md5)
        return path, md5
    except BaseException:
        path.unlink(missing_ok=True)
        raise


def _written(request: BlobRequest, etag: str, last_modified, md5: str | None = None) -> Response:
    headers = {**standard_headers(request.version), "ETag": etag,
               "Last-Modified": format_datetime(last_modified, usegmt=True),
               "x-ms-request-server-encrypted": "true"}
    if md5:
        headers["Content-MD5"] = md5
    return Response(status_code=201, headers=headers)


async def put_block_blob(account: BlobAccount, request: BlobRequest) -> Response:
    blobs = account_blobs(account, request)
    await run_in_threadpool(blobs.require_container, request.container)
    path, md5 = await spool_body(request, MAX_PUT_BLOB_BYTES)
    try:
        blob = await run_in_threadpool(blobs.put_block_blob, request.container, request.blob, path,
                                       request.headers.get("x-ms-blob-content-type"),
                                       request.headers.get("x-ms-blob-content-md5") or md5)
    finally:
        path.unlink(missing_ok=True)
    return _written(request, blob.etag, blob.last_modified, md5)


async def put_block(account: BlobAccount, request: BlobRequest) -> Response:
    blobs = account_blobs(account, request)
    block_id = block_id_key(request.query.get("blockid", ""))
    await run_in_threadpool(blobs.require_container, request.container)
    path, md5 = await spool_body(request, MAX_BLOCK_BYTES)
    try:
        await run_in_threadpool(blobs.stage_block, request.container, request.blob, block_id, path)
    finally:
        path.unlink(missing_ok=True)
    return Response(status_code=201, headers={**standard_headers(request.version), "Content-MD5": md5,
                                              "x-ms-request-server-encrypted": "true"})


def parse_block_list(body: bytes) -> list[tuple[str, str]]:
    """[(Committed|Uncommitted|Latest, block id)] in the order the client listed them."""
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError as error:
        raise BlobError(400, "InvalidXmlDocument", f"XML specified is not syntactically valid: {error}.") from None
    if root.tag != "BlockList":
        raise BlobError(400, "InvalidXmlDocument", "The block list must be a <BlockList> document.")
    wanted = []
    for element in root:
        if element.tag not in ("Committed", "Uncommitted", "Latest"):
            raise BlobError(400, "InvalidXmlNodeValue", f"<{element.tag}> is not a block list entry.")
        wanted.append((element.tag, block_id_key((element.text or "").strip())))
    return wanted


async def put_block_list(account: BlobAccount, request: BlobRequest) -> Response:
    blobs = account_blobs(account, request)
    wanted = parse_block_list(await read_body(request, MAX_BLOCK_LIST_BYTES))
    blob = await run_in_threadpool(blobs.commit_blocks, request.container, request.blob, wanted,
                                   request.headers.get("x-ms-blob-content-type"), tmp_dir(request))
    return _written(request, blob.etag, blob.last_modified)


async def delete_blob(account: BlobAccount, request: BlobRequest) -> Response:
    blobs = account_blobs(account, request)
    await run_in_threadpool(blobs.delete_blob, request.container, request.blob)
    return Response(status_code=202, headers={**standard_headers(request.version), "x-ms-delete-type-permanent": "true"})


register(f"{PUT_BLOB}:BlockBlob", put_block_blob)
register(PUT_BLOCK, put_block)
register(PUT_BLOCK_LIST, put_block_list)
register(DELETE_BLOB, delete_blob)
