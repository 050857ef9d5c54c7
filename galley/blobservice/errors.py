"""Blob service errors in Azure Storage's shape: an XML body
`<Error><Code>…</Code><Message>…</Message></Error>` and the code again in `x-ms-error-code`."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone
from xml.sax.saxutils import escape

from starlette.responses import Response

# The service version Galley answers with (the one azure-storage-blob 12.2x sends, and later ones
# are accepted: the operations Galley implements did not change their shape since).
SERVICE_VERSION = "2025-11-05"


class BlobError(Exception):
    retry_after: int | None = None  # seconds, sent as Retry-After (a 503 the client should retry)

    def __init__(self, status: int, code: str, message: str, **details: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details

    def response(self, version: str | None = None) -> Response:
        request_id = str(uuid.uuid4())
        extra = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in self.details.items())
        body = (f'<?xml version="1.0" encoding="utf-8"?><Error><Code>{self.code}</Code>'
                f"<Message>{escape(self.message)}\nRequestId:{request_id}\n"
                f"Time:{datetime.now(timezone.utc).strftime('%Y-%m-%dT%H:%M:%S.%fZ')}</Message>{extra}</Error>")
        headers = standard_headers(version, request_id) | {"x-ms-error-code": self.code}
        if self.retry_after:
            headers["Retry-After"] = str(self.retry_after)
        return Response(body, status_code=self.status, media_type="application/xml", headers=headers)


def standard_headers(version: str | None = None, request_id: str | None = None) -> dict[str, str]:
    """The headers every Blob service response carries."""
    return {"x-ms-request-id": request_id or str(uuid.uuid4()), "x-ms-version": version or SERVICE_VERSION,
            "Date": datetime.now(timezone.utc).strftime("%a, %d %b %Y %H:%M:%S GMT")}


def authentication_failed(detail: str) -> BlobError:
    return BlobError(403, "AuthenticationFailed",
                     "Server failed to authenticate the request. Make sure the value of Authorization "
                     "header is formed correctly including the signature.", AuthenticationErrorDetail=detail)


def permission_mismatch() -> BlobError:
    return BlobError(403, "AuthorizationPermissionMismatch",
                     "This request is not authorized to perform this operation using this permission.")


def invalid_header(name: str, value: str | None, message: str | None = None) -> BlobError:
    return BlobError(400, "InvalidHeaderValue",
                     message or "The value for one of the HTTP headers is not in the correct format.",
                     HeaderName=name, HeaderValue=value or "")


def missing_header(name: str) -> BlobError:
    return BlobError(400, "MissingRequiredHeader", "An HTTP header that's mandatory for this request is not "
                     "specified.", HeaderName=name)


def unsupported(operation: str) -> BlobError:
    return BlobError(400, "UnsupportedOperation", f"Galley's Blob service does not support {operation} here.")
