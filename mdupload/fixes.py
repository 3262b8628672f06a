"""Repairs for pages MangaDex would refuse, applied only when asked (`--fix`, `fix: true`).

`plan_fix(report)` says what `--fix` would do to one checked page, without doing it (`validate`
shows it as a preview). `apply_fixes(reports, workdir)` does it: it writes repaired copies into a
work folder (the originals are never touched), in parallel, reusing earlier results from a cache
keyed by the source's SHA-256 and the fix, and says what was done to which page.

The repairs:
- a long strip (or a wide spread) is split into pieces whose longer side is at most 10,000 px,
  cut at the flattest rows (columns) near balanced cut points, such as the gutter between panels;
- WebP, AVIF, BMP and TIFF become PNG when the source has transparency, a palette or is lossless,
  JPEG (quality 95, 4:4:4) when it is lossy, GIF when it is animated; the ICC profile is kept and
  the EXIF orientation is applied;
- a name that disagrees with the bytes gets the right extension (same bytes, not re-encoded);
- a page over 20 MB is re-encoded: PNG at maximum compression, else JPEG at the highest quality
  that fits (reported as lossy), else it is reported as not fixable.
The checks name each fixable problem's repair with `plan_fix`, and `checks.fix_chapter` applies
them to a chapter and checks the result again (the 150 MB / 500 pages rules included).
"""

from __future__ import annotations

import bisect
import hashlib
import io
import itertools
import json
import logging
import math
import multiprocessing
import os
import shutil
import warnings
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from pathlib import Path, PurePath

from PIL import (
    ExifTags,
    Image,
    ImageChops,
    ImageCms,
    ImageOps,
    ImageSequence,
    JpegImagePlugin,
)

from .errors import PageError
from .images import CONVERTIBLE_FORMATS, MAX_PIXELS, PageReport, Problem, megabytes
from .limits import ACCEPTED_FORMATS, BYTES_PER_FILE, MAX_SIDE_PX
from .pages import Page

log = logging.getLogger(__name__)

FORMAT_NAMES = {"WEBP": "WebP"}  # Pillow's format names, where users know another spelling
EXTENSIONS = {fmt: exts[0] for fmt, (_mime, exts) in ACCEPTED_FORMATS.items()}

# The largest image a fix decodes is images.MAX_PIXELS (120 megapixels, an 800 x 150,000 px strip:
# at most 480 MB decoded, 4 bytes a pixel, per worker), the bound the checks refuse pages beyond. It
# stays below Pillow's own hard limit (2 x Image.MAX_IMAGE_PIXELS), which keeps guarding everything
# else; only the DecompressionBombWarning is silenced, only while a fix opens a page it has checked
# against the bound. Image.MAX_IMAGE_PIXELS itself is never changed.

JPEG_QUALITY = 95  # lossy sources, 4:4:4 chroma
JPEG_MIN_QUALITY = 50  # below this a page is reported as not fixable rather than ruined

# Cutting strips: rows are scored on a grey copy reduced to about PROFILE_SAMPLES columns, made
# PROFILE_BAND rows at a time; pieces are planned at PIECE_TARGET px at most so that every cut can
# move up to CUT_WINDOW px from its balanced point toward a quiet row without passing the limit.
PROFILE_SAMPLES = 200
PROFILE_BAND = 2048
PIECE_TARGET = MAX_SIDE_PX * 9 // 10
CUT_WINDOW = MAX_SIDE_PX // 5
SMOOTH_ROWS = 4  # a cut's score sums the row scores this many rows on each side
QUIET_ROW_SCORE = 4  # grey levels (spread of the two rows + step between them) a quiet cut may have
FLAT_SLACK = 1  # grey levels per row within which two cuts count as equally flat

FIX_VERSION = 1  # part of the cache key: bump it whenever the output bytes of a fix change
DEFAULT_JOBS = 4  # each worker holds one decoded page: the bound on memory is jobs x one page

_ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}
_PNG_MODES = {"1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA"}
_JPEG_MODES = {"L", "RGB", "CMYK"}
_REDUCIBLE_MODES = {"L", "LA", "RGB", "RGBA", "CMYK", "I", "F"}


@dataclass(frozen=True)
class FixPlan:
    """What `--fix` would do to one page.

    When `fixable` is False, `description` says why the page cannot be repaired automatically and
    what the user can do instead.
    """

    fixable: bool
    description: str
    output_format: str | None = None  # "JPEG", "PNG" or "GIF": the page is re-encoded; None: bytes kept
    extension: str | None = None  # of the repaired page(s)
    split: str | None = None  # "rows" (a tall strip, top to bottom) or "columns" (a wide spread, left to right)
    pieces: int = 1
    shrink: bool = False  # re-encoded only to come under 20 MB: start with the smallest encodings
    conversion: str | None = None  # "WebP to PNG (lossless, keeps the transparency)"

    @property
    def key(self) -> str:
        """Everything besides the source's bytes that decides the output bytes (for the cache)."""
        return f"v{FIX_VERSION}:{self.output_format}:{self.split}:{self.pieces}:{self.shrink}"


