"""`mdupload init [FOLDER]`: a manifest written for a folder of releases named by the scanlation convention.

Each folder, .cbz or .zip directly in FOLDER is one chapter, read by the release-name reader
(release_names.py) and listed in MangaDex's number order. The manga is found by its id or
mangadex.org address, else by title (given, or read from the names) through `GET /manga?title=`;
the groups by id, else by the names in the items' group tags through `GET /group?name=`. When
MangaDex answers with several candidates, a person at a terminal picks one; anywhere else the
command stops, listing them, and names the option that settles it. Ids are written with their
title or name as a YAML comment. Reading MangaDex's catalogue needs no sign-in.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from .errors import UsageError
from .identify import Catalogue
from .limits import MAX_GROUPS
from .mangadex.client import Title
from .manifest import load_manifest, mangadex_id
from .release_names import ARCHIVE_SUFFIXES, ReleaseName, UnreadableName, parse_release_name, strip_archive_suffix
from .selection import number_order

MANIFEST_NAME = "manifest.yaml"
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}", re.IGNORECASE)
_LEADING_TAGS = re.compile(r"^\s*(?:\[[^\]]*\]\s*)+")
# Where the series name ends in a release name: " - ", a bracket, or a chapter/volume marker
_SERIES_END = re.compile(r"\s+-\s+|[\[({]|[\s_](?:c|ch|chp|chap|chapter|v|vol|volume|oneshot)[\s._]*\d|[\s_]one[\s_-]?shot",
                         re.IGNORECASE)

Choose = Callable[[str, list[Title]], Title]  # asks a person to pick one of the candidates


@dataclass(frozen=True)
class Release:
    path: Path
    name: ReleaseName


@dataclass(frozen=True)
class InitResult:
    manifest: Path
    manga: Title
    groups: list[Title]
    releases: list[Release]
    unreadable: list[str]  # items whose names gave no chapter: left out, named in the manifest's header


def read_releases(folder: Path) -> tuple[list[Release], list[str]]:
    """The folders and archives in `folder`, in MangaDex's number order; and the names that could not be read."""
    try:
        entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
    except OSError as exc:
        raise UsageError(f"cannot list {folder}: {exc.strerror or exc}.",
                         hint="Pass the folder that holds the releases (folders, .cbz or .zip).") from None
    releases, unreadable = [], []
    for entry in entries:
        if entry.name.startswith(".") or not (entry.is_dir() or Path(entry.name).suffix.lower() in ARCHIVE_SUFFIXES):
            continue
        try:
            releases.append(Release(Path(entry.path), parse_release_name(entry.name)))
        except UnreadableName:
            unreadable.append(entry.name)
    if not releases:
        raise UsageError(f"{folder} holds no release whose name gives a chapter"
                         + (f" ({', '.join(unreadable)} could not be read)" if unreadable else "") + ".",
                         hint="Name each release like `Series Name - c012 [Group]` (a folder, .cbz or .zip), "
                              "then run `mdupload init` again.")
    releases.sort(key=lambda r: (number_order(r.name.chapter), number_order(r.name.volume), r.path.name))
    _refuse_duplicates(releases)
    return releases, unreadable


def _refuse_duplicates(releases: list[Release]) -> None:
    seen: dict[tuple, str] = {}
    for release in releases:
        key = (release.name.chapter, release.name.volume if release.name.chapter is None else None,
               release.name.language)
        if key in seen:
            what = "the oneshot" if release.name.chapter is None else f"chapter {release.name.chapter}"
            raise UsageError(f"{seen[key]} and {release.path.name} are both {what}.",
                             hint="Keep one of them in the folder (a corrected release replaces the first), "
                                  "then run `mdupload init` again.")
        seen[key] = release.path.name


def series_title(releases: Sequence[Release]) -> str | None:
    """The series name most of the release names start with: `[Group] Series Name - c012 (...)` -> `Series Name`."""
    written = []
    for release in releases:
        stem = _LEADING_TAGS.sub("", strip_archive_suffix(release.path.name))
        title = " ".join(_SERIES_END.split(stem, maxsplit=1)[0].replace("_", " ").split())
        if title:
            written.append(title)
    if not written:
        return None
    common = Counter(title.casefold() for title in written).most_common(1)[0][0]
    return next(title for title in written if title.casefold() == common)


def find_manga(catalogue: Catalogue, *, manga: str | None, title: str | None, choose: Choose | None) -> Title:
    """The manga by id or address (`--manga`), else by title (`--title`, else read from the names)."""
    if manga is not None:
        manga_id = mangadex_id(manga)
        if not _UUID.fullmatch(manga_id):
            raise UsageError(f"--manga {manga!r} is not a MangaDex id or mangadex.org/title/ address.",
                             hint="Copy it from the manga's page, e.g. https://mangadex.org/title/<id>, or search "
                                  "by title with --title.")
        found = catalogue.manga(manga_id)
        if found is None:
            raise UsageError(f"MangaDex has no manga {manga_id}.", hint="Check the id given with --manga.")
        return found
    if title is None:
        raise UsageError("no series title could be read from the release names.",
                         hint="Give it with --title \"Series Name\", or the manga with --manga ID|URL.")
    candidates = catalogue.client.search_manga(title)
    return _one(candidates, title, kind="manga", option="--manga ID|URL", choose=choose)


def find_groups(catalogue: Catalogue, names: Sequence[str], *, choose: Choose | None) -> list[Title]:
    """Each group name as MangaDex knows it (`GET /group?name=`)."""
    return [_one(catalogue.client.search_groups(name), name, kind="group", option="--group ID", choose=choose)
            for name in names]


