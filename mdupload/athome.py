"""Reading committed chapters back through MangaDex@Home: the reader that `pull` (pull.py) and `verify`
(verify.py) use.

MangaDex@Home's rules (API-NOTES.md, "Reading a chapter back"), kept in this module and, for the
download of a whole chapter, in pull.py:

- `GET /at-home/server/{chapterId}` goes through the API client, without the token and under the
  client's rate limiter (40 per minute for this endpoint, shared by every thread);
- a page's URL is `{baseUrl}/{data|data-saver}/{hash}/{filename}`, with `baseUrl` used as the opaque
  string it is (never parsed, never rebuilt);
- images are fetched on a requests Session of their own that has no auth of any kind (not even a
  ~/.netrc entry), so an Authorization header can never reach an image host;
- after every image fetched from a `baseUrl` that does not contain `mangadex.org`, a report goes to
  the network's report endpoint: `url`, `success`, `cached` (X-Cache starts with HIT), `bytes`
  (0 when nothing came) and `duration` (ms, the whole transfer); a report that fails is ignored;
- on a 403 (the base URL expired) or a failing node (5xx, a dropped or cut-short transfer), a new
  base URL is asked for and the page tried again there; at most pull.MAX_FAILING_NODES base URLs
  in a row that serve nothing are tried before the chapter is given up;
- a few pages download at a time (CONCURRENCY), each streamed to disk under a `.part` name and
  renamed once complete.
"""

from __future__ import annotations

import hashlib
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import requests

from . import __version__
from .deadlines import MAX_IMAGE_BYTES, BoundedAdapter, DeadlineExceeded, Timeouts
from .errors import MdUploadError, UsageError
from .files import create_new
from .mangadex.client import MangaDexClient
from .mangadex.errors import NotFound
from .settings import REPORT_URL, REPORT_URL_SETTING
from .vocabulary import CHUNK_BYTES

log = logging.getLogger("mdupload.athome")

REPORT_URL_ENV = REPORT_URL_SETTING.variable
OFFICIAL_HOST_MARK = "mangadex.org"  # images from a base URL containing this are not reported
CONCURRENCY = 3  # pages downloading at once
REPORT_DEADLINE_S = 10.0  # a report is told once and forgotten: never wait long for it
POLL_FIRST_S = 1.0  # --wait: first pause between asks, doubled up to POLL_MAX_S
POLL_MAX_S = 15.0
USER_AGENT = f"mdupload/{__version__} (+https://github.com/mdupload/mdupload)"

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


class AtHomeError(MdUploadError):
    """A chapter could not be read through MangaDex@Home; the message says which and what to do."""


class NotReadableYet(AtHomeError):
    """MangaDex@Home serves no page of the chapter yet: it is still being processed (or awaits approval)."""


class ChapterNotFound(AtHomeError):
    """MangaDex has no chapter with this id (on this API host)."""


# --- what the network answers ------------------------------------------------------------------


@dataclass(frozen=True)
class Node:
    """One answer of GET /at-home/server/{id}: a base URL and the chapter's files on it."""

    chapter_id: str
    base_url: str
    hash: str
    data: tuple[str, ...]
    data_saver: tuple[str, ...]

    def names(self, data_saver: bool = False) -> tuple[str, ...]:
        return self.data_saver if data_saver else self.data

    def url(self, name: str, data_saver: bool = False) -> str:
        return f"{self.base_url}/{'data-saver' if data_saver else 'data'}/{self.hash}/{name}"

    @property
    def reported(self) -> bool:
        """Whether images from this base URL are reported to the network (it is not MangaDex's own)."""
        return OFFICIAL_HOST_MARK not in self.base_url


@dataclass(frozen=True)
class Transfer:
    """One image request, as it is reported."""

    url: str
    success: bool
    status: int | None
    bytes: int
    duration_ms: int
    cached: bool
    error: str | None = None

    def report(self) -> dict:
        return {"url": self.url, "success": self.success, "cached": self.cached, "bytes": self.bytes,
                "duration": self.duration_ms}


@dataclass
class Readiness:
    readable: dict[str, Node] = field(default_factory=dict)  # chapter id -> a base URL serving its pages
    missing: dict[str, ChapterNotFound] = field(default_factory=dict)  # chapter id -> why (404)


def check_chapter_id(chapter_id: str) -> str:
    if not _UUID.fullmatch(chapter_id or ""):
        raise UsageError(f"{chapter_id!r} is not a MangaDex chapter id.",
                         hint="Copy the UUID from the chapter's URL: mangadex.org/chapter/<id>.")
    return chapter_id.lower()


def resolve_report_url(url: str | None = None, *, environ: Mapping[str, str]) -> str:
    """The report endpoint: the argument, else MDUPLOAD_REPORT_URL, else MangaDex@Home's own."""
    source = "the report URL"
    if url is None:
        url, source = environ.get(REPORT_URL_ENV) or REPORT_URL, REPORT_URL_ENV
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"{source} is not an http(s) URL: {url!r}.",
                         hint=f"Leave {REPORT_URL_ENV} unset to report to {REPORT_URL}.")
    return url.strip()


class _NoAuthorization(requests.auth.AuthBase):
    """Set as the image session's auth: removes any Authorization header, and (being an auth) keeps
    requests from adding one from ~/.netrc."""

    def __call__(self, request):
        request.headers.pop("Authorization", None)
        return request


