"""Changing a published chapter: PUT /chapter/{id} (with its `version`) and DELETE /chapter/{id}.

Only the chapter's uploader may change it (MangaDex also lets members of its groups; the sandbox has
no group membership). A stale `version` is refused with 409 `optimistic_lock_exception`, as an edit
session is. A deleted chapter is gone from every endpoint, its pages from MangaDex@Home.
"""

from __future__ import annotations

from werkzeug.wrappers import Request, Response

from . import rules
from .bodies import json_body
from .catalog import chapter_json
from .config import Account
from .core import ApiError, Core, entity, json_response, not_found, now
from .store import Chapter
from .uploads import stale_version


def update_chapter(core: Core, request: Request, account: Account, chapter_id: str) -> Response:
    """PUT /chapter/{id} {"version", and any of "volume", "chapter", "title", "translatedLanguage", "groups"}."""
    body = json_body(request, rules.CHAPTER_EDIT)
    for group in body.get("groups", []):
        if group not in core.groups:
            raise not_found(f"Scanlation group {group} does not exist")
    with core.store.lock:
        chapter = _own_chapter(core, account, chapter_id)
        if body["version"] != chapter.version:
            raise stale_version(chapter, body["version"])
        for key, attribute in (("volume", "volume"), ("chapter", "chapter"), ("title", "title"),
                               ("translatedLanguage", "translated_language")):
            if key in body:
                setattr(chapter, attribute, body[key])
        if "groups" in body:
            chapter.group_ids = list(dict.fromkeys(body["groups"]))
        chapter.version += 1
        chapter.updated_at = now()
        core.store.save()
        return json_response(entity(chapter_json(core, chapter)))


def delete_chapter(core: Core, request: Request, account: Account, chapter_id: str) -> Response:
    """DELETE /chapter/{id}."""
    with core.store.lock:
        chapter = _own_chapter(core, account, chapter_id)
        del core.store.records.chapters[chapter.id]
        core.store.save()
        core.store.forget_unused_blobs({page.file_hash for page in chapter.pages})
    return json_response({"result": "ok"})


def _own_chapter(core: Core, account: Account, chapter_id: str) -> Chapter:
    chapter = core.store.records.chapters.get(chapter_id)
    if chapter is None:
        raise not_found(f"Chapter {chapter_id} does not exist")
    if chapter.uploader != account.user_id:
        raise ApiError(403, "forbidden_http_exception", "Only the chapter's uploader may change or delete it")
    return chapter
