"""`mdupload verify`, `mdupload pull` and `mdupload archive`: reading published chapters back through
MangaDex@Home, and keeping them in a LANraragi library (mdupload/athome.py, mdupload/archive.py).

Exit codes as elsewhere: 0 everything selected is fine, 1 some chapter failed (differs, is missing,
could not be read or archived), 2 usage or manifest error, 3 a refused key. A chapter MangaDex is still
processing when `verify` stops waiting is not an error: it is reported as `processing` (exit 0).
"""

from __future__ import annotations

import re
import sys
import tempfile
import threading
from pathlib import Path

import click
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from .athome import (
    AtHomeReader,
    ChapterCheck,
    PullEvents,
    check_chapter_id,
    local_pages_from_disk,
    verify_chapters,
)
from .errors import EXIT_FAILED, EXIT_OK
from .manifest import load_manifest
from .options import (
    api_options,
    chapter_option,
    json_flag,
    ledger_option,
    manifest_argument,
    open_ledger,
    quiet_option,
)
from .output import Reporter, print_json
from .selection import select_chapters

_CHAPTER_URL = re.compile(r"/chapter/([0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12})")


def _reading_client(api_url, dev):
    """A MangaDex client without credentials: reading needs no account, so no token exists to leak."""
    from .mangadex.client import MangaDexClient, resolve_hosts

    hosts = resolve_hosts(api_url=api_url, dev=dev)
    return MangaDexClient(api_url=hosts.api_url, auth_url=hosts.auth_url)




# --- verify ------------------------------------------------------------------------------------------


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
def verify_command(manifest, chapters, exclude, wait_minutes, download, quiet, api_url, dev, ledger_path, as_json):
    """Check that MangaDex@Home serves each published chapter of MANIFEST whole and in order.

    A chapter MangaDex is still processing is reported as such and is not an error (exit 0); a
    chapter that differs, is gone or was never published is (exit 1).
    """
    loaded = load_manifest(manifest)
    specs = select_chapters(loaded, chapters, exclude)
    ledger = open_ledger(ledger_path)
    reporter = Reporter(quiet=quiet)
    reader = AtHomeReader(_reading_client(api_url, dev))
    waiting = _WaitNotice(reporter)
    with tempfile.TemporaryDirectory(prefix="mdupload-verify-") as workdir:
        checks = verify_chapters(loaded, specs, ledger, reader, wait_s=wait_minutes * 60, download=download,
                                 workdir=Path(workdir) / "served",
                                 local_pages=local_pages_from_disk(Path(workdir) / "local") if download else None,
                                 on_wait=waiting)
    for check in checks:
        _show_check(reporter, check)
    ok = all(c.ok for c in checks)
    processing = sum(1 for c in checks if c.status == "processing")
    if processing:
        reporter.info(f"{processing} chapter(s) still processing on MangaDex: run `mdupload verify` again later"
                      + ("" if wait_minutes else ", or wait for them with --wait MINUTES"))
    if as_json:
        print_json({"ok": ok, "processing": processing, "chapters": [c.to_json() for c in checks]})
    sys.exit(EXIT_OK if ok else EXIT_FAILED)


class _WaitNotice:
    """Says that verify is waiting, once, and again when fewer chapters are left to wait for."""

    def __init__(self, reporter: Reporter):
        self.reporter = reporter
        self.pending: int | None = None

    def __call__(self, pending: int, pause: float) -> None:
        if pending != self.pending:
            self.reporter.info(f"waiting for MangaDex to process {pending} chapter(s)...")
            self.pending = pending


def _show_check(reporter: Reporter, check: ChapterCheck) -> None:
    label = check.spec.label
    if check.status == "verified":
        how = {"pages": "every page downloaded and matches", "names": "in the uploaded order",
               "count": "the page count matches"}.get(check.checked, "")
        reporter.info(f"{label}: verified: {check.served} pages served, {how} (chapter {check.chapter_id})")
    elif check.status == "processing":
        reporter.info(f"{label}: still processing on MangaDex (no pages served yet; chapter {check.chapter_id})")
    elif check.status == "differs":
        reporter.error(f"{label}: differs from what was uploaded ({len(check.differences)} page(s); "
                       f"{check.served} served, {check.expected} uploaded; chapter {check.chapter_id})")
        for difference in check.differences:
            what = difference.page or difference.served
            reporter.error(f"  page {difference.position} ({what}): {difference.problem}")
    else:
        reporter.error(f"{label}: {check.status}: {check.error}")
    if check.status in ("verified", "differs"):
        for note in check.notes:
            reporter.info(f"  note: {note}")


