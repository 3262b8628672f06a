"""Release names as scanlators write them: one table, read with the default pattern."""

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mdupload.release_names import ReleaseName, UnreadableName, parse_release_name

def read(chapter, volume=None, title=None, language=None, revision=None, groups=(), date=None) -> ReleaseName:
    return ReleaseName(chapter, volume, title, language, revision, tuple(groups), date)


# Names as scanlation groups, Daiz's naming scheme and download tools (Tachiyomi/Mihon, HakuNeko,
# mangadex-downloader) write them, and what each becomes. manifests/SERIES.md shows the same table.
NAMES = [
    # the common scanlation naming
    ("Series Name [es-la] - c012.5 (v03) (The Title) [Group]", read("12.5", "3", "The Title", "es-la", groups=["Group"])),
    ("Series Name - c001 (v01) [Group].cbz", read("1", "1", groups=["Group"])),
    ("Series Name v01 c001.zip", read("1", "1")),
    ("Series_Name_Ch.12.5", read("12.5")),
    ("Series Name - Chapter 12 - The Long Night", read("12", title="The Long Night")),
    ("Series Name c012 [en] [Group]", read("12", language="en", groups=["Group"])),
    ("[Group] Series Name - Ch. 5 [pt-br]", read("5", language="pt-br", groups=["Group"])),
    ("Series Name - Oneshot [Group]", read(None, groups=["Group"])),
    ("Series Name (Oneshot) [ja-ro]", read(None, language="ja-ro")),
    ("Series Name - One-shot (A Summer Story) [Group]", read(None, title="A Summer Story", groups=["Group"])),
    ("Series Name v03 [Group].cbz", read(None, "3", groups=["Group"])),
    ("Series Name Vol.2 [zh-hk]", read(None, "2", language="zh-hk")),
    ("Series Name c000 (Prologue)", read("0", title="Prologue")),
    ("Series Name c010a [Group]", read("10a", groups=["Group"])),
    ("Series Name - c100.25 [fr] [Group]", read("100.25", language="fr", groups=["Group"])),
    ("Series Name Chapter 7", read("7")),
    ("Series Name vol.04 ch.031 - Homecoming [Group]", read("31", "4", "Homecoming", groups=["Group"])),
    ("Series Name [id] - c045 [Group].zip", read("45", language="id", groups=["Group"])),
    ("Series Name - c012 (v03) (Part 2) [Group] [es-la]", read("12", "3", "Part 2", "es-la", groups=["Group"])),
    ("2.5 Dimensional Seduction - c150 [Group]", read("150", groups=["Group"])),
    ("Series 2 - c003 [Group]", read("3", groups=["Group"])),
    ("Series Name - Chap 9.1 [pt-pt]", read("9.1", language="pt-pt")),
    # corrected releases: a `v` and one digit after the chapter, or {v2} / {r2}
    ("Series Name - c012 v2 [Group]", read("12", revision=2, groups=["Group"])),
    ("Series Name - c012v2 (v03) [Group]", read("12", "3", revision=2, groups=["Group"])),
    ("Series Name - c012 (v2) [Group]", read("12", revision=2, groups=["Group"])),
    ("Series Name ch7 [v3] [DE]", read("7", language="de", revision=3)),
    ("Name of Manga - ch014 (mag) [BarScans]{v2}.zip", read("14", revision=2, groups=["BarScans"])),
    ("Series Name - c012 (v02) [Group]", read("12", "2", groups=["Group"])),
    # edition tags are neither titles nor groups
    ("Series Name - c012 (Color) [Group]", read("12", groups=["Group"])),
    ("Series Name - c012 (Digital) (The Title) [Group]", read("12", title="The Title", groups=["Group"])),
    ("Series Name - c012 (HQ) [Group]", read("12", groups=["Group"])),
    ("Series Name - c012 (Official)", read("12")),
    ("Series Name - c012 (Digital-Colored) [Group] [A1B2C3D4]", read("12", groups=["Group"])),
    ("Series Name (2021) - c112 [END]", read("112")),
    # a bare number after " - ", `Ch.12`, `Vol.3 Ch.12`
    ("[Group] Series Name - 012", read("12", groups=["Group"])),
    ("[Group] Series Name - 012.5 (The Title) [v2]", read("12.5", title="The Title", revision=2, groups=["Group"])),
    ("Series Name Ch.12", read("12")),
    ("Vol.3 Ch.12", read("12", "3")),
    ("Vol. 3 Ch. 12 - The Title", read("12", "3", "The Title")),
    ("Ch.012 - The Title", read("12", title="The Title")),
    ("Asura Scans_Chapter 12", read("12")),
    ("Group Name_Vol.3 Ch.12 - The Title", read("12", "3", "The Title")),
    # groups of a joint release
    ("[Group A & Group B] Series Name - c012", read("12", groups=["Group A", "Group B"])),
    ("Series Name - c012 [Group A x Group B]", read("12", groups=["Group A", "Group B"])),
    ("Series Name - c012 [A+B]", read("12", groups=["A", "B"])),
    ("Series Name - c012 (Extra) [Publisher] [Group]", read("12", title="Extra", groups=["Group"])),
    # language tags: codes, three-letter codes, names
    ("Name of Manga [jpn] - ch011 (v03) [Unknown].zip", read("11", "3", language="ja")),
    ("Series Name - c012 [Spanish] [Group]", read("12", language="es", groups=["Group"])),
    ("Series Name - c012 [Group] [ENG]", read("12", language="en", groups=["Group"])),
    ("Series Name - c012 (Português) [Group]", read("12", language="pt", groups=["Group"])),
    ("Series Name [ES_LA] - c012 [Group]", read("12", language="es-la", groups=["Group"])),
    # Daiz's naming: four-digit chapters, unknown volumes, oneshots numbered 000
    ("Very Large Chapter Numbers - d1000 (mag) [Group].zip", read("1000", groups=["Group"])),
    ("Series Name - c012 (v00) [Group]", read("12", groups=["Group"])),
    ("Some Oneshot That Gets Serialized - 000 (mag) [Oneshot] [Group].zip", read(None, groups=["Group"])),
    # a date for series that take their publish date from the name
    ("Series Name - c012 [2026-12-24 18.00] [Group]", read("12", groups=["Group"], date="2026-12-24 18.00")),
]

