"""The ledger: a local SQLite record of every upload transition, page and committed chapter.

One row per chapter key in `chapters` (its latest state), every transition in `transitions`, and
every planned page with the file id the server gave it in `pages`. Each transition is written
before the network call it leads to, so that a killed process can tell, on the next run, what it
was doing. One writer at a time (a process-wide lock plus SQLite's own), WAL mode for readers.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import platformdirs

from .errors import LedgerError

SCHEMA_VERSION = 2

# Each entry upgrades a ledger from version N-1 to N; a fresh ledger runs them all.
_MIGRATIONS = {
    1: """
        CREATE TABLE chapters (
            key TEXT PRIMARY KEY,
            manga TEXT NOT NULL, language TEXT NOT NULL, groups TEXT NOT NULL,
            volume TEXT, chapter TEXT,
            state TEXT NOT NULL, session_id TEXT, chapter_id TEXT, error TEXT,
            updated_at TEXT NOT NULL, committed_at TEXT
        );
        CREATE TABLE transitions (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            key TEXT NOT NULL, state TEXT NOT NULL, at TEXT NOT NULL,
            session_id TEXT, detail TEXT
        );
        CREATE TABLE pages (
            key TEXT NOT NULL, position INTEGER NOT NULL, origin TEXT NOT NULL,
            upload_name TEXT NOT NULL, size INTEGER NOT NULL, sha256 TEXT NOT NULL,
            session_id TEXT, file_id TEXT,
            PRIMARY KEY (key, upload_name)
        );
    """,
    2: """
        ALTER TABLE chapters ADD COLUMN archive_id TEXT;
    """,
}


def default_ledger_path() -> Path:
    """`--ledger`, else `MDUPLOAD_LEDGER`, else the platform's state directory."""
    env = os.environ.get("MDUPLOAD_LEDGER")
    if env:
        return Path(env)
    return Path(platformdirs.user_state_dir("mdupload")) / "ledger.sqlite3"


def chapter_key_text(key: tuple) -> str:
    """A chapter key (manga, language, sorted groups, volume, chapter) as one stable string."""
    manga, language, groups, volume, chapter = key
    return json.dumps([manga, language, sorted(groups), volume, chapter], separators=(",", ":"))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


@dataclass(frozen=True)
class ChapterRecord:
    key: str
    state: str
    session_id: str | None
    chapter_id: str | None
    error: str | None
    updated_at: str
    committed_at: str | None
    archive_id: str | None


@dataclass(frozen=True)
class PageRecord:
    position: int
    origin: str
    upload_name: str
    size: int
    sha256: str
    session_id: str | None
    file_id: str | None


