"""Inspecting one page with Pillow against MangaDex's limits: what is wrong with it and what --fix would do.

What --fix would do comes from `fixes/plan.py`'s plan_fix, the same plan `--fix` carries out, so that a check
is a complete preview of the repair.

The real format comes from the bytes, never from the name. The quick check reads the headers and
lets Pillow verify what is cheap to verify (PNG chunk checksums; a JPEG must reach its end marker);
`deep=True` decodes every frame, which is the only way to find damaged pixel data whose container is
intact. Nothing is decoded before its claimed size has been compared with a bound, and
`Image.MAX_IMAGE_PIXELS` is left as it is: Pillow's own bomb check stays on as a second line.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
import warnings
from dataclasses import replace
from pathlib import Path, PurePath

from PIL import Image, UnidentifiedImageError

from . import limits
from .fixes.plan import plan_fix
from .pages import Page
from .problems import CONVERTIBLE_FORMATS, MAX_PIXELS, PageReport, Problem
from .vocabulary import format_bytes

# Animated pages: at most this many frames, and this many pixels over all frames.
MAX_FRAMES = 1000
MAX_ANIMATION_PIXELS = 10 * MAX_PIXELS
# Files are read into memory once (for the hash and for Pillow); anything larger is not inspected.
MAX_INSPECT_BYTES = 5 * limits.BYTES_PER_FILE

# Page extensions Pillow cannot read at all, named for the message.
UNREADABLE_KINDS = {"heic": "HEIC", "jxl": "JPEG XL"}

REEXPORT = "re-export the page from your editor or scan software as PNG or JPEG"
COPY_AGAIN = "the file is probably incomplete or damaged: copy or download it again, or re-export the page"


def check_page(page: Page, *, deep: bool = False) -> PageReport:
    """Inspect one page file; every problem is reported in the result, nothing is raised."""
    try:
        data, size, sha256 = _read(page.path)
    except OSError as exc:
        return PageReport(page, None, None, 0, None, None, "",
                          [Problem("unreadable", "error", f"cannot be read ({exc.strerror or exc})",
                                   "check that the file exists and that you may read it")])
    report = PageReport(page, None, None, size, None, None, sha256)
    if size == 0:
        report.problems.append(Problem("unreadable", "error", "the file is empty (0 bytes)", REEXPORT))
    elif data is None:
        report.problems.append(Problem(
            "file-too-large", "error",
            f"{format_bytes(size)} is too large to inspect (more than {format_bytes(MAX_INSPECT_BYTES)}; "
            f"MangaDex takes at most {format_bytes(limits.BYTES_PER_FILE)} per file)",
            "re-export the page smaller"))
    else:
        with warnings.catch_warnings():
            # Pillow's warnings (bomb warning included) would only be noise: the bounds here decide.
            warnings.simplefilter("ignore")
            report.problems.extend(_inspect(report, data, deep))
    _name_the_repair(report)
    return report


def _name_the_repair(report: PageReport) -> None:
    """Give every fixable problem the page's repair plan as its fix; a plan that cannot work makes them errors."""
    if not any(p.severity == "fixable" for p in report.problems):
        return
    plan = plan_fix(report)
    if plan is None:  # the file could not be opened again since it was read
        severity, fix = "error", "the page changed or vanished while it was checked: check it again"
    else:
        severity, fix = ("fixable" if plan.fixable else "error"), plan.description
    report.problems = [replace(p, severity=severity, fix=fix) if p.severity == "fixable" else p
                       for p in report.problems]


def _read(path: Path) -> tuple[bytes | None, int, str]:
    """The file's bytes (None when too large to keep), its size and its SHA-256, in one read."""
    with path.open("rb") as file:
        if os.fstat(file.fileno()).st_size > MAX_INSPECT_BYTES:
            digest = hashlib.file_digest(file, "sha256")
            return None, file.tell(), digest.hexdigest()
        data = file.read()
    return data, len(data), hashlib.sha256(data).hexdigest()


