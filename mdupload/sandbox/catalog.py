"""Reading chapters: GET /chapter, GET /chapter/{id}, GET /at-home/server/{id}, and GET /auth/check.

A committed chapter is processed `processing_delay` seconds after its commit (and, when its
manga and language need approval, never during the sandbox's life). Until then it stays out of
GET /chapter, counts 0 readable pages, and MangaDex@Home answers for it with empty page lists.

GET /chapter filters as the live service does: `includeFuturePublishAt`, `includeEmptyPages` and
`includeExternalUrl` are filters, not widenings (`1` keeps only the chapters for which it is
true, `0` only those for which it is false; without it, chapters scheduled for later are left
out and the other two do not filter); `includeUnavailable=1` adds unavailable chapters; the
content ratings default to safe, suggestive and erotica; `groups[]` keeps chapters with any of
the groups; chapter and volume numbers compare as strings. The other documented parameters
(title, dates, languages of the original, exclusions, order) are accepted and change nothing: the
list comes in the order the chapters were created.
"""

from __future__ import annotations

import re
import secrets

from werkzeug.wrappers import Request, Response

from . import rules
from .config import Account
from .core import ApiError, Core, entity, iso, json_response, not_found, now
from .store import Chapter


def chapter_json(core: Core, chapter: Chapter, includes: frozenset[str] = frozenset()) -> dict:
    account = next((a for a in core.accounts.values() if a.user_id == chapter.uploader), None)
    related = [("scanlation_group", g) for g in chapter.group_ids]
    related += [("manga", chapter.manga_id), ("user", chapter.uploader)]
    relationships = []
    for kind, ident in related:
        entry = {"id": ident, "type": kind}
        if kind in includes:
            entry["attributes"] = _expanded(core, kind, ident, account)
        relationships.append(entry)
    return {
        "id": chapter.id,
        "type": "chapter",
        "attributes": {
            "volume": chapter.volume, "chapter": chapter.chapter, "title": chapter.title,
            "translatedLanguage": chapter.translated_language, "externalUrl": chapter.external_url,
            "isUnavailable": chapter.unavailable, "publishAt": iso(chapter.publish_at),
            "readableAt": iso(max(chapter.publish_at, chapter.readable_at)), "createdAt": iso(chapter.created_at),
            "updatedAt": iso(chapter.updated_at), "pages": len(chapter.pages) if processed(chapter) else 0,
            "version": chapter.version,
        },
        "relationships": relationships,
    }


def processed(chapter: Chapter) -> bool:
    """Processed (and approved when it needed approval): listed, and its pages served."""
    return now() >= chapter.readable_at


def list_chapters(core: Core, request: Request, account: Account | None) -> Response:
    """GET /chapter."""
    args = request.args
    limit = _integer(args, "limit", 10, 0, rules.CHAPTER_LIST_MAX_LIMIT)
    offset = _integer(args, "offset", 0, 0, rules.CHAPTER_LIST_MAX_WINDOW)
    if limit + offset > rules.CHAPTER_LIST_MAX_WINDOW:
        raise _invalid(f"offset + limit may be at most {rules.CHAPTER_LIST_MAX_WINDOW}")
    ids = set(_uuids(args, "ids[]"))
    groups = set(_uuids(args, "groups[]"))
    uploaders = set(_uuids(args, "uploader") + _uuids(args, "uploader[]"))
    manga = _uuids(args, "manga")
    numbers = set(args.getlist("chapter") + args.getlist("chapter[]"))
    volumes = set(args.getlist("volume") + args.getlist("volume[]"))
    languages = set(_matching(args, "translatedLanguage[]", rules.QUERY_LANGUAGE_PATTERN))
    ratings = set(args.getlist("contentRating[]") or rules.DEFAULT_CONTENT_RATINGS)
    if ratings - set(rules.CONTENT_RATINGS):
        raise _invalid(f"contentRating[] must be among {', '.join(rules.CONTENT_RATINGS)}")
    future, empty, external, unavailable = (_flag(args, name) for name in (
        "includeFuturePublishAt", "includeEmptyPages", "includeExternalUrl", "includeUnavailable"))
    includes = frozenset(args.getlist("includes[]"))
    moment = now()

    def wanted(chapter: Chapter) -> bool:
        manga_rating = core.mangas[chapter.manga_id].content_rating if chapter.manga_id in core.mangas else "safe"
        return all((
            processed(chapter),
            not ids or chapter.id in ids,
            not manga or chapter.manga_id == manga[0],
            not groups or bool(groups & set(chapter.group_ids)),
            not uploaders or chapter.uploader in uploaders,
            not numbers or chapter.chapter in numbers,
            not volumes or chapter.volume in volumes,
            not languages or chapter.translated_language in languages,
            manga_rating in ratings,
            (chapter.publish_at > moment) == (future == "1"),
            empty is None or (not chapter.pages) == (empty == "1"),
            external is None or (chapter.external_url is not None) == (external == "1"),
            unavailable == "1" or not chapter.unavailable,
        ))

    with core.store.lock:
        found = sorted((c for c in core.store.records.chapters.values() if wanted(c)), key=lambda c: (c.created_at, c.id))
        page = [chapter_json(core, c, includes) for c in found[offset:offset + limit]]
    return json_response({"result": "ok", "response": "collection", "data": page, "limit": limit, "offset": offset,
                          "total": len(found)})


