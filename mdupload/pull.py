"""`mdupload pull`: a chapter's pages downloaded from MangaDex@Home into a folder, in reading order.

Pages download a few at a time (the reader's concurrency), each streamed to disk under a `.part`
name and renamed once complete; on a 403 (the base URL expired) or a failing node, a new base URL is
asked for and the page tried again there, at most MAX_FAILING_NODES base URLs in a row that serve
nothing. The folder keeps a record of the pages completed (PULL_RECORD), so a rerun downloads only
what is missing, and a file `pull` did not write is never overwritten.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from .athome import AtHomeError, AtHomeReader, Node, NotReadableYet
from .errors import UsageError
from .files import unique_name, write_replacing

log = logging.getLogger("mdupload.pull")

MAX_FAILING_NODES = 4  # base URLs in a row that serve no page before the chapter is given up
IMAGE_ATTEMPTS = 4  # tries of one page, each after the first on a fresh base URL
PULL_RECORD = ".mdupload-pull.json"  # what `pull` wrote into a folder, so a rerun keeps it
PART_SUFFIX = ".part"  # a page being downloaded: files.unique_name(page, PART_SUFFIX), renamed once complete

_SAFE_EXTENSION = re.compile(r"^\.[a-z0-9]{1,5}$")
_LEFTOVER_PART = re.compile(r"\.(?P<new>[0-9]{3,}\.[a-z0-9]{1,5})\.[0-9a-f]{12}\.part|(?P<old>[0-9]{3,}\.[a-z0-9]{1,5})\.part")


class PullEvents:
    """What a download tells whoever shows progress; every method is optional."""

    def start(self, chapter_id: str, total: int, kept: int) -> None: ...
    def page_done(self, chapter_id: str, name: str, size: int) -> None: ...
    def notice(self, chapter_id: str, text: str) -> None: ...


@dataclass
class PullResult:
    chapter_id: str
    dest: Path
    files: list[Path]  # in reading order
    downloaded: int
    kept: int
    bytes: int  # downloaded now
    new_base_urls: int  # base URLs asked for after the first (a 403 or a failing node)
    data_saver: bool = False

    def to_json(self) -> dict:
        return {"chapter_id": self.chapter_id, "dest": str(self.dest), "pages": len(self.files),
                "downloaded": self.downloaded, "kept": self.kept, "bytes": self.bytes,
                "new_base_urls": self.new_base_urls, "data_saver": self.data_saver,
                "files": [f.name for f in self.files]}



def pull_chapter(reader: AtHomeReader, chapter_id: str, dest: Path, *, data_saver: bool = False,
             node: Node | None = None, events: PullEvents | None = None) -> PullResult:
    """Download the chapter's pages in order into `dest` as 001.png, 002.jpg... (names that sort).

    Resumable: pages a previous run completed (recorded in dest/.mdupload-pull.json, same file on
    MangaDex@Home, same size on disk) are kept. A file in `dest` that `pull` did not write is never
    overwritten.
    """
    events = events or PullEvents()
    dest = Path(dest)
    node = node or reader.server(chapter_id)
    names = node.names(data_saver)
    if not names:
        raise NotReadableYet(
            f"chapter {chapter_id} has no pages on MangaDex@Home yet: MangaDex is still processing it "
            "(or it waits for staff approval).",
            hint="Try again in a few minutes, or wait for it with `mdupload verify MANIFEST --wait MINUTES`.")
    folder = _PullFolder(dest, chapter_id, "data-saver" if data_saver else "data")
    plan = folder.plan(names)
    todo = [(index, name, local) for index, (name, local) in enumerate(zip(names, plan.locals)) if index not in plan.kept]
    events.start(chapter_id, len(names), len(plan.kept))
    nodes = _Nodes(reader, node, data_saver)
    downloaded, total_bytes = 0, 0
    failures: list[str] = []
    fatal: str | None = None
    stop = threading.Event()
    pool = ThreadPoolExecutor(max_workers=reader.concurrency, thread_name_prefix="athome")
    try:
        futures = {pool.submit(_download_page, reader, nodes, name, folder, local, stop): local
                   for _index, name, local in todo}
        for future in as_completed(futures):
            try:
                size = future.result()
            except _PageFailed as failed:
                failures.append(f"{futures[future]} ({failed})")
                if failed.fatal:
                    fatal = fatal or str(failed)
                    stop.set()
                continue
            if size is None:  # not started: the run was stopped
                continue
            downloaded += 1
            total_bytes += size
            events.page_done(chapter_id, futures[future], size)
    finally:
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
    have = len(plan.kept) + downloaded
    if fatal:
        raise AtHomeError(f"{fatal} {have} of {len(names)} pages are in {dest}.",
                          hint="MangaDex@Home may be having trouble: try again later; the pages already "
                               "downloaded are kept.")
    if failures:
        raise AtHomeError(
            f"chapter {chapter_id}: {len(failures)} of {len(names)} page(s) could not be downloaded from "
            f"MangaDex@Home: {'; '.join(sorted(failures)[:5])}{' ...' if len(failures) > 5 else ''}.",
            hint=f"Run the same command again: the {have} page(s) already in {dest} are kept.")
    return PullResult(chapter_id, dest, [dest / local for local in plan.locals], downloaded, len(plan.kept),
                      total_bytes, nodes.switches, data_saver)

def _download_page(reader: AtHomeReader, nodes: _Nodes, name: str, folder: _PullFolder, local: str,
                   stop: threading.Event) -> int | None:
    """One page: fetch, report, and on failure a new base URL; returns its size (None: not started)."""
    part = unique_name(folder.path / local, PART_SUFFIX)
    for attempt in range(1, IMAGE_ATTEMPTS + 1):
        if stop.is_set():
            return None
        generation, node = nodes.current()
        transfer, digest = reader.fetch(node.url(name, nodes.data_saver), part)
        if node.reported:
            reader.report(transfer)
        if transfer.success:
            nodes.served(generation)
            return folder.complete(local, name, part, transfer.bytes, digest)
        part.unlink(missing_ok=True)
        why = transfer.error or f"HTTP {transfer.status}"
        log.info("%s: %s from MangaDex@Home (attempt %d)", local, why, attempt)
        if attempt == IMAGE_ATTEMPTS:
            raise _PageFailed(f"{why}, {IMAGE_ATTEMPTS} attempts")
        try:
            nodes.replace(generation, why)
        except AtHomeError as exc:
            raise _PageFailed(str(exc.message), fatal=True) from None
    raise AssertionError("unreachable")


class _PageFailed(Exception):
    def __init__(self, reason: str, fatal: bool = False):
        super().__init__(reason)
        self.fatal = fatal


class _Nodes:
    """The base URL a chapter is being read from, replaced when it fails; shared by the download threads."""

    def __init__(self, reader: AtHomeReader, node: Node, data_saver: bool):
        self.reader = reader
        self.data_saver = data_saver
        self._lock = threading.Lock()
        self._node = node
        self._generation = 0
        self._served = False  # the current base URL served at least one page
        self._failing_in_a_row = 0
        self.switches = 0

    def current(self) -> tuple[int, Node]:
        with self._lock:
            return self._generation, self._node

    def served(self, generation: int) -> None:
        with self._lock:
            if generation == self._generation:
                self._served = True
                self._failing_in_a_row = 0

    def replace(self, generation: int, why: str) -> None:
        """A page failed on base URL `generation`: ask for a new one (once, whichever thread comes first)."""
        with self._lock:  # the other downloads wait here for the new base URL
            if generation != self._generation:
                return  # already replaced since that page started
            if not self._served:
                self._failing_in_a_row += 1
            if self._failing_in_a_row >= MAX_FAILING_NODES:
                raise AtHomeError(
                    f"MangaDex@Home failed to serve chapter {self._node.chapter_id} from {self._failing_in_a_row} "
                    f"base URLs in a row (last: {why}).")
            fresh = self.reader.server(self._node.chapter_id)
            if fresh.hash != self._node.hash or fresh.names(self.data_saver) != self._node.names(self.data_saver):
                raise AtHomeError(f"chapter {self._node.chapter_id} changed on MangaDex while it was being read.",
                                  hint="Run the same command again to read its new version.")
            log.info("new MangaDex@Home base URL for chapter %s after: %s", self._node.chapter_id, why)
            self._node, self._served = fresh, False
            self._generation += 1
            self.switches += 1


class _PullFolder:
    """A folder `pull` writes into, with its record of the pages it completed (for resuming)."""

    @dataclass
    class Plan:
        locals: list[str]
        kept: set[int]

    def __init__(self, path: Path, chapter_id: str, mode: str):
        self.path = path
        self.chapter_id = chapter_id
        self.mode = mode
        self._lock = threading.Lock()
        self._files: dict[str, dict] = {}

    def plan(self, names: Sequence[str]) -> _PullFolder.Plan:
        """Local names for the server's files, which of them a previous run completed; clears the rest."""
        if self.path.exists() and not self.path.is_dir():
            raise UsageError(f"{self.path} is a file, not a folder.", hint="Give the folder to put the pages in.")
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"cannot create the folder {self.path}: {exc.strerror or exc}.",
                             hint="Choose a folder you may write to.") from None
        record = self._read_record()
        if record and record.get("chapter") != self.chapter_id:
            raise UsageError(f"{self.path} holds the pages of another chapter ({record.get('chapter')}), pulled "
                             "earlier.", hint="Pull each chapter into a folder of its own.")
        recorded = record.get("files", {}) if record else {}
        width = max(3, len(str(len(names))))
        local_names = [f"{index:0{width}d}{_extension(name)}" for index, name in enumerate(names, 1)]
        wanted = set(local_names)
        foreign = [local for local in local_names
                   if local not in recorded and (self.path / local).exists()]
        if foreign:
            raise UsageError(f"{self.path} already holds {', '.join(foreign[:3])}{' ...' if len(foreign) > 3 else ''}, "
                             "which mdupload did not write.",
                             hint="Pull into an empty folder (or a folder an earlier pull of this chapter wrote).")
        kept: set[int] = set()
        for index, (name, local) in enumerate(zip(names, local_names)):
            entry = recorded.get(local)
            target = self.path / local
            if (isinstance(entry, dict) and entry.get("source") == name and target.is_file()
                    and target.stat().st_size == entry.get("size")):
                kept.add(index)
                self._files[local] = entry
            elif entry is not None:
                target.unlink(missing_ok=True)  # written by an earlier pull, but not this page (any more)
        self._remove_leftover_parts(set(local_names))
        for local in set(recorded) - wanted:  # pages of an older version of the chapter, written by pull
            if _is_plain_name(local):
                (self.path / local).unlink(missing_ok=True)
        self._write_record()
        return _PullFolder.Plan(local_names, kept)

    def _remove_leftover_parts(self, local_names: set[str]) -> None:
        """The pages a killed run was downloading (`.001.png.<random>.part`, or `001.png.part` of older
        versions): removed (a link among them is removed itself, never followed)."""
        for entry in os.scandir(self.path):
            match = _LEFTOVER_PART.fullmatch(entry.name)
            if match and (match["new"] or match["old"]) in local_names:
                os.unlink(entry.path)

    def complete(self, local: str, source: str, part: Path, size: int, digest: str) -> int:
        """Move a downloaded page into place and record it."""
        try:
            os.replace(part, self.path / local)
        except OSError as exc:
            raise self._cannot_write(exc) from None
        with self._lock:
            self._files[local] = {"source": source, "size": size, "sha256": digest}
            self._write_record()
        return size

    def _cannot_write(self, exc: OSError) -> AtHomeError:
        return AtHomeError(f"cannot write into {self.path}: {exc.strerror or exc}.",
                           hint="Check that the folder is writable and the disk has room, then run the same command "
                                "again (complete pages are kept).")

    def _read_record(self) -> dict:
        try:
            record = json.loads((self.path / PULL_RECORD).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        return record if isinstance(record, dict) else {}

    def _write_record(self) -> None:
        document = {"version": 1, "chapter": self.chapter_id, "mode": self.mode, "files": dict(sorted(self._files.items()))}
        try:
            write_replacing(self.path / PULL_RECORD, json.dumps(document, indent=1).encode("utf-8"))
        except OSError as exc:
            raise self._cannot_write(exc) from None


def _extension(server_name: str) -> str:
    """The page's extension from the server's file name (lowercase), when it is a plain one."""
    suffix = PurePosixPath(server_name).suffix.lower()
    return suffix if _SAFE_EXTENSION.fullmatch(suffix) else ".img"


def _is_plain_name(local: str) -> bool:
    return bool(re.fullmatch(r"[0-9]{3,}\.[a-z0-9]{1,5}", local))
