"""The manifest: what a valid one loads to, and the error a user sees for each mistake or hostile file."""

import json
import os
import time
import zipfile
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import jsonschema
import pytest
import yaml
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from natsort import natsorted
from PIL import Image

from mdupload import limits
from mdupload.cli import main
from mdupload.errors import ManifestError, UsageError
from mdupload.manifest import (
    MAX_BYTES,
    MAX_DEPTH,
    in_utc_and_local,
    load_manifest,
    manifest_schema,
    parse_manifest,
)

REPO = Path(__file__).resolve().parents[1]
MANGA = "f9c33607-9180-4ba6-b85c-e4b5faee7192"
GROUP = "145f9110-0a6c-4b71-8737-6acb1a3c5da4"
GROUP2 = "6e9a1d8c-3f41-4a7e-9a59-2b7c0d5e8f13"
HEAD = f"manga: {MANGA}\ngroups: [{GROUP}]\nlanguage: en\nchapters:\n"  # chapters start at line 5


def make_series(folder: Path) -> None:
    (folder / "c1").mkdir(parents=True, exist_ok=True)
    (folder / "c1" / "1.png").write_bytes(b"")
    with zipfile.ZipFile(folder / "c1.5.cbz", "w") as archive:
        archive.writestr("1.jpg", b"")
    (folder / "notes.txt").write_text("not pages")


@pytest.fixture
def series(tmp_path):
    make_series(tmp_path)
    return tmp_path


def write(folder: Path, text: str) -> Path:
    path = folder / "manifest.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def error_of(path: Path) -> ManifestError:
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    return caught.value


def assert_error(path: Path, line: int, chapter: str | None, *fragments: str) -> ManifestError:
    """The message starts with file:line (chapter X) and says each fragment."""
    error = error_of(path)
    where = f"{path}:{line}" + (f" (chapter {chapter})" if chapter is not None else "")
    assert str(error).startswith(where + ": "), str(error)
    assert (error.line, error.chapter) == (line, chapter)
    for fragment in fragments:
        assert fragment in str(error)
    return error


# What a valid manifest loads to ------------------------------------------------------------------------

FULL = f"""\
manga: {MANGA}
groups: [{GROUP}]
language: en
terms_accepted: true
chapters:
  - chapter: "1"
    volume: "1"
    title: The Beginning
    pages: c1
  - chapter: "1.5"
    pages: c1.5.cbz
    language: pt-br
    groups: [{GROUP2}, {GROUP.upper()}]
    publish_at: 2026-12-24T12:00:00+02:00
    fix: true
  - chapter: null
    pages: ./c1/
    groups: []
    publish_at: 2026-12-24 12:00:00z
"""


def test_defaults_and_overrides(series, tmp_path_factory, monkeypatch):
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))  # pages are relative to the manifest, not the cwd
    manifest = load_manifest(write(series, FULL))
    first, second, oneshot = manifest.chapters

    assert (manifest.manga, manifest.groups, manifest.language) == (MANGA, (GROUP,), "en")
    assert manifest.terms_accepted is True
    assert (first.chapter, first.volume, first.title) == ("1", "1", "The Beginning")
    assert (first.language, first.groups) == ("en", (GROUP,))
    assert (first.pages, first.publish_at, first.fix, first.line) == (series / "c1", None, False, 6)
    assert (second.volume, second.title, second.language, second.fix, second.line) == (None, None, "pt-br", True, 10)
    assert second.groups == (GROUP2, GROUP)  # manifest order, ids in lowercase
    assert second.pages == series / "c1.5.cbz"
    assert second.publish_at == datetime(2026, 12, 24, 10, 0, tzinfo=UTC)
    assert oneshot.chapter is None and oneshot.groups == () and oneshot.pages == series / "c1"
    assert oneshot.publish_at == datetime(2026, 12, 24, 12, 0, tzinfo=UTC)


def test_optional_top_level_keys_default(series):
    manifest = load_manifest(write(series, HEAD + '  - chapter: "1"\n    pages: c1\n'))
    assert manifest.terms_accepted is False
    assert manifest.chapters[0].fix is False


def test_labels(series):
    manifest = load_manifest(write(series, FULL))
    assert [spec.label for spec in manifest.chapters] == ["vol 1 chapter 1 (en)", "chapter 1.5 (pt-br)", "oneshot (en)"]


def test_chapter_key_ignores_group_order(series):
    manifest = load_manifest(write(series, FULL))
    api = "https://api.mangadex.org"
    assert manifest.chapter_key(manifest.chapters[1], api) == (MANGA, "pt-br", tuple(sorted([GROUP, GROUP2])), None,
                                                               "1.5", None, api)
    assert manifest.chapter_key(manifest.chapters[2], api) == (MANGA, "en", (), None, None, None, api)


def test_the_key_holds_the_api_and_a_oneshots_title_only(series):
    manifest = load_manifest(write(series, FULL))
    numbered, _pt, oneshot = manifest.chapters
    titled = replace(oneshot, title="Extra")
    assert manifest.chapter_key(numbered, "https://api.mangadex.org").title is None  # a number's title is metadata
    assert manifest.chapter_key(titled, "https://api.mangadex.org").title == "Extra"
    assert manifest.chapter_key(titled, "https://api.mangadex.org") != manifest.chapter_key(oneshot,
                                                                                          "https://api.mangadex.org")
    assert manifest.chapter_key(numbered, "HTTPS://API.mangadex.org/") == manifest.chapter_key(
        numbered, "https://api.mangadex.org")  # one API however it is written
    assert manifest.chapter_key(numbered, "https://api.mangadex.dev") != manifest.chapter_key(
        numbered, "https://api.mangadex.org")


