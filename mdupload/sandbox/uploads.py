"""The upload endpoints: sessions, files, commit, edit sessions, check-approval-required.

MangaDex's rules: one open session per account; 1 to 10 files per request, 500 per session, 20 MB
per file, 150 MB per session; JPEG, PNG and GIF only, decided from the bytes, each side at most
10,000 px. A refused file is an entry of `errors` in a 200 answer whose `result` stays "ok" (MangaDex's
upload guide: "The response body will be successful (response.result == 'ok') but might also contain
errors if one or more files failed to validate") and is missing from `data`.

A part's declared type and its file name's extension do not decide anything (the bytes do), as on
MangaDex, whose own documentation sample sends `image/jpg` and which popular uploaders reach with
untyped parts named 0, 1, …. Each such leniency is stored and recorded as a warning in the state
document, since a stricter server might refuse it.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from werkzeug.datastructures import FileStorage
from werkzeug.wrappers import Request, Response

from . import rules
from .bodies import json_body
from .catalog import chapter_json
from .config import Account
from .core import (
    ApiError,
    Core,
    entity,
    error,
    iso,
    json_response,
    new_id,
    not_found,
    now,
)
from .images import sniff
from .store import Chapter, Page, Session, SessionFile

_EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/gif": "gif"}


def get_session(core: Core, request: Request, account: Account) -> Response:
    """GET /upload: the account's open session; 404 when none is open."""
    with core.store.lock:
        session = _open_session_of(core, account)
        if session is None:
            raise not_found("No upload session is open for this account")
        includes = request.args.getlist("includes[]") + request.args.getlist("includes")
        return json_response(entity(session_json(core, session, "upload_session_file" in includes)))


def begin(core: Core, request: Request, account: Account) -> Response:
    """POST /upload/begin {"manga", "groups"}."""
    body = json_body(request, rules.BEGIN_SESSION)
    if body["manga"] not in core.mangas:
        raise not_found(f"Manga {body['manga']} does not exist")
    for group in body["groups"]:
        if group not in core.groups:
            raise not_found(f"Scanlation group {group} does not exist")
    return _start(core, account, body["manga"], list(dict.fromkeys(body["groups"])), None)


def begin_edit(core: Core, request: Request, account: Account, chapter_id: str) -> Response:
    """POST /upload/begin/{chapterId} {"version"}: a session pre-filled with the chapter's pages."""
    body = json_body(request, rules.BEGIN_EDIT_SESSION)
    with core.store.lock:
        chapter = core.store.records.chapters.get(chapter_id)
        if chapter is None:
            raise not_found(f"Chapter {chapter_id} does not exist")
        if chapter.uploader != account.user_id:
            raise ApiError(401, "unauthorized_http_exception", "Only the chapter's uploader may edit it")
        if body["version"] != chapter.version:
            raise stale_version(chapter, body["version"])
        return _start(core, account, chapter.manga_id, list(chapter.group_ids), chapter)


def upload_files(core: Core, request: Request, account: Account, session_id: str) -> Response:
    """POST /upload/{sessionId}: 1 to 10 file parts; the answer lists the stored ones and the refusals."""
    with core.store.lock:
        _writable_session(core, account, session_id)
    if request.mimetype != "multipart/form-data":
        raise ApiError(400, "bad_request_http_exception", "The body must be multipart/form-data with image files")
    parts = [part for _name, part in request.files.items(multi=True)]
    if request.form:
        raise ApiError(400, "bad_request_http_exception",
                       f"Every part must be a file with a filename; got fields {sorted(request.form)}")
    if not parts:
        raise ApiError(400, "bad_request_http_exception", "No file was sent")
    if len(parts) > rules.FILES_PER_REQUEST:
        raise ApiError(400, "bad_request_http_exception",
                       f"At most {rules.FILES_PER_REQUEST} files per request; this one has {len(parts)}")
    received = [_receive(core, part) for part in parts]
    where = f"POST {request.path}"
    for (field_name, part), incoming in zip(request.files.items(multi=True), received, strict=True):
        if incoming.problem is None:
            _warn_leniencies(core, where, field_name, part, incoming)
    try:
        stored, errors = _store(core, account, session_id, received)
    finally:
        for incoming in received:  # the refused ones (the kept ones moved into the blob store)
            incoming.path.unlink(missing_ok=True)
    if core.config.file_processing_time and stored:
        core.stopping.wait(core.config.file_processing_time * len(stored))
    return json_response({"result": "ok", "errors": errors,
                          "data": [file_json(f) for f in stored]})


