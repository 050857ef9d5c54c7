"""An object store on any S3-compatible server (AWS S3, SeaweedFS, MinIO, Ceph RGW, Garage, ...).

Objects are laid out like FolderStore's files: `<prefix>/<key[:2]>/<key>` in one bucket, so
several stores (one per replica slot) can share a bucket under different prefixes.

Opened from a URL by `open_store`:

    s3://bucket/prefix?endpoint=http://127.0.0.1:8333&region=us-east-1&access_key=...&secret_key=...

Credentials come from `access_key`/`secret_key` when given, else from boto3's usual chain
(AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, shared config, ...).
"""

from __future__ import annotations

import base64
import hashlib
import threading
from typing import Iterator
from urllib.parse import urlencode, urlsplit, urlunsplit

import boto3
from botocore.config import Config
from botocore.exceptions import (
    ClientError,
    IncompleteReadError,
    ReadTimeoutError,
    ResponseStreamingError,
)

from .object_store import MissingObject, StoreFull
from .store_outage import write_circuit

DEFAULT_REGION = "us-east-1"
CONNECT_TIMEOUT = 5
READ_TIMEOUT = 60  # seconds without a byte from the server: reads may come from a slow replica
READ_RETRIES = 5  # after the first attempt
# A chunk is at most ~1 MiB: a store that takes no byte of its answer for this long is not taking
# writes. Two attempts: a first 503 within about 2 x WRITE_TIMEOUT, then at once (WriteCircuit).
WRITE_TIMEOUT = 10
WRITE_ATTEMPTS = 2  # in all

# Error codes that mean "no room for this write". AWS itself has none (a bucket never fills);
# these are what self-hosted servers answer when a disk or a quota is exhausted.
_FULL_CODES = {
    "QuotaExceeded",  # Ceph RGW user/bucket quota, MinIO, several hosted S3 services
    "XMinioStorageFull",  # MinIO: drive below its free-space threshold (HTTP 507)
    "XMinioAdminBucketQuotaExceeded",  # MinIO hard bucket quota
    "InsufficientCapacity",
    "InsufficientStorage",
    "StorageFull",
}
_FULL_MESSAGES = ("no space left on device", "disk full", "quota exceeded", "storage full")
_MISSING_BUCKET = {"NoSuchBucket"}
_MISSING_KEY = {"NoSuchKey", "404", "NotFound"}
_BODY_READ_ATTEMPTS = 3


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _http_status(error: ClientError) -> int | None:
    return error.response.get("ResponseMetadata", {}).get("HTTPStatusCode")


def _is_full(error: ClientError) -> bool:
    if _error_code(error) in _FULL_CODES or _http_status(error) == 507:
        return True
    message = str(error.response.get("Error", {}).get("Message", "")).lower()
    return any(words in message for words in _FULL_MESSAGES)


def _without_userinfo(endpoint: str) -> str:
    parts = urlsplit(endpoint)
    if parts.username is None and parts.password is None:
        return endpoint
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = host + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


