"""Checking a whole chapter: collect its pages, check each one, then the limits of the chapter as a whole.

`fix_chapter` applies --fix to a checked chapter and checks the repaired pages the same way.
"""

from __future__ import annotations

import math
import multiprocessing
import os
import warnings
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

from . import limits
from .errors import PageError
from .fixes.apply import FixedPage, apply_fixes
from .images import check_page
from .manifest import ChapterSpec
from .pages import NoPagesError, Page, collect_pages, display_path
from .problems import PageReport, Problem
from .vocabulary import format_bytes

PARALLEL_FROM_PAGES = 17  # deep checks of fewer pages run in this process: starting workers would cost more
MAX_WORKERS = 8


@dataclass
class ChapterReport:
    spec: ChapterSpec
    pages: list[PageReport] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    fixes: list[FixedPage] = field(default_factory=list)  # after fix_chapter: what was done to which page

    @property
    def ok(self) -> bool:
        return (not any(p.severity in ("error", "fixable") for p in self.problems)
                and all(page.ok for page in self.pages))

    @property
    def total_bytes(self) -> int:
        return sum(page.size for page in self.pages)

    @property
    def largest_side(self) -> int | None:
        return max((max(p.width, p.height) for p in self.pages if p.width is not None), default=None)

    def to_json(self) -> dict:
        source = display_path(self.spec.pages)
        problems = [(source, p) for p in self.problems]
        problems += [(page.page.origin, p) for page in self.pages for p in page.problems]
        document = {
            "chapter": self.spec.chapter,
            "volume": self.spec.volume,
            "language": self.spec.language,
            "source": source,
            "pages": len(self.pages),
            "total_bytes": self.total_bytes,
            "largest_side": self.largest_side,
            "ok": self.ok,
            "problems": [{"file": file, "code": p.code, "severity": p.severity, "message": p.message, "fix": p.fix}
                         for file, p in problems],
            "warnings": list(self.warnings),
        }
        if self.fixes:
            document["fixes"] = [fixed.to_json() for fixed in self.fixes]
        return document


def check_chapter(spec: ChapterSpec, workdir: Path, *, deep: bool = False,
                  checkers: PageCheckers | None = None) -> ChapterReport:
    """Collect and check every page of the chapter; whatever is wrong is in the report, nothing is raised."""
    report = ChapterReport(spec=spec)
    try:
        collected = collect_pages(spec.pages, workdir)
    except PageError as exc:
        code = "no-pages" if isinstance(exc, NoPagesError) else "pages-unreadable"
        report.problems.append(Problem(code, "error", exc.message, exc.hint))
        return report
    report.warnings = collected.warnings
    try:
        report.pages = _check_pages(collected.pages, deep, checkers)
    except BrokenProcessPool:
        report.problems.append(Problem(
            "check-crashed", "error", "a process checking the pages died (out of memory on a huge page?)",
            "find the page that is far larger than the others and re-export it smaller"))
        return report
    report.problems.extend(_chapter_problems(report.pages))
    return report


def fix_chapter(report: ChapterReport, workdir: Path, *, cache_dir: Path | None = None,
                checkers: PageCheckers | None = None) -> ChapterReport:
    """--fix on a checked chapter: repair its fixable pages into `workdir`, then check the result again.

    The originals are never touched. The new report lists the pages to upload in natural order
    (a split strip's pieces where the strip was), its `fixes` say what was done to which page, and
    the chapter's limits (150 MB, 500 pages) are checked again on the repaired pages. A page the fix
    could not repair keeps an error saying why; no page is ever dropped.
    """
    if not report.pages:  # nothing was collected: the report already says why
        return report
    try:
        fixed = apply_fixes(report.pages, workdir, cache_dir=cache_dir)
    except PageError as exc:  # the work folder cannot be written, or a worker died
        return replace(report, problems=[*report.problems, Problem("fix-failed", "error", exc.message, exc.hint)])
    repaired = [page for result in fixed if result.done and not result.problems for page in result.pages]
    # A quick check (the fix decoded them all already), on threads of this process: no worker to lose.
    checked = dict(zip(repaired, _check_pages(repaired, False, checkers)))
    pages: list[PageReport] = []
    for original, result in zip(report.pages, fixed):
        if result.problems:
            pages.append(replace(original, problems=[p for p in original.problems if p.severity != "fixable"]
                                 + result.problems))
        elif result.done:
            pages.extend(checked[page] for page in result.pages)
        else:
            pages.append(original)
    return ChapterReport(spec=report.spec, pages=pages, warnings=report.warnings,
                         problems=_chapter_problems(pages), fixes=[f for f in fixed if f.done or f.problems])


