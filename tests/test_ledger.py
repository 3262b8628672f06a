import os
import signal
import sqlite3
import subprocess
import sys

import pytest

from mdupload import ledger as ledger_module
from mdupload.errors import LedgerError
from mdupload.ledger import SCHEMA_VERSION, Ledger
from mdupload.vocabulary import PRODUCTION_API, ChapterKey

KEY = ("f9c33607-9180-4ba6-b85c-e4b5faee7192", "en", ("g2", "g1"), None, "12.5")


def test_transitions_and_pages_survive_reopening(tmp_path):
    path = tmp_path / "ledger.sqlite3"
    ledger = Ledger(path)
    ledger.plan_pages(KEY, [("c/1.png", "1.png", 10, "a" * 64), ("c/2.png", "2.png", 20, "b" * 64)])
    ledger.record(KEY, "UPLOADING", session_id="s1")
    ledger.set_file_ids(KEY, "s1", {"1.png": "f1"})
    ledger.close()
    again = Ledger(path)
    assert again.chapter(KEY).state == "UPLOADING" and again.chapter(KEY).session_id == "s1"
    assert [(p.upload_name, p.file_id) for p in again.pages(KEY)] == [("1.png", "f1"), ("2.png", None)]
    assert again.owner_of_session("s1") == ChapterKey("f9c33607-9180-4ba6-b85c-e4b5faee7192", "en", ("g1", "g2"), None,
                                                      "12.5", None, PRODUCTION_API)


def test_the_key_ignores_the_order_of_groups(tmp_path):
    ledger = Ledger(tmp_path / "l.sqlite3")
    ledger.record(KEY, "COMMITTED", chapter_id="c1")
    reordered = (KEY[0], KEY[1], ("g1", "g2"), KEY[3], KEY[4])
    assert ledger.chapter(reordered).chapter_id == "c1"


def test_a_replanned_page_keeps_its_file_id_only_when_unchanged(tmp_path):
    ledger = Ledger(tmp_path / "l.sqlite3")
    ledger.plan_pages(KEY, [("c/1.png", "1.png", 10, "a" * 64), ("c/2.png", "2.png", 20, "b" * 64)])
    ledger.set_file_ids(KEY, "s1", {"1.png": "f1", "2.png": "f2"})
    ledger.plan_pages(KEY, [("c/1.png", "1.png", 10, "a" * 64), ("c/2.png", "2.png", 21, "c" * 64)])
    assert [p.file_id for p in ledger.pages(KEY)] == ["f1", None]


# The tables of the first ledger version (version 1), as an older mdupload wrote them
V1_SCHEMA = """
        CREATE TABLE chapters (key TEXT PRIMARY KEY, manga TEXT NOT NULL, language TEXT NOT NULL,
            groups TEXT NOT NULL, volume TEXT, chapter TEXT, state TEXT NOT NULL, session_id TEXT,
            chapter_id TEXT, error TEXT, updated_at TEXT NOT NULL, committed_at TEXT);
        CREATE TABLE transitions (id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL, state TEXT NOT NULL,
            at TEXT NOT NULL, session_id TEXT, detail TEXT);
        CREATE TABLE pages (key TEXT NOT NULL, position INTEGER NOT NULL, origin TEXT NOT NULL,
            upload_name TEXT NOT NULL, size INTEGER NOT NULL, sha256 TEXT NOT NULL, session_id TEXT, file_id TEXT,
            PRIMARY KEY (key, upload_name));
"""


