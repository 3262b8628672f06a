"""--fix: long strips split at quiet rows, refused formats converted, names and sizes repaired."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import random
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from natsort import natsorted, ns
from PIL import ExifTags, Image, ImageChops, ImageSequence, JpegImagePlugin

from mdupload import limits
from mdupload.checks import check_chapter, fix_chapter
from mdupload.fixes import plan as fix_plan
from mdupload.fixes.apply import apply_fixes
from mdupload.fixes.encode import JPEG_MIN_QUALITY
from mdupload.fixes.plan import JPEG_QUALITY, plan_fix
from mdupload.fixes.strip import choose_cuts, piece_count
from mdupload.images import check_page
from mdupload.manifest import ChapterSpec
from mdupload.pages import Page

CORPUS = Path(__file__).parent / "corpus" / "images"
with (CORPUS / "LABELS.tsv").open(newline="") as _labels:
    LABELS = list(csv.DictReader(_labels, delimiter="\t"))

# Panel gutters of the test strip: none at the balanced cut points (about 8,000, 16,000 and 24,000),
# where panels are instead, so a cut in a gutter was searched for.
GUTTERS = [(3000, 3080), (7300, 7400), (11000, 11090), (15400, 15500), (19500, 19580), (23300, 23400),
           (28000, 28100)]


def labelled(expected: str) -> list:
    return [pytest.param(row, id=row["file"]) for row in LABELS if row["expected"] == expected]


def report_for(path: Path, name: str | None = None):
    name = name or path.name
    return check_page(Page(path=path, origin=f"c1/{name}", upload_name=name))


def art(width: int, height: int) -> Image.Image:
    """Busy on every row and column (8 px blocks of grey noise), yet quick to write as PNG."""
    blocks = Image.effect_noise((max(1, width // 8), max(1, height // 8)), 80)
    return blocks.resize((width, height), Image.Resampling.NEAREST).convert("RGB")


def gutter_strip(width: int, height: int, gutters: list[tuple[int, int]]) -> Image.Image:
    strip = Image.new("RGB", (width, height), "white")
    edges = [0, *(row for gutter in gutters for row in gutter), height]
    for top, bottom in zip(edges[::2], edges[1::2]):
        strip.paste(art(width - 40, bottom - top), (20, top))
    return strip


def snapshot(paths) -> dict:
    return {str(p): (hashlib.sha256(Path(p).read_bytes()).hexdigest(), Path(p).stat().st_mtime_ns) for p in paths}


def cuts_of(fixed) -> list[int]:
    """Where the pieces meet, in rows of the source strip."""
    edges, position = [], 0
    for page in fixed.pages[:-1]:
        with Image.open(page.path) as piece:
            position += piece.height
        edges.append(position)
    return edges


@pytest.fixture(scope="module")
def strip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("strip") / "012.png"
    gutter_strip(800, 32_000, GUTTERS).save(path, compress_level=1)
    return path


@pytest.fixture(scope="module")
def split_strip(strip, tmp_path_factory):
    """The strip, checked and fixed once for the tests that look at the result."""
    before = snapshot([strip])
    bomb_limit = Image.MAX_IMAGE_PIXELS
    report = report_for(strip)
    [fixed] = apply_fixes([report], tmp_path_factory.mktemp("split"))
    return SimpleNamespace(report=report, fixed=fixed, untouched=snapshot([strip]) == before,
                           bomb_limit_kept=Image.MAX_IMAGE_PIXELS == bomb_limit)


# --- the corpus ----------------------------------------------------------------------------------

@pytest.mark.parametrize("row", labelled("fixable"))
def test_every_fixable_corpus_file_is_repaired_and_then_passes(row, tmp_path):
    source = CORPUS / row["file"]
    before = snapshot([source])
    report = report_for(source)
    assert not report.ok and any(p.severity == "fixable" for p in report.problems)
    plan = plan_fix(report)
    assert plan is not None and plan.fixable

    [fixed] = apply_fixes([report], tmp_path / "work")

    assert fixed.problems == [] and fixed.done
    for page in fixed.pages:
        after = check_page(page)
        assert after.ok, after.problems
        assert Path(page.upload_name).suffix.lstrip(".") in limits.ACCEPTED_FORMATS[after.format][1]
    assert snapshot([source]) == before


@pytest.mark.parametrize("row", labelled("reject"))
def test_every_rejected_corpus_file_stays_rejected(row, tmp_path):
    report = report_for(CORPUS / row["file"])

    [fixed] = apply_fixes([report], tmp_path / "work")

    assert fixed.pages == [report.page] and fixed.done == []
    assert not check_page(fixed.pages[0]).ok


@pytest.mark.parametrize("row", labelled("accept"))
def test_accepted_corpus_files_are_left_alone(row, tmp_path):
    report = report_for(CORPUS / row["file"])

    assert plan_fix(report) is None
    [fixed] = apply_fixes([report], tmp_path / "work")
    assert fixed.pages == [report.page] and fixed.done == [] and fixed.problems == []


def test_a_misnamed_png_gets_its_extension_and_keeps_its_bytes(tmp_path):
    source = CORPUS / "png_named_as.jpg"
    [fixed] = apply_fixes([report_for(source)], tmp_path)

    [page] = fixed.pages
    assert page.upload_name == "png_named_as.png"
    assert page.path.read_bytes() == source.read_bytes()
    assert check_page(page).mime == "image/png"
    assert fixed.done == ["renamed to png_named_as.png (the bytes are PNG; not re-encoded)"]


# --- long strips and wide spreads ----------------------------------------------------------------

def test_a_long_strip_is_cut_in_the_gutters_between_panels(strip, split_strip):
    assert plan_fix(split_strip.report).description == ("split into 4 pages of at most 10,000 px at quiet rows, "
                                                        "top to bottom")
    fixed = split_strip.fixed
    cuts = cuts_of(fixed)
    assert len(cuts) == 3
    for cut in cuts:
        assert any(top < cut < bottom for top, bottom in GUTTERS), f"cut at row {cut} is not in a gutter"
    assert [p.upload_name for p in fixed.pages] == ["012-1.png", "012-2.png", "012-3.png", "012-4.png"]
    assert [p.origin for p in fixed.pages][1] == "c1/012.png (piece 2 of 4)"
    with Image.open(strip) as source:
        top = 0
        for page in fixed.pages:
            assert check_page(page).ok
            with Image.open(page.path) as piece:
                assert piece.height <= limits.MAX_SIDE_PX
                assert ImageChops.difference(piece.convert("RGB"), source.crop((0, top, 800, top + piece.height))) \
                    .getbbox() is None  # PNG pieces are lossless
                top += piece.height
        assert top == source.height
    assert "through the artwork" not in fixed.done[0]
    assert split_strip.untouched


def test_pieces_keep_the_strip_place_in_natural_order(split_strip):
    names = ["013.png", *(p.upload_name for p in split_strip.fixed.pages), "011.png"]
    assert natsorted(names, alg=ns.PATH | ns.IGNORECASE) == ["011.png", "012-1.png", "012-2.png", "012-3.png",
                                                             "012-4.png", "013.png"]


def test_a_strip_without_quiet_rows_is_cut_at_the_balanced_points(tmp_path):
    source = tmp_path / "noise.bmp"  # also converted: BMP becomes PNG
    Image.effect_noise((700, 21_000), 90).save(source)
    report = report_for(source)
    assert plan_fix(report).description == ("convert BMP to PNG (lossless, like the source), then split into 3 "
                                            "pages of at most 10,000 px at quiet rows, top to bottom")

    [fixed] = apply_fixes([report], tmp_path / "work")

    assert cuts_of(fixed) == [7000, 14000]
    assert "cuts go through the artwork" in fixed.done[-1]
    for page in fixed.pages:
        after = check_page(page)
        assert after.ok and after.format == "PNG" and after.height <= limits.MAX_SIDE_PX


def test_a_wide_spread_is_split_across_columns_left_to_right(tmp_path):
    spread = art(12_000, 900)
    spread.paste((255, 255, 255), (5500, 0, 5600, 900))  # a gutter between two panels, left of the middle
    source = tmp_path / "spread.png"
    spread.save(source, compress_level=1)
    report = report_for(source)
    assert plan_fix(report).description.endswith("at quiet columns, left to right")

    [fixed] = apply_fixes([report], tmp_path / "work")

    left, right = (Image.open(page.path) for page in fixed.pages)
    assert 5500 < left.width < 5600 and left.width + right.width == 12_000
    assert left.height == right.height == 900
    assert ImageChops.difference(left.convert("RGB"), spread.crop((0, 0, left.width, 900))).getbbox() is None


def test_a_jpeg_strip_stays_jpeg_at_its_own_quality(tmp_path):
    source = tmp_path / "strip.jpg"
    gutter_strip(800, 12_000, [(5000, 5100)]).save(source, quality=85)

    [fixed] = apply_fixes([report_for(source)], tmp_path / "work")

    [cut] = cuts_of(fixed)
    assert 5000 < cut < 5100 and cut % 16 == 0  # on whole JPEG blocks (4:2:0)
    with Image.open(source) as original:
        strip_pixels = original.convert("RGB")
        top = 0
        for page in fixed.pages:
            with Image.open(page.path) as piece:
                assert piece.format == "JPEG" and piece.quantization == original.quantization
                difference = ImageChops.difference(piece.convert("RGB"),
                                                   strip_pixels.crop((0, top, 800, top + piece.height)))
                assert max(high for _low, high in difference.getextrema()) <= 12  # rounding, no new artefacts
                top += piece.height


def test_an_exif_rotated_jpeg_strip_is_turned_upright_before_it_is_split(tmp_path):
    source = tmp_path / "rotated.jpg"
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6  # stored on its side: shown 800 wide, 12,000 tall
    art(12_000, 800).save(source, quality=90, exif=exif)
    report = report_for(source)
    assert plan_fix(report).description == ("turn it upright (EXIF orientation 6), then split into 2 pages of at "
                                            "most 10,000 px at quiet rows, top to bottom")

    [fixed] = apply_fixes([report], tmp_path / "work")

    assert len(fixed.pages) == 2
    for page in fixed.pages:
        with Image.open(page.path) as piece:
            assert piece.width == 800 and piece.height <= limits.MAX_SIDE_PX
            assert piece.getexif().get(ExifTags.Base.Orientation) is None


# --- formats -------------------------------------------------------------------------------------

def test_a_webp_with_alpha_becomes_a_png_with_the_same_pixels(tmp_path):
    picture = art(300, 200).convert("RGBA")
    picture.putalpha(Image.linear_gradient("L").resize((300, 200)))
    source = tmp_path / "alpha.webp"
    picture.save(source, lossless=True)
    report = report_for(source)
    assert plan_fix(report).description == "convert WebP to PNG (lossless, keeps the transparency)"

    [fixed] = apply_fixes([report], tmp_path / "work")

    [page] = fixed.pages
    assert page.upload_name == "alpha.png"
    with Image.open(source) as webp, Image.open(page.path) as png:
        assert png.format == "PNG" and png.mode == "RGBA"
        assert png.tobytes() == webp.convert("RGBA").tobytes()


def test_a_lossy_webp_becomes_a_high_quality_jpeg_keeping_its_icc_profile(tmp_path):
    with Image.open(CORPUS / "rgb.jpg") as with_profile:
        icc = with_profile.info["icc_profile"]
    source = tmp_path / "photo.webp"
    art(400, 300).save(source, quality=80, icc_profile=icc)

    [fixed] = apply_fixes([report_for(source)], tmp_path / "work")

    with Image.open(fixed.pages[0].path) as jpeg:
        assert jpeg.format == "JPEG"
        assert jpeg.info["icc_profile"] == icc
        assert JpegImagePlugin.get_sampling(jpeg) == 0  # 4:4:4
    assert fixed.done == ["converted WebP to JPEG (quality 95, 4:4:4; the source is lossy), ICC profile kept"]


def test_an_animated_webp_becomes_a_gif_with_its_frames_and_durations(tmp_path):
    frames = [Image.new("RGB", (64, 48), colour) for colour in ("red", "green", "blue")]
    source = tmp_path / "anim.webp"
    frames[0].save(source, save_all=True, append_images=frames[1:], duration=[100, 200, 300], loop=0)
    report = report_for(source)
    assert plan_fix(report).description == "convert animated WebP to GIF (3 frames, durations kept)"

    [fixed] = apply_fixes([report], tmp_path / "work")

    [page] = fixed.pages
    assert page.upload_name == "anim.gif" and check_page(page).ok
    with Image.open(page.path) as gif:
        assert gif.n_frames == 3
        assert [frame.info["duration"] for frame in ImageSequence.Iterator(gif)] == [100, 200, 300]


def test_an_exif_rotated_webp_is_converted_upright(tmp_path):
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    source = tmp_path / "side.webp"
    art(300, 200).save(source, quality=90, exif=exif)

    [fixed] = apply_fixes([report_for(source)], tmp_path / "work")

    with Image.open(fixed.pages[0].path) as converted:
        assert converted.size == (200, 300)


# --- sizes ---------------------------------------------------------------------------------------

def test_an_oversize_png_is_reencoded_under_the_limit_and_the_loss_is_reported(tmp_path):
    source = tmp_path / "noise.png"
    Image.frombytes("RGB", (3200, 3000), os.urandom(3200 * 3000 * 3)).save(source, compress_level=1)
    report = report_for(source)
    assert report.size > limits.BYTES_PER_FILE
    assert plan_fix(report).shrink

    [fixed] = apply_fixes([report], tmp_path / "work")

    [page] = fixed.pages
    after = check_page(page)
    assert after.ok and after.format == "JPEG" and page.upload_name == "noise.jpg"
    assert after.size <= limits.BYTES_PER_FILE
    [note] = fixed.done
    assert "at maximum PNG compression it is" in note and "re-encoded as JPEG quality" in note
    assert note.endswith("(lossy)")
    quality = int(note.split("JPEG quality ")[1].split(" ")[0])
    assert JPEG_MIN_QUALITY <= quality < JPEG_QUALITY  # found by the search, not the first try


def test_an_oversize_page_that_cannot_fit_is_reported_with_the_numbers(tmp_path):
    source = tmp_path / "alpha-noise.png"
    Image.frombytes("RGBA", (2400, 2200), os.urandom(2400 * 2200 * 4)).save(source, compress_level=1)
    report = report_for(source)

    [fixed] = apply_fixes([report], tmp_path / "work")

    assert fixed.pages == [report.page]
    [problem] = fixed.problems
    assert problem.severity == "error" and problem.code == "file-too-large"
    assert "MiB" in problem.message and "transparency" in problem.message


def test_a_page_larger_than_the_decoding_bound_is_not_fixable(monkeypatch, strip):
    monkeypatch.setattr(fix_plan, "MAX_PIXELS", 1_000_000)
    plan = plan_fix(report_for(strip))
    assert not plan.fixable and "800 x 32,000 px" in plan.description


def test_the_fixes_leave_pillows_global_bomb_limit_alone(split_strip):
    assert split_strip.bomb_limit_kept


# --- determinism, parallel work and the cache ----------------------------------------------------

@pytest.fixture(scope="module")
def chapter(tmp_path_factory, strip) -> list[Path]:
    folder = tmp_path_factory.mktemp("chapter")
    art(640, 480).save(folder / "001.webp", quality=80)
    gutter_strip(800, 11_000, [(5200, 5300)]).save(folder / "002.jpg", quality=90)
    return [folder / "001.webp", folder / "002.jpg", strip, CORPUS / "hopper.bmp", CORPUS / "hopper.jpg"]


def test_the_same_pages_give_byte_identical_results_serial_or_parallel(chapter, tmp_path):
    reports = [report_for(path) for path in chapter]
    before = snapshot(chapter)

    serial = apply_fixes(reports, tmp_path / "one", jobs=1, cache_dir=tmp_path / "cache-one")
    parallel = apply_fixes(reports, tmp_path / "two", jobs=2, cache_dir=tmp_path / "cache-two")

    def outputs(fixed):
        return [(p.upload_name, p.path.read_bytes()) for f in fixed for p in f.pages]

    assert outputs(serial) == outputs(parallel)
    assert [f.done for f in serial] == [f.done for f in parallel]
    assert snapshot(chapter) == before


def test_a_second_run_reuses_the_cache_and_does_no_work(chapter, tmp_path):
    reports = [report_for(path) for path in chapter]
    cache = tmp_path / "cache"
    first = apply_fixes(reports, tmp_path / "first", cache_dir=cache)
    assert [f.reused for f in first] == [False, False, False, False, False]
    entries = snapshot(p for p in cache.rglob("*") if p.is_file())

    second = apply_fixes(reports, tmp_path / "second", cache_dir=cache)

    assert [f.reused for f in second[:4]] == [True, True, True, True]  # hopper.jpg needs no fix at all
    assert snapshot(p for p in cache.rglob("*") if p.is_file()) == entries  # nothing written again
    assert [(p.upload_name, p.path.read_bytes()) for f in second for p in f.pages] == \
        [(p.upload_name, p.path.read_bytes()) for f in first for p in f.pages]


# --- cutting, on its own -------------------------------------------------------------------------

@settings(max_examples=60, deadline=None)
@given(length=st.integers(limits.MAX_SIDE_PX + 1, 60_000), seed=st.integers(0, 2**32),
       align=st.sampled_from([1, 8, 16]))
def test_cuts_always_make_the_planned_pieces_within_the_limit(length, seed, align):
    rng = random.Random(seed)
    scores = [rng.choice([0, 0, rng.randrange(500)]) for _ in range(length + 1)]
    pieces = piece_count(length)

    cuts = choose_cuts(scores, length, pieces, align=align)

    edges = [0, *(cut for cut, _quiet in cuts), length]
    assert len(edges) == pieces + 1
    assert all(0 < b - a <= limits.MAX_SIDE_PX for a, b in zip(edges, edges[1:]))
    assert choose_cuts(scores, length, pieces, align=align) == cuts


def test_a_cut_goes_to_the_middle_of_the_flattest_band_nearest_the_balanced_point():
    scores = [900] * 18_001  # art everywhere; the balanced cut point is row 9,000
    scores[8_500:8_601] = [0] * 101  # a gutter 400 rows above it
    scores[9_600:9_621] = [0] * 21  # a gutter 600 rows below it
    scores[9_000:9_020] = [40] * 20  # quieter than art, not flat
    scores[10_100:10_200] = [0] * 100  # a gutter past the 10,000 px limit
    [(cut, quiet)] = choose_cuts(scores, 18_000, 2)
    assert quiet and cut == 8_550


def test_a_cut_looks_ahead_so_that_the_later_cuts_can_be_quiet_too():
    scores = [900] * 25_001  # 3 pieces; the first balanced cut point is row 8,333
    for top in (7_350, 9_450, 18_950):  # gutters; none between rows 15,000 and 17,400
        scores[top:top + 101] = [0] * 101
    # The gutter at 7,400 is nearest, but after it the next cut would have to fall by row 17,400.
    assert choose_cuts(scores, 25_000, 3) == [(9_500, True), (19_000, True)]


# --- the checks preview --fix, fix_chapter applies it ---------------------------------------------

def make_page(name: str, path: Path, strip: Path) -> None:
    if name == "012.png":
        shutil.copyfile(strip, path)
    elif name == "alpha.webp":
        Image.new("RGBA", (64, 64)).save(path, lossless=True)
    elif name == "anim.webp":
        Image.new("RGB", (8, 8)).save(path, save_all=True, append_images=[Image.new("RGB", (8, 8), "red")])
    elif name == "big.png":
        path.write_bytes((CORPUS / "hopper.png").read_bytes() + b"\0" * limits.BYTES_PER_FILE)
    else:
        shutil.copyfile(CORPUS / name, path)


@pytest.mark.parametrize("name", [row["file"] for row in LABELS if row["expected"] == "fixable"]
                         + ["012.png", "alpha.webp", "anim.webp", "big.png"])
def test_every_fixable_problem_names_exactly_the_repair_fix_makes(name, strip, tmp_path):
    path = tmp_path / name
    make_page(name, path, strip)
    report = check_page(Page(path=path, origin=name, upload_name=name))
    fixable = [p for p in report.problems if p.severity == "fixable"]
    assert fixable and {p.fix for p in fixable} == {plan_fix(report).description}


def test_a_page_fix_cannot_repair_is_an_error_with_the_reason(monkeypatch, strip):
    monkeypatch.setattr(fix_plan, "MAX_PIXELS", 1_000_000)
    report = check_page(Page(path=strip, origin="012.png", upload_name="012.png"))
    assert [(p.code, p.severity) for p in report.problems] == [("side-too-long", "error")]
    assert report.problems[0].fix == plan_fix(report).description


def spec(pages: Path) -> ChapterSpec:
    return ChapterSpec(chapter="12", volume=None, title=None, language="en", groups=(), pages=pages,
                       publish_at=None, fix=True, line=3)


def test_fix_chapter_returns_the_pages_to_upload_in_order_and_what_was_done(strip, tmp_path):
    folder = tmp_path / "c12"
    folder.mkdir()
    shutil.copyfile(CORPUS / "hopper.jpg", folder / "011.jpg")
    shutil.copyfile(strip, folder / "012.png")
    shutil.copyfile(CORPUS / "hopper.webp", folder / "013.webp")
    shutil.copyfile(CORPUS / "png_named_as.jpg", folder / "014.jpg")
    before = snapshot(folder.iterdir())
    checked = check_chapter(spec(folder), tmp_path / "work")
    assert not checked.ok

    report = fix_chapter(checked, tmp_path / "work" / "fixed")

    assert report.ok, report.to_json()["problems"]
    assert [p.page.upload_name for p in report.pages] == ["011.jpg", "012-1.png", "012-2.png", "012-3.png",
                                                          "012-4.png", "013.jpg", "014.png"]
    assert report.pages[0] is checked.pages[0]  # a page needing nothing is neither copied nor checked again
    assert [p.mime for p in report.pages][-2:] == ["image/jpeg", "image/png"]
    document = report.to_json()
    assert json.loads(json.dumps(document)) == document
    assert [(f["page"], f["pages"]) for f in document["fixes"]] == [
        (f"{folder}/012.png", ["012-1.png", "012-2.png", "012-3.png", "012-4.png"]),
        (f"{folder}/013.webp", ["013.jpg"]),
        (f"{folder}/014.jpg", ["014.png"])]
    assert document["fixes"][0]["done"][0].startswith("split into 4 pages at rows ")
    assert snapshot(folder.iterdir()) == before


def test_fix_chapter_keeps_pages_it_cannot_repair_with_an_error(tmp_path):
    folder = tmp_path / "c12"
    folder.mkdir()
    shutil.copyfile(CORPUS / "hopper.bmp", folder / "1.bmp")
    shutil.copyfile(CORPUS / "broken.png", folder / "2.png")
    Image.frombytes("RGBA", (2400, 2200), os.urandom(2400 * 2200 * 4)).save(folder / "3.png", compress_level=1)

    report = fix_chapter(check_chapter(spec(folder), tmp_path / "work"), tmp_path / "work" / "fixed")

    assert not report.ok
    assert [p.page.upload_name for p in report.pages] == ["1.png", "2.png", "3.png"]
    assert [[(p.code, p.severity) for p in page.problems] for page in report.pages] == [
        [], [("unreadable", "error")], [("file-too-large", "error")]]


def test_a_chapter_the_fixes_push_past_the_page_limit_says_so(strip, tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "FILES_PER_SESSION", 4)
    folder = tmp_path / "c12"
    folder.mkdir()
    shutil.copyfile(CORPUS / "hopper.jpg", folder / "1.jpg")
    shutil.copyfile(strip, folder / "2.png")
    checked = check_chapter(spec(folder), tmp_path / "work")
    assert checked.problems == []  # two pages before the fix

    report = fix_chapter(checked, tmp_path / "work" / "fixed")

    assert len(report.pages) == 5
    assert [(p.code, p.severity) for p in report.problems] == [("too-many-pages", "error")]
    assert "5 pages" in report.problems[0].message and "split the chapter in 2" in report.problems[0].fix
