"""Whether an error means an object store is (for now) out of reach or refusing writes.

An S3 endpoint that does not answer (refused, timed out, connection cut) or answers 5xx after
botocore's retries: SeaweedFS with replication 001 and one of its two volume servers down refuses
every write ("no writable volumes") while it still serves reads. It passes once the store is
back, so the API answers 503 with Retry-After, never a 500. A missing object or a full store is
not this (MissingObject, StoreFull: their own answers).
"""

from __future__ import annotations

from ..store.outage import causes

try:
    from botocore.exceptions import ClientError, ConnectionError as _Unreachable, HTTPClientError
except ImportError:  # S3 support is optional
    ClientError = _Unreachable = HTTPClientError = None

RETRY_AFTER_SECONDS = 30


def store_unavailable(error: BaseException) -> bool:
    if ClientError is None:
        return False
    for link in causes(error):
        if isinstance(link, (_Unreachable, HTTPClientError)):
            return True
        if isinstance(link, ClientError):
            status = link.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
            return status >= 500 and status != 507  # 507: a full store (StoreFull)
    return False
