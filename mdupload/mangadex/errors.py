"""What can go wrong when talking to MangaDex, as typed exceptions with a message for the user.

MangaDex answers errors as `{"result": "error", "errors": [{id, status, title, detail, context}]}`;
an ApiError carries the HTTP status, the first error's title (what code matches on) and detail
(what the user is shown), and all of them in `errors`.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import MdUploadError
from ..redact import redact


@dataclass(frozen=True)
class ApiErrorDetail:
    """One entry of MangaDex's `errors` list."""

    status: int | None
    title: str | None
    detail: str | None
    context: object = None
    id: str | None = None


class ApiError(MdUploadError):
    """MangaDex refused a request or answered something unreadable."""

    def __init__(self, message: str, *, status: int | None = None, title: str | None = None,
                 detail: str | None = None, errors: tuple[ApiErrorDetail, ...] = (), hint: str | None = None):
        super().__init__(redact(message), hint=redact(hint) if hint else None)
        self.status = status
        self.title = title
        self.detail = redact(detail) if detail else detail
        self.errors = errors


class RateLimited(ApiError):
    """429: MangaDex wants no more requests of this kind until `retry_after` (a UNIX time)."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs):
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class CaptchaRequired(ApiError):
    """403 captcha_required_exception: only a person in a browser can unblock the account."""


class NotFound(ApiError):
    """404."""


class Conflict(ApiError):
    """409, e.g. optimistic_lock_exception when a chapter's version is stale."""


class ServerError(ApiError):
    """5xx: MangaDex failed; for a POST, whether it did anything is not known."""


class NetworkError(ApiError):
    """MangaDex could not be reached, or a repeatable request kept losing its answer."""


class OutcomeUnknown(ApiError):
    """A POST was sent but its answer was lost (timeout, dropped connection, unreadable answer).

    MangaDex may or may not have processed it: look the state up before sending it again.
    """
