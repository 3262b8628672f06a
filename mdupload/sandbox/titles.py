"""The catalogue a group rehearses with: GET /manga/{id}, GET /manga (title search), GET /group/{id},
GET /group (name search), GET /user/me, in the spec's shapes (Manga, ScanlationGroup, User entities
and their collections).

The mangas and groups are the configured ones (the defaults, which hold the ids of MangaDex's own
documentation, plus those of `--catalog FILE`). Attributes the sandbox knows nothing about carry the
spec's neutral values (empty maps and lists, null).
"""

from __future__ import annotations

from werkzeug.wrappers import Request, Response

from . import rules
from .catalog import integer_arg, processed, uuid_args
from .config import Account, Group, Manga
from .core import ApiError, Core, entity, iso, json_response, not_found

# The sandbox's catalogue is older than any session: one fixed creation time for every entry.
_CREATED = iso(1_500_000_000)


def get_manga(core: Core, request: Request, account: Account | None, manga_id: str) -> Response:
    """GET /manga/{id}."""
    manga = core.mangas.get(manga_id)
    if manga is None:
        raise not_found(f"Manga {manga_id} does not exist")
    return json_response(entity(manga_json(core, manga)))


def search_manga(core: Core, request: Request, account: Account | None) -> Response:
    """GET /manga: `title` (any part, any case), `ids[]`, `contentRating[]` (safe, suggestive and erotica
    by default), `group` (mangas the group has chapters of); `limit`/`offset`."""
    args = request.args
    title = (args.get("title") or "").casefold()
    ids = set(uuid_args(args, "ids[]"))
    ratings = set(args.getlist("contentRating[]") or rules.DEFAULT_CONTENT_RATINGS)
    group = uuid_args(args, "group")
    with core.store.lock:
        with_group = {c.manga_id for c in core.store.records.chapters.values() if group and group[0] in c.group_ids}
    found = [m for m in core.mangas.values()
             if title in m.title.casefold() and (not ids or m.id in ids) and m.content_rating in ratings
             and (not group or m.id in with_group)]
    return _collection(args, [manga_json(core, m) for m in found])


def get_group(core: Core, request: Request, account: Account | None, group_id: str) -> Response:
    """GET /group/{id}."""
    group = core.groups.get(group_id)
    if group is None:
        raise not_found(f"Scanlation group {group_id} does not exist")
    return json_response(entity(group_json(group)))


def search_group(core: Core, request: Request, account: Account | None) -> Response:
    """GET /group: `name` (any part, any case), `ids[]`; `limit`/`offset`."""
    args = request.args
    name = (args.get("name") or "").casefold()
    ids = set(uuid_args(args, "ids[]"))
    found = [g for g in core.groups.values() if name in g.name.casefold() and (not ids or g.id in ids)]
    return _collection(args, [group_json(g) for g in found])


def user_me(core: Core, request: Request, account: Account) -> Response:
    """GET /user/me: the signed-in account."""
    return json_response(entity({"id": account.user_id, "type": "user", "attributes": {
        "username": account.username, "roles": ["ROLE_MEMBER", "ROLE_USER"], "version": 1}, "relationships": []}))


def manga_json(core: Core, manga: Manga) -> dict:
    with core.store.lock:
        chapters = [c for c in core.store.records.chapters.values() if c.manga_id == manga.id and processed(c)]
    latest = max(chapters, key=lambda c: c.created_at, default=None)
    return {"id": manga.id, "type": "manga", "attributes": {
        "title": {"en": manga.title}, "altTitles": [], "description": {}, "isLocked": False, "links": {},
        "originalLanguage": manga.original_language, "lastVolume": None, "lastChapter": None,
        "publicationDemographic": None, "status": "ongoing", "year": None, "contentRating": manga.content_rating,
        "chapterNumbersResetOnNewVolume": False,
        "availableTranslatedLanguages": sorted({c.translated_language for c in chapters}),
        "latestUploadedChapter": latest.id if latest else None, "tags": [], "state": "published", "version": 1,
        "createdAt": _CREATED, "updatedAt": _CREATED}, "relationships": []}


def group_json(group: Group) -> dict:
    return {"id": group.id, "type": "scanlation_group", "attributes": {
        "name": group.name, "altNames": [], "website": None, "ircServer": None, "ircChannel": None, "discord": None,
        "contactEmail": None, "description": None, "twitter": None, "mangaUpdates": None, "focusedLanguage": [],
        "locked": False, "official": False, "verified": False, "inactive": False, "exLicensed": False,
        "publishDelay": None, "version": 1, "createdAt": _CREATED, "updatedAt": _CREATED}, "relationships": []}


def _collection(args, items: list[dict]) -> Response:
    limit = integer_arg(args, "limit", 10, 0, rules.SEARCH_MAX_LIMIT)
    offset = integer_arg(args, "offset", 0, 0, rules.CHAPTER_LIST_MAX_WINDOW)
    if limit + offset > rules.CHAPTER_LIST_MAX_WINDOW:
        raise ApiError(400, "validation_exception", f"offset + limit may be at most {rules.CHAPTER_LIST_MAX_WINDOW}")
    return json_response({"result": "ok", "response": "collection", "data": items[offset:offset + limit],
                          "limit": limit, "offset": offset, "total": len(items)})
