"""Archiving published chapters to LANraragi (mdupload/archive.py), against both sandboxes."""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import pytest
from PIL import Image

from mdupload.archive import (
    URL_ENV,
    ArchiveTarget,
    archive_after_upload,
    archive_chapters,
    checked_pages,
    resolve_target,
)
from mdupload.errors import AuthError, ManifestError, UsageError
from mdupload.lanraragi import KEY_ENV, LanraragiClient, archive_id
from mdupload.ledger import Ledger
from mdupload.manifest import load_manifest
from mdupload.output import Reporter
from mdupload.publish import upload_manifest
from mdupload.sandbox import SandboxConfig, start_sandbox
from mdupload.upload import UploadOptions
from mdupload.vocabulary import chapter_url
from tests.e2e import LANRARAGI_KEY as KEY
from tests.e2e import copy_example
from tests.test_athome import DEMO, client_for, publish_example


@pytest.fixture(scope="module")
def sandbox():
    with start_sandbox(SandboxConfig(rate_limits=False, processing_delay=0)) as running:
        yield running


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MDUPLOAD_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def published(sandbox, tmp_path):
    return publish_example(sandbox, tmp_path)


def archive(sandbox, lrr, manifest, ledger, *, category=None, tags=(), specs=None, key=KEY):
    with tempfile.TemporaryDirectory() as work:
        return archive_chapters(manifest, list(specs or manifest.chapters), ledger,
                                lanraragi=LanraragiClient(lrr.url, key, sleep=lambda s: None),
                                mangadex=client_for(sandbox), target=ArchiveTarget(lrr.url, category, tuple(tags)),
                                pages=checked_pages(Path(work) / "pages"), workdir=Path(work))


def copy_of(ledger: Ledger, dest: Path) -> Ledger:
    """Another ledger with the same records (SQLite's backup: the WAL's recent writes included)."""
    with sqlite3.connect(ledger.path) as source, sqlite3.connect(dest) as target:
        source.backup(target)
    return Ledger(dest)


def uploads(lrr) -> list[int]:
    return [r["status"] for r in lrr.requests() if r["path"] == "/api/archives/upload"]


def test_published_chapters_land_in_the_library_with_tags_category_and_comicinfo(sandbox, lrr, category, published,
                                                                                 tmp_path):
    manifest, ledger, ids = published
    run = archive(sandbox, lrr, manifest, ledger, category=category, tags=["scanlator:Sandbox Scans", "colour"])
    assert run.ok and [c.status for c in run.chapters] == ["archived"] * 3
    stored = {a["id"]: a for a in lrr.state()["archives"]}
    first = run.chapters[0]
    archive_one = stored[first.archive_id]
    assert archive_one["filename"] == "The Sandbox Chronicles v1 c1 [en] [Sandbox Scans].cbz"
    assert archive_one["title"] == "The Sandbox Chronicles Vol. 1 Ch. 1 - The Beginning [en]"
    web = f"{sandbox.api_url}/chapter/{ids['1']}"
    assert archive_one["tags"][:-1] == ["series:The Sandbox Chronicles", "language:en", "group:Sandbox Scans",
                                        "chapter:1", "volume:1", f"source:{web}", "scanlator:Sandbox Scans", "colour"]
    assert archive_one["categories"] == [category] and archive_one["pagecount"] == 10
    for chapter in run.chapters:
        assert ledger.chapter(manifest.chapter_key(chapter.spec, sandbox.api_url)).archive_id == chapter.archive_id
    assert all(r["authorization"] for r in lrr.requests() if r["method"] == "PUT")

    # what is inside: the pages as uploaded, in reading order, and ComicInfo.xml
    key = manifest.chapter_key(manifest.chapters[0], sandbox.api_url)
    with tempfile.TemporaryDirectory() as work:
        pages = checked_pages(Path(work))(manifest.chapters[0])
        assert [p.name for p in pages] == [p.upload_name for p in ledger.pages(key)]


