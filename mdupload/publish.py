"""From a manifest to published chapters: check every selected chapter, then upload them one by one.

This is the `upload` command without click and without a terminal: it takes settings, a client and
a ledger, and returns what happened to each chapter.

Local and remote work overlap where that keeps the promise that nothing is uploaded when a
selected chapter fails its checks:

- Before anything is uploaded, every selected chapter gets the quick check (formats, sizes, sides,
  page counts, cut-off files, PNG checksums, and the SHA-256 of every page, all in one read) and,
  with --fix, its repairs. Any failure there: nothing is uploaded. This costs about a second per
  150 MB chapter, a small part of uploading it.
- With --deep, decoding every page is the slow part: it runs in a background thread (whose
  process pool uses the idle cores) while chapters upload, the first chapter's before it is sent,
  every later one's while an earlier one uploads. A page that only the deep check finds damaged
  stops the run: the chapter in flight finishes, no chapter after it starts, and each of them is
  reported as not uploaded with the reason (the published ones are skipped on the rerun).
- While a chapter uploads, the questions its successor will ask first (is it on MangaDex already?
  will it wait for approval?) are asked ahead, so that the next session begins right after the
  commit's answer. The first chapter's (and which session is open) are asked, and the client signs
  in, while the local checks run: none of that changes anything on MangaDex, and when a check fails
  it is dropped, unseen.
"""

from __future__ import annotations

import logging
import tempfile
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

from .archive import ArchiveRun, ArchiveTarget, archive_after_upload
from .batches import LinkEstimate
from .checks import ChapterReport, PageCheckers, check_chapter, fix_chapter
from .errors import AuthError, UsageError
from .ledger import Ledger
from .mangadex.client import MangaDexClient
from .manifest import ChapterSpec, Manifest
from .pairing import Pairing, pair_with_published
from .run_summary import RunSummary
from .settings import Settings
from .upload import (
    ChapterPlan,
    ChapterResult,
    ChapterUpload,
    PlannedPage,
    UploadClient,
    UploadEvents,
    UploadOptions,
    wait_until_listed,
)
from .vocabulary import PUBLISHED_STATES, ChapterKey, Status


_log = logging.getLogger("mdupload.publish")


def require_terms(manifest: Manifest, accept_terms: bool) -> None:
    """The user accepted MangaDex's upload terms by option or variable (`accept_terms`, see settings.py) or
    manifest key."""
    if not (accept_terms or manifest.terms_accepted):
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


def build_plan(manifest: Manifest, report: ChapterReport, api_url: str) -> ChapterPlan:
    spec = report.spec
    pages = tuple(
        PlannedPage(origin=r.page.origin, path=r.page.path, upload_name=r.page.upload_name, mime=r.mime,
                    size=r.size, sha256=r.sha256)
        for r in report.pages
    )
    return ChapterPlan(key=manifest.chapter_key(spec, api_url), label=spec.label, manga=manifest.manga, groups=spec.groups,
                       language=spec.language, draft=chapter_draft(spec), pages=pages)


def check_all(specs: list[ChapterSpec], workdir: Path, *, deep: bool = False, fix: bool = False,
              fix_cache: Path | None = None) -> list[ChapterReport]:
    """Check each chapter; repair the fixable pages of those with `--fix` or `fix: true` into `workdir`
    (`fix_cache`: where repairs are kept by the SHA-256 of their source, so a rerun does not redo them)."""
    reports = []
    with PageCheckers() as checkers:
        for index, spec in enumerate(specs):
            chapter_dir = workdir / f"chapter-{index:03d}"
            chapter_dir.mkdir(parents=True, exist_ok=True)
            report = check_chapter(spec, chapter_dir / "pages", deep=deep, checkers=checkers)
            if fix or spec.fix:
                report = fix_chapter(report, chapter_dir / "fixed", cache_dir=fix_cache, checkers=checkers)
            reports.append(report)
    return reports


