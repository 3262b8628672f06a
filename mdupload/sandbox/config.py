"""Everything the sandbox can be told: accounts, catalogue, rate limits, network simulation, faults.

A profile file (JSON or YAML) holds any of SandboxConfig's fields by name (`-` or `_` alike), for
example `{"latency": 0.2, "drop_rate": 0.05, "seed": 7}`; a users file holds a list of accounts.
"""

from __future__ import annotations

import dataclasses
import uuid
from dataclasses import dataclass
from pathlib import Path

import yaml

DEMO_MANGA = "f9c33607-9180-4ba6-b85c-e4b5faee7192"
ADULT_MANGA = "3f1c8a52-7d4e-4b9a-9c21-5e8f0a6b2d47"  # a pornographic title: hidden by the default ratings
DEMO_GROUP = "145f9110-0a6c-4b71-8737-6acb1a3c5da4"
DOCS_GROUP = "18dadd0b-cbce-41c4-a8a9-5e653780b9ff"  # the group of MangaDex's own upload documentation sample
SECOND_GROUP = "6e9a1d8c-3f41-4a7e-9a59-2b7c0d5e8f13"

_USER_NAMESPACE = uuid.UUID("0b7f6c2e-51a4-4d8e-9c3f-2a6e8d1b4f70")


class ConfigError(ValueError):
    """A profile or users file that cannot be used; the message names the file and what to fix."""


@dataclass(frozen=True)
class Account:
    """A MangaDex account with its personal API client (the password grant works for it alone)."""

    username: str
    password: str
    client_id: str
    client_secret: str

    @property
    def user_id(self) -> str:
        """Stable across restarts, so that chapters keep their uploader."""
        return str(uuid.uuid5(_USER_NAMESPACE, self.username))


DEMO_ACCOUNT = Account("demo", "demo", "mdupload-demo", "demo-secret")


@dataclass(frozen=True)
class Manga:
    id: str
    title: str
    content_rating: str = "safe"
    original_language: str = "ja"


@dataclass(frozen=True)
class Group:
    id: str
    name: str


@dataclass(frozen=True)
class CatalogChapter:
    """A chapter that already exists on MangaDex when the sandbox starts (from --catalog)."""

    id: str
    manga: str
    chapter: str | None
    language: str
    groups: tuple[str, ...]
    volume: str | None = None
    title: str | None = None


DEFAULT_MANGAS = (
    Manga(DEMO_MANGA, "The Sandbox Chronicles", "safe"),
    Manga(ADULT_MANGA, "After Dark in the Sandbox", "pornographic"),
)
DEFAULT_GROUPS = (Group(DEMO_GROUP, "Sandbox Scans"), Group(SECOND_GROUP, "Second Shift Scans"),
                  Group(DOCS_GROUP, "MangaDex Documentation Group"))


