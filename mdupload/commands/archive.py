"""`mdupload archive`: store each published chapter of a manifest in a LANraragi library (archive.py).

Exit codes: 0 every selected chapter is archived, 1 some chapter could not be, 2 usage or manifest
error, 3 a refused key.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import click

from ..archive import archive_chapters, checked_pages, resolve_target
from ..errors import EXIT_FAILED, EXIT_OK
from ..lanraragi import LanraragiClient
from ..manifest import load_manifest
from ..output import Reporter, print_json
from ..selection import select_chapters
from .options import (
    api_options,
    chapter_option,
    json_flag,
    ledger_option,
    manifest_argument,
    open_ledger,
    quiet_option,
    reading_client,
    settings_for,
)


@click.command("archive")
@manifest_argument
@chapter_option
@click.option("--to", "to", metavar="URL",
              help="The LANraragi server (env MDUPLOAD_LANRARAGI_URL; default: the manifest's `lanraragi: url`).")
@quiet_option
@api_options
@ledger_option
@json_flag
def archive(manifest, chapters, exclude, to, quiet, api_url, dev, ledger_path, as_json):
    """Store each published chapter of MANIFEST in a LANraragi library as a .cbz with ComicInfo.xml.

    The API key comes from MDUPLOAD_LANRARAGI_KEY. The category and extra tags come from the manifest's
    `lanraragi:` section. A chapter already archived (the ledger and the server say so) is not sent again.
    """
    settings = settings_for(api_url=api_url, dev=dev, ledger=ledger_path)
    loaded = load_manifest(manifest, settings.environ)
    specs = select_chapters(loaded, chapters, exclude)
    target = resolve_target(loaded, to, environ=settings.environ)
    ledger = open_ledger(settings)
    reporter = Reporter(quiet=quiet)
    with tempfile.TemporaryDirectory(prefix="mdupload-archive-") as workdir:
        run = archive_chapters(loaded, specs, ledger,
                               lanraragi=LanraragiClient.from_env(target.url, environ=settings.environ),
                               mangadex=reading_client(settings), target=target,
                               pages=checked_pages(Path(workdir) / "pages", settings.fix_cache),
                               workdir=Path(workdir), reporter=reporter)
    if as_json:
        print_json(run.to_json())
    sys.exit(EXIT_OK if run.ok else EXIT_FAILED)
