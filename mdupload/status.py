"""What the ledger knows of each chapter of a manifest (`mdupload status`): nothing is asked of MangaDex.

Each chapter is not started, in progress (its state, pages uploaded / total, its session), committed
(the chapter id and when, and what its last correction in place changed) or failed (why). A chapter
whose groups (or volume) changed since this ledger published it shows that chapter, and the change
waiting for `upload --replace` (pairing.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from .ledger import ChapterRecord, Ledger
from .manifest import ChapterSpec, Manifest
from .pairing import pair_with_published
from .upload import CORRECTED_DETAIL
from .vocabulary import LOOKING_AROUND, PUBLISHED_STATES, State


@dataclass
class ChapterStatus:
    """One chapter as `status` shows it; `to_json` is its row in the `--json` document."""

    chapter: str | None
    volume: str | None
    language: str
    state: str = "not started"  # "not started", "in progress", "committed" or "failed"
    chapter_id: str | None = None
    session_id: str | None = None
    committed_at: str | None = None
    pages_uploaded: int = 0
    pages: int = 0
    error: str | None = None
    last_state: str | None = None  # the state machine's last state (upload.py's TRANSITIONS)
    archive_id: str | None = None
    running: bool = False  # an upload is running on this ledger now
    corrected: list[str] | None = None  # what the last correction in place changed ("groups", "pages", ...)
    corrected_at: str | None = None
    # published with other groups (or in another volume) as chapter_id: what `upload --replace` would correct
    published_as: str | None = None

    def to_json(self) -> dict:
        return asdict(self)


def chapter_statuses(manifest: Manifest, specs: list[ChapterSpec], ledger: Ledger | None,
                     api_url: str) -> list[ChapterStatus]:
    """Each chapter as the ledger knows it on the MangaDex at `api_url`; with no ledger (none was ever
    written), every chapter is not started."""
    if ledger is None:
        return [ChapterStatus(spec.chapter, spec.volume, spec.language) for spec in specs]
    running = ledger.writer_running()
    pairings = pair_with_published(ledger, [manifest.chapter_key(spec, api_url) for spec in manifest.chapters])
    statuses = []
    for spec in specs:
        key = manifest.chapter_key(spec, api_url)
        paired = pairings.get(key)
        published_as = paired.published.key if paired is not None and paired.published is not None else None
        key = published_as or key  # the record of the chapter a change of groups or volume would correct
        record = ledger.chapter(key)
        pages = ledger.pages(key)
        status = ChapterStatus(spec.chapter, spec.volume, spec.language,
                               pages_uploaded=sum(1 for p in pages if p.file_id), pages=len(pages))
        if record is not None:
            last = (ledger.last_state(key) or (record.state,))[0]
            state = _state_of(record, last)
            status.state = state
            status.chapter_id = record.chapter_id if state == "committed" else None
            status.session_id = record.session_id
            status.committed_at = record.committed_at if state == "committed" else None
            status.error = record.error if state == "failed" else None
            status.last_state = last
            status.archive_id = record.archive_id
            status.running = running and state == "in progress"
            if published_as is not None:
                status.published_as = f"groups {'+'.join(published_as.groups) or 'none'}, volume {published_as.volume}"
            correction = next(((at, detail) for step, at, _session, detail in reversed(ledger.transitions(key))
                               if step == State.COMMITTED and (detail or "").startswith(CORRECTED_DETAIL)), None)
            if correction is not None and state == "committed":
                status.corrected_at = correction[0]
                status.corrected = correction[1].removeprefix(CORRECTED_DETAIL).split(", ")
        statuses.append(status)
    return statuses


def _state_of(record: ChapterRecord, last: str) -> str:
    if last in PUBLISHED_STATES:
        return "committed" if record.chapter_id else "not started"
    if last == State.FAILED:
        return "failed"
    if last in LOOKING_AROUND:
        return "not started"
    return "in progress"
