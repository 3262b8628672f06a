"""Applying the repairs (`--fix`, `fix: true`): `apply_fixes(reports, workdir)` writes repaired copies into a
work folder (the originals are never touched), in a pool of worker processes, reusing earlier results from
a cache keyed by the source's SHA-256 and the fix, and says what was done to which page.

`checks.fix_chapter` applies them to a chapter and checks the result again (the 150 MiB / 500 pages
rules included).
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import shutil
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import PageError
from ..pages import Page
from ..problems import PageReport, Problem
from .encode import FAILED, RESULT, fix_into
from .plan import EXTENSIONS, FixPlan, plan_fix

log = logging.getLogger(__name__)


DEFAULT_JOBS = 4  # each worker holds one decoded page: the bound on memory is jobs x one page


@dataclass
class FixedPage:
    """One checked page after `apply_fixes`: the page(s) that replace it and what was done."""

    source: Page
    pages: list[Page]  # in reading order; the source itself when nothing was done or it cannot be fixed
    done: list[str] = field(default_factory=list)  # what was done, in order, with the numbers
    problems: list[Problem] = field(default_factory=list)  # left after the fix: the page cannot be fixed
    reused: bool = False  # the result came from the fix cache: no image work was done

    def to_json(self) -> dict:
        """What was done to which page (its problems are listed with the page's own)."""
        return {
            "page": self.source.origin,
            "done": self.done,
            "pages": [page.upload_name for page in self.pages],
            "reused": self.reused,
        }


def apply_fixes(reports: Sequence[PageReport], workdir: Path, *, jobs: int | None = None,
                cache_dir: Path | None = None) -> list[FixedPage]:
    """Repair every page `plan_fix` has a fix for; one FixedPage per report, in the same order.

    A page whose checks found an error is left as it is: it cannot be uploaded anyway. `workdir` is
    a folder of this chapter's own: the repaired pages are written there under their upload names.
    Results are kept in `cache_dir` (default `workdir/.fix-cache`), keyed by the source's SHA-256
    and the fix, so a page seen again is not worked on again. `jobs` worker processes (default: the
    CPUs, at most DEFAULT_JOBS) each hold one decoded page at a time.
    """
    workdir = Path(workdir)
    cache = Path(cache_dir) if cache_dir is not None else workdir / ".fix-cache"
    try:
        workdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PageError(f"cannot create the folder for repaired pages: {exc.strerror}", path=exc.filename) from exc
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # the cache only saves time: repair without it, in the work folder
        log.warning("cannot use the fix cache %s (%s): set MDUPLOAD_CACHE_DIR to a writable folder to keep "
                     "repaired pages between runs", cache, exc.strerror)
        cache = workdir / ".fix-cache"
        cache.mkdir(exist_ok=True)

    plans = [None if any(p.severity == "error" for p in report.problems) else plan_fix(report)
             for report in reports]
    entries: dict[int, Path] = {}
    todo: dict[Path, tuple[str, FixPlan]] = {}
    for index, (report, plan) in enumerate(zip(reports, plans)):
        if plan is not None and plan.fixable and plan.output_format is not None:
            entry = cache / f"{report.sha256}-{hashlib.sha256(plan.key.encode()).hexdigest()[:16]}"
            entries[index] = entry
            if not (entry / RESULT).exists():
                todo.setdefault(entry, (str(report.page.path), plan))
    _run_all(todo, jobs, workdir)

    taken = {report.page.upload_name for report, plan in zip(reports, plans) if plan is None or not plan.fixable}
    fixed = []
    for index, (report, plan) in enumerate(zip(reports, plans)):
        page = report.page
        if plan is None:
            fixed.append(FixedPage(source=page, pages=[page]))
        elif not plan.fixable:
            fixed.append(FixedPage(source=page, pages=[page], problems=[
                Problem("not-fixable", "error", "--fix cannot repair this page", plan.description)]))
        elif plan.output_format is None:
            name = _unique_name(_stem(page.upload_name), plan.extension, taken)
            _place(Path(page.path), workdir / name)
            fixed.append(FixedPage(source=page, pages=[Page(path=workdir / name, origin=page.origin, upload_name=name)],
                                   done=[f"renamed to {name} (the bytes are {report.format}; not re-encoded)"]))
        else:
            fixed.append(_collect(page, entries[index], workdir, taken, reused=entries[index] not in todo))
    return fixed


def _run_all(todo: dict[Path, tuple[str, FixPlan]], jobs: int | None, workdir: Path) -> None:
    """Run the fixes the cache does not hold yet, in worker processes when there is more than one."""
    workers = min(jobs or min(DEFAULT_JOBS, os.cpu_count() or 1), len(todo))
    try:
        if workers <= 1:
            for entry, (source, plan) in todo.items():
                fix_into(source, plan, str(entry))
            return
        # "spawn", as for the checks: a forked child could inherit a lock held by another thread.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = [pool.submit(fix_into, source, plan, str(entry)) for entry, (source, plan) in todo.items()]
            for future in futures:
                future.result()
    except BrokenProcessPool as exc:
        raise PageError("a process repairing the pages died (out of memory on a huge page?)", path=workdir,
                        hint="Find the page that is far larger than the others and re-export it smaller.") from exc
    except OSError as exc:
        raise PageError(f"cannot write the repaired pages ({exc.strerror or exc})",
                        path=exc.filename or workdir) from exc


def _collect(page: Page, entry: Path, workdir: Path, taken: set[str], *, reused: bool) -> FixedPage:
    """Link one result's files into the work folder under their upload names."""
    failed = entry.with_name(entry.name + FAILED)
    result = json.loads((entry / RESULT if (entry / RESULT).exists() else failed).read_text())
    if reused:
        log.debug("fix cache hit for %s: %s", page.origin, entry.name)
    if result["problem"]:
        problem = Problem(severity="error", **result["problem"])
        return FixedPage(source=page, pages=[page], done=result["done"], problems=[problem], reused=reused)
    outputs = result["outputs"]
    stem = _stem(page.upload_name)
    pages = []
    for number, output in enumerate(outputs, 1):
        many = len(outputs) > 1
        name = _unique_name(f"{stem}-{number}" if many else stem, EXTENSIONS[output["format"]], taken)
        _place(entry / output["file"], workdir / name)
        origin = f"{page.origin} (piece {number} of {len(outputs)})" if many else page.origin
        pages.append(Page(path=workdir / name, origin=origin, upload_name=name))
    return FixedPage(source=page, pages=pages, done=result["done"], reused=reused)


def _stem(name: str) -> str:
    return name.rpartition(".")[0] or name


def _unique_name(stem: str, extension: str, taken: set[str]) -> str:
    """`stem.extension`, made unique among `taken` (which it joins)."""
    candidate = f"{stem}.{extension}"
    number = 2
    while candidate in taken:
        candidate = f"{stem}_{number}.{extension}"
        number += 1
    taken.add(candidate)
    return candidate


def _place(source: Path, target: Path) -> None:
    """Put `source`'s bytes at `target`: a hard link when possible, else a copy. `source` is only read."""
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)
