"""Reading committed chapters back through MangaDex@Home: `pull` (download) and `verify` (compare).

MangaDex@Home's rules (API-NOTES.md, "Reading a chapter back"), all kept in this module:

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
  base URL is asked for and the page tried again there; at most MAX_FAILING_NODES base URLs in a
  row that serve nothing are tried before the chapter is given up;
- a few pages download at a time (CONCURRENCY), each streamed to disk under a `.part` name and
  renamed once complete.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

import requests

from . import __version__
from .deadlines import MAX_IMAGE_BYTES, BoundedAdapter, DeadlineExceeded, Timeouts
from .errors import MdUploadError, UsageError
from .ledger import Ledger, PageRecord
from .mangadex.client import MangaDexClient
from .mangadex.errors import NotFound
from .manifest import ChapterSpec, Manifest

log = logging.getLogger("mdupload.athome")

REPORT_URL = "https://api.mangadex.network/report"
REPORT_URL_ENV = "MDUPLOAD_REPORT_URL"
OFFICIAL_HOST_MARK = "mangadex.org"  # images from a base URL containing this are not reported
CONCURRENCY = 3  # pages downloading at once
MAX_FAILING_NODES = 4  # base URLs in a row that serve no page before the chapter is given up
IMAGE_ATTEMPTS = 4  # tries of one page, each after the first on a fresh base URL
REPORT_DEADLINE_S = 10.0  # a report is told once and forgotten: never wait long for it
CHUNK_BYTES = 64 * 1024
POLL_FIRST_S = 1.0  # --wait: first pause between asks, doubled up to POLL_MAX_S
POLL_MAX_S = 15.0
PULL_RECORD = ".mdupload-pull.json"  # what `pull` wrote into a folder, so a rerun keeps it
USER_AGENT = f"mdupload/{__version__} (+https://github.com/mdupload/mdupload)"

_UUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_HASH_IN_NAME = re.compile(r"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])")
_SAFE_EXTENSION = re.compile(r"^\.[a-z0-9]{1,5}$")


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


class PullEvents:
    """What a download tells whoever shows progress; every method is optional."""

    def start(self, chapter_id: str, total: int, kept: int) -> None: ...
    def page_done(self, chapter_id: str, name: str, size: int) -> None: ...
    def notice(self, chapter_id: str, text: str) -> None: ...


@dataclass
class PullResult:
    chapter_id: str
    dest: Path
    files: list[Path]  # in reading order
    downloaded: int
    kept: int
    bytes: int  # downloaded now
    new_base_urls: int  # base URLs asked for after the first (a 403 or a failing node)
    data_saver: bool = False

    def to_json(self) -> dict:
        return {"chapter_id": self.chapter_id, "dest": str(self.dest), "pages": len(self.files),
                "downloaded": self.downloaded, "kept": self.kept, "bytes": self.bytes,
                "new_base_urls": self.new_base_urls, "data_saver": self.data_saver,
                "files": [f.name for f in self.files]}


def check_chapter_id(chapter_id: str) -> str:
    if not _UUID.fullmatch(chapter_id or ""):
        raise UsageError(f"{chapter_id!r} is not a MangaDex chapter id.",
                         hint="Copy the UUID from the chapter's URL: mangadex.org/chapter/<id>.")
    return chapter_id.lower()


def resolve_report_url(url: str | None = None, environ: Mapping[str, str] = os.environ) -> str:
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
                 environ: Mapping[str, str] = os.environ, concurrency: int = CONCURRENCY,
                 session: requests.Session | None = None, timeouts: Timeouts | None = None,
                 sleep: Callable[[float], None] = time.sleep, clock: Callable[[], float] = time.monotonic):
        self.client = client
        self.report_url = resolve_report_url(report_url, environ)
        self.concurrency = max(1, concurrency)
        self.images = session or image_session(self.concurrency)
        self.timeouts = timeouts or Timeouts.from_env()
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

    # --- downloading ---

    def download(self, chapter_id: str, dest: Path, *, data_saver: bool = False, node: Node | None = None,
                 events: PullEvents | None = None) -> PullResult:
        """Download the chapter's pages in order into `dest` as 001.png, 002.jpg... (names that sort).

        Resumable: pages a previous run completed (recorded in dest/.mdupload-pull.json, same file on
        MangaDex@Home, same size on disk) are kept. A file in `dest` that `pull` did not write is never
        overwritten.
        """
        events = events or PullEvents()
        dest = Path(dest)
        node = node or self.server(chapter_id)
        names = node.names(data_saver)
        if not names:
            raise NotReadableYet(
                f"chapter {chapter_id} has no pages on MangaDex@Home yet: MangaDex is still processing it "
                "(or it waits for staff approval).",
                hint="Try again in a few minutes, or wait for it with `mdupload verify MANIFEST --wait MINUTES`.")
        folder = _PullFolder(dest, chapter_id, "data-saver" if data_saver else "data")
        plan = folder.plan(names)
        todo = [(index, name, local) for index, (name, local) in enumerate(zip(names, plan.locals)) if index not in plan.kept]
        events.start(chapter_id, len(names), len(plan.kept))
        nodes = _Nodes(self, node, data_saver)
        downloaded, total_bytes = 0, 0
        failures: list[str] = []
        fatal: str | None = None
        stop = threading.Event()
        pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="athome")
        try:
            futures = {pool.submit(self._download_page, nodes, name, folder, local, stop): local
                       for _index, name, local in todo}
            for future in as_completed(futures):
                try:
                    size = future.result()
                except _PageFailed as failed:
                    failures.append(f"{futures[future]} ({failed})")
                    if failed.fatal:
                        fatal = fatal or str(failed)
                        stop.set()
                    continue
                if size is None:  # not started: the run was stopped
                    continue
                downloaded += 1
                total_bytes += size
                events.page_done(chapter_id, futures[future], size)
        finally:
            stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
        have = len(plan.kept) + downloaded
        if fatal:
            raise AtHomeError(f"{fatal} {have} of {len(names)} pages are in {dest}.",
                              hint="MangaDex@Home may be having trouble: try again later; the pages already "
                                   "downloaded are kept.")
        if failures:
            raise AtHomeError(
                f"chapter {chapter_id}: {len(failures)} of {len(names)} page(s) could not be downloaded from "
                f"MangaDex@Home: {'; '.join(sorted(failures)[:5])}{' ...' if len(failures) > 5 else ''}.",
                hint=f"Run the same command again: the {have} page(s) already in {dest} are kept.")
        return PullResult(chapter_id, dest, [dest / local for local in plan.locals], downloaded, len(plan.kept),
                          total_bytes, nodes.switches, data_saver)

    def _download_page(self, nodes: _Nodes, name: str, folder: _PullFolder, local: str,
                       stop: threading.Event) -> int | None:
        """One page: fetch, report, and on failure a new base URL; returns its size (None: not started)."""
        part = folder.path / (local + ".part")
        for attempt in range(1, IMAGE_ATTEMPTS + 1):
            if stop.is_set():
                return None
            generation, node = nodes.current()
            transfer, digest = self._fetch(node.url(name, nodes.data_saver), part)
            if node.reported:
                self._report(transfer)
            if transfer.success:
                nodes.served(generation)
                return folder.complete(local, name, part, transfer.bytes, digest)
            part.unlink(missing_ok=True)
            why = transfer.error or f"HTTP {transfer.status}"
            log.info("%s: %s from MangaDex@Home (attempt %d)", local, why, attempt)
            if attempt == IMAGE_ATTEMPTS:
                raise _PageFailed(f"{why}, {IMAGE_ATTEMPTS} attempts")
            try:
                nodes.replace(generation, why)
            except AtHomeError as exc:
                raise _PageFailed(str(exc.message), fatal=True) from None
        raise AssertionError("unreachable")

    def _fetch(self, url: str, part: Path) -> tuple[Transfer, str]:
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
                    with open(part, "wb") as out:
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

    def _report(self, transfer: Transfer) -> None:
        """Tell the network how the image went; whatever happens to the report is ignored."""
        try:
            with self.timeouts.deadline("the MangaDex@Home report", total_s=min(REPORT_DEADLINE_S,
                                                                                  self.timeouts.total_s)):
                self.images.post(self.report_url, json=transfer.report(), stream=True,  # its body is never read
                                 timeout=(self.timeouts.connect_s, REPORT_DEADLINE_S)).close()
        except requests.RequestException as exc:
            log.debug("the MangaDex@Home report failed (ignored): %s", type(exc).__name__)


class _PageFailed(Exception):
    def __init__(self, reason: str, fatal: bool = False):
        super().__init__(reason)
        self.fatal = fatal


class _Nodes:
    """The base URL a chapter is being read from, replaced when it fails; shared by the download threads."""

    def __init__(self, reader: AtHomeReader, node: Node, data_saver: bool):
        self.reader = reader
        self.data_saver = data_saver
        self._lock = threading.Lock()
        self._node = node
        self._generation = 0
        self._served = False  # the current base URL served at least one page
        self._failing_in_a_row = 0
        self.switches = 0

    def current(self) -> tuple[int, Node]:
        with self._lock:
            return self._generation, self._node

    def served(self, generation: int) -> None:
        with self._lock:
            if generation == self._generation:
                self._served = True
                self._failing_in_a_row = 0

    def replace(self, generation: int, why: str) -> None:
        """A page failed on base URL `generation`: ask for a new one (once, whichever thread comes first)."""
        with self._lock:  # the other downloads wait here for the new base URL
            if generation != self._generation:
                return  # already replaced since that page started
            if not self._served:
                self._failing_in_a_row += 1
            if self._failing_in_a_row >= MAX_FAILING_NODES:
                raise AtHomeError(
                    f"MangaDex@Home failed to serve chapter {self._node.chapter_id} from {self._failing_in_a_row} "
                    f"base URLs in a row (last: {why}).")
            fresh = self.reader.server(self._node.chapter_id)
            if fresh.hash != self._node.hash or fresh.names(self.data_saver) != self._node.names(self.data_saver):
                raise AtHomeError(f"chapter {self._node.chapter_id} changed on MangaDex while it was being read.",
                                  hint="Run the same command again to read its new version.")
            log.info("new MangaDex@Home base URL for chapter %s after: %s", self._node.chapter_id, why)
            self._node, self._served = fresh, False
            self._generation += 1
            self.switches += 1


class _PullFolder:
    """A folder `pull` writes into, with its record of the pages it completed (for resuming)."""

    @dataclass
    class Plan:
        locals: list[str]
        kept: set[int]

    def __init__(self, path: Path, chapter_id: str, mode: str):
        self.path = path
        self.chapter_id = chapter_id
        self.mode = mode
        self._lock = threading.Lock()
        self._files: dict[str, dict] = {}

    def plan(self, names: Sequence[str]) -> _PullFolder.Plan:
        """Local names for the server's files, which of them a previous run completed; clears the rest."""
        if self.path.exists() and not self.path.is_dir():
            raise UsageError(f"{self.path} is a file, not a folder.", hint="Give the folder to put the pages in.")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"cannot create the folder {self.path}: {exc.strerror or exc}.",
                             hint="Choose a folder you may write to.") from None
        record = self._read_record()
        if record and record.get("chapter") != self.chapter_id:
            raise UsageError(f"{self.path} holds the pages of another chapter ({record.get('chapter')}), pulled "
                             "earlier.", hint="Pull each chapter into a folder of its own.")
        recorded = record.get("files", {}) if record else {}
        width = max(3, len(str(len(names))))
        local_names = [f"{index:0{width}d}{_extension(name)}" for index, name in enumerate(names, 1)]
        wanted = set(local_names)
        foreign = [local for local in local_names
                   if local not in recorded and (self.path / local).exists()]
        if foreign:
            raise UsageError(f"{self.path} already holds {', '.join(foreign[:3])}{' ...' if len(foreign) > 3 else ''}, "
                             "which mdupload did not write.",
                             hint="Pull into an empty folder (or a folder an earlier pull of this chapter wrote).")
        kept: set[int] = set()
        for index, (name, local) in enumerate(zip(names, local_names)):
            entry = recorded.get(local)
            target = self.path / local
            if (isinstance(entry, dict) and entry.get("source") == name and target.is_file()
                    and target.stat().st_size == entry.get("size")):
                kept.add(index)
                self._files[local] = entry
            elif entry is not None:
                target.unlink(missing_ok=True)  # written by an earlier pull, but not this page (any more)
            (self.path / (local + ".part")).unlink(missing_ok=True)
        for local in set(recorded) - wanted:  # pages of an older version of the chapter, written by pull
            if _is_plain_name(local):
                (self.path / local).unlink(missing_ok=True)
        self._write_record()
        return _PullFolder.Plan(local_names, kept)

    def complete(self, local: str, source: str, part: Path, size: int, digest: str) -> int:
        """Move a downloaded page into place and record it."""
        try:
            os.replace(part, self.path / local)
        except OSError as exc:
            raise self._cannot_write(exc) from None
        with self._lock:
            self._files[local] = {"source": source, "size": size, "sha256": digest}
            self._write_record()
        return size

    def _cannot_write(self, exc: OSError) -> AtHomeError:
        return AtHomeError(f"cannot write into {self.path}: {exc.strerror or exc}.",
                           hint="Check that the folder is writable and the disk has room, then run the same command "
                                "again (complete pages are kept).")

    def _read_record(self) -> dict:
        try:
            record = json.loads((self.path / PULL_RECORD).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return record if isinstance(record, dict) else {}

    def _write_record(self) -> None:
        document = {"version": 1, "chapter": self.chapter_id, "mode": self.mode, "files": dict(sorted(self._files.items()))}
        temporary = self.path / (PULL_RECORD + ".tmp")
        try:
            temporary.write_text(json.dumps(document, indent=1), encoding="utf-8")
            os.replace(temporary, self.path / PULL_RECORD)
        except OSError as exc:
            raise self._cannot_write(exc) from None


def _names(value) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise AtHomeError("MangaDex@Home's answer lists pages that are not file names.",
                          hint="Try again later; if it persists, report it.")
    return tuple(value)


def _extension(server_name: str) -> str:
    """The page's extension from the server's file name (lowercase), when it is a plain one."""
    suffix = PurePosixPath(server_name).suffix.lower()
    return suffix if _SAFE_EXTENSION.fullmatch(suffix) else ".img"


def _is_plain_name(local: str) -> bool:
    return bool(re.fullmatch(r"[0-9]{3,}\.[a-z0-9]{1,5}", local))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        while chunk := file.read(1024 * 1024):
            digest.update(chunk)
    return digest.hexdigest()


# --- verify ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PageDifference:
    position: int  # 1-based, in reading order
    page: str | None  # the local page (as the user knows it), when there is one
    served: str | None  # MangaDex@Home's file name, when there is one
    problem: str

    def to_json(self) -> dict:
        return {"position": self.position, "page": self.page, "served": self.served, "problem": self.problem}


@dataclass
class ChapterCheck:
    """What `verify` found for one chapter of the manifest."""

    spec: ChapterSpec
    status: str  # verified | processing | differs | not-uploaded | not-found | failed
    chapter_id: str | None = None
    expected: int = 0  # pages uploaded (the ledger)
    served: int | None = None  # pages MangaDex@Home lists
    checked: str | None = None  # what was compared: "count", "names" (hashes in the file names), "pages" (downloaded)
    differences: list[PageDifference] = field(default_factory=list)
    error: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Verified, or still processing (not an error: MangaDex has not got to it yet)."""
        return self.status in ("verified", "processing")

    def to_json(self) -> dict:
        return {"chapter": self.spec.chapter, "volume": self.spec.volume, "language": self.spec.language,
                "status": self.status, "chapter_id": self.chapter_id, "pages": self.expected,
                "served": self.served, "checked": self.checked,
                "differences": [d.to_json() for d in self.differences], "error": self.error, "notes": self.notes}


# LocalPages(spec) -> {upload_name: (origin, sha256, width, height)} of the chapter's pages on disk now
LocalPages = Callable[[ChapterSpec], Mapping[str, tuple[str, str, int | None, int | None]]]


def verify_chapters(manifest: Manifest, specs: Sequence[ChapterSpec], ledger: Ledger, reader: AtHomeReader, *,
                    wait_s: float = 0.0, download: bool = False, workdir: Path | None = None,
                    local_pages: LocalPages | None = None, events: PullEvents | None = None,
                    on_wait: Callable[[int, float], None] | None = None) -> list[ChapterCheck]:
    """Check each committed chapter against what MangaDex@Home serves.

    Without `download`: the page count, and the order when MangaDex@Home's file names carry the
    uploaded pages' SHA-256 (they then also show a page that is not the uploaded one). With it: every
    `data` page is downloaded (into `workdir`) and compared with the local page: the same bytes, or
    else the same decoded dimensions (MangaDex may re-encode a page).
    """
    checks: dict[int, ChapterCheck] = {}
    committed: dict[int, tuple[str, list[PageRecord]]] = {}
    for index, spec in enumerate(specs):
        key = manifest.chapter_key(spec)
        record = ledger.chapter(key)
        if record is None or not record.chapter_id or record.state not in ("COMMITTED", "SKIPPED"):
            checks[index] = ChapterCheck(spec, "not-uploaded", error=(
                f"the ledger {ledger.path} records no published chapter for it: upload it first (or point --ledger "
                "at the ledger of the run that uploaded it)."))
            continue
        pages = ledger.pages(key)
        checks[index] = ChapterCheck(spec, "processing", chapter_id=record.chapter_id, expected=len(pages))
        committed[index] = (record.chapter_id, pages)
    found = reader.wait_until_readable([chapter_id for chapter_id, _pages in committed.values()], wait_s, on_wait)
    for index, (chapter_id, pages) in committed.items():
        check = checks[index]
        if chapter_id in found.missing:
            check.status, check.error = "not-found", str(found.missing[chapter_id])
            continue
        node = found.readable.get(chapter_id)
        if node is None:
            check.served = 0  # still processing
            continue
        try:
            _compare(check, pages, node, reader, download=download, workdir=workdir, local_pages=local_pages,
                     events=events, index=index)
        except AtHomeError as exc:
            check.status, check.error = "failed", str(exc)
    return [checks[index] for index in range(len(specs))]


def _compare(check: ChapterCheck, pages: list[PageRecord], node: Node, reader: AtHomeReader, *, download: bool,
             workdir: Path | None, local_pages: LocalPages | None, events: PullEvents | None, index: int) -> None:
    served = list(node.data)
    check.served = len(served)
    if not pages:
        check.notes.append("the ledger lists no pages for this chapter: only its presence was checked")
    if pages:
        for position in range(len(served) + 1, len(pages) + 1):
            check.differences.append(PageDifference(position, pages[position - 1].origin, None,
                                                    "uploaded, but not served by MangaDex@Home"))
        for position in range(len(pages) + 1, len(served) + 1):
            check.differences.append(PageDifference(position, None, served[position - 1],
                                                    "served by MangaDex@Home, but not uploaded"))
    if download:
        if workdir is None or local_pages is None:
            raise ValueError("download needs a workdir and local_pages")
        check.checked = "pages"
        result = reader.download(node.chapter_id, workdir / f"served-{index:03d}", node=node, events=events)
        local = local_pages(check.spec)
        for position, (page, path) in enumerate(zip(pages, result.files), 1):
            problem = _page_problem(page, path, local.get(page.upload_name))
            if problem:
                check.differences.append(PageDifference(position, page.origin, served[position - 1], problem))
    else:
        check.checked = _compare_names(check, pages, served)
    check.differences.sort(key=lambda d: d.position)
    check.status = "differs" if check.differences else "verified"


def _compare_names(check: ChapterCheck, pages: list[PageRecord], served: list[str]) -> str:
    """Compare the SHA-256 in MangaDex@Home's file names (when they carry one) with the uploaded pages'."""
    found = [_HASH_IN_NAME.search(name) for name in served]
    hashes = [m.group(0) if m else None for m in found]
    uploaded = {p.sha256.lower() for p in pages}
    if not pages or None in hashes or not uploaded & set(hashes):
        check.notes.append("MangaDex@Home's file names do not show the uploaded pages' hashes: only the page count "
                           "was checked (use --download to compare every page)")
        return "count"
    for position, (page, name, digest) in enumerate(zip(pages, served, hashes), 1):
        if digest == page.sha256.lower():
            continue
        if digest in uploaded:
            problem = "out of order: MangaDex@Home serves another uploaded page here"
        else:
            problem = "MangaDex@Home serves a file that is not the uploaded page"
        check.differences.append(PageDifference(position, page.origin, name, problem))
    return "names"


def _page_problem(page: PageRecord, served: Path, local: tuple[str, str, int | None, int | None] | None) -> str | None:
    """None when the served file matches the local page (same bytes, or else the same dimensions)."""
    digest = _sha256(served)
    reference = local[1] if local else page.sha256
    if digest == reference.lower():
        return None
    size = _dimensions(served)
    if local is None:
        return ("the served file is not the uploaded page, and the local page is no longer there to compare "
                "its dimensions")
    _origin, _sha, width, height = local
    if size is None:
        return "the served file is not an image that can be read"
    if width is None or height is None:
        return "the served file differs from the local page, whose dimensions cannot be read"
    if size == (width, height):
        return None  # MangaDex re-encoded it: same picture size
    return f"served {size[0]}x{size[1]} px, the local page is {width}x{height} px"


def _dimensions(path: Path) -> tuple[int, int] | None:
    from PIL import Image

    try:
        with Image.open(path) as image:
            return image.size
    except Exception:  # noqa: BLE001 - anything Pillow cannot read (or refuses as a bomb) is "not an image"
        return None


def local_pages_from_disk(workdir: Path) -> LocalPages:
    """The LocalPages of the manifest's chapters as they are on disk now, checked (and repaired as
    `--fix` would, so a repaired upload finds its repaired pages) into `workdir`."""
    from .archive import checked_report

    counter = iter(range(1_000_000))

    def pages(spec: ChapterSpec):
        report = checked_report(spec, Path(workdir) / f"local-{next(counter):03d}")
        return {r.page.upload_name: (r.page.origin, r.sha256, r.width, r.height) for r in report.pages}

    return pages