def test_an_older_ledger_is_migrated(tmp_path):
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(V1_SCHEMA + """
        INSERT INTO chapters VALUES ('["f9c33607-9180-4ba6-b85c-e4b5faee7192","en",["g1","g2"],null,"12.5"]',
            'm', 'en', '[]', NULL, '12.5', 'COMMITTED', NULL, 'chap-1', NULL, '2026-01-01T00:00:00+00:00', NULL);
        PRAGMA user_version=1;
    """)
    db.close()
    ledger = Ledger(path)
    assert ledger.chapter(KEY).chapter_id == "chap-1"
    ledger.set_archive_id(KEY, "abc")
    assert ledger.chapter(KEY).archive_id == "abc"
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_a_corrupt_ledger_is_a_clear_error_and_is_not_reset(tmp_path):
    path = tmp_path / "ledger.sqlite3"
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(LedgerError) as caught:
        Ledger(path)
    assert str(path) in str(caught.value) and "never reset" in str(caught.value)
    assert path.read_bytes().startswith(b"this is not a database")


def test_a_locked_ledger_is_a_clear_error(tmp_path):
    path = tmp_path / "ledger.sqlite3"
    Ledger(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    ledger = Ledger.__new__(Ledger)
    try:
        with pytest.raises(LedgerError) as caught:
            ledger.__init__(path)
            ledger._db.execute("PRAGMA busy_timeout=100")
            ledger.record(KEY, "CHECKED")
        assert "locked by another mdupload process" in str(caught.value)
    finally:
        holder.execute("ROLLBACK")
        holder.close()


def test_a_ledger_from_a_newer_version_is_refused(tmp_path):
    path = tmp_path / "new.sqlite3"
    db = sqlite3.connect(path)
    db.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    db.close()
    with pytest.raises(LedgerError, match="newer mdupload"):
        Ledger(path)


def test_a_second_upload_with_the_same_ledger_stops_with_a_clear_message(tmp_path, monkeypatch):
    monkeypatch.setattr(ledger_module, "WRITER_WAIT_S", 0.1)
    path = tmp_path / "ledger.sqlite3"
    first = Ledger(path)
    first.record(KEY, "UPLOADING", session_id="s1")  # the first upload is running
    second = Ledger(path)
    assert second.chapter(KEY).state == "UPLOADING"  # reading (mdupload status) is fine
    with pytest.raises(LedgerError) as caught:
        second.record(KEY, "CHECKED")
    assert f"in use by another mdupload upload (process {os.getpid()})" in str(caught.value)
    # issue 15: another ledger would collide with the account's one open session, so it is not suggested
    assert "Wait for it to finish" in str(caught.value) and "--ledger" not in str(caught.value)
    assert second.writer_running()
    first.close()
    assert not second.writer_running()
    second.record(KEY, "CHECKED")  # once the first is done, the next may write
    second.close()


def test_a_killed_upload_does_not_leave_the_ledger_locked(tmp_path):
    path = tmp_path / "ledger.sqlite3"
    script = ("import sys, time; from mdupload.ledger import Ledger; l = Ledger(sys.argv[1]); "
              "l.record(('m', 'en', (), None, '1'), 'UPLOADING'); print('ready', flush=True); time.sleep(60)")
    holder = subprocess.Popen([sys.executable, "-c", script, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        ledger = Ledger(path)
        assert ledger.writer_running()
        holder.send_signal(signal.SIGKILL)
        holder.wait()
        assert not ledger.writer_running()
        ledger.record(KEY, "CHECKED")
        assert ledger.chapter(("m", "en", (), None, "1")).state == "UPLOADING"  # its last write survived
        ledger.close()
    finally:
        holder.kill()
        holder.wait()


def test_a_database_of_another_program_is_refused_and_left_alone(tmp_path):
    path = tmp_path / "photos.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE albums (id INTEGER PRIMARY KEY, name TEXT)")
    db.commit()
    db.close()
    before = path.read_bytes()
    with pytest.raises(LedgerError, match="another program .*albums.*not an mdupload ledger"):
        Ledger(path)
    assert path.read_bytes() == before


def test_a_ledger_damaged_inside_is_refused_when_opened_not_halfway_through_an_upload(tmp_path):
    path = tmp_path / "ledger.sqlite3"
    ledger = Ledger(path)
    ledger.plan_pages(KEY, [(f"c/{n}.png", f"{n}.png", n, f"{n:064x}") for n in range(400)])  # a few pages of data
    ledger.close()
    data = bytearray(path.read_bytes())
    page = 4096
    assert len(data) > 3 * page
    data[2 * page: 2 * page + 512] = b"\xff" * 512  # a damaged disk block in the middle of the file
    path.write_bytes(bytes(data))
    with pytest.raises(LedgerError) as caught:
        Ledger(path)
    assert "damaged" in str(caught.value) and "never reset" in str(caught.value)
    assert path.read_bytes() == bytes(data)


def test_recording_a_new_begin_forgets_the_old_session_in_the_same_write(tmp_path):
    ledger = Ledger(tmp_path / "l.sqlite3")
    ledger.plan_pages(KEY, [("c/1.png", "1.png", 10, "a" * 64)])
    ledger.record(KEY, "UPLOADING", session_id="old")
    ledger.set_file_ids(KEY, "old", {"1.png": "f1"})
    ledger.record(KEY, "BEGINNING", clear_session=True)
    assert ledger.chapter(KEY).session_id is None
    assert [(p.session_id, p.file_id) for p in ledger.pages(KEY)] == [(None, None)]
    ledger.close()


# --- `mdupload status`: what a user sees of each chapter -------------------------------------------

def _status(manifest, ledger_path):
    from tests.e2e import run_cli

    env = {k: v for k, v in os.environ.items() if not k.startswith("MDUPLOAD_")}
    env["MDUPLOAD_LEDGER"] = str(ledger_path)
    return run_cli(["status", str(manifest), "--json"], env)


@pytest.fixture
def example(tmp_path):
    from mdupload.manifest import load_manifest
    from tests.e2e import copy_example

    manifest = copy_example(tmp_path / "series")
    loaded = load_manifest(manifest)
    keys = {spec.chapter: loaded.chapter_key(spec, PRODUCTION_API) for spec in loaded.chapters}
    return manifest, keys


def _pages(ledger, key, count, uploaded, session):
    ledger.plan_pages(key, [(f"c/{n}.png", f"{n}.png", n, f"{n:064x}") for n in range(1, count + 1)])
    ledger.set_file_ids(key, session, {f"{n}.png": f"f{n}" for n in range(1, uploaded + 1)})


def test_status_shows_each_chapter_committed_in_progress_or_failed(tmp_path, example):
    manifest, keys = example
    path = tmp_path / "ledger.sqlite3"
    ledger = Ledger(path)
    ledger.record(keys["1"], "COMMITTING", session_id="s-1")
    ledger.record(keys["1"], "COMMITTED", chapter_id="chap-1", clear_session=True)
    ledger.record(keys["1"], "CHECKED")  # a later run, killed while it was still checking
    _pages(ledger, keys["2"], 6, 4, "s-2")
    ledger.record(keys["2"], "UPLOADING", session_id="s-2")
    _pages(ledger, keys["2.5"], 4, 3, "s-3")
    ledger.record(keys["2.5"], "UPLOADING", session_id="s-3")
    ledger.record(keys["2.5"], "FAILED", session_id="s-3", error="1 page(s) still failed after 3 retries: c/4.png")
    ledger.close()  # the upload that wrote this has ended
    run = _status(manifest, path)
    assert run.code == 0, run.stderr
    lines = run.stderr.splitlines()
    assert lines[0].startswith("vol 1 chapter 1 (en): committed as chapter chap-1 (uploaded 20")
    assert lines[1] == ("vol 1 chapter 2 (en): in progress (uploading, 4/6 pages uploaded, session s-2; "
                        "interrupted: run `mdupload upload` again to resume)")
    assert lines[2] == ("vol 1 chapter 2.5 (en): failed: 1 page(s) still failed after 3 retries: c/4.png "
                        "(3/4 pages uploaded, session s-3; run `mdupload upload` again to resume)")
    rows = {row["chapter"]: row for row in run.json["chapters"]}
    assert (rows["1"]["state"], rows["1"]["chapter_id"], rows["1"]["session_id"]) == ("committed", "chap-1", None)
    assert rows["1"]["committed_at"]
    assert (rows["2"]["state"], rows["2"]["pages_uploaded"], rows["2"]["pages"], rows["2"]["session_id"],
            rows["2"]["running"]) == ("in progress", 4, 6, "s-2", False)
    assert (rows["2.5"]["state"], rows["2.5"]["error"]) == ("failed", "1 page(s) still failed after 3 retries: c/4.png")


def test_status_says_when_an_upload_is_running_now_and_what_has_not_started(tmp_path, example):
    manifest, keys = example
    path = tmp_path / "ledger.sqlite3"
    running = Ledger(path)  # an upload in this process holds the ledger
    _pages(running, keys["2"], 6, 1, "s-2")
    running.record(keys["2"], "UPLOADING", session_id="s-2")
    try:
        run = _status(manifest, path)
    finally:
        running.close()
    assert run.code == 0, run.stderr
    rows = {row["chapter"]: row for row in run.json["chapters"]}
    assert rows["1"]["state"] == rows["2.5"]["state"] == "not started"
    assert "vol 1 chapter 1 (en): not started" in run.stderr
    assert rows["2"]["running"] is True
    assert "(uploading, 1/6 pages uploaded, session s-2; an upload is running now)" in run.stderr


def test_status_with_a_damaged_ledger_says_so_without_a_traceback(tmp_path, example):
    manifest, _keys = example
    path = tmp_path / "ledger.sqlite3"
    path.write_bytes(b"not a database at all" * 200)
    run = _status(manifest, path)
    assert run.code == 1
    assert "Traceback" not in run.stderr
    assert f"error: the ledger {path} is damaged" in run.stderr and "never reset" in run.stderr
    assert run.json["ok"] is False


@pytest.mark.parametrize("version", [1, 2])
def test_an_upload_interrupted_under_an_older_version_resumes_after_the_migration(tmp_path, version):
    path = tmp_path / f"v{version}.sqlite3"
    db = sqlite3.connect(path)
    db.executescript(V1_SCHEMA)
    key_text = '["f9c33607-9180-4ba6-b85c-e4b5faee7192","en",["g1","g2"],null,"12.5"]'
    db.execute("INSERT INTO chapters VALUES (?, 'm', 'en', '[]', NULL, '12.5', 'UPLOADING', 's1', NULL, NULL,"
               " '2026-01-01T00:00:00+00:00', NULL)", (key_text,))
    db.execute("INSERT INTO transitions (key, state, at, session_id) VALUES (?, 'UPLOADING', '2026-01-01T00:00:00+00:00',"
               " 's1')", (key_text,))
    db.execute("INSERT INTO pages VALUES (?, 0, 'c/1.png', '1.png', 10, ?, 's1', 'f1')", (key_text, "a" * 64))
    if version == 2:
        db.execute("ALTER TABLE chapters ADD COLUMN archive_id TEXT")
    db.execute(f"PRAGMA user_version={version}")
    db.commit()
    db.close()
    ledger = Ledger(path)
    assert ledger.chapter(KEY).state == "UPLOADING" and ledger.chapter(KEY).session_id == "s1"
    assert [(p.upload_name, p.session_id, p.file_id) for p in ledger.pages(KEY)] == [("1.png", "s1", "f1")]
    assert [t[0] for t in ledger.transitions(KEY)] == ["UPLOADING"]
    ledger.record(KEY, "RESUMING", session_id="s1")
    ledger.close()
    check = sqlite3.connect(path)
    assert check.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert check.execute("SELECT name FROM sqlite_master WHERE name = 'transitions_by_key'").fetchone()
    check.close()