@dataclass
class FixedPage:
    """One checked page after `apply_fixes`: the page(s) that replace it and what was done."""

    source: Page
    pages: list[Page]  # in reading order; the source itself when nothing was done or it cannot be fixed
    done: list[str] = field(default_factory=list)  # what was done, in order, with the numbers
    problems: list[Problem] = field(default_factory=list)  # left after the fix: the page cannot be fixed
    reused: bool = False  # the result came from the fix cache: no image work was done

    def to_json(self) -> dict:
        """What was done to which page (its problems are listed with the page's own)."""
        return {
            "page": self.source.origin,
            "done": self.done,
            "pages": [page.upload_name for page in self.pages],
            "reused": self.reused,
        }


# --- planning ------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Source:
    """What the header of a page says, as displayed (EXIF orientation applied to the size)."""

    format: str
    width: int
    height: int
    frames: int
    orientation: int
    has_alpha: bool
    palette: bool
    lossless: bool


def plan_fix(report: PageReport) -> FixPlan | None:
    """What `--fix` would do to this page.

    None when it needs no fix (or cannot be read: the checks say why). Decided from the report (real
    format, size, name) and the page's header, never by decoding the pixels; the checks use its
    description as the fix of every fixable problem of the page.
    """
    fmt = report.format
    if fmt not in ACCEPTED_FORMATS and fmt not in CONVERTIBLE_FORMATS:
        return None
    try:
        source = _probe(Path(report.page.path), fmt)
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError):
        return None  # the checks say why it cannot be read
    name = PurePath(report.page.upload_name)
    extension = name.suffix.lower().lstrip(".")
    convert = fmt in CONVERTIBLE_FORMATS
    long_side = max(source.width, source.height)
    too_long = long_side > MAX_SIDE_PX
    too_big = report.size > BYTES_PER_FILE
    misnamed = fmt in ACCEPTED_FORMATS and extension not in ACCEPTED_FORMATS[fmt][1]
    if not (convert or too_long or too_big or misnamed):
        return None

    blocker = _blocker(source, report.size, reencode=convert or too_long or too_big, too_long=too_long)
    if blocker:
        return FixPlan(fixable=False, description=blocker)

    steps = []
    conversion = None
    if convert:
        output, why = _conversion(source)
        what = f"animated {FORMAT_NAMES.get(fmt, fmt)}" if source.frames > 1 else FORMAT_NAMES.get(fmt, fmt)
        conversion = f"{what} to {output} ({why})"
        steps.append(f"convert {conversion}")
    else:
        output = fmt if (too_long or too_big) else None
    if output and source.orientation != 1:
        steps.append(f"turn it upright (EXIF orientation {source.orientation})")
    split = None
    pieces = 1
    if too_long:
        split = "rows" if source.height >= source.width else "columns"
        pieces = piece_count(long_side)
        where = "quiet rows, top to bottom" if split == "rows" else "quiet columns, left to right"
        steps.append(f"split into {pieces} pages of at most {MAX_SIDE_PX:,} px at {where}")
    shrink = too_big and not convert and not too_long
    if shrink:
        if fmt == "JPEG":
            steps.append(f"re-encode it as JPEG at the highest quality under {megabytes(BYTES_PER_FILE)} (lossy)")
        else:
            steps.append(f"re-encode it under {megabytes(BYTES_PER_FILE)}: PNG at maximum compression, else JPEG "
                         "at the highest quality that fits (lossy)")
    new_extension = EXTENSIONS[output or fmt]
    if misnamed:
        if output:
            steps.append(f"name it .{new_extension}")
        else:
            steps.append(f"rename it to {name.stem}.{new_extension} and send it as {ACCEPTED_FORMATS[fmt][0]} "
                         "(the same bytes, not re-encoded)")
    return FixPlan(fixable=True, description=", then ".join(steps), output_format=output,
                   extension=new_extension, split=split, pieces=pieces, shrink=shrink, conversion=conversion)


