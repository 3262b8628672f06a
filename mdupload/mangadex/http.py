"""HTTP to MangaDex: one requests Session shared by every thread, and the rules every call follows.

- A real User-Agent; on every request a connect timeout, a timeout between bytes, and a total
  deadline that grows with the bytes sent and received (deadlines.py), so a drip ends too.
- The Bearer token goes only to the configured API and token origins (scheme, host, port): a request
  to any other host through this session carries none, and a redirect to another origin drops it for
  good (a redirect back does not restore it; a 401 from there is no reason to refresh).
- Every request to the API host waits for the rate limiter first and reports the answer's headers.
- Retries (tenacity) where they are safe: GET and DELETE on 5xx and lost answers; any request that
  provably did not reach MangaDex (no connection, 429, 503). A POST whose answer was lost raises
  OutcomeUnknown; a POST answered with another 5xx raises ServerError: the caller looks the state up.
- Answers are streamed up to deadlines.MAX_ANSWER_BYTES (the rest is never read); unreadable ones
  become an ApiError, never a traceback.
- A debug trace on the `mdupload.http` logger, with headers and bodies redacted.
"""

from __future__ import annotations

import json as jsonlib
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import requests
import tenacity
from requests.utils import super_len
from urllib3.exceptions import ConnectTimeoutError, NewConnectionError

from .. import __version__, limits
from ..deadlines import MAX_ANSWER_BYTES, BoundedAdapter, DeadlineExceeded, Timeouts, read_capped
from ..errors import AuthError, server_text
from ..redact import MASK, redact, redact_mapping
from .auth import TokenManager
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

USER_AGENT = f"mdupload/{__version__} (+https://github.com/mdupload/mdupload)"
MAX_BACKOFF_S = 30.0
MAX_RATE_LIMIT_WAIT_S = 300.0  # a 429 asking to wait longer is reported instead of slept through
CAPTCHA_TITLE = "captcha_required_exception"

log = logging.getLogger("mdupload.http")

