"""A chapter's identity (vocabulary.ChapterKey, docs/identity.md) end to end: the shapes real series have,
the MangaDex a chapter lives on, and ledgers written before the API was part of the key."""

from __future__ import annotations

import json
import re
import sqlite3
from pathlib import Path

import pytest

from mdupload import ledger as ledger_module
from mdupload.ledger import SCHEMA_VERSION, UNKNOWN_API, Ledger
from mdupload.mangadex.auth import Credentials
from mdupload.mangadex.client import MangaDexClient
from mdupload.manifest import load_manifest
from mdupload.publish import build_plan, check_all
from mdupload.sandbox import SandboxConfig, start_sandbox
from mdupload.upload import ChapterUpload
from mdupload.vocabulary import ChapterKey
from tests.e2e import cli_env, copy_example, run_cli

MANGA = "f9c33607-9180-4ba6-b85c-e4b5faee7192"
SANDBOX_A = "http://127.0.0.1:8001"
SANDBOX_B = "http://127.0.0.1:8002"


# --- ledgers of every earlier schema version, migrated in place ----------------------------------------

def _old_ledger(path: Path, version: int) -> None:
    """A ledger as mdupload wrote it at schema `version` (its tables built by that version's own DDL): chapter
    12.5 published, oneshot in progress with a session and one page uploaded of two."""
    db = sqlite3.connect(path)
    for step in range(1, version + 1):
        db.executescript(ledger_module._MIGRATIONS[step])
    published = json.dumps([MANGA, "en", ["g1", "g2"], None, "12.5"], separators=(",", ":"))
    oneshot = json.dumps([MANGA, "en", [], None, None], separators=(",", ":"))
    at = "2026-01-01T00:00:00+00:00"
    db.executemany("INSERT INTO chapters (key, manga, language, groups, volume, chapter, state, session_id, chapter_id,"
                   " error, updated_at, committed_at) VALUES (?, ?, 'en', ?, NULL, ?, ?, ?, ?, NULL, ?, ?)", [
                       (published, MANGA, '["g1","g2"]', "12.5", "COMMITTED", None, "chap-1", at, at),
                       (oneshot, MANGA, "[]", None, "UPLOADING", "s-9", None, at, None)])
    db.executemany("INSERT INTO transitions (key, state, at, session_id, detail) VALUES (?, ?, ?, ?, NULL)", [
        (published, "COMMITTING", at, "s-1"), (published, "COMMITTED", at, None),
        (oneshot, "BEGINNING", at, None), (oneshot, "UPLOADING", at, "s-9")])
    db.executemany("INSERT INTO pages VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [
        (oneshot, 0, "o/1.png", "1.png", 10, "a" * 64, "s-9", "f-1"),
        (oneshot, 1, "o/2.png", "2.png", 20, "b" * 64, None, None)])
    db.execute(f"PRAGMA user_version={version}")
    db.commit()
    db.close()


@pytest.mark.parametrize("version", [1, 2, 3])
def test_a_ledger_of_every_earlier_version_is_migrated_in_place_and_claimed_by_the_first_api(tmp_path, version):
    path = tmp_path / f"v{version}.sqlite3"
    _old_ledger(path, version)
    ledger = Ledger(path)
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    published = ChapterKey.of(api=SANDBOX_A, manga=MANGA, language="en", groups=("g2", "g1"), volume=None,
                              chapter="12.5", title=None)
    oneshot = ChapterKey.of(api=SANDBOX_A, manga=MANGA, language="en", groups=(), volume=None, chapter=None,
                            title="Summer Special")
    # Before a run claims them, the records of an unknown API are what any API's key finds.
    assert ledger.chapter(published).chapter_id == "chap-1"
    assert ledger.chapter(published._replace(api=SANDBOX_B)).chapter_id == "chap-1"
    assert [(p.upload_name, p.file_id) for p in ledger.pages(oneshot)] == [("1.png", "f-1"), ("2.png", None)]
    assert ledger.claim_unknown(published) and ledger.claim_unknown(oneshot)
    assert not ledger.claim_unknown(published)  # once
    # Claimed: the record, its transitions and its pages are sandbox A's, and no other API's.
    assert (ledger.chapter(published).state, ledger.chapter(published).chapter_id) == ("COMMITTED", "chap-1")
    assert [t[0] for t in ledger.transitions(published)] == ["COMMITTING", "COMMITTED"]
    assert ledger.chapter(oneshot).session_id == "s-9" and ledger.owner_of_session("s-9") == oneshot
    assert [(p.upload_name, p.file_id) for p in ledger.pages(oneshot)] == [("1.png", "f-1"), ("2.png", None)]
    assert ledger.chapter(published._replace(api=SANDBOX_B)) is None
    assert ledger.chapter(oneshot._replace(title="Winter Special")) is None
    ledger.close()
    reopened = Ledger(path)  # and it stays so
    assert reopened.chapter(published).chapter_id == "chap-1"
    assert reopened.chapter(published._replace(api=SANDBOX_B)) is None
    reopened.close()