def _inspect(report: PageReport, data: bytes, deep: bool) -> list[Problem]:
    extension = PurePath(report.page.upload_name).suffix.lower().lstrip(".")
    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        return [_bomb(f"its header claims more than {MAX_PIXELS // 1_000_000} megapixels")]
    except UnidentifiedImageError:
        return [_unidentified(data, extension)]
    except Exception as exc:  # noqa: BLE001 - Pillow's parsers raise many types on malformed headers
        if isinstance(exc, ValueError) and ("MAX_TEXT" in str(exc) or "Decompressed Data Too Large" in str(exc)):
            # Pillow's bounds on PNG metadata: text chunks, and compressed chunks such as a colour profile
            return [Problem("bomb", "error", "its metadata (a compressed text chunk or colour profile) inflates past "
                                             "the safe limit",
                            "re-export the page without metadata (or as PNG/JPEG from another program)")]
        return [_corrupt(exc)]
    with image:
        # An MPO is a JPEG carrying extra pictures (phone cameras write them): MangaDex sees a JPEG.
        fmt = "JPEG" if image.format in limits.JPEG_VARIANTS else image.format
        report.format = fmt
        report.width, report.height = image.size
        if image.width * image.height > MAX_PIXELS:
            return [_bomb(f"{image.width:,}x{image.height:,} px is {image.width * image.height / 1e6:,.0f} megapixels")]
        try:
            frames = count_frames(image, data, MAX_FRAMES)
        except Exception as exc:  # noqa: BLE001 - seeking a damaged file raises what its parser raises
            return [_corrupt(exc)]
        if frames > MAX_FRAMES or frames * image.width * image.height > MAX_ANIMATION_PIXELS:
            counted = f"at least {frames:,}" if frames > MAX_FRAMES else f"{frames:,}"
            return [Problem("too-many-frames", "error",
                            f"{counted} frames of {image.width}x{image.height} px: more than mdupload checks "
                            f"(at most {MAX_FRAMES:,} frames and {MAX_ANIMATION_PIXELS // 1_000_000:,} megapixels "
                            "in all)", "re-export it with fewer frames, or as a still PNG or JPEG")]
        damage = _damage(image, data, fmt, frames, deep)
        if damage:
            return [damage]
        if fmt in limits.ACCEPTED_FORMATS:
            report.mime = limits.ACCEPTED_FORMATS[fmt][0]
        return _rules(report, frames, extension)


def count_frames(image: Image.Image, data: bytes, limit: int) -> int:
    """The image's frames, counted no further than limit + 1.

    Pillow counts the frames of a GIF or a TIFF by walking the whole file (a TIFF's in quadratic
    time), so a small hostile file with millions of frames would hold the check for minutes or hours:
    those two are counted here, stopping past the limit. Other formats state their count in a header.
    """
    if image.format == "GIF":
        return _gif_frames(data, limit + 1)
    if image.format == "TIFF":
        count = 1
        try:
            while count <= limit:
                image.seek(count)
                count += 1
        except EOFError:
            pass
        finally:
            image.seek(0)
        return count
    return getattr(image, "n_frames", 1)


_GIF_BLOCK = re.compile(b"[!,;]")  # extension, image descriptor, trailer (Pillow skips other bytes)


def _gif_frames(data: bytes, stop: int) -> int:
    """The image descriptors of a GIF, walked as Pillow walks them (without decoding), up to `stop`."""
    if len(data) < 13:
        return 1
    colours = 3 << ((data[10] & 7) + 1) if data[10] & 0x80 else 0  # the global colour table
    position, frames = 13 + colours, 0
    while frames < stop:
        found = _GIF_BLOCK.search(data, position)
        if found is None or found.group() == b";":
            break
        position = found.start()
        if found.group() == b"!":
            position = _skip_sub_blocks(data, position + 2)
            continue
        frames += 1
        if position + 10 > len(data):
            break
        flags = data[position + 9]
        position += 10 + (3 << ((flags & 7) + 1) if flags & 0x80 else 0)
        position = _skip_sub_blocks(data, position + 1)  # after the LZW minimum code size
    return max(frames, 1)


def _skip_sub_blocks(data: bytes, position: int) -> int:
    while position < len(data):
        size = data[position]
        position += 1 + size
        if size == 0:
            break
    return position


def _bomb(claim: str) -> Problem:
    return Problem("bomb", "error",
                   f"{claim}: more than mdupload decodes (a decompression bomb, or a page far larger than MangaDex "
                   f"allows); refused without decoding it",
                   f"re-export the page at most {limits.MAX_SIDE_PX:,} px on each side")


def _corrupt(exc: Exception) -> Problem:
    return Problem("corrupt", "error", f"the image data is damaged ({exc or type(exc).__name__})", COPY_AGAIN)


def _unidentified(data: bytes, extension: str) -> Problem:
    if extension in UNREADABLE_KINDS:
        what = f"{UNREADABLE_KINDS[extension]} images cannot be read by mdupload and are not accepted by MangaDex"
    elif _looks_like_text(data[:512]):
        what = "it is a text file, not an image"
    else:
        what = "it is not an image mdupload can read (an unknown or damaged format)"
    return Problem("unreadable", "error", what, REEXPORT)


