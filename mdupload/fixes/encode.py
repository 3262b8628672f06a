"""Doing one page's repair (in a worker process): decoding, cutting, converting and re-encoding it into
a work folder entry with a result.json saying what was done, or a .failed.json saying why it could not be.

The largest image a fix decodes is problems.MAX_PIXELS (120 megapixels, an 800 x 150,000 px strip:
at most 480 MB decoded, 4 bytes a pixel, per worker), the bound the checks refuse pages beyond. It
stays below Pillow's own hard limit (2 x Image.MAX_IMAGE_PIXELS), which keeps guarding everything
else; only the DecompressionBombWarning is silenced, only while a fix opens a page it has checked
against the bound. Image.MAX_IMAGE_PIXELS itself is never changed.
"""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from PIL import (
    ExifTags,
    Image,
    ImageCms,
    ImageOps,
    ImageSequence,
    JpegImagePlugin,
)

from ..files import write_replacing
from ..limits import BYTES_PER_FILE, JPEG_VARIANTS
from ..problems import MAX_PIXELS
from ..vocabulary import format_bytes
from .plan import (
    ALPHA_MODES,
    EXTENSIONS,
    JPEG_QUALITY,
    FixPlan,
    frame_count,
    open_image,
)
from .strip import piece_boxes

log = logging.getLogger(__name__)


JPEG_MIN_QUALITY = 50  # below this a page is reported as not fixable rather than ruined


_PNG_MODES = {"1", "L", "LA", "I", "I;16", "P", "RGB", "RGBA"}


_JPEG_MODES = {"L", "RGB", "CMYK"}


RESULT = "result.json"


FAILED = ".failed.json"


SCALE_DOWN = "scale the page down or split it in your editor, then check it again"


class _CannotFix(Exception):
    """The page cannot be repaired within MangaDex's limits (a definite answer, cached)."""

    def __init__(self, code: str, message: str, fix: str):
        super().__init__(message)
        self.code = code
        self.fix = fix


def fix_into(source: str, plan: FixPlan, entry: str) -> None:
    """Repair one page into the cache folder `entry`: written whole under a scratch name, then renamed.

    An answer that the page cannot be repaired is cached like a repair. A failure to decode it is
    not: it goes to `<entry>.failed.json`, read by this run only, so a later run tries again.
    """
    final = Path(entry)
    final.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f"{final.name}.tmp-", dir=final.parent))  # new, unique, private
    done: list[str] = []
    result = {"outputs": [], "done": done, "problem": None}
    try:
        result["outputs"] = _repair(Path(source), plan, scratch, done)
    except _CannotFix as exc:
        result["problem"] = {"code": exc.code, "message": str(exc), "fix": exc.fix}
    except Exception as exc:  # noqa: BLE001 - whatever Pillow raises on bad pixel data becomes a page problem
        result["problem"] = {"code": "corrupt", "message": f"--fix could not decode it ({exc})",
                             "fix": "the file is probably damaged: copy or download it again, or re-export the page"}
        write_replacing(final.with_name(final.name + FAILED), json.dumps(result, indent=1).encode("utf-8"))
        shutil.rmtree(scratch)
        return
    (scratch / RESULT).write_text(json.dumps(result, indent=1))
    try:
        scratch.rename(final)
    except OSError:  # another run wrote the same entry first: its result is the same
        shutil.rmtree(scratch)


def _repair(source: Path, plan: FixPlan, out: Path, done: list[str]) -> list[dict]:
    """Decode the page once, repair it, and write its piece(s) into `out`; returns what was written."""
    with open_image(source) as im:
        width, height = im.size
        frames = frame_count(im)
        if width * height * frames > MAX_PIXELS:
            raise _CannotFix("bomb", f"{width:,} x {height:,} px is more than the {MAX_PIXELS // 1_000_000} "
                                     "megapixels mdupload decodes to repair a page", SCALE_DOWN)
        if frames > 1:  # plan_fix allows this only for an animated WebP/AVIF becoming a GIF
            return [_write(out, 1, *_animation_to_gif(im, plan, done))]
        icc = im.info.get("icc_profile")
        jpeg = _jpeg_tables(im) if (im.format == "JPEG" or im.format in JPEG_VARIANTS) and plan.output_format == "JPEG" else None
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
    boxes = piece_boxes(im, plan.split, plan.pieces, align, done) if plan.split else [(0, 0, im.width, im.height)]
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
    if fmt == "PNG" and (im.mode in ALPHA_MODES or "transparency" in im.info):
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
    done.append(f"converted {plan.conversion}: {format_bytes(len(data))} (GIF holds at most 256 colours per frame)")
    if len(data) > BYTES_PER_FILE:
        raise _CannotFix("file-too-large", f"as a GIF it is {format_bytes(len(data))}; MangaDex takes at most "
                                           f"{format_bytes(BYTES_PER_FILE)} per file",
                         "make the animation smaller in your editor (fewer frames, colours or pixels)")
    return data, "GIF", frames[0].size


def _encode(im: Image.Image, fmt: str, icc: bytes | None, jpeg: _JpegTables | None, shrink: bool, label: str,
            done: list[str]) -> tuple[bytes, str]:
    """Encode in `fmt`; past 20 MB, PNG at maximum compression, then JPEG at the best quality that fits."""
    if not shrink:
        data = _save(im, fmt, icc, jpeg=jpeg)
        if len(data) <= BYTES_PER_FILE:
            return data, fmt
        done.append(f"{label}as {fmt} it is {format_bytes(len(data))}, over {format_bytes(BYTES_PER_FILE)}")
    tried = ""
    if fmt in ("PNG", "GIF"):
        png = _ready_for(im, "PNG", icc)[0]
        data = _save(png, "PNG", icc, optimize=True)
        if len(data) <= BYTES_PER_FILE:
            done.append(f"{label}re-encoded as PNG at maximum compression: {format_bytes(len(data))} (lossless)")
            return data, "PNG"
        tried = f"at maximum PNG compression it is {format_bytes(len(data))}; "
        if png.mode in ALPHA_MODES or "transparency" in png.info:
            raise _CannotFix("file-too-large", f"{label}{tried}JPEG cannot keep its transparency, and MangaDex "
                                               f"takes at most {format_bytes(BYTES_PER_FILE)} per file", SCALE_DOWN)
    photo, icc = _ready_for(im, "JPEG", icc)
    quality, data = _best_jpeg(photo, icc)
    if len(data) > BYTES_PER_FILE:
        raise _CannotFix("file-too-large", f"{label}{tried}even as JPEG quality {quality} it is "
                                           f"{format_bytes(len(data))}; MangaDex takes at most "
                                           f"{format_bytes(BYTES_PER_FILE)} per file", SCALE_DOWN)
    done.append(f"{label}{tried}re-encoded as JPEG quality {quality} (4:4:4) to fit under "
                f"{format_bytes(BYTES_PER_FILE)}: {format_bytes(len(data))} (lossy)")
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