def test_a_new_record_is_never_taken_for_an_unknown_apis(tmp_path):
    ledger = Ledger(tmp_path / "new.sqlite3")
    key = ChapterKey.of(api=SANDBOX_A, manga=MANGA, language="en", groups=(), volume=None, chapter="1", title=None)
    ledger.record(key, "COMMITTED", chapter_id="c-1")
    assert ledger.chapter(key._replace(api=SANDBOX_B)) is None
    assert ledger.chapter(key._replace(api=UNKNOWN_API)) is None
    ledger.close()


# --- end to end, through the command line and the sandbox ---------------------------------------------

SHAPES = f"""\
manga: {MANGA}
groups: []
language: en
terms_accepted: true
chapters:
  - chapter: null
    volume: "7"
    pages: chapters/c002.5
  - chapter: null
    volume: "8"
    pages: chapters/c002.5
  - chapter: null
    title: Summer Special
    pages: chapters/c002.5
  - chapter: null
    title: Winter Special
    pages: chapters/c002.5
  - chapter: "1"
    volume: "1"
    pages: chapters/c002.5
  - chapter: "1"
    volume: "2"
    pages: chapters/c002.5
"""


def test_volume_only_releases_titled_oneshots_and_one_number_in_two_volumes_are_each_published_once(sandbox,
                                                                                                     tmp_path):
    manifest = copy_example(tmp_path / "series").with_name("shapes.yaml")
    manifest.write_text(SHAPES)
    env = cli_env(sandbox, tmp_path / "ledger.sqlite")
    first = run_cli(["upload", str(manifest), "--json"], env)
    assert first.code == 0, first.stderr
    assert [c["status"] for c in first.json["chapters"]] == ["uploaded"] * 6
    published = {(c["volume"], c["chapter"], c["title"]) for c in sandbox.state()["chapters"]}
    assert published == {("7", None, None), ("8", None, None), (None, None, "Summer Special"),
                         (None, None, "Winter Special"), ("1", "1", None), ("2", "1", None)}
    assert len(sandbox.state()["chapters"]) == 6
    rerun = run_cli(["upload", str(manifest), "--json"], env)
    assert rerun.code == 0, rerun.stderr
    assert [c["status"] for c in rerun.json["chapters"]] == ["skipped"] * 6
    assert {c["chapter_id"] for c in rerun.json["chapters"]} == {c["chapter_id"] for c in first.json["chapters"]}
    lost_ledger = run_cli(["upload", str(manifest), "--json"], cli_env(sandbox, tmp_path / "other.sqlite"))
    assert [c["status"] for c in lost_ledger.json["chapters"]] == ["skipped"] * 6  # MangaDex's lists tell too
    assert len(sandbox.state()["chapters"]) == 6


class _Killed(BaseException):
    pass