def _store(core: Core, account: Account, session_id: str, received: list[_Incoming]):
    """Keep the received files the session may take; (the kept records, the per-file errors)."""
    stored, errors = [], []
    with core.store.lock:
        session = _writable_session(core, account, session_id)
        files = core.store.records.files
        count = len(session.file_ids)
        total = sum(files[f].file_size for f in session.file_ids)
        for incoming in received:
            problem = incoming.problem
            if problem is None and count + 1 > rules.FILES_PER_SESSION:
                problem = f"the session already has {count} files; at most {rules.FILES_PER_SESSION} are accepted"
            if problem is None and total + incoming.size > rules.BYTES_PER_SESSION:
                problem = (f"the session would hold {total + incoming.size:,} bytes; "
                           f"at most {rules.BYTES_PER_SESSION:,} are accepted")
            if problem is not None:
                errors.append(error(400, "bad_request_http_exception", f"{incoming.name!r}: {problem}"))
                continue
            core.store.keep_blob(incoming.path, incoming.sha256)
            record = SessionFile(new_id(), session.id, incoming.name, incoming.sha256, incoming.size,
                                 incoming.mime, "local")
            files[record.id] = record
            session.file_ids.append(record.id)
            count, total = count + 1, total + incoming.size
            stored.append(record)
        session.updated_at = now()
        core.store.save()
    return stored, errors


def delete_file(core: Core, request: Request, account: Account, session_id: str, file_id: str) -> Response:
    """DELETE /upload/{sessionId}/{fileId}."""
    _delete(core, account, session_id, [file_id])
    return json_response({"result": "ok"})


def delete_files(core: Core, request: Request, account: Account, session_id: str) -> Response:
    """DELETE /upload/{sessionId}/batch [fileId, ...]: all of them or, when one is unknown, none."""
    _delete(core, account, session_id, json_body(request, rules.DELETE_FILES))
    return json_response({"result": "ok"})


def abandon(core: Core, request: Request, account: Account, session_id: str) -> Response:
    """DELETE /upload/{sessionId}: the session and its files are gone."""
    with core.store.lock:
        session = _writable_session(core, account, session_id)
        session.is_deleted = True
        session.updated_at = now()
        hashes = _drop_files(core, session, list(session.file_ids))
        core.store.save()
        core.store.forget_unused_blobs(hashes)
    return json_response({"result": "ok"})


def commit(core: Core, request: Request, account: Account, session_id: str) -> Response:
    """POST /upload/{sessionId}/commit {"chapterDraft", "pageOrder", "termsAccepted": true}."""
    with core.store.lock:
        _writable_session(core, account, session_id)
    body = json_body(request, rules.COMMIT_SESSION)
    draft, order = body["chapterDraft"], body["pageOrder"]
    if draft.get("externalUrl") is not None:
        raise ApiError(403, "forbidden_http_exception", "This account may not set chapterDraft.externalUrl")
    publish_at = _publish_time(draft.get("publishAt"))
    duplicates = sorted({f for f in order if order.count(f) > 1})
    if duplicates:
        raise ApiError(400, "validation_exception", f"pageOrder lists these files more than once: {duplicates}")
    with core.store.lock:
        session = _writable_session(core, account, session_id)
        unknown = [f for f in order if f not in session.file_ids]
        if unknown:
            raise ApiError(400, "validation_exception", f"pageOrder names files that are not in this session: {unknown}")
        files = core.store.records.files
        pages = [_page(i, files[file_id]) for i, file_id in enumerate(order, 1)]
        chapter = _chapter_from(core, session, account, draft, publish_at, pages)
        session.is_committed = True
        session.updated_at = now()
        hashes = _drop_files(core, session, list(session.file_ids))
        core.store.save()
        core.store.forget_unused_blobs(hashes)
        return json_response(entity(chapter_json(core, chapter)))