SHAPES = f"""\
manga: {MANGA}
groups: [{GROUP}]
language: en
chapters:
  - chapter: null
    volume: "7"
    pages: c1
  - chapter: null
    volume: "8"
    pages: c1
  - chapter: null
    title: Summer Special
    pages: c1
  - chapter: null
    title: Winter Special
    pages: c1
  - chapter: "1"
    volume: "1"
    pages: c1
  - chapter: "1"
    volume: "2"
    pages: c1
  - chapter: "1"
    volume: "2"
    groups: [{GROUP}, {GROUP2}]
    pages: c1
"""


def test_every_shape_real_series_have_is_accepted_as_distinct_chapters(series):
    manifest = load_manifest(write(series, SHAPES))
    keys = {manifest.chapter_key(spec, "https://api.mangadex.org") for spec in manifest.chapters}
    assert len(keys) == len(manifest.chapters) == 7


def test_select_keeps_manifest_order(series):
    manifest = load_manifest(write(series, FULL))
    assert manifest.select([]) == list(manifest.chapters)
    assert [spec.chapter for spec in manifest.select(["1.5", "1"])] == ["1", "1.5"]
    assert manifest.select(["oneshot"]) == [manifest.chapters[2]]


def test_select_unknown_chapter_names_it_and_the_known_ones(series):
    manifest = load_manifest(write(series, FULL))
    with pytest.raises(UsageError) as caught:
        manifest.select(["1", "7", "1.50"])
    assert "no chapter 7, 1.50" in str(caught.value)
    assert "1, 1.5, oneshot" in str(caught.value)


def test_same_number_in_two_languages_is_fine(series):
    text = HEAD + '  - chapter: "1"\n    pages: c1\n  - chapter: "1"\n    language: fr\n    pages: c1\n'
    assert [spec.label for spec in load_manifest(write(series, text)).chapters] == ["chapter 1 (en)", "chapter 1 (fr)"]


def test_title_of_255_characters_is_fine(series):
    text = HEAD + f'  - chapter: "1"\n    title: {"x" * limits.TITLE_MAX_LENGTH}\n    pages: c1\n'
    assert len(load_manifest(write(series, text)).chapters[0].title) == limits.TITLE_MAX_LENGTH


def test_lanraragi_section_is_accepted(series):
    section = "lanraragi:\n  url: http://localhost:3000\n  category: SET_1\n  tags: [a:b]\n"
    assert load_manifest(write(series, section + HEAD + ONE)).manga == MANGA


# Names as people have them: addresses, unquoted whole numbers, ~ and $VARIABLES, zones -------------------------

@pytest.mark.parametrize("written", [
    f"https://mangadex.org/title/{MANGA}/demo-series", f"https://mangadex.org/title/{MANGA}",
    f"http://www.mangadex.org/title/{MANGA}/demo-series?tab=chapters", f"mangadex.org/title/{MANGA.upper()}/",
    f"https://mangadex.org/title/{MANGA}/demo-series#comments", MANGA.upper(),
])
def test_manga_may_be_its_mangadex_address(series, written):
    manifest = load_manifest(write(series, HEAD.replace(f"manga: {MANGA}", f"manga: {written}") + ONE))
    assert manifest.manga == MANGA


def test_groups_may_be_their_mangadex_addresses(series):
    text = HEAD.replace(f"[{GROUP}]", f"[https://mangadex.org/group/{GROUP}/demo-scans]") + ONE
    assert load_manifest(write(series, text)).groups == (GROUP,)
    twice = HEAD.replace(f"[{GROUP}]", f"[https://mangadex.org/group/{GROUP}, {GROUP}]") + ONE
    assert_error(write(series, twice), 2, None, f"lists {GROUP} twice")


@pytest.mark.parametrize("written, fragments", [
    (f"https://mangadex.org/group/{GROUP}/demo-scans", ["is the address of a group, not of a title",
                                                         "mangadex.org/title/<id>"]),
    (f"https://mangadex.org/chapter/{GROUP}", ["is the address of a chapter"]),
    ("https://mangadex.org/title/12345/old-series", ["an old MangaDex address with a numeric id"]),
    (f"https://example.org/title/{MANGA}", ["is not a MangaDex id or title address"]),
])
def test_a_wrong_address_for_manga_says_what_it_is(series, written, fragments):
    assert_error(write(series, HEAD.replace(f"manga: {MANGA}", f"manga: {written}") + ONE), 1, None, *fragments)


def test_whole_numbers_may_be_unquoted(series):
    text = HEAD + entry("12", "volume: 3", "pages: c1") + entry("0", "pages: c1") + entry('"12.5"', "pages: c1")
    assert [(spec.chapter, spec.volume) for spec in load_manifest(write(series, text)).chapters] == [
        ("12", "3"), ("0", None), ("12.5", None)]
    assert_error(write(series, HEAD + entry("123456789", "pages: c1")), 5, "123456789", "at most 8")


