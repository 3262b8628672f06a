"""`mdupload status`: what the ledger knows of each chapter of the manifest (status.chapter_statuses)."""

from __future__ import annotations

import click

from ..manifest import load_manifest
from ..output import print_json, status_line
from ..selection import select_chapters
from ..status import chapter_statuses
from .options import (
    api_options,
    chapter_option,
    hosts_of,
    json_flag,
    ledger_option,
    manifest_argument,
    ledger_to_read,
    settings_for,
)


@click.command("status")
@manifest_argument
@chapter_option
@api_options
@ledger_option
@json_flag
def status(manifest, chapters, exclude, api_url, dev, ledger_path, as_json):
    """Show what the ledger knows of each chapter of the manifest.

    Each chapter is not started, in progress (its state, pages uploaded / total, its session, and
    whether an upload is running now or was interrupted), committed (the chapter id and when) or
    failed (why), on the MangaDex of --api-url/--dev (production by default): a chapter rehearsed on the
    sandbox is not published on MangaDex. Nothing is asked of MangaDex, and nothing is written (a ledger
    that does not exist yet is not created: every chapter is then not started).
    """
    settings = settings_for(api_url=api_url, dev=dev, ledger=ledger_path)
    loaded = load_manifest(manifest, settings.environ)
    specs = select_chapters(loaded, chapters, exclude)
    statuses = chapter_statuses(loaded, specs, ledger_to_read(settings), hosts_of(settings).api_url)
    for spec, chapter in zip(specs, statuses, strict=True):
        click.echo(status_line(spec.label, chapter), err=True)
    if as_json:
        print_json({"ok": True, "chapters": [chapter.to_json() for chapter in statuses]})