def test_the_cbz_holds_the_pages_in_order_and_comicinfo(sandbox, lrr, published, tmp_path, monkeypatch):
    manifest, ledger, ids = published
    packed = {}
    import mdupload.archive as archive_module

    real_pack = archive_module.pack_cbz

    def keep_a_copy(pages, info, dest):
        path = real_pack(pages, info, dest)
        packed[info.number] = shutil.copy(path, tmp_path / path.name)
        return path

    monkeypatch.setattr(archive_module, "pack_cbz", keep_a_copy)
    archive(sandbox, lrr, manifest, ledger, specs=manifest.chapters[1:2])
    with zipfile.ZipFile(packed["2"]) as cbz:
        names = cbz.namelist()
        info = {e.tag: e.text for e in ET.fromstring(cbz.read("ComicInfo.xml"))}
        with zipfile.ZipFile(manifest.path.parent / "chapters" / "c002.cbz") as source:
            originals = [source.read(n) for n in sorted(source.namelist(), key=lambda n: int(n[1:-4]))]
        assert [cbz.read(n) for n in names[:-1]] == originals
    assert names == [f"{n:03d}.jpg" for n in range(1, 7)] + ["ComicInfo.xml"]
    assert info == {"Series": "The Sandbox Chronicles", "Number": "2", "Volume": "1", "Translator": "Sandbox Scans",
                    "Web": f"{sandbox.api_url}/chapter/{ids['2']}", "PageCount": "6", "LanguageISO": "en",
                    "Manga": "Yes"}


def test_a_rerun_sends_nothing_again(sandbox, lrr, category, published, tmp_path):
    manifest, ledger, _ids = published
    lost = copy_of(ledger, tmp_path / "ledger-copy.sqlite")  # a ledger that never heard of the archives
    first = archive(sandbox, lrr, manifest, ledger, category=category)
    again = archive(sandbox, lrr, manifest, ledger, category=category)
    assert [c.status for c in again.chapters] == ["already-archived"] * 3
    assert [c.archive_id for c in again.chapters] == [c.archive_id for c in first.chapters]
    without_ledger = archive(sandbox, lrr, manifest, lost, category=category)
    assert [c.status for c in without_ledger.chapters] == ["already-there"] * 3  # the same bytes, known by their id
    assert uploads(lrr) == [200, 200, 200]
    assert len(lrr.state()["archives"]) == 3


def test_a_different_file_under_the_same_name_is_a_clear_error(sandbox, lrr, published, tmp_path):
    manifest, ledger, _ids = published
    other_ledger = copy_of(ledger, tmp_path / "other.sqlite")
    [stored] = archive(sandbox, lrr, manifest, ledger, specs=manifest.chapters[:1]).chapters
    page = manifest.path.parent / "chapters" / "c001" / "5.png"
    with Image.open(page) as image:
        Image.new("RGB", image.size, (1, 2, 3)).save(page)  # the pages changed since
    run = archive(sandbox, lrr, manifest, other_ledger, specs=manifest.chapters[:1])
    [failed] = run.chapters
    assert not run.ok and failed.status == "failed"
    assert "already holds a different file under this name" in failed.error
    assert stored.archive_id in failed.error and "Delete the stored archive" in failed.error
    assert [a["id"] for a in lrr.state()["archives"]] == [stored.archive_id]


def test_a_damaged_transfer_is_sent_again(sandbox, lrr, published):
    manifest, ledger, _ids = published
    lrr.faults.corrupt_uploads = 1
    run = archive(sandbox, lrr, manifest, ledger, specs=manifest.chapters[:1])
    assert run.ok and uploads(lrr) == [417, 200]
    assert lrr.state()["archives"][0]["id"] == run.chapters[0].archive_id


def test_a_silently_ignored_category_is_put_right(sandbox, lrr, category, published):
    manifest, ledger, _ids = published
    lrr.faults.ignore_category_id = True
    run = archive(sandbox, lrr, manifest, ledger, category=category, specs=manifest.chapters[:1])
    assert run.chapters[0].category_added is True
    assert lrr.state()["archives"][0]["categories"] == [category]


def test_chapters_not_published_are_not_archived(sandbox, lrr, tmp_path):
    manifest = load_manifest(copy_example(tmp_path / "series"))
    run = archive(sandbox, lrr, manifest, Ledger(tmp_path / "empty.sqlite"))
    assert not run.ok and {c.status for c in run.chapters} == {"not-uploaded"}
    assert "upload it first" in run.chapters[0].error
    assert lrr.requests() == []


def test_a_refused_key_stops_the_run(sandbox, lrr, published):
    manifest, ledger, _ids = published
    with pytest.raises(AuthError, match=KEY_ENV):
        archive(sandbox, lrr, manifest, ledger, key="not-the-key")
    assert len(uploads(lrr)) == 1  # the first chapter's refusal ends it