def check_approval(core: Core, request: Request, account: Account) -> Response:
    """POST /upload/check-approval-required {"manga", "locale"}."""
    body = json_body(request, rules.CHECK_APPROVAL)
    if body["manga"] not in core.mangas:
        raise not_found(f"Manga {body['manga']} does not exist")
    return json_response({"result": "ok", "requiresApproval": core.config.needs_approval(body["manga"], body["locale"])})


def session_json(core: Core, session: Session, with_files: bool) -> dict:
    relationships = [{"id": session.user_id, "type": "user"}, {"id": session.manga_id, "type": "manga"}]
    relationships += [{"id": g, "type": "scanlation_group"} for g in session.group_ids]
    for file_id in session.file_ids:
        described = file_json(core.store.records.files[file_id])
        relationships.append(described if with_files else {"id": file_id, "type": "upload_session_file"})
    if session.chapter_id:
        relationships.append({"id": session.chapter_id, "type": "chapter"})
    return {
        "id": session.id,
        "type": "upload_session",
        "attributes": {"isCommitted": session.is_committed, "isProcessed": False, "isDeleted": session.is_deleted,
                       "version": session.version, "createdAt": iso(session.created_at),
                       "updatedAt": iso(session.updated_at)},
        "relationships": relationships,
    }


def file_json(record: SessionFile) -> dict:
    return {"id": record.id, "type": "upload_session_file", "attributes": {
        "originalFileName": record.original_file_name, "fileHash": record.file_hash, "fileSize": record.file_size,
        "mimeType": record.mime_type, "source": record.source, "version": record.version}}


@dataclass
class _Incoming:
    """One received file part, written to disk and checked."""

    name: str
    path: Path
    sha256: str
    size: int
    mime: str | None
    problem: str | None  # why it is refused; None when it may be stored


def _receive(core: Core, part: FileStorage) -> _Incoming:
    digest = hashlib.sha256()
    size = 0
    with tempfile.NamedTemporaryFile(dir=core.store.incoming, delete=False) as out:
        while chunk := part.stream.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
            out.write(chunk)
    name = part.filename or ""
    path = Path(out.name)
    if not name:
        return _Incoming(name, path, digest.hexdigest(), size, None, "every file part needs a filename")
    sniffed = sniff(path, size)
    return _Incoming(name, path, digest.hexdigest(), size, sniffed.mime, sniffed.problem)


_NAME_EXTENSIONS = {"image/jpeg": ("jpg", "jpeg"), "image/png": ("png",), "image/gif": ("gif",)}


def _warn_leniencies(core: Core, where: str, field_name: str, part: FileStorage, incoming: _Incoming) -> None:
    """Record what this stored part relied on that a stricter server might refuse."""
    label = f"{field_name} ({incoming.name!r})"
    declared = part.mimetype
    if not declared:
        core.warn(where, label, "the part has no Content-Type; its type was read from its bytes "
                  f"({incoming.mime})", f"refuse the part or store it as application/octet-stream")
    elif declared != incoming.mime:
        core.warn(where, label, f"the part says {declared} but its bytes are {incoming.mime}; the bytes decided",
                  f"refuse a part whose declared type is not {incoming.mime}")
    extension = incoming.name.rpartition(".")[2].lower() if "." in incoming.name else ""
    if not extension:
        core.warn(where, label, "the file name has no extension", "refuse it or derive a wrong page name from it")
    elif extension not in _NAME_EXTENSIONS[incoming.mime]:
        core.warn(where, label, f"the file name ends in .{extension} but its bytes are {incoming.mime}",
                  "refuse it or serve it under the wrong type")


def _open_session_of(core: Core, account: Account) -> Session | None:
    for session in core.store.records.sessions.values():
        if session.user_id == account.user_id and not session.is_committed and not session.is_deleted:
            return session
    return None


