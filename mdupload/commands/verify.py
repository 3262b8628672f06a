"""`mdupload verify`: check that MangaDex@Home serves each published chapter whole and in order (athome).

Exit codes: 0 everything selected is fine (a chapter MangaDex is still processing when `verify` stops
waiting is reported as `processing`, and is no error), 1 some chapter differs, is missing or could not
be read, 2 usage or manifest error.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import click

from ..athome import AtHomeReader
from ..errors import EXIT_FAILED, EXIT_OK
from ..manifest import load_manifest
from ..output import Reporter, WaitNotice, print_json, show_check
from ..selection import select_chapters
from ..verify import local_pages_from_disk, verify_chapters
from .options import (
    api_options,
    chapter_option,
    json_flag,
    ledger_option,
    ledger_to_read,
    manifest_argument,
    quiet_option,
    reading_client,
    settings_for,
)


@click.command("verify")
@manifest_argument
@chapter_option
@click.option("--wait", "wait_minutes", type=click.FloatRange(min=0), default=1, metavar="MINUTES",
              help="Keep asking for this long until MangaDex has processed the chapters (default 1: a chapter "
                   "just published takes seconds; 0: ask once).")
@click.option("--download", is_flag=True,
              help="Download every page and compare it with the local one (bytes, else dimensions).")
@quiet_option
@api_options
@ledger_option
@json_flag
def verify(manifest, chapters, exclude, wait_minutes, download, quiet, api_url, dev, ledger_path, as_json):
    """Check that MangaDex@Home serves each published chapter of MANIFEST whole and in order.

    A chapter MangaDex is still processing is reported as such and is not an error (exit 0); a
    chapter that differs, is gone or was never published is (exit 1).
    """
    settings = settings_for(api_url=api_url, dev=dev, ledger=ledger_path)
    loaded = load_manifest(manifest, settings.environ)
    specs = select_chapters(loaded, chapters, exclude)
    ledger = ledger_to_read(settings)  # a command that only reads creates no ledger
    reporter = Reporter(quiet=quiet)
    reader = AtHomeReader(reading_client(settings), environ=settings.environ)
    with tempfile.TemporaryDirectory(prefix="mdupload-verify-") as workdir:
        checks = verify_chapters(loaded, specs, ledger, reader, wait_s=wait_minutes * 60, download=download,
                                 workdir=Path(workdir) / "served",
                                 local_pages=local_pages_from_disk(Path(workdir) / "local", settings.fix_cache) if download else None,
                                 on_wait=WaitNotice(reporter))
    for check in checks:
        show_check(reporter, check)
    ok = all(c.ok for c in checks)
    processing = sum(1 for c in checks if c.status == "processing")
    if processing:
        reporter.info(f"{processing} chapter(s) still processing on MangaDex: run `mdupload verify` again later"
                      + ("" if wait_minutes else ", or wait for them with --wait MINUTES"))
    if as_json:
        print_json({"ok": ok, "processing": processing, "chapters": [c.to_json() for c in checks]})
    sys.exit(EXIT_OK if ok else EXIT_FAILED)