def _looks_like_text(head: bytes) -> bool:
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return all(ch.isprintable() or ch in "\r\n\t" for ch in text)


def _damage(image: Image.Image, data: bytes, fmt: str, frames: int, deep: bool) -> Problem | None:
    """The first sign of damaged data: the cheap checks always, a full decode of every frame when deep.

    `image` is the page as opened for its header, nothing decoded: verify() needs it so (it is Pillow's
    PNG chunk checksums, and nothing for the other formats), which spares opening the page again.
    """
    # Searched from the end, where a whole JPEG's marker is (`in` scans a megabyte of data first).
    if fmt == "JPEG" and data.rfind(b"\xff\xd9") < 0:
        # Entropy-coded data cannot contain FF D9, so a JPEG without it was cut off (a missing marker
        # can hide behind an embedded thumbnail's; the deep check finds those).
        return Problem("corrupt", "error", "the JPEG is cut off (it has no end-of-image marker)", COPY_AGAIN)
    try:
        image.verify()
        if deep:
            with Image.open(io.BytesIO(data)) as image:
                decoded = 0
                for index in range(frames):
                    image.seek(index)
                    if image.width * image.height > MAX_PIXELS:
                        return _bomb(f"frame {index + 1} grows to {image.width:,}x{image.height:,} px")
                    decoded += image.width * image.height
                    if decoded > MAX_ANIMATION_PIXELS:  # frames of a TIFF may each have their own size
                        return Problem("too-many-frames", "error",
                                       f"its frames hold more than {MAX_ANIMATION_PIXELS // 1_000_000:,} megapixels in "
                                       f"all (by frame {index + 1})", "re-export it as a still PNG or JPEG")
                    image.load()
    except Image.DecompressionBombError:
        return _bomb("a frame claims more pixels than Pillow's bound")
    except Exception as exc:  # noqa: BLE001 - verify and the decoders raise SyntaxError, OSError, EOFError...
        return _corrupt(exc)
    return None


def _rules(report: PageReport, frames: int, extension: str) -> list[Problem]:
    """MangaDex's rules for a page whose data is sound (check_page names the repair of the fixable ones)."""
    problems = []
    fmt, width, height, size = report.format, report.width, report.height, report.size
    if fmt in limits.ACCEPTED_FORMATS:
        if extension not in limits.ACCEPTED_FORMATS[fmt][1]:
            problems.append(Problem("name-mismatch", "fixable", f"the file is {fmt} but its name ends in .{extension}",
                                    None))
        if size > limits.BYTES_PER_FILE:
            too_large = (f"{format_bytes(size)}: MangaDex takes at most {format_bytes(limits.BYTES_PER_FILE)} "
                         "per file")
            if frames > 1:
                problems.append(Problem("file-too-large", "error", too_large,
                                        "make the animation smaller in your editor (fewer frames or colours)"))
            else:
                problems.append(Problem("file-too-large", "fixable", too_large, None))
    elif fmt in CONVERTIBLE_FORMATS and (frames == 1 or fmt in ("WEBP", "AVIF")):
        problems.append(Problem("format", "fixable", f"{fmt} is not accepted by MangaDex (only JPEG, PNG and GIF)",
                                None))
    else:
        what = f"{fmt} with {frames} images" if frames > 1 else fmt
        problems.append(Problem("format", "error",
                                f"{what} is not accepted by MangaDex, and mdupload does not convert it",
                                "re-export each page as its own PNG or JPEG file"))
    longest = max(width, height)
    if longest > limits.MAX_SIDE_PX:
        too_long = f"{width:,}x{height:,} px: MangaDex takes at most {limits.MAX_SIDE_PX:,} px per side"
        scale = f"scale it down to at most {limits.MAX_SIDE_PX:,} px per side in your editor"
        if min(width, height) > limits.MAX_SIDE_PX:
            problems.append(Problem("side-too-long", "error", too_long, f"both sides are too long: {scale}"))
        elif frames > 1:
            problems.append(Problem("side-too-long", "error", too_long, f"an animation cannot be split: {scale}"))
        else:
            problems.append(Problem("side-too-long", "fixable", too_long, None))
    if longest < limits.TINY_PAGE_PX:
        problems.append(Problem("tiny", "warning", f"only {width}x{height} px: is this really a page?", None))
    return problems
