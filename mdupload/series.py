"""SERIES.yaml: one series that `mdupload watch` publishes from an inbox.

A series file is a manifest without `chapters`: the manga, groups, language and chapter defaults,
plus `match` (which dropped items belong to it) and `pattern` (how to read their names). Each item
(a folder, .zip or .cbz) becomes a one-chapter Manifest whose chapter, volume, title and language
come from the item's name (`Series.manifest_for`). The file is read and validated by manifest.py's
machinery (schema/series.schema.json), so its errors name the file and the line the same way.

`groups_by_name` maps the group names found in items (`[Group A & Group B]`) to ids; an item naming
none keeps the series' `groups`. `publish_at_from_name` takes the publish date from a bracketed date
in the item's name (`[2026-12-24 18.00]`), in the time zone it names.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .errors import ManifestError, UsageError
from .limits import (
    CHAPTER_MAX_LENGTH,
    CHAPTER_PATTERN,
    LANGUAGE_PATTERN,
    MAX_GROUPS,
    TITLE_MAX_LENGTH,
)
from .manifest import ChapterSpec, Manifest, in_utc_and_local, load_mapping, mangadex_id
from .release_names import DATE, ReleaseName, UnreadableName, parse_release_name

PATTERN_GROUPS = ("chapter", "volume", "title", "language")
SERIES_SUFFIXES = (".yaml", ".yml")
_START = ("Start from manifests/example-series.yaml: manga, groups, language, and `match` when several series "
          "share the inbox.")


@dataclass(frozen=True)
class Series:
    path: Path
    manga: str
    groups: tuple[str, ...]
    language: str
    terms_accepted: bool
    fix: bool
    volume: str | None  # the volume of items whose name carries none
    pattern: re.Pattern | None  # None: the common scanlation naming (release_names.py)
    match: tuple[str, ...]  # texts as written; () = every item
    # group name as matched (`group_key`) -> id, or None for a name that is no group; {} = names not read
    groups_by_name: dict[str, str | None] = field(default_factory=dict, hash=False)
    publish_zone: tzinfo | None = None  # set: a date in the item's name is its publish date, in this zone
    replace: bool = False  # an item for a published chapter that changed corrects it in place

    def matches(self, name: str) -> bool:
        """Whether an item's name contains one of the `match` texts (letter case, `_`, `.` and spacing aside)."""
        return not self.match or any(_folded(text) in _folded(name) for text in self.match)

    def manifest_for(self, item: Path) -> Manifest:
        """The one-chapter manifest of a dropped item; a name that gives no valid chapter is a ManifestError."""
        item = Path(item)
        try:
            release = parse_release_name(item.name, self.pattern)
        except UnreadableName as exc:
            raise ManifestError(f"cannot read the chapter from its name: {exc}.", path=item,
                                hint=self._rename_hint()) from None
        if self.pattern is not None and release.chapter is None and release.volume is None:
            raise ManifestError(f"the `pattern` of {self.path} matched but read no chapter or volume.", path=item,
                                hint=self._rename_hint())
        warnings: list[str] = []
        spec = ChapterSpec(chapter=release.chapter, volume=release.volume or self.volume, title=release.title,
                           language=release.language or self.language, groups=self._groups_of(release, item),
                           pages=item, publish_at=self._publish_at(release, item, warnings), fix=self.fix, line=1,
                           replace=self.replace)
        self._check(spec, item)
        return Manifest(path=self.path, manga=self.manga, groups=self.groups, language=self.language,
                        terms_accepted=self.terms_accepted, chapters=(spec,), warnings=tuple(warnings))

    def _groups_of(self, release: ReleaseName, item: Path) -> tuple[str, ...]:
        """The ids of the groups the name credits, through `groups_by_name`; the series' `groups` by default."""
        if not self.groups_by_name:
            return self.groups
        ids = []
        for name in release.groups:
            if group_key(name) not in self.groups_by_name:
                raise ManifestError(
                    f"the name credits the group {name!r}, which `groups_by_name` in {self.path} does not list.",
                    path=item, hint=f"Add the line `  {name}: <its id or mangadex.org/group/... address>` under "
                                    f"`groups_by_name:` (or `  {name}:` with nothing after it if it is no group), "
                                    "then put the item back in the inbox.")
            if self.groups_by_name[group_key(name)]:
                ids.append(self.groups_by_name[group_key(name)])
        ids = list(dict.fromkeys(ids))
        if len(ids) > MAX_GROUPS:
            raise ManifestError(f"the name credits {len(ids)} groups; MangaDex credits at most {MAX_GROUPS}.",
                                path=item, hint=f"Rename the item with at most {MAX_GROUPS} groups.")
        return tuple(ids) or self.groups

    def _publish_at(self, release: ReleaseName, item: Path, warnings: list[str]) -> datetime | None:
        """The date in the name, when the series takes it (`publish_at_from_name`) and the name has one."""
        if self.publish_zone is None or release.date is None:
            return None
        parts = DATE.fullmatch(release.date)
        hint = ("Write it as [YYYY-MM-DD HH.MM], e.g. [2026-12-24 18.00], in the zone `publish_at_from_name` of "
                f"{self.path} names; rename the item, then put it back in the inbox.")
        if parts.group(4) is None:
            raise ManifestError(f"the name gives the date {release.date} without a time of day.", path=item,
                                hint=hint)
        try:
            moment = datetime(*map(int, parts.groups()), tzinfo=self.publish_zone).astimezone(UTC)
        except ValueError:
            raise ManifestError(f"the name gives {release.date!r}, which is not a date and time.", path=item,
                                hint=hint) from None
        if moment <= datetime.now(UTC):
            warnings.append(f"{item}: the date in the name, {in_utc_and_local(moment)}, is in the past: MangaDex "
                            "publishes the chapter as soon as it is processed.")
        return moment

    def _check(self, spec: ChapterSpec, item: Path) -> None:
        for key, value in (("chapter", spec.chapter), ("volume", spec.volume)):
            if value is not None and not (len(value) <= CHAPTER_MAX_LENGTH and re.match(CHAPTER_PATTERN, value)):
                raise ManifestError(f"the name gives {key} {value!r}, which is not a number MangaDex accepts.",
                                    path=item, hint=f'MangaDex numbers look like "1", "12.5" or "10a" (at most '
                                                    f"{CHAPTER_MAX_LENGTH} characters). {self._rename_hint()}")
        if not re.match(LANGUAGE_PATTERN, spec.language):
            raise ManifestError(f"the name gives the language {spec.language!r}, which is not a MangaDex language "
                                "code.", path=item, hint="Codes are two lowercase letters, optionally a region: "
                                                         f"en, pt-br, es-la. {self._rename_hint()}")
        if spec.title is not None and len(spec.title) > TITLE_MAX_LENGTH:
            raise ManifestError(f"the title read from the name is {len(spec.title)} characters long; MangaDex allows "
                                f"at most {TITLE_MAX_LENGTH}.", path=item, hint=self._rename_hint())

    def _rename_hint(self) -> str:
        if self.pattern is not None:
            return f"Rename the item to fit the `pattern` of {self.path}, or change the pattern."
        return (f"Rename it like `Series Name [es-la] - c012.5 (v03) (The Title) [Group]`, or give {self.path} "
                "a `pattern:` (see manifests/SERIES.md).")


