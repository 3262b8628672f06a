"""SERIES.yaml: what a series loads to, the manifest an item's name gives, and the errors a user sees."""

import re
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mdupload.errors import ManifestError, UsageError
from mdupload.series import load_all_series, load_series, load_series_folder

REPO = Path(__file__).resolve().parents[1]
MANGA = "f9c33607-9180-4ba6-b85c-e4b5faee7192"
GROUP = "145f9110-0a6c-4b71-8737-6acb1a3c5da4"
GROUP2 = "6e9a1d8c-3f41-4a7e-9a59-2b7c0d5e8f13"
HEAD = f"manga: {MANGA}\ngroups: [{GROUP}]\nlanguage: en\n"  # the next line is line 4


def write(folder: Path, text: str, name: str = "series.yaml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def error_of(path: Path) -> ManifestError:
    with pytest.raises(ManifestError) as caught:
        load_series(path)
    return caught.value


def test_the_example_loads():
    series = load_series(REPO / "manifests" / "example-series.yaml")
    assert (series.manga, series.groups, series.language) == (MANGA, (GROUP,), "en")
    assert (series.match, series.volume, series.pattern, series.terms_accepted) == (("Demo Series",), "1", None, False)
    assert series.matches("Demo Series [es-la] - c012.5 (v03) (The Title) [Demo Scans].cbz")


def test_a_minimal_series_has_the_defaults(tmp_path):
    series = load_series(write(tmp_path, HEAD))
    assert (series.terms_accepted, series.fix, series.volume, series.pattern, series.match) == (False, False, None,
                                                                                                 None, ())
    assert series.matches("anything at all - c1")


def test_every_key(tmp_path):
    text = HEAD + ('terms_accepted: true\nfix: true\nvolume: "2"\nmatch: [My Series, Other Name]\n'
                   r"pattern: '^(?P<title>.+?) ch(?P<chapter>\d+)$'" + "\n")
    series = load_series(write(tmp_path, text.replace(MANGA, MANGA.upper())))
    assert series.manga == MANGA  # ids compare in lower case, as in manifests
    assert (series.terms_accepted, series.fix, series.volume, series.match) == (True, True, "2",
                                                                                ("My Series", "Other Name"))
    assert series.pattern.pattern == r"^(?P<title>.+?) ch(?P<chapter>\d+)$"


ERRORS = {
    "unknown key": (HEAD + "chapters: []\n", 4, ["unknown key `chapters`", "The keys here are"]),
    "typo": (HEAD + "mach: Foo\n", 4, ["unknown key `mach`", "Did you mean `match`?"]),
    "missing manga": ("groups: []\nlanguage: en\n", 1, ["has no `manga`"]),
    "bad language": (HEAD.replace("language: en", "language: EN"), 3, ["'EN' is not a MangaDex language code",
                                                                     "language: en"]),
    "volume with a leading zero": (HEAD + 'volume: "01"\n', 4, ["`volume` '01'", 'volume: "1"']),
    "unquoted volume": (HEAD + "volume: 1.50\n", 4, ["YAML reads 1.50 as a number"]),
    "terms not a boolean": (HEAD + "terms_accepted: maybe\n", 4, ["true or false"]),
    "pattern does not compile": (HEAD + "\n\npattern: '(?P<chapter>\\d+'\n", 6,
                                 ["not a valid regular expression", "missing ), unterminated subpattern"]),
    "pattern without a number": (HEAD + "pattern: '(?P<title>.+)'\n", 4, ["no (?P<chapter>...) or (?P<volume>...)"]),
    "pattern with an unknown group": (HEAD + "pattern: 'c(?P<chap>\\d+)'\n", 4, ["(?P<chap>...)", "does not read"]),
    "pattern not text": (HEAD + "pattern: [a, b]\n", 4, ["`pattern` must be text"]),
    "match empty": (HEAD + "match: '  '\n", 4, ["`match` is empty"]),
    "match empty in a list": (HEAD + "match:\n  - Good\n  - ''\n", 6, ["`match` is empty"]),
    "match an empty list": (HEAD + "match: []\n", 4, ["`match` is an empty list"]),
    "match a mapping": (HEAD + "match: {a: b}\n", 4, ["`match` must be text or a list"]),
    "group not an id": (HEAD.replace(f"[{GROUP}]", "[Scans Group]"), 2, ["item 1 of `groups`",
                                                                          "is not a MangaDex id"]),
    "tab indentation": (HEAD + "match:\n\t- x\n", 5, ["not valid YAML", "tabs"]),
    "anchor": (HEAD + "match: &a x\nvolume: *a\n", 4, ["anchors and aliases"]),
    "empty file": ("", 1, ["the file is empty", "example-series.yaml"]),
    "groups_by_name not a mapping": (HEAD + "groups_by_name: [a]\n", 4, ["`groups_by_name` must be a mapping"]),
    "groups_by_name with a bad id": (HEAD + "groups_by_name:\n  Group A: 145f\n", 5,
                                     ["the id of 'Group A' in `groups_by_name` is not a MangaDex id or group address"]),
    "groups_by_name with a manga address": (HEAD + f"groups_by_name:\n  Group A: mangadex.org/title/{MANGA}\n", 5,
                                            ["is the address of a title, not of a group"]),
    "groups_by_name twice": (HEAD + f"groups_by_name:\n  Group A: {GROUP}\n  group_a: {GROUP2}\n", 6,
                             ["lists 'Group A' and 'group_a', which are the same name"]),
    "publish_at_from_name true": (HEAD + "publish_at_from_name: true\n", 4,
                                  ["must name the time zone", "Asia/Tokyo"]),
    "publish_at_from_name unknown": (HEAD + "publish_at_from_name: Mars/Olympus\n", 4,
                                     ["'Mars/Olympus' is not a time zone mdupload knows", "+09:00"]),
    "publish_at_from_name offset too large": (HEAD + "publish_at_from_name: '+25:00'\n", 4, ["not a time zone"]),
    "not a mapping": ("- manga\n", 1, ["top level must be a mapping", "example-series.yaml"]),
}


@pytest.mark.parametrize("text, line, fragments", ERRORS.values(), ids=ERRORS.keys())
def test_errors_name_the_file_and_line(tmp_path, text, line, fragments):
    path = write(tmp_path, text)
    error = error_of(path)
    assert str(error).startswith(f"{path}:{line}: "), str(error)
    assert error.line == line
    for fragment in fragments:
        assert fragment in str(error)


def test_a_missing_file(tmp_path):
    error = error_of(tmp_path / "nope.yaml")
    assert str(error).startswith(f"{tmp_path / 'nope.yaml'}: no such file")


# --- the manifest an item gives -------------------------------------------------------------------

@pytest.fixture
def series(tmp_path):
    return load_series(write(tmp_path, HEAD + 'volume: "9"\nfix: true\nterms_accepted: true\n'))


def test_an_item_becomes_a_one_chapter_manifest(series, tmp_path):
    item = tmp_path / "Series Name [es-la] - c012.5 (v03) (The Title) [Group].cbz"
    manifest = series.manifest_for(item)
    assert (manifest.path, manifest.manga, manifest.groups, manifest.terms_accepted) == (series.path, MANGA,
                                                                                         (GROUP,), True)
    (spec,) = manifest.chapters
    assert (spec.chapter, spec.volume, spec.title, spec.language) == ("12.5", "3", "The Title", "es-la")
    assert (spec.pages, spec.groups, spec.fix, spec.publish_at) == (item, (GROUP,), True, None)


def test_the_series_fills_what_the_name_does_not_say(series, tmp_path):
    (spec,) = series.manifest_for(tmp_path / "Series Name - c7").chapters
    assert (spec.chapter, spec.volume, spec.title, spec.language) == ("7", "9", None, "en")


def test_an_oneshot(series, tmp_path):
    (spec,) = series.manifest_for(tmp_path / "Series Name - Oneshot (A Summer Story) [Group]").chapters
    assert (spec.chapter, spec.title, spec.label) == (None, "A Summer Story", "vol 9 oneshot (en)")


def test_a_pattern_reads_the_name(tmp_path):
    text = HEAD + r"pattern: '^(?P<title>.+?) #(?P<chapter>\d+)(?: \((?P<language>[a-z-]+)\))?$'" + "\n"
    series = load_series(write(tmp_path, text))
    (spec,) = series.manifest_for(tmp_path / "The Night Market #012 (pt-br).zip").chapters
    assert (spec.chapter, spec.volume, spec.title, spec.language) == ("12", None, "The Night Market", "pt-br")


ITEM_ERRORS = {
    "no number": ("", "Series Name [Group]", ["cannot read the chapter from its name", "Rename it like"]),
    "not the pattern": (r"pattern: 'ch(?P<chapter>\d+)'", "Series c12", ["does not match the series pattern",
                                                                         "fit the `pattern`"]),
    "pattern reads nothing": (r"pattern: 'x(?P<chapter>\d*)'", "Series x", ["matched but read no chapter"]),
    "a number MangaDex refuses": (r"pattern: '#(?P<chapter>\S+)'", "Series #12-b", ["chapter '12-b'",
                                                                                    "not a number MangaDex accepts"]),
    "a number too long": (r"pattern: '#(?P<chapter>\S+)'", "Series #123456789", ["chapter '123456789'"]),
    "a bad language": (r"pattern: '#(?P<chapter>\d+) (?P<language>\S+)'", "Series #1 english",
                       ["language 'english'", "not a MangaDex language code"]),
    "a title too long": (r"pattern: '#(?P<chapter>\d+) (?P<title>.+)'", "Series #1 " + "x" * 256,
                         ["256 characters long", "at most 255"]),
}


@pytest.mark.parametrize("pattern, name, fragments", ITEM_ERRORS.values(), ids=ITEM_ERRORS.keys())
def test_names_that_give_no_valid_chapter(tmp_path, pattern, name, fragments):
    series = load_series(write(tmp_path, HEAD + pattern + "\n"))
    with pytest.raises(ManifestError) as caught:
        series.manifest_for(tmp_path / name)
    assert str(caught.value).startswith(f"{tmp_path / name}: ")
    for fragment in fragments:
        assert fragment in str(caught.value)


def test_manga_and_groups_may_be_mangadex_addresses(tmp_path):
    text = (f"manga: https://mangadex.org/title/{MANGA}/series-name\n"
            f"groups: [https://mangadex.org/group/{GROUP}/group-a, {GROUP}]\nlanguage: en\nvolume: 2\n")
    series = load_series(write(tmp_path, text))
    assert (series.manga, series.groups, series.volume) == (MANGA, (GROUP,), "2")


# --- groups named in the item ------------------------------------------------------------------------

GROUP3 = "0b1c2d3e-4f50-4a61-8b72-9c83d4e5f607"
BY_NAME = HEAD + (f"groups_by_name:\n  Group A: {GROUP2}\n  group  b: https://mangadex.org/group/{GROUP3}/b\n"
                  "  Some Publisher:\n")


@pytest.mark.parametrize("name, groups", [
    ("[Group A & Group B] Series - c012", (GROUP2, GROUP3)),
    ("Series - c012 [GROUP_A x groupb]", (GROUP2, GROUP3)),
    ("Series - c012 [group a+Group A]", (GROUP2,)),
    ("Series - c012 [Group B]", (GROUP3,)),
    ("Series - c012", (GROUP,)),  # names no group: the series' groups
    ("Series - c012 [Some Publisher]", (GROUP,)),  # a name that is no group
    ("Series - c012 (Color) [en]", (GROUP,)),
])
def test_groups_by_name_maps_the_names_in_items_to_ids(tmp_path, name, groups):
    series = load_series(write(tmp_path, BY_NAME))
    (spec,) = series.manifest_for(tmp_path / name).chapters
    assert spec.groups == groups


def test_an_item_naming_a_group_not_in_the_map_says_what_to_add(tmp_path):
    path = write(tmp_path, BY_NAME)
    series = load_series(path)
    item = tmp_path / "[Group A & Group C] Series - c012.cbz"
    with pytest.raises(ManifestError) as caught:
        series.manifest_for(item)
    assert str(caught.value).startswith(f"{item}: the name credits the group 'Group C', which `groups_by_name` in "
                                        f"{path} does not list.")
    assert "`  Group C: <its id or mangadex.org/group/... address>` under `groups_by_name:`" in caught.value.hint


def test_without_groups_by_name_the_names_in_items_are_not_read(series, tmp_path):
    (spec,) = series.manifest_for(tmp_path / "[Anyone] Series - c012").chapters
    assert spec.groups == (GROUP,)


# --- the publish date from the item's name ----------------------------------------------------------

@pytest.mark.parametrize("zone, name, moment", [
    ("UTC", "Series - c012 [2030-12-24 18.00] [Group]", datetime(2030, 12, 24, 18, 0, tzinfo=UTC)),
    ("'+09:00'", "Series - c012 (2030-12-24 1800)", datetime(2030, 12, 24, 9, 0, tzinfo=UTC)),
    ("'-05:30'", "Series - c012 [2030-12-24T18h00]", datetime(2030, 12, 24, 23, 30, tzinfo=UTC)),
    ("Asia/Tokyo", "Series - c012 [2030-07-01 09-15]", datetime(2030, 7, 1, 0, 15, tzinfo=UTC)),
    ("Europe/Paris", "Series - c012 [2030-07-01 09.15]", datetime(2030, 7, 1, 7, 15, tzinfo=UTC)),  # summer time
    ("UTC", "Series - c012 [Group]", None),  # no date: published at once
])
def test_publish_at_from_name(tmp_path, zone, name, moment):
    series = load_series(write(tmp_path, HEAD + f"publish_at_from_name: {zone}\n"))
    manifest = series.manifest_for(tmp_path / name)
    assert manifest.chapters[0].publish_at == moment
    assert manifest.warnings == ()


def test_a_date_in_the_name_is_ignored_unless_the_series_asks(series, tmp_path):
    (spec,) = series.manifest_for(tmp_path / "Series - c012 [2030-12-24 18.00] [Group]").chapters
    assert (spec.publish_at, spec.title) == (None, None)


@pytest.mark.parametrize("name, fragment", [
    ("Series - c012 [2030-12-24]", "gives the date 2030-12-24 without a time of day"),
    ("Series - c012 [2030-02-30 18.00]", "'2030-02-30 18.00', which is not a date and time"),
])
def test_a_date_in_the_name_that_cannot_be_used(tmp_path, name, fragment):
    series = load_series(write(tmp_path, HEAD + "publish_at_from_name: UTC\n"))
    with pytest.raises(ManifestError) as caught:
        series.manifest_for(tmp_path / name)
    assert str(caught.value).startswith(f"{tmp_path / name}: ") and fragment in str(caught.value)
    assert "[YYYY-MM-DD HH.MM]" in caught.value.hint


def test_a_date_in_the_past_is_a_warning(tmp_path):
    series = load_series(write(tmp_path, HEAD + "publish_at_from_name: UTC\n"))
    item = tmp_path / "Series - c012 [2020-01-01 12.00]"
    manifest = series.manifest_for(item)
    assert manifest.chapters[0].publish_at == datetime(2020, 1, 1, 12, tzinfo=UTC)
    assert len(manifest.warnings) == 1
    assert manifest.warnings[0].startswith(f"{item}: the date in the name, 2020-01-01 12:00 UTC")
    assert "is in the past" in manifest.warnings[0]


def test_match_ignores_case_underscores_dots_and_spacing(tmp_path):
    series = load_series(write(tmp_path, HEAD + "match: [Dr. Stone, The  Night Market]\n"))
    for name in ("dr stone - c1", "[Grp] Dr.Stone_Ch.12 [en].cbz", "THE_NIGHT_MARKET c3", "the night.market v1"):
        assert series.matches(name), name
    assert series.matches("Dr Stoned c1")  # a text found anywhere in the name
    for name in ("Night Market c1", "Dr-Stone c1"):
        assert not series.matches(name), name


# --- several series ---------------------------------------------------------------------------------

def test_a_folder_of_series(tmp_path):
    folder = tmp_path / "series"
    folder.mkdir()
    write(folder, HEAD + "match: B\n", "b.yml")
    write(folder, HEAD + "match: A\n", "a.yaml")
    write(folder, "not: a series", "notes.txt")
    write(folder, "hidden", ".editor.yaml")
    assert [s.match for s in load_series_folder(folder)] == [("A",), ("B",)]


def test_a_folder_without_series(tmp_path):
    with pytest.raises(ManifestError, match="holds no series file"):
        load_series_folder(tmp_path)


def test_files_and_folders_together_each_series_once(tmp_path):
    folder = tmp_path / "series"
    folder.mkdir()
    a = write(folder, HEAD + "match: A\n", "a.yaml")
    b = write(tmp_path, HEAD + "match: B\n", "b.yaml")
    loaded = load_all_series([folder, b, a])
    assert [s.path for s in loaded] == [a, b]


def test_sharing_an_inbox_needs_a_match_each(tmp_path):
    a = write(tmp_path, HEAD + "match: A\n", "a.yaml")
    b = write(tmp_path, HEAD, "b.yaml")
    assert len(load_all_series([b])) == 1  # alone, a series may take every item
    with pytest.raises(ManifestError) as caught:
        load_all_series([a, b])
    assert str(caught.value).startswith(f"{b}: 2 series share the inbox, and this one has no `match`")


def test_no_series_at_all():
    with pytest.raises(UsageError, match="--series"):
        load_all_series([])


# --- fuzzing: nothing but a ManifestError comes out -----------------------------------------------

KEYS = ["manga", "groups", "language", "terms_accepted", "fix", "volume", "pattern", "match", "chapters",
        "groups_by_name", "publish_at_from_name", "x"]
yaml_ish = st.text(alphabet="-:[]{}&*!|>'\"#%@`,?~<= \n\t\\()?P<>+.^$abcxyz019_", max_size=200)
lines = st.lists(st.tuples(st.sampled_from(KEYS), yaml_ish | st.sampled_from([MANGA, f"[{GROUP}]", "en", "true"])),
                 max_size=8).map(lambda pairs: "".join(f"{key}: {value}\n" for key, value in pairs))
values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                      lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children,
                                                                                        max_size=3), max_leaves=10)
documents = st.dictionaries(st.sampled_from(KEYS), values, max_size=4).map(  # a valid series, some keys changed
    lambda changes: yaml.safe_dump({"manga": MANGA, "groups": [GROUP2], "language": "en", **changes}, allow_unicode=True))


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.text(max_size=300) | yaml_ish | lines | documents)
def test_fuzz_only_manifest_errors_come_out(text):
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "fuzz.yaml"
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        try:
            series = load_series(path)
        except ManifestError as error:
            assert error.path == path and error.line is not None, str(error)
        else:
            assert isinstance(series.pattern, (re.Pattern, type(None)))
            assert all(isinstance(text, str) and text.strip() for text in series.match)
