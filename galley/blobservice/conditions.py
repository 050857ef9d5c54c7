"""Conditional headers on a storage account's blob operations: If-Match, If-None-Match,
If-Modified-Since and If-Unmodified-Since, evaluated as Azure Storage does before the operation runs.

A write whose condition fails changes nothing: `If-None-Match: *` on a blob that exists is 409
BlobAlreadyExists (how `upload_blob(overwrite=False)`, the SDK's default, and `az storage blob
upload` without --overwrite keep an existing blob), any other failed condition 412 ConditionNotMet.
A read (Get Blob, Get Blob Properties) evaluates If-Match && If-Unmodified-Since && (If-None-Match
|| If-Modified-Since): the first two failing are 412, the last 304 Not Modified.

Disk access sessions (`md-…` accounts) take no part: their one blob exists by construction, and a
Put Blob there starts the upload over (what `az storage blob upload --blob-url SAS --type page`
sends). The check and the write are not one atomic step: two creators racing on one new name may
both pass.
"""

from __future__ import annotations

from datetime import datetime
from email.utils import parsedate_to_datetime

from starlette.responses import Response

from .accounts import (
    COPY_BLOB,
    DELETE_BLOB,
    GET_BLOB,
    GET_BLOB_PROPERTIES,
    PUT_BLOB,
    PUT_BLOCK_LIST,
    PUT_PAGE,
    BlobAccount,
    BlobRequest,
)
from .errors import BlobError, standard_headers

WRITES = frozenset({PUT_BLOB, PUT_BLOCK_LIST, PUT_PAGE, DELETE_BLOB, COPY_BLOB})
READS = frozenset({GET_BLOB, GET_BLOB_PROPERTIES})
CREATES = frozenset({PUT_BLOB, PUT_BLOCK_LIST, COPY_BLOB})  # may make the blob: If-Match needs it to exist
HEADERS = ("if-match", "if-none-match", "if-modified-since", "if-unmodified-since")


def check(account: BlobAccount, request: BlobRequest) -> Response | None:
    """None when the operation may go on; a 304 response to send instead; or raises 409/412."""
    if request.operation not in WRITES | READS or not any(name in request.headers for name in HEADERS):
        return None
    blob = account.page_blob(request.container, request.blob)
    if blob is None:
        if request.operation in CREATES and "if-match" in request.headers:
            raise condition_not_met()
        return None  # nothing to compare with: the operation itself answers (404, or it creates)
    etag, modified = blob.etag, blob.last_modified.replace(microsecond=0)
    if_match, if_none_match = _etags(request, "if-match"), _etags(request, "if-none-match")
    since, unmodified_since = _date(request, "if-modified-since"), _date(request, "if-unmodified-since")
    if if_match is not None and not _matches(if_match, etag):
        raise condition_not_met()
    if unmodified_since is not None and modified > unmodified_since:
        raise condition_not_met()
    unchanged = ((if_none_match is not None and _matches(if_none_match, etag))
                 or (since is not None and modified <= since))
    if request.operation in READS:
        return _not_modified(request, etag) if unchanged else None
    if if_none_match == ["*"]:
        raise BlobError(409, "BlobAlreadyExists", "The specified blob already exists.")
    if unchanged:
        raise condition_not_met()
    return None


def condition_not_met() -> BlobError:
    return BlobError(412, "ConditionNotMet", "The condition specified using HTTP conditional header(s) is not met.")


def _etags(request: BlobRequest, name: str) -> list[str] | None:
    value = request.headers.get(name)
    if value is None:
        return None
    return [_bare(tag) for tag in value.split(",") if tag.strip()]


def _bare(tag: str) -> str:
    tag = tag.strip()
    tag = tag.removeprefix("W/")
    return tag.strip('"')


def _matches(wanted: list[str], etag: str) -> bool:
    return "*" in wanted or _bare(etag) in wanted


def _date(request: BlobRequest, name: str) -> datetime | None:
    value = request.headers.get(name)
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        raise BlobError(400, "InvalidHeaderValue", "The value for one of the HTTP headers is not in the "
                        "correct format.", HeaderName=name, HeaderValue=value) from None
    return parsed if parsed.tzinfo is not None else None


def _not_modified(request: BlobRequest, etag: str) -> Response:
    headers = standard_headers(request.version) | {"ETag": etag, "x-ms-error-code": "ConditionNotMet"}
    return Response(status_code=304, headers=headers)