def test_pages_expand_home_and_environment_variables(series, monkeypatch, tmp_path_factory):
    home = tmp_path_factory.mktemp("home")
    make_series(home / "releases")
    (home / "releases" / "c$2").mkdir()
    (home / "releases" / "c$2" / "1.png").write_bytes(b"")
    monkeypatch.setenv("HOME", str(home))
    text = HEAD + entry('"1"', "pages: ~/releases/c1") + entry('"2"', "pages: $RELEASES/c1.5.cbz") + entry(
        '"3"', "pages: ${RELEASES}/c$$2")
    first, second, third = load_manifest(write(series, text), {"RELEASES": str(home / "releases")}).chapters
    assert (first.pages, second.pages, third.pages) == (home / "releases" / "c1", home / "releases" / "c1.5.cbz",
                                                        home / "releases" / "c$2")


@pytest.mark.parametrize("written, fragments", [
    ("$NOT_SET_ANYWHERE/c1", ["the environment variable $NOT_SET_ANYWHERE", "is not set", "$$"]),
    ("${NOT_SET_ANYWHERE}/c1", ["the environment variable $NOT_SET_ANYWHERE"]),
    ("c$5", ["has a $ that starts no variable name"]),
    ("~no-such-user-here/c1", ["cannot tell which home folder"]),
])
def test_pages_with_a_variable_that_cannot_be_expanded(series, written, fragments):
    assert_error(write(series, HEAD + ONE + entry('"2"', f"pages: {written}")), 8, "2", *fragments)


@pytest.fixture
def paris_time(monkeypatch):
    """This computer's local time is Central European Time (a POSIX rule: no time zone files needed)."""
    monkeypatch.setenv("TZ", "CET-1CEST,M3.5.0,M10.5.0/3")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


@pytest.mark.parametrize("written", ["2026-12-24 18:00", "2026-12-24T18:00:00", "2026-12-24 18:00:00"])
def test_publish_at_without_a_zone_shows_both_readings(series, paris_time, written):
    error = assert_error(write(series, HEAD + entry('"1"', "pages: c1", f"publish_at: {written}")), 7, "1",
                         f"`publish_at` {written} has no time zone",
                         "Read as UTC it is 2026-12-24 18:00 UTC (19:00 CET, +01:00 here)",
                         "read as this computer's local time (CET, +01:00) it is 2026-12-24 17:00 UTC "
                         "(18:00 CET, +01:00 here)")
    assert error.hint == ("Say which: `publish_at: 2026-12-24T18:00:00Z` (UTC) or "
                          "`publish_at: 2026-12-24T18:00:00+01:00` (that offset).")


def test_publish_at_without_a_zone_in_summer_uses_summer_time(series, paris_time):
    error = error_of(write(series, HEAD + entry('"1"', "pages: c1", "publish_at: 2026-07-01 00:30")))
    assert "2026-07-01 00:30 UTC (02:30 CEST, +02:00 here)" in str(error)
    assert "(CEST, +02:00) it is 2026-06-30 22:30 UTC (2026-07-01 00:30 CEST, +02:00 here)" in str(error)
    assert "`publish_at: 2026-07-01T00:30:00+02:00`" in error.hint


def test_publish_at_without_a_zone_on_a_utc_computer_is_still_an_error(series, monkeypatch):
    monkeypatch.setenv("TZ", "UTC0")
    time.tzset()
    try:
        error = error_of(write(series, HEAD + entry('"1"', "pages: c1", "publish_at: 2026-12-24 18:00")))
    finally:
        monkeypatch.undo()
        time.tzset()
    assert "This computer's local time is UTC" in str(error) and "another zone" in str(error)