@dataclass
class UploadOutcome:
    """What `upload` did: the checks of every selected chapter made before anything was uploaded and, when
    they passed, each chapter's result (with --deep, a chapter whose decoding failed later, and every one
    after it, has a "failed" result saying it was not uploaded and why)."""

    reports: list[ChapterReport]
    plans: list[ChapterPlan] = field(default_factory=list)
    results: list[ChapterResult] = field(default_factory=list)
    signed_out: AuthError | None = None  # MangaDex stopped accepting the sign-in mid-run: the rest was not tried
    set_aside: list[ChapterReport] = field(default_factory=list)  # failed their checks; --skip-invalid went on
    # Seconds: checks_s (the local checks, from the start), sign_in_and_lookups_s (from the start, overlapping
    # them), chapters_s (from the checks' end to the last chapter's end), listing_wait_s (wait_until_listed)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def checks_passed(self) -> bool:
        """Whether the run went past the checks: every chapter passed, or --skip-invalid set the others aside."""
        aside = {id(r) for r in self.set_aside}
        return all(r.ok for r in self.reports if id(r) not in aside)

    @property
    def ok(self) -> bool:
        return self.checks_passed and not self.set_aside and all(r.status != Status.FAILED for r in self.results)


def upload_manifest(manifest: Manifest, specs: list[ChapterSpec], workdir: Path, *,
                    connect: Callable[[], MangaDexClient], ledger: Ledger, reporter, options: UploadOptions,
                    api_url: str, accept_terms: bool = False, deep: bool = False, fix: bool = False,
                    dry_run: bool = False, skip_invalid: bool = False, fix_cache: Path | None = None) -> UploadOutcome:
    """Check every selected chapter; if all pass (and this is no dry run), publish them one by one.

    Nothing is uploaded when any selected chapter fails its checks (with --deep, the decoding of a
    later chapter runs while earlier ones upload: see the module's docstring), unless `skip_invalid`:
    then the chapters that fail their quick checks are set aside (`set_aside`) and the others go out.
    `connect` (and the first chapter's questions) run while the checks do, except in a dry run; when
    nothing is uploaded after all, what they said is dropped, so a failed check needs no credentials.
    `api_url`: the MangaDex the client of `connect` talks to (part of every chapter's identity).
    """
    signing_in: Future | None = None
    started = time.perf_counter()
    pairings: dict[ChapterKey, Pairing] = {}
    if not dry_run:
        require_terms(manifest, accept_terms)
        pairings = pair_with_published(ledger, [manifest.chapter_key(spec, api_url) for spec in manifest.chapters])
        specs = _interrupted_first(manifest, specs, ledger, api_url, pairings)
        early = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mdupload-sign-in")
        signing_in = early.submit(_sign_in_ahead, connect, manifest, specs[0] if specs else None, started)
        early.shutdown(wait=False)
    # A dry run shows exactly what would be sent: every check, --deep included, comes first.
    try:
        outcome = UploadOutcome(reports=check_all(specs, workdir, deep=deep and dry_run, fix=fix,
                                                     fix_cache=fix_cache))
    except BaseException:
        _drop_sign_in(signing_in)
        raise
    outcome.timings["checks_s"] = time.perf_counter() - started
    if skip_invalid:
        outcome.set_aside = [r for r in outcome.reports if not r.ok]
    reports = [r for r in outcome.reports if r.ok]
    specs = [r.spec for r in reports]
    if not outcome.checks_passed or dry_run or not specs:  # (no specs: --skip-invalid set every chapter aside)
        _drop_sign_in(signing_in)  # a failed check needs no credentials: whatever signing in said is not shown
        if dry_run and outcome.checks_passed:
            outcome.plans = [build_plan(manifest, r, api_url) for r in reports]
        return outcome
    checker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mdupload-deep-check")
    lookahead = None
    try:
        if deep:  # one thread, in manifest order: each chapter's decoding is done before the next begins
            prepared = [checker.submit(_deep_check, spec, workdir / f"deep-{index:03d}", fix, fix_cache)
                        for index, spec in enumerate(specs)]
        else:
            prepared = [_done(report) for report in reports]
        client, lookahead, outcome.timings["sign_in_and_lookups_s"] = signing_in.result()
        link = LinkEstimate()  # the throughput and answer waits the batches measure, carried from chapter to chapter
        for index, spec in enumerate(specs):
            stop = _failed_check(specs, prepared, index)
            if stop is None and not prepared[index].done():
                reporter.info(f"{spec.label}: waiting for its --deep check to finish")
                wait([prepared[index]])
                stop = _failed_check(specs, prepared, index)
            if stop is not None:
                published = sum(1 for done in outcome.results if done.status != Status.FAILED)
                for result in _not_uploaded(manifest, reports, specs, prepared, index, stop, published, api_url):
                    reporter.finish_chapter(result)
                    outcome.results.append(result)
                break
            plan = build_plan(manifest, prepared[index].result(), api_url)
            outcome.plans.append(plan)
            reporter.start_chapter(plan)
            upload = ChapterUpload(client, ledger, plan, _chapter_options(options, spec),
                                   _UnderWaySignal(reporter, partial(_ask_during_upload, lookahead, manifest,
                                                                       spec, specs[index + 1: index + 2])),
                                   lookups=lookahead, link=link, pairing=pairings.get(plan.key))
            try:
                result = upload.run()
            except AuthError as exc:  # every later chapter would fail the same way
                if not any(done.status in (Status.UPLOADED, Status.CORRECTED) for done in outcome.results):
                    raise  # nothing published yet: the command failed (one error, the failed-command document)
                outcome.signed_out, result = exc, upload.result
            _log.info("%s: where the time went: %s", plan.label, result.timings.line())
            reporter.finish_chapter(result)
            outcome.results.append(result)
            if outcome.signed_out is not None:
                for later in range(index + 1, len(specs)):
                    result = ChapterResult(build_plan(manifest, reports[later], api_url), Status.FAILED,
                                           error="not uploaded: the run stopped because signing in failed")
                    reporter.finish_chapter(result)
                    outcome.results.append(result)
                break
        outcome.timings["chapters_s"] = time.perf_counter() - started - outcome.timings["checks_s"]
        if outcome.signed_out is None:
            listing_started = time.perf_counter()
            for notice in wait_until_listed(client, outcome.results):
                reporter.info(notice)
            outcome.timings["listing_wait_s"] = time.perf_counter() - listing_started
        _log.info("the run's time: %s", ", ".join(f"{name} {seconds:.2f}" for name, seconds in outcome.timings.items()))
    finally:
        checker.shutdown(wait=True, cancel_futures=True)
        if lookahead is not None:
            lookahead.close()
    in_manifest_order = {manifest.chapter_key(spec, api_url): n for n, spec in enumerate(manifest.chapters)}
    outcome.reports.sort(key=lambda report: in_manifest_order[manifest.chapter_key(report.spec, api_url)])
    outcome.results.sort(key=lambda result: in_manifest_order[result.plan.key])
    return outcome


