"""Every setting of a run in one place: options, else MDUPLOAD_* variables, else defaults.

In the spirit of twine's settings.py (each option falls back to its variable, then to its default)
and httpie's context.Environment (what a run gets from outside, injected as one object that tests
replace whole):

- `Environment` is the outside: the variables. Only the command layer
  (mdupload/commands/, mdupload/cli.py) builds it from the process; no module below it reads
  os.environ.
- `SETTINGS` is the table of every setting: its name, its variable, its default and what it
  means. Each default is stated here once; docs/configuration.md is held to this table
  (`settings_table()`, tests/test_settings.py).
- `Settings` is one run's values, built once by a command from its options and the environment,
  and handed to the services.

The MangaDex credentials (MDUPLOAD_USERNAME, _PASSWORD, _CLIENT_ID, _CLIENT_SECRET) are read by
mangadex/auth.py's Credentials.from_env from `Settings.environ`; they have no default.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs

from . import deadlines
from .vocabulary import PRODUCTION_API

APP_NAME = "mdupload"
OFF_VALUES = ("0", "no", "false", "off")
ON_VALUES = ("1", "true", "yes")

DEV_API = "https://api.mangadex.dev"
TOKEN_PATH = "/realms/mangadex/protocol/openid-connect/token"
PRODUCTION_AUTH = "https://auth.mangadex.org" + TOKEN_PATH
DEV_AUTH = "https://auth.mangadex.dev" + TOKEN_PATH
REPORT_URL = "https://api.mangadex.network/report"  # MangaDex@Home's report endpoint


@dataclass(frozen=True)
class Setting:
    """One row of the table: the `Settings` attribute, its variable, its option, its default, its meaning."""

    name: str
    variable: str
    option: str | None
    default: str
    meaning: str


API_URL = Setting("api_url", "MDUPLOAD_API_URL", "--api-url", PRODUCTION_API,
                  "MangaDex API base URL (--dev: " + DEV_API + ")")
AUTH_URL = Setting("auth_url", "MDUPLOAD_AUTH_URL", "--auth-url", PRODUCTION_AUTH,
                   "OAuth token URL; given only an origin, MangaDex's token path is added")
USERNAME = Setting("username", "MDUPLOAD_USERNAME", "--username (login)", "none",
                   "MangaDex username; with the next three, wins over any stored account")
PASSWORD = Setting("password", "MDUPLOAD_PASSWORD", None, "none", "MangaDex password (never stored)")
CLIENT_ID = Setting("client_id", "MDUPLOAD_CLIENT_ID", None, "none", "personal API client id")
CLIENT_SECRET = Setting("client_secret", "MDUPLOAD_CLIENT_SECRET", None, "none", "personal API client secret")
ACCOUNT = Setting("account", "MDUPLOAD_ACCOUNT", "--account", "the account signed in last",
                  "which account stored by `mdupload login` to use")
CONFIG_DIR = Setting("config_dir", "MDUPLOAD_CONFIG_DIR", None, "the platform's config folder for mdupload",
                     "where accounts.json (the stored accounts) lives")
KEYRING = Setting("keyring", "MDUPLOAD_KEYRING", None, "on",
                  "0, no, false or off: never use the system keyring (accounts.json, mode 0600, instead)")
LEDGER = Setting("ledger", "MDUPLOAD_LEDGER", "--ledger", "ledger.sqlite3 in the platform's state folder",
                 "the ledger: what every run did, so a killed run resumes")
CACHE_DIR = Setting("cache_dir", "MDUPLOAD_CACHE_DIR", None, "the platform's cache folder for mdupload",
                    "where --fix keeps repaired pages, so a rerun does not redo them")
ACCEPT_TERMS = Setting("accept_terms", "MDUPLOAD_ACCEPT_TERMS", "--accept-terms", "no",
                       "1, true or yes: accept MangaDex's upload terms (or `terms_accepted: true`)")
LANRARAGI_URL = Setting("lanraragi_url", "MDUPLOAD_LANRARAGI_URL", "--to, --archive-to",
                        "the manifest's `lanraragi: url`", "the LANraragi server to archive to")
LANRARAGI_KEY = Setting("lanraragi_key", "MDUPLOAD_LANRARAGI_KEY", None, "none (an open server)",
                        "the LANraragi API key")
REPORT_URL_SETTING = Setting("report_url", "MDUPLOAD_REPORT_URL", None, REPORT_URL,
                             "where reads from MangaDex@Home nodes are reported")

TIMEOUT = Setting("timeout", deadlines.TOTAL_ENV, "--timeout", f"{deadlines.DEFAULT_TOTAL_S:g} s",
                  "the time one request may take before the bytes it moves extend it (docs/bounds.md)")
TIMEOUT_MIN_RATE = Setting("timeout_min_rate", deadlines.MIN_RATE_ENV, None,
                           f"{deadlines.DEFAULT_MIN_RATE_KB_S:g} KB/s", "each KB a request moves adds 1/rate seconds")
TIMEOUT_CONNECT = Setting("timeout_connect", deadlines.CONNECT_ENV, None, f"{deadlines.DEFAULT_CONNECT_S:g} s",
                          "the time to connect")
TIMEOUT_IDLE = Setting("timeout_idle", deadlines.IDLE_ENV, None, f"{deadlines.DEFAULT_IDLE_S:g} s",
                       "the longest silence between two bytes")

SETTINGS: tuple[Setting, ...] = (API_URL, AUTH_URL, USERNAME, PASSWORD, CLIENT_ID, CLIENT_SECRET, ACCOUNT,
                                 CONFIG_DIR, KEYRING, LEDGER, CACHE_DIR, ACCEPT_TERMS, LANRARAGI_URL,
                                 LANRARAGI_KEY, REPORT_URL_SETTING, TIMEOUT, TIMEOUT_MIN_RATE, TIMEOUT_CONNECT,
                                 TIMEOUT_IDLE)
CREDENTIAL_VARIABLES = {s.name: s.variable for s in (USERNAME, PASSWORD, CLIENT_ID, CLIENT_SECRET)}


def settings_table() -> str:
    """The table of every setting, in Markdown (docs/configuration.md carries it)."""
    lines = ["| setting | variable | option | default | meaning |", "| --- | --- | --- | --- | --- |"]
    for s in SETTINGS:
        lines.append(f"| {s.name} | `{s.variable}` | {f'`{s.option}`' if s.option else ''} | {s.default} | "
                     f"{s.meaning} |")
    return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class Environment:
    """What a run gets from outside: its variables (tests build their own). The standard streams are not
    part of it yet: output.py writes to sys.stderr and sys.stdout, which click's test runner replaces."""

    environ: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def current(cls) -> Environment:
        """The process's own: called by the command layer only."""
        return cls(dict(os.environ))