def test_a_publish_at_in_the_past_is_a_warning_with_its_line(series, paris_time):
    future = (datetime.now(UTC) + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M:%SZ")
    text = HEAD + entry('"1"', "pages: c1", "publish_at: 2020-01-01T12:00:00Z") + entry(
        '"2"', "pages: c1", f"publish_at: {future}")
    path = write(series, text)
    manifest = load_manifest(path)
    assert manifest.chapters[0].publish_at == datetime(2020, 1, 1, 12, tzinfo=UTC)
    assert manifest.warnings == (
        f"{path}:7 (chapter 1): `publish_at` 2020-01-01 12:00 UTC (13:00 CET, +01:00 here) is in the past, so it "
        "schedules nothing. MangaDex publishes the chapter as soon as it is processed; to schedule it, give a "
        "later date.",)


def test_a_schedule_is_shown_in_utc_and_local_time(paris_time):
    assert in_utc_and_local(datetime(2026, 12, 24, 23, 30, tzinfo=UTC)) == \
        "2026-12-24 23:30 UTC (2026-12-25 00:30 CET, +01:00 here)"


# Errors: each names the file, the line and the chapter, and says what to do ----------------------------------

def entry(number: str, *lines: str) -> str:
    """One entry of `chapters`: `- chapter: <number>`, then each line indented under it."""
    return f"  - chapter: {number}\n" + "".join(f"    {line}\n" for line in lines)


ONE = entry('"1"', "pages: c1")  # lines 5-6
ELEVEN = "[" + ", ".join(f"{GROUP[:-2]}{n:02d}" for n in range(11)) + "]"
TOP = {"groups": f"[{GROUP}]", "language": "language: en", "chapters": "chapters:"}

ERRORS = {
    # name: (manifest text, line, chapter, fragments of the message)
    "bad manga id": (HEAD.replace(MANGA, "f9c33607-9180") + ONE, 1, None,
                     ["`manga` is not a MangaDex id", "mangadex.org/title/"]),
    "bad group id in a chapter": (HEAD + entry('"2"', "groups:", "  - 145f9110", "pages: c1"), 7, "2",
                                  ["item 1 of `groups` is not a MangaDex id"]),
    "leading zero": (HEAD + entry('"01"', "pages: c1"), 5, "01",
                     ["'01' is not a number MangaDex accepts", 'chapter: "1"']),
    "volume leading zero": (HEAD + entry('"3"', 'volume: "02"', "pages: c1"), 6, "3", ["`volume` '02'", 'volume: "2"']),
    "number too long": (HEAD + entry('"123456789"', "pages: c1"), 5, "123456789", ["at most 8"]),
    "empty chapter": (HEAD + entry('""', "pages: c1"), 5, "#1", ["`chapter` is empty", "chapter: null"]),
    "unquoted 1.50": (HEAD + ONE + entry("1.50", "pages: c1"), 7, "1.50",
                      ["YAML reads 1.50 as a number (1.5)", 'write chapter: "1.50"']),
    "unquoted decimal": (HEAD + entry("12.50", "pages: c1"), 5, "12.50",
                         ["YAML reads 12.50 as a number (12.5)", "decimals and other forms need quotes",
                          'write chapter: "12.50"']),
    "unquoted leading zero": (HEAD + entry("012", "pages: c1"), 5, "012",
                              ["YAML reads 012 as a number (10)", 'write chapter: "12"']),
    "unquoted negative": (HEAD + entry('"1"', "volume: -1", "pages: c1"), 6, "1", ['write volume: "-1"']),
    "unquoted volume": (HEAD + entry('"1"', "volume: 2.0", "pages: c1"), 6, "1", ['write volume: "2.0"']),
    "sexagesimal": (HEAD + entry("1:30", "pages: c1"), 5, "1:30", ['write chapter: "1:30"']),
    "eleven groups": (HEAD.replace(TOP["groups"], ELEVEN) + ONE, 2, None, ["11 groups", "at most 10"]),
    "eleven groups in a chapter": (HEAD + entry('"4"', "pages: c1", f"groups: {ELEVEN}"), 7, "4", ["at most 10"]),
    "group twice": (HEAD.replace(TOP["groups"], f"[{GROUP}, {GROUP}]") + ONE, 2, None, [f"lists {GROUP} twice"]),
    "group twice in other cases": (HEAD.replace(TOP["groups"], f"[{GROUP}, {GROUP.upper()}]") + ONE, 2, None,
                                   ["twice"]),
    "typo in a chapter": (HEAD + entry('"1"', "pages: c1", "tittle: Hello"), 7, "1",
                          ["unknown key `tittle`", "Did you mean `title`?"]),
    "typo at the top": (HEAD.replace("language", "langauge") + ONE, 3, None,
                        ["unknown key `langauge`", "Did you mean `language`?"]),
    "chapter key at the top": ("title: Hello\n" + HEAD + ONE, 1, None, ["`title` is set per chapter"]),
    "top key in a chapter": (HEAD + entry('"1"', "pages: c1", f"manga: {MANGA}"), 7, "1",
                             ["unknown key `manga`", "at the top of the manifest"]),
    "unknown key in lanraragi": (HEAD.replace(TOP["chapters"], "lanraragi:\n  urll: x\nchapters:") + ONE, 5, None,
                                 ["unknown key `urll`", "`url`"]),
    "pages missing": (HEAD + entry('"1"', "pages: c9"), 6, "1",
                      ["c9 does not exist", "relative to the manifest's folder"]),
    "pages not a folder or archive": (HEAD + entry('"1"', "pages: notes.txt"), 6, "1",
                                      ["neither a folder nor a .zip or .cbz"]),
    "pages empty": (HEAD + entry('"1"', 'pages: ""'), 6, "1", ["`pages` is empty"]),
    "pages without value": (HEAD + entry('"1"', "pages:"), 6, "1", ["`pages` has no value"]),
    "duplicate chapter": (HEAD + entry('"1"', 'volume: "1"', "pages: c1") + entry('"1"', 'volume: "1"', "pages: c1"),
                          8, "1", ["vol 1 chapter 1 (en) is listed twice, at lines 5 and 8"]),
    "duplicate volume-only release": (HEAD + entry("null", 'volume: "7"', "pages: c1")
                                      + entry("null", 'volume: "7"', "pages: c1"),
                                      8, "oneshot", ["vol 7 oneshot (en) is listed twice, at lines 5 and 8"]),
    "duplicate titled oneshot": (HEAD + entry("null", "title: Extra", "pages: c1")
                                 + entry("null", "title: Extra", "pages: c1"),
                                 8, "oneshot", ['oneshot "Extra" (en) is listed twice, at lines 5 and 8']),
    "duplicate groups in another order": (
        HEAD + entry('"1"', f"groups: [{GROUP}, {GROUP2}]", "pages: c1")
        + entry('"1"', f"groups: [{GROUP2}, {GROUP}]", "pages: c1"),
        8, "1", ["chapter 1 (en) is listed twice, at lines 5 and 8"]),
    "duplicate oneshot": (HEAD + entry("null", "pages: c1") + entry("", "pages: c1"), 7, "oneshot",
                          ["oneshot (en) is listed twice, at lines 5 and 7"]),
    "duplicate through override": (HEAD + entry('"1"', "language: fr", "pages: c1") + entry('"1"', "pages: c1")
                                   + entry('"1"', "pages: c1", "language: fr"),
                                   10, "1", ["chapter 1 (fr) is listed twice, at lines 5 and 10"]),
    "bad language": (HEAD.replace(TOP["language"], "language: EN") + ONE, 3, None,
                     ["'EN' is not a MangaDex language code", "language: en"]),
    "bad chapter language": (HEAD + entry('"1"', "language: pt_BR", "pages: c1"), 6, "1", ["language: pt-br"]),
    "language read as false": (HEAD.replace(TOP["language"], "language: no") + ONE, 3, None,
                               ['write language: "no"']),
    "title too long": (HEAD + entry('"1"', f"title: {'x' * 256}", "pages: c1"), 6, "1",
                       ["256 characters long", "at most 255"]),
    "title a number": (HEAD + entry('"1"', "title: 1984", "pages: c1"), 6, "1", ['write title: "1984"']),
    "title a list": (HEAD + entry('"1"', "title: [a, b]", "pages: c1"), 6, "1",
                     ["`title` must be text or null, not a list"]),
    "publish_at words": (HEAD + entry('"1"', "pages: c1", "publish_at: next friday"), 7, "1",
                         ["'next friday' is not a date and time", "2026-12-24T12:00:00Z"]),
    "publish_at a date": (HEAD + entry('"1"', "pages: c1", "publish_at: 2026-12-24"), 7, "1",
                          ["is not a date and time"]),
    "publish_at impossible": (HEAD + entry('"1"', "pages: c1", "publish_at: 2026-02-30T12:00:00Z"), 7, "1",
                              ["'2026-02-30T12:00:00Z' is not a date and time"]),
    "publish_at a number": (HEAD + entry('"1"', "pages: c1", "publish_at: 2026"), 7, "1", ["must be text"]),
    "groups not a list": (HEAD.replace(TOP["groups"], GROUP) + ONE, 2, None, [f"`groups: [{GROUP}]`"]),
    "fix not a boolean": (HEAD + entry('"1"', "pages: c1", 'fix: "yes"'), 7, "1", ["`fix` must be true or false"]),
    "terms_accepted not a boolean": ("terms_accepted: I do\n" + HEAD + ONE, 1, None, ["must be true or false"]),
    "chapters a mapping": (HEAD + '  chapter: "1"\n', 5, None, ["`chapters` must be a list, not a mapping"]),
    "chapters empty": (HEAD.replace(TOP["chapters"], "chapters: []"), 4, None, ["`chapters` is empty"]),
    "chapter entry not a mapping": (HEAD + '  - "1"\n', 5, "#1", ["item 1 of `chapters` must be a mapping"]),
    "lanraragi tags not a list": (HEAD.replace(TOP["chapters"], "lanraragi:\n  tags: a:b\nchapters:") + ONE, 5, None,
                                  ["`tags` must be a list"]),
    "missing manga": (HEAD.replace(f"manga: {MANGA}\n", "") + ONE, 1, None,
                      ["the manifest has no `manga`", "mangadex.org/title/"]),
    "missing pages": (HEAD + ONE + entry('"2"', "title: Two"), 7, "2", ["a chapter has no `pages`"]),
    "missing chapter": (HEAD + "  - pages: c1\n", 5, "#1", ["a chapter has no `chapter`", "chapter: null"]),
    "key twice": (HEAD + entry('"1"', "pages: c1", "pages: c1.5.cbz"), 7, "1", ["`pages` is set twice", "line 6"]),
    "tag in a chapter": (HEAD + entry('!ch "1"', "pages: c1"), 5, "1", ["tag !ch is not allowed"]),
    "unreadable number in a chapter": (HEAD + entry('"1"', "pages: c1", "fix: 0x_"), 7, "1",
                                       ["cannot read the value '0x_'"]),
    "tagged timestamp": (HEAD + entry('"1"', "pages: c1", "publish_at: !!timestamp soon"), 7, "1",
                         ["'soon' is not a date and time"]),
}


@pytest.mark.parametrize("case", ERRORS, ids=list(ERRORS))
def test_error_names_file_line_and_chapter(series, case):
    text, line, chapter, fragments = ERRORS[case]
    assert_error(write(series, text), line, chapter, *fragments)


def test_first_error_in_the_file_is_reported(series):
    text = HEAD + '  - chapter: "01"\n    pages: c1\n  - chapter: 2\n    pages: c1\n'
    assert_error(write(series, text), 5, "01")


# Hostile or broken files: a clear ManifestError, never a traceback or a hang -----------------------------------

HOSTILE = {
    "not YAML": ("manga: x\ngroups: []\nlanguage: en: fr\n", 3, ["not valid YAML", "mapping values"]),
    "tabs": ("manga: x\n\tgroups: []\n", 2, ["not valid YAML", "not tabs"]),
    "empty": ("", 1, ["empty"]),
    "only comments": ("# nothing yet\n", 1, ["empty"]),
    "a list": ("- chapter: 1\n", 1, ["top level must be a mapping"]),
    "a scalar": ("just some words", 1, ["top level must be a mapping"]),
    "two documents": (HEAD + ONE + "---\nmanga: x\n", 7, ["single document"]),
    "billion laughs": ("a: &a [x, x, x, x, x, x, x, x, x]\n"
                       + "".join(f"{name}: &{name} [" + ", ".join([f"*{previous}"] * 9) + "]\n"
                                 for previous, name in zip("abcdefgh", "bcdefghi")),
                       1, ["anchors and aliases"]),
    "alias only": (HEAD + '  - chapter: "1"\n    pages: c1\n    groups: *g\n', 7, ["anchors and aliases"]),
    "python object tag": ("manga: !!python/object/apply:os.system ['touch PWNED']\n", 1,
                          ["tag !!python/object/apply:os.system"]),
    "binary tag": (HEAD.replace(f"manga: {MANGA}", "manga: !!binary aGVsbG8="), 1, ["tag !!binary"]),
    "set tag": ("groups: !!set {a, b}\n", 1, ["tag !!set"]),
    "mapping key": ("? [a, b]\n: c\n", 1, ["a key must be a plain word"]),
    "control character": ("manga: x\ngroups: \x07\n", 2, ["U+0007"]),
    "deep nesting": ("chapters: " + "[" * 5000 + "]" * 5000 + "\n", 1, [f"nested more than {MAX_DEPTH} levels"]),
    "deep block nesting": ("a:\n" + "".join("  " * n + f"- k{n}:\n" for n in range(1, 60)), 11, ["nested more than"]),
    "unreadable number": ("manga: " + "1" * 5000 + "\n", 1, ["cannot read the value"]),
    "tagged nonsense": ("terms_accepted: !!bool maybe\n", 1, ["cannot read the value 'maybe'"]),
}


@pytest.mark.parametrize("case", HOSTILE, ids=list(HOSTILE))
def test_hostile_text(series, monkeypatch, case):
    text, line, fragments = HOSTILE[case]
    monkeypatch.chdir(series)
    assert_error(write(series, text), line, None, *fragments)
    assert not (series / "PWNED").exists()


def test_not_utf8_names_the_line(series):
    path = series / "manifest.yaml"
    path.write_bytes(HEAD.encode() + b'  - chapter: "1"\n    title: caf\xe9\n    pages: c1\n')
    assert_error(path, 6, None, "not UTF-8", "0xe9", "Save the manifest as UTF-8")


def test_utf16_is_refused(series):
    path = series / "manifest.yaml"
    path.write_bytes((HEAD + ONE).encode("utf-16"))
    assert_error(path, 1, None, "not UTF-8")


def test_utf8_with_bom_is_fine(series):
    path = series / "manifest.yaml"
    path.write_bytes(b"\xef\xbb\xbf" + (HEAD + ONE).encode())
    assert load_manifest(path).manga == MANGA


def assert_file_error(path, *fragments):
    error = error_of(path)
    assert str(error).startswith(f"{path}: "), str(error)
    for fragment in fragments:
        assert fragment in str(error)


def test_missing_file(tmp_path):
    assert_file_error(tmp_path / "nope.yaml", "no such file")


def test_directory(tmp_path):
    assert_file_error(tmp_path, "is a folder", "Pass the .yaml file")


def test_device():
    assert_file_error(Path(os.devnull), "not a regular file")


def test_named_pipe_does_not_block(tmp_path):
    os.mkfifo(tmp_path / "pipe.yaml")
    assert_file_error(tmp_path / "pipe.yaml", "not a regular file")


def test_symlink_loop(tmp_path):
    (tmp_path / "a.yaml").symlink_to(tmp_path / "b.yaml")
    (tmp_path / "b.yaml").symlink_to(tmp_path / "a.yaml")
    assert_file_error(tmp_path / "a.yaml", "cannot open it", "symbolic links")


def test_unreadable_file(series, monkeypatch):
    path = write(series, HEAD + ONE)
    real_open = os.open

    def refuse(target, *args, **kwargs):  # chmod 000 does not stop root, so the refusal is simulated
        if Path(target) == path:
            raise PermissionError(13, "Permission denied", str(target))
        return real_open(target, *args, **kwargs)

    monkeypatch.setattr(os, "open", refuse)
    assert_file_error(path, "cannot open it: Permission denied", "may read it")


def test_file_too_large(series):
    path = write(series, HEAD + ONE + "#" * MAX_BYTES)
    assert_file_error(path, "larger than", "not a manifest")


def test_pages_symlink_loop(series):
    (series / "loop").symlink_to(series / "loop")
    assert_error(write(series, HEAD + '  - chapter: "1"\n    pages: loop\n'), 6, "1", "cannot use 'loop'")


# The schema ----------------------------------------------------------------------------------------------------

def test_schema_files_are_identical_and_valid():
    shipped = (REPO / "mdupload" / "schema" / "manifest.schema.json").read_bytes()
    assert (REPO / "manifests" / "manifest.schema.json").read_bytes() == shipped
    jsonschema.Draft202012Validator.check_schema(json.loads(shipped))


def test_schema_says_what_limits_says():
    schema = manifest_schema()
    defs = schema["$defs"]
    assert defs["number"]["pattern"] == limits.CHAPTER_PATTERN
    assert defs["number"]["maxLength"] == limits.CHAPTER_MAX_LENGTH
    assert defs["language"]["pattern"] == limits.LANGUAGE_PATTERN
    uuid = limits.UUID_PATTERN.removeprefix("^").removesuffix("$")
    assert defs["manga"]["pattern"].startswith(f"^({uuid}|") and f"/title/{uuid}(" in defs["manga"]["pattern"]
    assert defs["group"]["pattern"].startswith(f"^({uuid}|") and f"/group/{uuid}(" in defs["group"]["pattern"]
    assert defs["groups"]["maxItems"] == limits.MAX_GROUPS
    assert defs["chapter"]["properties"]["title"]["maxLength"] == limits.TITLE_MAX_LENGTH


def test_schema_describes_every_key_for_editors():
    schema = manifest_schema()
    for properties in (schema["properties"], schema["$defs"]["chapter"]["properties"],
                       schema["properties"]["lanraragi"]["properties"]):
        for key, spec in properties.items():
            assert spec.get("title") and spec.get("description"), key


def test_example_validates_against_the_schema_as_an_editor_sees_it():
    example = (REPO / "manifests" / "example.yaml").read_text()
    assert example.startswith("# yaml-language-server: $schema=manifest.schema.json\n")
    jsonschema.validate(yaml.safe_load(example), manifest_schema())


# The example series --------------------------------------------------------------------------------------------

def test_example_manifest():
    manifest = load_manifest(REPO / "manifests" / "example.yaml")
    assert (manifest.manga, manifest.groups, manifest.terms_accepted) == (MANGA, (GROUP,), False)
    assert [(spec.chapter, spec.pages.name) for spec in manifest.chapters] == [
        ("1", "c001"), ("2", "c002.cbz"), ("2.5", "c002.5")]
    assert manifest.chapters[2].title


def test_example_pages_are_real_and_natural_order_matters():
    chapters = REPO / "manifests" / "chapters"
    names = [path.name for path in (chapters / "c001").iterdir()]
    assert natsorted(names) != sorted(names)
    with zipfile.ZipFile(chapters / "c002.cbz") as archive:
        assert len(archive.namelist()) >= 5
        assert all(name.endswith(".jpg") for name in archive.namelist())
    formats = set()
    for page in [*(chapters / "c001").iterdir(), *(chapters / "c002.5").iterdir()]:
        with Image.open(page) as image:
            assert image.size == (800, 1200)
            formats.add(image.format)
    assert formats == {"PNG", "JPEG"}
    assert sum(path.stat().st_size for path in (REPO / "manifests").rglob("*") if path.is_file()) < 1_500_000


# Properties ----------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def property_series(tmp_path_factory):
    folder = tmp_path_factory.mktemp("series")
    make_series(folder)
    return folder


languages = st.from_regex(r"[a-z]{2}(-[a-z]{2})?", fullmatch=True)
ids = st.uuids().map(str)
group_lists = st.lists(ids, max_size=limits.MAX_GROUPS, unique=True)
numbers = st.from_regex(r"(0|[1-9][0-9]{0,3})(\.[0-9]{1,2})?[a-z]?", fullmatch=True)
offsets = st.integers(-14 * 60, 14 * 60).map(lambda minutes: timezone(timedelta(minutes=minutes)))
# PyYAML's emitter writes YAML's extra line breaks (NEL, LS, PS) raw when allow_unicode=True, and any reader
# then folds them into a space: a PyYAML round-trip limit, not the manifest's, so titles leave them out.
titles = st.text(alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x85\u2028\u2029"),
                 max_size=limits.TITLE_MAX_LENGTH)
moments = st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2099, 1, 1),
                       timezones=st.just(UTC) | offsets)


