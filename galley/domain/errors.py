"""Rejections in ARM's shape: a code, a message a person can act on, a target, an HTTP status."""

from __future__ import annotations


class ArmError(Exception):
    status = 400
    code = "BadRequest"
    retry_after: int | None = None  # seconds a client should wait before trying again (a 503)

    def __init__(self, message: str, *, target: str | None = None, code: str | None = None,
                 status: int | None = None, retry_after: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.target = target
        self.retry_after = retry_after
        if code:
            self.code = code
        if status:
            self.status = status

    def to_body(self) -> dict:
        # target is always present (null when the error is about the request as a whole).
        return {"error": {"code": self.code, "message": self.message, "target": self.target}}


class InvalidParameter(ArmError):
    code = "InvalidParameter"


class InvalidResourceName(ArmError):
    code = "InvalidResourceName"


class PropertyChangeNotAllowed(ArmError):
    code = "PropertyChangeNotAllowed"
    status = 409


class NotFound(ArmError):
    code = "ResourceNotFound"
    status = 404


class ParentNotFound(NotFound):
    code = "ParentResourceNotFound"


class ResourceGroupNotFound(NotFound):
    code = "ResourceGroupNotFound"


class Conflict(ArmError):
    code = "Conflict"
    status = 409


class QuotaExceeded(ArmError):
    code = "QuotaExceeded"
    status = 409


class OperationNotAllowed(ArmError):
    code = "OperationNotAllowed"
    status = 409