def _probe(path: Path, fmt: str) -> _Source:
    with _open_image(path) as im:
        frames = _frames(im)
        orientation = 1
        if frames == 1:
            orientation = im.getexif().get(ExifTags.Base.Orientation, 1)
            if orientation not in range(1, 9):
                orientation = 1
        width, height = im.size
        if orientation in (5, 6, 7, 8):
            width, height = height, width
        if fmt == "WEBP":
            lossless = _webp_is_lossless(path)
        elif fmt == "TIFF":
            lossless = im.info.get("compression") not in ("jpeg", "tiff_jpeg")
        else:
            lossless = fmt in ("PNG", "GIF", "BMP")
        return _Source(format=fmt, width=width, height=height, frames=frames, orientation=orientation,
                       has_alpha=im.mode in _ALPHA_MODES or "transparency" in im.info,
                       palette=im.mode in ("P", "PA", "1"), lossless=lossless)


def _webp_is_lossless(path: Path) -> bool:
    """True when the first image chunk of the WebP file is VP8L (lossless)."""
    with open(path, "rb") as f:
        header = f.read(12)
        if header[:4] != b"RIFF" or header[8:12] != b"WEBP":
            return False
        while len(chunk := f.read(8)) == 8:
            fourcc, size = chunk[:4], int.from_bytes(chunk[4:], "little")
            if fourcc == b"VP8L":
                return True
            if fourcc in (b"VP8 ", b"ANMF"):
                return False
            f.seek(size + (size & 1), os.SEEK_CUR)
    return False


def _blocker(source: _Source, size: int, *, reencode: bool, too_long: bool) -> str | None:
    """Why this page cannot be repaired automatically, and what to do instead; None when it can."""
    w, h = source.width, source.height
    if reencode and w * h * source.frames > MAX_PIXELS:
        return (f"{w:,} x {h:,} px{f' x {source.frames} frames' if source.frames > 1 else ''} is more than the "
                f"{MAX_PIXELS // 1_000_000} megapixels mdupload decodes to repair a page: split or scale it "
                "with an image editor")
    if source.frames > 1 and source.format == "TIFF":
        return f"the TIFF holds {source.frames} images: save each as its own page"
    if source.frames > 1 and too_long:
        return (f"an animated page of {w:,} x {h:,} px cannot be split: scale it down to at most "
                f"{MAX_SIDE_PX:,} px per side")
    if source.frames > 1 and source.format not in CONVERTIBLE_FORMATS and reencode:
        return (f"an animated {source.format} of {megabytes(size)} cannot be made smaller than "
                f"{megabytes(BYTES_PER_FILE)} without changing the animation: remove frames or colours, or scale it "
                "down")
    if min(w, h) > MAX_SIDE_PX:
        return f"both sides of {w:,} x {h:,} px are over {MAX_SIDE_PX:,} px: scale it down"
    return None


def _conversion(source: _Source) -> tuple[str, str]:
    """The format a page MangaDex refuses becomes, and why."""
    if source.frames > 1:
        return "GIF", f"{source.frames} frames, durations kept"
    if source.has_alpha:
        return "PNG", "lossless, keeps the transparency"
    if source.palette:
        return "PNG", "lossless, palette image"
    if source.lossless:
        return "PNG", "lossless, like the source"
    return "JPEG", f"quality {JPEG_QUALITY}, 4:4:4; the source is lossy"


# --- applying ------------------------------------------------------------------------------------

def apply_fixes(reports: Sequence[PageReport], workdir: Path, *, jobs: int | None = None,
                cache_dir: Path | None = None) -> list[FixedPage]:
    """Repair every page `plan_fix` has a fix for; one FixedPage per report, in the same order.

    A page whose checks found an error is left as it is: it cannot be uploaded anyway. `workdir` is
    a folder of this chapter's own: the repaired pages are written there under their upload names.
    Results are kept in `cache_dir` (default `workdir/.fix-cache`), keyed by the source's SHA-256
    and the fix, so a page seen again is not worked on again. `jobs` worker processes (default: the
    CPUs, at most DEFAULT_JOBS) each hold one decoded page at a time.
    """
    workdir = Path(workdir)
    cache = Path(cache_dir) if cache_dir is not None else workdir / ".fix-cache"
    try:
        workdir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PageError(f"cannot create the folder for repaired pages: {exc.strerror}", path=exc.filename) from exc
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:  # the cache only saves time: repair without it, in the work folder
        log.warning("cannot use the fix cache %s (%s): set MDUPLOAD_CACHE_DIR to a writable folder to keep "
                     "repaired pages between runs", cache, exc.strerror)
        cache = workdir / ".fix-cache"
        cache.mkdir(exist_ok=True)

    plans = [None if any(p.severity == "error" for p in report.problems) else plan_fix(report)
             for report in reports]
    entries: dict[int, Path] = {}
    todo: dict[Path, tuple[str, FixPlan]] = {}
    for index, (report, plan) in enumerate(zip(reports, plans)):
        if plan is not None and plan.fixable and plan.output_format is not None:
            entry = cache / f"{report.sha256}-{hashlib.sha256(plan.key.encode()).hexdigest()[:16]}"
            entries[index] = entry
            if not (entry / RESULT).exists():
                todo.setdefault(entry, (str(report.page.path), plan))
    _run_all(todo, jobs, workdir)

    taken = {report.page.upload_name for report, plan in zip(reports, plans) if plan is None or not plan.fixable}
    fixed = []
    for index, (report, plan) in enumerate(zip(reports, plans)):
        page = report.page
        if plan is None:
            fixed.append(FixedPage(source=page, pages=[page]))
        elif not plan.fixable:
            fixed.append(FixedPage(source=page, pages=[page], problems=[
                Problem("not-fixable", "error", "--fix cannot repair this page", plan.description)]))
        elif plan.output_format is None:
            name = _unique_name(_stem(page.upload_name), plan.extension, taken)
            _place(Path(page.path), workdir / name)
            fixed.append(FixedPage(source=page, pages=[Page(path=workdir / name, origin=page.origin, upload_name=name)],
                                   done=[f"renamed to {name} (the bytes are {report.format}; not re-encoded)"]))
        else:
            fixed.append(_collect(page, entries[index], workdir, taken, reused=entries[index] not in todo))
    return fixed