@st.composite
def manifests(draw):
    """A valid manifest as a dict, with the chapters' (number, language) unique."""
    data = {"manga": draw(ids), "groups": draw(group_lists), "language": draw(languages)}
    if draw(st.booleans()):
        data["terms_accepted"] = draw(st.booleans())
    optional = {
        "volume": numbers, "title": st.none() | titles, "language": languages,
        "groups": group_lists, "publish_at": moments, "fix": st.booleans(),
    }
    data["chapters"], seen = [], set()
    for _ in range(draw(st.integers(1, 4))):
        entry = {"chapter": draw(st.none() | numbers), "pages": draw(st.sampled_from(["c1", "c1.5.cbz", "c1/"]))}
        for key in draw(st.sets(st.sampled_from(sorted(optional)))):
            entry[key] = draw(optional[key])
        if (entry["chapter"], entry.get("language", data["language"])) not in seen:
            seen.add((entry["chapter"], entry.get("language", data["language"])))
            data["chapters"].append(entry)
    return data


def utc(moment: datetime) -> datetime:
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@settings(deadline=None)
@given(data=manifests(), unicode=st.booleans())
def test_round_trip(property_series, data, unicode):
    path = property_series / "round-trip.yaml"
    path.write_text(yaml.safe_dump(data, allow_unicode=unicode, sort_keys=False), encoding="utf-8")
    manifest = load_manifest(path)
    assert (manifest.manga, manifest.language) == (data["manga"], data["language"])
    assert manifest.groups == tuple(data["groups"])
    assert manifest.terms_accepted == data.get("terms_accepted", False)
    assert len(manifest.chapters) == len(data["chapters"])
    for spec, entry in zip(manifest.chapters, data["chapters"]):
        assert (spec.chapter, spec.volume, spec.title) == (entry["chapter"], entry.get("volume"), entry.get("title"))
        assert spec.language == entry.get("language", data["language"])
        assert spec.groups == tuple(entry.get("groups", data["groups"]))
        assert spec.pages == property_series / entry["pages"].rstrip("/")
        assert spec.publish_at == (utc(entry["publish_at"]) if "publish_at" in entry else None)
        assert spec.fix == entry.get("fix", False)


