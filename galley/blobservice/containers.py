"""Containers of storage accounts and their listings: Create Container, Delete Container, Get
Container Properties, List Blobs (prefix, delimiter, marker, maxresults) and List Containers,
in Azure Storage's XML shapes (EnumerationResults)."""

from __future__ import annotations

from email.utils import format_datetime
from xml.sax.saxutils import escape, quoteattr

from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from ..domain.limits import ascii_number
from . import copy_state
from .account_blobs import container_not_found
from .accounts import (
    CREATE_CONTAINER,
    DELETE_CONTAINER,
    GET_CONTAINER_PROPERTIES,
    LIST_BLOBS,
    LIST_CONTAINERS,
    BlobAccount,
    BlobRequest,
)
from .block_blobs import account_blobs
from .errors import BlobError, standard_headers
from .operations import register

DEFAULT_MAX_RESULTS = 5000
_XML = '<?xml version="1.0" encoding="utf-8"?>'


def _http_date(moment) -> str:
    return format_datetime(moment, usegmt=True)


def _max_results(request: BlobRequest) -> int:
    raw = request.query.get("maxresults") or str(DEFAULT_MAX_RESULTS)
    wanted = ascii_number(raw)
    if wanted is None or wanted < 1:
        raise BlobError(400, "OutOfRangeQueryParameterValue", "maxresults must be a whole number of at least 1.",
                        QueryParameterName="maxresults", QueryParameterValue=raw)
    return min(wanted, DEFAULT_MAX_RESULTS)


def _endpoint(request: BlobRequest) -> str:
    return f"{str(request.http.base_url).rstrip('/')}/{request.account}/"


async def create_container(account: BlobAccount, request: BlobRequest) -> Response:
    made = await run_in_threadpool(account_blobs(account, request).create_container, request.container)
    return Response(status_code=201, headers={**standard_headers(request.version), "ETag": made.etag,
                                              "Last-Modified": _http_date(made.last_modified)})


async def delete_container(account: BlobAccount, request: BlobRequest) -> Response:
    await run_in_threadpool(account_blobs(account, request).delete_container, request.container)
    return Response(status_code=202, headers=standard_headers(request.version))


async def container_properties(account: BlobAccount, request: BlobRequest) -> Response:
    found = await run_in_threadpool(account_blobs(account, request).container, request.container)
    if found is None:
        raise container_not_found()
    return Response(status_code=200, headers={
        **standard_headers(request.version), "ETag": found.etag, "Last-Modified": _http_date(found.last_modified),
        "x-ms-lease-status": "unlocked", "x-ms-lease-state": "available",
        "x-ms-has-immutability-policy": "false", "x-ms-has-legal-hold": "false"})


def _blob_xml(blob) -> str:
    created = getattr(getattr(blob, "state", None), "created", blob.last_modified)
    md5 = getattr(blob, "content_md5", None)
    return (f"<Blob><Name>{escape(blob.state.name)}</Name><Properties>"
            f"<Creation-Time>{_http_date(created)}</Creation-Time>"
            f"<Last-Modified>{_http_date(blob.last_modified)}</Last-Modified><Etag>{escape(blob.etag)}</Etag>"
            f"<Content-Length>{blob.size}</Content-Length>"
            f"<Content-Type>{escape(getattr(blob, 'content_type', None) or 'application/octet-stream')}</Content-Type>"
            f"<Content-Encoding /><Content-Language /><Content-CRC64 />"
            f"<Content-MD5>{escape(md5) if md5 else ''}</Content-MD5><Cache-Control /><Content-Disposition />"
            + ("<x-ms-blob-sequence-number>0</x-ms-blob-sequence-number>" if blob.blob_type == "PageBlob" else "")
            + f"<BlobType>{blob.blob_type}</BlobType><AccessTier>Hot</AccessTier><AccessTierInferred>true"
            "</AccessTierInferred><LeaseStatus>unlocked</LeaseStatus><LeaseState>available</LeaseState>"
            + copy_state.listing_xml(blob)
            + "<ServerEncrypted>true</ServerEncrypted></Properties><Metadata /></Blob>")


