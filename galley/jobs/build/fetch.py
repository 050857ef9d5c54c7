"""Downloading what customizers and validators name: a Galley storage blob is read from the
content store (https://{account}.blob.core.windows.net/{container}/{blob}, or the server's own
/blob/{account}/{container}/{blob} address); any other http(s) URI is fetched over the network."""

from __future__ import annotations

import httpx

from ...domain.errors import ArmError
from ..content_work import blob_content_key
from ..context import JobContext

MAX_DOWNLOAD_BYTES = 512 * 1024 * 1024
TIMEOUT_SECONDS = 60.0


def fetcher(ctx: JobContext):
    def fetch(uri: str) -> bytes:
        blob = _galley_blob(ctx, uri)
        return blob if blob is not None else _http_get(uri)
    return fetch


def _galley_blob(ctx: JobContext, uri: str) -> bytes | None:
    try:
        key = blob_content_key(ctx, uri)
    except (ArmError, LookupError):
        return None  # not a blob URI, or not one of our storage accounts: fetch it like any URI
    content_id = ctx.content.repo.disk_contents(key).get(-1)
    if content_id is None:
        raise FileNotFoundError(f"blob {uri} does not exist")
    reader = ctx.content.reader(content_id, ctx.content.repo.placements(content_id))
    try:
        if reader.virtual_size > MAX_DOWNLOAD_BYTES:
            raise ValueError(f"blob {uri} is {reader.virtual_size:,} bytes, more than a customizer "
                             f"can take ({MAX_DOWNLOAD_BYTES:,})")
        return reader.read(0, reader.virtual_size)
    finally:
        reader.close()


def _http_get(uri: str) -> bytes:
    with httpx.stream("GET", uri, follow_redirects=True, timeout=TIMEOUT_SECONDS) as response:
        response.raise_for_status()
        parts, size = [], 0
        for piece in response.iter_bytes():
            size += len(piece)
            if size > MAX_DOWNLOAD_BYTES:
                raise ValueError(f"{uri} is larger than {MAX_DOWNLOAD_BYTES:,} bytes")
            parts.append(piece)
    return b"".join(parts)