def checked_report(spec: ChapterSpec, workdir: Path, fix_cache: Path | None = None) -> ChapterReport:
    """The chapter's pages as `upload` sent them, for read-back and archiving: collected and checked into
    `workdir`, and repaired as --fix does when the checks find something to repair (a chapter with such
    pages can only have been uploaded repaired)."""
    workdir.mkdir(parents=True, exist_ok=True)
    report = check_chapter(spec, workdir / "pages")
    if not report.ok:
        report = fix_chapter(report, workdir / "fixed", cache_dir=fix_cache)
    return report


class PageCheckers:
    """Where pages are checked. A quick check reads and hashes the file and parses its headers: threads of
    this process do it (reading and hashing let go of the GIL), since starting worker processes costs
    more than checking a whole chapter (`python -m tests.bench_checks` measures both). A deep check
    decodes every frame: from PARALLEL_FROM_PAGES pages, worker processes do it on every core (a decoder
    that crashes or runs out of memory on a hostile page then costs the chapter, not the run); they are
    started on first need and shared by every chapter checked while the block is open."""

    def __init__(self):
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> PageCheckers:
        return self

    def __exit__(self, *_exc) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def check(self, pages: list[Page], deep: bool) -> list[PageReport]:
        """Check the pages; the result keeps their order."""
        if not deep:
            return _on_threads(pages)
        check = partial(check_page, deep=True)
        if len(pages) < PARALLEL_FROM_PAGES:
            return [check(page) for page in pages]
        if self._pool is None:
            # "spawn": a forked child could inherit a lock held by another thread (progress bars, the sandbox).
            self._pool = ProcessPoolExecutor(max_workers=_workers(), mp_context=multiprocessing.get_context("spawn"))
        try:
            return list(self._pool.map(check, pages, chunksize=max(1, len(pages) // (4 * _workers()))))
        except BrokenProcessPool:
            self._pool = None  # a worker died: the next chapter starts new ones
            raise


def _workers() -> int:
    return min(MAX_WORKERS, os.cpu_count() or 1)


def _on_threads(pages: list[Page]) -> list[PageReport]:
    """Quick checks on one thread per core, in order."""
    # warnings.catch_warnings is not thread-safe: check_page's own, on the threads, only nest inside this
    # one, so Pillow's warnings stay silent and the filters end as they were.
    with warnings.catch_warnings(), ThreadPoolExecutor(max_workers=_workers()) as threads:
        warnings.simplefilter("ignore")
        return list(threads.map(check_page, pages))


def _check_pages(pages: list[Page], deep: bool, checkers: PageCheckers | None) -> list[PageReport]:
    if checkers is not None:
        return checkers.check(pages, deep)
    with PageCheckers() as own:
        return own.check(pages, deep)


def _chapter_problems(pages: list[PageReport]) -> list[Problem]:
    problems = []
    count = len(pages)
    if count > limits.FILES_PER_SESSION:
        first_extra = pages[limits.FILES_PER_SESSION].page.origin
        problems.append(Problem(
            "too-many-pages", "error",
            f"{count} pages: MangaDex takes at most {limits.FILES_PER_SESSION} per chapter",
            f"split the chapter in {math.ceil(count / limits.FILES_PER_SESSION)}: pages "
            f"{limits.FILES_PER_SESSION + 1}–{count} (from {first_extra}) do not fit in one"))
    total = sum(page.size for page in pages)
    if total > limits.BYTES_PER_SESSION:
        running, first_over = 0, 0
        for index, page in enumerate(pages):
            running += page.size
            if running > limits.BYTES_PER_SESSION:
                first_over = index
                break
        problems.append(Problem(
            "chapter-too-large", "error",
            f"the pages add up to {format_bytes(total)}: MangaDex takes at most "
            f"{format_bytes(limits.BYTES_PER_SESSION)} per chapter",
            f"split the chapter in {math.ceil(total / limits.BYTES_PER_SESSION)} or more: pages {first_over + 1}–"
            f"{count} (from {pages[first_over].page.origin}) exceed {format_bytes(limits.BYTES_PER_SESSION)}; "
            "or export the pages smaller"))
    return problems
