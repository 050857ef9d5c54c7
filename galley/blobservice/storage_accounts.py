"""Storage accounts as Blob service accounts: the resolver registered on app.state.blob_accounts
for names of Microsoft.Storage/storageAccounts, and how their requests are authorized.

A request to https://HOST:PORT/{account}/… is allowed by one of:
  - Shared Key: `Authorization: SharedKey {account}:{signature}` with key1 or key2 (shared_key.py);
  - an account SAS (`ss`, `srt`, `sp`, `se`, … `sig`) signed with key1 or key2 (account_sas.py);
  - a service SAS for one blob (`sr=b`, sas.py) signed with key1 or key2.
Anything else is refused in Storage's shape: no credentials 401 NoAuthenticationInformation,
a bad signature or time 403 AuthenticationFailed, a valid SAS short of the operation 403
AuthorizationPermissionMismatch (and its siblings). Bearer tokens (az --auth-mode login) are
not taken here. Keys come from the account's key records (store/account_key_store.py), read
for each request, so a regenerated key stops working at once.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

from ..domain import ids
from ..domain.resource import Resource
from . import account_sas, sas, shared_key
from .account_blobs import AccountBlobs, AccountPageBlob, Publisher
from .accounts import (
    ABORT_COPY_BLOB,
    COPY_BLOB,
    CREATE_CONTAINER,
    DELETE_BLOB,
    DELETE_CONTAINER,
    GET_BLOB,
    GET_BLOB_PROPERTIES,
    GET_BLOCK_LIST,
    GET_CONTAINER_PROPERTIES,
    GET_PAGE_RANGES,
    LIST_BLOBS,
    LIST_CONTAINERS,
    PERMISSION,
    PUT_BLOB,
    PUT_BLOCK,
    PUT_BLOCK_LIST,
    PUT_PAGE,
    BlobRequest,
)
from .errors import BlobError, authentication_failed

# What an account SAS must allow for each operation: its resource type and one of these permissions.
ACCOUNT_SAS_NEEDS = {
    GET_BLOB: account_sas.Need("o", "r"), GET_BLOB_PROPERTIES: account_sas.Need("o", "r"),
    GET_PAGE_RANGES: account_sas.Need("o", "r"), GET_BLOCK_LIST: account_sas.Need("o", "r"),
    PUT_BLOB: account_sas.Need("o", "wc"), PUT_PAGE: account_sas.Need("o", "wa"),
    PUT_BLOCK: account_sas.Need("o", "wa"), PUT_BLOCK_LIST: account_sas.Need("o", "wc"),
    DELETE_BLOB: account_sas.Need("o", "d"), CREATE_CONTAINER: account_sas.Need("c", "cw"),
    DELETE_CONTAINER: account_sas.Need("c", "d"), GET_CONTAINER_PROPERTIES: account_sas.Need("c", "r"),
    LIST_BLOBS: account_sas.Need("c", "l"), LIST_CONTAINERS: account_sas.Need("s", "l"),
    COPY_BLOB: account_sas.Need("o", "w"), ABORT_COPY_BLOB: account_sas.Need("o", "w"),
}

# A service SAS for a container reaches its blobs and lists them, never the container itself.
CONTAINER_SAS_REFUSES = frozenset({CREATE_CONTAINER, DELETE_CONTAINER, LIST_CONTAINERS})


class StorageAccountBlobs:
    """A storage account, as the Blob service dispatcher sees it (accounts.BlobAccount)."""

    conditional_headers = True  # If-Match, If-None-Match … are evaluated (conditions.py)

    def __init__(self, resolver: StorageAccountResolver, resource: Resource) -> None:
        self.name = resource.name
        self.resource = resource
        self.resolver = resolver
        self.blobs = AccountBlobs(resolver.root, resource, resolver.content, resolver.publisher,
                                  resolver.open_pages, resolver.lock)

    # ---- authorization ----------------------------------------------------------------------------
    def authorize(self, request: BlobRequest) -> None:
        keys = [k.secret for k in self.resolver.keys.keys(self.resource)]
        header = request.headers.get("authorization")
        if header:
            self._check_shared_key(request, header, keys)
            return
        if "sig" in request.query:
            self._check_sas(request, keys)
            return
        raise BlobError(401, "NoAuthenticationInformation", "Server failed to authenticate the request. Please "
                        "refer to the information in the www-authenticate header (Shared Key or a SAS).")

    def _check_shared_key(self, request: BlobRequest, header: str, keys: list[bytes]) -> None:
        parsed = shared_key.parse_authorization(header)
        if parsed is None:
            raise authentication_failed("Galley's Blob service takes Shared Key (Authorization: SharedKey "
                                        "account:signature) or a SAS for storage accounts.")
        account, signature = parsed
        if account != self.name:
            raise authentication_failed(f"The account in the Authorization header ({account}) is not the "
                                        f"request's ({self.name}).")
        scope = request.http.scope
        signed = shared_key.SignedRequest(
            method=request.http.method, raw_path=(scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
            .split("?", 1)[0], query_string=scope.get("query_string", b"").decode("latin-1"),
            headers={k.lower(): v for k, v in request.headers.items()})
        if not shared_key.verify(signed, self.name, signature, keys):
            raise authentication_failed("The MAC signature found in the HTTP request is not the same as any "
                                        "computed signature with the account's keys.")

    def _check_sas(self, request: BlobRequest, keys: list[bytes]) -> None:
        params = request.query
        now = datetime.now(UTC)
        client = request.http.client.host if request.http.client else None
        if account_sas.is_account_sas(params):
            account_sas.verify(params, self.name, keys, ACCOUNT_SAS_NEEDS[request.operation], now,
                               request.scheme == "https", client)
            return
        signed_resource = params.get("sr", "b")
        if signed_resource == "c" and request.container and request.operation not in CONTAINER_SAS_REFUSES:
            resource = sas.canonical_resource(self.name, request.container)
        elif signed_resource == "b" and request.blob:
            resource = sas.canonical_resource(self.name, request.container, request.blob)
        else:
            raise authentication_failed("This request takes Shared Key, an account SAS, a container SAS "
                                        "(sr=c: the blobs of one container) or a blob SAS (sr=b: one blob).")
        refusal: BlobError | None = None
        for key in keys:
            try:
                sas.verify(key, params, resource, now=now, need=PERMISSION[request.operation],
                           scheme=request.scheme, signed_resource=signed_resource)
                return
            except BlobError as error:
                refusal = refusal if refusal is not None and refusal.code != "AuthenticationFailed" else error
        assert refusal is not None
        raise refusal

    # ---- what operations.py's page handlers ask of an account ------------------------------------
    def page_blob(self, container: str, blob: str):
        return self.blobs.get(container, blob)

    def create_page_blob(self, container: str, blob: str, size: int) -> AccountPageBlob:
        return self.blobs.create_page_blob(container, blob, size)


class StorageAccountResolver:
    """Finds storage accounts by name for the Blob service (app.state.blob_accounts)."""

    def __init__(self, store, keys, content, home: Path) -> None:
        self.store, self.keys, self.content = store, keys, content
        self.root = home / "account-blobs"
        self.publisher = Publisher()
        self.open_pages: dict[str, AccountPageBlob] = {}
        self.lock = threading.Lock()

    def resolve(self, name: str) -> StorageAccountBlobs | None:
        with self.store.read() as tx:
            account = tx.find_named(ids.STORAGE_ACCOUNT_TYPE, name)
        return StorageAccountBlobs(self, account) if account is not None else None


def install(app, settings, store, content) -> None:
    """Serve storage accounts' blobs (after blobservice.install, which adds the dispatcher)."""
    from . import block_blobs, containers, copy_blob  # noqa: F401 - their handlers register themselves

    resolvers = getattr(app.state, "blob_accounts", None)
    if resolvers is None:
        resolvers = app.state.blob_accounts = []
    resolvers.append(StorageAccountResolver(store, app.state.account_keys, content, settings.home))
