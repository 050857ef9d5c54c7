"""Galley's Blob service: the part of Azure Blob Storage's data plane that disk SAS URLs and
storage-account clients use, path-style on Galley's own port:

    https://HOST:PORT/{account}/{container}/{blob}?{SAS or other query}

Layout
  dispatch.py    ASGI middleware (added in app.py so it runs before path canonicalization and ARM
                 authentication): takes a request whose first path segment is an account name
                 (`md-[a-z0-9]+`, or `[a-z0-9]{3,24}` that is not one of Galley's own top-level
                 words) that a resolver knows; every `md-…` name is answered here.
  accounts.py    the interface below, BlobRequest and the operation names.
  operations.py  which operation a request is (method + comp + restype) and the handlers of page
                 blob operations; `register(name, handler)` adds more (block blobs, containers).
                 A Put Blob of another x-ms-blob-type goes to the handler registered as
                 "PutBlob:{type}" (e.g. "PutBlob:BlockBlob").
  errors.py      Storage's XML errors (`<Error><Code/><Message/></Error>`, x-ms-error-code) and the
                 headers every answer has (x-ms-request-id, x-ms-version, Date).
  sas.py         service SAS: string to sign per `sv`, HMAC-SHA256, checks of se/st/sp/sr/spr.
  ranges.py      x-ms-range / Range parsing and Put Page's 512-byte alignment and 4 MiB limit.
  disk_access.py beginGetAccess/endGetAccess sessions of disks and snapshots and their `md-…`
                 accounts; page_store.py the durable pages of a Write session, whose concurrent
                 writes share commits through group_commit.py.
  storage_accounts.py  storage accounts as blob accounts (resolver, Shared Key / SAS checks);
                 shared_key.py and account_sas.py verify those signatures; account_blobs.py keeps
                 their containers and blobs and publishes VHD blobs as sources; block_blobs.py and
                 containers.py are their block blob, delete, container and listing handlers.
  copy_blob.py   Copy Blob (and From URL, Abort) into an account's blob from a blob on this Galley
                 (a disk SAS or an account's blob); copy_state.py the copy properties a blob keeps.

The interface an account owner implements (H6's storage accounts do too):

    class BlobAccountResolver:                      # appended to app.state.blob_accounts
        def resolve(self, name: str) -> BlobAccount | None

    class BlobAccount:
        name: str
        def authorize(self, request: BlobRequest) -> None      # raise BlobError (403 …) to refuse
        def page_blob(self, container, blob) -> PageBlob | None
        def create_page_blob(self, container, blob, size) -> PageBlob   # Put Blob, PageBlob type

    class PageBlob:          # size, etag ('"0x…"'), last_modified (aware datetime)
        def read(offset, length) -> bytes
        def page_ranges(start, end) -> list[(start, end_exclusive)]
        def write_pages(offset, data); def clear_pages(offset, length)

`authorize` gets the request with its `operation` (accounts.PERMISSION maps each to the SAS
letter it needs) before any handler runs; handlers run blocking calls in the thread pool.

Disk SAS format (what beginGetAccess returns):

    https://HOST:PORT/md-{16 hex}/{12 hex}/abcd?sv=2020-12-06[&spr=https]&sr=b&sp=rw|r&se={UTC}&sig=…

signed with the session's own random 32-byte key over sas.py's string to sign for sv 2020-12-06
(canonical resource /blob/md-…/{container}/abcd). Write sessions get sp=rw, Read sessions sp=r.
The page store's design is in page_store.py's docstring.
"""

from __future__ import annotations

from .dispatch import BlobService

__all__ = ["BlobService", "install"]


def install(app, settings, service, content) -> None:
    """Register the disk access resolver and the Blob service middleware on `app`."""
    from ..api.forwarding import Forwarder
    from .disk_access import DiskAccess
    from .session_holders import SessionHolders

    node = app.state.node  # sessions are recorded under it, for the other nodes to forward to
    app.state.disk_access = DiskAccess(settings.home, service, content, SessionHolders(app.state.nodes, node.id))
    app.state.forwarder = Forwarder(node.name, settings.ca_bundle)
    resolvers = getattr(app.state, "blob_accounts", None)
    if resolvers is None:
        resolvers = app.state.blob_accounts = []
    resolvers.insert(0, app.state.disk_access)
    app.add_middleware(BlobService)
