"""Release names as scanlators write them: one table, read with the default pattern."""

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mdupload.release_names import ReleaseName, UnreadableName, parse_release_name

NAMES = [
    ("Series Name [es-la] - c012.5 (v03) (The Title) [Group]", ReleaseName("12.5", "3", "The Title", "es-la")),
    ("Series Name - c001 (v01) [Group].cbz", ReleaseName("1", "1", None, None)),
    ("Series Name v01 c001.zip", ReleaseName("1", "1", None, None)),
    ("Series_Name_Ch.12.5", ReleaseName("12.5", None, None, None)),
    ("Series Name - Chapter 12 - The Long Night", ReleaseName("12", None, "The Long Night", None)),
    ("Series Name c012 [en] [Group]", ReleaseName("12", None, None, "en")),
    ("[Group] Series Name - Ch. 5 [pt-br]", ReleaseName("5", None, None, "pt-br")),
    ("Series Name - Oneshot [Group]", ReleaseName(None, None, None, None)),
    ("Series Name (Oneshot) [ja-ro]", ReleaseName(None, None, None, "ja-ro")),
    ("Series Name - One-shot (A Summer Story) [Group]", ReleaseName(None, None, "A Summer Story", None)),
    ("Series Name v03 [Group].cbz", ReleaseName(None, "3", None, None)),
    ("Series Name Vol.2 [zh-hk]", ReleaseName(None, "2", None, "zh-hk")),
    ("Series Name c000 (Prologue)", ReleaseName("0", None, "Prologue", None)),
    ("Series Name c010a [Group]", ReleaseName("10a", None, None, None)),
    ("Series Name - c100.25 [fr] [Group]", ReleaseName("100.25", None, None, "fr")),
    ("Series Name Chapter 7", ReleaseName("7", None, None, None)),
    ("series name ch7 (v2) [DE]", ReleaseName("7", "2", None, "de")),
    ("Series Name vol.04 ch.031 - Homecoming [Group]", ReleaseName("31", "4", "Homecoming", None)),
    ("Series Name [id] - c045 [Group].zip", ReleaseName("45", None, None, "id")),
    ("Series Name - c012 (v03) (Part 2) [Group] [es-la]", ReleaseName("12", "3", "Part 2", "es-la")),
    ("2.5 Dimensional Seduction - c150 [Group]", ReleaseName("150", None, None, None)),
    ("Series 2 - c003 [Group]", ReleaseName("3", None, None, None)),
    ("Series Name - Chap 9.1 [pt-pt]", ReleaseName("9.1", None, None, "pt-pt")),
]


@pytest.mark.parametrize("name, expected", NAMES, ids=[n for n, _ in NAMES])
def test_common_names_are_read(name, expected):
    assert parse_release_name(name) == expected


def test_a_name_without_any_number_is_refused_with_the_reason():
    with pytest.raises(UnreadableName, match="no chapter number"):
        parse_release_name("Series Name [Group]")


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