def _one(candidates: list[Title], wanted: str, *, kind: str, option: str, choose: Choose | None) -> Title:
    exact = [c for c in candidates if c.name.casefold() == wanted.casefold()]
    if len(candidates) == 1 or len(exact) == 1:
        return (exact or candidates)[0]
    if not candidates:
        raise UsageError(f"MangaDex knows no {kind} named {wanted!r}.",
                         hint=f"Give it with {option}" + (" or another --title" if kind == "manga" else "") + ".")
    if choose is not None:
        return choose(f"MangaDex knows several {kind}s named like {wanted!r}:", candidates)
    listed = "; ".join(f"{c.name} ({c.id})" for c in candidates)
    raise UsageError(f"MangaDex knows several {kind}s named like {wanted!r}: {listed}.",
                     hint=f"Pick one with {option} (here nobody can be asked: not a terminal).")


def group_names(releases: Sequence[Release]) -> list[str]:
    """The group names of every release's group tag, in the order first seen."""
    return list(dict.fromkeys(name for release in releases for name in release.name.groups))


def write_manifest(target: Path, *, manga: Title, groups: Sequence[Title], releases: Sequence[Release],
                   by_name: dict[str, Title], language: str, unreadable: Sequence[str], force: bool) -> None:
    """The manifest text, written only where no file is (or with `force`); it must load as a manifest."""
    _refuse_overwrite(target, force)
    lines = [f"# Written by `mdupload init` on {datetime.now(UTC):%Y-%m-%d %H:%M} UTC from the release names in "
             f"{_quoted(str(target.parent))}.",
             "# Check it with `mdupload validate`; the format is in manifests/README.md."]
    if unreadable:
        lines.append("# Left out (no chapter in the name): " + ", ".join(unreadable))
    lines += [f"manga: {manga.id}  # {_comment(manga.name)}"]
    lines += _groups_lines("groups", groups, "")
    lines += [f"language: {language}", "chapters:"]
    default = [g.id for g in groups]
    for release in releases:
        name = release.name
        lines.append(f"  - chapter: {_quoted(name.chapter) if name.chapter is not None else 'null'}")
        if name.volume is not None:
            lines.append(f"    volume: {_quoted(name.volume)}")
        if name.title:
            lines.append(f"    title: {_quoted(name.title)}")
        if name.language and name.language != language:
            lines.append(f"    language: {name.language}")
        own = [by_name[g] for g in name.groups if g in by_name]
        if own and [g.id for g in own] != default:
            lines += _groups_lines("groups", own, "    ")
        lines.append(f"    pages: {_quoted(os.path.relpath(release.path, target.parent))}")
    text = "\n".join(lines) + "\n"
    temporary = target.with_name(f".{target.name}.init-tmp")
    try:
        temporary.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {target}: {exc.strerror or exc}.",
                         hint="Choose a folder that exists and that you may write in with --output.") from None
    try:
        load_manifest(temporary)  # never leave a manifest that `validate` would refuse
    except Exception:
        temporary.unlink()
        raise
    os.replace(temporary, target)


def _refuse_overwrite(target: Path, force: bool) -> None:
    if os.path.lexists(target) and not force:
        raise UsageError(f"{target} already exists; it was left as it is.",
                         hint="Pass --force to replace it, or --output to write another file.")


def _groups_lines(key: str, groups: Sequence[Title], indent: str) -> list[str]:
    if not groups:
        return [f"{indent}{key}: []  # no group credited"]
    return [f"{indent}{key}:"] + [f"{indent}  - {g.id}  # {_comment(g.name)}" for g in groups]


def _quoted(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)  # a JSON string is a YAML double-quoted scalar


def _comment(text: str) -> str:
    return " ".join(text.split())


def init_manifest(folder: Path, catalogue: Catalogue, *, output: Path | None = None, manga: str | None = None,
                  title: str | None = None, group_ids: Sequence[str] = (), language: str | None = None,
                  force: bool = False, choose: Choose | None = None) -> InitResult:
    """Read the releases in `folder`, find the manga and groups on MangaDex, write the manifest."""
    folder = Path(folder)
    if not folder.is_dir():
        raise UsageError(f"{folder} is not a folder.", hint="Pass the folder that holds the releases.")
    target = Path(output) if output is not None else folder / MANIFEST_NAME
    _refuse_overwrite(target, force)  # before asking MangaDex anything
    releases, unreadable = read_releases(folder)
    found_manga = find_manga(catalogue, manga=manga, title=title or series_title(releases), choose=choose)
    by_name: dict[str, Title] = {}
    if group_ids:
        groups = []
        for group_id in group_ids:
            group = catalogue.group(mangadex_id(group_id))
            if group is None:
                raise UsageError(f"MangaDex has no group {group_id}.", hint="Check the id given with --group.")
            groups.append(group)
    else:
        names = group_names(releases)
        by_name = dict(zip(names, find_groups(catalogue, names, choose=choose), strict=True))
        counts = Counter(tuple(r.name.groups) for r in releases if r.name.groups)
        most = counts.most_common(1)[0][0] if counts else ()
        groups = list(dict.fromkeys(by_name[name] for name in most))
    if len(groups) > MAX_GROUPS:
        raise UsageError(f"{len(groups)} groups were found; MangaDex credits at most {MAX_GROUPS}.",
                         hint="Name the groups with --group ID (repeatable).")
    languages = Counter(r.name.language or "en" for r in releases)
    write_manifest(target, manga=found_manga, groups=groups, releases=releases, by_name=by_name,
                   language=language or languages.most_common(1)[0][0], unreadable=unreadable, force=force)
    return InitResult(target, found_manga, groups, releases, unreadable)