def assert_clean_outcome(text: str, path: Path) -> None:
    """Either a Manifest or a ManifestError that names the file and a line; nothing else escapes."""
    try:
        parse_manifest(text, path)
    except ManifestError as error:
        assert error.path == path and error.line is not None, str(error)


yaml_ish = st.text(alphabet="-:[]{}&*!|>'\"#%@`,?~<= \n\t\r\\abcxyz019._/", max_size=200)
tags = st.sampled_from(["!!str", "!!int", "!!float", "!!bool", "!!null", "!!timestamp", "!!binary", "!!set", "!!omap",
                        "!!python/object:os.system", "!x", "!"])
tagged = st.lists(st.tuples(st.sampled_from(["manga", "groups", "language", "chapters", "x"]), tags, yaml_ish),
                  max_size=5).map(lambda lines: "".join(f"{key}: {tag} {value}\n" for key, tag, value in lines))


@settings(deadline=None)
@given(text=st.text(st.characters(), max_size=300) | yaml_ish | tagged)
def test_fuzz_text(property_series, text):
    assert_clean_outcome(text, property_series / "fuzz.yaml")


@settings(deadline=None)
@given(raw=st.binary(max_size=300))
def test_fuzz_bytes(property_series, raw):
    path = property_series / "fuzz-bytes.yaml"
    path.write_bytes(raw)
    try:
        load_manifest(path)
    except ManifestError as error:
        assert error.path == path