@dataclass
class Publication:
    """What publishing a manifest did: the upload's outcome and, with an archive target, the archive run."""

    outcome: UploadOutcome
    summary: RunSummary
    dry_run: bool = False
    archived: ArchiveRun | None = None

    @property
    def signed_out(self) -> bool:
        return self.outcome.signed_out is not None

    @property
    def ok(self) -> bool:
        if not self.outcome.checks_passed:
            return False
        if self.dry_run:
            return not self.outcome.set_aside
        return self.outcome.ok and not self.signed_out and (self.archived is None or self.archived.ok)


def publish_manifest(manifest: Manifest, specs: list[ChapterSpec], settings: Settings, *,
                     connect: Callable[[], MangaDexClient], ledger: Ledger | None, reporter, options: UploadOptions,
                     api_url: str, deep: bool = False, fix: bool = False, dry_run: bool = False,
                     skip_invalid: bool = False, archive_target: ArchiveTarget | None = None) -> Publication:
    """`upload` as a service: check and publish (then archive, given a target) in a work folder of its own.
    `watch` publishes each item through this too. `api_url`: the MangaDex API in use."""
    archived = None
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mdupload-") as workdir:
        outcome = upload_manifest(manifest, specs, Path(workdir), connect=connect, ledger=ledger, reporter=reporter,
                                  options=options, api_url=api_url, accept_terms=settings.accept_terms, deep=deep,
                                  fix=fix, dry_run=dry_run, skip_invalid=skip_invalid, fix_cache=settings.fix_cache)
        if archive_target is not None and outcome.checks_passed:  # while --fix's repaired pages still exist
            archived = archive_after_upload(manifest, outcome.results, ledger, reporter, api_url=api_url,
                                            target=archive_target, environ=settings.environ,
                                            fix_cache=settings.fix_cache)
    summary = RunSummary.of(outcome.results, [r.spec.label for r in outcome.set_aside], api_url=api_url,
                            seconds=time.monotonic() - started)
    return Publication(outcome, summary, dry_run=dry_run, archived=archived)


def _chapter_options(options: UploadOptions, spec: ChapterSpec) -> UploadOptions:
    """The run's options, with `replace: true` of the chapter (or its series file) added."""
    return replace(options, replace=True) if spec.replace else options


