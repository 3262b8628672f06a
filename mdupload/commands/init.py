"""`mdupload init [FOLDER]`: write a manifest for a folder of conventionally named releases (init_manifest.py)."""

from __future__ import annotations

from pathlib import Path

import click

from ..identify import Catalogue
from ..init_manifest import init_manifest
from ..settings import OFF_VALUES
from .options import api_options, reading_client, settings_for


@click.command("init")
@click.argument("folder", type=click.Path(path_type=Path), default=".")
@click.option("--manga", metavar="ID|URL", help="The manga's id or mangadex.org/title/ address (else found by title).")
@click.option("--title", metavar="TEXT", help="Search the manga by this title (else the series name in the names).")
@click.option("--group", "group_ids", multiple=True, metavar="ID",
              help="A group's id (repeatable; else the names in the items' [Group] tags are looked up).")
@click.option("--language", metavar="CODE", help="The chapters' language (else the one most names give, else en).")
@click.option("--output", type=click.Path(path_type=Path), metavar="PATH",
              help="Where to write the manifest (default FOLDER/manifest.yaml).")
@click.option("--force", is_flag=True, help="Replace an existing manifest.")
@api_options
def init(folder, manga, title, group_ids, language, output, force, api_url, dev):
    """Write a manifest for a FOLDER of releases named like `Series - c012 [Group]` (folders, .cbz, .zip)."""
    settings = settings_for(api_url=api_url, dev=dev)
    result = init_manifest(folder, Catalogue(reading_client(settings)), output=output, manga=manga, title=title,
                           group_ids=group_ids, language=language, force=force,
                           choose=_ask if _may_ask(settings.environ) else None)
    click.echo(f"wrote {result.manifest}: {len(result.releases)} chapter(s) of {result.manga.name} ({result.manga.id}), "
               f"groups {', '.join(g.name for g in result.groups) or 'none'}", err=True)
    for name in result.unreadable:
        click.echo(f"warning: {name}: no chapter in the name; left out of the manifest", err=True)
    click.echo(f"next: mdupload validate {result.manifest}", err=True)


def _may_ask(environ) -> bool:
    """Questions only on a terminal, and never in CI (a missing answer is an error naming the option)."""
    return click.get_text_stream("stdin").isatty() and environ.get("CI", "").strip().lower() in ("", *OFF_VALUES)


def _ask(question: str, candidates):
    click.echo(question, err=True)
    for number, candidate in enumerate(candidates, start=1):
        click.echo(f"  {number}. {candidate.name} ({candidate.id})", err=True)
    chosen = click.prompt("Which one", type=click.IntRange(1, len(candidates)), err=True)
    return candidates[chosen - 1]
