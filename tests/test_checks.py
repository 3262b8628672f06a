"""Checking whole chapters: every page, the chapter's own limits, and the JSON report."""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from mdupload import checks, limits
from mdupload.checks import PARALLEL_FROM_PAGES, check_chapter
from mdupload.manifest import ChapterSpec
from tests.test_images import damage_pixel_data

CORPUS = Path(__file__).parent / "corpus" / "images"


def spec(pages: Path, chapter: str | None = "3", volume: str | None = "1") -> ChapterSpec:
    return ChapterSpec(chapter=chapter, volume=volume, title=None, language="en", groups=(), pages=pages,
                       publish_at=None, fix=False, line=7)


def corpus_copy(folder: Path, names: dict[str, str]) -> Path:
    """Copy corpus files into `folder` under new names: {new name: corpus file}."""
    folder.mkdir(parents=True, exist_ok=True)
    for new, old in names.items():
        shutil.copyfile(CORPUS / old, folder / new)
    return folder


def test_a_good_chapter_is_ok_and_its_report_says_so(tmp_path):
    folder = corpus_copy(tmp_path / "c3", {"1.jpg": "hopper.jpg", "2.png": "hopper_bw_500.png",
                                           "10.gif": "dispose_bgnd.gif", "notes.txt": "LABELS.tsv"})
    report = check_chapter(spec(folder), tmp_path / "work")
    assert report.ok
    assert [p.page.upload_name for p in report.pages] == ["1.jpg", "2.png", "10.gif"]
    assert report.total_bytes == sum(f.stat().st_size for f in folder.iterdir() if f.suffix != ".txt")
    assert report.largest_side == 500
    document = report.to_json()
    assert json.loads(json.dumps(document)) == document
    assert document == {
        "chapter": "3", "volume": "1", "language": "en", "source": str(folder), "pages": 3,
        "total_bytes": report.total_bytes, "largest_side": 500, "ok": True, "problems": [],
        "warnings": ["ignored unexpected file notes.txt"]}


def test_page_problems_are_reported_with_the_page_they_belong_to(tmp_path):
    folder = corpus_copy(tmp_path / "c3", {"1.png": "hopper.png", "2.png": "broken.png", "3.webp": "hopper.webp",
                                           "4.png": "tRNS_null_1x1.png"})
    report = check_chapter(spec(folder), tmp_path / "work")
    assert not report.ok
    problems = report.to_json()["problems"]
    assert [(p["file"], p["code"], p["severity"]) for p in problems] == [
        (f"{folder}/2.png", "unreadable", "error"),
        (f"{folder}/3.webp", "format", "fixable"),
        (f"{folder}/4.png", "tiny", "warning")]
    assert all(p["message"] for p in problems)


def test_a_chapter_of_only_fixable_pages_is_not_ok(tmp_path):
    folder = corpus_copy(tmp_path / "c3", {"1.jpg": "png_named_as.jpg"})
    report = check_chapter(spec(folder), tmp_path / "work")
    assert not report.ok
    assert [p.severity for p in report.pages[0].problems] == ["fixable"]


def test_a_warning_alone_leaves_the_chapter_ok(tmp_path):
    folder = corpus_copy(tmp_path / "c3", {"1.png": "hopper.png", "2.png": "tRNS_null_1x1.png"})
    assert check_chapter(spec(folder), tmp_path / "work").ok


def test_many_pages_are_checked_in_parallel_and_keep_their_natural_order(tmp_path):
    count = PARALLEL_FROM_PAGES + 8
    names = {f"{n}.png": "hopper.png" for n in range(1, count + 1)}
    names["13.png"] = "broken.png"
    names["20.jpg"] = "truncated_hopper.jpg"
    del names["20.png"]
    folder = corpus_copy(tmp_path / "c3", names)
    report = check_chapter(spec(folder), tmp_path / "work")
    assert [p.page.upload_name for p in report.pages] == [
        "20.jpg" if n == 20 else f"{n}.png" for n in range(1, count + 1)]
    failing = [p.page.upload_name for p in report.pages if not p.ok]
    assert failing == ["13.png", "20.jpg"]


def test_the_deep_check_reaches_pages_checked_in_parallel(tmp_path):
    names = {f"{n}.png": "hopper.png" for n in range(1, PARALLEL_FROM_PAGES + 2)}
    folder = corpus_copy(tmp_path / "c3", names)
    (folder / "5.png").write_bytes(damage_pixel_data((folder / "5.png").read_bytes()))
    assert check_chapter(spec(folder), tmp_path / "work").ok
    deep = check_chapter(spec(folder), tmp_path / "work", deep=True)
    assert [p.page.upload_name for p in deep.pages if not p.ok] == ["5.png"]


