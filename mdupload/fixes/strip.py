"""Cutting a long strip (or a wide spread) into pages: how many pieces, and where to cut them.

Cuts go at the flattest rows (columns) near balanced cut points, such as the gutter between panels.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import math
from collections.abc import Sequence

from PIL import (
    Image,
    ImageChops,
)

from ..limits import MAX_SIDE_PX

log = logging.getLogger(__name__)


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


_REDUCIBLE_MODES = {"L", "LA", "RGB", "RGBA", "CMYK", "I", "F"}


def piece_count(length: int) -> int:
    """How many pieces a strip of `length` px becomes: pieces of about PIECE_TARGET px at most.

    Planning below the 10,000 px limit leaves every cut room to move to a quiet row.
    """
    return math.ceil(length / PIECE_TARGET)


def piece_boxes(im: Image.Image, axis: str, pieces: int, align: int, done: list[str]) -> list[tuple[int, int, int, int]]:
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
