"""Copy Blob, Copy Blob From URL (`x-ms-requires-sync: true`), Put Blob From URL (with
`x-ms-blob-type: BlockBlob`) and Abort Copy Blob into a storage account's blob. Copy Blob is the
Azure way to export a managed disk: grant Read access, copy its SAS URL into a container, then
make an image, version or disk from the copy's URI.

The source is a blob on this Galley: a disk or snapshot access SAS URL, or a blob of a storage
account here. It must name this server's own Blob endpoint (the request's scheme, host and port,
or one of Galley's configured origins); Galley fetches nothing from other hosts. The source is
authorized as a Get Blob of it would be, by the SAS in its URL; a source without SAS in the
destination's own account is read under the destination request's credentials (Shared Key, or
an account SAS that also allows reading).

A copy is complete before the answer, so its status is always `success` and Abort Copy Blob
always finds no pending copy. A page blob source becomes a page blob of the same size holding
its written ranges only (a 30 GiB disk holding 1 GiB of data copies 1 GiB), written through the
account page blob's page store in whole 1 MiB chunks, which the chunk store shares rather than
stores twice; the copy is published as a source (images, versions, disks) before the answer. A
block blob source becomes a block blob with the same bytes.

Not done: metadata (x-ms-meta-*, not kept by Galley), source/destination conditions
(x-ms-source-if-*, If-*), x-ms-copy-source-authorization (bearer tokens for the source), tiers,
and copies from sources another node holds (a disk session of another node: 409).
"""

from __future__ import annotations

import tempfile
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import format_datetime
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from ..content.chunks import CHUNK_SIZE
from . import copy_state, ranges
from .account_blobs import BLOCK_BLOB, AccountBlobs, BlobState
from .accounts import ABORT_COPY_BLOB, COPY_BLOB, GET_BLOB, BlobAccount, BlobRequest
from .block_blobs import MAX_PUT_BLOB_BYTES, account_blobs, tmp_dir
from .dispatch import DISK_ACCOUNT, resolve_account
from .errors import BlobError, invalid_header, missing_header, standard_headers
from .operations import register
from .session_holders import HeldElsewhere

COPY_PIECE = 4 * CHUNK_SIZE  # one read and one page write; pieces end on chunk boundaries


@dataclass
class Source:
    url: str
    account: BlobAccount
    container: str
    name: str
    blob: object  # PageBlob protocol, or a storage account's block blob (blob_type "BlockBlob")

    def same_as(self, account: str, container: str, blob: str) -> bool:
        return (self.account.name, self.container, self.name.lower()) == (account, container, blob.lower())


def cannot_verify(status: int, message: str) -> BlobError:
    return BlobError(status, "CannotVerifyCopySource", message)


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or (443 if scheme == "https" else 80)


def _own_origins(request: BlobRequest) -> set[tuple[str, str, int]]:
    own = {_origin(str(request.http.base_url))}
    settings = getattr(request.http.app.state, "settings", None)
    own.update(_origin(url) for url in getattr(settings, "origins", ()))
    return own


def _parse_source(request: BlobRequest) -> tuple[str, str, str, str, dict[str, str]]:
    """(url, account, container, blob, query) of x-ms-copy-source, which must name a blob here."""
    url = request.headers.get("x-ms-copy-source", "")
    if not url:
        raise missing_header("x-ms-copy-source")
    try:
        origin = _origin(url)
    except ValueError:
        origin = None
    if origin is None or origin[0] not in ("http", "https") or not origin[1]:
        raise invalid_header("x-ms-copy-source", url, "x-ms-copy-source must be the absolute http(s) URL of a blob.")
    if origin not in _own_origins(request):
        raise cannot_verify(400, f"Galley copies only from blobs on its own Blob endpoint "
                            f"({str(request.http.base_url).rstrip('/')}); '{origin[0]}://{origin[1]}:{origin[2]}' "
                            "is another host. Download the blob and upload it here instead.")
    parts = urlsplit(url)
    segments = [unquote(s) for s in parts.path.lstrip("/").split("/", 2)]
    if len(segments) < 3 or not all(segments):
        raise invalid_header("x-ms-copy-source", url, "x-ms-copy-source must name a blob: "
                             "https://HOST:PORT/{account}/{container}/{blob}.")
    account, container, blob = segments
    return url, account, container, blob, dict(parse_qsl(parts.query, keep_blank_values=True))