def _run_all(todo: dict[Path, tuple[str, FixPlan]], jobs: int | None, workdir: Path) -> None:
    """Run the fixes the cache does not hold yet, in worker processes when there is more than one."""
    workers = min(jobs or min(DEFAULT_JOBS, os.cpu_count() or 1), len(todo))
    try:
        if workers <= 1:
            for entry, (source, plan) in todo.items():
                _fix_into(source, plan, str(entry))
            return
        # "spawn", as for the checks: a forked child could inherit a lock held by another thread.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
            futures = [pool.submit(_fix_into, source, plan, str(entry)) for entry, (source, plan) in todo.items()]
            for future in futures:
                future.result()
    except BrokenProcessPool as exc:
        raise PageError("a process repairing the pages died (out of memory on a huge page?)", path=workdir,
                        hint="Find the page that is far larger than the others and re-export it smaller.") from exc
    except OSError as exc:
        raise PageError(f"cannot write the repaired pages ({exc.strerror or exc})",
                        path=exc.filename or workdir) from exc


def _collect(page: Page, entry: Path, workdir: Path, taken: set[str], *, reused: bool) -> FixedPage:
    """Link one result's files into the work folder under their upload names."""
    failed = entry.with_name(entry.name + FAILED)
    result = json.loads((entry / RESULT if (entry / RESULT).exists() else failed).read_text())
    if reused:
        log.debug("fix cache hit for %s: %s", page.origin, entry.name)
    if result["problem"]:
        problem = Problem(severity="error", **result["problem"])
        return FixedPage(source=page, pages=[page], done=result["done"], problems=[problem], reused=reused)
    outputs = result["outputs"]
    stem = _stem(page.upload_name)
    pages = []
    for number, output in enumerate(outputs, 1):
        many = len(outputs) > 1
        name = _unique_name(f"{stem}-{number}" if many else stem, EXTENSIONS[output["format"]], taken)
        _place(entry / output["file"], workdir / name)
        origin = f"{page.origin} (piece {number} of {len(outputs)})" if many else page.origin
        pages.append(Page(path=workdir / name, origin=origin, upload_name=name))
    return FixedPage(source=page, pages=pages, done=result["done"], reused=reused)


def _stem(name: str) -> str:
    return name.rpartition(".")[0] or name


def _unique_name(stem: str, extension: str, taken: set[str]) -> str:
    """`stem.extension`, made unique among `taken` (which it joins)."""
    candidate = f"{stem}.{extension}"
    number = 2
    while candidate in taken:
        candidate = f"{stem}_{number}.{extension}"
        number += 1
    taken.add(candidate)
    return candidate


def _place(source: Path, target: Path) -> None:
    """Put `source`'s bytes at `target`: a hard link when possible, else a copy. `source` is only read."""
    target.unlink(missing_ok=True)
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


# --- the work, in a worker process ---------------------------------------------------------------

RESULT = "result.json"
FAILED = ".failed.json"
SCALE_DOWN = "scale the page down or split it in your editor, then check it again"


class _CannotFix(Exception):
    """The page cannot be repaired within MangaDex's limits (a definite answer, cached)."""

    def __init__(self, code: str, message: str, fix: str):
        super().__init__(message)
        self.code = code
        self.fix = fix


