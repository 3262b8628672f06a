"""The MangaDex API as mdupload uses it: one method per endpoint, answers parsed into dataclasses.

How each call is sent (tokens, retries, rate limits, timeouts, size caps) is mangadex/http.py's
business; this module knows the endpoints, their bodies and the shapes of their answers
(API-NOTES.md). An answer that lacks what the API promises becomes an ApiError naming the call,
or OutcomeUnknown for a POST that MangaDex did answer with success.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from requests_toolbelt import MultipartEncoder, MultipartEncoderMonitor

from .. import limits
from ..deadlines import Timeouts
from ..errors import PageError, UsageError
from ..settings import (
    API_URL,
    AUTH_URL,
    DEV_API,
    DEV_AUTH,
    PRODUCTION_API,
    PRODUCTION_AUTH,
    TOKEN_PATH,
)
from .auth import Credentials, TokenManager
from .errors import ApiError, ApiErrorDetail, OutcomeUnknown
from .http import Transport, parse_errors
from .ratelimit import RateLimiter

# --- hosts -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Hosts:
    api_url: str
    auth_url: str  # the full token URL


def resolve_hosts(api_url: str | None = None, auth_url: str | None = None, dev: bool = False, *,
                  environ: Mapping[str, str]) -> Hosts:
    """Where to talk to: the option, else --dev, else MDUPLOAD_API_URL / MDUPLOAD_AUTH_URL, else production.

    The auth setting is the full token URL; given only an origin, the MangaDex realm's token path
    is added. Plain http is accepted for loopback hosts only (the sandbox), since the password and
    the tokens travel in these requests.
    """
    api_source, auth_source = "--api-url", "--auth-url"
    if api_url is None:
        api_url, api_source = (DEV_API, "--dev") if dev else (environ.get(API_URL.variable) or None,
                                                              API_URL.variable)
    if auth_url is None:
        auth_url, auth_source = (DEV_AUTH, "--dev") if dev else (environ.get(AUTH_URL.variable) or None,
                                                                 AUTH_URL.variable)
    api_url = _checked_url(api_url or PRODUCTION_API, api_source).rstrip("/")
    auth_url = _checked_url(auth_url or PRODUCTION_AUTH, auth_source)
    if urlsplit(auth_url).path in ("", "/"):
        auth_url = auth_url.rstrip("/") + TOKEN_PATH
    return Hosts(api_url, auth_url)


def _checked_url(url: str, source: str) -> str:
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"{source} is not an http(s) URL: {url!r}.", hint="Give it like https://api.mangadex.org.")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise UsageError(f"{source} uses plain http to {parts.hostname}: the password and tokens would travel "
                         "unencrypted.", hint="Use https (plain http is accepted only for localhost).")
    return url


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


# --- what the API answers --------------------------------------------------------------------

@dataclass(frozen=True)
class SessionFile:
    id: str
    original_file_name: str
    file_hash: str
    file_size: int
    mime_type: str
    source: str  # "local" (uploaded) or "remote" (a page of the chapter an edit session edits)


@dataclass(frozen=True)
class UploadSession:
    id: str
    manga_id: str
    group_ids: tuple[str, ...]
    files: tuple[SessionFile, ...]
    is_committed: bool
    version: int
    created_at: datetime
    updated_at: datetime
    chapter_id: str | None  # set for an edit session


@dataclass(frozen=True)
class Chapter:
    id: str
    manga_id: str | None
    chapter: str | None
    volume: str | None
    title: str | None
    language: str
    group_ids: tuple[str, ...]
    pages: int
    version: int
    publish_at: datetime | None


@dataclass(frozen=True)
class Title:
    """A manga or a scanlation group as the catalogue names it: its id and its title (or name)."""

    id: str
    name: str


@dataclass(frozen=True)
class UploadFile:
    """One part of a batch: a file on disk, the name MangaDex will know it by, its real MIME type."""

    path: Path
    filename: str
    mime: str


@dataclass
class BatchResult:
    files: list[SessionFile]  # what MangaDex stored, in the order it answered (map by name, not order)
    errors: list[ApiErrorDetail]  # what it said about the others
    missing: list[str] = field(default_factory=list)  # names sent that are not among `files`


# --- the client ------------------------------------------------------------------------------

_DEFAULT = object()


class MangaDexClient:
    """Thread-safe: batches of one session may be sent from several threads at once."""

    def __init__(self, *, api_url: str = PRODUCTION_API, auth_url: str = PRODUCTION_AUTH,
                 credentials: Credentials | None = None, timeouts: Timeouts | None = None,
                 rate_limiter: RateLimiter | None = _DEFAULT, retries: int = 3, backoff_s: float = 1.0,
                 pool_size: int = 16, sleep: Callable[[float], None] | None = None,
                 clock: Callable[[], float] | None = None):
        """`rate_limiter` defaults to a new RateLimiter with MangaDex's limits; None disables it.

        `sleep` and `clock` (UNIX time) are for tests; by default time.sleep and time.time.
        """
        monotonic = clock or time.monotonic
        sleep = sleep or time.sleep
        clock = clock or time.time
        if rate_limiter is _DEFAULT:
            rate_limiter = RateLimiter(monotonic=monotonic, wall=clock, sleep=sleep)
        self.transport = Transport(api_url, auth_url, timeouts=timeouts, rate_limiter=rate_limiter, retries=retries,
                                   backoff_s=backoff_s, pool_size=pool_size, sleep=sleep, clock=clock)
        if credentials is not None:
            self.transport.tokens = TokenManager(credentials, auth_url, self.transport.post_form, clock=clock)

    @property
    def session(self):
        """The shared requests Session (for calls to other hosts: they never carry the token)."""
        return self.transport.session

    @property
    def tokens(self) -> TokenManager | None:
        return self.transport.tokens

    # --- upload sessions ------------------------------------------------------------------

    def get_open_session(self) -> UploadSession | None:
        answer = self.transport.api("GET", "/upload", params=[("includes[]", "upload_session_file")], allow=(404,))
        if answer.status == 404:
            return None
        return _parse("GET /upload", False, _upload_session, _data(answer.data))

    def begin_session(self, manga: str, groups: Sequence[str]) -> UploadSession:
        answer = self.transport.api("POST", "/upload/begin", json={"manga": manga, "groups": list(groups)})
        return _parse("POST /upload/begin", True, _upload_session, _data(answer.data))

    def begin_edit_session(self, chapter_id: str, version: int) -> UploadSession:
        where = "POST /upload/begin/{chapterId}"
        answer = self.transport.api("POST", f"/upload/begin/{_segment(chapter_id)}", json={"version": version})
        data = _data(answer.data)
        if any(r.get("type") == "upload_session_file" and not r.get("attributes")
               for r in _relationships(data) if isinstance(r, dict)):
            # The chapter's pages come without their attributes here: read the session back with them.
            session = self.get_open_session()
            if session is None:
                raise OutcomeUnknown(f"MangaDex answered {where} but then showed no open session.")
            return session
        return _parse(where, True, _upload_session, data)

    def upload_files(self, session_id: str, files: Sequence[UploadFile],
                     on_bytes: Callable[[int], None] | None = None) -> BatchResult:
        """Send 1 to FILES_PER_REQUEST files as one multipart request, streamed from disk.

        Each part is named file1..fileN (as in MangaDex's own upload sample; unique names keep every
        part even in servers that read form fields into a dict), with the file's name and real MIME
        type. A 200 (or a 400 listing errors) can refuse some files: they are in `errors`/`missing`.
        `on_bytes(n)` is called as the files' bytes go out (n new bytes, summing to their sizes).
        """
        if not 1 <= len(files) <= limits.FILES_PER_REQUEST:
            raise ValueError(f"a batch holds 1 to {limits.FILES_PER_REQUEST} files, not {len(files)}")
        where = "POST /upload/{sessionId}"
        progress = _Progress(sum(_size(f.path) for f in files), on_bytes)

        def body():
            stack = ExitStack()
            try:
                fields = [(f"file{n}", (f.filename, stack.enter_context(_open(f.path)), f.mime))
                          for n, f in enumerate(files, start=1)]
            except BaseException:
                stack.close()
                raise
            encoder = MultipartEncoder(fields=fields)
            monitor = MultipartEncoderMonitor(encoder, progress.callback(encoder.len))
            return monitor, {"Content-Type": monitor.content_type}, stack.close

        answer = self.transport.api("POST", f"/upload/{_segment(session_id)}", body=body,
                                    body_description=f"multipart: {', '.join(f.filename for f in files)}",
                                    allow=(400,))
        if answer.status == 400 and not parse_errors(answer.data):
            raise ApiError(f"MangaDex refused {where} (400) without saying why.", status=400)
        stored = _parse(where, True, lambda d: [_session_file(x) for x in (d or {}).get("data") or []], answer.data)
        names = {f.original_file_name for f in stored}
        return BatchResult(stored, list(parse_errors(answer.data)),
                           [f.filename for f in files if f.filename not in names])

    def delete_file(self, session_id: str, file_id: str) -> None:
        self.transport.api("DELETE", f"/upload/{_segment(session_id)}/{_segment(file_id)}")

    def delete_files(self, session_id: str, file_ids: Sequence[str]) -> None:
        if file_ids:
            self.transport.api("DELETE", f"/upload/{_segment(session_id)}/batch", json=list(file_ids))

    def commit(self, session_id: str, draft: dict, page_order: Sequence[str]) -> Chapter:
        """Publish the session as a chapter; `draft` is the chapterDraft (API-NOTES.md)."""
        body = {"chapterDraft": draft, "pageOrder": list(page_order), "termsAccepted": True}
        answer = self.transport.api("POST", f"/upload/{_segment(session_id)}/commit", json=body)
        return _parse("POST /upload/{sessionId}/commit", True, _chapter, _data(answer.data))

    def abandon_session(self, session_id: str) -> None:
        """Abandon the session; one that is already gone (404) is fine."""
        self.transport.api("DELETE", f"/upload/{_segment(session_id)}", allow=(404,))

    def check_approval_required(self, manga: str, locale: str) -> bool:
        answer = self.transport.api("POST", "/upload/check-approval-required", json={"manga": manga, "locale": locale},
                                    idempotent=True)
        return _parse("POST /upload/check-approval-required", False, lambda d: _bool(d["requiresApproval"]),
                      answer.data)

    # --- chapters ---------------------------------------------------------------------------

    def find_chapters(self, manga: str, chapter: str | None, language: str, groups: Sequence[str]) -> list[Chapter]:
        """Chapters of `manga` numbered `chapter` (None: oneshots) in `language` by any of `groups`.

        Asks twice at once (API-NOTES.md): with every content rating and includeUnavailable=1, and the
        same with includeFuturePublishAt=1 for chapters scheduled for later; merged by id.
        """
        base = [("manga", manga), ("translatedLanguage[]", language), ("includeUnavailable", "1")]
        if chapter is not None:
            base.append(("chapter", chapter))
        base += [("groups[]", g) for g in groups] + [("contentRating[]", r) for r in limits.CONTENT_RATINGS]
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="mdupload-find") as pool:
            listings = list(pool.map(lambda extra: list(self._list_chapters(base + extra)),
                                     ([], [("includeFuturePublishAt", "1")])))
        found: dict[str, Chapter] = {}
        for item in (item for listing in listings for item in listing):
            if item.chapter == chapter:
                found.setdefault(item.id, item)
        return list(found.values())

    def _list_chapters(self, params: list[tuple[str, str]]) -> Iterator[Chapter]:
        offset = 0
        while offset + limits.LIST_PAGE_SIZE <= limits.LIST_WINDOW:
            page = [("limit", str(limits.LIST_PAGE_SIZE)), ("offset", str(offset))]
            answer = self.transport.api("GET", "/chapter", params=params + page)
            data, total = _parse("GET /chapter", False,
                                 lambda d: ([_chapter(c) for c in d["data"]], int(d.get("total") or 0)), answer.data)
            yield from data
            offset += len(data)
            if not data or offset >= total:
                return

    def get_chapter(self, chapter_id: str) -> Chapter:
        answer = self.transport.api("GET", f"/chapter/{_segment(chapter_id)}")
        return _parse("GET /chapter/{id}", False, _chapter, _data(answer.data))

    def update_chapter(self, chapter_id: str, version: int, fields: dict) -> Chapter:
        """PUT /chapter/{id}: change a published chapter's `fields` (volume, chapter, title, translatedLanguage,
        groups); `version` is its current one (a stale one is a Conflict, 409)."""
        answer = self.transport.api("PUT", f"/chapter/{_segment(chapter_id)}", json={**fields, "version": version})
        return _parse("PUT /chapter/{id}", True, _chapter, _data(answer.data))

    # --- the catalogue (public: no sign-in) ---------------------------------------------------

    def get_manga(self, manga_id: str) -> Title | None:
        """GET /manga/{id}: the manga and its title; None when MangaDex has no such manga (404)."""
        answer = self.transport.api("GET", f"/manga/{_segment(manga_id)}", authed=False, allow=(404,))
        if answer.status == 404:
            return None
        return _parse("GET /manga/{id}", False, _manga, _data(answer.data))

    def search_manga(self, title: str, limit: int = 10) -> list[Title]:
        """GET /manga?title=: the mangas whose title contains `title`, best matches first (every content rating)."""
        params = [("title", title), ("limit", str(limit)), ("order[relevance]", "desc")]
        params += [("contentRating[]", rating) for rating in limits.CONTENT_RATINGS]
        answer = self.transport.api("GET", "/manga", params=params, authed=False)
        return _parse("GET /manga", False, lambda d: [_manga(m) for m in d["data"]], answer.data)

    def get_group(self, group_id: str) -> Title | None:
        """GET /group/{id}: the scanlation group and its name; None when MangaDex has no such group (404)."""
        answer = self.transport.api("GET", f"/group/{_segment(group_id)}", authed=False, allow=(404,))
        if answer.status == 404:
            return None
        return _parse("GET /group/{id}", False, _group, _data(answer.data))

    def search_groups(self, name: str, limit: int = 10) -> list[Title]:
        """GET /group?name=: the scanlation groups whose name contains `name`."""
        params = [("name", name), ("limit", str(limit)), ("order[relevance]", "desc")]
        answer = self.transport.api("GET", "/group", params=params, authed=False)
        return _parse("GET /group", False, lambda d: [_group(g) for g in d["data"]], answer.data)

    def auth_check(self) -> dict:
        """GET /auth/check: `isAuthenticated`, `roles`, `permissions` of the current token."""
        answer = self.transport.api("GET", "/auth/check")
        return _parse("GET /auth/check", False, _object, answer.data)

    def at_home_server(self, chapter_id: str, *, force_port_443: bool = False) -> dict:
        """GET /at-home/server/{id} (no token): `baseUrl` and `chapter` {hash, data, dataSaver}."""
        params = [("forcePort443", "true")] if force_port_443 else None
        answer = self.transport.api("GET", f"/at-home/server/{_segment(chapter_id)}", params=params, authed=False)
        return _parse("GET /at-home/server/{id}", False, _at_home, answer.data)


# --- parsing -----------------------------------------------------------------------------------

def _parse(where: str, processed: bool, parse: Callable[[Any], Any], data: Any):
    """parse(data), turning a missing key or a wrong type into an error that names the call.

    `processed`: MangaDex answered a state-changing call with success, so the change happened
    even if the answer cannot be read: OutcomeUnknown lets the caller look it up.
    """
    try:
        return parse(data)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        missing = f"missing {exc}" if isinstance(exc, KeyError) else str(exc)
        if processed:
            raise OutcomeUnknown(f"MangaDex answered {where} with success, but the answer cannot be read "
                                 f"({missing}).") from None
        raise ApiError(f"MangaDex's answer to {where} is not what its API promises ({missing}).",
                       hint="Try again later; if it persists, report it.") from None


def _data(document: Any) -> Any:
    """The answer's `data`. It is taken before _parse runs, so a missing one must fail inside it: the stand-in
    raises KeyError('data') at the parser's first lookup (a traceback otherwise, or no OutcomeUnknown)."""
    return document["data"] if isinstance(document, dict) and "data" in document else _NoData()