def _source_request(request: BlobRequest, account: str, container: str, blob: str,
                    query: dict[str, str]) -> BlobRequest:
    """A Get Blob of the source as its owner's `authorize` sees it: no headers, `query` as the SAS."""
    path = f"/{account}/{container}/{blob}"
    scope = {**request.http.scope, "method": "GET", "path": path, "raw_path": path.encode(),
             "query_string": urlencode(query).encode(), "headers": []}
    return BlobRequest(http=Request(scope), account=account, container=container, blob=blob,
                       operation=GET_BLOB, query=query)


def resolve_source(request: BlobRequest) -> Source:
    """The source blob, authorized for reading, or CannotVerifyCopySource (nothing is changed)."""
    url, name, container, blob, query = _parse_source(request)
    try:
        account = resolve_account(request.http.app, name)
    except HeldElsewhere as elsewhere:
        raise cannot_verify(409, f"The source disk access session is held by node '{elsewhere.holder.name}'; "
                            "send the copy to that node's address.") from None
    if account is None:
        if DISK_ACCOUNT.match(name):
            raise cannot_verify(403, "The source disk access SAS is no longer valid (revoked or expired).")
        raise cannot_verify(404, f"The source storage account '{name}' does not exist on this Galley.")
    same_account = name == request.account and "sig" not in query
    try:
        if not (same_account and request.headers.get("authorization")):
            # A same-account source without SAS is read with the destination's own SAS; a Shared
            # Key of this account, verified for the destination already, reads all of it.
            account.authorize(_source_request(request, name, container, blob, request.query if same_account
                                              else query))
        found = account.page_blob(container, blob)
    except BlobError as error:
        if error.status >= 500:
            raise
        detail = error.details.get("AuthenticationErrorDetail")
        raise cannot_verify(403 if error.status in (401, 403) else 404, f"The copy source could not be read "
                            f"({error.code}): {error.message}" + (f" {detail}" if detail else "")) from None
    if found is None:
        raise cannot_verify(404, "The copy source blob does not exist.")
    return Source(url, account, container, blob, found)


