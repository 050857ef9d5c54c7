"""What the Blob service needs from whoever owns an account name (see the package docstring)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from starlette.requests import Request

from .errors import SERVICE_VERSION

# Operation names (Azure's), as operations.identify() finds them from method + comp + restype.
GET_BLOB, GET_BLOB_PROPERTIES, PUT_BLOB, DELETE_BLOB = "GetBlob", "GetBlobProperties", "PutBlob", "DeleteBlob"
PUT_PAGE, GET_PAGE_RANGES = "PutPage", "GetPageRanges"
PUT_BLOCK, PUT_BLOCK_LIST, GET_BLOCK_LIST = "PutBlock", "PutBlockList", "GetBlockList"
CREATE_CONTAINER, DELETE_CONTAINER, GET_CONTAINER_PROPERTIES = "CreateContainer", "DeleteContainer", "GetContainerProperties"
LIST_BLOBS, LIST_CONTAINERS = "ListBlobs", "ListContainers"
COPY_BLOB, ABORT_COPY_BLOB = "CopyBlob", "AbortCopyBlob"
# The SAS permission letter each operation needs.
PERMISSION = {GET_BLOB: "r", GET_BLOB_PROPERTIES: "r", GET_PAGE_RANGES: "r", GET_BLOCK_LIST: "r",
              GET_CONTAINER_PROPERTIES: "r", PUT_BLOB: "w", PUT_PAGE: "w", PUT_BLOCK: "w",
              PUT_BLOCK_LIST: "w", CREATE_CONTAINER: "c", DELETE_BLOB: "d", DELETE_CONTAINER: "d",
              LIST_BLOBS: "l", LIST_CONTAINERS: "l", COPY_BLOB: "w", ABORT_COPY_BLOB: "w"}


@dataclass
class BlobRequest:
    http: Request
    account: str
    container: str | None
    blob: str | None
    operation: str
    query: dict[str, str]

    @property
    def headers(self):
        return self.http.headers

    @property
    def version(self) -> str:
        return self.http.headers.get("x-ms-version") or SERVICE_VERSION

    @property
    def scheme(self) -> str:
        return self.http.url.scheme


class PageBlob(Protocol):
    """A page blob's state and data. Offsets and lengths are bytes, 512-aligned where they write."""

    size: int
    etag: str
    last_modified: datetime

    def read(self, offset: int, length: int) -> bytes: ...
    def page_ranges(self, start: int, end: int) -> list[tuple[int, int]]: ...  # [start, end) runs
    def write_pages(self, offset: int, data: bytes) -> None: ...
    def clear_pages(self, offset: int, length: int) -> None: ...


class BlobAccount(Protocol):
    name: str

    def authorize(self, request: BlobRequest) -> None:
        """Allow `request.operation` on its container/blob or raise BlobError (403 …)."""

    def page_blob(self, container: str, blob: str) -> PageBlob | None: ...

    def create_page_blob(self, container: str, blob: str, size: int) -> PageBlob:
        """Put Blob with x-ms-blob-type PageBlob: a new, empty page blob of `size` bytes."""


class BlobAccountResolver(Protocol):
    def resolve(self, name: str) -> BlobAccount | None: ...