def _as_version_1(path: Path) -> None:
    """Rewrite a ledger into the layout of version 1 (its keys without API or title, no later columns): what
    mdupload before this change had written for the same runs, row for row."""
    new = sqlite3.connect(path)
    chapters = new.execute("SELECT key, manga, language, groups, volume, chapter, state, session_id, chapter_id, "
                           "error, updated_at, committed_at FROM chapters").fetchall()
    transitions = new.execute("SELECT key, state, at, session_id, detail FROM transitions ORDER BY id").fetchall()
    pages = new.execute("SELECT key, position, origin, upload_name, size, sha256, session_id, file_id FROM pages"
                        ).fetchall()
    new.close()
    for leftover in path.parent.glob(path.name + "*"):
        leftover.unlink()

    def old_key(text: str) -> str:
        _api, manga, language, groups, volume, chapter, _title = json.loads(text)
        return json.dumps([manga, language, groups, volume, chapter], separators=(",", ":"))

    db = sqlite3.connect(path)
    db.executescript(ledger_module._MIGRATIONS[1])
    db.executemany("INSERT INTO chapters VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                   [(old_key(row[0]), *row[1:]) for row in chapters])
    db.executemany("INSERT INTO transitions (key, state, at, session_id, detail) VALUES (?, ?, ?, ?, ?)",
                   [(old_key(row[0]), *row[1:]) for row in transitions])
    db.executemany("INSERT INTO pages VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [(old_key(row[0]), *row[1:]) for row in pages])
    db.execute("PRAGMA user_version=1")
    db.commit()
    db.close()


def test_a_version_1_ledger_resumes_and_skips_then_another_sandbox_gets_everything(sandbox, tmp_path):
    series = copy_example(tmp_path / "series")
    ledger_path = tmp_path / "ledger.sqlite"
    env = cli_env(sandbox, ledger_path)
    assert run_cli(["upload", str(series), "--accept-terms", "--chapter", "1"], env).code == 0
    # Chapter 2: every page sent, then killed as it was about to commit.
    manifest = load_manifest(series)
    client = MangaDexClient(api_url=sandbox.api_url, auth_url=sandbox.auth_url, rate_limiter=None,
                            credentials=Credentials.from_env(sandbox.env))
    chapter_2 = next(spec for spec in manifest.chapters if spec.chapter == "2")
    plan = build_plan(manifest, check_all([chapter_2], tmp_path / "work")[0], sandbox.api_url)

    def killed_while_committing(*_args, **_kwargs):
        raise _Killed

    client.commit = killed_while_committing
    ledger = Ledger(ledger_path)
    with pytest.raises(_Killed):
        ChapterUpload(client, ledger, plan).run()
    ledger.close()
    [open_session] = sandbox.state()["sessions"]
    assert len(open_session["files"]) == 6
    _as_version_1(ledger_path)

    before = len(sandbox.state()["requests"])
    rerun = run_cli(["upload", str(series), "--accept-terms", "--json"], env)
    assert rerun.code == 0, rerun.stderr
    statuses = {c["chapter"]: c["status"] for c in rerun.json["chapters"]}
    assert statuses == {"1": "skipped", "2": "uploaded", "2.5": "uploaded"}
    assert "the ledger records it as published" in rerun.stderr  # chapter 1: the old record, not a new look
    assert "taken as " + sandbox.api_url in rerun.stderr
    assert f"resuming session {open_session['id']}" in rerun.stderr
    sent_to_it = [r for r in sandbox.state()["requests"][before:]
                  if r["method"] == "POST" and r["path"] == f"/upload/{open_session['id']}"]
    assert sent_to_it == []  # chapter 2's pages were not sent again
    assert sorted(c["chapter"] for c in sandbox.state()["chapters"]) == ["1", "2", "2.5"]
    assert sqlite3.connect(ledger_path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION

    other = start_sandbox(SandboxConfig(rate_limits=False, processing_delay=0))
    try:
        there = run_cli(["upload", str(series), "--accept-terms", "--json"], cli_env(other, ledger_path))
        assert there.code == 0, there.stderr
        assert [c["status"] for c in there.json["chapters"]] == ["uploaded"] * 3
        assert sorted(c["chapter"] for c in other.state()["chapters"]) == ["1", "2", "2.5"]
        back = run_cli(["upload", str(series), "--accept-terms", "--json"], env)  # the first sandbox: all there
        assert [c["status"] for c in back.json["chapters"]] == ["skipped"] * 3
        status = run_cli(["status", str(series), "--json", "--api-url", other.api_url], cli_env(other, ledger_path))
        assert {c["state"] for c in status.json["chapters"]} == {"committed"}
    finally:
        other.stop()


# --- corrections: --replace ---------------------------------------------------------------------------

def _page_posts(sandbox, since: int) -> list[dict]:
    """The batches of pages sent (POST /upload/{sessionId}) since the `since`-th request."""
    return [r for r in sandbox.state()["requests"][since:]
            if r["method"] == "POST" and re.fullmatch(r"/upload/[0-9a-f-]{36}", r["path"])]


def _chapter(sandbox, chapter_id: str) -> dict:
    return next(c for c in sandbox.state()["chapters"] if c["id"] == chapter_id)


def test_replace_corrects_a_changed_page_in_place_and_a_title_without_sending_a_page(sandbox, tmp_path):
    from PIL import Image

    series = copy_example(tmp_path / "series")
    env = cli_env(sandbox, tmp_path / "ledger.sqlite")
    first = run_cli(["upload", str(series), "--accept-terms", "--chapter", "1", "--json"], env)
    assert first.code == 0, first.stderr
    [published] = first.json["chapters"]
    before = _chapter(sandbox, published["chapter_id"])
    page_4 = series.parent / "chapters" / "c001" / "4.png"
    with Image.open(page_4) as page:
        Image.new("RGB", page.size, (200, 30, 30)).save(page_4)

    noticed = run_cli(["upload", str(series), "--accept-terms", "--chapter", "1", "--json"], env)
    assert noticed.code == 0 and noticed.json["chapters"][0]["status"] == "skipped"
    assert "changed since it was published" in noticed.stderr and "1 page(s) changed (" in noticed.stderr
    assert "c001/4.png)" in noticed.stderr
    assert "--replace" in noticed.stderr
    assert _chapter(sandbox, published["chapter_id"])["pages"] == before["pages"]  # nothing changed without it

    sent_from = len(sandbox.state()["requests"])
    replaced = run_cli(["upload", str(series), "--accept-terms", "--chapter", "1", "--replace", "--json"], env)
    assert replaced.code == 0, replaced.stderr
    [result] = replaced.json["chapters"]
    assert (result["status"], result["chapter_id"]) == ("corrected", published["chapter_id"])  # the same chapter
    after = _chapter(sandbox, published["chapter_id"])
    assert [p["originalFileName"] for p in after["pages"]] == [f"{n}.png" for n in range(1, 11)]
    changed = [n for n, (old, new) in enumerate(zip(before["pages"], after["pages"]), 1)
               if old["fileHash"] != new["fileHash"]]
    assert changed == [4]  # the new page in place
    posts = _page_posts(sandbox, sent_from)
    assert len(posts) == 1 and posts[0]["bytes"] < page_4.stat().st_size + 2000  # only that page was sent
    assert len(sandbox.state()["chapters"]) == 1 and after["version"] == before["version"] + 1

    manifest = series.read_text().replace("title: The Beginning", "title: A Better Beginning")
    series.write_text(manifest)
    sent_from = len(sandbox.state()["requests"])
    retitled = run_cli(["upload", str(series), "--accept-terms", "--chapter", "1", "--replace", "--json"], env)
    assert retitled.code == 0, retitled.stderr
    assert retitled.json["chapters"][0]["chapter_id"] == published["chapter_id"]
    assert _chapter(sandbox, published["chapter_id"])["title"] == "A Better Beginning"
    assert _page_posts(sandbox, sent_from) == []  # no page sent at all
    assert [r["path"] for r in sandbox.state()["requests"][sent_from:] if r["path"].startswith("/upload")
            and r["method"] != "GET" and r["path"] != "/upload/check-approval-required"] == []  # no session either
    again = run_cli(["upload", str(series), "--accept-terms", "--chapter", "1", "--replace", "--json"], env)
    assert again.json["chapters"][0]["status"] == "skipped" and "changed since" not in again.stderr


def _planned(folder: Path, colours: dict[str, tuple[int, int, int]]):
    import hashlib

    from PIL import Image

    from mdupload.upload import PlannedPage

    folder.mkdir(parents=True, exist_ok=True)
    pages = []
    for name, colour in colours.items():
        path = folder / name
        Image.new("RGB", (60, 90), colour).save(path)
        data = path.read_bytes()
        pages.append(PlannedPage(f"c/{name}", path, name, "image/png", len(data), hashlib.sha256(data).hexdigest()))
    return tuple(pages)


def _edit_plans(sandbox, tmp_path):
    from mdupload.upload import ChapterPlan

    key = ChapterKey.of(api=sandbox.api_url, manga=MANGA, language="en", groups=(), volume="1", chapter="7",
                        title=None)
    draft = {"volume": "1", "chapter": "7", "title": None, "translatedLanguage": "en"}
    first = _planned(tmp_path / "v1", {"1.png": (10, 0, 0), "2.png": (20, 0, 0), "3.png": (30, 0, 0),
                                       "4.png": (40, 0, 0)})
    second = _planned(tmp_path / "v2", {"1.png": (10, 0, 0), "2.png": (99, 99, 0), "3.png": (30, 0, 0),
                                        "5.png": (50, 0, 0)})  # 2 changed, 4 removed, 5 new
    return (ChapterPlan(key, key.label, MANGA, (), "en", draft, first),
            ChapterPlan(key, key.label, MANGA, (), "en", draft, second))


class _KillAt:
    """The client, killed (the process, as far as the state machine knows) at the `nth` call of `method`:
    before it is sent, or after it went through but before its answer is used."""

    def __init__(self, client, method: str, nth: int, after: bool):
        self._client, self._method, self._nth, self._after, self.calls = client, method, nth, after, 0

    def __getattr__(self, name):
        real = getattr(self._client, name)
        if name != self._method:
            return real

        def call(*args, **kwargs):
            self.calls += 1
            if self.calls == self._nth and not self._after:
                raise _Killed
            answer = real(*args, **kwargs)
            if self.calls == self._nth and self._after:
                raise _Killed
            return answer

        return call


EDIT_STEPS = [("get_chapter", 1), ("begin_edit_session", 1), ("get_open_session", 1), ("delete_files", 1),
              ("upload_files", 1), ("get_open_session", 2), ("commit", 1)]


@pytest.mark.parametrize("after", [False, True], ids=["before the call", "after the call"])
@pytest.mark.parametrize("method, nth", EDIT_STEPS, ids=[f"{m}#{n}" for m, n in EDIT_STEPS])
def test_a_correction_killed_at_any_step_leaves_one_chapter_with_exactly_the_new_pages(sandbox, tmp_path, method,
                                                                                       nth, after):
    from mdupload.upload import UploadOptions

    original, corrected = _edit_plans(sandbox, tmp_path)
    client = MangaDexClient(api_url=sandbox.api_url, auth_url=sandbox.auth_url, rate_limiter=None,
                            credentials=Credentials.from_env(sandbox.env))
    ledger = Ledger(tmp_path / "ledger.sqlite")
    published = ChapterUpload(client, ledger, original).run()
    assert published.status == "uploaded", published.error
    replace = UploadOptions(replace=True, retry_backoff_s=0)
    killer = _KillAt(client, method, nth, after)
    with pytest.raises(_Killed):
        ChapterUpload(killer, ledger, corrected, replace, sleep=lambda s: None).run()
    rerun = ChapterUpload(client, ledger, corrected, replace, sleep=lambda s: None).run()
    assert (rerun.status, rerun.chapter_id) == ("corrected", published.chapter_id), rerun.error
    [chapter] = sandbox.state()["chapters"]
    assert [(p["originalFileName"], p["fileHash"]) for p in chapter["pages"]] == [
        (p.upload_name, p.sha256) for p in corrected.pages]
    assert sandbox.state()["sessions"] == []
    settled = ChapterUpload(client, ledger, corrected, replace, sleep=lambda s: None).run()
    assert settled.status == "skipped"  # nothing left to correct


class _EditedMeanwhile:
    """The client, with someone else changing the chapter (raising its version) just before each of the first
    `times` calls of `method`."""

    def __init__(self, client, method: str, times: int):
        self._client, self._method, self._left = client, method, times

    def __getattr__(self, name):
        real = getattr(self._client, name)
        if name != self._method:
            return real

        def call(chapter_id, *args):
            if self._left:
                self._left -= 1
                current = self._client.get_chapter(chapter_id)
                self._client.update_chapter(chapter_id, current.version, {"title": f"edited by staff {self._left}"})
            return real(chapter_id, *args)

        return call


@pytest.mark.parametrize("method", ["begin_edit_session", "update_chapter"])
def test_a_stale_version_is_read_again_and_tried_once_more_then_explained(sandbox, tmp_path, method):
    from dataclasses import replace

    from mdupload.upload import UploadOptions

    original, corrected = _edit_plans(sandbox, tmp_path)
    if method == "update_chapter":  # a title alone changes: PUT /chapter/{id}
        corrected = replace(original, draft={**original.draft, "title": "Renamed"})
    client = MangaDexClient(api_url=sandbox.api_url, auth_url=sandbox.auth_url, rate_limiter=None,
                            credentials=Credentials.from_env(sandbox.env))
    ledger = Ledger(tmp_path / "ledger.sqlite")
    chapter_id = ChapterUpload(client, ledger, original).run().chapter_id
    options = UploadOptions(replace=True, retry_backoff_s=0)
    twice = ChapterUpload(_EditedMeanwhile(client, method, 2), ledger, corrected, options).run()
    assert twice.status == "failed"
    assert f"chapter {chapter_id} changed on MangaDex while it was being corrected, twice in a row" in twice.error
    assert sandbox.state()["sessions"] == []
    once = ChapterUpload(_EditedMeanwhile(client, method, 1), ledger, corrected, options).run()
    assert (once.status, once.chapter_id) == ("corrected", chapter_id), once.error
    [chapter] = sandbox.state()["chapters"]
    assert [p["fileHash"] for p in chapter["pages"]] == [p.sha256 for p in corrected.pages]
    if method == "update_chapter":
        assert chapter["title"] == "Renamed"


@pytest.mark.parametrize("after", [False, True], ids=["before the call", "after the call"])
def test_a_title_correction_killed_at_its_call_is_finished_by_the_rerun(sandbox, tmp_path, after):
    from dataclasses import replace

    from mdupload.upload import UploadOptions

    original, _corrected = _edit_plans(sandbox, tmp_path)
    renamed = replace(original, draft={**original.draft, "title": "Renamed"})
    client = MangaDexClient(api_url=sandbox.api_url, auth_url=sandbox.auth_url, rate_limiter=None,
                            credentials=Credentials.from_env(sandbox.env))
    ledger = Ledger(tmp_path / "ledger.sqlite")
    chapter_id = ChapterUpload(client, ledger, original).run().chapter_id
    options = UploadOptions(replace=True)
    with pytest.raises(_Killed):
        ChapterUpload(_KillAt(client, "update_chapter", 1, after), ledger, renamed, options).run()
    rerun = ChapterUpload(client, ledger, renamed, options).run()
    assert (rerun.status, rerun.chapter_id) == ("corrected", chapter_id), rerun.error
    [chapter] = sandbox.state()["chapters"]
    assert chapter["title"] == "Renamed" and [p["fileHash"] for p in chapter["pages"]] == [
        p.sha256 for p in original.pages]
    assert ChapterUpload(client, ledger, renamed, options).run().status == "skipped"


def test_watch_publishes_two_volume_only_releases_and_reports_a_changed_one_without_publishing_it(sandbox,
                                                                                                  tmp_path):
    import shutil

    from PIL import Image

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    series_file = tmp_path / "demo.yaml"
    series_file.write_text(f"manga: {MANGA}\ngroups: []\nlanguage: en\nmatch: Demo Series\nterms_accepted: true\n")
    pages = Path(__file__).parent.parent / "manifests" / "chapters" / "c002.5"
    for name in ("Demo Series v05 [Demo Scans]", "Demo Series v06 [Demo Scans]"):
        shutil.copytree(pages, inbox / name)
    env = cli_env(sandbox, tmp_path / "ledger.sqlite")
    args = ["watch", str(inbox), "--series", str(series_file), "--settle", "0", "--once"]
    run = run_cli(args, env)
    assert run.code == 0, run.stderr
    volumes = sorted((c["volume"], c["chapter"]) for c in sandbox.state()["chapters"])
    assert volumes == [("5", None), ("6", None)]  # two releases, neither taken for the other
    receipts = {name: json.loads((inbox / "done" / f"{name}.json").read_text())
                for name in ("Demo Series v05 [Demo Scans]", "Demo Series v06 [Demo Scans]")}
    assert {r["status"] for r in receipts.values()} == {"uploaded"}
    # Volume 5 again, one page changed: reported (the series file does not say `replace: true`), not published.
    again = inbox / "Demo Series v05 [Demo Scans]"
    shutil.copytree(pages, again)
    Image.new("RGB", (640, 960), (0, 90, 200)).save(again / "1.png")
    run = run_cli(args, env)
    assert run.code == 0, run.stderr
    assert "changed since it was published" in run.stderr and "--replace" in run.stderr
    assert len(sandbox.state()["chapters"]) == 2
