"""What `--fix` would do to one checked page, without doing it (`plan_fix`; `validate` shows it as a preview).

The repairs planned:
- a long strip (or a wide spread) is split into pieces whose longer side is at most 10,000 px
  (strip.py chooses the cuts);
- WebP, AVIF, BMP and TIFF become PNG when the source has transparency, a palette or is lossless,
  JPEG (quality 95, 4:4:4) when it is lossy, GIF when it is animated; the ICC profile is kept and
  the EXIF orientation is applied;
- a name that disagrees with the bytes gets the right extension (same bytes, not re-encoded);
- a page over 20 MiB is re-encoded: PNG at maximum compression, else JPEG at the highest quality
  that fits (reported as lossy), else it is reported as not fixable.
The checks name each fixable problem's repair with `plan_fix` (images.py).
"""

from __future__ import annotations

import logging
import os
import warnings
from dataclasses import dataclass
from pathlib import Path, PurePath

from PIL import (
    ExifTags,
    Image,
)

from ..limits import ACCEPTED_FORMATS, BYTES_PER_FILE, JPEG_VARIANTS, MAX_SIDE_PX
from ..problems import CONVERTIBLE_FORMATS, MAX_PIXELS, PageReport
from ..vocabulary import format_bytes
from .strip import piece_count

log = logging.getLogger(__name__)


FORMAT_NAMES = {"WEBP": "WebP"}  # Pillow's format names, where users know another spelling


EXTENSIONS = {fmt: exts[0] for fmt, (_mime, exts) in ACCEPTED_FORMATS.items()}


JPEG_QUALITY = 95  # lossy sources, 4:4:4 chroma


FIX_VERSION = 1  # part of the cache key: bump it whenever the output bytes of a fix change


ALPHA_MODES = {"RGBA", "LA", "PA", "RGBa", "La"}


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
            steps.append(f"re-encode it as JPEG at the highest quality under {format_bytes(BYTES_PER_FILE)} (lossy)")
        else:
            steps.append(f"re-encode it under {format_bytes(BYTES_PER_FILE)}: PNG at maximum compression, else JPEG "
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
    with open_image(path) as im:
        frames = frame_count(im)
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
                       has_alpha=im.mode in ALPHA_MODES or "transparency" in im.info,
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
        return (f"an animated {source.format} of {format_bytes(size)} cannot be made smaller than "
                f"{format_bytes(BYTES_PER_FILE)} without changing the animation: remove frames or colours, or scale it "
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


def frame_count(im: Image.Image) -> int:
    """Frames of an animation; an MPO (a JPEG with extra pictures from a camera) is one picture."""
    return 1 if im.format in JPEG_VARIANTS else getattr(im, "n_frames", 1)


def open_image(path: Path) -> Image.Image:
    """Open a page lazily, with Pillow's bomb warning silenced for this call only.

    The callers check the size against MAX_PIXELS before decoding anything; Pillow's hard
    limit (DecompressionBombError at 2 x Image.MAX_IMAGE_PIXELS) still applies.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return Image.open(path)