def die(page, *, deep):
    os._exit(3)  # as the kernel's out-of-memory killer would end a worker


def test_a_worker_process_that_dies_is_a_chapter_error_not_a_traceback(tmp_path, monkeypatch):
    folder = corpus_copy(tmp_path / "c3", {f"{n}.png": "hopper.png" for n in range(1, PARALLEL_FROM_PAGES + 1)})
    monkeypatch.setattr(checks, "check_page", die)
    report = check_chapter(spec(folder), tmp_path / "work", deep=True)  # (quick checks run on threads)
    assert not report.ok
    assert [(p.code, p.severity) for p in report.problems] == [("check-crashed", "error")]


def test_more_pages_than_mangadex_takes_is_an_error_saying_which_do_not_fit(tmp_path):
    folder = tmp_path / "c3"
    folder.mkdir()
    page = folder / "1.png"
    Image.new("L", (40, 40)).save(page)
    for n in range(2, limits.FILES_PER_SESSION + 3):
        (folder / f"{n}.png").hardlink_to(page)
    report = check_chapter(spec(folder), tmp_path / "work")
    assert not report.ok
    assert [(p.code, p.severity) for p in report.problems] == [("too-many-pages", "error")]
    assert report.problems[0].message == "502 pages: MangaDex takes at most 500 per chapter"
    assert report.problems[0].fix == (
        f"split the chapter in 2: pages 501–502 (from {folder}/501.png) do not fit in one")


def test_pages_adding_up_past_the_session_limit_say_where_to_split(tmp_path, monkeypatch):
    folder = corpus_copy(tmp_path / "c3", {f"{n}.png": "hopper.png" for n in range(1, 6)})
    size = (CORPUS / "hopper.png").stat().st_size
    monkeypatch.setattr(limits, "BYTES_PER_SESSION", 3 * size + 10)  # pages 1-3 fit, 4 and 5 do not
    report = check_chapter(spec(folder), tmp_path / "work")
    assert not report.ok
    assert [(p.code, p.severity) for p in report.problems] == [("chapter-too-large", "error")]
    assert "pages 4–5" in report.problems[0].fix and "split the chapter in 2" in report.problems[0].fix
    assert f"{folder}/4.png" in report.problems[0].fix


def test_an_unsafe_archive_is_a_chapter_error_not_an_exception(tmp_path):
    archive = tmp_path / "c3.cbz"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.writestr("../../evil.png", b"x")
    report = check_chapter(spec(archive), tmp_path / "work")
    assert not report.ok and report.pages == []
    [problem] = report.problems
    assert (problem.code, problem.severity) == ("pages-unreadable", "error")
    assert "points outside the archive" in problem.message and problem.fix
    assert report.to_json()["problems"][0]["file"] == str(archive)


@pytest.mark.parametrize("make, code", [(Path.mkdir, "no-pages"), (Path.touch, "pages-unreadable"),
                                        (lambda path: None, "pages-unreadable")])
def test_a_chapter_without_pages_is_an_error(tmp_path, make, code):
    folder = tmp_path / "c3"
    make(folder)
    report = check_chapter(spec(folder, chapter=None, volume=None), tmp_path / "work")
    assert not report.ok
    assert [(p.code, p.severity) for p in report.problems] == [(code, "error")]
    assert report.problems[0].fix
    document = report.to_json()
    assert (document["chapter"], document["pages"], document["total_bytes"], document["largest_side"]) == (
        None, 0, 0, None)


def test_an_archive_chapter_is_checked_from_its_extracted_pages(tmp_path):
    archive = tmp_path / "c3.cbz"
    with zipfile.ZipFile(archive, "w") as bundle:
        bundle.write(CORPUS / "hopper.jpg", "c3/2.jpg")
        bundle.write(CORPUS / "hopper.webp", "c3/10.webp")
        bundle.write(CORPUS / "hopper.png", "c3/1.png")
    report = check_chapter(spec(archive), tmp_path / "work")
    assert [p.page.origin for p in report.pages] == [f"{archive}!c3/1.png", f"{archive}!c3/2.jpg",
                                                      f"{archive}!c3/10.webp"]
    assert [p.ok for p in report.pages] == [True, True, False]