REFUSED = [
    ("Series Name - c012-013 [Group]", "holds chapters 12 to 13 in one release"),
    ("Series Name - ch012+013 (v02) [Group]", "holds chapters 12 to 13 in one release"),
    ("Unnumbered Initial Chapters - 001-003 (v01) [Group].zip", "holds chapters 1 to 3 in one release"),
    ("Lots of Bonus Chapters - c014 x1 (mag) [Extra] [Group].zip", "a special after chapter 14 (x1)"),
    ("Chainsaw Man 014 (2020) (Digital) (Group).cbz", "no chapter number"),
    ("Series Name [Group]", "no chapter number"),
]


@pytest.mark.parametrize("name, expected", NAMES, ids=[n for n, _ in NAMES])
def test_common_names_are_read(name, expected):
    assert parse_release_name(name) == expected


def test_the_table_has_at_least_forty_names():
    assert len(NAMES) + len(REFUSED) >= 40


@pytest.mark.parametrize("name, reason", REFUSED, ids=[n for n, _ in REFUSED])
def test_names_that_cannot_be_read_are_refused_with_the_reason(name, reason):
    with pytest.raises(UnreadableName, match=re.escape(reason)):
        parse_release_name(name)


def test_two_chapters_in_one_release_says_what_to_do():
    with pytest.raises(UnreadableName) as caught:
        parse_release_name("Series Name - c012-013 [Group]")
    assert "a MangaDex chapter has one number" in str(caught.value)
    assert "one item per chapter (c12, c13...)" in str(caught.value) and "rename it c12" in str(caught.value)


def test_a_revision_marks_a_rerelease():
    assert parse_release_name("Series - c012 v2").rerelease
    assert not parse_release_name("Series - c012").rerelease
    assert not parse_release_name("Series - c012v1").rerelease


def test_a_series_pattern_takes_named_groups():
    pattern = re.compile(r"^(?P<chapter>\d+)(?:_(?P<title>[^\[]+))?\s*\[(?P<language>[a-z-]+)\]")
    assert parse_release_name("012_A Title [pt-br].cbz", pattern) == ReleaseName("12", None, "A Title", "pt-br")
    with pytest.raises(UnreadableName, match="does not match the series pattern"):
        parse_release_name("no digits here", pattern)


@given(st.text(max_size=200))
def test_any_name_is_read_or_refused_cleanly(name):
    try:
        parsed = parse_release_name(name)
    except UnreadableName:
        return
    assert parsed.chapter is None or re.fullmatch(r"(0|[1-9]\d*)(\.\d+)?[a-z]?", parsed.chapter)


def markdown_row(name: str, expected: ReleaseName | str) -> str:
    """The row of SERIES.md's table for a name: what it becomes, or why it is refused."""
    if isinstance(expected, str):
        return f"| `{name}` | refused: {expected} | | | | | |"
    chapter = "oneshot" if expected.chapter is None and expected.volume is None else expected.chapter or ""
    date = f" (date {expected.date})" if expected.date else ""
    cells = [chapter, expected.volume, expected.title, expected.language, expected.revision]
    return (f"| `{name}` | " + " | ".join("" if cell is None else str(cell) for cell in cells)
            + f" | {', '.join(expected.groups)}{date} |")


def test_series_md_shows_the_whole_table():
    documented = (Path(__file__).resolve().parents[1] / "manifests" / "SERIES.md").read_text(encoding="utf-8")
    for name, expected in NAMES + REFUSED:
        assert markdown_row(name, expected) in documented, name
