"""Collecting a chapter's pages from a folder or an archive: order, names, junk, and hostile archives."""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
import zipfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mdupload import pages as pages_module
from mdupload.errors import PageError
from mdupload.pages import NoPagesError, collect_pages

CORPUS = Path(__file__).parent / "corpus" / "images"
PNG = (CORPUS / "hopper.png").read_bytes()


def make_folder(root: Path, names: list[str], content: bytes = PNG) -> Path:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content)
    return root


def make_zip(path: Path, members: list[tuple[str | zipfile.ZipInfo, bytes]]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as bundle:
        for name, data in members:
            bundle.writestr(name, data)
    return path


def member(name: str, kind: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3  # unix: the type bits below mean what they say
    info.external_attr = (kind | 0o644) << 16
    return info


def inside(path: Path) -> list[str]:
    return sorted(p.relative_to(path).as_posix() for p in path.rglob("*") if p.is_file())


@pytest.fixture
def layout(tmp_path, monkeypatch):
    """A source folder and a work folder; the current folder is tmp_path, so origins are relative."""
    monkeypatch.chdir(tmp_path)
    return tmp_path, tmp_path / "work"


# --- folders ----------------------------------------------------------------------------------

def test_folder_pages_come_in_natural_order_with_folders_ordered_naturally_too(layout):
    root, work = layout
    make_folder(root / "c1", ["10.png", "2.png", "1.png", "Part 10/1.png", "Part 10/part 2/1.png", "Page 3.PNG",
                              "page 20.jpg"])
    collected = collect_pages(root / "c1", work)
    assert [p.origin for p in collected.pages] == [
        "c1/1.png", "c1/2.png", "c1/10.png", "c1/Page 3.PNG", "c1/page 20.jpg", "c1/Part 10/1.png",
        "c1/Part 10/part 2/1.png"]
    assert collected.warnings == []
    assert all(p.path.read_bytes() == PNG for p in collected.pages)
    assert not work.exists()  # a folder is read where it is


def test_junk_is_ignored_silently_and_anything_else_unexpected_is_named(layout):
    root, work = layout
    make_folder(root / "c1", ["1.png", "Thumbs.db", ".DS_Store", "desktop.ini", "ComicInfo.xml", ".hidden.png",
                              ".git/2.png", "__MACOSX/c1/._1.png", "notes.txt", "extras/bonus.cbz", "2.webp"])
    collected = collect_pages(root / "c1", work)
    assert [p.upload_name for p in collected.pages] == ["1.png", "2.webp"]  # the checks will report the webp
    assert collected.warnings == [
        "ignored nested archive extras/bonus.cbz: pages inside an archive within the chapter are not read "
        "(extract it)",
        "ignored unexpected file notes.txt"]


def test_upload_names_are_basenames_unless_two_pages_share_one(layout):
    root, work = layout
    make_folder(root / "c1", ["001.png", "a/001.png", "a/b c/001.png", "002.png", "a/003.png", "a/b c/004.PNG",
                              "a/004.png"])
    collected = collect_pages(root / "c1", work)
    names = {p.origin.removeprefix("c1/"): p.upload_name for p in collected.pages}
    assert names == {"001.png": "001.png", "a/001.png": "a_001.png", "a/b c/001.png": "a_b_c_001.png",
                     "002.png": "002.png", "a/003.png": "003.png", "a/b c/004.PNG": "a_b_c_004.PNG",
                     "a/004.png": "a_004.png"}


def test_upload_names_stay_unique_when_sanitized_folders_collide(layout):
    root, work = layout
    make_folder(root / "c1", ["1.png", "a b/1.png", "a_b_1.png"])
    names = [p.upload_name for p in collect_pages(root / "c1", work).pages]
    assert len(set(names)) == 3 and "a_b_1.png" in names


# --- one source, one chapter: sibling folders of pages are refused, a wrapper folder is fine -------

@pytest.mark.parametrize("names, listed", [
    (["Vol1 Ch1/1.png", "Vol1 Ch1/2.png", "Vol1 Ch2/1.png"], "2 folders of pages (Vol1 Ch1/, Vol1 Ch2/)"),
    (["Series/Ch10/1.png", "Series/Ch2/1.png", "Series/Ch1/1.png"],
     "3 folders of pages (Series/Ch1/, Series/Ch2/, Series/Ch10/)"),
    (["cover.png", "c1/1.png", "c2/1.png"], "2 folders of pages (c1/, c2/)"),
    ([f"c{n}/1.png" for n in range(1, 8)], "7 folders of pages (c1/, c2/, c3/, c4/, c5/ and 2 more)"),
])
@pytest.mark.parametrize("kind", ["folder", "archive"])
def test_several_chapter_folders_are_refused_and_named_never_merged(layout, names, listed, kind):
    root, work = layout
    if kind == "folder":
        source = make_folder(root / "backlog", names)
    else:
        source = root / "backlog.cbz"
        make_zip(source, [(name, PNG) for name in names])
    with pytest.raises(PageError) as caught:
        collect_pages(source, work)
    assert f"holds {listed}" in str(caught.value)
    assert "never merges" in str(caught.value)
    assert "its own entry in the manifest" in caught.value.hint
    assert not work.exists() or not any(work.rglob("*.png"))  # refused before anything is extracted


@pytest.mark.parametrize("kind", ["folder", "archive"])
def test_a_single_wrapper_folder_holds_the_chapter(layout, kind):
    root, work = layout
    names = ["Series - c012/Scans/10.png", "Series - c012/Scans/2.png", "Series - c012/Scans/1.png"]
    if kind == "folder":
        source = make_folder(root / "c12", names)
    else:
        source = root / "c12.cbz"
        make_zip(source, [(name, PNG) for name in names])
    collected = collect_pages(source, work)
    assert [p.upload_name for p in collected.pages] == ["1.png", "2.png", "10.png"]


def test_junk_folders_beside_the_chapter_folder_do_not_count(layout):
    root, work = layout
    make_zip(root / "c1.cbz", [("c1/1.png", PNG), ("c1/2.png", PNG), ("__MACOSX/c1/._1.png", b"junk"),
                               ("notes/readme.txt", b"hi")])
    assert [p.upload_name for p in collect_pages(root / "c1.cbz", work).pages] == ["1.png", "2.png"]


@given(numbers=st.lists(st.integers(min_value=0, max_value=10**6), min_size=1, max_size=25, unique=True),
       prefix=st.text(alphabet="abcxyz _-", max_size=6).filter(lambda s: not s.startswith((" ", "-"))),
       data=st.data())
@settings(max_examples=60, deadline=None)
def test_natural_order_of_page_names_is_their_numeric_order(numbers, prefix, data):
    names = []
    for number in numbers:
        padding = data.draw(st.integers(min_value=0, max_value=4))
        shown_prefix = data.draw(st.sampled_from([prefix, prefix.upper()]))
        extension = data.draw(st.sampled_from([".png", ".PNG", ".jpg", ".gif"]))
        names.append(f"{shown_prefix}{number:0{padding}d}{extension}")
    with tempfile.TemporaryDirectory() as temp:
        root = make_folder(Path(temp) / "chapter", names, b"x")
        collected = collect_pages(root, Path(temp) / "work")
        got = [p.path.name for p in collected.pages]
    by_number = [name for _number, name in sorted(zip(numbers, names))]
    assert got == by_number


def test_a_missing_source_says_to_check_the_manifest(layout):
    root, work = layout
    with pytest.raises(PageError, match="c9: does not exist") as caught:
        collect_pages(root / "c9", work)
    assert "pages:" in caught.value.hint


def test_an_empty_folder_or_one_without_images_has_no_pages(layout):
    root, work = layout
    (root / "empty").mkdir()
    with pytest.raises(NoPagesError, match="holds no page images"):
        collect_pages(root / "empty", work)
    make_folder(root / "notes", ["readme.txt", "Thumbs.db"])
    with pytest.raises(NoPagesError, match=r"holds no page images \(only readme.txt\)"):
        collect_pages(root / "notes", work)


def test_a_source_that_is_a_symlink_loop_is_refused(layout):
    root, work = layout
    (root / "a").symlink_to(root / "b")
    (root / "b").symlink_to(root / "a")
    with pytest.raises(PageError, match="symlink loop") as caught:
        collect_pages(root / "a", work)
    assert "real folder" in caught.value.hint


def test_a_symlink_loop_inside_the_folder_is_refused(layout):
    root, work = layout
    make_folder(root / "c1", ["1.png"])
    (root / "c1" / "sub").mkdir()
    (root / "c1" / "sub" / "back").symlink_to(root / "c1")
    with pytest.raises(PageError, match="symlink loop"):
        collect_pages(root / "c1", work)


def test_a_linked_page_is_read_and_a_broken_link_or_pipe_named_as_a_page_is_refused(layout):
    root, work = layout
    make_folder(root / "elsewhere", ["real.png"])
    make_folder(root / "c1", ["1.png"])
    (root / "c1" / "2.png").symlink_to(root / "elsewhere" / "real.png")
    assert [p.upload_name for p in collect_pages(root / "c1", work).pages] == ["1.png", "2.png"]
    (root / "c1" / "3.png").symlink_to(root / "nowhere.png")
    with pytest.raises(PageError, match="3.png: cannot be read"):
        collect_pages(root / "c1", work)
    (root / "c1" / "3.png").unlink()
    os.mkfifo(root / "c1" / "3.png")  # reading it would block forever
    with pytest.raises(PageError, match="3.png: is not a regular file"):
        collect_pages(root / "c1", work)


def test_a_source_that_is_neither_folder_nor_zip_is_refused(layout):
    root, work = layout
    (root / "c1.cbr").write_bytes(b"Rar!\x1a\x07\x00")
    with pytest.raises(PageError, match="neither a folder nor a .zip/.cbz"):
        collect_pages(root / "c1.cbr", work)


# --- archives ---------------------------------------------------------------------------------

def test_an_archive_is_extracted_into_the_work_folder_in_natural_order(layout):
    root, work = layout
    make_zip(root / "c1.cbz", [("c1/10.png", b"ten"), ("c1/2.png", b"two"), ("c1/1.jpg", b"one"),
                               ("__MACOSX/c1/._2.png", b"junk"), ("c1/ComicInfo.xml", b"<x/>"),
                               ("c1/credits.txt", b"hi"), ("c1/", b"")])
    collected = collect_pages(root / "c1.cbz", work)
    assert [p.origin for p in collected.pages] == ["c1.cbz!c1/1.jpg", "c1.cbz!c1/2.png", "c1.cbz!c1/10.png"]
    assert [p.upload_name for p in collected.pages] == ["1.jpg", "2.png", "10.png"]
    assert [p.path.read_bytes() for p in collected.pages] == [b"one", b"two", b"ten"]
    assert all(p.path.is_relative_to(work) for p in collected.pages)
    assert collected.warnings == ["ignored unexpected file c1/credits.txt"]


def test_an_archive_nested_in_an_archive_is_named_and_ignored(layout):
    root, work = layout
    make_zip(root / "c1.zip", [("1.png", PNG), ("bonus.zip", b"PK")])
    collected = collect_pages(root / "c1.zip", work)
    assert [p.upload_name for p in collected.pages] == ["1.png"]
    assert collected.warnings[0].startswith("ignored nested archive bonus.zip")


@pytest.mark.parametrize("name, words", [
    ("../evil.png", "points outside the archive"),
    ("pages/../../evil.png", "points outside the archive"),
    ("..\\evil.png", "points outside the archive"),
    ("/tmp/evil.png", "absolute path"),
    ("C:/Users/evil.png", "absolute path"),
    ("C:\\evil.png", "absolute path"),
])
def test_member_names_leaving_the_archive_are_refused_and_nothing_is_written(layout, name, words):
    root, work = layout
    make_zip(root / "c1.cbz", [("1.png", PNG), (zipfile.ZipInfo(name), PNG)])
    with pytest.raises(PageError, match=words) as caught:
        collect_pages(root / "c1.cbz", work)
    assert "c1.cbz" in str(caught.value) and name in str(caught.value)
    assert inside(root) == ["c1.cbz"]


def test_a_member_name_with_control_characters_is_refused(layout):
    root, work = layout
    make_zip(root / "c1.cbz", [("1\x1b[2J.png", PNG)])
    with pytest.raises(PageError, match=r"member name '1\\x1b\[2J.png' holds control characters"):
        collect_pages(root / "c1.cbz", work)


@pytest.mark.parametrize("kind, words", [(stat.S_IFLNK, "symbolic link"), (stat.S_IFCHR, "device or special"),
                                         (stat.S_IFIFO, "device or special")])
def test_links_and_special_members_are_refused(layout, kind, words):
    root, work = layout
    make_zip(root / "c1.cbz", [("1.png", PNG), (member("2.png", kind), b"/etc/passwd")])
    with pytest.raises(PageError, match=f"member '2.png' is a {words}"):
        collect_pages(root / "c1.cbz", work)
    assert inside(root) == ["c1.cbz"]


def test_a_zip_bomb_member_is_refused_without_writing_past_the_bound(layout, monkeypatch):
    root, work = layout
    monkeypatch.setattr(pages_module, "MAX_MEMBER_BYTES", 2 * pages_module.CHUNK_BYTES)
    make_zip(root / "c1.cbz", [("1.png", PNG), ("2.png", b"\0" * (5 * pages_module.CHUNK_BYTES))])
    with pytest.raises(PageError, match="member 2.png inflates past 2 MB .*zip bomb"):
        collect_pages(root / "c1.cbz", work)
    assert [name.rsplit("/", 1)[-1] for name in inside(work)] == ["0001.png"]  # the partial page was removed


def test_a_member_whose_header_understates_its_size_is_not_trusted(layout):
    root, work = layout
    path = make_zip(root / "c1.cbz", [("1.png", b"\0" * 3_000_000)])
    data = bytearray(path.read_bytes())
    central = data.index(b"PK\x01\x02")
    data[central + 24:central + 28] = (1000).to_bytes(4, "little")  # "uncompressed size: 1000"
    path.write_bytes(bytes(data))
    with pytest.raises(PageError, match="member 1.png is damaged"):
        collect_pages(path, work)
    assert inside(work) == []


def test_an_archive_inflating_past_the_total_bound_is_refused(layout, monkeypatch):
    root, work = layout
    monkeypatch.setattr(pages_module, "MAX_ARCHIVE_BYTES", 1_000_000)
    make_zip(root / "c1.cbz", [(f"{n}.png", b"\0" * 400_000) for n in range(1, 4)])
    with pytest.raises(PageError, match="in all at member 3.png"):
        collect_pages(root / "c1.cbz", work)
    assert sum(p.stat().st_size for p in work.rglob("*") if p.is_file()) <= 1_000_000


def test_an_archive_with_too_many_entries_is_refused(layout, monkeypatch):
    root, work = layout
    monkeypatch.setattr(pages_module, "MAX_MEMBERS", 3)
    make_zip(root / "c1.cbz", [(f"{n}.png", b"x") for n in range(4)])
    with pytest.raises(PageError, match="holds 4 entries"):
        collect_pages(root / "c1.cbz", work)


def test_a_truncated_zip_is_refused_clearly(layout):
    root, work = layout
    path = make_zip(root / "c1.cbz", [(f"{n}.png", PNG) for n in range(3)])
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(PageError, match="not a readable zip archive") as caught:
        collect_pages(path, work)
    assert "again" in caught.value.hint


def test_a_member_with_a_bad_crc_is_refused_clearly(layout):
    root, work = layout
    path = root / "c1.cbz"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as bundle:
        bundle.writestr("1.png", b"A" * 1000)
    data = path.read_bytes().replace(b"A" * 1000, b"A" * 999 + b"B")
    path.write_bytes(data)
    with pytest.raises(PageError, match="member 1.png is damaged"):
        collect_pages(path, work)


def test_a_password_protected_member_is_refused_clearly(layout):
    root, work = layout
    path = make_zip(root / "c1.cbz", [("1.png", PNG)])
    data = bytearray(path.read_bytes())
    data[6] |= 0x1  # the local header's "encrypted" flag
    central = data.index(b"PK\x01\x02")
    data[central + 8] |= 0x1  # and the central directory's
    path.write_bytes(bytes(data))
    with pytest.raises(PageError, match="member 1.png is password-protected") as caught:
        collect_pages(path, work)
    assert "without a password" in caught.value.hint


def test_a_member_name_that_is_not_utf8_is_refused_clearly(layout):
    root, work = layout
    path = make_zip(root / "c1.cbz", [("cafX.png", PNG)])
    path.write_bytes(path.read_bytes().replace(b"cafX.png", b"caf\xe9.png"))  # Latin-1, no UTF-8 flag
    with pytest.raises(PageError, match=r"'caf\\xe9.png' is not UTF-8") as caught:
        collect_pages(path, work)
    assert "UTF-8 names" in caught.value.hint


def test_utf8_names_written_without_the_utf8_flag_are_read(layout):
    root, work = layout
    path = make_zip(root / "c1.cbz", [("pageXX.png", PNG)])
    path.write_bytes(path.read_bytes().replace(b"pageXX.png", "pageé.png".encode()))
    assert [p.upload_name for p in collect_pages(path, work).pages] == ["pageé.png"]


def test_a_member_compressed_in_a_way_python_cannot_read_is_refused_clearly(layout):
    root, work = layout
    path = make_zip(root / "c1.cbz", [("1.png", PNG)])
    data = bytearray(path.read_bytes())
    central = data.index(b"PK\x01\x02")
    data[8:10] = data[central + 10:central + 12] = (9).to_bytes(2, "little")  # Deflate64 (Windows Explorer)
    path.write_bytes(bytes(data))
    with pytest.raises(PageError, match="member 1.png cannot be read") as caught:
        collect_pages(path, work)
    assert "Deflate" in caught.value.hint


def test_a_rar_named_cbz_says_so(layout):
    root, work = layout
    (root / "c1.cbz").write_bytes(b"Rar!\x1a\x07\x00" + bytes(100))
    with pytest.raises(PageError, match="is a RAR archive") as caught:
        collect_pages(root / "c1.cbz", work)
    assert ".cbz" in caught.value.hint


def test_a_member_listed_twice_is_refused(layout):
    root, work = layout
    with pytest.warns(UserWarning, match="Duplicate name"):
        make_zip(root / "c1.cbz", [("1.png", PNG), ("1.png", b"other")])
    with pytest.raises(PageError, match="holds 1.png twice"):
        collect_pages(root / "c1.cbz", work)


def test_the_same_archive_can_be_collected_twice_into_one_work_folder(layout):
    root, work = layout
    make_zip(root / "c1.cbz", [("1.png", PNG)])
    first = collect_pages(root / "c1.cbz", work)
    second = collect_pages(root / "c1.cbz", work)
    assert first.pages[0].path != second.pages[0].path
    assert first.pages[0].path.read_bytes() == second.pages[0].path.read_bytes() == PNG
    shutil.rmtree(work)
