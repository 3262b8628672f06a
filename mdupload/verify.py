"""`mdupload verify`: each published chapter of a manifest compared with what MangaDex@Home serves.

Without --download: the page count, and the order when MangaDex@Home's file names carry the uploaded
pages' SHA-256. With it: every page downloaded (pull.py) and compared with the local page: the same
bytes, or else (MangaDex may re-encode a page) the same picture within `PIXEL_TOLERANCE`, never the
dimensions alone.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageChops, ImageStat

from .athome import AtHomeError, AtHomeReader, Node
from .checks import checked_report
from .ledger import Ledger, PageRecord
from .manifest import ChapterSpec, Manifest
from .pull import PullEvents, pull_chapter
from .vocabulary import PUBLISHED_STATES

_HASH_IN_NAME = re.compile(r"(?<![0-9a-f])[0-9a-f]{64}(?![0-9a-f])")


@dataclass(frozen=True)
class PixelTolerance:
    """When two decodings of a page are one picture re-encoded, not two pictures (docs/readback-and-archive.md).

    Both are decoded to RGB at the same size; the luminance of their difference is taken pixel by pixel.
    Measured (tests/corpus/images and the example pages, each re-encoded as JPEG at quality 50 to 95): a
    mean difference of at most 7.3 (of 255), and at most 0.025 % of the pixels off by more than 96. Two
    pages of the example that differ only by a drawn number on a white page: 0.36 on average, but 0.16 %
    of the pixels off by more than 96. A page is the same picture when both bounds below hold; a change
    smaller than 0.05 % of the page (a few letters retouched) is within them, and is not seen.
    """

    mean: float = 8.0  # the mean difference, of 255
    far: int = 96  # a pixel differs "far" by more than this
    far_share: float = 0.0005  # at most this share of the pixels may differ far (0.05 %)


PIXEL_TOLERANCE = PixelTolerance()


@dataclass(frozen=True)
class PageDifference:
    position: int  # 1-based, in reading order
    page: str | None  # the local page (as the user knows it), when there is one
    served: str | None  # MangaDex@Home's file name, when there is one
    problem: str

    def to_json(self) -> dict:
        return {"position": self.position, "page": self.page, "served": self.served, "problem": self.problem}


@dataclass
class ChapterCheck:
    """What `verify` found for one chapter of the manifest."""

    spec: ChapterSpec
    status: str  # verified | processing | differs | not-uploaded | not-found | failed
    chapter_id: str | None = None
    expected: int = 0  # pages uploaded (the ledger)
    served: int | None = None  # pages MangaDex@Home lists
    checked: str | None = None  # what was compared: "count", "names" (hashes in the file names), "pages" (downloaded)
    differences: list[PageDifference] = field(default_factory=list)
    error: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """Verified, or still processing (not an error: MangaDex has not got to it yet)."""
        return self.status in ("verified", "processing")

    def to_json(self) -> dict:
        return {"chapter": self.spec.chapter, "volume": self.spec.volume, "language": self.spec.language,
                "status": self.status, "chapter_id": self.chapter_id, "pages": self.expected,
                "served": self.served, "checked": self.checked,
                "differences": [d.to_json() for d in self.differences], "error": self.error, "notes": self.notes}


# LocalPages(spec) -> {upload_name: (origin, sha256, path)} of the chapter's pages on disk now
LocalPages = Callable[[ChapterSpec], Mapping[str, tuple[str, str, Path]]]


def verify_chapters(manifest: Manifest, specs: Sequence[ChapterSpec], ledger: Ledger | None, reader: AtHomeReader, *,
                    wait_s: float = 0.0, download: bool = False, workdir: Path | None = None,
                    local_pages: LocalPages | None = None, events: PullEvents | None = None,
                    on_wait: Callable[[int, float], None] | None = None) -> list[ChapterCheck]:
    """Check each committed chapter against what MangaDex@Home serves.

    Without `download`: the page count, and the order when MangaDex@Home's file names carry the
    uploaded pages' SHA-256 (they then also show a page that is not the uploaded one). With it: every
    `data` page is downloaded (into `workdir`) and compared with the local page: the same bytes, or
    else the same picture within PIXEL_TOLERANCE (MangaDex may re-encode a page). With no ledger (none was
    ever written), no chapter is published.
    """
    checks: dict[int, ChapterCheck] = {}
    committed: dict[int, tuple[str, list[PageRecord]]] = {}
    for index, spec in enumerate(specs):
        key = manifest.chapter_key(spec, reader.client.transport.api_url)  # the chapter on the MangaDex read
        record = ledger.chapter(key) if ledger is not None else None
        if record is None or not record.chapter_id or record.state not in PUBLISHED_STATES:
            where = f"the ledger {ledger.path}" if ledger is not None else "no ledger (there is none yet)"
            checks[index] = ChapterCheck(spec, "not-uploaded", error=(
                f"{where} records no published chapter for it: upload it first (or point --ledger "
                "at the ledger of the run that uploaded it)."))
            continue
        pages = ledger.pages(key)
        checks[index] = ChapterCheck(spec, "processing", chapter_id=record.chapter_id, expected=len(pages))
        committed[index] = (record.chapter_id, pages)
    found = reader.wait_until_readable([chapter_id for chapter_id, _pages in committed.values()], wait_s, on_wait)
    for index, (chapter_id, pages) in committed.items():
        check = checks[index]
        if chapter_id in found.missing:
            check.status, check.error = "not-found", str(found.missing[chapter_id])
            continue
        node = found.readable.get(chapter_id)
        if node is None:
            check.served = 0  # still processing
            continue
        try:
            _compare(check, pages, node, reader, download=download, workdir=workdir, local_pages=local_pages,
                     events=events, index=index)
        except AtHomeError as exc:
            check.status, check.error = "failed", str(exc)
    return [checks[index] for index in range(len(specs))]


def _compare(check: ChapterCheck, pages: list[PageRecord], node: Node, reader: AtHomeReader, *, download: bool,
             workdir: Path | None, local_pages: LocalPages | None, events: PullEvents | None, index: int) -> None:
    served = list(node.data)
    check.served = len(served)
    if not pages:
        check.notes.append("the ledger lists no pages for this chapter: only its presence was checked")
    if pages:
        for position in range(len(served) + 1, len(pages) + 1):
            check.differences.append(PageDifference(position, pages[position - 1].origin, None,
                                                    "uploaded, but not served by MangaDex@Home"))
        for position in range(len(pages) + 1, len(served) + 1):
            check.differences.append(PageDifference(position, None, served[position - 1],
                                                    "served by MangaDex@Home, but not uploaded"))
    if download:
        if workdir is None or local_pages is None:
            raise ValueError("download needs a workdir and local_pages")
        check.checked = "pages"
        result = pull_chapter(reader, node.chapter_id, workdir / f"served-{index:03d}", node=node, events=events)
        local = local_pages(check.spec)
        for position, (page, path) in enumerate(zip(pages, result.files), 1):
            problem = _page_problem(page, path, local.get(page.upload_name))
            if problem:
                check.differences.append(PageDifference(position, page.origin, served[position - 1], problem))
    else:
        check.checked = _compare_names(check, pages, served)
    check.differences.sort(key=lambda d: d.position)
    check.status = "differs" if check.differences else "verified"


def _compare_names(check: ChapterCheck, pages: list[PageRecord], served: list[str]) -> str:
    """Compare the SHA-256 in MangaDex@Home's file names (when they carry one) with the uploaded pages'."""
    found = [_HASH_IN_NAME.search(name) for name in served]
    hashes = [m.group(0) if m else None for m in found]
    uploaded = {p.sha256.lower() for p in pages}
    if not pages or None in hashes or not uploaded & set(hashes):
        check.notes.append("MangaDex@Home's file names do not show the uploaded pages' hashes: only the page count "
                           "was checked (use --download to compare every page)")
        return "count"
    for position, (page, name, digest) in enumerate(zip(pages, served, hashes), 1):
        if digest == page.sha256.lower():
            continue
        if digest in uploaded:
            problem = "out of order: MangaDex@Home serves another uploaded page here"
        else:
            problem = "MangaDex@Home serves a file that is not the uploaded page"
        check.differences.append(PageDifference(position, page.origin, name, problem))
    return "names"


def _page_problem(page: PageRecord, served: Path, local: tuple[str, str, Path] | None) -> str | None:
    """None when the served file is the local page: the same bytes, or the same picture re-encoded."""
    digest = _sha256(served)
    reference = local[1] if local else page.sha256
    if digest == reference.lower():
        return None
    if local is None:
        return "the served file is not the uploaded page, and the local page is no longer there to compare it with"
    return _picture_difference(served, local[2])


def _picture_difference(served: Path, local: Path, tolerance: PixelTolerance = PIXEL_TOLERANCE) -> str | None:
    """None when the two files decode to the same picture within `tolerance`; else what differs."""
    served_image, local_image = _decoded(served), _decoded(local)
    if served_image is None:
        return "the served file is not an image that can be read"
    if local_image is None:
        return "the served file differs from the local page, which cannot be read"
    if served_image.size != local_image.size:
        return (f"served {served_image.width}x{served_image.height} px, the local page is "
                f"{local_image.width}x{local_image.height} px")
    difference = ImageChops.difference(served_image, local_image).convert("L")
    mean = ImageStat.Stat(difference).mean[0]
    far = sum(difference.histogram()[tolerance.far + 1:]) / (difference.width * difference.height)
    if mean <= tolerance.mean and far <= tolerance.far_share:
        return None  # MangaDex re-encoded it: the same picture
    return (f"another picture of the same size ({served_image.width}x{served_image.height} px): the pixels differ "
            f"by {mean:.1f}/255 on average, {far:.1%} of them by more than {tolerance.far}")


def _decoded(path: Path) -> Image.Image | None:
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except Exception:  # noqa: BLE001 - anything Pillow cannot read (or refuses as a bomb) is "not an image"
        return None


def local_pages_from_disk(workdir: Path, fix_cache: Path | None = None) -> LocalPages:
    """The LocalPages of the manifest's chapters as they are on disk now, checked (and repaired as
    `--fix` would, so a repaired upload finds its repaired pages) into `workdir`."""
    counter = iter(range(1_000_000))

    def pages(spec: ChapterSpec):
        report = checked_report(spec, Path(workdir) / f"local-{next(counter):03d}", fix_cache)
        return {r.page.upload_name: (r.page.origin, r.sha256, r.page.path) for r in report.pages}

    return pages


def _sha256(path: Path) -> str:
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()
