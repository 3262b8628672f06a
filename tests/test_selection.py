"""--chapter and --exclude: lists, ranges and MangaDex's number order."""

from __future__ import annotations

from pathlib import Path

import pytest

from mdupload.errors import UsageError
from mdupload.manifest import parse_manifest
from mdupload.selection import describe_numbers, number_order, select_chapters


def _manifest(tmp_path: Path, numbers: list[str | None]):
    lines = ["manga: f9c33607-9180-4ba6-b85c-e4b5faee7192", "groups: []", "language: en", "chapters:"]
    for index, number in enumerate(numbers):
        (tmp_path / f"p{index}").mkdir()
        lines += [f"  - chapter: {'null' if number is None else repr(number)}", f"    pages: p{index}"]
    return parse_manifest("\n".join(lines) + "\n", tmp_path / "manifest.yaml")


def _chosen(manifest, chapters=(), exclude=()):
    return [spec.chapter for spec in select_chapters(manifest, chapters, exclude)]


def test_numbers_sort_by_value_with_letters_right_after_their_number():
    numbers = ["10", "2", "1.5", "10a", "1", None, "10.5", "11", "1.10"]
    assert sorted(numbers, key=number_order) == [None, "1", "1.10", "1.5", "2", "10", "10a", "10.5", "11"]


def test_ranges_lists_and_the_oneshot(tmp_path):
    manifest = _manifest(tmp_path, ["1", "2", "2.5", "3", "4", "5", "6", "6a", "6.5", "7", "8", "9", "10", None])
    assert _chosen(manifest, ["1-6"]) == ["1", "2", "2.5", "3", "4", "5", "6"]
    assert _chosen(manifest, ["1,3,7-9"]) == ["1", "3", "7", "8", "9"]
    assert _chosen(manifest, ["9-10", "1"]) == ["1", "9", "10"]  # repeatable, manifest order kept
    assert _chosen(manifest, ["oneshot"]) == [None]
    assert _chosen(manifest, ["2.5"]) == ["2.5"]
    assert _chosen(manifest, ["6-7"]) == ["6", "6a", "6.5", "7"]
    assert _chosen(manifest, ["1-6"], exclude=["2-3", "5"]) == ["1", "4", "6"]
    assert len(_chosen(manifest, exclude=["oneshot"])) == 13


def test_a_term_that_matches_nothing_names_what_exists(tmp_path):
    manifest = _manifest(tmp_path, ["1", "2", "3", "4", "4.5", "7", None])
    with pytest.raises(UsageError) as caught:
        select_chapters(manifest, ["1-3,12-14"])
    assert "--chapter 12-14" in str(caught.value)
    assert "oneshot, 1-4, 4.5, 7" in str(caught.value)
    with pytest.raises(UsageError, match="--exclude 9"):
        select_chapters(manifest, exclude=["9"])
    with pytest.raises(UsageError, match="leaves no chapter"):
        select_chapters(manifest, ["1-2"], exclude=["1-2"])


@pytest.mark.parametrize("term", ["abc", "1-", "3-1", "1--2", "01x", "1-2-3"])
def test_malformed_terms_are_refused_with_the_forms_that_work(tmp_path, term):
    manifest = _manifest(tmp_path, ["1", "2", "3"])
    with pytest.raises(UsageError) as caught:
        select_chapters(manifest, [term])
    assert "--chapter" in str(caught.value)


def test_describe_numbers_shortens_runs():
    assert describe_numbers(["3", "1", "2", "5", None, "10a"]) == "oneshot, 1-3, 5, 10a"
    assert describe_numbers(["1", "2"]) == "1, 2"
