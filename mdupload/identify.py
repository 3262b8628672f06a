"""Which manga and groups a manifest's ids are: asked of MangaDex before anything is uploaded.

`validate` (unless --offline) and `upload` ask MangaDex for the manga and every group the manifest
names (public endpoints: no sign-in), once each per run, and show their title and names. An id
MangaDex does not know is a ManifestError at the manifest line where it is written (the `manga:`
line, or the `groups:` item), so a wrong id is found before a session is begun, not at commit.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from .errors import ManifestError, MdUploadError
from .mangadex.client import MangaDexClient, Title
from .mangadex.errors import ApiError
from .manifest import Manifest, load_mapping


class Catalogue:
    """The names of mangas and groups, asked of MangaDex once per id for the life of the object."""

    def __init__(self, client: MangaDexClient):
        self.client = client
        self._mangas: dict[str, Title | None] = {}
        self._groups: dict[str, Title | None] = {}

    def manga(self, manga_id: str) -> Title | None:
        if manga_id not in self._mangas:
            self._mangas[manga_id] = self.client.get_manga(manga_id)
        return self._mangas[manga_id]

    def group(self, group_id: str) -> Title | None:
        if group_id not in self._groups:
            self._groups[group_id] = self.client.get_group(group_id)
        return self._groups[group_id]


@dataclass(frozen=True)
class Identified:
    manga: Title
    groups: dict[str, Title] = field(default_factory=dict)  # id -> group, in the order first written

    def lines(self) -> list[str]:
        said = [f"manga {self.manga.id}: {self.manga.name}"]
        return said + [f"group {group.id}: {group.name}" for group in self.groups.values()]

    def to_json(self) -> dict:
        return {"manga": {"id": self.manga.id, "title": self.manga.name},
                "groups": [{"id": g.id, "name": g.name} for g in self.groups.values()]}


def identify(manifest: Manifest, catalogue: Catalogue, *, unreachable_hint: str) -> Identified:
    """The manifest's manga and groups as MangaDex names them.

    An id MangaDex does not know: a ManifestError at the line where it is first written (the others
    unknown are named in the same message). MangaDex not answering: an MdUploadError with
    `unreachable_hint`, which names what the running command can do about it.
    """
    group_ids = list(dict.fromkeys(g for spec in manifest.chapters for g in spec.groups))
    try:
        manga = catalogue.manga(manifest.manga)
        groups = {group_id: catalogue.group(group_id) for group_id in group_ids}
    except ApiError as exc:
        raise MdUploadError(f"could not ask MangaDex which manga and groups {manifest.path} names: {exc}",
                            hint=unreachable_hint) from None
    unknown = ([("manga", manifest.manga)] if manga is None else []) + \
        [("group", group_id) for group_id, group in groups.items() if group is None]
    if unknown:
        raise _unknown_error(manifest, unknown)
    return Identified(manga, {group_id: group for group_id, group in groups.items() if group is not None})


def _unknown_error(manifest: Manifest, unknown: list[tuple[str, str]]) -> ManifestError:
    where = _id_lines(manifest)
    unknown.sort(key=lambda item: where(*item) or 0)
    (kind, first), others = unknown[0], unknown[1:]
    message = f"MangaDex has no {kind} {first}."
    if others:
        message += " Nor " + ", ".join(f"{k} {i} (line {where(k, i)})" for k, i in others) + "."
    url = "mangadex.org/title/<id>" if kind == "manga" else "mangadex.org/group/<id>"
    return ManifestError(message, path=manifest.path, line=where(kind, first),
                         hint=f"Check the id: copy it from the {kind}'s page ({url}); for a dev or sandbox API, "
                              "the id must exist there.")


def _id_lines(manifest: Manifest) -> Callable[[str, str], int | None]:
    """Where each id is first written in the manifest file (None when the file cannot be read again)."""
    try:
        data, line = load_mapping(manifest.path, "manifest", "")
    except ManifestError:
        return lambda kind, ident: None
    places: dict[tuple[str, str], int] = {("manga", manifest.manga): line(("manga",))}
    written = [(("groups", i), g) for i, g in enumerate(data.get("groups") or [])]
    for k, chapter in enumerate(data.get("chapters") or []):
        written += [(("chapters", k, "groups", j), g) for j, g in enumerate(chapter.get("groups") or [])]
    for path, group in sorted(written, key=lambda item: line(item[0])):
        places.setdefault(("group", str(group).lower()), line(path))
    return lambda kind, ident: places.get((kind, ident))
