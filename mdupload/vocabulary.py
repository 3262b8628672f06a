"""The words every module shares: what identifies a chapter, how people read it, the states of its upload.

- `ChapterKey`: what identifies a chapter (a group's release) on one MangaDex: manga, language, the
  set of groups, volume, chapter number, the title of a oneshot, and the API it lives on; the
  manifest's uniqueness rule, the ledger's key and the duplicate check's rule (docs/identity.md).
- `chapter_label`: a chapter as people know it ("vol 2 chapter 3 (en)", "oneshot (en)").
- `State`: the state machine's states (upload.py's TRANSITIONS); `Status`: what became of a
  chapter a run was asked to publish. Both are `StrEnum`s, stored and printed as the strings they
  always were, so existing ledgers and JSON documents read the same.
- `format_bytes`: one unit for sizes, MiB (2^20 bytes), the unit of MangaDex's limits (20 MiB a
  file, 150 MiB a session), so that a size and its limit are always written alike (before, "MB"
  meant 10^6 bytes in the progress lines and 2^20 in the checks' messages).
- `chapter_url`: where people read a chapter.
- `CHUNK_BYTES`: how much of a file is read or written at once.
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple
from urllib.parse import urlsplit

from .limits import MB as MIB

PRODUCTION_API = "https://api.mangadex.org"  # the default API (settings.py), and a key's
CHUNK_BYTES = MIB  # reading, hashing, copying and downloading files: one MiB at a time


class ChapterKey(NamedTuple):
    """What identifies a chapter, a group's release, on one MangaDex (docs/identity.md).

    - `groups` is a set, kept sorted: the order a manifest lists them in does not matter, but A+B is
      another release than A alone.
    - `volume` counts: "vol 1 chapter 1" and "vol 2 chapter 1" are two chapters (series that restart
      their numbering), and a volume-only release (`chapter` None) is told apart by its volume.
    - `title` counts only where the number is absent: two oneshots in one language differ by title; a
      numbered chapter's title is metadata (a change of it is a correction, not another chapter).
    - `api`: the MangaDex API (normalized by `api_identity`) the chapter lives on; a rehearsal on the
      sandbox or on .dev is not a release on MangaDex. Last, with a default, so that a key written as
      the five parts it once was still reads.
    """

    manga: str
    language: str
    groups: tuple[str, ...]
    volume: str | None
    chapter: str | None
    title: str | None = None
    api: str = PRODUCTION_API

    @classmethod
    def of(cls, *, api: str, manga: str, language: str, groups, volume: str | None, chapter: str | None,
           title: str | None) -> ChapterKey:
        """The key of a release: groups as a sorted set, the title kept only for a oneshot, the API normalized."""
        return cls(manga, language, tuple(sorted(set(groups))), volume, chapter,
                   title if chapter is None else None, api_identity(api))

    @property
    def label(self) -> str:
        label = chapter_label(self.chapter, self.volume, self.language)
        if self.chapter is None and self.title:
            label = label.replace("oneshot", f"oneshot \"{self.title}\"", 1)
        return label


def api_identity(api_url: str | None) -> str:
    """The API as identity: scheme and host lower-cased, no trailing slash (`https://api.mangadex.org`)."""
    parts = urlsplit((api_url or PRODUCTION_API).strip())
    return f"{parts.scheme.lower()}://{parts.netloc.lower()}{parts.path.rstrip('/')}"


def chapter_label(chapter: str | None, volume: str | None, language: str) -> str:
    """"chapter 1.5 (pt-br)", "vol 2 chapter 3 (en)", "oneshot (en)"."""
    name = "oneshot" if chapter is None else f"chapter {chapter}"
    if volume is not None:
        name = f"vol {volume} {name}"
    return f"{name} ({language})"


class State(StrEnum):
    """A chapter's upload, as the ledger records it (upload.py's docstring and TRANSITIONS)."""

    CHECKED = "CHECKED"
    FINDING_SESSION = "FINDING_SESSION"
    ABANDONING = "ABANDONING"
    BEGINNING = "BEGINNING"
    RESUMING = "RESUMING"
    UPLOADING = "UPLOADING"
    RECONCILING = "RECONCILING"
    COMMITTING = "COMMITTING"
    COMMITTED = "COMMITTED"
    EDITING = "EDITING"  # --replace: an edit session of the published chapter is being begun (or resumed)
    UPDATING = "UPDATING"  # --replace: only the published chapter's metadata changes (PUT /chapter/{id})
    SKIPPED = "SKIPPED"
    FAILED = "FAILED"


PUBLISHED_STATES = (State.COMMITTED, State.SKIPPED)  # with a chapter id: the chapter is on MangaDex
FINAL_STATES = (State.COMMITTED, State.SKIPPED, State.FAILED)
# States a run records while it only looks at what is there; they hide nothing of what the run before did.
LOOKING_AROUND = (State.CHECKED, State.FINDING_SESSION)


class Status(StrEnum):
    """What became of a chapter a run was asked to publish (`status` in the JSON documents)."""

    UPLOADED = "uploaded"  # published by this run
    CORRECTED = "corrected"  # published before, corrected in place by this run (--replace): the same chapter id
    SKIPPED = "skipped"  # already on MangaDex
    FAILED = "failed"  # not published: the error says why
    NOT_UPLOADED = "not uploaded"  # checked fine, but the run uploaded nothing (another chapter failed its checks)
    INVALID = "invalid"  # failed its checks and --skip-invalid set it aside; the others went out
    DRY_RUN = "dry-run"


def format_bytes(size: float) -> str:
    """A size in MiB, the unit of MangaDex's limits: "151.0 MiB", and "0.04 MiB" below one."""
    return f"{size / MIB:.1f} MiB" if size >= MIB else f"{size / MIB:.2f} MiB"


def chapter_url(api_url: str | None, chapter_id: str) -> str:
    """The chapter's page for people: https://mangadex.org/chapter/<id> for api.mangadex.org (and the same
    for .dev); for any other API (the sandbox), the API's own chapter URL."""
    api_url = api_url or PRODUCTION_API
    host = urlsplit(api_url).hostname or ""
    for site in ("mangadex.org", "mangadex.dev"):
        if host == site or host.endswith("." + site):
            return f"https://{site}/chapter/{chapter_id}"
    return f"{api_url.rstrip('/')}/chapter/{chapter_id}"
