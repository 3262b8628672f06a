"""The ledger: a local SQLite record of every upload transition, page and committed chapter.

One row per chapter key in `chapters` (its latest state), every transition in `transitions`, and
every planned page with the file id the server gave it in `pages`. The key is the whole identity of
a release (vocabulary.ChapterKey), the MangaDex API it was published to included, so that a
rehearsal on the sandbox or on .dev is never taken for a release on MangaDex.

A ledger from before version 4 did not record its API: its records are migrated in place with an
unknown API (`UNKNOWN_API`), and the first run that looks one up, against whichever API, takes it
as its own (`claim_unknown`) and says so: an old ledger was nearly always used against the one
MangaDex its owner still uses, and taking its records for production's would make a rehearsal
ledger republish everything, while discarding them would lose every resume (docs/identity.md). Each transition is written
before the network call it leads to, so that a killed process can tell, on the next run, what it
was doing. WAL mode for readers (`mdupload status` reads while an upload runs).

One writer: the first write takes an exclusive lock on `<ledger>.lock` (held until `close()` or the
process ends, however it ends), so that a second `mdupload upload` with the same ledger stops with a
clear message instead of resuming the first one's session under its feet. A ledger that is damaged,
locked, from a newer version or not an mdupload ledger at all is an error that says so; it is never
reset or written over.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import shutil
import sqlite3
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from .errors import LedgerError
from .files import O_NOFOLLOW
from .vocabulary import LOOKING_AROUND, ChapterKey

log = logging.getLogger("mdupload.ledger")

SCHEMA_VERSION = 4
UNKNOWN_API = ""  # the API of a record migrated from a ledger before version 4, until a run claims it
DISK_FULL_BYTES = 1024 * 1024  # an SQLite I/O error with less room than this left is taken for a full disk
_NO_ROOM_OR_READ_ONLY = (errno.ENOSPC, errno.EROFS)

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
    3: """
        CREATE INDEX transitions_by_key ON transitions (key, id);
    """,
    4: """
        ALTER TABLE chapters ADD COLUMN api TEXT;
        ALTER TABLE chapters ADD COLUMN title TEXT;
        ALTER TABLE chapters ADD COLUMN draft TEXT;
    """,
}


def _rekey_to_v4(db: sqlite3.Connection) -> None:
    """Version 4's keys hold the oneshot title and the API: every older key (manga, language, groups, volume,
    chapter) is rewritten with no title and the unknown API, in all three tables."""
    old = {row[0] for table in ("chapters", "transitions", "pages")
           for row in db.execute(f"SELECT DISTINCT key FROM {table}")}  # noqa: S608 - the table names are ours
    for text in old:
        manga, language, groups, volume, chapter = json.loads(text)
        new = chapter_key_text(ChapterKey(manga, language, tuple(groups), volume, chapter, None, UNKNOWN_API))
        for table in ("chapters", "transitions", "pages"):
            db.execute(f"UPDATE {table} SET key = ? WHERE key = ?", (new, text))  # noqa: S608


_AFTER_MIGRATION = {4: _rekey_to_v4}



def chapter_key_text(key: tuple) -> str:
    """A chapter key (vocabulary.ChapterKey, or the five first parts of one) as one stable string."""
    key = ChapterKey(*key)
    return json.dumps([key.api, key.manga, key.language, sorted(key.groups), key.volume, key.chapter, key.title],
                      separators=(",", ":"))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


try:  # POSIX
    import fcntl

    def _try_lock(handle) -> bool:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False
        except OSError:  # no locks on this filesystem (some network ones): SQLite's own locking is all there is
            return True

    def _unlock(handle) -> None:
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
except ImportError:  # Windows
    try:
        import msvcrt

        def _try_lock(handle) -> bool:
            try:
                handle.seek(0)
                msvcrt.locking(handle.fileno(), msvcrt.LK_NBLCK, 1)
                return True
            except OSError:
                return False

        def _unlock(handle) -> None:
            handle.seek(0)
            msvcrt.locking(handle.fileno(), msvcrt.LK_UNLCK, 1)
    except ImportError:  # neither: SQLite's own locking is all there is
        def _try_lock(handle) -> bool:
            return True

        def _unlock(handle) -> None:
            pass

def _open_lock(path: Path, *, create: bool):
    """The writer's lock file, never through a link planted in its place (files.py)."""
    flags = os.O_RDWR | O_NOFOLLOW | (os.O_CREAT if create else 0)
    return os.fdopen(os.open(path, flags, 0o644), "r+", encoding="ascii")