@dataclass(frozen=True)
class SandboxConfig:
    """How a sandbox behaves. Every fault and every simulated slowness is off by default."""

    host: str = "127.0.0.1"
    port: int = 0  # the API and token host; 0 picks a free port
    athome_port: int = 0  # the MangaDex@Home image host and the report endpoint; 0 picks a free port
    state_dir: Path | None = None  # None: a temporary folder, removed at stop
    users: tuple[Account, ...] = ()  # accounts besides the demo one
    mangas: tuple[Manga, ...] = DEFAULT_MANGAS
    groups: tuple[Group, ...] = DEFAULT_GROUPS
    chapters: tuple[CatalogChapter, ...] = ()  # published before the sandbox started (--catalog)
    # "MANGA:LOCALE" pairs whose uploads need staff approval; either side may be "*"
    approval_required: tuple[str, ...] = ()
    rate_limits: bool = True
    token_lifetime: float = 900.0  # seconds an access token lives (expires_in)
    refresh_lifetime: float = 86_400.0  # seconds a refresh token lives (refresh_expires_in)
    # Seconds from a commit until MangaDex has processed the chapter (each chapter draws from 0.5x to 1.5x
    # of it): until then it is absent from lists and served without pages. MangaDex publishes no figure;
    # 4 s is far longer than a client's look-up right after its commit (every race shows) and short
    # enough for rehearsals. 0: processed at once (tests that need speed say so explicitly).
    processing_delay: float = 4.0
    # Seconds a chapter that needs staff approval waits on top of its processing (MangaDex: hours or days).
    approval_delay: float = 120.0
    athome_url_ttl: float = 900.0  # seconds a MangaDex@Home base URL stays valid (then 403)
    # the base URL GET /at-home/server hands out instead of the image host's (a hostile or broken node,
    # e.g. another loopback port, to test that no token goes there); None: the image host
    athome_base_url: str | None = None
    seed: int | None = None  # None: a random seed, shown in the state document so a run can be replayed
    # network simulation
    latency: float = 0.0  # seconds added before every answer
    bandwidth: int | None = None  # bytes per second for all request bodies together
    file_processing_time: float = 0.0  # seconds per accepted file in a batch
    # faults: each rate is a probability per eligible request
    error_rate: float = 0.0  # 500/502/503 instead of an answer (any API call)
    burst_rate: float = 0.0  # a burst of `burst_length` 429s starts (any API call)
    burst_length: int = 3
    drop_rate: float = 0.0  # part of the body read, then the connection closed without an answer
    lost_answer_rate: float = 0.0  # upload POST done and stored, then no answer (the ambiguous case)
    lost_answer_stall: float = 0.0  # seconds to stall before closing, for a lost answer
    early_expiry_rate: float = 0.0  # a valid access token is treated as expired (401)
    athome_fail_rate: float = 0.0  # an image node answers 500 or drops the connection

    def __post_init__(self):
        for name in ("error_rate", "burst_rate", "drop_rate", "lost_answer_rate", "early_expiry_rate",
                     "athome_fail_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"{name} must be between 0 and 1, not {getattr(self, name)}")
        for name in ("latency", "file_processing_time", "processing_delay", "approval_delay", "lost_answer_stall"):
            if getattr(self, name) < 0:
                raise ConfigError(f"{name} cannot be negative")
        if self.token_lifetime <= 0 or self.refresh_lifetime <= 0 or self.athome_url_ttl <= 0:
            raise ConfigError("token_lifetime, refresh_lifetime and athome_url_ttl must be positive")
        if self.bandwidth is not None and self.bandwidth <= 0:
            raise ConfigError("bandwidth must be a positive number of bytes per second")
        if self.burst_length < 1:
            raise ConfigError("burst_length must be at least 1")
        for rule in self.approval_required:
            if rule.count(":") != 1:
                raise ConfigError(f"approval rule {rule!r} must look like MANGA:LOCALE (either may be *)")

    @property
    def accounts(self) -> tuple[Account, ...]:
        return (DEMO_ACCOUNT, *self.users)

    def needs_approval(self, manga: str, locale: str) -> bool:
        for rule in self.approval_required:
            rule_manga, rule_locale = rule.split(":")
            if rule_manga in ("*", manga) and rule_locale in ("*", locale):
                return True
        return False


FIELDS = {f.name for f in dataclasses.fields(SandboxConfig)}
_FILE_FIELDS = {"users", "mangas", "groups", "chapters"}


def load_profile(path: Path) -> dict:
    """The fields a profile file sets, with `-` in names read as `_`."""
    raw = _read(path)
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: a profile is a mapping of option names to values")
    settings = {}
    for key, value in raw.items():
        name = str(key).replace("-", "_")
        if name not in FIELDS or name in _FILE_FIELDS:
            known = ", ".join(sorted(FIELDS - _FILE_FIELDS))
            raise ConfigError(f"{path}: unknown option {key!r}; known options: {known}")
        settings[name] = _coerce(name, value, path)
    return settings


_INT_FIELDS = {"port", "athome_port", "bandwidth", "seed", "burst_length"}


def _coerce(name: str, value, path: Path):
    if value is None and name in ("state_dir", "bandwidth", "seed", "athome_base_url"):
        return None
    try:
        if name == "state_dir":
            return (path.parent / str(value)).resolve()
        if name == "approval_required":
            return (value,) if isinstance(value, str) else tuple(str(rule) for rule in value)
        if name in ("host", "athome_base_url"):
            return str(value)
        if name == "rate_limits":
            if not isinstance(value, bool):
                raise TypeError
            return value
        if name in _INT_FIELDS:
            if isinstance(value, bool) or float(value) != int(value):
                raise TypeError
            return int(value)
        return float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{path}: {name} cannot be {value!r}") from None


def load_users(path: Path) -> tuple[Account, ...]:
    """Accounts from a YAML/JSON file: a list of {username, password, client_id, client_secret}."""
    raw = _read(path)
    if isinstance(raw, dict) and "users" in raw:
        raw = raw["users"]
    if not isinstance(raw, list):
        raise ConfigError(f"{path}: expected a list of accounts (username, password, client_id, client_secret)")
    accounts = []
    for index, entry in enumerate(raw, 1):
        keys = ("username", "password", "client_id", "client_secret")
        if not isinstance(entry, dict) or any(not isinstance(entry.get(k), str) or not entry[k] for k in keys):
            raise ConfigError(f"{path}: account {index} needs the strings {', '.join(keys)}")
        if set(entry) - set(keys):
            raise ConfigError(f"{path}: account {index} has unknown keys {sorted(set(entry) - set(keys))}")
        accounts.append(Account(*(entry[k] for k in keys)))
    names = [a.username for a in accounts] + [DEMO_ACCOUNT.username]
    clients = [a.client_id for a in accounts] + [DEMO_ACCOUNT.client_id]
    for label, values in (("username", names), ("client_id", clients)):
        twice = sorted({v for v in values if values.count(v) > 1})
        if twice:
            raise ConfigError(f"{path}: {label} used twice (the demo account has 'demo'/'mdupload-demo'): {twice}")
    return tuple(accounts)


def load_catalog(path: Path) -> dict:
    """A group's real series from a YAML/JSON file, added to the default catalogue:

        mangas: [{id, title, contentRating (safe), originalLanguage (ja)}]
        groups: [{id, name}]
        chapters: [{manga, chapter, language, groups: [ids], volume, title, id}]  # already published

    The SandboxConfig fields `mangas`, `groups` and `chapters` it sets."""
    raw = _read(path)
    if not isinstance(raw, dict) or set(raw) - {"mangas", "groups", "chapters"}:
        raise ConfigError(f"{path}: a catalogue is a mapping with any of the lists mangas, groups, chapters")
    mangas = [Manga(_uuid(path, "manga", i, e.get("id")), _text(path, "manga", i, e, "title"),
                    _choice(path, i, e.get("contentRating", "safe")), str(e.get("originalLanguage", "ja")))
              for i, e in _entries(path, raw, "mangas", {"id", "title", "contentRating", "originalLanguage"})]
    groups = [Group(_uuid(path, "group", i, e.get("id")), _text(path, "group", i, e, "name"))
              for i, e in _entries(path, raw, "groups", {"id", "name"})]
    known_mangas = {m.id for m in (*DEFAULT_MANGAS, *mangas)}
    known_groups = {g.id for g in (*DEFAULT_GROUPS, *groups)}
    chapters = []
    keys = {"id", "manga", "chapter", "language", "groups", "volume", "title"}
    for index, entry in _entries(path, raw, "chapters", keys):
        manga = _uuid(path, "chapter", index, entry.get("manga"))
        chapter_groups = entry.get("groups", [])
        if manga not in known_mangas:
            raise ConfigError(f"{path}: chapter {index} is of manga {manga}, which is not in the catalogue")
        if not isinstance(chapter_groups, list) or any(g not in known_groups for g in chapter_groups):
            raise ConfigError(f"{path}: chapter {index}: groups must be a list of the catalogue's group ids")
        number = entry.get("chapter")
        language = str(entry.get("language", "en"))
        ident = entry.get("id") or str(uuid.uuid5(_USER_NAMESPACE, f"{manga}|{number}|{language}|{chapter_groups}"))
        chapters.append(CatalogChapter(_uuid(path, "chapter", index, ident), manga,
                                       None if number is None else str(number), language, tuple(chapter_groups),
                                       None if entry.get("volume") is None else str(entry["volume"]),
                                       entry.get("title")))
    return {"mangas": (*DEFAULT_MANGAS, *mangas), "groups": (*DEFAULT_GROUPS, *groups), "chapters": tuple(chapters)}


def _entries(path: Path, raw: dict, name: str, keys: set[str]):
    entries = raw.get(name) or []
    if not isinstance(entries, list):
        raise ConfigError(f"{path}: {name} must be a list")
    for index, entry in enumerate(entries, 1):
        if not isinstance(entry, dict) or set(entry) - keys:
            raise ConfigError(f"{path}: {name} entry {index} must be a mapping of {', '.join(sorted(keys))}")
        yield index, entry


def _uuid(path: Path, what: str, index: int, value) -> str:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        raise ConfigError(f"{path}: {what} {index} needs an id that is a UUID, not {value!r}") from None


def _text(path: Path, what: str, index: int, entry: dict, key: str) -> str:
    if not isinstance(entry.get(key), str) or not entry[key]:
        raise ConfigError(f"{path}: {what} {index} needs a {key}")
    return entry[key]


def _choice(path: Path, index: int, rating) -> str:
    if rating not in ("safe", "suggestive", "erotica", "pornographic"):
        raise ConfigError(f"{path}: manga {index}: contentRating must be safe, suggestive, erotica or pornographic")
    return rating


def _read(path: Path):
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read it ({exc.strerror or exc})") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML or JSON ({exc})") from exc
