"""GET /_sandbox/state: what the sandbox holds and what it was asked (sandbox-only; MangaDex has no such call).

{"sandbox": {urls, stateDir, seed},
 "accounts": [{"username", "userId", "clientId"}],
 "chapters": [{"id", "manga", "groups", "uploader", "volume", "chapter", "title", "translatedLanguage",
               "version", "publishAt", "createdAt", "updatedAt", "processed", "awaitingApproval", "unavailable",
               "pages": [{"originalFileName", "fileSize", "fileHash" (SHA-256), "mimeType", "name"}]}],  # in order
 "sessions": [the open upload sessions: {"id", "user", "manga", "groups", "chapter", "createdAt", "files": [...]}],
 "requests": [{"time", "host", "method", "path", "query", "status" (null: no answer), "authorization" (bool),
               "fault" (null or the fault that struck), "bytes" (request body bytes read)}],
 "reports": [the MangaDex@Home reports received, as sent],
 "warnings": [{"time", "request" ("POST /upload/…"), "part" (field name and filename, or null), "leniency"
               (what the sandbox let through), "stricter" (what a stricter server might do)}],
 "internalErrors": [{"time", "request", "error"}: sandbox bugs, each answered 500],
 "network": {"bandwidth", "throttledBytes", "throttleWaitSeconds"},
 "faults": {"seed", "injected": {fault: count}}}
"""

from __future__ import annotations

from .catalog import processed
from .core import TOKEN_PATH, Core, iso


def state_document(core: Core) -> dict:
    store = core.store
    with store.lock:
        records = store.records
        chapters = [_chapter(c) for c in sorted(records.chapters.values(), key=lambda c: (c.created_at, c.id))]
        sessions = [{
            "id": s.id, "user": s.user_id, "manga": s.manga_id, "groups": list(s.group_ids), "chapter": s.chapter_id,
            "createdAt": iso(s.created_at), "updatedAt": iso(s.updated_at),
            "files": [_file(records.files[f]) for f in s.file_ids],
        } for s in records.sessions.values() if not s.is_committed and not s.is_deleted]
        reports = list(records.reports)
    throttle = core.throttle
    return {
        "sandbox": {"apiUrl": core.api_url, "authUrl": core.api_url + TOKEN_PATH, "athomeUrl": core.athome_url,
                    "stateDir": str(store.root), "seed": core.faults.seed},
        "accounts": [{"username": a.username, "userId": a.user_id, "clientId": a.client_id}
                     for a in core.accounts.values()],
        "chapters": chapters,
        "sessions": sessions,
        "requests": list(core.requests),
        "reports": reports,
        "warnings": list(core.warnings),
        "internalErrors": list(core.internal_errors),
        "network": {"bandwidth": throttle.rate if throttle else None,
                    "throttledBytes": throttle.bytes if throttle else 0,
                    "throttleWaitSeconds": throttle.waited if throttle else 0.0},
        "faults": {"seed": core.faults.seed, "injected": dict(core.faults.injected)},
    }


def _chapter(chapter) -> dict:
    return {
        "id": chapter.id, "manga": chapter.manga_id, "groups": list(chapter.group_ids), "uploader": chapter.uploader,
        "volume": chapter.volume, "chapter": chapter.chapter, "title": chapter.title,
        "translatedLanguage": chapter.translated_language, "version": chapter.version,
        "publishAt": iso(chapter.publish_at), "createdAt": iso(chapter.created_at), "updatedAt": iso(chapter.updated_at),
        "processed": processed(chapter), "awaitingApproval": chapter.awaiting_approval and not processed(chapter),
        "unavailable": chapter.unavailable,
        "pages": [{"originalFileName": p.original_file_name, "fileSize": p.file_size, "fileHash": p.file_hash,
                   "mimeType": p.mime_type, "name": p.name} for p in chapter.pages],
    }


def _file(record) -> dict:
    return {"id": record.id, "originalFileName": record.original_file_name, "fileSize": record.file_size,
            "fileHash": record.file_hash, "mimeType": record.mime_type, "source": record.source}