def _copy_pages(blobs: AccountBlobs, container: str, name: str, source: Source) -> BlobState:
    data = source.blob
    if data.size % ranges.PAGE:
        raise cannot_verify(409, f"The copy source holds {data.size} bytes, not whole 512-byte pages.")
    target = blobs.create_page_blob(container, name, data.size, getattr(data, "content_type", None))
    try:
        for start, end in data.page_ranges(0, data.size):
            position = start
            while position < end:
                stop = min(end, (position // COPY_PIECE + 1) * COPY_PIECE)
                target.write_pages(position, data.read(position, stop - position))
                position = stop
    except BaseException:  # e.g. the source's session revoked mid-copy: no half copy is left
        blobs.delete_blob(container, name, missing_ok=True)
        raise
    return target.state


def _copy_blocks(blobs: AccountBlobs, request: BlobRequest, source: Source) -> BlobState:
    data = source.blob
    with tempfile.NamedTemporaryFile(dir=tmp_dir(request), prefix="copy-", delete=False) as handle:
        path = Path(handle.name)
    try:
        with open(path, "wb") as spool:
            spool.writelines(data.read(position, min(COPY_PIECE, data.size - position)) for position in range(0, data.size, COPY_PIECE))
        blobs.put_block_blob(request.container, request.blob, path,
                             getattr(data, "content_type", None), getattr(data, "content_md5", None))
    finally:
        path.unlink(missing_ok=True)
    state = blobs.state(request.container, request.blob)
    assert state is not None
    return state


def copy(blobs: AccountBlobs, request: BlobRequest) -> BlobState:
    """Check everything, then copy the whole source; the destination's state records the copy."""
    blobs.require_container(request.container)
    source = resolve_source(request)
    if source.same_as(request.account, request.container, request.blob):
        state = blobs.state(request.container, request.blob)  # onto itself: the bytes are already there
        if state is None:
            raise cannot_verify(409, "This blob cannot be copied onto itself; copy it to another name.")
        if state.blob_type != BLOCK_BLOB:
            state = blobs.page_blob(request.container, request.blob).state
    elif getattr(source.blob, "blob_type", None) == BLOCK_BLOB:
        state = _copy_blocks(blobs, request, source)
    else:
        state = _copy_pages(blobs, request.container, request.blob, source)
    state.touched()
    state.copy = copy_state.record(str(uuid.uuid4()), source.url, state.size, datetime.now(UTC))
    state.save()
    if state.blob_type != BLOCK_BLOB:
        blobs.page_blob(request.container, request.blob).publish()  # a source for images at once
    return state


def put_from_url(blobs: AccountBlobs, request: BlobRequest) -> BlobState:
    """Put Blob From URL: the source's bytes (whatever its type) become a block blob; no copy record."""
    blobs.require_container(request.container)
    source = resolve_source(request)
    if source.blob.size > MAX_PUT_BLOB_BYTES:
        raise cannot_verify(409, f"Put Blob From URL takes sources of at most {MAX_PUT_BLOB_BYTES} bytes; "
                            "use Copy Blob (without x-ms-blob-type) for larger ones.")
    return _copy_blocks(blobs, request, source)


async def copy_blob(account: BlobAccount, request: BlobRequest) -> Response:
    blobs = account_blobs(account, request)
    if request.headers.get("x-ms-copy-source-authorization"):
        raise cannot_verify(400, "Galley authorizes copy sources by the SAS in x-ms-copy-source (or, in the "
                            "same account, by the request's own Shared Key), not x-ms-copy-source-authorization.")
    kind = request.headers.get("x-ms-blob-type")
    if kind is not None:  # Put Blob From URL
        if kind != BLOCK_BLOB:
            raise invalid_header("x-ms-blob-type", kind, "Put Blob From URL makes block blobs only.")
        state = await run_in_threadpool(put_from_url, blobs, request)
        return Response(status_code=201, headers={
            **standard_headers(request.version), "ETag": state.etag,
            "Last-Modified": format_datetime(state.last_modified, usegmt=True),
            "x-ms-request-server-encrypted": "true"})
    state = await run_in_threadpool(copy, blobs, request)
    return Response(status_code=202, headers={
        **standard_headers(request.version), "ETag": state.etag,
        "Last-Modified": format_datetime(state.last_modified, usegmt=True),
        "x-ms-copy-id": state.copy["id"], "x-ms-copy-status": state.copy["status"]})


async def abort_copy_blob(account: BlobAccount, request: BlobRequest) -> Response:
    blobs = account_blobs(account, request)
    if not request.query.get("copyid"):
        raise BlobError(400, "MissingRequiredQueryParameter", "Abort Copy Blob needs the copy's id (copyid).",
                        QueryParameterName="copyid")
    if await run_in_threadpool(blobs.get, request.container, request.blob) is None:
        raise BlobError(404, "BlobNotFound", "The specified blob does not exist.")
    raise BlobError(409, "NoPendingCopyOperation", "There is currently no pending copy operation: Galley's "
                    "copies are complete before Copy Blob answers.")


register(COPY_BLOB, copy_blob)
register(ABORT_COPY_BLOB, abort_copy_blob)
