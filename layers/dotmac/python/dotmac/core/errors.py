"""Domain error types. Each carries its HTTP status and stable code; `api` maps them once."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class FieldError:
    """One problem with one input field (`field` is a dotted path, "" for the whole body)."""

    field: str
    message: str


class DotmacError(Exception):
    """Base of every error the API reports to a client."""

    status: int = 500
    code: str = "INTERNAL_ERROR"

    def __init__(
        self,
        message: str,
        *,
        details: list[FieldError] | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.details = details or []
        if code is not None:
            self.code = code
        self.headers = headers or {}


class ValidationError(DotmacError):
    status, code = 400, "VALIDATION_ERROR"


class AuthenticationError(DotmacError):
    status, code = 401, "UNAUTHENTICATED"


class ForbiddenError(DotmacError):
    """403; `code` names why (FORBIDDEN, APP_NOT_SUBSCRIBED, PLAN_LIMIT_EXCEEDED, ...)."""

    status, code = 403, "FORBIDDEN"


class NotFoundError(DotmacError):
    status, code = 404, "NOT_FOUND"


class MethodNotAllowedError(DotmacError):
    status, code = 405, "METHOD_NOT_ALLOWED"


class ConflictError(DotmacError):
    status, code = 409, "CONFLICT"


class StaleWriteError(ConflictError):
    """A conditional write failed: the item changed (or appeared) since it was read."""


class UnsupportedMediaTypeError(DotmacError):
    status, code = 415, "UNSUPPORTED_MEDIA_TYPE"


class UnprocessableError(DotmacError):
    status, code = 422, "UNPROCESSABLE"


class RateLimitedError(DotmacError):
    status, code = 429, "RATE_LIMITED"

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, headers={"Retry-After": str(max(1, retry_after))})
        self.retry_after = retry_after


class DependencyUnavailableError(DotmacError):
    """503: a backing service (table, queue, bucket) did not answer; nothing was written."""

    status, code = 503, "SERVICE_UNAVAILABLE"


def referenced(field: str, missing: str, read: Callable[[], T]) -> T:
    """The record a request field names, as `read()` finds it; a 400 naming `field` (with
    `missing`, e.g. "no such customer") when it raises NotFoundError."""
    try:
        return read()
    except NotFoundError:
        raise ValidationError(f"invalid {field}", details=[FieldError(field, missing)]) from None