class S3Store:
    """Objects in an S3 bucket under `prefix/`, fanned out by the key's first two characters.

    One boto3 client per store, shared by every thread that uses the store (boto3 clients are
    thread-safe; the connection pool is sized for a handful of concurrent callers).
    """

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        endpoint: str | None = None,
        region: str | None = None,
        access_key: str | None = None,
        secret_key: str | None = None,
        **unknown: str,
    ) -> None:
        if unknown:
            raise ValueError(
                f"unknown S3 store option(s) {', '.join(sorted(unknown))}: "
                "use endpoint, region, access_key, secret_key"
            )
        if not bucket:
            raise ValueError("an S3 store needs a bucket: s3://bucket/prefix")
        if bool(access_key) != bool(secret_key):
            raise ValueError("give both access_key and secret_key, or neither (to use AWS_* credentials)")
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.endpoint = endpoint or None
        self.region = region or DEFAULT_REGION
        self._base = f"{self.prefix}/" if self.prefix else ""

        options = dict(
            region_name=self.region,
            signature_version="s3v4",
            s3={"addressing_style": "path"},
            connect_timeout=CONNECT_TIMEOUT,
            read_timeout=READ_TIMEOUT,
            retries={"mode": "standard", "max_attempts": READ_RETRIES},
            max_pool_connections=32,
            tcp_keepalive=True,
        )
        if "request_checksum_calculation" in Config.OPTION_DEFAULTS:
            # botocore >= 1.36 adds CRC checksums (aws-chunked trailers over HTTPS) that many
            # S3-compatible servers reject; put() sends Content-MD5 instead, which they all verify.
            options.update(request_checksum_calculation="when_required",
                           response_checksum_validation="when_required")
        config = Config(**options)
        # A private session: boto3's default session is not safe to create clients from in threads.
        session = boto3.session.Session(
            aws_access_key_id=access_key or None,
            aws_secret_access_key=secret_key or None,
            region_name=self.region,
        )
        self._client = session.client("s3", endpoint_url=self.endpoint, config=config)
        # Writes get their own client, with a shorter wait and one retry: a store that cannot take
        # a write may hold it for a minute per attempt (SeaweedFS with a volume server down), and
        # with read's settings a refused upload took minutes to get its 503. A write that fails so
        # opens the bucket's circuit, and the writes after it fail at once (store_outage.py).
        self._writes = session.client("s3", endpoint_url=self.endpoint, config=config.merge(Config(
            read_timeout=WRITE_TIMEOUT, retries={"mode": "standard", "total_max_attempts": WRITE_ATTEMPTS})))
        self._circuit = write_circuit(f"s3://{self.bucket} at {_without_userinfo(self.endpoint or 'AWS')}")
        self._bucket_lock = threading.Lock()
        self._bucket_ready = False

        query = {}
        if self.endpoint:
            query["endpoint"] = _without_userinfo(self.endpoint)
        query["region"] = self.region
        path = f"/{self.prefix}" if self.prefix else ""
        self._url = f"s3://{self.bucket}{path}?{urlencode(query, safe=':/')}"

    @property
    def url(self) -> str:
        """The store's address, without credentials."""
        return self._url

    def __repr__(self) -> str:
        return f"S3Store({self._url!r})"

    def _name(self, key: str) -> str:
        if not key or "/" in key:
            raise ValueError(f"invalid object key {key!r}")
        return f"{self._base}{key[:2]}/{key}"

    # -- writing -------------------------------------------------------------------------------

    def put(self, key: str, data: bytes) -> None:
        name = self._name(key)
        md5 = base64.b64encode(hashlib.md5(data).digest()).decode("ascii")
        with self._circuit.write():
            try:
                self._put(name, data, md5)
            except ClientError as error:
                if _error_code(error) not in _MISSING_BUCKET:
                    raise self._translate_write(error) from error
                self._create_bucket()
                try:
                    self._put(name, data, md5)
                except ClientError as again:
                    raise self._translate_write(again) from again

    def put_parts(self, key: str, parts: tuple[bytes, ...], durable: bool = False) -> None:
        """One object from several parts (an S3 PUT needs one body, so they are joined). An S3
        PUT is durable once answered, so `durable` (see FolderStore.put_parts) asks nothing more."""
        self.put(key, b"".join(parts))

    def _put(self, name: str, data: bytes, md5: str) -> None:
        self._writes.put_object(Bucket=self.bucket, Key=name, Body=data, ContentMD5=md5,
                                ContentType="application/octet-stream")

    def _translate_write(self, error: ClientError) -> Exception:
        if _is_full(error):
            return StoreFull(f"no space left in {self.url}: {error}")
        return error

    def _create_bucket(self) -> None:
        """Create the bucket the first time a write finds it missing (once per store)."""
        with self._bucket_lock:
            if self._bucket_ready:
                return
            arguments = {"Bucket": self.bucket}
            if self.region != DEFAULT_REGION:
                arguments["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
            try:
                self._writes.create_bucket(**arguments)
            except ClientError as error:
                if _error_code(error) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise self._translate_write(error) from error
            self._bucket_ready = True

    def delete(self, key: str) -> None:
        try:
            self._client.delete_object(Bucket=self.bucket, Key=self._name(key))
        except ClientError as error:
            # Deleting what is not there is not an error (S3 already says 204 for a missing key).
            if _error_code(error) not in _MISSING_BUCKET | _MISSING_KEY:
                raise

    def sync(self) -> None:
        """Nothing to flush: S3 acknowledges a PutObject only once the object is stored."""

    # -- reading -------------------------------------------------------------------------------

    def get(self, key: str) -> bytes:
        name = self._name(key)
        for attempt in range(1, _BODY_READ_ATTEMPTS + 1):
            try:
                response = self._client.get_object(Bucket=self.bucket, Key=name)
            except ClientError as error:
                if _error_code(error) in _MISSING_BUCKET | _MISSING_KEY:
                    raise MissingObject(f"{key} is not in {self.url}") from None
                raise
            body = response["Body"]
            try:
                # StreamingBody.read checks the length against Content-Length.
                return body.read()
            except (IncompleteReadError, ReadTimeoutError, ResponseStreamingError):
                # botocore retries the request but not a body cut off midway: ask again.
                if attempt == _BODY_READ_ATTEMPTS:
                    raise
            finally:
                body.close()
        raise AssertionError("unreachable")

    def exists(self, key: str) -> bool:
        try:
            self._client.head_object(Bucket=self.bucket, Key=self._name(key))
        except ClientError as error:
            if _http_status(error) == 404 or _error_code(error) in _MISSING_BUCKET | _MISSING_KEY:
                return False
            raise
        return True

    def delete_stray(self, key: str, older_than: float, unrecorded) -> bool:
        """Delete an object nothing records, only if, asked again now, it is still old (a writer
        that found no row writes it anew, with a new LastModified) and still unrecorded. S3 has no
        rename to set it aside first (FolderStore.delete_stray), so a writer's PUT landing between
        this HEAD and the DELETE, milliseconds, is not excluded; a sweep from a stale listing
        no longer removes fresh objects."""
        try:
            head = self._client.head_object(Bucket=self.bucket, Key=self._name(key))
        except ClientError as error:
            if _http_status(error) == 404 or _error_code(error) in _MISSING_BUCKET | _MISSING_KEY:
                return False
            raise
        if head["LastModified"].timestamp() >= older_than or not unrecorded():
            return False
        self.delete(key)
        return True

    def keys(self) -> Iterator[str]:
        """Every key in this store (in key order), read with paginated ListObjectsV2."""
        return (key for key, _modified in self._listing())

    def old_keys(self, older_than: float) -> Iterator[str]:
        """Keys of objects last written before `older_than` (a Unix time)."""
        return (key for key, modified in self._listing() if modified < older_than)

    def _listing(self) -> Iterator[tuple[str, float]]:
        paginator = self._client.get_paginator("list_objects_v2")
        pages = paginator.paginate(Bucket=self.bucket, Prefix=self._base,
                                   PaginationConfig={"PageSize": 1000})
        try:
            for page in pages:
                for item in page.get("Contents", ()):
                    rest = item["Key"][len(self._base):]
                    fan, _, key = rest.partition("/")
                    # Only this store's own layout: skips objects of stores nested under our
                    # prefix (prefix/x/...) and anything else someone put in the bucket.
                    if key and "/" not in key and fan == key[:2]:
                        yield key, item["LastModified"].timestamp()
        except ClientError as error:
            if _error_code(error) in _MISSING_BUCKET:
                return
            raise