def _fix_into(source: str, plan: FixPlan, entry: str) -> None:
    """Repair one page into the cache folder `entry`: written whole under a scratch name, then renamed.

    An answer that the page cannot be repaired is cached like a repair. A failure to decode it is
    not: it goes to `<entry>.failed.json`, read by this run only, so a later run tries again.
    """
    final = Path(entry)
    scratch = final.with_name(f"{final.name}.tmp-{os.getpid()}")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    done: list[str] = []
    result = {"outputs": [], "done": done, "problem": None}
    try:
        result["outputs"] = _repair(Path(source), plan, scratch, done)
    except _CannotFix as exc:
        result["problem"] = {"code": exc.code, "message": str(exc), "fix": exc.fix}
    except Exception as exc:  # noqa: BLE001 - whatever Pillow raises on bad pixel data becomes a page problem
        result["problem"] = {"code": "corrupt", "message": f"--fix could not decode it ({exc})",
                             "fix": "the file is probably damaged: copy or download it again, or re-export the page"}
        final.with_name(final.name + FAILED).write_text(json.dumps(result, indent=1))
        shutil.rmtree(scratch)
        return
    (scratch / RESULT).write_text(json.dumps(result, indent=1))
    try:
        scratch.rename(final)
    except OSError:  # another run wrote the same entry first: its result is the same
        shutil.rmtree(scratch)


def _repair(source: Path, plan: FixPlan, out: Path, done: list[str]) -> list[dict]:
    """Decode the page once, repair it, and write its piece(s) into `out`; returns what was written."""
    with _open_image(source) as im:
        width, height = im.size
        frames = _frames(im)
        if width * height * frames > MAX_PIXELS:
            raise _CannotFix("bomb", f"{width:,} x {height:,} px is more than the {MAX_PIXELS // 1_000_000} "
                                     "megapixels mdupload decodes to repair a page", SCALE_DOWN)
        if frames > 1:  # plan_fix allows this only for an animated WebP/AVIF becoming a GIF
            return [_write(out, 1, *_animation_to_gif(im, plan, done))]
        icc = im.info.get("icc_profile")
        jpeg = _jpeg_tables(im) if im.format in ("JPEG", "MPO") and plan.output_format == "JPEG" else None
        orientation = im.getexif().get(ExifTags.Base.Orientation, 1)
        return _repair_image(im, plan, icc, jpeg, orientation, out, done)


def _repair_image(im: Image.Image, plan: FixPlan, icc: bytes | None, jpeg: _JpegTables | None, orientation: int,
                  out: Path, done: list[str]) -> list[dict]:
    im.load()
    align = 1
    if orientation in range(2, 9):
        im = ImageOps.exif_transpose(im)
        done.append(f"turned upright (EXIF orientation {orientation}): {im.width:,} x {im.height:,} px")
    elif jpeg is not None and plan.split:
        align = jpeg.blocks[0 if plan.split == "rows" else 1]
    im, icc = _ready_for(im, plan.output_format, icc)
    if plan.conversion:
        done.append(f"converted {plan.conversion}" + (", ICC profile kept" if icc else ""))
    boxes = _split(im, plan.split, plan.pieces, align, done) if plan.split else [(0, 0, im.width, im.height)]
    outputs = []
    for number, box in enumerate(boxes, 1):
        piece = im if len(boxes) == 1 else im.crop(box)
        label = f"piece {number} of {len(boxes)}: " if len(boxes) > 1 else ""
        data, fmt = _encode(piece, plan.output_format, icc, jpeg, plan.shrink, label, done)
        outputs.append(_write(out, number, data, fmt, piece.size))
    return outputs


def _write(out: Path, number: int, data: bytes, fmt: str, size: tuple[int, int]) -> dict:
    name = f"{number}.{EXTENSIONS[fmt]}"
    (out / name).write_bytes(data)
    return {"file": name, "format": fmt, "width": size[0], "height": size[1], "size": len(data)}


def _frames(im: Image.Image) -> int:
    """Frames of an animation; an MPO (a JPEG with extra pictures from a camera) is one picture."""
    return 1 if im.format == "MPO" else getattr(im, "n_frames", 1)


