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
(title, dates, languages of the original) are accepted and change nothing. `order[field]=asc|desc`
sorts by createdAt, updatedAt, publishAt, readableAt, volume or chapter (numbers in reading order);
without it the list comes in the order the chapters were created. GET /manga/{id}/feed is the same
list for one manga, up to 500 a page.
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
    return _chapter_collection(core, request.args, None, rules.CHAPTER_LIST_MAX_LIMIT)


def manga_feed(core: Core, request: Request, account: Account | None, manga_id: str) -> Response:
    """GET /manga/{id}/feed: the manga's chapters, with GET /chapter's filters and a larger page."""
    if manga_id not in core.mangas:
        raise not_found(f"Manga {manga_id} does not exist")
    return _chapter_collection(core, request.args, manga_id, rules.FEED_MAX_LIMIT)


ORDER_FIELDS = ("createdAt", "updatedAt", "publishAt", "readableAt", "volume", "chapter")


def _chapter_collection(core: Core, args, manga_id: str | None, max_limit: int) -> Response:
    limit = integer_arg(args, "limit", 10 if manga_id is None else 100, 0, max_limit)
    offset = integer_arg(args, "offset", 0, 0, rules.CHAPTER_LIST_MAX_WINDOW)
    if limit + offset > rules.CHAPTER_LIST_MAX_WINDOW:
        raise _invalid(f"offset + limit may be at most {rules.CHAPTER_LIST_MAX_WINDOW}")
    ids = set(uuid_args(args, "ids[]"))
    groups = set(uuid_args(args, "groups[]"))
    excluded_groups = set(uuid_args(args, "excludedGroups[]"))
    uploaders = set(uuid_args(args, "uploader") + uuid_args(args, "uploader[]"))
    excluded_uploaders = set(uuid_args(args, "excludedUploaders[]"))
    manga = [manga_id] if manga_id else uuid_args(args, "manga")
    numbers = set(args.getlist("chapter") + args.getlist("chapter[]"))
    volumes = set(args.getlist("volume") + args.getlist("volume[]"))
    languages = set(_matching(args, "translatedLanguage[]", rules.QUERY_LANGUAGE_PATTERN))
    ratings = set(args.getlist("contentRating[]") or rules.DEFAULT_CONTENT_RATINGS)
    if ratings - set(rules.CONTENT_RATINGS):
        raise _invalid(f"contentRating[] must be among {', '.join(rules.CONTENT_RATINGS)}")
    future, empty, external, unavailable = (_flag(args, name) for name in (
        "includeFuturePublishAt", "includeEmptyPages", "includeExternalUrl", "includeUnavailable"))
    includes = frozenset(args.getlist("includes[]"))
    order = _order(args)
    moment = now()

    def wanted(chapter: Chapter) -> bool:
        manga_rating = core.mangas[chapter.manga_id].content_rating if chapter.manga_id in core.mangas else "safe"
        return all((
            processed(chapter),
            not ids or chapter.id in ids,
            not manga or chapter.manga_id == manga[0],
            not groups or bool(groups & set(chapter.group_ids)),
            not excluded_groups & set(chapter.group_ids),
            not uploaders or chapter.uploader in uploaders,
            chapter.uploader not in excluded_uploaders,
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
        for field, direction in reversed(order):  # stable sorts, last key first
            found.sort(key=_ORDER_KEYS[field], reverse=direction == "desc")
        page = [chapter_json(core, c, includes) for c in found[offset:offset + limit]]
    return json_response({"result": "ok", "response": "collection", "data": page, "limit": limit, "offset": offset,
                          "total": len(found)})


def _number_key(value: str | None) -> tuple:
    """Volume and chapter numbers in reading order ("2" < "10" < "10a"); none last."""
    match = re.match(r"(\d+(?:\.\d+)?)(.*)", value or "")
    return (1, 0.0, "") if value is None else (0, float(match[1]), match[2]) if match else (0, 0.0, value)


_ORDER_KEYS = {
    "createdAt": lambda c: c.created_at,
    "updatedAt": lambda c: c.updated_at,
    "publishAt": lambda c: c.publish_at,
    "readableAt": lambda c: max(c.publish_at, c.readable_at),
    "volume": lambda c: _number_key(c.volume),
    "chapter": lambda c: _number_key(c.chapter),
}


def _order(args) -> list[tuple[str, str]]:
    """order[field]=asc|desc pairs in the order the query gives them."""
    order = []
    for name, value in args.items(multi=True):
        match = re.fullmatch(r"order\[(\w+)\]", name)
        if not match:
            continue
        if match[1] not in _ORDER_KEYS or value not in ("asc", "desc"):
            raise _invalid(f"{name} must be asc or desc, with a field among {', '.join(ORDER_FIELDS)}")
        order.append((match[1], value))
    return order


def manga_aggregate(core: Core, request: Request, account: Account | None, manga_id: str) -> Response:
    """GET /manga/{id}/aggregate: the listed chapters by volume ("none" for none) and number, the first
    chapter of a number as `id`, the others in `others`; `translatedLanguage[]` and `groups[]` filter."""
    if manga_id not in core.mangas:
        raise not_found(f"Manga {manga_id} does not exist")
    languages = set(_matching(request.args, "translatedLanguage[]", rules.QUERY_LANGUAGE_PATTERN))
    groups = set(uuid_args(request.args, "groups[]"))
    moment = now()
    with core.store.lock:
        chapters = [c for c in core.store.records.chapters.values()
                    if c.manga_id == manga_id and processed(c) and not c.unavailable and c.publish_at <= moment
                    and (not languages or c.translated_language in languages)
                    and (not groups or groups & set(c.group_ids))]
    chapters.sort(key=lambda c: (_number_key(c.volume), _number_key(c.chapter), c.created_at))
    volumes: dict[str, dict] = {}
    for chapter in chapters:
        volume_name, number = chapter.volume or "none", chapter.chapter or "none"
        volume = volumes.setdefault(volume_name, {"volume": volume_name, "count": 0, "chapters": {}})
        volume["count"] += 1
        entry = volume["chapters"].get(number)
        if entry is None:
            volume["chapters"][number] = {"chapter": number, "id": chapter.id, "others": [], "count": 1}
        else:
            entry["others"].append(chapter.id)
            entry["count"] += 1
    return json_response({"result": "ok", "volumes": volumes})


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


def integer_arg(args, name: str, default: int, lowest: int, highest: int) -> int:
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


def uuid_args(args, name: str) -> list[str]:
    return _matching(args, name, rules.UUID_PATTERN)


def _flag(args, name: str) -> str | None:
    value = args.get(name)
    if value not in (None, "0", "1"):
        raise _invalid(f"{name} must be 0 or 1, not {value!r}")
    return value
