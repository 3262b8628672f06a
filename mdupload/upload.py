"""The state machine that publishes one chapter.

States are named for what is being done. Each transition is written to the ledger *before* the
network call it leads to, so that a process killed at any instant finds, on the next run, what it
was doing and whether that call may have happened:

    CHECKED ─► SKIPPED                              (the ledger or MangaDex already has the chapter)
            ─► ABANDONING ─► SKIPPED                (MangaDex has it, and this chapter's own unfinished
                                                     session is still open: it is abandoned first)
            ─► BEGINNING                            (no earlier session of this chapter to look for)
            ─► FINDING_SESSION ─► RESUMING          (the open session is this chapter's)
                               ─► ABANDONING ─► BEGINNING   (a stale or consented foreign session)
                               ─► BEGINNING
                               ─► SKIPPED           (the commit of an earlier run went through)
    BEGINNING ─► FINDING_SESSION                    (MangaDex refused the begin: another session is open)
    BEGINNING | RESUMING ─► UPLOADING ─► RECONCILING ─► UPLOADING (pages still missing)
                                                     ─► COMMITTING ─► COMMITTED
    any state ─► FAILED (the reason is kept; the session stays open so that a rerun resumes it)

Corrections (--replace) of a chapter the ledger records as published, whose pages or metadata differ
from what was published (without --replace the difference is said, and the chapter skipped):

    CHECKED ─► EDITING ─► UPLOADING ─► ... ─► COMMITTING ─► COMMITTED   (pages or publish_at changed)
            ─► UPDATING ─► COMMITTED                                    (title, volume or groups only)
            ─► UPDATING ─► EDITING ─► ... ─► COMMITTED                 (groups, and pages or publish_at)

A chapter whose groups (or, numbered, whose volume) changed has a key of its own that the ledger does not
know: pairing.py pairs it with the published chapter it corrects, and the state machine works under that
chapter's record (`ledger_key`) until the COMMITTED that moves the record to the new key.

- EDITING (with the chapter id) is written before the edit session is begun (POST /upload/begin/{id}
  with the chapter's version), the session id as soon as it is answered. The session comes filled
  with the chapter's pages (`source: remote`); those whose name, size and SHA-256 are a planned
  page's are kept as they are, the others deleted, and only new and changed pages are sent; the
  commit gives the new order, and the chapter keeps its id. A rerun after a kill finds the edit
  unfinished (its last begin was an EDITING) and resumes it: its open edit session is taken back,
  or a new one begun (a commit that went through leaves nothing to send, and commits the same pages).
- UPDATING is written before PUT /chapter/{id} (with its version): idempotent, redone by a rerun with --replace.
  With the groups and new or changed pages both to correct, the PUT goes first: the edit session then begun
  carries the chapter's groups as they now are, and its commit cannot put the old ones back.
- A stale version (409) is read again and tried once more, then explained.

What the ledger holds at each instant is enough to decide, after a kill, without guessing:
- BEGINNING is written (and the chapter's previous session forgotten) before the session is begun;
  a rerun that finds a session begun since then, holding nothing but this plan's pages, claims it.
- The session id is written as soon as the begin is answered, each page's file id as soon as its
  batch is answered; a rerun lists the session and matches its files to the pages anyway (name and
  size, confirmed by the SHA-256 or by the file id the ledger recorded), so a batch whose answer
  was lost is never sent again.
- COMMITTING (with the session id) is written before the commit; COMMITTED or SKIPPED (with the
  chapter id, the session forgotten in the same transaction) after it. A rerun that finds
  COMMITTING looks the session up: still open means the commit did not happen; gone means it did,
  and the chapter is looked up on MangaDex, never committed again.

A chapter with no earlier session of its own (nothing in the ledger to resume or to look for) skips
the session lookup (GET /upload) and begins at once: MangaDex refuses a begin while a session is
open, and only then is the open session looked up (FINDING_SESSION), as it would have been. Between
the chapters of a run, this takes a request and a round trip out of each one. RECONCILING lists the
session only when some batch got no answer or some page is still missing: when every page was
answered as accepted, the file ids are all known and there is nothing the listing could add.

`TRANSITIONS` below is the whole table; `ChapterUpload._step_<state>` does one state's work and
returns the next state.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

from .batches import BatchQueue, LinkEstimate, send_pipelined
from .errors import AuthError, LedgerError, MdUploadError
from .ledger import Ledger
from .mangadex.client import (
    BatchResult,
    Chapter,
    SessionFile,
    UploadFile,
    UploadSession,
)
from .mangadex.errors import (
    ApiError,
    CaptchaRequired,
    Conflict,
    NetworkError,
    OutcomeUnknown,
    RateLimited,
    ServerError,
)
from .pairing import Pairing
from .vocabulary import FINAL_STATES, LOOKING_AROUND, PUBLISHED_STATES, ChapterKey, State, Status

TRANSITIONS: dict[State, tuple[State, ...]] = {
    State.CHECKED: (State.SKIPPED, State.ABANDONING, State.FINDING_SESSION, State.BEGINNING, State.EDITING,
                    State.UPDATING),
    State.FINDING_SESSION: (State.RESUMING, State.ABANDONING, State.BEGINNING, State.SKIPPED),
    State.ABANDONING: (State.BEGINNING, State.SKIPPED),
    State.BEGINNING: (State.UPLOADING, State.FINDING_SESSION),
    State.RESUMING: (State.UPLOADING,),
    State.EDITING: (State.UPLOADING,),
    State.UPDATING: (State.COMMITTED, State.EDITING),
    State.UPLOADING: (State.RECONCILING,),
    State.RECONCILING: (State.UPLOADING, State.COMMITTING),
    State.COMMITTING: (State.COMMITTED, State.RECONCILING),
    State.COMMITTED: (),
    State.SKIPPED: (),
    State.FAILED: (),
}

STALE_AFTER_MIN = 10  # an open session untouched this many minutes is abandoned
DEFAULT_CONCURRENCY = 4  # the most batch requests in flight (batches.py sends them pipelined; `make bench --sweep`)
BEGIN_ATTEMPTS = 3  # a begin that provably did not open a session (5xx, then none open) is asked again
# What MangaDex may answer a begin while another session is open ("an error": API-NOTES.md); the sandbox says 409
BEGIN_REFUSED_WHILE_OPEN = (400, 409)
# States whose record forgets the chapter's session in the same write: a new one is being begun, or the
# chapter is published and its session closed.
_CLEARS_SESSION = (State.BEGINNING, State.EDITING, State.COMMITTED, State.SKIPPED)
# A claimed session must have been begun within this margin of the ledger's BEGINNING record
BEGIN_CLOCK_SLACK = timedelta(minutes=5)
# Pauses between the looks for a just-committed chapter in MangaDex's lists (about half a minute in all):
# it is listed once processed, seconds after its commit (API-NOTES.md).
LISTING_PAUSES_S = (0.5, 1.0, 2.0, 4.0, 8.0, 15.0)


class UploadFailed(MdUploadError):
    """The chapter could not be published; the message says why and what to do."""


class RetryLater(UploadFailed):
    """Nothing in the chapter is at fault (MangaDex failing, someone else's session): the same run later may work."""


class SessionBusy(RetryLater):
    """A recently used session that is not this chapter's is open on the account."""


NO_ANSWER = "no answer from MangaDex"
# The detail of a correction's first EDITING or UPDATING, then of its COMMITTED, followed by what it changes
# ("groups, pages"): what a resumed correction reports, and what `mdupload status` shows.
CORRECTING_DETAIL, CORRECTED_DETAIL = "correcting: ", "corrected: "


def outside_the_chapter(exc: BaseException) -> bool:
    """Whether a failure lies outside the chapter's files and numbers, so that trying again later may succeed:
    MangaDex unreachable, failing (5xx) or rate-limiting after the client's retries, an answer lost, someone
    else's open session, a captcha on the account, the ledger held by another run."""
    return isinstance(exc, (RetryLater, NetworkError, ServerError, RateLimited, OutcomeUnknown, CaptchaRequired,
                            LedgerError))


@dataclass(frozen=True)
class PlannedPage:
    origin: str  # what the user knows the page as (for messages)
    path: Path
    upload_name: str  # unique in the chapter; the multipart filename and MangaDex's originalFileName
    mime: str
    size: int
    sha256: str


@dataclass(frozen=True)
class ChapterPlan:
    key: ChapterKey  # the ledger's chapter key
    label: str
    manga: str
    groups: tuple[str, ...]
    language: str
    draft: dict  # chapterDraft, as sent at commit
    pages: tuple[PlannedPage, ...]  # natural order

    @property
    def total_bytes(self) -> int:
        return sum(p.size for p in self.pages)


@dataclass(frozen=True)
class UploadOptions:
    stale_after: timedelta = timedelta(minutes=STALE_AFTER_MIN)
    abandon_open: bool = False
    force_new: bool = False
    concurrency: int = DEFAULT_CONCURRENCY
    retry_rounds: int = 3  # rounds of re-sending the files that failed, after the first
    retry_backoff_s: float = 2.0  # doubled each round
    command: str = "upload"  # the command running: its hints name only its own options
    replace: bool = False  # correct a published chapter whose pages or metadata changed, in place
    group_names: dict[str, str] = field(default_factory=dict)  # id -> name, where known: how changes name groups


class ChapterLookups(Protocol):
    """The questions about a chapter that publish.py's LookAhead asks ahead: is it on MangaDex already, and
    will MangaDex hold it for approval?"""

    def find_chapters(self, manga: str, chapter: str | None, language: str,
                      groups: Sequence[str]) -> list[Chapter]: ...
    def check_approval_required(self, manga: str, locale: str) -> bool: ...


class UploadClient(ChapterLookups, Protocol):
    """What the state machine needs of MangaDex (mangadex/client.py's MangaDexClient; the tests' fakes)."""

    def get_open_session(self) -> UploadSession | None: ...

    def begin_session(self, manga: str, groups: Sequence[str]) -> UploadSession: ...
    def upload_files(self, session_id: str, files: Sequence[UploadFile],
                     on_bytes: Callable[[int], None] | None = None) -> BatchResult: ...
    def delete_files(self, session_id: str, file_ids: Sequence[str]) -> None: ...
    def commit(self, session_id: str, draft: dict, page_order: Sequence[str]) -> Chapter: ...
    def abandon_session(self, session_id: str) -> None: ...
    def get_chapter(self, chapter_id: str) -> Chapter: ...
    def begin_edit_session(self, chapter_id: str, version: int) -> UploadSession: ...
    def update_chapter(self, chapter_id: str, version: int, fields: dict) -> Chapter: ...


class UploadEvents:
    """What the state machine tells whoever shows progress; every method is optional."""

    def state(self, plan: ChapterPlan, state: str, detail: str | None) -> None: ...
    def notice(self, plan: ChapterPlan, text: str) -> None: ...
    def bytes_sent(self, plan: ChapterPlan, count: int) -> None: ...  # of pages MangaDex accepted
    def pages_done(self, plan: ChapterPlan, count: int) -> None: ...
    def under_way(self, plan: ChapterPlan) -> None: ...  # a batch's bytes are all handed over (called for each)


@dataclass(frozen=True)
class EarlierRun:
    state: str  # the last state that did something (not CHECKED, FINDING_SESSION or FAILED)
    session_id: str | None
    chapter_id: str | None
    at: datetime  # when it reached that state


# What each state's work is, in the time report (`ChapterTimings.phases`)
PHASE_OF_STATE = {
    State.CHECKED: "duplicate_check",
    State.FINDING_SESSION: "session_lookup",
    State.ABANDONING: "abandon",
    State.BEGINNING: "begin",
    State.RESUMING: "resume",
    State.UPLOADING: "upload",
    State.RECONCILING: "reconcile",
    State.COMMITTING: "commit",
    State.EDITING: "edit_begin",
    State.UPDATING: "update",
}


@dataclass(frozen=True)
class BatchTiming:
    pages: int
    bytes: int
    seconds: float  # from the request's start to its answer (or its failure)
    round: int  # 1: the first sending; 2 and on: the retries of what failed
    accepted: int


@dataclass
class ChapterTimings:
    """Where one chapter's time went, in seconds: each phase (`PHASE_OF_STATE`), each batch, and the wait for
    the last answers once every byte of a round was sent (part of `upload`)."""

    phases: dict[str, float] = field(default_factory=dict)
    batches: list[BatchTiming] = field(default_factory=list)
    last_answers_s: float = 0.0

    def add(self, phase: str, seconds: float) -> None:
        self.phases[phase] = self.phases.get(phase, 0.0) + seconds

    def line(self) -> str:
        """The report in one line, for -v: each phase, then the batches and the wait for the last answers."""
        phases = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in self.phases.items())
        batches = "; ".join(f"{b.pages} pages {b.bytes / 1e6:.1f} MB {b.seconds:.2f} s"
                            + (f" (retry round {b.round - 1})" if b.round > 1 else "") for b in self.batches)
        return f"{phases}; last answers {self.last_answers_s:.2f} s; batches: {batches or 'none'}"

    def to_json(self) -> dict:
        return {"phases": {name: round(s, 3) for name, s in self.phases.items()},
                "last_answers_s": round(self.last_answers_s, 3),
                "batches": [{"pages": b.pages, "bytes": b.bytes, "seconds": round(b.seconds, 3), "round": b.round,
                             "accepted": b.accepted} for b in self.batches]}


