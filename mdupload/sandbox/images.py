"""Deciding what an uploaded file is from its bytes, as MangaDex does (never from its name)."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

from PIL import Image, UnidentifiedImageError

from . import rules


@dataclass(frozen=True)
class Sniffed:
    mime: str | None  # None: not an accepted image
    problem: str | None  # why it is refused, for the per-file error


def sniff(path: Path, size: int) -> Sniffed:
    """Format, size and dimensions of one uploaded file against MangaDex's rules."""
    if size == 0:
        return Sniffed(None, "the file is empty")
    if size > rules.BYTES_PER_FILE:
        return Sniffed(None, f"the file is {size:,} bytes; at most {rules.BYTES_PER_FILE:,} bytes are accepted")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                kind, (width, height) = image.format, image.size
                image.verify()  # MangaDex processes every page: data that fails its checksums is refused
    except Image.DecompressionBombError:
        # Pillow refuses to open anything this large, and each of its sides is well past the limit.
        return Sniffed(None, f"the image is larger than {rules.MAX_SIDE_PX:,} px on a side")
    except UnidentifiedImageError:
        return Sniffed(None, "the file is not an image MangaDex accepts (JPEG, PNG or GIF)")
    except (OSError, SyntaxError, ValueError):
        return Sniffed(None, "the image data is corrupt and cannot be processed")
    if kind not in rules.ACCEPTED_FORMATS:
        return Sniffed(None, f"the file is {kind}; MangaDex accepts JPEG, PNG and GIF only")
    if max(width, height) > rules.MAX_SIDE_PX:
        return Sniffed(None, f"the image is {width}x{height} px; each side may be at most {rules.MAX_SIDE_PX:,} px")
    return Sniffed(rules.ACCEPTED_FORMATS[kind], None)