WRITER_WAIT_S = 2.0  # how long a writer waits for the lock (a `status` may hold it for an instant)


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
        self.lock_path = self.path.with_name(self.path.name + ".lock")
        self._lock = threading.Lock()
        self._writer = None  # the open lock file while this ledger is the writer
        self._db = None
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=5, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA busy_timeout=5000")
            self._check_integrity()
            self._db.execute("PRAGMA journal_mode=WAL")
            self._migrate()
        except sqlite3.DatabaseError as exc:
            self._close_db()
            raise self._error(exc) from None
        except LedgerError:
            self._close_db()
            raise
        except OSError as exc:
            self._close_db()
            if exc.errno in _NO_ROOM_OR_READ_ONLY:
                raise self._error(exc) from None
            raise LedgerError(f"cannot open the ledger {self.path}: {exc.strerror or exc}.",
                              hint="Check the path, or choose another with --ledger PATH.") from None

    def _close_db(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _check_integrity(self) -> None:
        """Refuse a damaged file, and a database of another program (never add tables to it)."""
        verdict = self._db.execute("PRAGMA quick_check").fetchone()[0]
        if verdict != "ok":
            raise sqlite3.DatabaseError(f"integrity check: {verdict}")
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        tables = {row[0] for row in self._db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        tables.discard("sqlite_sequence")
        if version == 0 and tables:
            raise LedgerError(
                f"{self.path} is an SQLite database of another program (tables {', '.join(sorted(tables))}), "
                "not an mdupload ledger.", hint="Choose another file with --ledger PATH; this one is left as it is.")

    def _error(self, exc: sqlite3.Error | OSError) -> LedgerError:
        """What went wrong, and what to do: a full disk and a read-only ledger are not damage."""
        text = str(exc)
        extended = getattr(exc, "sqlite_errorcode", None)
        code = extended & 0xFF if isinstance(extended, int) else None  # the primary code
        if code == sqlite3.SQLITE_FULL or getattr(exc, "errno", None) == errno.ENOSPC or self._disk_full(code):
            return LedgerError(f"the disk holding the ledger {self.path} is full; free space and run again: it resumes.",
                               hint="The ledger is intact and the rerun needs it: keep it where it is.")
        if code == sqlite3.SQLITE_READONLY or getattr(exc, "errno", None) == errno.EROFS or (
                code == sqlite3.SQLITE_CANTOPEN and self._read_only()):
            return LedgerError(f"the ledger {self.path} cannot be written: it, its folder or its disk is read-only "
                               f"({text}).",
                               hint="Make it writable (or mount the disk read-write) and run again: it resumes. "
                                    "The ledger is intact and the rerun needs it: keep it where it is.")
        if "locked" in text or "busy" in text:
            return LedgerError(f"the ledger {self.path} is locked by another mdupload process.",
                               hint="Wait for it to finish, then run again (another ledger would not help: the "
                                    "account's one open upload session is shared).")
        return LedgerError(
            f"the ledger {self.path} is damaged or is not an mdupload ledger ({text}).",
            hint="Move it aside (it is never reset silently) and run again; the duplicate check on MangaDex "
                 "still protects chapters that were already published.")

    def _read_only(self) -> bool:
        """Whether the ledger (or, when it does not exist yet, its folder) cannot be written."""
        return not os.access(self.path if self.path.exists() else self.path.parent, os.W_OK) or (
            self.path.exists() and not os.access(self.path.parent, os.W_OK))  # the WAL files go beside it

    def _disk_full(self, code: int | None) -> bool:
        """An I/O error writing the ledger while its disk has no room left (how SQLite reports some ENOSPC)."""
        if code != sqlite3.SQLITE_IOERR:
            return False
        try:
            return shutil.disk_usage(self.path.parent).free < DISK_FULL_BYTES
        except OSError:
            return False

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
                if target in _AFTER_MIGRATION:
                    _AFTER_MIGRATION[target](self._db)
                self._db.execute(f"PRAGMA user_version={target}")
                self._db.execute("COMMIT")
            except sqlite3.Error:
                self._roll_back()
                raise

    def _roll_back(self) -> None:
        """End the failed transaction; SQLite may have ended it already (a full disk does), or fail to."""
        try:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
        except sqlite3.Error as exc:
            log.debug("rollback after a failed write: %s", exc)

    def _write(self, statements: list[tuple[str, tuple]]) -> None:
        with self._lock:
            if self._writer is None:
                self._become_writer()
            try:
                self._db.execute("BEGIN IMMEDIATE")
                for sql, args in statements:
                    self._db.execute(sql, args)
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._roll_back()
                raise self._error(exc) from None

    def _read(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            try:
                return self._db.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise self._error(exc) from None

    def _become_writer(self) -> None:
        """Take the writer lock (called with self._lock held); a clear error when another process has it."""
        try:
            handle = _open_lock(self.lock_path, create=True)  # kept open while this process writes
        except OSError as exc:
            if exc.errno in _NO_ROOM_OR_READ_ONLY:
                raise self._error(exc) from None
            raise LedgerError(f"cannot create the lock file {self.lock_path}: {exc.strerror or exc}.",
                              hint="Check the folder's permissions, or choose another ledger with --ledger PATH.") from None
        deadline = time.monotonic() + WRITER_WAIT_S
        while not _try_lock(handle):
            if time.monotonic() >= deadline:
                try:
                    handle.seek(0)
                    holder = handle.read().strip()
                except OSError:  # Windows: the locked byte cannot be read
                    holder = ""
                handle.close()
                who = f" (process {holder})" if holder.isdigit() else ""
                raise LedgerError(
                    f"the ledger {self.path} is in use by another mdupload upload{who}.",
                    hint="Wait for it to finish (`mdupload status` shows its progress), then run again; another "
                         "ledger would not help, since the account has one open upload session for both.")
            time.sleep(0.05)
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(str(os.getpid()))
            handle.flush()
        except OSError as exc:
            _unlock(handle)
            handle.close()
            raise self._error(exc) from None
        self._writer = handle

    def writer_running(self) -> bool:
        """Whether a process (this one included) holds the writer lock, i.e. an upload is running now."""
        with self._lock:
            if self._writer is not None:
                return True
            try:
                with _open_lock(self.lock_path, create=False) as handle:  # no lock file: no writer ever ran
                    if not _try_lock(handle):
                        return True
                    _unlock(handle)
            except OSError:
                return False
            return False

    def close(self) -> None:
        with self._lock:
            self._close_db()
            if self._writer is not None:
                _unlock(self._writer)
                self._writer.close()
                self._writer = None

    # --- keys ------------------------------------------------------------------------------

    def _text(self, key: tuple) -> str:
        """The stored key of this chapter: its own, or the unknown-API record it would claim (see claim_unknown)."""
        text = chapter_key_text(key)
        if self._read("SELECT 1 FROM chapters WHERE key = ?", (text,)):
            return text
        legacy = chapter_key_text(_unknown_api_key(key))
        if legacy != text and self._read("SELECT 1 FROM chapters WHERE key = ? AND api IS NULL", (legacy,)):
            return legacy
        return text

    def claim_unknown(self, key: tuple) -> bool:
        """Take the record of this chapter migrated from a ledger before version 4 (which did not know its API,
        nor a oneshot's title) as this key's, in all three tables; whether there was one to take."""
        text, own = self._text(key), chapter_key_text(key)
        if text == own:
            return False
        key = ChapterKey(*key)
        self._write([("UPDATE chapters SET key = ?, api = ?, title = ? WHERE key = ?", (own, key.api, key.title, text)),
                     ("UPDATE transitions SET key = ? WHERE key = ?", (own, text)),
                     ("UPDATE pages SET key = ? WHERE key = ?", (own, text))])
        return True

    # --- writing ---------------------------------------------------------------------------

    def record(self, key: tuple, state: str, *, session_id: str | None = None, chapter_id: str | None = None,
               error: str | None = None, detail: str | None = None, clear_session: bool = False,
               draft: dict | None = None, new_key: tuple | None = None) -> None:
        """Write one transition of the chapter's state machine (and its latest state).

        `draft`: the chapterDraft the chapter now has on MangaDex (written with COMMITTED), what a rerun
        compares the manifest's metadata with.

        `new_key`: the chapter's identity changed on MangaDex (its groups, or a numbered chapter's volume, were
        corrected in place): its record, transitions and pages move to that key in the same transaction (a
        record of the new key that held nothing published is replaced), so that a rerun finds it there.

        `clear_session`: the chapter's session is gone or about to be replaced (committed, abandoned, a new
        one being begun); its id and the pages' file ids are forgotten in the same transaction, so that
        no instant exists at which the ledger holds one without the other.
        """
        text = self._text(key)
        key = ChapterKey(*key)
        at = _now()
        committed_at = at if chapter_id else None
        forget = self._forget_statements(text) if clear_session else []
        self._write([*forget,
            ("INSERT INTO transitions (key, state, at, session_id, detail) VALUES (?, ?, ?, ?, ?)",
             (text, state, at, session_id, detail or error)),
            ("""INSERT INTO chapters (key, manga, language, groups, volume, chapter, title, api, state, session_id,
                                      chapter_id, error, updated_at, committed_at, draft)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
                ON CONFLICT(key) DO UPDATE SET
                    state = excluded.state,
                    session_id = COALESCE(excluded.session_id, chapters.session_id),
                    chapter_id = COALESCE(excluded.chapter_id, chapters.chapter_id),
                    error = excluded.error,
                    updated_at = excluded.updated_at,
                    committed_at = COALESCE(chapters.committed_at, excluded.committed_at),
                    draft = COALESCE(excluded.draft, chapters.draft)""",
             (text, key.manga, key.language, json.dumps(sorted(key.groups)), key.volume, key.chapter, key.title,
              key.api, state, session_id, chapter_id, error, at, committed_at,
              json.dumps(draft, sort_keys=True) if draft is not None else None)),
            *(self._rekey_statements(text, ChapterKey(*new_key)) if new_key is not None else []),
        ])

    @staticmethod
    def _rekey_statements(text: str, new_key: ChapterKey) -> list[tuple[str, tuple]]:
        new_text = chapter_key_text(new_key)
        tables = ("chapters", "transitions", "pages")
        return [*((f"DELETE FROM {table} WHERE key = ?", (new_text,)) for table in tables),  # noqa: S608 - ours
                ("UPDATE chapters SET key = ?, groups = ?, volume = ?, title = ? WHERE key = ?",
                 (new_text, json.dumps(sorted(new_key.groups)), new_key.volume, new_key.title, text)),
                *((f"UPDATE {table} SET key = ? WHERE key = ?", (new_text, text))  # noqa: S608 - ours
                  for table in tables[1:])]

    def forget_session(self, key: tuple) -> None:
        """The chapter's session is gone (abandoned or committed): its file ids no longer mean anything."""
        self._write(self._forget_statements(self._text(key)))

    @staticmethod
    def _forget_statements(text: str) -> list[tuple[str, tuple]]:
        return [
            ("UPDATE chapters SET session_id = NULL WHERE key = ?", (text,)),
            ("UPDATE pages SET session_id = NULL, file_id = NULL WHERE key = ?", (text,)),
        ]

    def plan_pages(self, key: tuple, pages: list[tuple[str, str, int, str]]) -> None:
        """Record the chapter's pages in order: (origin, upload_name, size, sha256) each.

        Known file ids are kept for pages whose name, size and hash did not change.
        """
        text = self._text(key)
        known = {p.upload_name: p for p in self.pages(key)}
        statements: list[tuple[str, tuple]] = [("DELETE FROM pages WHERE key = ?", (text,))]
        for position, (origin, name, size, sha256) in enumerate(pages):
            old = known.get(name)
            keep = old is not None and old.size == size and old.sha256 == sha256
            statements.append((
                ("INSERT INTO pages (key, position, origin, upload_name, size, sha256, session_id, file_id)"
                 " VALUES (?, ?, ?, ?, ?, ?, ?, ?)"),
                (text, position, origin, name, size, sha256,
                 old.session_id if keep else None, old.file_id if keep else None)))
        self._write(statements)

    def set_file_ids(self, key: tuple, session_id: str, file_ids: dict[str, str | None]) -> None:
        """Record the server's file id of each page (by upload name); None clears it."""
        text = self._text(key)
        self._write([
            ("UPDATE pages SET session_id = ?, file_id = ? WHERE key = ? AND upload_name = ?",
             (session_id if file_id else None, file_id, text, name))
            for name, file_id in file_ids.items()
        ])

    def set_archive_id(self, key: tuple, archive_id: str) -> None:
        self._write([("UPDATE chapters SET archive_id = ? WHERE key = ?", (archive_id, self._text(key)))])

    # --- reading ---------------------------------------------------------------------------

    def chapter(self, key: tuple) -> ChapterRecord | None:
        rows = self._read(
            "SELECT key, state, session_id, chapter_id, error, updated_at, committed_at, archive_id"
            " FROM chapters WHERE key = ?", (self._text(key),))
        return ChapterRecord(*rows[0]) if rows else None

    def published_draft(self, key: tuple) -> dict | None:
        """The chapterDraft the chapter was last published or corrected with (None: not known to this ledger)."""
        rows = self._read("SELECT draft FROM chapters WHERE key = ?", (self._text(key),))
        return json.loads(rows[0][0]) if rows and rows[0][0] else None

    def pages(self, key: tuple) -> list[PageRecord]:
        rows = self._read(
            "SELECT position, origin, upload_name, size, sha256, session_id, file_id FROM pages"
            " WHERE key = ? ORDER BY position", (self._text(key),))
        return [PageRecord(*row) for row in rows]

    def transitions(self, key: tuple) -> list[tuple[str, str, str | None, str | None]]:
        """(state, at, session_id, detail) of every transition, oldest first."""
        return self._read("SELECT state, at, session_id, detail FROM transitions WHERE key = ? ORDER BY id",
                          (self._text(key),))

    def last_state(self, key: tuple, *, ignoring: tuple[str, ...] = LOOKING_AROUND) -> tuple[str, str] | None:
        """(state, at) of the chapter's last transition not in `ignoring`: by default what a run last did, not
        the looking around a later run killed early may have recorded (CHECKED, FINDING_SESSION)."""
        marks = ", ".join("?" * len(ignoring)) or "''"
        rows = self._read(f"SELECT state, at FROM transitions WHERE key = ? AND state NOT IN ({marks}) "
                          "ORDER BY id DESC LIMIT 1", (self._text(key), *ignoring))
        return (rows[0][0], rows[0][1]) if rows else None

    def begun_without_session(self, manga: str, api: str) -> list[ChapterKey]:
        """Keys of this manga's chapters on this API (or of an unknown one) whose last run was stopped while
        beginning a session (its id unknown)."""
        rows = self._read(
            """SELECT c.key FROM chapters c JOIN transitions t ON t.id = (
                   SELECT MAX(id) FROM transitions
                   WHERE key = c.key AND state NOT IN ('CHECKED', 'FINDING_SESSION', 'FAILED'))
               WHERE c.manga = ? AND (c.api = ? OR c.api IS NULL) AND c.session_id IS NULL
                     AND t.state = 'BEGINNING' ORDER BY t.id""", (manga, api))
        return [_key(row[0]) for row in rows]

    def published_here(self, api: str, manga: str) -> list[tuple[ChapterKey, str]]:
        """(key, chapter id) of this manga's chapters on this API that this ledger itself published (a commit of
        it went through), whatever became of them since (a correction may be in progress): what a manifest
        chapter whose groups or volume changed may be a correction of (pairing.py)."""
        rows = self._read(
            """SELECT c.key, c.chapter_id FROM chapters c
               WHERE c.api = ? AND c.manga = ? AND c.chapter_id IS NOT NULL
                     AND EXISTS (SELECT 1 FROM transitions t WHERE t.key = c.key AND t.state = 'COMMITTED')
               ORDER BY c.key""", (api, manga))
        return [(_key(text), chapter_id) for text, chapter_id in rows]

    def owner_of_session(self, session_id: str) -> ChapterKey | None:
        """The key of the chapter whose upload uses this session, if the ledger knows it."""
        rows = self._read("SELECT key FROM chapters WHERE session_id = ?", (session_id,))
        return _key(rows[0][0]) if rows else None


def _key(text: str) -> ChapterKey:
    api, manga, language, groups, volume, chapter, title = json.loads(text)
    return ChapterKey(manga, language, tuple(groups), volume, chapter, title, api)


def _unknown_api_key(key: tuple) -> ChapterKey:
    """How a record migrated from before version 4 would be keyed: no API, and no oneshot title."""
    return ChapterKey(*key)._replace(api=UNKNOWN_API, title=None)