def test_upload_then_archive_in_one_run(sandbox, lrr, category, tmp_path):
    manifest = load_manifest(copy_example(tmp_path / "series"))
    ledger = Ledger(tmp_path / "ledger.sqlite")
    client = client_for(sandbox, credentials=DEMO)
    with tempfile.TemporaryDirectory() as work:
        outcome = upload_manifest(manifest, list(manifest.chapters), Path(work), connect=lambda: client, ledger=ledger,
                                  reporter=Reporter(quiet=True), options=UploadOptions(), api_url=sandbox.api_url,
                                  accept_terms=True)
        lines = []
        reporter = Reporter(quiet=False, stream=_Lines(lines), force_plain=True)
        run = archive_after_upload(manifest, outcome.results, ledger, reporter, api_url=sandbox.api_url,
                                   to=lrr.url, environ={KEY_ENV: KEY})
    assert run.ok and [c.status for c in run.chapters] == ["archived"] * 3
    assert [c.chapter_id for c in run.chapters] == [r.chapter_id for r in outcome.results]
    assert run.to_json()["server"] == lrr.url and len(run.to_json()["chapters"]) == 3
    assert any("vol 1 chapter 2.5 (en): archived as" in line for line in lines)
    assert {a["id"] for a in lrr.state()["archives"]} == {c.archive_id for c in run.chapters}


class _Lines:
    def __init__(self, lines):
        self.lines = lines

    def write(self, text):
        self.lines.extend(line for line in text.splitlines() if line)

    def flush(self):
        pass

    def isatty(self):
        return False


# --- where to archive to -----------------------------------------------------------------------------


SECTION = "lanraragi:\n  url: http://192.168.1.20:3000\n  category: SET_1613080290\n  tags: [a:b, plain]\n"


def manifest_with(tmp_path, section: str):
    path = copy_example(tmp_path / "series")
    text = path.read_text()
    path.write_text(text.replace("chapters:\n", section + "chapters:\n", 1))
    return load_manifest(path)


def test_the_manifest_section_is_read_and_the_option_and_environment_come_first(tmp_path):
    manifest = manifest_with(tmp_path, SECTION)
    assert manifest.lanraragi.url == "http://192.168.1.20:3000" and manifest.lanraragi.tags == ("a:b", "plain")
    assert resolve_target(manifest, environ={}) == ArchiveTarget("http://192.168.1.20:3000", "SET_1613080290",
                                                                 ("a:b", "plain"))
    assert resolve_target(manifest, environ={URL_ENV: "http://localhost:3001"}).url == "http://localhost:3001"
    assert resolve_target(manifest, "https://lrr.example", environ={URL_ENV: "x"}).url == "https://lrr.example"


def test_no_server_anywhere_says_where_to_give_one(tmp_path):
    with pytest.raises(UsageError, match="no LANraragi server") as raised:
        resolve_target(load_manifest(copy_example(tmp_path / "series")), environ={})
    assert "--to URL" in str(raised.value) and URL_ENV in str(raised.value)
    with pytest.raises(UsageError, match="--to is not an http"):
        resolve_target(load_manifest(tmp_path / "series" / "example.yaml"), "lrr:3000", environ={})


def test_a_category_name_instead_of_an_id_names_the_manifest_line(tmp_path):
    manifest = manifest_with(tmp_path, "lanraragi:\n  url: http://localhost:3000\n  category: Manga\n")
    with pytest.raises(ManifestError) as raised:
        resolve_target(manifest, environ={})
    assert f"{manifest.path}:8:" in str(raised.value) and "'Manga' is not a LANraragi category id" in str(raised.value)


def test_the_web_url_follows_the_api_host():
    assert chapter_url("https://api.mangadex.org", "c1") == "https://mangadex.org/chapter/c1"
    assert chapter_url("https://api.mangadex.dev", "c1") == "https://mangadex.dev/chapter/c1"
    assert chapter_url("http://127.0.0.1:5000", "c1") == "http://127.0.0.1:5000/chapter/c1"


def test_archive_ids_are_known_before_uploading(tmp_path):
    # The rerun check relies on this: the same pages pack to the same bytes, so to the same id.
    manifest = load_manifest(copy_example(tmp_path / "series"))
    with tempfile.TemporaryDirectory() as work:
        pages = checked_pages(Path(work))(manifest.chapters[0])
        from mdupload.lanraragi import ComicInfo, pack_cbz

        info = ComicInfo(series="S", number="1", language="en")
        assert archive_id(pack_cbz(pages, info, Path(work) / "a.cbz")) == archive_id(
            pack_cbz(pages, info, Path(work) / "b.cbz"))