def _writable_session(core: Core, account: Account, session_id: str) -> Session:
    session = core.store.records.sessions.get(session_id)
    if session is None or session.user_id != account.user_id or session.is_deleted:
        raise not_found(f"Upload session {session_id} does not exist")
    if session.is_committed:
        raise ApiError(400, "bad_request_http_exception", f"Upload session {session_id} is already committed")
    return session


def _start(core: Core, account: Account, manga: str, groups: list[str], chapter: Chapter | None) -> Response:
    with core.store.lock:
        current = _open_session_of(core, account)
        if current is not None:
            raise ApiError(409, "conflict_http_exception",
                           f"This account already has an open upload session ({current.id}): "
                           "commit or abandon it before beginning another")
        started = now()
        session = Session(new_id(), account.user_id, manga, groups, started, started)
        if chapter is not None:
            session.chapter_id, session.chapter_version = chapter.id, chapter.version
            for page in chapter.pages:
                record = SessionFile(new_id(), session.id, page.original_file_name, page.file_hash, page.file_size,
                                     page.mime_type, "remote")
                core.store.records.files[record.id] = record
                session.file_ids.append(record.id)
        core.store.records.sessions[session.id] = session
        core.store.save()
        return json_response(entity(session_json(core, session, False)))


def _delete(core: Core, account: Account, session_id: str, file_ids: list[str]) -> None:
    with core.store.lock:
        session = _writable_session(core, account, session_id)
        unknown = [f for f in file_ids if f not in session.file_ids]
        if unknown:
            raise not_found(f"These files are not in upload session {session_id}: {unknown}")
        hashes = _drop_files(core, session, file_ids)
        session.updated_at = now()
        core.store.save()
        core.store.forget_unused_blobs(hashes)


def _drop_files(core: Core, session: Session, file_ids: list[str]) -> set[str]:
    """Forget these files of the session; the hashes they used, for forget_unused_blobs."""
    hashes = set()
    for file_id in file_ids:
        session.file_ids.remove(file_id)
        hashes.add(core.store.records.files.pop(file_id).file_hash)
    return hashes


def stale_version(chapter: Chapter, sent: int) -> ApiError:
    return ApiError(409, "optimistic_lock_exception",
                    f"Chapter {chapter.id} is at version {chapter.version}, not {sent}: "
                    "read it again and start from its current version")


def _publish_time(text: str | None) -> float:
    if text is None:
        return now()
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()
    except ValueError as exc:
        raise ApiError(400, "validation_exception", f"Error validating /chapterDraft/publishAt: {exc}") from exc


def _page(index: int, record: SessionFile) -> Page:
    name = f"x{index}-{record.file_hash}.{_EXTENSIONS[record.mime_type]}"
    return Page(record.original_file_name, record.file_hash, record.file_size, record.mime_type, name)


def _chapter_from(core: Core, session: Session, account: Account, draft: dict, publish_at: float,
                  pages: list[Page]) -> Chapter:
    """The new chapter, or the edited one with its version raised."""
    committed = now()
    needs_approval = core.config.needs_approval(session.manga_id, draft["translatedLanguage"])
    readable_at = committed + core.processing_time(needs_approval)
    fields = {"volume": draft["volume"], "chapter": draft["chapter"], "title": draft["title"],
              "translated_language": draft["translatedLanguage"]}
    chapters = core.store.records.chapters
    if session.chapter_id is None:
        chapter = Chapter(new_id(), session.manga_id, list(session.group_ids), account.user_id, external_url=None,
                          publish_at=publish_at, created_at=committed, updated_at=committed, readable_at=readable_at,
                          hash=new_id().replace("-", ""), pages=pages,
                          awaiting_approval=needs_approval,
                          **fields)
        chapters[chapter.id] = chapter
        return chapter
    chapter = chapters[session.chapter_id]
    if chapter.version != session.chapter_version:
        raise stale_version(chapter, session.chapter_version)
    for name, value in fields.items():
        setattr(chapter, name, value)
    if draft.get("publishAt") is not None:
        chapter.publish_at = publish_at
    chapter.pages, chapter.readable_at, chapter.updated_at = pages, readable_at, committed
    chapter.hash = new_id().replace("-", "")
    chapter.version += 1
    return chapter