@dataclass
class ChapterResult:
    plan: ChapterPlan
    status: Status
    chapter_id: str | None = None
    error: str | None = None
    notices: list[str] = field(default_factory=list)
    failed_pages: dict[str, str] = field(default_factory=dict)  # origin -> last reason
    # What differs from the chapter as published ("groups", "volume", "title", "publish_at", "pages"): corrected
    # when the status is CORRECTED; else (a skipped chapter) said in a notice and left as it is.
    changed: list[str] = field(default_factory=list)
    retry_later: bool = False  # failed for a reason outside the chapter (outside_the_chapter)
    held_for_approval: bool = False  # MangaDex said it holds this chapter for staff approval
    timings: ChapterTimings = field(default_factory=ChapterTimings)


def listed_ids(client: ChapterLookups, plan: ChapterPlan) -> list[str]:
    """The ids of the plan's chapter among those MangaDex lists (the processed ones)."""
    found = client.find_chapters(plan.manga, plan.draft["chapter"], plan.language, plan.groups)
    return [c.id for c in found if chapter_matches(c, plan)]


def wait_until_listed(client: ChapterLookups, results: Sequence[ChapterResult], sleep=time.sleep) -> list[str]:
    """After a run: wait (about half a minute at most) until MangaDex lists the chapters it just published,
    so that a rerun right after finds them even without this ledger (another machine, a lost ledger);
    a notice for each one still unlisted (a chapter held for approval is not waited for)."""
    pending = [r for r in results if r.status == Status.UPLOADED and r.chapter_id and not r.held_for_approval]
    try:
        for pause in (0.0, *LISTING_PAUSES_S):
            if not pending:
                break
            sleep(pause)
            pending = [r for r in pending if r.chapter_id not in listed_ids(client, r.plan)]
    except MdUploadError:  # the chapters are published: a failing look at the lists changes nothing
        pass
    return [f"{r.plan.key.label}: MangaDex does not list chapter {r.chapter_id} yet (still processing); "
            "until it does, only this ledger knows it is published: keep the ledger for a rerun" for r in pending]


