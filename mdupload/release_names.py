"""Reading chapter, volume, title and language from the name of a dropped folder or archive.

The default reads the common scanlation naming, for example

    Series Name [es-la] - c012.5 (v03) (The Title) [Group]
    Series Name v03 c012.5 - The Title [Group]
    [Group] Series_Name_Ch.12 [pt-br]
    Series Name - Oneshot [Group]

A series may give its own regular expression instead, with the named groups `chapter`, `volume`,
`title` and `language` (each optional).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ARCHIVE_SUFFIXES = (".cbz", ".zip")

_LANGUAGE = re.compile(r"[\[(]([a-z]{2}(?:-[a-z]{2})?)[\])]", re.IGNORECASE)
_CHAPTER = re.compile(
    r"(?:^|[\s_.\-\[(])(?:c|ch|chp|chap|chapter)[\s_.]*(\d+(?:\.\d+)?[a-z]?)(?=$|[\s_)\]\-]|\.(?!\d))",
    re.IGNORECASE)
_VOLUME = re.compile(r"(?:^|[\s_.\-\[(])(?:v|vol|volume)[\s_.]*(\d+(?:\.\d+)?[a-z]?)(?=$|[\s_)\]\-]|\.(?!\d))",
                     re.IGNORECASE)
_ONESHOT = re.compile(r"(?:^|[\s_\-\[(])one[\s_\-]?shot(?=$|[\s_)\]\-])", re.IGNORECASE)
_TITLE_IN_PARENS = re.compile(r"\(([^()]*[^\d\s()][^()]*)\)")
_BRACKETS = re.compile(r"\[[^\]]*\]")


@dataclass(frozen=True)
class ReleaseName:
    chapter: str | None  # None: a oneshot, or a volume without chapters
    volume: str | None
    title: str | None
    language: str | None  # None: the series' default applies


class UnreadableName(ValueError):
    """The name carries no chapter, volume or oneshot marker that the pattern can read."""


def strip_archive_suffix(name: str) -> str:
    lower = name.lower()
    for suffix in ARCHIVE_SUFFIXES:
        if lower.endswith(suffix):
            return name[: -len(suffix)]
    return name


def normalise_number(text: str | None) -> str | None:
    """`012.5` -> `12.5`, `000` -> `0`, `10A` -> `10a`: the form MangaDex's pattern accepts."""
    if text is None or text == "":
        return None
    match = re.fullmatch(r"0*(\d+)(\.\d+)?([a-zA-Z]?)", text.strip())
    if not match:
        return text.strip()
    whole, fraction, letter = match.groups()
    return f"{int(whole)}{fraction or ''}{letter.lower()}"


def parse_release_name(name: str, pattern: re.Pattern | None = None) -> ReleaseName:
    stem = strip_archive_suffix(name)
    if pattern is not None:
        return _parse_with_pattern(stem, pattern)
    language = _LANGUAGE.search(stem)
    chapter = _CHAPTER.search(stem)
    volume = _VOLUME.search(stem)
    oneshot = _ONESHOT.search(stem)
    if not (chapter or volume or oneshot):
        raise UnreadableName(f"no chapter number (c12, ch.12, chapter 12), volume (v3) or 'oneshot' in {name!r}")
    return ReleaseName(
        chapter=normalise_number(chapter.group(1)) if chapter else None,
        volume=normalise_number(volume.group(1)) if volume else None,
        title=_title(stem, [m for m in (chapter, volume, oneshot) if m]),
        language=language.group(1).lower() if language else None,
    )


def _parse_with_pattern(stem: str, pattern: re.Pattern) -> ReleaseName:
    match = pattern.search(stem)
    if not match:
        raise UnreadableName(f"{stem!r} does not match the series pattern {pattern.pattern!r}")
    groups = match.groupdict()

    def field(name: str) -> str | None:
        value = groups.get(name)
        return value.strip() if value and value.strip() else None

    language = field("language")
    return ReleaseName(chapter=normalise_number(field("chapter")), volume=normalise_number(field("volume")),
                       title=field("title"), language=language.lower() if language else None)


def _title(stem: str, markers: list[re.Match]) -> str | None:
    """A title in parentheses after the number, or the text after ` - ` that follows the last marker."""
    end = max(m.end() for m in markers)
    rest = stem[end:].lstrip(")]")  # a marker may close its own brackets: "(v03)"
    in_parens = [t.strip() for t in _TITLE_IN_PARENS.findall(rest)
                 if not re.fullmatch(r"(?i)\s*(v|vol|volume)[\s_.]*\d+.*", t)]
    if in_parens:
        return in_parens[0]
    rest = _BRACKETS.sub("", rest)
    rest = re.sub(r"\([^()]*\)", "", rest)
    rest = rest.strip(" _-.")
    if rest.startswith("- "):
        rest = rest[2:]
    title = rest.replace("_", " ").strip(" -")
    return title or None