class Ledger:
    def __init__(self, path: Path | str):
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=5, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA busy_timeout=5000")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            raise self._error(exc) from None
        except OSError as exc:
            raise LedgerError(f"cannot open the ledger {self.path}: {exc.strerror or exc}.",
                              hint="Check the path, or choose another with --ledger PATH.") from None

    def _error(self, exc: sqlite3.Error) -> LedgerError:
        text = str(exc)
        if "locked" in text or "busy" in text:
            return LedgerError(f"the ledger {self.path} is locked by another mdupload process.",
                               hint="Wait for it to finish, or point this run at another ledger with --ledger PATH.")
        return LedgerError(
            f"the ledger {self.path} is damaged or is not an mdupload ledger ({text}).",
            hint="Move it aside (it is never reset silently) and run again; the duplicate check on MangaDex "
                 "still protects chapters that were already published.")

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise LedgerError(f"the ledger {self.path} was written by a newer mdupload (schema {version}).",
                              hint="Upgrade mdupload, or use another ledger with --ledger PATH.")
        for target in range(version + 1, SCHEMA_VERSION + 1):
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for statement in filter(str.strip, _MIGRATIONS[target].split(";")):
                    self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version={target}")
                self._db.execute("COMMIT")
            except sqlite3.Error:
                self._db.execute("ROLLBACK")
                raise

    def _write(self, statements: list[tuple[str, tuple]]) -> None:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                for sql, args in statements:
                    self._db.execute(sql, args)
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise self._error(exc) from None

    def _read(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            try:
                return self._db.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise self._error(exc) from None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # --- writing ---------------------------------------------------------------------------

    def record(self, key: tuple, state: str, *, session_id: str | None = None, chapter_id: str | None = None,
               error: str | None = None, detail: str | None = None) -> None:
        """Write one transition of the chapter's state machine (and its latest state)."""
        text = chapter_key_text(key)
        manga, language, groups, volume, chapter = key
        at = _now()
        committed_at = at if chapter_id else None
        self._write([
            ("INSERT INTO transitions (key, state, at, session_id, detail) VALUES (?, ?, ?, ?, ?)",
             (text, state, at, session_id, detail or error)),
            ("""INSERT INTO chapters (key, manga, language, groups, volume, chapter, state, session_id,
                                      chapter_id, error, updated_at, committed_at)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(key) DO UPDATE SET
                    state = excluded.state,
                    session_id = COALESCE(excluded.session_id, chapters.session_id),
                    chapter_id = COALESCE(excluded.chapter_id, chapters.chapter_id),
                    error = excluded.error,
                    updated_at = excluded.updated_at,
                    committed_at = COALESCE(chapters.committed_at, excluded.committed_at)""",
             (text, manga, language, json.dumps(sorted(groups)), volume, chapter, state, session_id,
              chapter_id, error, at, committed_at)),
        ])

    def forget_session(self, key: tuple) -> None:
        """The chapter's session is gone (abandoned or committed): its file ids no longer mean anything."""
        text = chapter_key_text(key)
        self._write([
            ("UPDATE chapters SET session_id = NULL WHERE key = ?", (text,)),
            ("UPDATE pages SET session_id = NULL, file_id = NULL WHERE key = ?", (text,)),
        ])

    def plan_pages(self, key: tuple, pages: list[tuple[str, str, int, str]]) -> None:
        """Record the chapter's pages in order: (origin, upload_name, size, sha256) each.

        Known file ids are kept for pages whose name, size and hash did not change.
        """
        text = chapter_key_text(key)
        known = {p.upload_name: p for p in self.pages(key)}
        statements: list[tuple[str, tuple]] = [("DELETE FROM pages WHERE key = ?", (text,))]
        for position, (origin, name, size, sha256) in enumerate(pages):
            old = known.get(name)
            keep = old is not None and old.size == size and old.sha256 == sha256
            statements.append((
                "INSERT INTO pages (key, position, origin, upload_name, size, sha256, session_id, file_id)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (text, position, origin, name, size, sha256,
                 old.session_id if keep else None, old.file_id if keep else None)))
        self._write(statements)

    def set_file_ids(self, key: tuple, session_id: str, file_ids: dict[str, str | None]) -> None:
        """Record the server's file id of each page (by upload name); None clears it."""
        text = chapter_key_text(key)
        self._write([
            ("UPDATE pages SET session_id = ?, file_id = ? WHERE key = ? AND upload_name = ?",
             (session_id if file_id else None, file_id, text, name))
            for name, file_id in file_ids.items()
        ])

    def set_archive_id(self, key: tuple, archive_id: str) -> None:
        self._write([("UPDATE chapters SET archive_id = ? WHERE key = ?", (archive_id, chapter_key_text(key)))])

    # --- reading ---------------------------------------------------------------------------

    def chapter(self, key: tuple) -> ChapterRecord | None:
        rows = self._read(
            "SELECT key, state, session_id, chapter_id, error, updated_at, committed_at, archive_id"
            " FROM chapters WHERE key = ?", (chapter_key_text(key),))
        return ChapterRecord(*rows[0]) if rows else None

    def pages(self, key: tuple) -> list[PageRecord]:
        rows = self._read(
            "SELECT position, origin, upload_name, size, sha256, session_id, file_id FROM pages"
            " WHERE key = ? ORDER BY position", (chapter_key_text(key),))
        return [PageRecord(*row) for row in rows]

    def transitions(self, key: tuple) -> list[tuple[str, str, str | None, str | None]]:
        """(state, at, session_id, detail) of every transition, oldest first."""
        return self._read("SELECT state, at, session_id, detail FROM transitions WHERE key = ? ORDER BY id",
                          (chapter_key_text(key),))

    def owner_of_session(self, session_id: str) -> tuple | None:
        """The key of the chapter whose upload uses this session, if the ledger knows it."""
        rows = self._read("SELECT key FROM chapters WHERE session_id = ?", (session_id,))
        if not rows:
            return None
        manga, language, groups, volume, chapter = json.loads(rows[0][0])
        return (manga, language, tuple(groups), volume, chapter)