def chapter_matches(found, plan: ChapterPlan) -> bool:
    """Whether a chapter listed by MangaDex is this plan's chapter: the same release as vocabulary.ChapterKey
    defines it (the API and manga are those asked; numbers and volumes compare as strings, as MangaDex does)."""
    draft = plan.draft
    if found.language != plan.language or set(found.group_ids) != set(plan.groups):
        return False  # another language, or another set of groups (A+B is not A): another release
    if found.chapter != draft["chapter"] or found.volume != draft["volume"]:
        return False  # the same number in another volume is another chapter; so is another volume-only release
    # Oneshots have no number: the title tells them apart.
    return draft["chapter"] is not None or found.title == draft["title"]


class ChapterUpload:
    """Publishes one chapter: `run()` walks the states until a final one and returns the result."""

    def __init__(self, client: UploadClient, ledger: Ledger, plan: ChapterPlan,
                 options: UploadOptions | None = None, events: UploadEvents | None = None,
                 sleep=time.sleep, now=lambda: datetime.now(UTC), *, lookups: ChapterLookups | None = None,
                 link: LinkEstimate | None = None, pairing: Pairing | None = None):
        self.client = client
        self.link = link or LinkEstimate()  # what the batches measured: a run's chapters share one
        self.lookups = lookups or client  # where the first questions are answered (asked ahead, or now)
        self.ledger = ledger
        self.plan = plan
        self.options = options or UploadOptions()
        # The published chapter a change of groups or volume corrects (pairing.py); not with --force-new.
        self.pairing = None if self.options.force_new else pairing
        # The key of this chapter's record in the ledger: its own, or the paired published chapter's until
        # the correction is committed.
        self.ledger_key = self.pairing.published.key if self.pairing and self.pairing.published else plan.key
        self.correcting = False  # this run corrects a published chapter in place (EDITING or UPDATING)
        self.edit_after_update = False  # pages or publish_at to correct in an edit session, after UPDATING
        self.events = events or UploadEvents()
        self._sleep = sleep
        self._now = now
        self.result = ChapterResult(plan, Status.FAILED)
        self.session: UploadSession | None = None  # this chapter's own session, once begun or claimed
        self.to_abandon: UploadSession | None = None  # the session ABANDONING closes
        self.skip_after_abandon = False
        self.file_ids: dict[str, str] = {}  # upload_name -> file id in the current session
        self.failures: dict[str, str] = {}  # upload_name -> last reason it failed
        self.upload_rounds = 0
        self.commit_attempts = 0
        self.begin_unlooked = False  # begun without looking for an open session first (_session_or_begin)
        self._last_byte_at = time.perf_counter()  # when the latest byte of a batch was sent
        self._lock = threading.Lock()

    # --- the driver --------------------------------------------------------------------------

    def run(self) -> ChapterResult:
        if self.ledger.claim_unknown(self.plan.key):
            self._notice(f"the ledger's record of this chapter is from before mdupload recorded which MangaDex it "
                         f"published to; it is taken as {self.plan.key.api}'s from now on (if it was a rehearsal on "
                         "another MangaDex, run again with --force-new to publish here)")
        if self.pairing is not None and self.pairing.ambiguous:
            return self._ambiguous()
        self.earlier = self._earlier_run()
        state = State.CHECKED
        self._record(state)
        try:
            while state not in FINAL_STATES:
                started = time.perf_counter()
                try:
                    following = getattr(self, f"_step_{state.lower()}")()
                finally:
                    self.result.timings.add(PHASE_OF_STATE[state], time.perf_counter() - started)
                if following not in TRANSITIONS[state]:
                    raise AssertionError(f"illegal transition {state} -> {following}")
                self.correcting = self.correcting or following in (State.EDITING, State.UPDATING)
                state = following
                self._record(state, session_id=self.session.id if self.session and state not in FINAL_STATES
                             else None, chapter_id=self.result.chapter_id, clear_session=state in _CLEARS_SESSION,
                             detail=self._detail(state), draft=self.plan.draft if state == State.COMMITTED else None,
                             new_key=self.plan.key if state == State.COMMITTED and self.ledger_key != self.plan.key
                             else None)
                if state == State.COMMITTED:
                    self.ledger_key = self.plan.key
        except AuthError as exc:  # every chapter after this one would fail the same way: stop the run
            self._fail(str(exc))
            raise
        except MdUploadError as exc:
            self._fail(str(exc))
            self.result.retry_later = outside_the_chapter(exc)
            return self.result
        self.result.status = {State.COMMITTED: Status.CORRECTED if self.correcting else Status.UPLOADED,
                              State.SKIPPED: Status.SKIPPED}[state]
        return self.result

    def _detail(self, state: str) -> str | None:
        if state == State.ABANDONING:
            return f"session {self.to_abandon.id}"
        if state in (State.EDITING, State.UPDATING) and self.result.changed:
            return CORRECTING_DETAIL + ", ".join(self.result.changed)
        if state == State.COMMITTED and self.correcting:
            return CORRECTED_DETAIL + ", ".join(self.result.changed)
        return None

    def _ambiguous(self) -> ChapterResult:
        """Several published chapters could be this one with other groups (or another volume), or it is one of
        several chapters that could be the same published one: neither published nor corrected; nothing recorded."""
        found = "; ".join(f"chapter {p.chapter_id} (groups {self._groups(p.key.groups)}, volume {p.key.volume!r})"
                          for p in self.pairing.candidates)
        key = self.plan.key
        self.result.changed = [name for name, differs in (
            ("groups", any(p.key.groups != key.groups for p in self.pairing.candidates)),
            ("volume", any(p.key.volume != key.volume for p in self.pairing.candidates))) if differs]
        self._notice(f"not published: it differs from what this ledger published only by its groups or volume, and "
                     f"it cannot tell which release it corrects (candidates: {found}; or several chapters of the "
                     "manifest are candidates for one of them); correct the credit on MangaDex's website, or run "
                     "again with --force-new to publish it as another release")
        self.result.status = Status.SKIPPED
        return self.result

    def _earlier_run(self) -> EarlierRun | None:
        """What an earlier run of this chapter left: its session and the last state it reached before it
        stopped (a rerun killed while still looking around does not hide what the run before it did)."""
        record = self.ledger.chapter(self.ledger_key)
        if record is None:
            return None
        state, at = (self.ledger.last_state(self.ledger_key, ignoring=(*LOOKING_AROUND, State.FAILED))
                     or (record.state, record.updated_at))
        return EarlierRun(state, record.session_id, record.chapter_id, datetime.fromisoformat(at))

    def _record(self, state: str, *, session_id: str | None = None, chapter_id: str | None = None,
                detail: str | None = None, error: str | None = None, clear_session: bool = False,
                draft: dict | None = None, new_key: ChapterKey | None = None) -> None:
        self.ledger.record(self.ledger_key, state, session_id=session_id, chapter_id=chapter_id,
                           detail=detail, error=error, clear_session=clear_session, draft=draft, new_key=new_key)
        self.events.state(self.plan, state, detail or error)

    def _groups(self, groups: Sequence[str]) -> str:
        """A set of groups as a change names it: "Sandbox Scans+<id of a group whose name is not known>", or
        "no group"."""
        return "+".join(self.options.group_names.get(group, group) for group in groups) or "no group"

    def _notice(self, text: str) -> None:
        self.result.notices.append(text)
        self.events.notice(self.plan, text)

    def _fail(self, reason: str) -> None:
        self.result.status = Status.FAILED
        self.result.error = reason
        self.result.failed_pages = {self._origin(name): why for name, why in self.failures.items()}
        self._record(State.FAILED, session_id=self.session.id if self.session else None, error=reason)

    def _origin(self, upload_name: str) -> str:
        return next((p.origin for p in self.plan.pages if p.upload_name == upload_name), upload_name)

    # --- CHECKED: is it already published? ----------------------------------------------------

    def _step_checked(self) -> str:
        earlier = self.earlier
        if not self.options.force_new and earlier and earlier.chapter_id:
            if earlier.state in (*PUBLISHED_STATES, State.UPDATING):  # the ledger's pages are the published ones
                return self._published_already(earlier.chapter_id)  # (an unfinished UPDATING is redone)
            if self._edit_unfinished():
                self.result.chapter_id = earlier.chapter_id
                self.result.changed = self._correction_under_way()
                self._notice(f"resuming the unfinished correction of chapter {earlier.chapter_id}")
                return State.EDITING
        self._plan_pages()
        if self.options.force_new:
            return self._session_or_begin()
        if earlier and earlier.state == State.COMMITTING and earlier.session_id:
            # The commit of an earlier run may have gone through: its session tells.
            return State.FINDING_SESSION
        existing = self._find_on_mangadex()
        if existing:
            self._skip(existing, "MangaDex already has it")
            return self._discard_own_session(earlier)
        return self._session_or_begin()

    def _session_or_begin(self) -> str:
        """FINDING_SESSION when an earlier run may have left this chapter a session (to resume, to claim or
        to tell whether its commit went through); otherwise BEGINNING at once: MangaDex refuses a begin while
        any session is open, and that refusal leads to FINDING_SESSION (`_step_beginning`)."""
        earlier = self.earlier
        if earlier is not None and (earlier.session_id or earlier.state in (State.BEGINNING, State.COMMITTING)):
            return State.FINDING_SESSION
        self.begin_unlooked = True
        return State.BEGINNING

    def _plan_pages(self) -> None:
        self.ledger.plan_pages(self.ledger_key, [(p.origin, p.upload_name, p.size, p.sha256) for p in self.plan.pages])

    def _published_already(self, chapter_id: str) -> str:
        """The ledger records the chapter as published: skipped, unless its pages or metadata (or, paired with it
        by pairing.py, its groups or volume) changed since; then corrected in place with --replace, or the changes
        said."""
        changes, fields = self._changes_since_published()
        if not changes:
            return self._skip(chapter_id, "the ledger records it as published")
        self.result.chapter_id, self.result.changed = chapter_id, fields
        if not self.options.replace:
            also = (", or with --force-new to publish it as another release"
                    if self.ledger_key != self.plan.key and self.options.command == "upload" else "")
            self._notice(f"changed since it was published as chapter {chapter_id}: {'; '.join(changes)}; "
                         f"run again with --replace (or `replace: true`) to correct it in place{also}")
            return self._skip(chapter_id, "the ledger records it as published")
        self._notice(f"correcting chapter {chapter_id} in place: {'; '.join(changes)}")
        edit = "pages" in fields or "publish_at" in fields  # what PUT /chapter cannot change
        if edit and "groups" not in fields:
            return State.EDITING  # the commit's chapterDraft carries the title and volume too
        self.edit_after_update = edit
        return State.UPDATING

    def _changes_since_published(self) -> tuple[list[str], list[str]]:
        """What differs between the plan and what the ledger says was published: each change said, and the
        fields changed ("groups", "volume", "title", "publish_at", "pages")."""
        changes, fields = [], []
        published_as, key = self.ledger_key, self.plan.key
        if published_as.groups != key.groups:
            changes.append(f"groups {self._groups(published_as.groups)} -> {self._groups(key.groups)}")
            fields.append("groups")
        if published_as.volume != key.volume:
            changes.append(f"volume {published_as.volume!r} -> {key.volume!r}")
            fields.append("volume")
        published = self.ledger.pages(self.ledger_key)
        if published:
            before = {p.upload_name: p.sha256 for p in published}
            now = {p.upload_name: p.sha256 for p in self.plan.pages}
            changed = [p.origin for p in self.plan.pages if p.upload_name in before and before[p.upload_name] != p.sha256]
            added = [p.origin for p in self.plan.pages if p.upload_name not in before]
            removed = [p.origin for p in published if p.upload_name not in now]
            for what, origins in (("changed", changed), ("new", added), ("removed", removed)):
                if origins:
                    changes.append(f"{len(origins)} page(s) {what} ({', '.join(origins[:3])}"
                                   + (", ..." if len(origins) > 3 else "") + ")")
            reordered = not (changed or added or removed) and [p.upload_name for p in published] != list(now)
            if reordered:
                changes.append("the pages are in another order")
            if changed or added or removed or reordered:
                fields.append("pages")
        draft = self.ledger.published_draft(self.ledger_key)
        if draft is not None:
            for name, field_name in (("title", "title"), ("volume", "volume"), ("chapter", "chapter"),
                                     ("publishAt", "publish_at")):
                if draft.get(name) != self.plan.draft.get(name) and field_name not in fields:
                    changes.append(f"{name} {draft.get(name)!r} -> {self.plan.draft.get(name)!r}")
                    fields.append(field_name)
        return changes, fields

    def _correction_under_way(self) -> list[str]:
        """What the unfinished correction being resumed changes, as its first EDITING or UPDATING recorded it (the
        ledger's pages are the new ones since the edit began: comparing them would tell nothing)."""
        for _state, _at, _session, detail in reversed(self.ledger.transitions(self.ledger_key)):
            if (detail or "").startswith(CORRECTING_DETAIL):
                return detail.removeprefix(CORRECTING_DETAIL).split(", ")
        return ["pages"]

    def _edit_unfinished(self) -> bool:
        """Whether the last session this chapter's runs began was an edit session not yet committed."""
        for state, *_rest in reversed(self.ledger.transitions(self.ledger_key)):
            if state in (State.EDITING, State.BEGINNING, State.COMMITTED, State.SKIPPED):
                return state == State.EDITING
        return False

    def _discard_own_session(self, earlier: EarlierRun | None) -> str:
        """The chapter is published already: an unfinished session of an earlier run of it is of no use,
        and left open it would stop every other upload of the account until it goes stale."""
        if earlier is None or not earlier.session_id:
            return State.SKIPPED
        session = self.client.get_open_session()
        if session is None or session.id != earlier.session_id:
            return State.SKIPPED
        self._notice(f"abandoning session {session.id} of an earlier run of this chapter ({len(session.files)} files "
                     "there): the chapter is on MangaDex already")
        self.to_abandon, self.skip_after_abandon = session, True
        return State.ABANDONING

    def _find_on_mangadex(self, *, wait: bool = False) -> str | None:
        """The id of this chapter on MangaDex, if it lists it. Without `wait`, the look-ahead's answer; with
        it, MangaDex is asked again for about half a minute (LISTING_PAUSES_S): a chapter just committed is
        listed once processed."""
        if not wait:
            return next(iter(listed_ids(self.lookups, self.plan)), None)
        for pause in (0.0, *LISTING_PAUSES_S):
            self._sleep(pause)
            found = listed_ids(self.client, self.plan)
            if found:
                return found[0]
        return None

    def _skip(self, chapter_id: str | None, why: str) -> str:
        self.result.chapter_id = chapter_id
        self._notice(f"skipped: {why}" + (f" (chapter {chapter_id})" if chapter_id else "")
                     + ("; use --force-new to upload it again on purpose" if self.options.command == "upload" else ""))
        return State.SKIPPED

    # --- FINDING_SESSION: ours, stale, or someone else's? ------------------------------------

    def _step_finding_session(self) -> str:
        earlier = self.earlier
        open_session = self.client.get_open_session()
        if (earlier and earlier.state == State.COMMITTING and earlier.session_id and not self.options.force_new
                and (open_session is None or open_session.id != earlier.session_id)):
            return self._earlier_commit_went_through(earlier.session_id)
        if open_session is None:
            return State.BEGINNING
        if self._is_ours(open_session, earlier):
            self.session = open_session
            return State.RESUMING
        age = self._now() - open_session.updated_at
        minutes = int(age.total_seconds() // 60)
        description = (f"session {open_session.id} (manga {open_session.manga_id}, {len(open_session.files)} files, "
                       f"last used {minutes} min ago)")
        if age > self.options.stale_after:
            self._notice(f"abandoning a stale upload {description}: untouched for longer than "
                         f"{int(self.options.stale_after.total_seconds() // 60)} min")
        elif self.options.abandon_open:
            self._notice(f"abandoning the open upload {description} as --abandon-open asks")
        else:
            owner = self.ledger.owner_of_session(open_session.id)
            begun = [key for key in self.ledger.begun_without_session(open_session.manga_id, self.plan.key.api)
                     if key != self.ledger_key]
            if owner is not None:
                whose = (f"it is the unfinished upload of {owner.label} from an earlier run of mdupload "
                         "(run `mdupload upload` for that chapter to finish it)")
            elif begun and not open_session.files:
                whose = (f"it may be the session an earlier run of {begun[-1].label} began just before it was "
                         "stopped (run `mdupload upload` for that chapter to finish it), or someone uploading "
                         "through the website right now")
            else:
                whose = "it may be someone uploading through the website right now"
            raise SessionBusy(
                f"another upload {description} is open on this account; {whose}.",
                hint="Wait for it to finish, or run again with --abandon-open (or `mdupload sessions --abandon`) "
                     "to abandon it." if self.options.command == "upload" else
                     "The item is tried again later; a session left untouched for --stale-after minutes is abandoned.")
        self.to_abandon = open_session
        return State.ABANDONING

    def _is_ours(self, session: UploadSession, earlier: EarlierRun | None) -> bool:
        if session.manga_id != self.plan.manga or set(session.group_ids) != set(self.plan.groups):
            return False
        if session.chapter_id is not None:  # an edit session: only this chapter's unfinished correction
            return earlier is not None and earlier.session_id == session.id and session.chapter_id == earlier.chapter_id
        if earlier is None:
            return False
        if earlier.session_id:  # kept until the session is committed or abandoned, even after a failure
            return earlier.session_id == session.id
        # Killed after asking to begin, before the answer: claim a session begun since then that no other
        # chapter of the ledger owns, holding nothing but pages of this plan (so that even a wrong claim
        # would lose nothing: every file in it is one of these pages, byte for byte).
        return (earlier.state == State.BEGINNING and session.created_at >= earlier.at - BEGIN_CLOCK_SLACK
                and self.ledger.owner_of_session(session.id) is None and self._begun_for_this_plan(session))

    def _earlier_commit_went_through(self, session_id: str | None) -> str:
        """FINDING_SESSION after a lost commit answer: the session is closed, so look for the chapter."""
        self.result.chapter_id = self._chapter_of_lost_commit(session_id)
        self._notice(f"the commit of an earlier run went through: chapter {self.result.chapter_id}")
        return State.SKIPPED

    def _chapter_of_lost_commit(self, session_id: str | None) -> str:
        """The chapter a commit whose answer was lost created (its session is closed); the caller's COMMITTED
        or SKIPPED record forgets the session."""
        chapter_id = self._find_on_mangadex(wait=True)
        if chapter_id is None:
            raise RetryLater(
                f"the commit of session {session_id} was sent but its answer was lost; the session is "
                "closed, so MangaDex most likely created the chapter, but it does not list it yet (it may still be "
                "processing).",
                hint="Check the chapter on MangaDex (or run `mdupload status` later); run again with --force-new "
                     "only if you are sure it was not published." if self.options.command == "upload" else
                     "It is looked for again when the item is tried again.")
        return chapter_id

    def _ask_approval(self) -> None:
        """Once a new chapter is committed: will MangaDex hold it for staff approval? (Nothing before depends on
        the answer, which the look-ahead asks while the upload runs; the end-of-run wait skips such chapters.)"""
        if self.session is not None and self.session.chapter_id is not None:
            return  # a correction: the chapter was published before
        self.result.held_for_approval = self.lookups.check_approval_required(self.plan.manga, self.plan.language)
        if self.result.held_for_approval:
            self._notice("MangaDex will hold this chapter for staff approval before readers see it "
                         "(a group's first upload in this language, or the manga requires it)")

    # --- ABANDONING, BEGINNING, RESUMING --------------------------------------------------------

    def _step_abandoning(self) -> str:
        session, self.to_abandon = self.to_abandon, None
        if not self.skip_after_abandon:
            # Another chapter's session (per the ledger) is about to go: that chapter must not take it for its
            # own, nor for a committed one, on its next run. Written before the call, as every transition.
            owner = self.ledger.owner_of_session(session.id)
            if owner is not None:
                self.ledger.forget_session(owner)
        self.client.abandon_session(session.id)
        if self.skip_after_abandon:
            return State.SKIPPED  # the SKIPPED record forgets this chapter's session
        return State.BEGINNING

    def _step_beginning(self) -> str:
        # The BEGINNING transition is in the ledger (the chapter's previous session forgotten in the same
        # write); if this call's answer is lost, the session is looked up here, or claimed by a rerun.
        for attempt in range(1, BEGIN_ATTEMPTS + 1):
            try:
                self.session = self.client.begin_session(self.plan.manga, self.plan.groups)
                break
            except (OutcomeUnknown, ServerError):
                session = self.client.get_open_session()
                if session is not None:
                    if not self._begun_for_this_plan(session):
                        if self.begin_unlooked:  # it may have been open before: deal with it as FINDING_SESSION does
                            return self._look_for_the_open_session()
                        raise RetryLater(
                            f"beginning an upload session failed, and then another one was open on the account "
                            f"(session {session.id}, manga {session.manga_id}).",
                            hint="Someone may be uploading through the website: run again once it is done.") from None
                    self.session = session
                    break
                if attempt == BEGIN_ATTEMPTS:
                    raise  # no session was opened: nothing to clean up
                self._sleep(self.options.retry_backoff_s * 2 ** (attempt - 1))
            except ApiError as refused:  # (a 429 or a captcha is never taken for an open session)
                if self.begin_unlooked and refused.status in BEGIN_REFUSED_WHILE_OPEN:
                    return self._look_for_the_open_session()  # most likely another session is open
                raise
        self._record(State.BEGINNING, session_id=self.session.id, detail="session begun")
        return State.UPLOADING

    def _look_for_the_open_session(self) -> str:
        """A begin made without looking for an open session first (`_session_or_begin`) was refused: look now,
        as FINDING_SESSION would have, and begin again only once the open session is dealt with."""
        self.begin_unlooked = False
        return State.FINDING_SESSION

    def _begun_for_this_plan(self, session: UploadSession) -> bool:
        """A new chapter's session for this manga and groups, holding nothing but pages of this plan."""
        pages = {p.upload_name: p for p in self.plan.pages}

        def one_of_ours(f: SessionFile) -> bool:
            page = pages.get(f.original_file_name)
            return page is not None and f.file_size == page.size and f.file_hash.lower() == page.sha256

        return (session.manga_id == self.plan.manga and set(session.group_ids) == set(self.plan.groups)
                and session.chapter_id is None and all(one_of_ours(f) for f in session.files))

    def _step_resuming(self) -> str:
        self._notice(f"resuming session {self.session.id} of an earlier run ({len(self.session.files)} files there)")
        self._adopt_session_files(self.session.files)
        return State.UPLOADING

    # --- EDITING and UPDATING: corrections (--replace) ------------------------------------------

    def _step_editing(self) -> str:
        """Begin (or take back) the edit session of the published chapter; keep its unchanged pages."""
        chapter_id = self.result.chapter_id
        self._plan_pages()
        open_session = self.client.get_open_session()
        if open_session is not None:
            owner = self.ledger.owner_of_session(open_session.id)
            if open_session.chapter_id != chapter_id or owner not in (None, self.ledger_key):
                raise SessionBusy(
                    f"another upload session {open_session.id} (manga {open_session.manga_id}) is open on this "
                    f"account, so chapter {chapter_id} cannot be corrected now.",
                    hint="Wait for it to finish, or abandon it with `mdupload sessions --abandon`, then run again.")
            self.session = open_session  # this chapter's edit session, begun by a run that was stopped
        else:
            self._begin_edit(chapter_id)
        self._record(State.EDITING, session_id=self.session.id, chapter_id=chapter_id, detail="edit session open")
        kept_before = len(self.session.files)
        self._adopt_session_files(self.session.files)
        self._notice(f"edit session {self.session.id}: {len(self.file_ids)} of the chapter's {kept_before} page(s) "
                     f"kept as they are, {len(self.plan.pages) - len(self.file_ids)} to send")
        return State.UPLOADING

    def _begin_edit(self, chapter_id: str) -> None:
        """POST /upload/begin/{chapterId} with the chapter's current version: a stale version (someone changed the
        chapter meanwhile) is read again and tried once more."""
        for attempt in (1, 2):
            version = self.client.get_chapter(chapter_id).version
            try:
                self.client.begin_edit_session(chapter_id, version)
                break
            except Conflict as exc:
                if attempt == 2:
                    raise self._stale(chapter_id, exc) from None
            except (OutcomeUnknown, ServerError):
                break  # whether it was begun, the session list tells
        session = self.client.get_open_session()  # read back with its files (the begin's answer may lack them)
        if session is None or session.chapter_id != chapter_id:
            raise UploadFailed(f"beginning the edit session of chapter {chapter_id} failed: no session of it is open.",
                               hint="Run again: nothing was changed.")
        self.session = session

    def _stale(self, chapter_id: str, exc: Conflict) -> UploadFailed:
        return UploadFailed(
            f"chapter {chapter_id} changed on MangaDex while it was being corrected, twice in a row ({exc}); "
            "nothing was changed.",
            hint="Someone (a group member, or staff) is editing it: check it on MangaDex, then run again.")

    def _step_updating(self) -> str:
        """The metadata changed: PUT /chapter/{id} with its current version and, when they changed, the groups; no
        page is sent. Pages (or publish_at) to correct as well: the edit session follows."""
        chapter_id = self.result.chapter_id
        fields = {name: self.plan.draft[name] for name in ("volume", "chapter", "title", "translatedLanguage")}
        if "groups" in self.result.changed:
            fields["groups"] = list(self.plan.groups)
        for attempt in (1, 2):
            version = self.client.get_chapter(chapter_id).version
            try:
                self.client.update_chapter(chapter_id, version, fields)
                break
            except Conflict as exc:
                if attempt == 2:
                    raise self._stale(chapter_id, exc) from None
        if self.edit_after_update:
            return State.EDITING
        return State.COMMITTED  # recorded with the new draft (and the new key, when the groups or volume changed)

    # --- UPLOADING and RECONCILING ------------------------------------------------------------

    def _step_uploading(self) -> str:
        pending = [p for p in self.plan.pages if p.upload_name not in self.file_ids]
        if pending:
            if self.upload_rounds > 0:
                wait = self.options.retry_backoff_s * 2 ** (self.upload_rounds - 1)
                self._say_resending(pending, wait)
                self._sleep(wait)
            self.upload_rounds += 1
            self._upload(pending)
        return State.RECONCILING

    def _say_resending(self, pending: list[PlannedPage], wait: float) -> None:
        """Every retry is a line: which pages failed and why (the first reason), the wait, the round."""
        reasons = [self.failures[p.upload_name] for p in pending if p.upload_name in self.failures]
        why = f" ({reasons[0]}{'; ...' if len(set(reasons)) > 1 else ''})" if reasons else ""
        self._notice(f"{len(pending)} page(s) not accepted yet{why}; sending them again in {wait:g} s "
                     f"(round {self.upload_rounds + 1} of {self.options.retry_rounds + 1})")

    def _upload(self, pages: list[PlannedPage]) -> None:
        """Send the pages in batches, pipelined with a shrinking tail (batches.py); the time from the round's
        last byte to its last answer is the report's `last_answers_s`."""
        self._last_byte_at = time.perf_counter()
        send_pipelined(BatchQueue(pages, self.link), self._send_batch, self.options.concurrency)
        self.result.timings.last_answers_s += max(0.0, time.perf_counter() - self._last_byte_at)

    def _send_batch(self, batch: list[PlannedPage], handed_over: threading.Event) -> None:
        files = [UploadFile(p.path, p.upload_name, p.mime) for p in batch]
        body_bytes = sum(p.size for p in batch)
        handed = 0
        last_byte_at = started = time.perf_counter()

        def on_bytes(count: int) -> None:  # the body's bytes leaving; the progress counts them once answered
            nonlocal handed, last_byte_at
            handed += count
            last_byte_at = self._last_byte_at = time.perf_counter()
            if handed >= body_bytes:
                handed_over.set()
                self.events.under_way(self.plan)

        try:
            answer = self.client.upload_files(self.session.id, files, on_bytes=on_bytes)
        except (OutcomeUnknown, ServerError) as exc:
            # Whether the server kept these files is unknown: RECONCILING lists the session before re-sending.
            self._time_batch(batch, started, accepted=0)
            with self._lock:
                for p in batch:
                    self.failures[p.upload_name] = f"{NO_ANSWER} ({exc})"
            return
        self.link.answered(len(batch), body_bytes, last_byte_at)
        by_name = {p.upload_name: p for p in batch}
        accepted: dict[str, str] = {}
        for sent in answer.files:  # mapped by name, never by the order of the answer
            page = by_name.get(sent.original_file_name)
            if page is not None and page.upload_name not in accepted:
                accepted[page.upload_name] = sent.id
        reasons = [e.detail or e.title for e in answer.errors]
        self._time_batch(batch, started, accepted=len(accepted))
        with self._lock:
            for name in by_name:
                if name in accepted:
                    self.file_ids[name] = accepted[name]
                    self.failures.pop(name, None)
                else:
                    self.failures[name] = _reason_for(name, answer.errors) or "; ".join(reasons) or "refused"
        self.ledger.set_file_ids(self.ledger_key, self.session.id, accepted)
        # bytes count as sent once MangaDex answered for them (not as they leave for the socket's buffers)
        self.events.bytes_sent(self.plan, sum(by_name[name].size for name in accepted))
        self.events.pages_done(self.plan, len(accepted))

    def _time_batch(self, batch: list[PlannedPage], started: float, *, accepted: int) -> None:
        timing = BatchTiming(len(batch), sum(p.size for p in batch), time.perf_counter() - started,
                             self.upload_rounds, accepted)
        with self._lock:
            self.result.timings.batches.append(timing)

    def _step_reconciling(self) -> str:
        if not self.failures and all(p.upload_name in self.file_ids for p in self.plan.pages):
            return State.COMMITTING  # every page answered as accepted: the listing could add nothing
        session = self.client.get_open_session()
        if session is None or session.id != self.session.id:
            raise UploadFailed(f"the upload session {self.session.id} was closed by someone else while uploading.",
                               hint="Run again: a new session will be begun.")
        self.session = session
        self._adopt_session_files(session.files)
        missing = [p for p in self.plan.pages if p.upload_name not in self.file_ids]
        if not missing:
            return State.COMMITTING
        if self.upload_rounds > self.options.retry_rounds:
            for p in missing:
                self.failures.setdefault(p.upload_name, "not in the session after every retry")
            names = ", ".join(f"{self._origin(p.upload_name)} ({self.failures[p.upload_name]})" for p in missing)
            unanswered = all(self.failures[p.upload_name].startswith(NO_ANSWER) for p in missing)
            kept = "the pages already uploaded are kept in the session and will not be sent again."
            raise (RetryLater if unanswered else UploadFailed)(
                f"{len(missing)} page(s) still failed after {self.options.retry_rounds} retries: {names}.",
                hint=f"MangaDex did not answer: run again later; {kept}" if unanswered else
                     f"Fix or re-export those pages and run again; {kept}")
        return State.UPLOADING

    def _adopt_session_files(self, files: tuple[SessionFile, ...]) -> None:
        """Match the session's files to the plan (name and size, confirmed by the hash); delete the rest.

        MangaDex does not document that `fileHash` is the SHA-256 of the bytes; a file whose id the
        ledger recorded for this very page (unchanged on disk since: plan_pages keeps the id only then)
        is confirmed by that, whatever its hash says.
        """
        wanted = {p.upload_name: p for p in self.plan.pages}
        recorded = {p.upload_name: p.file_id for p in self.ledger.pages(self.ledger_key)
                    if p.file_id and p.session_id == self.session.id}
        keep: dict[str, str] = {}
        strays: list[str] = []
        for f in files:
            page = wanted.get(f.original_file_name)
            same = (page is not None and f.file_size == page.size
                    and (not f.file_hash or f.file_hash.lower() == page.sha256
                         or recorded.get(page.upload_name) == f.id))
            if same and page.upload_name not in keep:
                keep[page.upload_name] = f.id
            else:
                strays.append(f.id)  # not in the plan, changed on disk since, or a second copy
        if strays:
            self.client.delete_files(self.session.id, strays)
            self._notice(f"removed {len(strays)} file(s) from the session that are not pages of this plan "
                         "(left over, changed on disk since, or sent twice)")
        self.file_ids = keep
        for name in keep:
            self.failures.pop(name, None)
        self.ledger.set_file_ids(self.ledger_key, self.session.id, {name: keep.get(name) for name in wanted})

    # --- COMMITTING ---------------------------------------------------------------------------

    def _step_committing(self) -> str:
        page_order = [self.file_ids[p.upload_name] for p in self.plan.pages]
        self.commit_attempts += 1
        try:
            chapter = self.client.commit(self.session.id, self.plan.draft, page_order)
        except (OutcomeUnknown, ServerError) as exc:
            # The commit may or may not have happened: find out before doing anything else.
            if self.commit_attempts >= 3:
                raise RetryLater(f"the commit of session {self.session.id} failed three times ({exc}).",
                                   hint="Run again later: the session and its pages are kept.") from None
            still_open = self.client.get_open_session()
            if still_open is not None and still_open.id == self.session.id:
                return State.RECONCILING  # provably not committed: check the files, commit again
            self.result.chapter_id = self._chapter_of_lost_commit(self.session.id)
            self._ask_approval()
            return State.COMMITTED
        self.result.chapter_id = chapter.id
        self._ask_approval()
        return State.COMMITTED  # recorded with the chapter id, the session forgotten in the same write


def _reason_for(name: str, errors) -> str | None:
    for error in errors:
        if name in (error.detail or "") or name in str(error.context or ""):
            return error.detail or error.title
    return None