# --- pull --------------------------------------------------------------------------------------------


@click.command("pull")
@click.argument("chapter_id", metavar="CHAPTER_ID")
@click.argument("dest", type=click.Path(path_type=Path))
@click.option("--data-saver", is_flag=True, help="The smaller data-saver images instead of the originals.")
@quiet_option
@api_options
@json_flag
def pull_command(chapter_id, dest, data_saver, quiet, api_url, dev, as_json):
    """Download a chapter's pages from MangaDex@Home into DEST as 001.png, 002.jpg... (reading order).

    CHAPTER_ID is the chapter's id (or its mangadex.org/chapter/... URL). Run it again to finish an
    interrupted download: pages already complete are kept.
    """
    found = _CHAPTER_URL.search(chapter_id)
    chapter_id = check_chapter_id(found.group(1) if found else chapter_id.strip())
    reporter = Reporter(quiet=quiet)
    reader = AtHomeReader(_reading_client(api_url, dev))
    progress = _PullProgress(reporter)
    try:
        result = reader.download(chapter_id, dest, data_saver=data_saver, events=progress)
    finally:
        progress.close()
    reporter.info(f"chapter {chapter_id}: {len(result.files)} pages in {dest} ({result.downloaded} downloaded, "
                  f"{result.kept} already there)")
    if as_json:
        print_json({"ok": True, **result.to_json()})


class _PullProgress(PullEvents):
    """A progress bar on a terminal; elsewhere a line every tenth of the chapter."""

    def __init__(self, reporter: Reporter):
        self.reporter = reporter
        self._lock = threading.Lock()
        self._progress: Progress | None = None
        self._task = None
        self.total = self.done = self.bytes = 0

    def start(self, chapter_id: str, total: int, kept: int) -> None:
        self.total, self.done = total, kept
        if kept:
            self.reporter.info(f"{kept} of {total} pages are already in the folder: kept")
        if self.reporter.fancy and kept < total:
            self._progress = Progress(TextColumn("pulling"), BarColumn(), MofNCompleteColumn(),
                                      TextColumn("{task.fields[megabytes]}"), console=self.reporter.console)
            self._task = self._progress.add_task("pull", total=total, completed=kept, megabytes="")
            self._progress.start()

    def page_done(self, chapter_id: str, name: str, size: int) -> None:
        with self._lock:
            self.done += 1
            self.bytes += size
            done, total = self.done, self.total
            if self._progress is not None:
                self._progress.update(self._task, completed=done, megabytes=f"{self.bytes / 1_000_000:.1f} MB")
                return
        step = max(1, total // 10)
        if done % step == 0 or done == total:
            self.reporter.info(f"{done}/{total} pages")

    def close(self) -> None:
        if self._progress is not None:
            self._progress.stop()
            self._progress = None


# --- archive -----------------------------------------------------------------------------------------


@click.command("archive")
@manifest_argument
@chapter_option
@click.option("--to", "to", metavar="URL",
              help="The LANraragi server (env MDUPLOAD_LANRARAGI_URL; default: the manifest's `lanraragi: url`).")
@quiet_option
@api_options
@ledger_option
@json_flag
def archive_command(manifest, chapters, exclude, to, quiet, api_url, dev, ledger_path, as_json):
    """Store each published chapter of MANIFEST in a LANraragi library as a .cbz with ComicInfo.xml.

    The API key comes from MDUPLOAD_LANRARAGI_KEY. The category and extra tags come from the manifest's
    `lanraragi:` section. A chapter already archived (the ledger and the server say so) is not sent again.
    """
    from .archive import archive_chapters, checked_pages, resolve_target
    from .lanraragi import LanraragiClient

    loaded = load_manifest(manifest)
    specs = select_chapters(loaded, chapters, exclude)
    target = resolve_target(loaded, to)
    ledger = open_ledger(ledger_path)
    reporter = Reporter(quiet=quiet)
    with tempfile.TemporaryDirectory(prefix="mdupload-archive-") as workdir:
        run = archive_chapters(loaded, specs, ledger, lanraragi=LanraragiClient.from_env(target.url),
                               mangadex=_reading_client(api_url, dev), target=target,
                               pages=checked_pages(Path(workdir) / "pages"), workdir=Path(workdir), reporter=reporter)
    if as_json:
        print_json(run.to_json())
    sys.exit(EXIT_OK if run.ok else EXIT_FAILED)


def register(main: click.Group) -> None:
    """Add verify, pull and archive to the `mdupload` group."""
    main.add_command(verify_command, name="verify")
    main.add_command(pull_command, name="pull")
    main.add_command(archive_command, name="archive")