values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20) | moments,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)


@settings(deadline=None, suppress_health_check=[HealthCheck.filter_too_much, HealthCheck.too_slow])
@given(data=manifests(), value=values, where=st.sampled_from(
    ["manga", "groups", "language", "terms_accepted", "lanraragi", "chapters", "extra", "chapter", "volume", "title",
     "pages", "publish_at", "fix", "chapter.language", "chapter.groups", "chapter.extra"]))
def test_fuzz_values(property_series, data, value, where):
    """Any YAML value at any key of an otherwise valid manifest, or as the whole document."""
    if where.startswith("chapter") and where != "chapters":
        data["chapters"][0][where.removeprefix("chapter.")] = value
    else:
        data[where] = value
    for document in (data, value):
        assert_clean_outcome(yaml.safe_dump(document, allow_unicode=True), property_series / "fuzz-values.yaml")


def test_error_lines_match_the_text(series):
    """Lines are counted in the text as written, with comments and blank lines."""
    text = "# my series\n\n" + HEAD + "\n  # first\n" + '  - chapter: "1"\n    pages: c1\n    volume: "01"\n'
    assert_error(write(series, text), 11, "1", "`volume` '01'")


def test_validate_shows_each_schedule_in_utc_and_local_time_and_warns_of_a_past_one(series, paris_time):
    from click.testing import CliRunner

    from mdupload.cli import main

    Image.new("RGB", (800, 1200), "white").save(series / "c1" / "1.png")
    text = HEAD + entry('"1"', "pages: c1", "publish_at: 2030-12-24T18:00:00+09:00") + entry(
        '"2"', "pages: c1", "publish_at: 2020-01-01T12:00:00Z")
    result = CliRunner().invoke(main, ["validate", "--offline", str(write(series, text))])
    assert result.exit_code == 0, result.output
    assert "  scheduled for 2030-12-24 09:00 UTC (10:00 CET, +01:00 here)" in result.output
    assert "warning: " in result.output and ":10 (chapter 2): `publish_at` 2020-01-01 12:00 UTC" in result.output


def test_the_commands_expand_pages_from_the_environment_they_run_in(series, tmp_path):
    """The command layer hands the process's variables to the manifest: `status` reads `$RELEASES`."""
    manifest = write(series, HEAD + entry('"1"', "pages: $RELEASES/c1"))
    env = {"RELEASES": str(series), "MDUPLOAD_LEDGER": str(tmp_path / "ledger.sqlite3")}
    result = CliRunner().invoke(main, ["status", str(manifest)], env=env)
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(main, ["status", str(manifest)], env={**env, "RELEASES": str(tmp_path / "none")})
    assert result.exit_code != 0 and "does not exist" in result.output
