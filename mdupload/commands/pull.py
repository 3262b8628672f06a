"""`mdupload pull`: download a chapter's pages from MangaDex@Home into a folder, in reading order (athome)."""

from __future__ import annotations

import re
from pathlib import Path

import click

from ..athome import AtHomeReader, check_chapter_id
from ..output import PullProgress, Reporter, print_json
from ..pull import pull_chapter
from .options import api_options, json_flag, quiet_option, reading_client, settings_for

_CHAPTER_URL = re.compile(r"/chapter/([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})")


@click.command("pull")
@click.argument("chapter_id", metavar="CHAPTER_ID")
@click.argument("dest", type=click.Path(path_type=Path))
@click.option("--data-saver", is_flag=True, help="The smaller data-saver images instead of the originals.")
@quiet_option
@api_options
@json_flag
def pull(chapter_id, dest, data_saver, quiet, api_url, dev, as_json):
    """Download a chapter's pages from MangaDex@Home into DEST as 001.png, 002.jpg... (reading order).

    CHAPTER_ID is the chapter's id (or its mangadex.org/chapter/... URL). Run it again to finish an
    interrupted download: pages already complete are kept.
    """
    found = _CHAPTER_URL.search(chapter_id)
    chapter_id = check_chapter_id(found.group(1) if found else chapter_id.strip())
    reporter = Reporter(quiet=quiet)
    settings = settings_for(api_url=api_url, dev=dev)
    reader = AtHomeReader(reading_client(settings), environ=settings.environ)
    progress = PullProgress(reporter)
    try:
        result = pull_chapter(reader, chapter_id, dest, data_saver=data_saver, events=progress)
    finally:
        progress.close()
    reporter.info(f"chapter {chapter_id}: {len(result.files)} pages in {dest} ({result.downloaded} downloaded, "
                  f"{result.kept} already there)")
    if as_json:
        print_json({"ok": True, **result.to_json()})