class _NoData(dict):
    def __getitem__(self, key):
        raise KeyError("data")


def _fail(what: str):
    raise ValueError(what)


def _object(data: Any) -> dict:
    return data if isinstance(data, dict) and not isinstance(data, _NoData) else _fail("no 'data' object")


def _relationships(entity: dict) -> list:
    if not isinstance(entity, dict):  # also called before _parse: the parser then says what is wrong
        return []
    relationships = entity.get("relationships") or []
    return relationships if isinstance(relationships, list) else _fail("'relationships' is not a list")


def _related(entity: dict, kind: str) -> list[dict]:
    return [r for r in _relationships(entity) if isinstance(r, dict) and r.get("type") == kind]


def _upload_session(data: dict) -> UploadSession:
    attributes = _object(data["attributes"])
    mangas = _related(data, "manga")
    chapters = _related(data, "chapter")
    return UploadSession(
        id=_text(data["id"]),
        manga_id=_text(mangas[0]["id"]) if mangas else _fail("no manga among the relationships"),
        group_ids=tuple(_text(g["id"]) for g in _related(data, "scanlation_group")),
        files=tuple(_session_file(f) for f in _related(data, "upload_session_file")),
        is_committed=_bool(attributes.get("isCommitted", False)),
        version=int(attributes.get("version", 1)),
        created_at=_datetime(attributes["createdAt"]),
        updated_at=_datetime(attributes["updatedAt"]),
        chapter_id=_text(chapters[0]["id"]) if chapters else None,
    )