_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin(url: str) -> tuple[str, str, int | None]:
    """(scheme, host, port) with the default port filled in: what the token is bound to."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or _DEFAULT_PORTS.get(scheme)


class BearerAuth(requests.auth.AuthBase):
    """Adds the access token to a request only when its origin is one of `origins`."""

    def __init__(self, origins: set[tuple], token: Callable[[], str | None]):
        self.origins = origins
        self.token = token

    def __call__(self, request):
        request.headers.pop("Authorization", None)
        if origin(request.url) in self.origins:
            token = self.token()
            if token:
                request.headers["Authorization"] = f"Bearer {token}"
        return request


def _no_auth(request):
    return request


class _Session(requests.Session):
    def rebuild_auth(self, prepared_request, response):
        """On a redirect: keep the Authorization header only within the same origin, add none."""
        if origin(prepared_request.url) != origin(response.request.url):
            prepared_request.headers.pop("Authorization", None)


@dataclass
class Answer:
    status: int
    headers: Mapping[str, str]
    data: Any  # the parsed JSON, or None when the body was empty or (outside 2xx) not JSON
    sent_token: str | None = None


# A request body built afresh for each attempt: () -> (data, extra headers, close)
BodyFactory = Callable[[], tuple[Any, dict, Callable[[], None]]]


@dataclass
class _Request:
    method: str
    url: str
    path: str  # for the rate limiter and messages
    idempotent: bool
    authed: bool
    api: bool  # counts against the API host's rate limits
    params: Sequence[tuple[str, str]] | None = None
    json: Any = None
    form: dict | None = None
    body: BodyFactory | None = None
    body_description: str = ""
    maybe_done: int = 0  # attempts that may have been carried out though no success came back

    @property
    def where(self) -> str:
        return f"{self.method} {self.path}"


@dataclass
class _Raw:
    status: int
    reason: str
    headers: Mapping[str, str]
    content: bytes
    too_large: bool
    sent_token: str | None


class _NotSent(Exception):
    """The request never reached the server (no connection): always safe to send again."""


class _AnswerLost(Exception):
    """The request was sent (maybe processed) but no complete answer came back."""


class Transport:
    """Sends requests to the API host (and the token URL) following the rules above; thread-safe."""

    def __init__(self, api_url: str, token_url: str, *, timeouts: Timeouts | None = None,
                 rate_limiter: RateLimiter | None = None, retries: int = 3, backoff_s: float = 1.0,
                 pool_size: int = 16, max_answer_bytes: int = MAX_ANSWER_BYTES,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.time):
        self.api_url = api_url.rstrip("/")
        self.token_url = token_url
        self.timeouts = timeouts or Timeouts()
        self.rate_limiter = rate_limiter
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_answer_bytes = max_answer_bytes
        self._sleep = sleep
        self._clock = clock
        self.tokens: TokenManager | None = None
        self.session = _Session()
        self.session.headers.update({"User-Agent": USER_AGENT, "Accept": "application/json"})
        self.session.headers.pop("Via", None)
        adapter = BoundedAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
        self.session.mount("https://", adapter)
        self.session.mount("http://", adapter)
        self.session.auth = BearerAuth({origin(self.api_url), origin(token_url)}, self._access_token)

    def _access_token(self) -> str | None:
        return self.tokens.access_token() if self.tokens else None

    # --- the two kinds of call --------------------------------------------------------------

    def api(self, method: str, path: str, *, params=None, json=None, body: BodyFactory | None = None,
            body_description: str = "", idempotent: bool | None = None, authed: bool = True,
            allow: tuple[int, ...] = ()) -> Answer:
        """Call the API; 2xx and the statuses in `allow` are answered, anything else raises ApiError.

        `idempotent` (default: GET and DELETE) says whether sending it twice is harmless.
        """
        method = method.upper()
        request = _Request(method, self.api_url + path, path,
                           idempotent if idempotent is not None else method in ("GET", "DELETE"),
                           authed, True, params=params, json=json, body=body, body_description=body_description)
        raw = self._send(request)
        # A 401 says something about the token only where one went (not from a host a redirect led to).
        if raw.status == 401 and authed and self.tokens is not None and raw.sent_token is not None:
            self.tokens.token_rejected(raw.sent_token)
            raw = self._send(request)
        if raw.status == 404 and method == "DELETE" and request.maybe_done:
            return Answer(200, raw.headers, {}, raw.sent_token)  # an earlier attempt did delete it
        if 200 <= raw.status < 300:
            return Answer(raw.status, raw.headers, self._decode(request, raw), raw.sent_token)
        if raw.status in allow:
            return Answer(raw.status, raw.headers, _loads(raw.content), raw.sent_token)
        if raw.status == 401 and self.tokens is None:
            raise AuthError(f"MangaDex requires signing in for {request.where}.",
                            hint="Set MDUPLOAD_USERNAME, MDUPLOAD_PASSWORD, MDUPLOAD_CLIENT_ID and "
                                 "MDUPLOAD_CLIENT_SECRET.")
        raise self._error(request, raw)

    def post_form(self, url: str, form: dict) -> tuple[int, dict | None]:
        """POST a form to the token URL (no Bearer token, no API rate limit); 4xx are returned."""
        request = _Request("POST", url, urlsplit(url).path or "/", True, False, False, form=form)
        raw = self._send(request)
        if raw.status >= 400 and raw.status not in (400, 401, 403):
            raise self._error(request, raw)
        data = _loads(raw.content) if not raw.too_large else None
        if 200 <= raw.status < 300 and not isinstance(data, dict):
            raise ApiError(f"The token URL {url} answered something that is not a JSON object.",
                           status=raw.status, hint="Check MDUPLOAD_AUTH_URL: it must be MangaDex's OAuth token URL.")
        return raw.status, data

    # --- one request, with retries ------------------------------------------------------------

    def _send(self, request: _Request) -> _Raw:
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception(lambda exc: self._should_retry(request, exc)),
            stop=tenacity.stop_after_attempt(self.retries + 1),
            wait=self._wait,
            sleep=self._sleep,
            before_sleep=lambda state: self._say_retry(request, state),
            reraise=True,
        )
        try:
            return retrying(self._attempt, request)
        except _NotSent as exc:
            raise NetworkError(f"Could not connect to {_host(request.url)} for {request.where}: {_cause(exc)}.",
                               hint="Check the network connection (and MDUPLOAD_API_URL), then run again.") from None
        except _AnswerLost as exc:
            if request.idempotent:
                raise NetworkError(f"{request.where} kept losing its answer from {_host(request.url)}: "
                                   f"{_cause(exc)}.", hint="Check the network connection, then run again.") from None
            raise OutcomeUnknown(f"{request.where} was sent, but its answer was lost ({_cause(exc)}); "
                                 "MangaDex may or may not have done it.") from None

    def _should_retry(self, request: _Request, exc: BaseException) -> bool:
        if isinstance(exc, _NotSent):
            return True
        if isinstance(exc, RateLimited):
            return self._rate_limit_wait(exc) <= MAX_RATE_LIMIT_WAIT_S
        if isinstance(exc, ServerError):
            return request.idempotent or exc.status == 503
        if isinstance(exc, _AnswerLost):
            return request.idempotent
        return False

    def _say_retry(self, request: _Request, retry_state: tenacity.RetryCallState) -> None:
        """Every retry is a line (a warning: shown by default): what failed, the wait, the attempt."""
        exc = retry_state.outcome.exception()
        why = _cause(exc) if isinstance(exc, (_NotSent, _AnswerLost)) else redact(getattr(exc, "message", str(exc)))
        log.warning("%s failed (%s); trying again in %.0f s (attempt %d of %d)", request.where, why,
                    retry_state.next_action.sleep, retry_state.attempt_number + 1, self.retries + 1)

    def _wait(self, retry_state: tenacity.RetryCallState) -> float:
        exc = retry_state.outcome.exception()
        if isinstance(exc, RateLimited):
            return self._rate_limit_wait(exc)
        return min(MAX_BACKOFF_S, self.backoff_s * 2 ** (retry_state.attempt_number - 1))

    def _rate_limit_wait(self, exc: RateLimited) -> float:
        if exc.retry_after is None:
            return float(limits.RATE_LIMIT_DEFAULT_WAIT_S)
        return max(0.0, exc.retry_after - self._clock())

    def _attempt(self, request: _Request) -> _Raw:
        ticket = self.rate_limiter.acquire(request.method, request.path) if request.api and self.rate_limiter else None
        if request.authed and request.api and self.tokens is not None:
            self.tokens.access_token()  # sign in (if need be) before this request's deadline starts: it has its own
        data, headers, close = request.body() if request.body else (request.form, {}, lambda: None)
        started = time.monotonic()
        deadline = self.timeouts.deadline("the answer", sending=super_len(data) if data is not None else 0)
        try:
            with deadline:
                response = self._request(request, data, headers, close, started)
                try:
                    content, too_large = read_capped(response, self.max_answer_bytes, deadline)
                except (requests.RequestException, OSError) as exc:
                    self._trace_failure(request, exc, started)
                    request.maybe_done += 1
                    raise _AnswerLost(exc) from exc
                finally:
                    response.close()
        except DeadlineExceeded as exc:  # whatever the closed socket made of the request, the deadline ended it
            self._trace_failure(request, exc, started)
            if isinstance(exc.__cause__, _NotSent):
                raise _NotSent(exc) from exc
            if not isinstance(exc.__cause__, _AnswerLost):  # else counted already
                request.maybe_done += 1
            raise _AnswerLost(exc) from exc
        if ticket is not None:
            self.rate_limiter.observe(request.method, request.path, ticket, response.status_code, response.headers)
        sent = response.request.headers.get("Authorization", "")
        raw = _Raw(response.status_code, response.reason or "", response.headers, content, too_large,
                   sent.removeprefix("Bearer ") or None)
        self._trace(request, response, raw, started)
        if raw.status >= 500:
            request.maybe_done += 1
        if raw.status == 429 or raw.status >= 500:
            raise self._error(request, raw)
        return raw

    def _request(self, request: _Request, data, headers: dict, close: Callable[[], None],
                 started: float) -> requests.Response:
        """Send the request and read the answer's headers (its body is read by the caller)."""
        try:
            return self.session.request(
                request.method, request.url, params=request.params, json=request.json, data=data, headers=headers,
                timeout=self.timeouts.between_bytes, stream=True, allow_redirects=request.method != "POST",
                auth=None if request.authed else _no_auth)
        except requests.ConnectionError as exc:
            self._trace_failure(request, exc, started)
            if _not_sent(exc):
                raise _NotSent(exc) from exc
            request.maybe_done += 1
            raise _AnswerLost(exc) from exc
        except requests.Timeout as exc:
            self._trace_failure(request, exc, started)
            request.maybe_done += 1
            raise _AnswerLost(exc) from exc
        except requests.RequestException as exc:
            raise ApiError(f"{request.where} could not be sent to {_host(request.url)}: {exc}.") from exc
        finally:
            close()

    # --- reading answers ----------------------------------------------------------------------

    def _decode(self, request: _Request, raw: _Raw) -> Any:
        problem = None
        if raw.too_large:
            problem = f"an answer larger than {self.max_answer_bytes // limits.MB} MB"
        elif raw.content.strip():
            data = _loads(raw.content)
            if data is None:
                problem = f"an answer that is not JSON (or was cut short): {_snippet(raw.content)!r}"
            else:
                return data
        else:
            return None
        message = f"MangaDex sent {problem} to {request.where}"
        if request.idempotent:
            raise ApiError(message + ".", status=raw.status, hint="Try again later; if it persists, report it.")
        raise OutcomeUnknown(message + "; whether it was done is not known.", status=raw.status)

    def _error(self, request: _Request, raw: _Raw) -> ApiError:
        data = _loads(raw.content) if not raw.too_large else None
        errors = parse_errors(data)
        first = errors[0] if errors else None
        title = server_text(first.title) if first and first.title else None
        detail = (server_text(first.detail) if first and first.detail else None) or (
            None if data is not None else _snippet(raw.content)) or None
        status = raw.status
        label = f"{status} {title or raw.reason}".strip()
        text = f"{label}: {detail}" if detail else label
        kwargs = {"status": status, "title": title, "detail": detail, "errors": errors}
        if status == 403 and any(e.title == CAPTCHA_TITLE for e in errors):
            return CaptchaRequired(
                f"MangaDex wants a captcha solved before it accepts {request.where} from this account ({text}).",
                hint="A command-line tool cannot solve it: sign in on mangadex.org in a browser (solving the captcha "
                     "there), or wait a while, then run the same command again.", **kwargs)
        if status == 429:
            retry_after = _float(raw.headers.get("X-RateLimit-Retry-After"))
            when = (datetime.fromtimestamp(retry_after, UTC).strftime("%H:%M:%S UTC")
                    if retry_after else f"in {limits.RATE_LIMIT_DEFAULT_WAIT_S} s")
            return RateLimited(f"MangaDex's rate limit stopped {request.where} ({text}).",
                               hint=f"Wait until {when} and run again.", retry_after=retry_after, **kwargs)
        if status >= 500:
            return ServerError(f"MangaDex failed on {request.where} ({text}).",
                               hint="MangaDex may be having trouble: try again later.", **kwargs)
        cls = {404: NotFound, 409: Conflict}.get(status, ApiError)
        return cls(f"MangaDex refused {request.where} ({text}).", **kwargs)

    # --- debug trace --------------------------------------------------------------------------

    def _trace(self, request: _Request, response: requests.Response, raw: _Raw, started: float) -> None:
        if not log.isEnabledFor(logging.DEBUG):
            return
        log.debug("%s %s -> %s in %.2fs", request.method, redact(response.url), raw.status,
                  time.monotonic() - started)
        log.debug("  request headers: %s", _safe_headers(response.request.headers))
        if request.json is not None:
            log.debug("  request body: %s", redact(_clip(jsonlib.dumps(request.json))))
        elif request.form is not None:
            log.debug("  request body (form): %s", redact(str(redact_mapping(request.form))))
        elif request.body_description:
            log.debug("  request body: %s", redact(request.body_description))
        log.debug("  answer headers: %s", _safe_headers(raw.headers))
        data = _loads(raw.content) if len(raw.content) <= 64 * 1024 else None
        shown = (jsonlib.dumps(redact_mapping(data)) if isinstance(data, dict)
                 else raw.content.decode("utf-8", "replace"))
        log.debug("  answer body: %s", redact(_clip(shown)) + (" (cut at the size cap)" if raw.too_large else ""))

    def _trace_failure(self, request: _Request, exc: BaseException, started: float) -> None:
        log.debug("%s %s -> no answer after %.2fs: %s", request.method, redact(request.url),
                  time.monotonic() - started, redact(str(exc)))


