"""The options several commands share (cli.py, accounts.py and readback_cli.py all use them)."""

from __future__ import annotations

from pathlib import Path

import click

from .ledger import Ledger, default_ledger_path
from .upload import DEFAULT_CONCURRENCY


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
    """--api-url and --dev: for the commands that only read, and sign in to nothing."""
    f = click.option("--dev", is_flag=True, help="Use MangaDex's dev servers (api.mangadex.dev, auth.mangadex.dev).")(f)
    f = click.option("--api-url", metavar="URL", help="MangaDex API base URL (env MDUPLOAD_API_URL).")(f)
    return f


def ledger_option(f):
    return click.option("--ledger", "ledger_path", type=click.Path(path_type=Path), metavar="PATH",
                        help="The ledger file (env MDUPLOAD_LEDGER; default in the user's state folder).")(f)


def open_ledger(path: Path | None) -> Ledger:
    return Ledger(path or default_ledger_path())


accept_terms_option = click.option("--accept-terms", is_flag=True,
                                   help="Accept MangaDex's upload terms (or MDUPLOAD_ACCEPT_TERMS=1).")
stale_after_option = click.option("--stale-after", type=click.FloatRange(min=0), default=10, show_default=True,
                                  metavar="MIN", help="An open session untouched this many minutes is abandoned.")
concurrency_option = click.option(
    "--concurrency", type=click.IntRange(1, 8), default=None, metavar="N",
    help=f"Batches in flight at once within a session (default {DEFAULT_CONCURRENCY}, measured by make bench).")
quiet_option = click.option("--quiet", is_flag=True, help="Print nothing on stderr but errors.")