def _open_image(path: Path) -> Image.Image:
    """Open a page lazily, with Pillow's bomb warning silenced for this call only.

    The callers check the size against MAX_PIXELS before decoding anything; Pillow's hard
    limit (DecompressionBombError at 2 x Image.MAX_IMAGE_PIXELS) still applies.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return Image.open(path)


@dataclass(frozen=True)
class _JpegTables:
    """A JPEG source's quantisation tables, chroma subsampling and block size (rows, columns).

    JPEG pieces of a JPEG strip are encoded with them: the source's own quality, and since the
    cuts fall on block boundaries the pieces decode almost exactly as the strip did.
    """

    qtables: dict
    subsampling: int
    blocks: tuple[int, int]


def _jpeg_tables(im) -> _JpegTables | None:
    sampling = JpegImagePlugin.get_sampling(im)
    if sampling < 0:
        return None
    return _JpegTables(qtables=im.quantization, subsampling=sampling,
                       blocks=(8 * max(v for _id, _h, v, _tq in im.layer), 8 * max(h for _id, h, _v, _tq in im.layer)))


def _ready_for(im: Image.Image, fmt: str, icc: bytes | None) -> tuple[Image.Image, bytes | None]:
    """The image in a mode `fmt` stores (CMYK goes to sRGB through its ICC profile when it has one)."""
    if fmt == "GIF" or im.mode in (_JPEG_MODES if fmt == "JPEG" else _PNG_MODES):
        return im, icc
    if im.mode == "CMYK" and icc:
        try:
            srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
            return ImageCms.profileToProfile(im, ImageCms.ImageCmsProfile(io.BytesIO(icc)), srgb,
                                             outputMode="RGB"), srgb.tobytes()
        except ImageCms.PyCMSError:
            return im.convert("RGB"), None
    if im.mode == "CMYK":
        return im.convert("RGB"), None
    if fmt == "PNG" and (im.mode in _ALPHA_MODES or "transparency" in im.info):
        return im.convert("RGBA"), icc
    if fmt == "JPEG" and im.mode in ("1", "LA", "La", "I", "I;16", "F"):
        return im.convert("L"), icc
    return im.convert("RGB"), icc


def _animation_to_gif(im: Image.Image, plan: FixPlan, done: list[str]) -> tuple[bytes, str, tuple[int, int]]:
    frames, durations = [], []
    for frame in ImageSequence.Iterator(im):
        frames.append(frame.convert("RGBA"))
        durations.append(int(frame.info.get("duration", 100)))
    buffer = io.BytesIO()
    frames[0].save(buffer, "GIF", save_all=True, append_images=frames[1:], duration=durations,
                   loop=im.info.get("loop", 0), disposal=2)
    data = buffer.getvalue()
    done.append(f"converted {plan.conversion}: {megabytes(len(data))} (GIF holds at most 256 colours per frame)")
    if len(data) > BYTES_PER_FILE:
        raise _CannotFix("file-too-large", f"as a GIF it is {megabytes(len(data))}; MangaDex takes at most "
                                           f"{megabytes(BYTES_PER_FILE)} per file",
                         "make the animation smaller in your editor (fewer frames, colours or pixels)")
    return data, "GIF", frames[0].size


# --- encoding under 20 MB ------------------------------------------------------------------------

def _encode(im: Image.Image, fmt: str, icc: bytes | None, jpeg: _JpegTables | None, shrink: bool, label: str,
            done: list[str]) -> tuple[bytes, str]:
    """Encode in `fmt`; past 20 MB, PNG at maximum compression, then JPEG at the best quality that fits."""
    if not shrink:
        data = _save(im, fmt, icc, jpeg=jpeg)
        if len(data) <= BYTES_PER_FILE:
            return data, fmt
        done.append(f"{label}as {fmt} it is {megabytes(len(data))}, over {megabytes(BYTES_PER_FILE)}")
    tried = ""
    if fmt in ("PNG", "GIF"):
        png = _ready_for(im, "PNG", icc)[0]
        data = _save(png, "PNG", icc, optimize=True)
        if len(data) <= BYTES_PER_FILE:
            done.append(f"{label}re-encoded as PNG at maximum compression: {megabytes(len(data))} (lossless)")
            return data, "PNG"
        tried = f"at maximum PNG compression it is {megabytes(len(data))}; "
        if png.mode in _ALPHA_MODES or "transparency" in png.info:
            raise _CannotFix("file-too-large", f"{label}{tried}JPEG cannot keep its transparency, and MangaDex "
                                               f"takes at most {megabytes(BYTES_PER_FILE)} per file", SCALE_DOWN)
    photo, icc = _ready_for(im, "JPEG", icc)
    quality, data = _best_jpeg(photo, icc)
    if len(data) > BYTES_PER_FILE:
        raise _CannotFix("file-too-large", f"{label}{tried}even as JPEG quality {quality} it is "
                                           f"{megabytes(len(data))}; MangaDex takes at most "
                                           f"{megabytes(BYTES_PER_FILE)} per file", SCALE_DOWN)
    done.append(f"{label}{tried}re-encoded as JPEG quality {quality} (4:4:4) to fit under "
                f"{megabytes(BYTES_PER_FILE)}: {megabytes(len(data))} (lossy)")
    return data, "JPEG"


def _best_jpeg(im: Image.Image, icc: bytes | None) -> tuple[int, bytes]:
    """The highest quality in [JPEG_MIN_QUALITY, JPEG_QUALITY] whose JPEG fits, by binary search.

    When none fits, the lowest quality and its (too big) bytes.
    """
    data = _save(im, "JPEG", icc, quality=JPEG_QUALITY)
    if len(data) <= BYTES_PER_FILE:
        return JPEG_QUALITY, data
    low, high = JPEG_MIN_QUALITY, JPEG_QUALITY  # `high` does not fit
    best = _save(im, "JPEG", icc, quality=low)
    if len(best) > BYTES_PER_FILE:
        return low, best
    while high - low > 1:
        middle = (low + high) // 2
        data = _save(im, "JPEG", icc, quality=middle)
        if len(data) <= BYTES_PER_FILE:
            low, best = middle, data
        else:
            high = middle
    return low, best


def _save(im: Image.Image, fmt: str, icc: bytes | None, *, jpeg: _JpegTables | None = None,
          quality: int = JPEG_QUALITY, optimize: bool = False) -> bytes:
    buffer = io.BytesIO()
    options = {"icc_profile": icc} if icc and fmt != "GIF" else {}
    if fmt == "JPEG":
        if jpeg is not None:
            options.update(qtables=jpeg.qtables, subsampling=jpeg.subsampling)
        else:
            options.update(quality=quality, subsampling=0)
        im.save(buffer, "JPEG", **options)
    elif fmt == "PNG":
        im.save(buffer, "PNG", optimize=optimize, **options)
    else:
        im.save(buffer, fmt, **options)
    return buffer.getvalue()


# --- cutting strips ------------------------------------------------------------------------------

def piece_count(length: int) -> int:
    """How many pieces a strip of `length` px becomes: pieces of about PIECE_TARGET px at most.

    Planning below the 10,000 px limit leaves every cut room to move to a quiet row.
    """
    return math.ceil(length / PIECE_TARGET)


def _split(im: Image.Image, axis: str, pieces: int, align: int, done: list[str]) -> list[tuple[int, int, int, int]]:
    """Boxes of the pieces, in reading order (top to bottom, or left to right)."""
    length = im.height if axis == "rows" else im.width
    cuts = choose_cuts(_cut_scores(im, axis), length, pieces, align=align)
    edges = [0, *(cut for cut, _quiet in cuts), length]
    sizes = [b - a for a, b in zip(edges, edges[1:])]
    unit = "row" if axis == "rows" else "column"
    text = (f"split into {len(sizes)} pages at {unit}s {', '.join(f'{cut:,}' for cut, _q in cuts)} "
            f"({'heights' if axis == 'rows' else 'widths'} {', '.join(f'{s:,}' for s in sizes)} px)")
    forced = [f"{cut:,}" for cut, quiet in cuts if not quiet]
    if len(forced) == 1:
        text += f"; no quiet {unit} near {forced[0]}, so that cut goes through the artwork"
    elif forced:
        text += f"; no quiet {unit} near {', '.join(forced)}, so those cuts go through the artwork"
    done.append(text)
    if axis == "rows":
        return [(0, a, im.width, b) for a, b in zip(edges, edges[1:])]
    return [(a, 0, b, im.height) for a, b in zip(edges, edges[1:])]


def _cut_scores(im: Image.Image, axis: str) -> list[int]:
    """How much a cut before row (column) c disturbs the picture, for c in 0..length (lower = flatter).

    A row's score is its spread (mean distance of its pixels from the row's mean) plus its step
    (mean difference from the next row), in grey levels, on a grey copy reduced across the cut
    direction only (so cuts stay exact to the pixel), made band by band (so the strip is never
    copied whole); a cut's score sums the two rows around it, smoothed over SMOOTH_ROWS each side.
    """
    length = im.height if axis == "rows" else im.width
    spread = bytearray()  # per row
    step = bytearray()  # between row y and y + 1
    for top in range(0, length, PROFILE_BAND):
        bottom = min(length, top + PROFILE_BAND + 1)  # one row more, for the step into the next band
        grey = _grey_band(im, axis, top, bottom)
        width, rows = grey.size
        row_mean = grey.reduce((width, 1)).resize((width, rows), Image.Resampling.NEAREST)
        band_spread = ImageChops.difference(grey, row_mean).reduce((width, 1)).tobytes()
        spread += band_spread[:PROFILE_BAND]
        if rows > 1:
            step += ImageChops.difference(grey.crop((0, 1, width, rows)), grey.crop((0, 0, width, rows - 1))) \
                .reduce((width, 1)).tobytes()
    raw = [0] * (length + 1)
    for c in range(1, length):
        raw[c] = spread[c - 1] + spread[c] + step[c - 1]
    prefix = [0]
    for value in raw:
        prefix.append(prefix[-1] + value)
    scores = [0] * (length + 1)
    for c in range(1, length):
        low, high = max(1, c - SMOOTH_ROWS), min(length - 1, c + SMOOTH_ROWS)
        scores[c] = (prefix[high + 1] - prefix[low]) * (2 * SMOOTH_ROWS + 1) // (high - low + 1)
    return scores


def _grey_band(im: Image.Image, axis: str, top: int, bottom: int) -> Image.Image:
    """Rows (columns) top..bottom of the image in grey, reduced to about PROFILE_SAMPLES across, as rows."""
    across = im.width if axis == "rows" else im.height
    factor = max(1, across // PROFILE_SAMPLES)
    band = im.crop((0, top, im.width, bottom) if axis == "rows" else (top, 0, bottom, im.height))
    if band.mode not in _REDUCIBLE_MODES:
        band = band.convert("L")
    grey = band.reduce((factor, 1) if axis == "rows" else (1, factor)).convert("L")
    return grey if axis == "rows" else grey.transpose(Image.Transpose.TRANSPOSE)


def choose_cuts(scores: Sequence[int], length: int, pieces: int, *, limit: int = MAX_SIDE_PX,
                align: int = 1) -> list[tuple[int, bool]]:
    """Where to cut a strip of `length` rows into `pieces` of at most `limit`, and whether each cut is quiet.

    One cut at a time, top down: the balanced cut point splits what is left evenly among the pieces
    still to make, and the cut is searched within CUT_WINDOW rows of it, where every piece still
    fits. There, each band of quiet rows offers its middle row, and the band chosen is: one after
    which the rest of the strip can still be cut at quiet rows (looking ahead over the quiet bands
    of the whole strip) if there is one; among those, the flattest (within FLAT_SLACK per row); then
    the nearest the balanced point; then the one making the longer piece. With no quiet row in the
    window, the cut is the balanced point itself. `align` keeps cuts on its multiples (JPEG blocks)
    when the window has one. Deterministic: the same scores give the same cuts.
    """
    smooth = 2 * SMOOTH_ROWS + 1
    quiet, slack = QUIET_ROW_SCORE * smooth, FLAT_SLACK * smooth
    finishes = _finishing(_quiet_bands(scores, range(1, length), quiet), length, pieces, limit)

    cuts: list[tuple[int, bool]] = []
    start = 0
    for left in range(pieces, 1, -1):  # `left` pieces still to make, this cut included
        target = start + (length - start) / left
        low = max(length - (left - 1) * limit, start + 1, math.ceil(target) - CUT_WINDOW)
        high = min(start + limit, length - (left - 1), math.floor(target) + CUT_WINDOW)
        step = align if align > 1 and (high // align) * align >= low else 1
        candidates = range(math.ceil(low / step) * step, high + 1, step)
        bands = _quiet_bands(scores, candidates, quiet)
        if bands:
            bands = [band for band in bands if finishes(band[1], left - 1)] or bands
            flattest = min(score for score, _middle in bands)
            cut = min((middle for score, middle in bands if score <= flattest + slack),
                      key=lambda c: (abs(c - target), -c))
        else:
            cut = min(candidates, key=lambda c: (abs(c - target), -c))
        cuts.append((cut, bool(bands)))
        start = cut
    return cuts


def _finishing(bands: list[tuple[int, int]], length: int, pieces: int, limit: int):
    """finishes(cut, left): can the strip after `cut` become `left` pieces, cut in the middles of `bands`?

    Worked out backwards once for every band and every number of pieces (prefix sums over the
    sorted middles), so that each question costs a binary search.
    """
    middles = [middle for _score, middle in bands]
    reachable: dict[int, list[int]] = {}  # pieces left -> prefix counts of the middles that can finish
    for left in range(1, pieces):
        ok = [length - m <= limit if left == 1 else _any_between(reachable[left - 1], middles, m, m + limit)
              for m in middles]
        reachable[left] = list(itertools.accumulate(ok, initial=0))

    def finishes(cut: int, left: int) -> bool:
        if left == 1:
            return length - cut <= limit
        return _any_between(reachable[left - 1], middles, cut, cut + limit)

    return finishes


def _any_between(prefix: list[int], middles: list[int], after: int, until: int) -> bool:
    """Whether one of the middles in (after, until] is counted in `prefix`."""
    return prefix[bisect.bisect_right(middles, until)] > prefix[bisect.bisect_right(middles, after)]


def _quiet_bands(scores: Sequence[int], positions: range, quiet: int) -> list[tuple[int, int]]:
    """(lowest score, middle position) of each run of consecutive `positions` scoring at most `quiet`."""
    bands: list[tuple[int, int]] = []
    run: list[int] = []
    for position in [*positions, None]:
        if position is not None and scores[position] <= quiet:
            run.append(position)
        elif run:
            bands.append((min(scores[c] for c in run), run[len(run) // 2]))
            run = []
    return bands
