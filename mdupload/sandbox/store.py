"""The sandbox's state: tokens, upload sessions and their files, chapters, MangaDex@Home reports.

Everything lives in one folder: `state.json` (rewritten atomically after every change when the
state is to survive a restart) and `blobs/<sha256>` (the bytes of every file, shared by sessions
and chapters). Callers hold `lock` while they read or change the records; `save()` writes them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path

STATE_FILE = "state.json"
FORMAT_VERSION = 1


@dataclass
class Token:
    value: str
    kind: str  # "access" or "refresh"
    username: str
    client_id: str
    expires_at: float
    revoked: bool = False


@dataclass
class SessionFile:
    id: str
    session_id: str
    original_file_name: str
    file_hash: str  # SHA-256 of the bytes, hex
    file_size: int
    mime_type: str
    source: str  # "local" (uploaded) or "remote" (a page of the chapter an edit session changes)
    version: int = 1


@dataclass
class Session:
    id: str
    user_id: str
    manga_id: str
    group_ids: list[str]
    created_at: float
    updated_at: float
    file_ids: list[str] = field(default_factory=list)  # in upload order
    chapter_id: str | None = None  # set for an edit session
    chapter_version: int | None = None  # the chapter version an edit session started from
    is_committed: bool = False
    is_deleted: bool = False
    version: int = 1


@dataclass
class Page:
    original_file_name: str
    file_hash: str
    file_size: int
    mime_type: str
    name: str  # the file name MangaDex@Home serves it under

    @property
    def saver_name(self) -> str:
        """The data-saver file name: a hash of its own, always .jpg (the rendition is a JPEG)."""
        digest = hashlib.sha256(f"data-saver:{self.file_hash}".encode()).hexdigest()
        return f"{self.name.partition('-')[0]}-{digest}.jpg"


@dataclass
class Chapter:
    id: str
    manga_id: str
    group_ids: list[str]
    uploader: str
    volume: str | None
    chapter: str | None
    title: str | None
    translated_language: str
    external_url: str | None
    publish_at: float
    created_at: float
    updated_at: float
    readable_at: float  # when MangaDex has processed the pages (MangaDex@Home serves them from then)
    hash: str
    pages: list[Page]
    version: int = 1
    awaiting_approval: bool = False
    unavailable: bool = False


@dataclass
class Records:
    accounts: dict[str, dict] = field(default_factory=dict)  # username -> Account fields
    tokens: dict[str, Token] = field(default_factory=dict)
    sessions: dict[str, Session] = field(default_factory=dict)
    files: dict[str, SessionFile] = field(default_factory=dict)
    chapters: dict[str, Chapter] = field(default_factory=dict)
    reports: list[dict] = field(default_factory=list)


class Store:
    def __init__(self, root: Path, *, persist: bool):
        self.root = root
        self.persist = persist
        self.blobs = root / "blobs"
        self.blobs.mkdir(parents=True, exist_ok=True)
        self.incoming = root / "incoming"
        self.incoming.mkdir(exist_ok=True)
        self.lock = threading.RLock()
        self.records = self._load()

    def _load(self) -> Records:
        path = self.root / STATE_FILE
        if not path.exists():
            return Records()
        raw = json.loads(path.read_text(encoding="utf-8"))
        if raw.get("format") != FORMAT_VERSION:
            raise ValueError(f"{path}: written by another sandbox version (format {raw.get('format')})")
        return Records(
            accounts=raw["accounts"],
            tokens={k: Token(**v) for k, v in raw["tokens"].items()},
            sessions={k: Session(**v) for k, v in raw["sessions"].items()},
            files={k: SessionFile(**v) for k, v in raw["files"].items()},
            chapters={k: Chapter(**{**v, "pages": [Page(**p) for p in v["pages"]]})
                      for k, v in raw["chapters"].items()},
            reports=raw["reports"],
        )

    def save(self) -> None:
        if not self.persist:
            return
        with self.lock:
            document = {"format": FORMAT_VERSION, **dataclasses.asdict(self.records)}
            temporary = self.root / (STATE_FILE + ".tmp")
            temporary.write_text(json.dumps(document), encoding="utf-8")
            os.replace(temporary, self.root / STATE_FILE)

    def blob(self, sha256: str) -> Path:
        return self.blobs / sha256

    def saver_blob(self, sha256: str) -> Path:
        """The data-saver rendition of a blob (made by the image host on first request)."""
        return self.blobs / f"saver-{sha256}"

    def keep_blob(self, incoming: Path, sha256: str) -> None:
        """Move an accepted upload into the blob store (the same bytes are kept once)."""
        target = self.blob(sha256)
        if target.exists():
            incoming.unlink()
        else:
            os.replace(incoming, target)

    def forget_unused_blobs(self, hashes: set[str]) -> None:
        """Delete the bytes of these hashes when no session file and no chapter page uses them."""
        with self.lock:
            used = {f.file_hash for f in self.records.files.values()}
            used |= {p.file_hash for c in self.records.chapters.values() for p in c.pages}
            for sha256 in hashes - used:
                self.blob(sha256).unlink(missing_ok=True)
                self.saver_blob(sha256).unlink(missing_ok=True)