def image_session(pool_size: int = CONCURRENCY) -> requests.Session:
    """The requests Session for images and reports: a User-Agent, no Via, no auth of any kind."""
    session = requests.Session()
    session.headers["User-Agent"] = USER_AGENT
    session.headers.pop("Via", None)
    session.auth = _NoAuthorization()
    adapter = BoundedAdapter(pool_connections=4, pool_maxsize=max(pool_size, 1), max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


# --- the reader ----------------------------------------------------------------------------------


class AtHomeReader:
    """Reads chapters through MangaDex@Home with `client` (for /at-home/server) and its own image session."""

    def __init__(self, client: MangaDexClient, *, report_url: str | None = None,
                 environ: Mapping[str, str], concurrency: int = CONCURRENCY,
                 session: requests.Session | None = None, timeouts: Timeouts | None = None,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic):
        self.client = client
        self.report_url = resolve_report_url(report_url, environ=environ)
        self.concurrency = max(1, concurrency)
        self.images = session or image_session(self.concurrency)
        self.timeouts = timeouts or Timeouts.from_env(environ)
        self._sleep = sleep
        self._clock = clock

    # --- GET /at-home/server ---

    def server(self, chapter_id: str) -> Node:
        """Ask for a base URL for the chapter (rate limited by the client)."""
        try:
            answer = self.client.at_home_server(chapter_id)
        except NotFound:
            raise ChapterNotFound(
                f"MangaDex has no chapter {chapter_id}.",
                hint="Check the id (and --api-url/--dev: a chapter uploaded to api.mangadex.dev is not on "
                     "api.mangadex.org); a chapter deleted on MangaDex is gone for good.") from None
        chapter = answer["chapter"]
        return Node(chapter_id, answer["baseUrl"], chapter["hash"], _names(chapter.get("data")),
                    _names(chapter.get("dataSaver")))

    def wait_until_readable(self, chapter_ids: Sequence[str], wait_s: float = 0.0,
                            on_wait: Callable[[int, float], None] | None = None) -> Readiness:
        """Ask for each chapter until MangaDex@Home serves its pages, for at most `wait_s` seconds.

        The chapters still without pages at the end are still processing. Pauses between rounds start
        at POLL_FIRST_S and double up to POLL_MAX_S; `on_wait(pending, seconds)` is called before each.
        """
        deadline = self._clock() + max(0.0, wait_s)
        pending = list(dict.fromkeys(chapter_ids))
        found = Readiness()
        pause = POLL_FIRST_S
        while True:
            for chapter_id in list(pending):
                try:
                    node = self.server(chapter_id)
                except ChapterNotFound as exc:
                    found.missing[chapter_id] = exc
                    pending.remove(chapter_id)
                    continue
                if node.data:
                    found.readable[chapter_id] = node
                    pending.remove(chapter_id)
            left = deadline - self._clock()
            if not pending or left <= 0:
                return found
            pause_now = min(pause, left)
            if on_wait is not None:
                on_wait(len(pending), pause_now)
            self._sleep(pause_now)
            pause = min(pause * 2, POLL_MAX_S)

    def fetch(self, url: str, part: Path) -> tuple[Transfer, str]:
        """GET one image into `part`, streaming, within its deadline and MAX_IMAGE_BYTES: how it went, and
        the SHA-256 of what came. Never raises for what the network does."""
        started = time.monotonic()
        received, status, cached = 0, None, False
        digest = hashlib.sha256()

        def done(success: bool, error: str | None = None) -> tuple[Transfer, str]:
            return Transfer(url, success, status, received, round((time.monotonic() - started) * 1000),
                            cached, error), digest.hexdigest()

        deadline = self.timeouts.deadline("the image")
        try:
            with deadline, self.images.get(url, stream=True, timeout=self.timeouts.between_bytes) as response:
                status = response.status_code
                cached = response.headers.get("X-Cache", "").strip().upper().startswith("HIT")
                if status != 200:
                    return done(False, f"HTTP {status}" + (" (the base URL expired)" if status == 403 else ""))
                expected = response.headers.get("Content-Length")
                try:
                    with create_new(part) as out:
                        for chunk in response.iter_content(CHUNK_BYTES):
                            deadline.moved(len(chunk))
                            received += len(chunk)
                            if received > MAX_IMAGE_BYTES:
                                return done(False, f"more than {MAX_IMAGE_BYTES // (1024 * 1024)} MB, larger than "
                                                   "any page MangaDex accepts")
                            out.write(chunk)
                            digest.update(chunk)
                except OSError as exc:
                    if isinstance(exc, requests.RequestException):
                        raise
                    raise AtHomeError(f"cannot write {part}: {exc.strerror or exc}.",
                                      hint="Check that the folder is writable and the disk has room, then run the "
                                           "same command again (complete pages are kept).") from None
                if expected is not None and expected.isdigit() and int(expected) != received:
                    return done(False, f"cut short at {received} of {expected} bytes")
                if received == 0:
                    return done(False, "an empty answer")
                return done(True)
        except DeadlineExceeded as exc:
            return done(False, str(exc))
        except requests.RequestException as exc:
            return done(False, type(exc).__name__)

    def report(self, transfer: Transfer) -> None:
        """Tell the network how the image went; whatever happens to the report is ignored."""
        try:
            with self.timeouts.deadline("the MangaDex@Home report", total_s=min(REPORT_DEADLINE_S,
                                                                                  self.timeouts.total_s)):
                self.images.post(self.report_url, json=transfer.report(), stream=True,  # its body is never read
                                 timeout=(self.timeouts.connect_s, REPORT_DEADLINE_S)).close()
        except requests.RequestException as exc:
            log.debug("the MangaDex@Home report failed (ignored): %s", type(exc).__name__)


def _names(value) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise AtHomeError("MangaDex@Home's answer lists pages that are not file names.",
                          hint="Try again later; if it persists, report it.")
    return tuple(value)