def _folded(text: str) -> str:
    return " ".join(re.sub(r"[_.]", " ", text).casefold().split())


def load_series(path) -> Series:
    """Read and validate one SERIES.yaml; every problem is a ManifestError naming the file and the line."""
    path = Path(path)
    data, line = load_mapping(path, "series", _START)
    match = data.get("match", [])
    match = tuple([match] if isinstance(match, str) else match)
    if "match" in data and not match:
        raise ManifestError("`match` is an empty list.", path=path, line=line(("match",)),
                            hint="List the texts found in the names of this series' items, or leave `match` out.")
    for index, text in enumerate(match):
        if not _folded(text):
            raise ManifestError("`match` is empty: it would take every item.", path=path, line=line(("match", index)),
                                hint="Write a text found in the names of this series' items, e.g. the series name.")
    groups = tuple(dict.fromkeys(mangadex_id(group) for group in data["groups"]))  # one group written twice
    zone = data.get("publish_at_from_name")
    return Series(path=path, manga=mangadex_id(data["manga"]), groups=groups,
                  language=data["language"], terms_accepted=data.get("terms_accepted", False),
                  fix=data.get("fix", False), volume=data.get("volume"),
                  pattern=_pattern(data["pattern"], path, line(("pattern",))) if "pattern" in data else None,
                  match=match, groups_by_name=_groups_by_name(data.get("groups_by_name", {}), path, line),
                  publish_zone=None if zone is None else _zone(zone, path, line(("publish_at_from_name",))),
                  replace=data.get("replace", False))