def _session_file(data: dict) -> SessionFile:
    attributes = _object(data["attributes"])
    return SessionFile(
        id=_text(data["id"]),
        original_file_name=_text(attributes["originalFileName"]),
        file_hash=_text(attributes.get("fileHash") or ""),
        file_size=int(attributes["fileSize"]),
        mime_type=_text(attributes.get("mimeType") or ""),
        source=_text(attributes.get("source") or "local"),
    )


def _chapter(data: dict) -> Chapter:
    attributes = _object(data["attributes"])
    mangas = _related(data, "manga")
    publish_at = attributes.get("publishAt")
    return Chapter(
        id=_text(data["id"]),
        manga_id=_text(mangas[0]["id"]) if mangas else None,
        chapter=_optional_text(attributes.get("chapter")),
        volume=_optional_text(attributes.get("volume")),
        title=_optional_text(attributes.get("title")),
        language=_text(attributes["translatedLanguage"]),
        group_ids=tuple(_text(g["id"]) for g in _related(data, "scanlation_group")),
        pages=int(attributes.get("pages") or 0),
        version=int(attributes.get("version") or 1),
        publish_at=_datetime(publish_at) if publish_at else None,
    )


def _manga(data: dict) -> Title:
    """A Manga entity; its title in English when it has one, else in the first language it is given in."""
    titles = _object(data["attributes"]["title"])
    title = titles.get("en") or next((t for t in titles.values() if isinstance(t, str) and t), None)
    return Title(_text(data["id"]).lower(), _text(title) if title else "(no title)")


