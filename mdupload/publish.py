"""From a manifest to published chapters: check every selected chapter, then upload them one by one.

This is the `upload` command without click and without a terminal: it takes settings, a client and
a ledger, and returns what happened to each chapter.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from platformdirs import user_cache_dir

from .checks import ChapterReport, check_chapter, fix_chapter
from .errors import UsageError
from .ledger import Ledger
from .mangadex.client import MangaDexClient
from .manifest import ChapterSpec, Manifest
from .upload import (
    ChapterPlan,
    ChapterResult,
    ChapterUpload,
    PlannedPage,
    UploadOptions,
)


def terms_accepted(manifest: Manifest, accept_terms: bool) -> bool:
    """The user accepted MangaDex's upload terms by option, environment or manifest key."""
    return accept_terms or manifest.terms_accepted or os.environ.get("MDUPLOAD_ACCEPT_TERMS", "") in ("1", "true", "yes")


def require_terms(manifest: Manifest, accept_terms: bool) -> None:
    if not terms_accepted(manifest, accept_terms):
        raise UsageError(
            "MangaDex requires uploaders to accept its upload terms, and you have not said that you do.",
            hint="Read them on mangadex.org, then pass --accept-terms, set MDUPLOAD_ACCEPT_TERMS=1, "
                 f"or add `terms_accepted: true` to {manifest.path}.")


def chapter_draft(spec: ChapterSpec) -> dict:
    """The commit's chapterDraft: `volume`, `chapter` and `title` are required keys that may be null."""
    draft = {
        "volume": spec.volume,
        "chapter": spec.chapter,
        "title": spec.title,
        "translatedLanguage": spec.language,
    }
    if spec.publish_at is not None:
        draft["publishAt"] = spec.publish_at.strftime("%Y-%m-%dT%H:%M:%S")
    return draft


def build_plan(manifest: Manifest, report: ChapterReport) -> ChapterPlan:
    spec = report.spec
    pages = tuple(
        PlannedPage(origin=r.page.origin, path=r.page.path, upload_name=r.page.upload_name, mime=r.mime,
                    size=r.size, sha256=r.sha256)
        for r in report.pages
    )
    return ChapterPlan(key=manifest.chapter_key(spec), label=spec.label, manga=manifest.manga, groups=spec.groups,
                       language=spec.language, draft=chapter_draft(spec), pages=pages)


def fix_cache_dir() -> Path:
    """Where repaired pages are kept by the SHA-256 of their source, so a rerun does not redo them."""
    return Path(os.environ.get("MDUPLOAD_CACHE_DIR") or user_cache_dir("mdupload")) / "fixes"


def check_all(specs: list[ChapterSpec], workdir: Path, *, deep: bool = False, fix: bool = False) -> list[ChapterReport]:
    """Check each chapter; repair the fixable pages of those with `--fix` or `fix: true` into `workdir`."""
    reports = []
    for index, spec in enumerate(specs):
        chapter_dir = workdir / f"chapter-{index:03d}"
        chapter_dir.mkdir(parents=True, exist_ok=True)
        report = check_chapter(spec, chapter_dir / "pages", deep=deep)
        if fix or spec.fix:
            report = fix_chapter(report, chapter_dir / "fixed", cache_dir=fix_cache_dir())
        reports.append(report)
    return reports


@dataclass
class UploadOutcome:
    """What `upload` did: the checks of every selected chapter and, when they passed, each result."""

    reports: list[ChapterReport]
    plans: list[ChapterPlan] = field(default_factory=list)
    results: list[ChapterResult] = field(default_factory=list)

    @property
    def checks_passed(self) -> bool:
        return all(r.ok for r in self.reports)

    @property
    def ok(self) -> bool:
        return self.checks_passed and all(r.status != "failed" for r in self.results)


def upload_manifest(manifest: Manifest, specs: list[ChapterSpec], workdir: Path, *,
                    connect: Callable[[], MangaDexClient], ledger: Ledger, reporter, options: UploadOptions,
                    accept_terms: bool = False, deep: bool = False, fix: bool = False,
                    dry_run: bool = False) -> UploadOutcome:
    """Check every selected chapter; if all pass (and this is no dry run), publish them one by one.

    Nothing is uploaded when any selected chapter fails its checks. `connect` is called only when
    there is something to upload, so a dry run or a failed check needs no credentials.
    """
    if not dry_run:
        require_terms(manifest, accept_terms)
    outcome = UploadOutcome(reports=check_all(specs, workdir, deep=deep, fix=fix))
    if not outcome.checks_passed:
        return outcome
    outcome.plans = [build_plan(manifest, r) for r in outcome.reports]
    if dry_run:
        return outcome
    client = connect()
    for plan in outcome.plans:
        reporter.start_chapter(plan)
        result = ChapterUpload(client, ledger, plan, options, reporter).run()
        reporter.finish_chapter(result)
        outcome.results.append(result)
    return outcome
