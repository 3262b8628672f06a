"""An in-memory stand-in for MangaDexClient, for unit tests of the upload state machine.

It keeps MangaDex's rules that the state machine depends on (one open session, files keyed by id,
commit deleting files left out of pageOrder, committed chapters listed only once processed) and
lets a test script failures per file name, lost answers, failed begins, and whether `fileHash` is
the SHA-256 of the bytes.
"""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from mdupload.mangadex.client import BatchResult, Chapter, SessionFile, UploadSession
from mdupload.mangadex.errors import ApiErrorDetail, Conflict, OutcomeUnknown, ServerError

MANGA = "f9c33607-9180-4ba6-b85c-e4b5faee7192"
GROUP = "145f9110-0a6c-4b71-8737-6acb1a3c5da4"
FAKE_API = "https://api.mangadex.org"  # the MangaDex the fake stands for (part of every chapter key)


class FakeMangaDex:
    def __init__(self):
        self._ids = (f"00000000-0000-4000-8000-{n:012d}" for n in itertools.count(1))
        self.session: UploadSession | None = None
        self.chapters: list[Chapter] = []
        self.committed_orders: list[list[str]] = []  # original file names of each commit, in order
        self.abandoned: list[str] = []
        self.sent_names: list[str] = []  # every file name ever sent, in sending order
        self.batch_sizes: list[int] = []  # files per upload request, in sending order
        self.refuse: dict[str, int] = {}  # file name -> how many more times to refuse it
        self.lose_answer_of_batches: int = 0  # the next N batches are stored but their answer is lost
        self.lose_commit_answers: int = 0
        self.approval_required = False
        self.calls: list[str] = []
        self.stored: list[tuple[str, str]] = []  # (session id, file name) of every file ever stored
        self.listed = True  # False: committed chapters are not processed yet, so GET /chapter leaves them out
        self.fail_begins = 0  # the next N begins fail with a 500 before opening anything
        self.hash_is_sha256 = True  # False: fileHash is some other digest of the bytes (it is undocumented)

    # helpers for tests
    def open_foreign_session(self, minutes_ago: float, files: int = 2) -> UploadSession:
        when = datetime.now(UTC) - timedelta(minutes=minutes_ago)
        stored = tuple(SessionFile(next(self._ids), f"other-{i}.png", "0" * 64, 100, "image/png", "local")
                       for i in range(files))
        self.session = UploadSession(next(self._ids), MANGA, (GROUP,), stored, False, 1, when, when, None)
        return self.session

    # the client's methods
    def get_open_session(self):
        self.calls.append("get_open_session")
        return self.session

    def begin_session(self, manga, groups):
        self.calls.append("begin_session")
        if self.fail_begins > 0:
            self.fail_begins -= 1
            raise ServerError("MangaDex failed on POST /upload/begin (500).", status=500)
        if self.session is not None:  # "an error when one is already open" (API-NOTES.md); the sandbox's 409
            raise Conflict(f"MangaDex refused POST /upload/begin (409): session {self.session.id} is open.",
                           status=409, title="conflict_http_exception")
        now = datetime.now(UTC)
        self.session = UploadSession(next(self._ids), manga, tuple(groups), (), False, 1, now, now, None)
        return self.session

    def upload_files(self, session_id, files, on_bytes=None):
        self.calls.append("upload_files")
        assert self.session and self.session.id == session_id
        self.batch_sizes.append(len(files))
        # MangaDex refuses a request of more than 10 files: a client that sends one is a bug, stopped here loudly
        assert 1 <= len(files) <= 10, f"a batch of {len(files)} files; MangaDex takes 1 to 10 per request"
        stored, errors = [], []
        for f in files:
            self.sent_names.append(f.filename)
            if on_bytes:  # the file's bytes go out, whatever the server makes of them
                on_bytes(f.path.stat().st_size)
            if self.refuse.get(f.filename, 0) > 0:
                self.refuse[f.filename] -= 1
                errors.append(ApiErrorDetail(400, "bad_file", f"{f.filename}: the server refused it", None))
                continue
            data = f.path.read_bytes()
            digest = (hashlib.sha256(data) if self.hash_is_sha256 else hashlib.blake2s(data)).hexdigest()
            stored.append(SessionFile(next(self._ids), f.filename, digest, len(data), f.mime, "local"))
            self.stored.append((session_id, f.filename))
        self.session = replace(self.session, files=self.session.files + tuple(stored),
                               updated_at=datetime.now(UTC))
        if self.lose_answer_of_batches > 0:
            self.lose_answer_of_batches -= 1
            raise OutcomeUnknown("the connection was dropped before the answer came")
        # the answer lists files in reverse: the state machine must map by name, not order
        return BatchResult(list(reversed(stored)), errors)

    def delete_files(self, session_id, file_ids):
        self.calls.append("delete_files")
        ids = set(file_ids)
        self.session = replace(self.session, files=tuple(f for f in self.session.files if f.id not in ids))

    def abandon_session(self, session_id):
        self.calls.append("abandon_session")
        self.abandoned.append(session_id)
        self.session = None

    def check_approval_required(self, manga, locale):
        return self.approval_required

    def find_chapters(self, manga, chapter, language, groups):
        if not self.listed:
            return []
        return [c for c in self.chapters if c.chapter == chapter and c.language == language]

    # what a test checks afterwards
    def stored_twice(self) -> list[tuple[str, str]]:
        return sorted({entry for entry in self.stored if self.stored.count(entry) > 1})

    def commit(self, session_id, draft, page_order):
        self.calls.append("commit")
        assert self.session and self.session.id == session_id
        by_id = {f.id: f for f in self.session.files}
        assert len(page_order) == len(set(page_order)) and all(i in by_id for i in page_order)
        chapter = Chapter(next(self._ids), self.session.manga_id, draft["chapter"], draft["volume"], draft["title"],
                          draft["translatedLanguage"], self.session.group_ids, len(page_order), 1, None)
        self.chapters.append(chapter)
        self.committed_orders.append([by_id[i].original_file_name for i in page_order])
        self.session = None
        if self.lose_commit_answers > 0:
            self.lose_commit_answers -= 1
            raise OutcomeUnknown("read timed out after the commit was sent")
        return chapter
