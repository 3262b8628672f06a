"""Reading chapter, volume, title, language, revision and groups from the name of a dropped folder or archive.

The default reads the names scanlation groups and download tools write, for example

    Series Name [es-la] - c012.5 (v03) (The Title) [Group]
    Series Name v03 c012.5 - The Title [Group]
    [Group] Series_Name_Ch.12 [pt-br]
    [Group A & Group B] Series Name - 012 (Digital)
    Series Name - c012v2 (v03) [Group]
    Series Name - Oneshot [Group]

The rules, each decided for a reason (manifests/SERIES.md has the table of names and what they become):

- A chapter is `c12`, `ch.12`, `chap 12`, `chapter 12`, `d1000` (four digits, Daiz's naming) or, when
  there is no such marker, a bare number after ` - ` (`Series - 012`). Numbers lose their leading zeros.
- A volume is `v03`, `vol.3`, `volume 3` (before or after the chapter). `v00` is "no volume": Daiz's
  naming writes it when the volume is unknown.
- A corrected release (a re-release of a published chapter) is a `v` and one digit from 2 to 9 after the
  chapter: `c012v2`, `c012 v2`, `c012 (v2)`, `c012 [v2]`, or `{v2}` / `{r2}` anywhere. Volumes after the
  chapter are written with two digits, `(v02)`, or with a word, `Vol.2`, as the common naming does.
- Two chapters in one release (`c012-013`, `c012+013`) are refused: MangaDex gives a chapter one number,
  so publishing it as chapter 12 would hide chapter 13 and clash with a later chapter 13 (upload sites
  ask for one chapter per upload). So is a special numbered after a chapter (`c014 x1`, Daiz's naming),
  whose MangaDex number only the uploader knows.
- Edition tags, `(Color)`, `(Digital)`, `(HQ)`, `(Official)`, `(mag)`, `[END]` and their combinations,
  are not titles or groups; neither are years, dates, 8-digit hashes and language tags.
- A language is a code in brackets, `[es-la]`, `(pt-br)`, `[EN]`, a three-letter one, `[jpn]`, or an English
  or native name, `[Spanish]`, `(Español)`.
- The title is the first parenthesised text after the numbers that is none of the above, or the text
  after ` - ` that follows them.
- The group tag is the first bracket when the name starts with one (`[Group] Series - 012`), else the last
  bracket that is none of the above; `&`, `+`, `,` and ` x ` separate the groups of a joint release.
- A date in brackets, `[2026-12-24 18.00]`, is kept as written: a series may take its publish date from it.

A series may give its own regular expression instead, with the named groups `chapter`, `volume`,
`title` and `language` (each optional).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

ARCHIVE_SUFFIXES = (".cbz", ".zip")

_NUMBER = r"\d+(?:\.\d+)?[a-z]?"
_END = r"(?=$|[\s_)\]}\-\[({]|\.(?!\d))"  # what may follow a number
_START = r"(?:^|[\s_.\-\[({])"  # what may precede a marker
_CHAPTER = re.compile(
    rf"{_START}(?:c|ch|chp|chap|chapter|d(?=\d{{4}}))[\s_.]*(?P<number>{_NUMBER})"
    rf"(?:[-~+&](?:c|ch|chp|chap|chapter|d)?[\s_.]*(?P<last>{_NUMBER}))?"
    rf"(?:v(?P<revision>\d))?{_END}", re.IGNORECASE)
_BARE_CHAPTER = re.compile(  # `Series - 012`: a number after " - " when no marker says "chapter"
    rf"(?:^|[\s_])-[\s_]+(?!\d{{4}}-\d\d-\d\d)(?P<number>{_NUMBER})(?:[-~+&](?P<last>{_NUMBER}))?"
    rf"(?:v(?P<revision>\d))?{_END}", re.IGNORECASE)
_VOLUME = re.compile(rf"{_START}(?P<word>v|vol|volume)[\s_.]*(?P<number>{_NUMBER}){_END}", re.IGNORECASE)
_REVISION_IN_BRACES = re.compile(r"\{[vr](\d+)\}", re.IGNORECASE)
_SPECIAL = re.compile(r"(?:^|\s)([xyz]\d+)(?=$|[\s(\[])")  # Daiz's `c014 x1`
_ONESHOT = re.compile(r"(?:^|[\s_\-\[(])one[\s_\-]?shot(?=$|[\s_)\]\-])", re.IGNORECASE)
_BRACKETED = re.compile(r"\[([^\[\]]*)\]|\(([^()]*)\)|\{([^{}]*)\}")
# `2026-12-24 18.00`: year, month, day, and optionally hour and minute (`:` is not allowed in every file name)
DATE = re.compile(r"(\d{4})-(\d\d)-(\d\d)(?:[ T_](\d\d)[.:h\-]?(\d\d))?")
_GROUP_SEPARATORS = re.compile(r"\s*(?:&|\+|,|\s+x\s+)\s*", re.IGNORECASE)

# The words of edition tags, `(Color)`, `(Digital-Colored)`, `[HQ]`, `(mag)`, `[END]`, and of Daiz's
# `[Unknown]` group: neither titles nor groups.
TAG_WORDS = frozenset({
    "color", "colour", "colored", "coloured", "colorized", "full", "digital", "dig", "hq", "lq", "hd", "official",
    "raw", "mag", "magazine", "web", "webrip", "scan", "fixed", "uncensored", "decensored", "censored",
    "remastered", "end", "final", "complete", "completed", "oneshot", "unknown",
})
# Language names and three-letter codes found in names, to MangaDex's codes.
LANGUAGE_NAMES = {
    "english": "en", "eng": "en", "spanish": "es", "español": "es", "espanol": "es", "spa": "es",
    "spanish (latam)": "es-la", "latino": "es-la", "portuguese": "pt", "português": "pt", "por": "pt",
    "brazilian portuguese": "pt-br", "portuguese (brazil)": "pt-br", "ptbr": "pt-br", "french": "fr",
    "français": "fr", "francais": "fr", "fre": "fr", "fra": "fr", "german": "de", "deutsch": "de", "ger": "de",
    "deu": "de", "italian": "it", "italiano": "it", "ita": "it", "russian": "ru", "rus": "ru", "japanese": "ja",
    "jpn": "ja", "korean": "ko", "kor": "ko", "chinese": "zh", "chi": "zh", "zho": "zh", "indonesian": "id",
    "ind": "id", "vietnamese": "vi", "vie": "vi", "polish": "pl", "polski": "pl", "pol": "pl", "turkish": "tr",
    "türkçe": "tr", "tur": "tr", "arabic": "ar", "ara": "ar", "thai": "th", "tha": "th", "ukrainian": "uk",
    "ukr": "uk", "filipino": "tl", "tagalog": "tl", "fil": "tl",
}
_CODE = re.compile(r"[a-z]{2}(?:[-_][a-z]{2})?", re.IGNORECASE)


@dataclass(frozen=True)
class ReleaseName:
    chapter: str | None  # None: a oneshot, or a volume without chapters
    volume: str | None
    title: str | None
    language: str | None  # None: the series' default applies
    revision: int | None = None  # 2 for `c012v2`: a corrected re-release of a published chapter
    groups: tuple[str, ...] = ()  # the group names of the name's group tag, as written
    date: str | None = None  # a date in brackets, as written: "2026-12-24 18.00"

    @property
    def rerelease(self) -> bool:
        """Whether the name marks a corrected re-release (`v2` and later) of a chapter already published."""
        return self.revision is not None and self.revision >= 2


class UnreadableName(ValueError):
    """The name carries no chapter, volume or oneshot marker that the pattern can read, or an ambiguous one."""


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
    chapter = _CHAPTER.search(stem) or _BARE_CHAPTER.search(stem)
    oneshot = _ONESHOT.search(stem)
    volume, revisions = None, [m for m in _REVISION_IN_BRACES.finditer(stem)]
    for match in _VOLUME.finditer(stem):
        if chapter and match.start() >= chapter.end() and match.group("word").lower() == "v" \
                and re.fullmatch(r"[2-9]", match.group("number")):
            revisions.append(match)  # `c012 v2`, `c012 (v2)`: a corrected release, not volume 2
        elif volume is None:
            volume = match
    if not (chapter or volume or oneshot):
        raise UnreadableName(f"no chapter number (c12, ch.12, chapter 12, - 012), volume (v3) or 'oneshot' in "
                             f"{name!r}")
    if chapter and chapter.group("last"):
        first, last = normalise_number(chapter.group("number")), normalise_number(chapter.group("last"))
        raise UnreadableName(
            f"{name!r} holds chapters {first} to {last} in one release, and a MangaDex chapter has one number: "
            f"split its pages into one item per chapter (c{first}, c{last}...), or, if MangaDex lists it as one "
            f"chapter, rename it c{first}")
    markers = [m for m in (chapter, volume, oneshot) if m]
    special = _SPECIAL.search(stem, chapter.end()) if chapter else None
    if special:
        raise UnreadableName(f"{name!r} is a special after chapter {normalise_number(chapter.group('number'))} "
                             f"({special.group(1)}), whose MangaDex number mdupload cannot know: rename it with "
                             f"that number, e.g. c{normalise_number(chapter.group('number'))}.5")
    number = normalise_number(chapter.group("number")) if chapter else None
    if oneshot and number in (None, "0"):
        number = None  # `Series - 000 [Oneshot]`
    revision = chapter.group("revision") if chapter else None
    revision = revision or next((m.group(1) if m.re is _REVISION_IN_BRACES else m.group("number")
                                 for m in revisions), None)
    tags = [_Tag(m) for m in _BRACKETED.finditer(stem)]
    return ReleaseName(
        chapter=number,
        volume=None if volume is None or re.fullmatch(r"00+", volume.group("number")) else normalise_number(
            volume.group("number")),
        title=_title(_blanked(stem, revisions), max(m.end() for m in markers)),
        language=next((tag.language for tag in tags if tag.language), None),
        revision=int(revision) if revision else None,
        groups=_groups(tags),
        date=next((tag.text for tag in tags if DATE.fullmatch(tag.text)), None),
    )


class _Tag:
    """A text in brackets, parentheses or braces, and what it is."""

    def __init__(self, match: re.Match):
        self.text = next(group for group in match.groups() if group is not None).strip()
        self.square = match.group(1) is not None
        self.start = match.start()
        folded = self.text.casefold()
        self.language = LANGUAGE_NAMES.get(folded) or (
            folded.replace("_", "-") if _CODE.fullmatch(folded) and folded not in TAG_WORDS else None)

    @property
    def is_group(self) -> bool:
        return self.square and not (self.language or _is_not_a_name(self.text))


def _is_not_a_name(text: str) -> bool:
    """Edition tags, numbers, dates, hashes, revisions and chapter or volume markers: never a title or a group."""
    words = [word for word in re.split(r"[\s\-_+/&,]+", text.casefold()) if word]
    return (not words or all(word in TAG_WORDS for word in words)
            or bool(re.fullmatch(r"[\d.\s\-]+|[0-9a-f]{8}|[vr]\d+", text, re.IGNORECASE))
            or bool(DATE.fullmatch(text) or _VOLUME.fullmatch(text) or _CHAPTER.fullmatch(text)))


def _groups(tags: list[_Tag]) -> tuple[str, ...]:
    candidates = [tag for tag in tags if tag.is_group]
    if not candidates:
        return ()
    tag = candidates[0] if candidates[0].start == 0 else candidates[-1]
    return tuple(name for name in _GROUP_SEPARATORS.split(tag.text) if name)


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


def _blanked(stem: str, matches: list[re.Match]) -> str:
    """The stem with the text of `matches` replaced by spaces (positions unchanged)."""
    for match in matches:
        stem = stem[:match.start()] + " " * (match.end() - match.start()) + stem[match.end():]
    return stem


def _title(stem: str, end: int) -> str | None:
    """A title in parentheses after the numbers, or the text after ` - ` that follows them."""
    rest = stem[end:].lstrip(" _)]}")  # a marker may close its own brackets: "(v03)"
    for match in _BRACKETED.finditer(rest):
        tag = _Tag(match)
        if match.group(2) is not None and not tag.language and not _is_not_a_name(tag.text):
            return tag.text
    rest = _BRACKETED.sub("", rest)
    rest = rest.strip(" _-.")
    title = rest.replace("_", " ").strip(" -")
    return title or None