async def list_blobs(account: BlobAccount, request: BlobRequest) -> Response:
    blobs = account_blobs(account, request)
    if await run_in_threadpool(blobs.container, request.container) is None:
        raise container_not_found()
    prefix, marker = request.query.get("prefix", ""), request.query.get("marker", "")
    delimiter, limit = request.query.get("delimiter", ""), _max_results(request)
    found = await run_in_threadpool(blobs.list_blobs, request.container, prefix)
    entries: list[tuple[str, str]] = []  # (name, xml)
    seen_prefixes: set[str] = set()
    for blob in found:
        name = blob.state.name
        if marker and name < marker:
            continue
        if delimiter and delimiter in name[len(prefix):]:
            folder = name[:len(prefix) + name[len(prefix):].index(delimiter) + len(delimiter)]
            if folder not in seen_prefixes:
                seen_prefixes.add(folder)
                entries.append((folder, f"<BlobPrefix><Name>{escape(folder)}</Name></BlobPrefix>"))
            continue
        entries.append((name, _blob_xml(blob)))
    page, rest = entries[:limit], entries[limit:]
    body = (f"{_XML}<EnumerationResults ServiceEndpoint={quoteattr(_endpoint(request))} "
            f"ContainerName={quoteattr(request.container)}>"
            + (f"<Prefix>{escape(prefix)}</Prefix>" if prefix else "")
            + (f"<Marker>{escape(marker)}</Marker>" if marker else "")
            + (f"<MaxResults>{limit}</MaxResults>" if "maxresults" in request.query else "")
            + (f"<Delimiter>{escape(delimiter)}</Delimiter>" if delimiter else "")
            + "<Blobs>" + "".join(xml for _, xml in page) + "</Blobs>"
            + (f"<NextMarker>{escape(rest[0][0])}</NextMarker>" if rest else "<NextMarker />")
            + "</EnumerationResults>")
    return Response(body, media_type="application/xml", headers=standard_headers(request.version))


async def list_containers(account: BlobAccount, request: BlobRequest) -> Response:
    blobs = account_blobs(account, request)
    prefix, marker, limit = request.query.get("prefix", ""), request.query.get("marker", ""), _max_results(request)
    found = [c for c in await run_in_threadpool(blobs.containers)
             if c.name.startswith(prefix) and (not marker or c.name >= marker)]
    page, rest = found[:limit], found[limit:]
    items = "".join(f"<Container><Name>{escape(c.name)}</Name><Properties><Last-Modified>"
                    f"{_http_date(c.last_modified)}</Last-Modified><Etag>{escape(c.etag)}</Etag>"
                    "<LeaseStatus>unlocked</LeaseStatus><LeaseState>available</LeaseState>"
                    "<HasImmutabilityPolicy>false</HasImmutabilityPolicy><HasLegalHold>false</HasLegalHold>"
                    "</Properties></Container>" for c in page)
    body = (f"{_XML}<EnumerationResults ServiceEndpoint={quoteattr(_endpoint(request))}>"
            + (f"<Prefix>{escape(prefix)}</Prefix>" if prefix else "")
            + (f"<Marker>{escape(marker)}</Marker>" if marker else "")
            + (f"<MaxResults>{limit}</MaxResults>" if "maxresults" in request.query else "")
            + f"<Containers>{items}</Containers>"
            + (f"<NextMarker>{escape(rest[0].name)}</NextMarker>" if rest else "<NextMarker />")
            + "</EnumerationResults>")
    return Response(body, media_type="application/xml", headers=standard_headers(request.version))


for _name, _handler in ((CREATE_CONTAINER, create_container), (DELETE_CONTAINER, delete_container),
                        (GET_CONTAINER_PROPERTIES, container_properties), (LIST_BLOBS, list_blobs),
                        (LIST_CONTAINERS, list_containers)):
    register(_name, _handler)
