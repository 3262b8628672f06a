"""What checking a page finds: its `PageReport` and `Problem`s, and the bounds that the checks (images.py)
and the repairs (fixes/) share."""

from __future__ import annotations

from dataclasses import dataclass, field

from .pages import Page

# The most pixels a page may claim (an 800 x 150,000 px strip, worth splitting into pages; the bound
# fixes/ decodes to repair one); a header that claims more is refused before anything is decoded.
# It stays below Pillow's own hard limit, which keeps guarding everything else.
MAX_PIXELS = 120_000_000
# Formats --fix converts (Pillow's names); any other format that is not accepted is an error.
CONVERTIBLE_FORMATS = frozenset({"WEBP", "AVIF", "BMP", "TIFF"})


@dataclass(frozen=True)
class Problem:
    code: str
    severity: str  # "error", "fixable" or "warning"
    message: str
    fix: str | None  # fixable: the repair --fix makes (fixes/plan.py's plan_fix); error: what the user should do


@dataclass
class PageReport:
    page: Page
    format: str | None
    mime: str | None
    size: int
    width: int | None
    height: int | None
    sha256: str
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not any(p.severity in ("error", "fixable") for p in self.problems)