def parse_errors(data: Any) -> tuple[ApiErrorDetail, ...]:
    """MangaDex's `errors` list (absent or malformed entries give an empty tuple)."""
    entries = data.get("errors") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        return ()
    return tuple(
        ApiErrorDetail(_int(e.get("status")), _str(e.get("title")), _str(e.get("detail")), e.get("context"),
                       _str(e.get("id")))
        for e in entries if isinstance(e, dict)
    )


def _not_sent(exc: requests.ConnectionError) -> bool:
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", reason)  # urllib3's MaxRetryError wraps the cause
    return isinstance(reason, (NewConnectionError, ConnectTimeoutError))


def _loads(content: bytes) -> Any:
    if not content.strip():
        return None
    try:
        return jsonlib.loads(content)
    except ValueError:
        return None


def _safe_headers(headers: Mapping[str, str]) -> str:
    shown = {}
    for name, value in headers.items():
        lowered = name.lower()
        if lowered == "authorization":
            value = f"{value.split(' ', 1)[0]} {MASK}"
        elif lowered in ("cookie", "set-cookie"):
            value = MASK
        shown[name] = value
    return redact(str(shown))


def _snippet(content: bytes) -> str:
    return server_text(content)


def _clip(text: str, length: int = 2000) -> str:
    return text if len(text) <= length else text[:length] + f"... ({len(text)} characters)"


def _host(url: str) -> str:
    return urlsplit(url).netloc


def _cause(exc: BaseException) -> str:
    inner = exc.args[0] if exc.args else exc
    if isinstance(inner, DeadlineExceeded):
        return redact(str(inner))
    return redact(type(inner).__name__ + (f": {inner}" if str(inner) else ""))


def _float(value) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _int(value) -> int | None:
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _str(value) -> str | None:
    return value if isinstance(value, str) else (str(value) if value is not None else None)