def _group(data: dict) -> Title:
    return Title(_text(data["id"]).lower(), _text(data["attributes"]["name"]))


def _at_home(data: Any) -> dict:
    data = _object(data)
    _text(data["baseUrl"])
    chapter = _object(data["chapter"])
    _text(chapter["hash"])
    return data


def _text(value: Any) -> str:
    return value if isinstance(value, str) else _fail(f"expected a string, got {value!r}")


def _optional_text(value: Any) -> str | None:
    # MangaDex's own example shows "volume": 1; keep the number as the string it stands for.
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return _fail(f"expected a string or null, got {value!r}")


def _bool(value: Any) -> bool:
    return value if isinstance(value, bool) else _fail(f"expected true or false, got {value!r}")


def _datetime(value: Any) -> datetime:
    moment = datetime.fromisoformat(_text(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)  # MangaDex's times are UTC


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError as exc:
        raise PageError(f"cannot be read for uploading: {exc.strerror or exc}", path=path,
                        hint="Was it moved or deleted after the checks? Run the command again.") from None


def _open(path: Path):
    try:
        return open(path, "rb")
    except OSError as exc:
        raise PageError(f"cannot be read for uploading: {exc.strerror or exc}", path=path,
                        hint="Was it moved or deleted after the checks? Run the command again.") from None


def _segment(value: str) -> str:
    return quote(str(value), safe="")


class _Progress:
    """Turns the multipart body's bytes into the files' bytes, never counting a byte twice."""

    def __init__(self, file_bytes: int, on_bytes: Callable[[int], None] | None):
        self.file_bytes = file_bytes
        self.on_bytes = on_bytes
        self.reported = 0

    def callback(self, body_bytes: int):
        def update(monitor):
            if self.on_bytes is None or body_bytes <= 0:
                return
            done = min(self.file_bytes, monitor.bytes_read * self.file_bytes // body_bytes)
            if done > self.reported:
                step, self.reported = done - self.reported, done
                self.on_bytes(step)
        return update