def _interrupted_first(manifest: Manifest, specs: list[ChapterSpec], ledger: Ledger, api_url: str,
                       pairings: dict[ChapterKey, Pairing]) -> list[ChapterSpec]:
    """The chapters whose session an earlier run left open go first: their session is the account's one
    open session, and any other chapter would find it in its way (a correction of the groups or volume keeps its
    session in the record of the chapter it corrects). The result lists keep manifest order."""
    def interrupted(spec: ChapterSpec) -> bool:
        key = manifest.chapter_key(spec, api_url)
        paired = pairings.get(key)
        record = ledger.chapter(paired.published.key if paired and paired.published else key)
        return record is not None and record.session_id is not None and record.state not in PUBLISHED_STATES

    return sorted(specs, key=lambda spec: not interrupted(spec))


def _sign_in_ahead(connect: Callable[[], MangaDexClient], manifest: Manifest, first: ChapterSpec | None,
                   started: float) -> tuple[MangaDexClient, LookAhead, float]:
    """While the local checks run: the client, signed in by the first chapter's question asked ahead (is it
    published?); and the seconds this took from `started`. (Which session is open is not asked: a chapter with
    no earlier session begins at once, see upload.py; whether MangaDex holds it for approval is asked once
    its upload is under way.)"""
    client = connect()
    lookahead = LookAhead(client)
    if first is not None:
        lookahead.ask_ahead(manifest, first)
        lookahead.answered()
    return client, lookahead, time.perf_counter() - started


def _ask_during_upload(lookahead: LookAhead, manifest: Manifest, spec: ChapterSpec, following: list[ChapterSpec]) -> None:
    """Once a chapter's upload is under way: will MangaDex hold it for approval, and is the next one published?"""
    lookahead.ask_approval_ahead(manifest.manga, spec.language)
    for later in following:
        lookahead.ask_ahead(manifest, later)


def _drop_sign_in(signing_in: Future | None) -> None:
    """The run uploads nothing: signing in ahead is waited for and forgotten, its failure unseen."""
    if signing_in is None:
        return
    try:
        _, lookahead, _ = signing_in.result()
    except Exception:  # noqa: BLE001 - nothing is uploaded, so a missing or refused sign-in is no news
        return
    lookahead.close()


def _deep_check(spec: ChapterSpec, workdir: Path, fix: bool, fix_cache: Path | None) -> ChapterReport:
    """The chapter checked as `validate --deep` checks it (repairs come from the fix cache by then)."""
    return check_all([spec], workdir, deep=True, fix=fix, fix_cache=fix_cache)[0]


def _done(report: ChapterReport) -> Future:
    future: Future = Future()
    future.set_result(report)
    return future


def _failed_check(specs: list[ChapterSpec], prepared: list[Future], start: int) -> int | None:
    """The first chapter from `start` on whose (finished) deep check failed: the run stops before it."""
    for index in range(start, len(specs)):
        future = prepared[index]
        if future.done() and (future.exception() is not None or not future.result().ok):
            return index
    return None


def _not_uploaded(manifest: Manifest, reports: list[ChapterReport], specs: list[ChapterSpec], prepared: list[Future],
                  start: int, failed: int, published: int, api_url: str) -> list[ChapterResult]:
    """A failed result for each chapter from `start` on: the one whose deep check failed says why (`published`:
    how many chapters before it were published or found published)."""
    exception = prepared[failed].exception()
    label = specs[failed].label
    results = []
    for index in range(start, len(specs)):
        report = reports[index]
        if index == failed and exception is None:
            report = prepared[index].result()
        plan = build_plan(manifest, report, api_url)
        if index != failed:
            result = ChapterResult(plan, Status.FAILED, error=f"not uploaded: the run stopped because {label} failed its "
                                                         "--deep check; fix it, then run again")
        elif exception is not None:
            result = ChapterResult(plan, Status.FAILED, error=f"its --deep check could not run ({exception}), so it "
                                                         "was not uploaded and the run stopped")
        else:
            result = ChapterResult(plan, Status.FAILED, error=_deep_failure(report, published=published,
                                                                       later=len(specs) - 1 - failed),
                                   failed_pages=_problems_by_page(report))
        results.append(result)
    return results


def _deep_failure(report: ChapterReport, *, published: int, later: int) -> str:
    damaged = sum(1 for page in report.pages if not page.ok)
    what = f"{damaged} page(s) failed the --deep check" if damaged else "the chapter failed the --deep check"
    text = f"{what} (damage the quick check before the upload cannot see), so it was not uploaded"
    if later:
        text += f", nor the {later} chapter(s) after it"
    if published:
        text += f"; the {published} chapter(s) before it were published"
    return text + (". Re-export or copy again the pages named below, then run the same command"
                   + (": what was published is skipped." if published else "."))


