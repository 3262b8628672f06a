"""What people and CI see: progress on stderr, reports, and the one JSON result document on stdout.

Everything for people goes to stderr; stdout carries only the `--json` document. On a terminal the
upload shows one rich progress bar per chapter (bytes and pages, speed, time left); elsewhere
(a CI log, a pipe) it prints plain lines; with `--quiet` only errors.
"""

from __future__ import annotations

import json
import sys
import threading
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


class Reporter(UploadEvents):
    """Shows a run to people. One instance per command; thread-safe (batches report from threads)."""

    def __init__(self, *, quiet: bool = False, stream=None, force_plain: bool | None = None):
        self.stream = stream or sys.stderr
        self.quiet = quiet
        self.console = Console(file=self.stream, highlight=False, soft_wrap=True)
        self.fancy = not quiet and (self.console.is_terminal if force_plain is None else not force_plain)
        self._lock = threading.Lock()
        self._progress: Progress | None = None
        self._tasks: dict[tuple, TaskID] = {}
        self._pages: dict[tuple, int] = {}

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
        if not self.fancy:
            self.info(f"{plan.label}: {len(plan.pages)} pages, {_megabytes(plan.total_bytes)}")
            return
        with self._lock:
            if self._progress is None:
                self._progress = Progress(
                    TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                    TextColumn("{task.fields[pages]}"), TransferSpeedColumn(), TimeRemainingColumn(),
                    console=self.console, transient=False)
                self._progress.start()
            self._pages[plan.key] = 0
            self._tasks[plan.key] = self._progress.add_task(
                plan.label, total=plan.total_bytes, pages=f"0/{len(plan.pages)} pages")

    def finish_chapter(self, result: ChapterResult) -> None:
        plan = result.plan
        with self._lock:
            task = self._tasks.pop(plan.key, None)
            if task is not None and self._progress is not None:
                self._progress.update(task, visible=False)
                if not self._tasks:
                    self._progress.stop()
                    self._progress = None
        if result.status == "failed":
            self.error(f"{plan.label}: failed: {result.error}")
            for origin, why in result.failed_pages.items():
                self.error(f"  {origin}: {why}")
        else:
            where = f" as chapter {result.chapter_id}" if result.chapter_id else ""
            self.info(f"{plan.label}: {result.status}{where} ({len(plan.pages)} pages)")

    def state(self, plan: ChapterPlan, state: str, detail: str | None) -> None:
        if not self.fancy and state in ("BEGINNING", "RESUMING", "COMMITTING", "COMMITTED"):
            self.info(f"{plan.label}: {state.lower()}" + (f" ({detail})" if detail else ""))

    def notice(self, plan: ChapterPlan, text: str) -> None:
        self.info(f"{plan.label}: {text}")

    def bytes_sent(self, plan: ChapterPlan, count: int) -> None:
        if self._progress is not None and plan.key in self._tasks:
            self._progress.advance(self._tasks[plan.key], count)

    def pages_done(self, plan: ChapterPlan, count: int) -> None:
        with self._lock:
            self._pages[plan.key] = self._pages.get(plan.key, 0) + count
            done = self._pages[plan.key]
        if self._progress is not None and plan.key in self._tasks:
            self._progress.update(self._tasks[plan.key], pages=f"{done}/{len(plan.pages)} pages")
        elif not self.fancy:
            self.info(f"{plan.label}: {done}/{len(plan.pages)} pages uploaded")


def _megabytes(n: int) -> str:
    return f"{n / 1_000_000:.1f} MB"


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
    }
