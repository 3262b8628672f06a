"""The end of an upload run: one summary (published, skipped, set aside, failed, bytes, time) and the
link of every published chapter, for people and for the --json document."""

from __future__ import annotations

from dataclasses import dataclass, field

from .upload import ChapterResult
from .vocabulary import Status, chapter_url, format_bytes


@dataclass
class RunSummary:
    """What a run did to the chapters it was given."""

    api_url: str
    published: list[ChapterResult] = field(default_factory=list)  # uploaded now
    corrected: list[ChapterResult] = field(default_factory=list)  # published before, corrected in place now
    skipped: list[ChapterResult] = field(default_factory=list)  # already on MangaDex (or in the ledger)
    failed: list[ChapterResult] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)  # labels of the chapters --skip-invalid set aside
    bytes_sent: int = 0
    seconds: float = 0.0

    @classmethod
    def of(cls, results: list[ChapterResult], invalid: list[str], *, api_url: str, seconds: float) -> RunSummary:
        summary = cls(api_url=api_url, invalid=list(invalid), seconds=seconds)
        for result in results:
            {Status.UPLOADED: summary.published, Status.CORRECTED: summary.corrected,
             Status.SKIPPED: summary.skipped}.get(result.status, summary.failed).append(result)
        summary.bytes_sent = (sum(result.plan.total_bytes for result in summary.published)
                              + sum(batch.bytes for result in summary.corrected for batch in result.timings.batches
                                    if batch.accepted))  # a correction sends only its new and changed pages
        return summary

    @property
    def chapters(self) -> int:
        return len(self.published) + len(self.corrected) + len(self.skipped) + len(self.failed) + len(self.invalid)

    def link(self, result: ChapterResult) -> str | None:
        return chapter_url(self.api_url, result.chapter_id) if result.chapter_id else None

    def line(self) -> str:
        counts = [(len(self.published), "published"), (len(self.corrected), "corrected in place"),
                  (len(self.skipped), "already on MangaDex (skipped)"),
                  (len(self.invalid), "set aside by --skip-invalid"), (len(self.failed), "failed")]
        said = ", ".join(f"{count} {what}" for count, what in counts if count) or "nothing done"
        return f"summary: {said} of {self.chapters} chapter(s); {format_bytes(self.bytes_sent)} sent in {self.seconds:.1f} s"

    def link_lines(self) -> list[str]:
        return [f"  {result.plan.label}: {self.link(result)}" for result in self.published + self.corrected
                + self.skipped if result.chapter_id]

    def to_json(self) -> dict:
        return {"published": len(self.published), "corrected": len(self.corrected), "skipped": len(self.skipped),
                "invalid": len(self.invalid), "failed": len(self.failed), "bytes": self.bytes_sent,
                "seconds": round(self.seconds, 3),
                "links": [self.link(r) for r in self.published + self.corrected + self.skipped if r.chapter_id]}