def get_chapter(core: Core, request: Request, account: Account | None, chapter_id: str) -> Response:
    """GET /chapter/{id}: any chapter, processed or not."""
    with core.store.lock:
        chapter = core.store.records.chapters.get(chapter_id)
        if chapter is None:
            raise not_found(f"Chapter {chapter_id} does not exist")
        return json_response(entity(chapter_json(core, chapter, frozenset(request.args.getlist("includes[]")))))


def athome_server(core: Core, request: Request, account: Account | None, chapter_id: str) -> Response:
    """GET /at-home/server/{chapterId}: a base URL on the sandbox's image host, valid `athome_url_ttl` seconds."""
    with core.store.lock:
        chapter = core.store.records.chapters.get(chapter_id)
        if chapter is None:
            raise not_found(f"Chapter {chapter_id} does not exist")
        issued = now()
        for stale in [t for t, base in core.athome_bases.items() if issued - base[2] > core.config.athome_url_ttl]:
            del core.athome_bases[stale]
        token = secrets.token_urlsafe(24)
        core.athome_bases[token] = (chapter.id, chapter.hash, issued)
        pages = chapter.pages if processed(chapter) else []
        base = (core.config.athome_base_url or core.athome_url).rstrip("/")
        return json_response({"result": "ok", "baseUrl": f"{base}/{token}",
                              "chapter": {"hash": chapter.hash, "data": [page.name for page in pages],
                                          "dataSaver": [page.saver_name for page in pages]}})


def auth_check(core: Core, request: Request, account: Account | None) -> Response:
    """GET /auth/check."""
    if account is None:
        return json_response({"result": "ok", "isAuthenticated": False, "roles": ["ROLE_GUEST"], "permissions": []})
    return json_response({"result": "ok", "isAuthenticated": True, "roles": ["ROLE_MEMBER", "ROLE_USER"],
                          "permissions": ["chapter.list", "chapter.view", "chapter.upload", "chapter.edit",
                                          "upload.create", "upload.edit", "upload.delete"]})


def _expanded(core: Core, kind: str, ident: str, uploader: Account | None) -> dict:
    if kind == "manga" and ident in core.mangas:
        manga = core.mangas[ident]
        return {"title": {"en": manga.title}, "contentRating": manga.content_rating}
    if kind == "scanlation_group" and ident in core.groups:
        return {"name": core.groups[ident].name}
    if kind == "user" and uploader is not None:
        return {"username": uploader.username, "roles": ["ROLE_MEMBER"]}
    return {}


def _invalid(detail: str) -> ApiError:
    return ApiError(400, "validation_exception", detail)


def _integer(args, name: str, default: int, lowest: int, highest: int) -> int:
    text = args.get(name)
    if text is None:
        return default
    if not re.fullmatch(r"\d+", text) or not lowest <= int(text) <= highest:
        raise _invalid(f"{name} must be a whole number from {lowest} to {highest}, not {text!r}")
    return int(text)


def _matching(args, name: str, pattern: str) -> list[str]:
    values = args.getlist(name)
    for value in values:
        if not re.fullmatch(pattern, value):
            raise _invalid(f"{name} value {value!r} does not match {pattern}")
    return values


def _uuids(args, name: str) -> list[str]:
    return _matching(args, name, rules.UUID_PATTERN)


def _flag(args, name: str) -> str | None:
    value = args.get(name)
    if value not in (None, "0", "1"):
        raise _invalid(f"{name} must be 0 or 1, not {value!r}")
    return value
