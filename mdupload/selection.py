"""Which chapters of a manifest a command works on: `--chapter` and `--exclude` with lists and ranges.

Each option takes comma-separated terms, and may be given several times:

    --chapter 1-6            chapters 1 to 6, both ends included (1.5 and 2a too, 6.5 and 6a not)
    --chapter 1,3,7-9        a list of numbers and ranges
    --chapter oneshot        the oneshot
    --exclude 4              every selected chapter but 4

Numbers are compared in MangaDex's order, by value: 1 < 1.5 < 2 < 10 < 10a < 10.5 < 11 (a letter
comes right after its number). Without `--chapter` every chapter is selected. A term that matches no
chapter of the manifest is an error naming the chapters it has, so that a typo never turns into
"nothing to do" or into publishing more than meant.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from .errors import UsageError
from .manifest import ChapterSpec, Manifest

ONESHOT = "oneshot"
_NUMBER = re.compile(r"(\d+)(?:\.(\d+))?([a-z]?)")


def number_order(chapter: str | None) -> tuple:
    """The sort key of a chapter number in MangaDex's order; the oneshot (None) comes first.

    "10a" sorts right after "10" and before "10.5"; a number MangaDex would not accept sorts last, by its text.
    """
    if chapter is None:
        return (0,)
    match = _NUMBER.fullmatch(chapter.strip().lower())
    if not match:
        return (2, chapter)
    whole, fraction, letter = match.groups()
    value = int(whole) + (int(fraction) / 10 ** len(fraction) if fraction else 0.0)
    return (1, value, letter)


@dataclass(frozen=True)
class Term:
    """One term of a selection: a number, a range of numbers, or the oneshot; `text` as the user wrote it."""

    text: str
    low: tuple
    high: tuple

    def matches(self, chapter: str | None) -> bool:
        return self.low <= number_order(chapter) <= self.high


def parse_terms(texts: Iterable[str], option: str) -> list[Term]:
    """The terms of every `option` value ("1-6", "1,3,7-9", "oneshot"); a malformed one is a UsageError."""
    terms = []
    for text in texts:
        for part in text.split(","):
            written = part.strip()
            terms.append(_term(written, option))
    return terms


def _term(written: str, option: str) -> Term:
    lowered = written.lower()
    if lowered == ONESHOT:
        return Term(written, number_order(None), number_order(None))
    ends = [end.strip() for end in lowered.split("-")]
    if 1 <= len(ends) <= 2 and all(_NUMBER.fullmatch(end) for end in ends):
        low, high = number_order(ends[0]), number_order(ends[-1])
        if low > high:
            raise UsageError(f"{option} {written}: the range goes backwards.",
                             hint=f"Write the lower number first: {option} {ends[1]}-{ends[0]}.")
        return Term(written, low, high)
    raise UsageError(f"{option} {written!r} is not a chapter number, a range or 'oneshot'.",
                     hint=f"Write e.g. {option} 12, {option} 1-6, {option} 1,3,7-9 or {option} oneshot.")


def select_chapters(manifest: Manifest, chapters: Sequence[str] = (), exclude: Sequence[str] = ()) -> list[ChapterSpec]:
    """The manifest's chapters picked by `--chapter` (all when empty) minus `--exclude`, in manifest order."""
    wanted = parse_terms(chapters, "--chapter")
    unwanted = parse_terms(exclude, "--exclude")
    for option, terms in (("--chapter", wanted), ("--exclude", unwanted)):
        unmatched = [term.text for term in terms if not any(term.matches(spec.chapter) for spec in manifest.chapters)]
        if unmatched:
            raise UsageError(f"{manifest.path} has no chapter matching {option} {', '.join(unmatched)}.",
                             hint=f"Its chapters are: {describe_numbers(spec.chapter for spec in manifest.chapters)}.")
    selected = [spec for spec in manifest.chapters
                if (not wanted or any(term.matches(spec.chapter) for term in wanted))
                and not any(term.matches(spec.chapter) for term in unwanted)]
    if not selected:
        raise UsageError(f"--exclude leaves no chapter of {manifest.path} to work on.",
                         hint="Exclude fewer chapters, or leave --exclude out.")
    return selected


def describe_numbers(chapters: Iterable[str | None]) -> str:
    """The chapter numbers in MangaDex's order, runs of whole numbers shortened: "oneshot, 1-4, 4.5, 6, 10a"."""
    numbers = sorted(set(chapters), key=number_order)
    parts: list[str] = []
    run: list[int] = []

    def close_run() -> None:
        if run:
            parts.append(f"{run[0]}-{run[-1]}" if len(run) > 2 else ", ".join(map(str, run)))
            run.clear()

    for number in numbers:
        if number is not None and number.isdigit() and (not run or int(number) == run[-1] + 1):
            run.append(int(number))
            continue
        close_run()
        if number is not None and number.isdigit():
            run.append(int(number))
        else:
            parts.append(ONESHOT if number is None else number)
    close_run()
    return ", ".join(parts)