def group_key(name: str) -> str:
    """How group names are compared: letter case, spaces and underscores aside (`Group A` = `group_a`)."""
    return re.sub(r"[\s_]+", "", name.casefold())


def _groups_by_name(names: dict, path: Path, line) -> dict[str, str | None]:
    found: dict[str, str | None] = {}
    written: dict[str, str] = {}
    for name, group in names.items():
        key = group_key(name)
        if not key:
            raise ManifestError("`groups_by_name` has an empty group name.", path=path,
                                line=line(("groups_by_name", name)), hint="Write the name as items carry it.")
        if key in found:
            raise ManifestError(f"`groups_by_name` lists {written[key]!r} and {name!r}, which are the same name "
                                "once letter case and spaces are set aside.", path=path,
                                line=line(("groups_by_name", name)), hint="Keep one of them.")
        found[key], written[key] = (mangadex_id(group) if group else None), name
    return found


def _zone(text: str, path: Path, line: int) -> tzinfo:
    """UTC, an offset (+09:00) or a time zone name (Asia/Tokyo)."""
    offset = re.fullmatch(r"([+-])(\d\d):?(\d\d)", text.strip())
    if text.strip().upper() in ("UTC", "Z"):
        return UTC
    try:
        if offset:
            sign = -1 if offset.group(1) == "-" else 1
            return timezone(sign * timedelta(hours=int(offset.group(2)), minutes=int(offset.group(3))))
        return ZoneInfo(text.strip())
    except (ZoneInfoNotFoundError, ValueError, OSError):  # OSError: a key naming a folder or an unreadable file
        raise ManifestError(f"`publish_at_from_name` {text!r} is not a time zone mdupload knows.", path=path,
                            line=line, hint="Write UTC, an offset such as +09:00, or a zone name such as "
                                            "Asia/Tokyo.") from None


def _pattern(text: str, path: Path, line: int) -> re.Pattern:
    try:
        pattern = re.compile(text)
    except (re.error, RecursionError, OverflowError, ValueError) as exc:
        raise ManifestError(f"`pattern` is not a valid regular expression: {exc}.", path=path, line=line,
                            hint="Check its brackets and escapes; in single quotes YAML keeps the backslashes: "
                                 r"pattern: '(?i)ch(?P<chapter>\d+(\.\d+)?)'.") from None
    unknown = [name for name in pattern.groupindex if name not in PATTERN_GROUPS]
    if unknown:
        raise ManifestError(f"`pattern` has the group (?P<{unknown[0]}>...), which mdupload does not read.",
                            path=path, line=line, hint=f"Name the groups {', '.join(PATTERN_GROUPS)}.")
    if not {"chapter", "volume"} & set(pattern.groupindex):
        raise ManifestError("`pattern` has no (?P<chapter>...) or (?P<volume>...) group, so it reads no number.",
                            path=path, line=line, hint=r"Add one, e.g. (?P<chapter>\d+(\.\d+)?).")
    return pattern


def load_series_folder(path) -> list[Series]:
    """Every *.yaml / *.yml series file directly in the folder, in name order."""
    path = Path(path)
    try:
        files = sorted(entry for entry in path.iterdir() if entry.suffix.lower() in SERIES_SUFFIXES
                       and not entry.name.startswith(".") and entry.is_file())
    except OSError as exc:
        raise ManifestError(f"cannot list the folder: {exc.strerror or exc}.", path=path,
                            hint="Pass a SERIES.yaml file or a folder of them that you may read.") from None
    if not files:
        raise ManifestError("the folder holds no series file (*.yaml).", path=path,
                            hint="Put one SERIES.yaml per series in it; see manifests/example-series.yaml.")
    return [load_series(file) for file in files]


def load_all_series(paths: Sequence) -> list[Series]:
    """The series of every `--series` (a file or a folder of them). Sharing an inbox, each needs a `match`."""
    if not paths:
        raise UsageError("no series given.", hint="Pass --series SERIES.yaml (repeatable) or a folder of them.")
    found: dict[Path, Series] = {}
    for path in map(Path, paths):
        for series in load_series_folder(path) if path.is_dir() else [load_series(path)]:
            found.setdefault(series.path.resolve(), series)
    series_list = list(found.values())
    if len(series_list) > 1:
        for series in series_list:
            if not series.match:
                raise ManifestError(f"{len(series_list)} series share the inbox, and this one has no `match`, so it "
                                    "would take every item.", path=series.path,
                                    hint="Add `match: <text in the names of its items>`, e.g. the series name.")
    return series_list
