"""The watched folder (`mdupload watch`): chapters dropped into an inbox are published once complete.

Each folder, .zip or .cbz directly in INBOX is an item. It is taken when its sizes and modification
times have not changed for `settle` seconds and, for an archive, when it opens cleanly: a half-copied
item is never uploaded. The one series whose `match` fits its name turns it into a one-chapter
manifest, `publish` uploads it, and the item moves to INBOX/done/ beside a JSON receipt, or to
INBOX/failed/ beside a `.error.txt` saying what to fix (moved back into INBOX, it is tried again).
The settled items of one series go out in chapter order (MangaDex's number order), not name order.

Only a problem in the item itself sends it to failed/. A problem outside it (MangaDex unreachable,
failing or rate-limiting after the client's retries, the ledger held by another run, someone else's
open session) leaves it in the inbox and pauses publishing: the watcher tries again after a delay
that doubles with each consecutive such problem (from `retry_first` up to `retry_max` seconds),
logging each retry, and goes back to chapter order once MangaDex answers.

watchdog events wake the watcher early; a scan at start and every `rescan_every` seconds finds what
the events missed. Restarting never uploads twice: an item published just before a crash, but not yet
moved, is published again, `publish` answers "skipped" with the chapter id (its ledger and MangaDex's
duplicate check), and the item moves to done/.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import signal
import stat
import sys
import threading
import time
import zipfile
import zlib
from collections.abc import Callable, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from natsort import natsorted, ns
from watchdog.events import FileSystemEventHandler
from watchdog.observers import Observer

from .errors import EXIT_FAILED, EXIT_OK, AuthError, MdUploadError, UsageError
from .interrupts import interrupted, resume_requests
from .manifest import Manifest
from .pages import ARCHIVE_SUFFIXES
from .redact import redact
from .release_names import strip_archive_suffix
from .selection import number_order
from .series import Series, load_all_series
from .upload import outside_the_chapter

DONE = "done"
FAILED = "failed"
LOCK_FILE = ".mdupload-watch.lock"
# A folder holding one of these is still being downloaded, however long it has been quiet.
IN_PROGRESS_SUFFIXES = (".part", ".partial", ".crdownload", ".download", ".tmp")
SETTLE_S = 30  # an item is taken once its sizes and times have not changed for this long
EVENT_GAP = 1.0  # seconds: a burst of watchdog events (an archive written in chunks) wakes the watcher once
RETRY_FIRST = 30.0  # seconds before the first retry after a problem outside the item; doubled each time
RETRY_MAX = 900.0  # ... up to this

_log = logging.getLogger("mdupload.watch")
Publish = Callable[[Manifest], dict]
DONE_STATUSES = ("uploaded", "corrected", "skipped")  # an item's chapter as a run left it: filed under done/


def _to_stderr(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


@dataclass(frozen=True)
class ItemResult:
    name: str
    series: Path
    status: str  # one of DONE_STATUSES | "failed" | "deferred" (left in the inbox: a problem outside it)
    chapter_id: str | None
    moved_to: Path | None  # None: the item disappeared from the inbox while it was being published
    error: str | None


@dataclass
class WatchSummary:
    results: list[ItemResult] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)  # left in the inbox: no series matches them
    ambiguous: list[str] = field(default_factory=list)  # left in the inbox: several series match them
    waiting: list[str] = field(default_factory=list)  # left for the next run: still settling, or not opening
    held: list[str] = field(default_factory=list)  # left in the inbox by a problem outside them (retried later)

    @property
    def failed(self) -> list[ItemResult]:
        return [result for result in self.results if result.status == "failed"]

    @property
    def exit_code(self) -> int:
        return EXIT_FAILED if self.failed or self.ambiguous or self.held else EXIT_OK

    def describe(self) -> str:
        counts = [
            (sum(r.status == "uploaded" for r in self.results), "published"),
            (sum(r.status == "corrected" for r in self.results), "corrected in place (moved to done/)"),
            (sum(r.status == "skipped" for r in self.results), "already on MangaDex (moved to done/)"),
            (len(self.failed), "failed (see failed/)"),
            (len(self.held), "left in the inbox by a problem outside them (tried again on the next run)"),
            (len(self.unmatched), "matched no series"),
            (len(self.ambiguous), "matched several series"),
            (len(self.waiting), "not complete yet (left for the next run)"),
        ]
        return ", ".join(f"{count} {what}" for count, what in counts if count) or "nothing to do"


@dataclass
class _Tracked:
    """What the watcher knows of an item while it settles."""

    signature: tuple | None  # None: it could not be read whole, or a download is in progress inside it
    since: float  # clock() when this signature was first seen
    checked: bool = False  # the archive was tested at this signature
    problem: str | None = None  # why the archive does not open cleanly


class Watcher:
    """Publishes the items of one inbox; `poll()` is one step, `run_once()` and `run_forever()` loop over it."""

    def __init__(self, inbox: Path, series: Sequence[Series], publish: Publish, *, settle: float = SETTLE_S,
                 rescan_every: float = 10.0, clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time, sleep: Callable[[float], object] = time.sleep,
                 log: Callable[[str], None] = _to_stderr, retry_first: float = RETRY_FIRST,
                 retry_max: float = RETRY_MAX):
        self.inbox = Path(inbox)
        self.series = list(series)
        self.publish = publish
        self.settle = settle
        self.rescan_every = rescan_every
        self._clock = clock
        self._wall_clock = wall_clock  # compared with file times: an item quiet for long is settled at first sight
        self._sleep = sleep
        self._log = log
        self._tracked: dict[str, _Tracked] = {}
        self._reported: dict[str, str] = {}  # item name -> what was said about it, so that it is said once
        self.retry_first = retry_first
        self.retry_max = retry_max
        self._outside_problems = 0  # consecutive problems outside the items: the retry delay doubles with each
        self._paused_until: float | None = None  # clock() before which nothing is published (a retry is due then)

    # --- the loops ----------------------------------------------------------------------------

    def run_once(self, stop: threading.Event | None = None) -> WatchSummary:
        """Publish what is in the inbox; items still settling are waited for up to `settle` seconds."""
        deadline = self._clock() + self.settle
        results = []
        while True:
            results += self.poll(stop)
            now = self._clock()
            due = self._due_times()
            if (stop is not None and stop.is_set()) or not due or now >= deadline:
                break
            self._sleep(max(0.0, min(min(due), deadline, now + self.rescan_every) - now))
        now = self._clock()
        held = [] if self._paused_until is None or now >= self._paused_until else \
            [name for name, tracked in self._tracked.items() if tracked.since + self.settle <= now]
        return WatchSummary(
            results=results,
            unmatched=[name for name, said in self._reported.items() if said == "unmatched"],
            ambiguous=[name for name, said in self._reported.items() if said == "ambiguous"],
            waiting=natsorted((name for name in self._tracked if name not in held), alg=ns.IGNORECASE),
            held=natsorted(held, alg=ns.IGNORECASE),
        )

    def run_forever(self, stop: threading.Event) -> None:
        """Watch until `stop` is set; the chapter being published when it is set is finished first."""
        wake = threading.Event()
        observer = Observer()
        observer.schedule(_Waker(wake), str(self.inbox), recursive=False)
        observer.start()
        try:
            while not stop.is_set():
                wake.clear()
                self.poll(stop)
                now = self._clock()
                timeout = max(0.0, min([self.rescan_every] + [due - now for due in self._due_times()]))
                stop.wait(min(timeout, EVENT_GAP))
                _wait_for_either(stop, wake, timeout - EVENT_GAP)
        finally:
            observer.stop()
            observer.join()

    def poll(self, stop: threading.Event | None = None) -> list[ItemResult]:
        """One look at the inbox: note what changed, then publish what has settled, each series in chapter order."""
        now = self._clock()
        try:
            entries = natsorted(os.scandir(self.inbox), key=lambda entry: entry.name, alg=ns.IGNORECASE)
        except OSError as exc:
            raise MdUploadError(f"cannot read the inbox {self.inbox}: {exc.strerror or exc}.",
                                hint="Check that it exists and that the watcher may read it.") from None
        ready, present = [], set()
        for entry in entries:
            if entry.name.startswith(".") or entry.name in (DONE, FAILED):
                continue
            present.add(entry.name)
            series = self._series_of(entry)
            if series is not None and self._settled(entry, now):
                ready.append((Path(entry.path), series, self._tracked[entry.name].signature))
        for gone in (set(self._tracked) | set(self._reported)) - present:
            self._tracked.pop(gone, None)
            self._reported.pop(gone, None)
        results = []
        if self._paused_until is not None and self._clock() < self._paused_until:
            return results  # a problem outside the items: wait for the retry
        ready.sort(key=lambda item: self.publish_order(item[0], item[1]))
        for path, series, signature in ready:
            if stop is not None and stop.is_set():
                break
            current = _snapshot(path)[0]
            if current == signature:
                results.append(self._process(path, series))
                if results[-1].status == "deferred":
                    break  # the items after it would meet the same problem: all wait for the retry
            else:  # changed while the items before it were published: it settles again from now
                self._tracked[path.name] = _Tracked(current, self._clock())
        return results

    def publish_order(self, path: Path, series: Series) -> tuple:
        """Series by series, each in chapter order (MangaDex's number order); an unreadable name last (by name)."""
        try:
            spec = series.manifest_for(path).chapters[0]
            number = (0, number_order(spec.chapter), number_order(spec.volume))
        except MdUploadError:
            number = (1,)
        return (self.series.index(series), number, path.name.casefold())

    def dry_run(self) -> tuple[list[str], list[str]]:
        """What a run would publish now, in order, with how each name is read; and the items that would fail."""
        lines, problems = [], []
        items = []
        for entry in natsorted(os.scandir(self.inbox), key=lambda entry: entry.name, alg=ns.IGNORECASE):
            if entry.name.startswith(".") or entry.name in (DONE, FAILED):
                continue
            series = self._series_of(entry)
            if series is not None:
                items.append((Path(entry.path), series))
        items.sort(key=lambda item: self.publish_order(*item))
        for path, series in items:
            try:
                spec = series.manifest_for(path).chapters[0]
            except MdUploadError as exc:
                problems.append(f"{path.name}: would go to {FAILED}/: {exc}")
                continue
            read = [f"chapter {spec.chapter}" if spec.chapter is not None else "oneshot"]
            read += [f"volume {spec.volume}"] if spec.volume is not None else []
            read += [f"title {spec.title!r}"] if spec.title is not None else []
            read += [f"language {spec.language}", f"groups {', '.join(spec.groups) or 'none'}"]
            lines.append(f"{len(lines) + 1}. {path.name}: {'; '.join(read)} ({series.path.name})")
        return lines, problems

    # --- which items, and when ----------------------------------------------------------------

    def _series_of(self, entry: os.DirEntry) -> Series | None:
        """The one series an item belongs to; anything else is reported once and left where it is."""
        name = entry.name
        if not (entry.is_dir() or (entry.is_file() and Path(name).suffix.lower() in ARCHIVE_SUFFIXES)):
            self._report(name, "ignored", f"{name}: not a folder, .zip or .cbz; left alone.")
            return None
        matching = [series for series in self.series if series.matches(name)]
        if len(matching) == 1:
            return matching[0]
        if matching:
            self._report(name, "ambiguous",
                         f"{name}: matches {len(matching)} series ({', '.join(str(s.path) for s in matching)}); "
                         "left in the inbox. Make their `match` texts tell them apart, then restart the watcher.")
        else:
            texts = ", ".join(repr(text) for series in self.series for text in series.match)
            self._report(name, "unmatched", f"{name}: matches no series (the `match` texts are {texts}); "
                                            "left in the inbox.")
        return None

    def _settled(self, entry: os.DirEntry, now: float) -> bool:
        name, path = entry.name, Path(entry.path)
        signature, newest = _snapshot(path)
        tracked = self._tracked.get(name)
        if tracked is None or signature is None or tracked.signature != signature:
            quiet = signature is not None and self._wall_clock() - newest >= self.settle
            tracked = self._tracked[name] = _Tracked(signature, now - self.settle if quiet else now)
        if signature is None or now - tracked.since < self.settle:
            return False
        if path.suffix.lower() in ARCHIVE_SUFFIXES and not entry.is_dir():
            if not tracked.checked:
                tracked.problem, tracked.checked = _archive_problem(path), True
            if tracked.problem:
                self._report(name, "damaged",
                             f"{name}: not taken: the archive does not open cleanly ({tracked.problem}). If it is "
                             "still being copied it is taken once complete; if not, pack it again.")
                return False
        return True

    def _due_times(self) -> list[float]:
        """When each item still settling may be taken (archives that do not open wait for a change instead),
        and when publishing resumes after a problem outside the items."""
        due = [tracked.since + self.settle for tracked in self._tracked.values() if tracked.problem is None]
        if self._paused_until is not None and self._tracked:
            due = [max(when, self._paused_until) for when in due]
        return due

    def _report(self, name: str, what: str, text: str) -> None:
        if self._reported.get(name) != what:
            self._reported[name] = what
            self._log(text)

    # --- publishing one item ------------------------------------------------------------------

    def _process(self, path: Path, series: Series) -> ItemResult:
        name = path.name
        tracked = self._tracked.pop(name, None)
        self._reported.pop(name, None)
        manifest = None
        try:
            manifest = series.manifest_for(path)
            self._log(f"{name}: publishing {manifest.chapters[0].label} ({series.path})")
            document = self.publish(manifest)
        except AuthError:
            raise
        except MdUploadError as exc:
            if outside_the_chapter(exc):
                return self._deferred(path, series, tracked, str(exc))
            return self._failed(path, series, manifest, str(exc))
        except Exception as exc:  # a bug must not stop an unattended watcher: the item is set aside, with the reason
            _log.debug("publishing %s failed", path, exc_info=True)
            return self._failed(path, series, manifest, redact(f"unexpected error ({type(exc).__name__}): {exc}"))
        chapters = document.get("chapters") or []
        if document.get("ok") and len(chapters) == 1 and chapters[0].get("status") in DONE_STATUSES:
            self._outside_problems, self._paused_until = 0, None
            return self._done(path, series, manifest, chapters[0])
        if chapters and all(chapter.get("retry_later") for chapter in chapters):
            return self._deferred(path, series, tracked, _describe(document))
        return self._failed(path, series, manifest, _describe(document))

    def _deferred(self, path: Path, series: Series, tracked: _Tracked | None, reason: str) -> ItemResult:
        """A problem outside the item: it stays in the inbox, and publishing pauses for a growing delay."""
        if tracked is not None:
            self._tracked[path.name] = tracked  # still settled: taken again as soon as the pause ends
        self._outside_problems += 1
        delay = min(self.retry_max, self.retry_first * 2 ** (self._outside_problems - 1))
        self._paused_until = self._clock() + delay
        self._log(f"{path.name}: not published ({reason.splitlines()[0]}); this is not a problem of the item, so it "
                  f"stays in the inbox; retry {self._outside_problems} in {delay:g} s.")
        return ItemResult(path.name, series.path, "deferred", None, None, reason)

    def _done(self, path: Path, series: Series, manifest: Manifest, chapter: dict) -> ItemResult:
        status, chapter_id = chapter["status"], chapter.get("chapter_id")
        receipt = {
            "item": path.name, "series": str(series.path), "manga": manifest.manga,
            "chapter": chapter.get("chapter"), "volume": chapter.get("volume"), "language": chapter.get("language"),
            "status": status, "chapter_id": chapter_id, "pages": chapter.get("pages"), "time": self._now(),
        }
        # a published chapter that differed from the item: what was corrected in place, or left as it is
        receipt.update({name: chapter[name] for name in ("corrected", "changed") if chapter.get(name)})
        moved = self._move(path, DONE, ".json", json.dumps(receipt, indent=2, ensure_ascii=False) + "\n")
        corrected = ", ".join(chapter.get("corrected", []))
        what = {"uploaded": "published", "corrected": f"corrected in place ({corrected})"}.get(status,
                                                                                             "already on MangaDex")
        where = f"moved to {DONE}/{moved.name}" if moved else "it had left the inbox"
        self._log(f"{path.name}: {what} as chapter {chapter_id} ({chapter.get('pages')} pages); {where}.")
        return ItemResult(path.name, series.path, status, chapter_id, moved, None)

    def _failed(self, path: Path, series: Series, manifest: Manifest | None, reason: str) -> ItemResult:
        lines = [f"mdupload could not publish {path.name!r}.", "", f"Series:  {series.path}"]
        if manifest is not None:
            lines.append(f"Chapter: {manifest.chapters[0].label}")
        lines += [f"Time:    {self._now()}", "", "What went wrong:"]
        lines += [f"  {line}" for line in reason.splitlines()]
        lines += ["", f"What to do: fix what is described above (in the item, or in {series.path.name}), then move "
                      f"the item back into {self.inbox}: it will be tried again."]
        moved = self._move(path, FAILED, ".error.txt", "\n".join(lines) + "\n")
        where = f"moved to {FAILED}/{moved.name}, the reason in {FAILED}/{moved.name}.error.txt" if moved \
            else "it had left the inbox"
        self._log(f"{path.name}: failed ({reason.splitlines()[0]}); {where}.")
        return ItemResult(path.name, series.path, "failed", None, moved, reason)

    def _move(self, path: Path, folder_name: str, note_suffix: str, note: str) -> Path | None:
        """Move the item into INBOX/<folder_name>/ under a free name and write the note beside it."""
        folder = self.inbox / folder_name
        try:
            folder.mkdir(exist_ok=True)
            target = _free_name(folder, path.name, note_suffix)
            os.rename(path, target)
        except OSError as exc:
            if not os.path.lexists(path):
                return None  # someone took the item away while it was being published
            raise _cannot_write(f"move {path.name} into {folder}", exc) from None
        try:
            with open(f"{target}{note_suffix}", "x", encoding="utf-8") as handle:  # "x": never overwrite
                handle.write(note)
        except OSError as exc:
            raise _cannot_write(f"write {target}{note_suffix}", exc) from None
        return target

    def _now(self) -> str:
        return datetime.fromtimestamp(self._wall_clock(), UTC).isoformat(timespec="seconds")


def _snapshot(path: Path) -> tuple[tuple | None, float]:
    """What changes while an item is written: each entry's path, size, mtime and ctime, and the newest of
    those times; (None, 0) when it cannot be read whole or a download is in progress inside it."""
    def refuse(error: OSError):
        raise error

    try:
        info = path.stat()
        entries = [("", info.st_size, info.st_mtime_ns, info.st_ctime_ns)]
        if stat.S_ISDIR(info.st_mode):
            for folder, folders, files in os.walk(path, onerror=refuse):
                for name in folders + files:
                    if name.lower().endswith(IN_PROGRESS_SUFFIXES):
                        return None, 0.0
                    child = os.lstat(os.path.join(folder, name))
                    rel = os.path.relpath(os.path.join(folder, name), path)
                    entries.append((rel, child.st_size, child.st_mtime_ns, child.st_ctime_ns))
    except OSError:
        return None, 0.0
    newest = max(max(mtime, ctime) for _rel, _size, mtime, ctime in entries) / 1e9
    return tuple(sorted(entries)), newest


def _archive_problem(path: Path) -> str | None:
    """Why the archive does not open cleanly (truncated, damaged), or None."""
    try:
        with zipfile.ZipFile(path) as archive:
            damaged = archive.testzip()
    except (RuntimeError, NotImplementedError):
        return None  # complete, but encrypted or oddly compressed: the checks say what is wrong with it
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
        return str(exc) or type(exc).__name__
    return f"the member {damaged} is damaged" if damaged else None


def _free_name(folder: Path, name: str, note_suffix: str) -> Path:
    """`name`, or `name (2)`, `name (3)`...: the first that neither the item nor its note would overwrite."""
    stem = strip_archive_suffix(name)
    suffix = name[len(stem):]
    candidate, number = folder / name, 1
    while os.path.lexists(candidate) or os.path.lexists(f"{candidate}{note_suffix}"):
        number += 1
        candidate = folder / f"{stem} ({number}){suffix}"
    return candidate


def _cannot_write(what: str, exc: OSError) -> MdUploadError:
    return MdUploadError(f"cannot {what}: {exc.strerror or exc}.",
                         hint="The watcher must be able to write in the inbox and in its done/ and failed/ folders.")


def _describe(document: dict) -> str:
    """What `publish`'s result document says went wrong, one line per problem."""
    lines = [str(document["error"])] if document.get("error") else []
    fixable = False
    for chapter in document.get("chapters") or []:
        number = chapter.get("chapter")
        label = f"chapter {number}" if number is not None else "oneshot"
        if chapter.get("error"):
            lines.append(f"{label}: {chapter['error']}")
        for origin, why in (chapter.get("failed_pages") or {}).items():
            lines.append(f"  {origin}: {why}")
        for problem in chapter.get("problems") or []:
            if problem.get("severity") == "warning":
                continue
            fixable = fixable or problem.get("severity") == "fixable"
            fix = f" ({problem['severity']}: {problem['fix']})" if problem.get("fix") else ""
            lines.append(f"  {problem.get('file')}: {problem.get('message')}{fix}")
    if fixable:
        lines.append("Fixable problems are repaired before uploading when the series file says `fix: true`.")
    return "\n".join(lines) or f"publishing failed without saying why: {json.dumps(document)[:500]}"


class _Waker(FileSystemEventHandler):
    """Any change in the inbox wakes the watcher (reads by the watcher itself do not)."""

    def __init__(self, wake: threading.Event):
        self.wake = wake

    def on_any_event(self, event) -> None:
        if event.event_type not in ("opened", "closed_no_write"):
            self.wake.set()


def _wait_for_either(stop: threading.Event, wake: threading.Event, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not (stop.is_set() or wake.is_set()):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return
        stop.wait(min(remaining, 0.25))


@contextmanager
def stop_on_signals(stop: threading.Event, log: Callable[[str], None] = _to_stderr):
    """SIGINT and SIGTERM set `stop` and cut the requests in flight (interrupts.interrupted): an idle watcher
    returns, a chapter being published stops where it is (the interrupt reaches the command: exit 130) and
    resumes on the next run. A second signal interrupts at once (KeyboardInterrupt)."""
    def handle(signum, _frame):
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()
        interrupted()
        log(f"{signal.Signals(signum).name}: stopping now; a chapter being published stops where it is and resumes "
            "on the next run.")

    previous = {signum: signal.signal(signum, handle) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        resume_requests()


def _lock(inbox: Path):
    """The inbox's lock file, held by this process alone; (None, pid of the holder) when another watcher has it."""
    try:
        handle = open(inbox / LOCK_FILE, "a+", encoding="ascii")
    except OSError as exc:
        raise UsageError(f"cannot write in the inbox {inbox}: {exc.strerror or exc}.",
                         hint="The watcher moves items into done/ and failed/ inside it: give it write access."
                         ) from None
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        return None, holder
    handle.truncate(0)
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle, None


def run_watch(inbox, series_paths: Sequence, *, publish: Publish, settle: float = SETTLE_S, once: bool = False,
              rescan_every: float = 10.0, log: Callable[[str], None] = _to_stderr, retry_first: float = RETRY_FIRST,
              retry_max: float = RETRY_MAX, dry_run: bool = False) -> int:
    """`mdupload watch`: returns the exit code; raises MdUploadError (AuthError stops it with exit code 3).

    With `dry_run`, list what would be published, in order, with how each name is read; exit 1 when an
    item would go to failed/.

    With `once`, publish what is there and return 1 if an item failed (or matches several series), else 0.
    Without, watch until SIGINT or SIGTERM and return 0 (a chapter being published is cut: KeyboardInterrupt).
    """
    inbox = Path(inbox)
    if not inbox.is_dir():
        raise UsageError(f"the inbox {inbox} is not a folder.",
                         hint="Create it, or pass the folder that chapters are dropped in.")
    series = load_all_series(series_paths)
    if dry_run:  # nothing is published, moved or locked
        lines, problems = Watcher(inbox, series, publish, settle=settle, log=log).dry_run()
        for line in lines + problems or [f"{inbox}: nothing to publish."]:
            log(line)
        return EXIT_FAILED if problems else EXIT_OK
    handle, holder = _lock(inbox)
    if handle is None:
        message = f"another `mdupload watch` (pid {holder}) is processing {inbox}"
        if once:
            log(f"{message}; nothing to do for this run.")
            return EXIT_OK
        raise UsageError(f"{message}.", hint="Stop it first, or watch another folder.")
    with handle, stop_on_signals(threading.Event(), log) as stop:
        watcher = Watcher(inbox, series, publish, settle=settle, rescan_every=rescan_every, sleep=stop.wait, log=log,
                          retry_first=retry_first, retry_max=retry_max)
        log(f"watching {inbox} for {len(series)} series (taken once unchanged for {settle:g} s)")
        if once:
            summary = watcher.run_once(stop)
            log(f"{inbox}: {summary.describe()}.")
            return summary.exit_code
        watcher.run_forever(stop)
        log(f"stopped watching {inbox}.")
        return EXIT_OK
