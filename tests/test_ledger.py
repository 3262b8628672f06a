import sqlite3

import pytest

from mdupload.errors import LedgerError
from mdupload.ledger import SCHEMA_VERSION, Ledger

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
    assert again.owner_of_session("s1") == ("f9c33607-9180-4ba6-b85c-e4b5faee7192", "en", ("g1", "g2"), None, "12.5")


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


def test_an_older_ledger_is_migrated(tmp_path):
    path = tmp_path / "old.sqlite3"
    db = sqlite3.connect(path)
    db.executescript("""
        CREATE TABLE chapters (key TEXT PRIMARY KEY, manga TEXT NOT NULL, language TEXT NOT NULL,
            groups TEXT NOT NULL, volume TEXT, chapter TEXT, state TEXT NOT NULL, session_id TEXT,
            chapter_id TEXT, error TEXT, updated_at TEXT NOT NULL, committed_at TEXT);
        CREATE TABLE transitions (id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL, state TEXT NOT NULL,
            at TEXT NOT NULL, session_id TEXT, detail TEXT);
        CREATE TABLE pages (key TEXT NOT NULL, position INTEGER NOT NULL, origin TEXT NOT NULL,
            upload_name TEXT NOT NULL, size INTEGER NOT NULL, sha256 TEXT NOT NULL, session_id TEXT, file_id TEXT,
            PRIMARY KEY (key, upload_name));
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