def _problems_by_page(report: ChapterReport) -> dict[str, str]:
    problems: dict[str, str] = {}
    for page in report.pages:
        for problem in page.problems:
            if problem.severity != "warning":
                problems.setdefault(page.page.origin, problem.message + (f" ({problem.fix})" if problem.fix else ""))
    for problem in report.problems:
        if problem.severity != "warning":
            problems.setdefault(str(report.spec.pages), problem.message + (f" ({problem.fix})" if problem.fix else ""))
    return problems


class _UnderWaySignal(UploadEvents):
    """The reporter's events, and a signal once a chapter's first batch is handed over: its upload is in full
    swing, and asking about what comes next then takes nothing from it (its first requests are out)."""

    def __init__(self, reporter: UploadEvents, on_under_way: Callable[[], None] | None):
        self._reporter = reporter
        self._on_under_way: Callable[[], None] | None = on_under_way
        self._lock = threading.Lock()

    def state(self, plan: ChapterPlan, state: str, detail: str | None) -> None:
        self._reporter.state(plan, state, detail)

    def notice(self, plan: ChapterPlan, text: str) -> None:
        self._reporter.notice(plan, text)

    def bytes_sent(self, plan: ChapterPlan, count: int) -> None:
        self._reporter.bytes_sent(plan, count)

    def pages_done(self, plan: ChapterPlan, count: int) -> None:
        self._reporter.pages_done(plan, count)

    def under_way(self, plan: ChapterPlan) -> None:
        with self._lock:
            signal, self._on_under_way = self._on_under_way, None
        if signal is not None:
            signal()


class LookAhead:
    """The questions about a chapter that change nothing on MangaDex (upload.ChapterLookups), asked ahead: the
    first chapter's while the local checks run, each later one's while its predecessor uploads.

    `find_chapters` (is it on MangaDex already?) answers from what was asked ahead, once, when the answer is
    younger than FRESH_S. `check_approval_required` is asked once per manga and language in a run (the
    state machine asks it once a chapter is committed; nothing waits on it before). Any other question,
    and any question asked ahead that failed, goes to MangaDex at the moment the state machine asks it.
    """

    FRESH_S = 120.0

    def __init__(self, client: UploadClient, clock: Callable[[], float] = time.monotonic):
        self._client = client
        self._clock = clock
        self._lock = threading.Lock()
        self._answers: dict[tuple, tuple[float, Future]] = {}
        self._approvals: dict[tuple[str, str], Future] = {}
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mdupload-ask-ahead")

    def ask_ahead(self, manifest: Manifest, spec: ChapterSpec) -> None:
        """Is `spec` on MangaDex already?"""
        key = ("find_chapters", manifest.manga, spec.chapter, spec.language, tuple(spec.groups))
        with self._lock:
            self._answers[key] = (self._clock(), self._pool.submit(
                self._client.find_chapters, manifest.manga, spec.chapter, spec.language, spec.groups))

    def ask_approval_ahead(self, manga: str, locale: str) -> None:
        """Will MangaDex hold chapters of this manga in this language for approval? (Asked once in a run.)"""
        with self._lock:
            if (manga, locale) not in self._approvals:
                self._approvals[manga, locale] = self._pool.submit(self._client.check_approval_required, manga, locale)

    def find_chapters(self, manga, chapter, language, groups):
        return self._answer(("find_chapters", manga, chapter, language, tuple(groups)),
                            lambda: self._client.find_chapters(manga, chapter, language, groups))

    def check_approval_required(self, manga, locale):
        self.ask_approval_ahead(manga, locale)
        with self._lock:
            asked = self._approvals[manga, locale]
        try:
            return asked.result()
        except Exception:  # noqa: BLE001 - asked again, where a failure is the state machine's to handle
            with self._lock:
                if self._approvals.get((manga, locale)) is asked:
                    del self._approvals[manga, locale]
            return self._client.check_approval_required(manga, locale)

    def answered(self) -> None:
        """Wait until every question asked ahead so far has its answer (or its failure)."""
        with self._lock:
            pending = [future for _, future in self._answers.values()] + list(self._approvals.values())
        wait(pending)

    def _answer(self, key: tuple, ask: Callable):
        with self._lock:
            asked = self._answers.pop(key, None)
        if asked is not None:
            when, future = asked
            try:
                answer = future.result()
            except Exception:  # noqa: BLE001 - asked again below, where a failure is the state machine's to handle
                answer = None
            else:
                if self._clock() - when <= self.FRESH_S:
                    return answer
        return ask()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
