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
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from .upload import ChapterPlan, ChapterResult, UploadEvents

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
            self.info(f"{plan.label}: {len(plan.pages)} pages, {_megabytes(plan.total_bytes)}")

    def finish_chapter(self, result: ChapterResult) -> None:
        plan = result.plan
        with self._lock:
            shown = self._chapters.pop(plan.key, None)
            if shown is not None and shown.task is not None and self._progress is not None:
                self._progress.update(shown.task, visible=False)
                if not any(c.task is not None for c in self._chapters.values()):
                    self._progress.stop()
                    self._progress = None
        if result.status == "failed":
            self.error(f"{plan.label}: failed: {result.error}")
            for origin, why in result.failed_pages.items():
                self.error(f"  {origin}: {why}")
            return
        where = f" as chapter {result.chapter_id}" if result.chapter_id else ""
        took = ""
        if shown is not None and shown.sent:
            seconds = max(self._clock() - shown.started, 1e-9)
            took = f", {_megabytes(shown.sent)} sent in {seconds:.1f} s ({_megabytes(shown.sent / seconds)}/s)"
        self.info(f"{plan.label}: {result.status}{where} ({len(plan.pages)} pages{took})")

    def state(self, plan: ChapterPlan, state: str, detail: str | None) -> None:
        # Plain lines for the steps between the progress lines; the finished line says COMMITTED, and a
        # step recorded again with a detail (BEGINNING: "session begun") adds nothing to read.
        said = {"BEGINNING": "beginning an upload session", "RESUMING": "resuming", "COMMITTING": "committing"}
        if not self.fancy and state in said and detail is None:
            self.info(f"{plan.label}: {said[state]}")

    def notice(self, plan: ChapterPlan, text: str) -> None:
        self.info(f"{plan.label}: {text}")

    def bytes_sent(self, plan: ChapterPlan, count: int) -> None:
        with self._lock:
            shown = self._chapters.get(plan.key)
            if shown is None:
                return
            if shown.first_byte is None:
                shown.first_byte = self._clock()
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
            line = f"{plan.label}: {shown.pages}/{len(plan.pages)} pages, {_megabytes(shown.sent)} of " \
                   f"{_megabytes(plan.total_bytes)}"
            elapsed = self._clock() - shown.first_byte if shown.first_byte is not None else 0.0
            if elapsed > 0 and shown.sent:
                speed = shown.sent / elapsed
                left = max(0, plan.total_bytes - shown.sent) / speed
                line += f", {_megabytes(speed)}/s" + (f", about {_duration(left)} left" if left >= 1 else "")
        self.info(line)


def _duration(seconds: float) -> str:
    seconds = round(seconds)
    return f"{seconds // 60} min {seconds % 60:02d} s" if seconds >= 60 else f"{seconds} s"


def _megabytes(n: float) -> str:
    """Sizes as people read them: "151.0 MB", and "41 KB" below a megabyte."""
    return f"{n / 1_000_000:.1f} MB" if n >= 1_000_000 else f"{n / 1000:.0f} KB"


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
        "retry_later": result.retry_later,
    }
