"""The MangaDex API client: tokens, rate limits, retries and typed answers (see client.py)."""

from .auth import Credentials, TokenManager
from .client import (
                     BatchResult,
                     Chapter,
                     Hosts,
                     MangaDexClient,
                     SessionFile,
                     UploadFile,
                     UploadSession,
                     resolve_hosts,
)
from .errors import (
                     ApiError,
                     ApiErrorDetail,
                     CaptchaRequired,
                     Conflict,
                     NetworkError,
                     NotFound,
                     OutcomeUnknown,
                     RateLimited,
                     ServerError,
)
from .ratelimit import RateLimiter

__all__ = [
    "ApiError", "ApiErrorDetail", "BatchResult", "CaptchaRequired", "Chapter", "Conflict", "Credentials", "Hosts",
    "MangaDexClient", "NetworkError", "NotFound", "OutcomeUnknown", "RateLimited", "RateLimiter", "ServerError",
    "SessionFile", "TokenManager", "UploadFile", "UploadSession", "resolve_hosts",
]
