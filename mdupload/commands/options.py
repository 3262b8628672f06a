"""The options several commands share, and the clients and ledger they stand for."""

from __future__ import annotations

from pathlib import Path

import click

from ..accounts.resolve import client_for
from ..ci import GitHubActions
from ..identify import Catalogue, Identified, identify
from ..ledger import Ledger
from ..mangadex.client import Hosts, MangaDexClient, resolve_hosts
from ..manifest import Manifest
from ..settings import TIMEOUT, Environment, Settings
from ..upload import DEFAULT_CONCURRENCY, STALE_AFTER_MIN


def json_flag(f):
    def remember(ctx, _param, value):
        ctx.meta["mdupload.json"] = value
        return value

    return click.option("--json", "as_json", is_flag=True, expose_value=True, callback=remember, is_eager=True,
                        help="Write one JSON result document to stdout (people's output stays on stderr).")(f)


def chapter_option(f):
    """--chapter and --exclude: lists and ranges of chapter numbers (selection.py)."""
    f = click.option("--exclude", "exclude", multiple=True, metavar="LIST",
                     help="Leave out these chapters (same forms as --chapter).")(f)
    return click.option("--chapter", "chapters", multiple=True, metavar="LIST",
                        help="Only these chapters: 12, 1-6, 1,3,7-9 or oneshot (repeatable; numbers in "
                             "MangaDex's order, 1 < 1.5 < 2 < 10 < 10a).")(f)
fix_option = click.option(
    "--fix", is_flag=True,
    help="Repair fixable pages (split long strips, convert formats, re-encode oversize pages) into a work "
         "folder; the originals are never touched.")
manifest_argument = click.argument("manifest", type=click.Path(path_type=Path))


def host_options(f):
    """--api-url, --auth-url and --dev: for the commands that sign in."""
    f = click.option("--auth-url", metavar="URL", help="OAuth token URL (env MDUPLOAD_AUTH_URL).")(f)
    return api_options(f)


def api_options(f):
    """--api-url, --dev and --timeout: for the commands that only read, and sign in to nothing."""
    f = timeout_option(f)
    f = click.option("--dev", is_flag=True, help="Use MangaDex's dev servers (api.mangadex.dev, auth.mangadex.dev).")(f)
    f = click.option("--api-url", metavar="URL", help="MangaDex API base URL (env MDUPLOAD_API_URL).")(f)
    return f


def timeout_option(f):
    """--timeout SECONDS: MDUPLOAD_TIMEOUT for this run (kept in the context, read by settings_for)."""
    def remember(ctx, _param, value):
        if value is not None:
            ctx.meta[_TIMEOUT_KEY] = value
        return value

    return click.option("--timeout", type=click.FloatRange(min=0, min_open=True), expose_value=False,
                        callback=remember, metavar="SECONDS",
                        help=f"The deadline of one request before the bytes it moves extend it (env {TIMEOUT.variable}; "
                             "default 120; see docs/bounds.md).")(f)


_TIMEOUT_KEY = "mdupload.timeout"


def ledger_option(f):
    return click.option("--ledger", "ledger_path", type=click.Path(path_type=Path), metavar="PATH",
                        help="The ledger file (env MDUPLOAD_LEDGER; default in the user's state folder).")(f)


accept_terms_option = click.option("--accept-terms", is_flag=True,
                                   help="Accept MangaDex's upload terms (or MDUPLOAD_ACCEPT_TERMS=1).")
stale_after_option = click.option("--stale-after", type=click.FloatRange(min=0), default=STALE_AFTER_MIN, show_default=True,
                                  metavar="MIN", help="An open session untouched this many minutes is abandoned.")
concurrency_option = click.option(
    "--concurrency", type=click.IntRange(1, 8), default=None, metavar="N",
    help=f"At most N batch requests in flight at once (default {DEFAULT_CONCURRENCY}); the next batch goes out "
         "as soon as the previous one's bytes are sent, and 1 waits for each answer.")
quiet_option = click.option("--quiet", is_flag=True, help="Print nothing on stderr but errors.")


# --- the run's settings, and what they stand for -------------------------------------------------------

def settings_for(**options) -> Settings:
    """The run's settings: the command's options, the process's environment, the defaults (settings.py).

    --timeout stands in for MDUPLOAD_TIMEOUT in the run's variables, so that every client built from them
    (signed in, reading, LANraragi) has the same deadline."""
    environment = Environment.current()
    context = click.get_current_context(silent=True)
    timeout = context.meta.get(_TIMEOUT_KEY) if context is not None else None
    if timeout is not None:
        environment = Environment({**environment.environ, TIMEOUT.variable: f"{timeout:g}"})
    return Settings.build(environment, **options)


def signed_in_client(settings: Settings) -> MangaDexClient:
    """A signed-in client: MDUPLOAD_* credentials when set, else the account `mdupload login` stored for this
    API (MDUPLOAD_ACCOUNT picks one when several are stored); see accounts/resolve.py."""
    return client_for(settings.api_url, settings.auth_url, settings.dev, environ=settings.environ)


def hosts_of(settings: Settings) -> Hosts:
    return resolve_hosts(settings.api_url, settings.auth_url, settings.dev, environ=settings.environ)


def reading_client(settings: Settings) -> MangaDexClient:
    """A MangaDex client without credentials: reading needs no account, so no token exists to leak."""
    hosts = hosts_of(settings)
    return MangaDexClient(api_url=hosts.api_url, auth_url=hosts.auth_url, timeouts=settings.timeouts)


def open_ledger(settings: Settings) -> Ledger:
    return Ledger(settings.ledger)


def ledger_to_read(settings: Settings) -> Ledger | None:
    """The ledger of a command that only reads it; None when there is none yet (nothing is created)."""
    return Ledger(settings.ledger) if settings.ledger.exists() else None


def github(settings: Settings) -> GitHubActions:
    return GitHubActions(settings.environ)


def identify_ids(loaded: Manifest, settings: Settings, *, unreachable_hint: str) -> Identified:
    """The manifest's manga and groups as MangaDex names them (public reads: no sign-in); an unknown one is a
    ManifestError at its own line (identify.py)."""
    return identify(loaded, Catalogue(reading_client(settings)), unreachable_hint=unreachable_hint)