@dataclass(frozen=True)
class Settings:
    """One run's settings, built once by a command (`Settings.build`) and handed to the services.

    The options as given (None: not given), and what is resolved from them, the variables and the
    defaults. The MangaDex hosts and credentials, the LANraragi server and key and the report URL
    are resolved where they are checked (mangadex/client.py's resolve_hosts, accounts/resolve.py's resolve,
    archive.py's resolve_target, athome.py), from `environ`: this object's variables, never the
    process's.
    """

    environment: Environment
    api_url: str | None = None
    auth_url: str | None = None
    dev: bool = False
    ledger: Path = Path("ledger.sqlite3")
    cache_dir: Path = Path(".")
    accept_terms: bool = False

    @property
    def environ(self) -> Mapping[str, str]:
        return self.environment.environ

    @property
    def timeouts(self) -> deadlines.Timeouts:
        """How long and how large an answer every client of this run waits for."""
        return deadlines.Timeouts.from_env(self.environ)

    @property
    def fix_cache(self) -> Path:
        """Where --fix keeps repaired pages, by the SHA-256 of their source."""
        return self.cache_dir / "fixes"

    @classmethod
    def build(cls, environment: Environment | None = None, *, api_url: str | None = None,
              auth_url: str | None = None, dev: bool = False, ledger: Path | None = None,
              accept_terms: bool = False) -> Settings:
        """Each setting from its option, else its variable, else its default."""
        env = environment if environment is not None else Environment()
        return cls(
            environment=env, api_url=api_url, auth_url=auth_url, dev=dev,
            ledger=ledger or _path(env.environ.get(LEDGER.variable))
            or Path(platformdirs.user_state_dir(APP_NAME)) / "ledger.sqlite3",
            cache_dir=_path(env.environ.get(CACHE_DIR.variable)) or Path(platformdirs.user_cache_dir(APP_NAME)),
            accept_terms=accept_terms or env.environ.get(ACCEPT_TERMS.variable, "") in ON_VALUES)


def config_dir(environ: Mapping[str, str]) -> Path:
    """MDUPLOAD_CONFIG_DIR, else the platform's config folder for mdupload."""
    return _path(environ.get(CONFIG_DIR.variable, "").strip(), expand=True) or \
        Path(platformdirs.user_config_dir(APP_NAME, appauthor=False))


def keyring_wanted(environ: Mapping[str, str]) -> bool:
    """MDUPLOAD_KEYRING is not 0, no, false or off."""
    return environ.get(KEYRING.variable, "").strip().lower() not in OFF_VALUES


def _path(value: str | None, *, expand: bool = False) -> Path | None:
    if not value:
        return None
    return Path(value).expanduser() if expand else Path(value)
