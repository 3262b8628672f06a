"""What people and CI see: progress on stderr, reports, and the one JSON result document on stdout.

Everything for people goes to stderr; stdout carries only the `--json` document. On a terminal the
upload shows one rich progress bar per chapter (bytes and pages, speed, time left); elsewhere
(a CI log, a pipe) it prints plain lines (progress at each tenth of the pages, with speed and time
left); either way a line per finished chapter; with `--quiet` only errors.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from .accounts.store import AccountStore, StoredAccount
from .manifest import in_utc_and_local
from .publish import Publication
from .pull import PullEvents
from .status import ChapterStatus
from .upload import ChapterPlan, ChapterResult, UploadEvents
from .verify import ChapterCheck
from .vocabulary import State, Status, format_bytes

JSON_VERSION = 1


@dataclass
class _Shown:
    """One chapter's upload as shown: the bar (on a terminal), what was sent, what was last said."""

    plan: ChapterPlan
    task: TaskID | None
    started: float
    first_byte: float | None = None
    sent: int = 0
    pages: int = 0
    said_tenths: int = 0  # plain lines: the last tenth of the pages announced


class Reporter(UploadEvents):
    """Shows a run to people. One instance per command; thread-safe (batches report from threads).

    On a terminal: one rich progress bar per chapter (bytes and pages, speed, time left). Elsewhere:
    plain lines, a progress line each time another tenth of the pages is uploaded. Either way one
    line per finished chapter. With `quiet`, only errors.
    """

    def __init__(self, *, quiet: bool = False, stream=None, force_plain: bool | None = None,
                 clock=time.monotonic):
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.console = Console(file=self.stream, highlight=False, soft_wrap=True)
        self.fancy = not quiet and (self.console.is_terminal if force_plain is None else not force_plain)
        self._clock = clock
        self._lock = threading.RLock()
        self._progress: Progress | None = None
        self._chapters: dict[tuple, _Shown] = {}

    # --- plain lines ---------------------------------------------------------------------------

    def info(self, text: str) -> None:
        if not self.quiet:
            self._print(text)

    def warn(self, text: str) -> None:
        if not self.quiet:
            self._print(f"warning: {text}")

    def error(self, text: str) -> None:
        self._print(f"error: {text}")

    def _print(self, text: str) -> None:
        with self._lock:
            if self._progress is not None:
                self._progress.console.print(text, markup=False, highlight=False)
            else:
                print(text, file=self.stream, flush=True)

    # --- progress of an upload -----------------------------------------------------------------

    def start_chapter(self, plan: ChapterPlan) -> None:
        with self._lock:
            task = None
            if self.fancy:
                if self._progress is None:
                    self._progress = Progress(
                        TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                        TextColumn("{task.fields[pages]}"), TransferSpeedColumn(), TimeRemainingColumn(),
                        console=self.console, transient=False)
                    self._progress.start()
                task = self._progress.add_task(plan.label, total=plan.total_bytes,
                                               pages=f"{0}/{len(plan.pages)} pages")
            self._chapters[plan.key] = _Shown(plan, task, self._clock())
        if not self.fancy:
            self.info(f"{plan.label}: {len(plan.pages)} pages, {format_bytes(plan.total_bytes)}")

    def finish_chapter(self, result: ChapterResult) -> None:
        plan = result.plan
        with self._lock:
            shown = self._chapters.pop(plan.key, None)
            if shown is not None and shown.task is not None and self._progress is not None:
                self._progress.update(shown.task, visible=False)
                if not any(c.task is not None for c in self._chapters.values()):
                    self._progress.stop()
                    self._progress = None
        if result.status == Status.FAILED:
            self.error(f"{plan.label}: failed: {result.error}")
            for origin, why in result.failed_pages.items():
                self.error(f"  {origin}: {why}")
            return
        where = f" as chapter {result.chapter_id}" if result.chapter_id else ""
        took = ""
        if shown is not None and shown.sent:
            seconds = max(self._clock() - shown.started, 1e-9)
            took = f", {format_bytes(shown.sent)} sent in {seconds:.1f} s ({format_bytes(shown.sent / seconds)}/s)"
        what = (f"corrected in place ({', '.join(result.changed)})" if result.status == Status.CORRECTED
                else result.status)
        self.info(f"{plan.label}: {what}{where} ({len(plan.pages)} pages{took})")

    def state(self, plan: ChapterPlan, state: str, detail: str | None) -> None:
        # Plain lines for the steps between the progress lines; the finished line says COMMITTED, and a
        # step recorded again with a detail (BEGINNING: "session begun") adds nothing to read.
        said = {"BEGINNING": "beginning an upload session", "RESUMING": "resuming", "COMMITTING": "committing"}
        if state == "UPLOADING":
            with self._lock:
                shown = self._chapters.get(plan.key)
                if shown is not None and shown.first_byte is None:
                    shown.first_byte = self._clock()  # the speed counts from the first batch sent
        if not self.fancy and state in said and detail is None:
            self.info(f"{plan.label}: {said[state]}")

    def notice(self, plan: ChapterPlan, text: str) -> None:
        self.info(f"{plan.label}: {text}")

    def bytes_sent(self, plan: ChapterPlan, count: int) -> None:
        with self._lock:
            shown = self._chapters.get(plan.key)
            if shown is None:
                return
            step = max(0, min(count, plan.total_bytes - shown.sent))  # a page sent again is not counted twice
            shown.sent += step
            if shown.task is not None and self._progress is not None and step:
                self._progress.advance(shown.task, step)

    def pages_done(self, plan: ChapterPlan, count: int) -> None:
        with self._lock:
            shown = self._chapters.get(plan.key)
            if shown is None:
                return
            shown.pages = min(len(plan.pages), shown.pages + count)
            if shown.task is not None and self._progress is not None:
                self._progress.update(shown.task, pages=f"{shown.pages}/{len(plan.pages)} pages")
                return
            tenths = shown.pages * 10 // max(1, len(plan.pages))
            if tenths <= shown.said_tenths:
                return
            shown.said_tenths = tenths
            line = f"{plan.label}: {shown.pages}/{len(plan.pages)} pages, {format_bytes(shown.sent)} of " \
                   f"{format_bytes(plan.total_bytes)}"
            elapsed = self._clock() - shown.first_byte if shown.first_byte is not None else 0.0
            if elapsed > 0 and shown.sent:
                speed = shown.sent / elapsed
                left = max(0, plan.total_bytes - shown.sent) / speed
                line += f", {format_bytes(speed)}/s" + (f", about {_duration(left)} left" if left >= 1 else "")
        self.info(line)


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def print_json(document: dict[str, Any]) -> None:
    """The one JSON document of a command, on stdout."""
    document = {"version": JSON_VERSION, **document}
    sys.stdout.write(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def chapter_result_json(result: ChapterResult) -> dict[str, Any]:
    draft = result.plan.draft
    return {
        "chapter": draft["chapter"],
        "volume": draft["volume"],
        "title": draft["title"],
        "language": result.plan.language,
        "status": result.status,
        "chapter_id": result.chapter_id,
        "pages": len(result.plan.pages),
        "error": result.error,
        "failed_pages": result.failed_pages,
        "notices": result.notices,
        # what differed from the chapter as published: "corrected" (status corrected), else "changed" (left as it is)
        "corrected": result.changed if result.status == Status.CORRECTED else [],
        "changed": result.changed if result.status != Status.CORRECTED else [],
        "retry_later": result.retry_later,
        "timings": result.timings.to_json(),
    }


# --- validate and upload: the checks ---------------------------------------------------------------

def show_report(reporter: Reporter, report) -> None:
    """A chapter's checks (and --fix's repairs), as `validate` prints them."""
    for fixed in report.fixes:
        if fixed.done:
            made = ", ".join(page.upload_name for page in fixed.pages)
            reporter.info(f"  fixed {fixed.source.origin}: {'; '.join(fixed.done)} -> {made}")
    spec = report.spec
    verdict = "ok" if report.ok else "cannot be uploaded as it is"
    reporter.info(f"{spec.label}: {len(report.pages)} pages, {format_bytes(report.total_bytes)}, "
                  f"largest side {report.largest_side or 0} px: {verdict}")
    if spec.publish_at is not None:
        reporter.info(f"  scheduled for {in_utc_and_local(spec.publish_at)}")
    for warning in report.warnings:
        reporter.warn(f"  {warning}")
    for problem in report.problems:
        _show_problem(reporter, None, problem)  # chapter-level messages name the source themselves
    for page in report.pages:
        for problem in page.problems:
            _show_problem(reporter, page.page.origin, problem)


def _show_problem(reporter: Reporter, where, problem) -> None:
    text = f"  {where + ': ' if where else ''}{problem.message}" + (f" ({problem.severity}: {problem.fix})" if problem.fix else "")
    if problem.severity == "warning":
        reporter.warn(text)
    else:
        reporter.info(text)


# --- upload (and watch): publishing a manifest --------------------------------------------------------

def show_publication(reporter: Reporter, publication: Publication, command: str = "upload") -> None:
    """What people read after the progress lines: failed checks, repairs, chapters set aside, a dry run's
    plan, the run's summary and links, a sign-out. `command` is the one running (its hints name its options)."""
    outcome = publication.outcome
    if not outcome.checks_passed:
        for report in outcome.reports:
            if not report.ok:
                show_report(reporter, report)
        bad = sum(1 for r in outcome.reports if not r.ok)
        if command == "upload":
            reporter.error(f"{bad} chapter(s) cannot be uploaded as they are; nothing was uploaded. Fix them, or "
                           "publish the others with --skip-invalid (or pick chapters with --chapter / --exclude).")
        else:
            reporter.error(f"{bad} chapter(s) cannot be uploaded as they are; nothing was uploaded.")
        return
    for report in outcome.reports:
        for fixed in report.fixes:
            if fixed.done:
                reporter.info(f"{report.spec.label}: fixed {fixed.source.origin}: {'; '.join(fixed.done)}")
    for report in outcome.set_aside:
        show_report(reporter, report)
    if outcome.set_aside:
        reporter.error(f"{len(outcome.set_aside)} chapter(s) cannot be uploaded as they are and were set aside "
                       f"(--skip-invalid): {', '.join(r.spec.label for r in outcome.set_aside)}.")
    if publication.dry_run:
        for plan in outcome.plans:
            reporter.info(f"would upload {plan.label} to manga {plan.manga} with groups {list(plan.groups) or 'none'}: "
                          f"{len(plan.pages)} pages, {format_bytes(plan.total_bytes)}, chapterDraft {plan.draft}")
            for page in plan.pages:
                reporter.info(f"  {page.upload_name} ({page.mime}, {page.size} bytes) from {page.origin}")
        return
    summary = publication.summary
    if summary.chapters > 1:
        reporter.info(summary.line())
    for line in summary.link_lines():
        reporter.info(line)
    if outcome.signed_out is not None:
        reporter.error(str(outcome.signed_out))


def publication_json(publication: Publication) -> dict[str, Any]:
    """The `--json` document of `upload` (and the receipt of a `watch` item)."""
    outcome = publication.outcome
    if not outcome.checks_passed:
        return {"ok": False, "error": "checks failed", "chapters": [_unchecked_json(r) for r in outcome.reports]}
    set_aside = [_unchecked_json(r, Status.INVALID) for r in outcome.set_aside]
    if publication.dry_run:
        return {"ok": publication.ok, "dry_run": True,
                "chapters": [_dry_run_json(p) for p in outcome.plans] + set_aside}
    summary = publication.summary
    chapters = [dict(chapter_result_json(r), url=summary.link(r)) for r in outcome.results]
    document: dict[str, Any] = {"ok": publication.ok, "chapters": chapters + set_aside, "summary": summary.to_json(),
                                "timings": {name: round(seconds, 3) for name, seconds in outcome.timings.items()}}
    if outcome.signed_out is not None:
        document.update(error=str(outcome.signed_out), signed_out=True)
    if publication.archived is not None:
        document["archive"] = publication.archived.to_json()
    return document


def _unchecked_json(report, status: Status = Status.FAILED) -> dict:
    document = report.to_json()
    document["status"] = status if not report.ok else Status.NOT_UPLOADED
    return document


def _dry_run_json(plan: ChapterPlan) -> dict:
    return {"chapter": plan.draft["chapter"], "volume": plan.draft["volume"], "language": plan.language,
            "status": Status.DRY_RUN, "chapter_draft": plan.draft,
            "pages": [{"name": p.upload_name, "mime": p.mime, "size": p.size, "sha256": p.sha256} for p in plan.pages]}


# --- status ------------------------------------------------------------------------------------------

def status_line(label: str, status: ChapterStatus) -> str:
    """One chapter's line of `mdupload status`."""
    line = f"{label}: {status.state}"
    kept = (f"{status.pages_uploaded}/{status.pages} pages uploaded, session {status.session_id}"
            if status.session_id else f"{status.pages} pages")
    if status.state == "committed":
        how = "uploaded" if status.last_state == State.COMMITTED else "recorded"
        line += f" as chapter {status.chapter_id} ({how} {status.committed_at}"
        if status.corrected:
            line += f"; corrected in place {status.corrected_at}: {', '.join(status.corrected)}"
        line += ")"
        if status.published_as:
            line += (f"; published with {status.published_as}, not as the manifest says: run `mdupload upload "
                     "--replace` to correct it in place, or --force-new to publish it as another release")
        if status.archive_id:
            line += f"; archived in LANraragi as {status.archive_id}"
    elif status.state == "in progress":
        line += (f" ({status.last_state.lower()}, {kept}; "
                 + ("an upload is running now)" if status.running else
                    "interrupted: run `mdupload upload` again to resume)"))
    elif status.state == "failed":
        line += f": {status.error}" + (f" ({kept}; run `mdupload upload` again to resume)"
                                       if status.session_id else "")
    return line


# --- verify and pull ------------------------------------------------------------------------------

class WaitNotice:
    """Says that verify is waiting, once, and again when fewer chapters are left to wait for."""

    def __init__(self, reporter: Reporter):
        self.reporter = reporter
        self.pending: int | None = None

    def __call__(self, pending: int, pause: float) -> None:
        if pending != self.pending:
            self.reporter.info(f"waiting for MangaDex to process {pending} chapter(s)...")
            self.pending = pending


def show_check(reporter: Reporter, check: ChapterCheck) -> None:
    """One chapter's `verify` verdict."""
    label = check.spec.label
    if check.status == "verified":
        how = {"pages": "every page downloaded and matches", "names": "in the uploaded order",
               "count": "the page count matches"}.get(check.checked, "")
        reporter.info(f"{label}: verified: {check.served} pages served, {how} (chapter {check.chapter_id})")
    elif check.status == "processing":
        reporter.info(f"{label}: still processing on MangaDex (no pages served yet; chapter {check.chapter_id})")
    elif check.status == "differs":
        reporter.error(f"{label}: differs from what was uploaded ({len(check.differences)} page(s); "
                       f"{check.served} served, {check.expected} uploaded; chapter {check.chapter_id})")
        for difference in check.differences:
            what = difference.page or difference.served
            reporter.error(f"  page {difference.position} ({what}): {difference.problem}")
    else:
        reporter.error(f"{label}: {check.status}: {check.error}")
    if check.status in ("verified", "differs"):
        for note in check.notes:
            reporter.info(f"  note: {note}")


class PullProgress(PullEvents):
    """A progress bar on a terminal; elsewhere a line every tenth of the chapter."""

    def __init__(self, reporter: Reporter):
        self.reporter = reporter
        self._lock = threading.Lock()
        self._progress: Progress | None = None
        self._task = None
        self.total = self.done = self.bytes = 0

    def start(self, chapter_id: str, total: int, kept: int) -> None:
        self.total, self.done = total, kept
        if kept:
            self.reporter.info(f"{kept} of {total} pages are already in the folder: kept")
        if self.reporter.fancy and kept < total:
            self._progress = Progress(TextColumn("pulling"), BarColumn(), MofNCompleteColumn(),
                                      TextColumn("{task.fields[megabytes]}"), console=self.reporter.console)
            self._task = self._progress.add_task("pull", total=total, completed=kept, megabytes="")
            self._progress.start()

    def page_done(self, chapter_id: str, name: str, size: int) -> None:
        with self._lock:
            self.done += 1
            self.bytes += size
            done, total = self.done, self.total
            if self._progress is not None:
                self._progress.update(self._task, completed=done, megabytes=format_bytes(self.bytes))
                return
        step = max(1, total // 10)
        if done % step == 0 or done == total:
            self.reporter.info(f"{done}/{total} pages")

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


# --- accounts ----------------------------------------------------------------------------------------

def account_time(timestamp: float | None) -> str | None:
    """When an account signed in, or its refresh token expires, as people read it."""
    if timestamp is None:
        return None
    return datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d %H:%M UTC")


def account_json(store: AccountStore, account: StoredAccount, source: str) -> dict:
    return {"account": account.username, "api_url": account.api_url, "auth_url": account.auth_url,
            "source": source, "store": account.store,
            "path": str(store.path) if account.store == "file" else None,
            "keyring_backend": account.keyring_backend,
            "logged_in_at": _iso_time(account.logged_in_at), "refresh_expires_at": _iso_time(account.refresh_expires_at)}


def _iso_time(timestamp: float | None) -> str | None:
    return datetime.fromtimestamp(timestamp, UTC).isoformat() if timestamp is not None else None
