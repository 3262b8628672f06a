"""Which published chapter a manifest chapter whose groups or volume changed is a correction of.

A chapter's identity (vocabulary.ChapterKey) holds its groups and its volume, so that another group's
release, or chapter 1 of another volume, is never taken for ours by the duplicate check on MangaDex.
But a chapter this ledger itself published, whose manifest entry now credits other groups (`[A, B]`
to `[A]`) or puts a numbered chapter in another volume, is the same release with its credit or its
volume wrong: it is corrected in place (`--replace`), never published a second time.

A manifest chapter with no record of its own in the ledger, and a chapter this ledger published
(`Ledger.published_here`) that no chapter of the manifest claims exactly, are **paired** when they
agree on everything but the groups and, for a numbered chapter, the volume (the API, the manga, the
language, the number; a oneshot's title and a volume-only release's volume stay identity). Only
one-to-one pairs count: a manifest chapter with several candidates, or one of several manifest
chapters that are candidates for the same published one, is `ambiguous`: it is neither published
nor corrected (the run cannot tell which release it is), and says so (docs/identity.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .ledger import Ledger
from .vocabulary import LOOKING_AROUND, ChapterKey, State


@dataclass(frozen=True)
class Published:
    """A chapter this ledger published: its key (its identity when it was published) and its id."""

    key: ChapterKey
    chapter_id: str


@dataclass(frozen=True)
class Pairing:
    """What a manifest chapter with no record of its own may be the correction of: exactly one published chapter
    (`published`), or several candidates either way (`ambiguous`, listing the published ones)."""

    candidates: tuple[Published, ...]
    one_to_one: bool

    @property
    def published(self) -> Published | None:
        return self.candidates[0] if self.one_to_one else None

    @property
    def ambiguous(self) -> bool:
        return not self.one_to_one


def same_release_but_credit(key: ChapterKey, other: ChapterKey) -> bool:
    """Whether two keys agree on everything but the groups and, for a numbered chapter, the volume."""
    if (key.api, key.manga, key.language, key.chapter, key.title) != (
            other.api, other.manga, other.language, other.chapter, other.title):
        return False
    return key.chapter is not None or key.volume == other.volume


def pair_with_published(ledger: Ledger, keys: Iterable[ChapterKey]) -> dict[ChapterKey, Pairing]:
    """The pairing of each of `keys` (every chapter of the manifest) that has no record of its own with a chapter
    this ledger published and no key of `keys` claims; keys with no candidate are left out."""
    keys = list(dict.fromkeys(keys))
    claimed = set(keys)
    unrecorded = [key for key in keys if _nothing_recorded(ledger, key)]
    published: list[Published] = []
    for api, manga in dict.fromkeys((key.api, key.manga) for key in unrecorded):
        published += [Published(key, chapter_id) for key, chapter_id in ledger.published_here(api, manga)
                      if key not in claimed]
    candidates = {key: tuple(p for p in published if same_release_but_credit(key, p.key)) for key in unrecorded}
    claimants = {p: [key for key in unrecorded if p in candidates[key]] for p in published}
    return {key: Pairing(found, one_to_one=len(found) == 1 and len(claimants[found[0]]) == 1)
            for key, found in candidates.items() if found}


def _nothing_recorded(ledger: Ledger, key: ChapterKey) -> bool:
    """Whether the ledger holds nothing published or under way for this key (a record that only looked around,
    or failed before a session was begun, counts as nothing)."""
    record = ledger.chapter(key)
    return record is None or (record.chapter_id is None and record.session_id is None
                              and record.state in (*LOOKING_AROUND, State.SKIPPED, State.FAILED))
