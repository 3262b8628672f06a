"""Checking one page against MangaDex's rules: the corpus of real files, and hostile files built here."""

from __future__ import annotations

import csv
import hashlib
import io
import struct
import zlib
from pathlib import Path

import pytest
from PIL import Image

from mdupload import images, limits
from mdupload.images import check_page
from mdupload.pages import Page

CORPUS = Path(__file__).parent / "corpus" / "images"
with (CORPUS / "LABELS.tsv").open(newline="") as _labels:
    LABELS = list(csv.DictReader(_labels, delimiter="\t"))


def labelled(expected: str) -> list[dict]:
    return [pytest.param(row, id=row["file"]) for row in LABELS if row["expected"] == expected]


def page(path: Path, name: str | None = None) -> Page:
    return Page(path=path, origin=str(path), upload_name=name or path.name)


def codes(report, severity: str | None = None) -> list[str]:
    return [p.code for p in report.problems if severity is None or p.severity == severity]


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height but whose pixel data is one empty zlib stream."""
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b""))
            + png_chunk(b"IEND", b""))


@pytest.mark.parametrize("row", labelled("accept"))
@pytest.mark.parametrize("deep", [False, True])
def test_every_accepted_corpus_file_passes(row, deep):
    report = check_page(page(CORPUS / row["file"]), deep=deep)
    assert report.ok, report.problems
    assert report.format == row["real_format"]
    assert report.mime == limits.ACCEPTED_FORMATS[row["real_format"]][0]
    if row["file"] == "tRNS_null_1x1.png":
        assert [(p.code, p.severity) for p in report.problems] == [("tiny", "warning")]
    else:
        assert report.problems == []


@pytest.mark.parametrize("row", labelled("reject"))
@pytest.mark.parametrize("deep", [False, True])
def test_every_rejected_corpus_file_is_an_error_with_advice(row, deep):
    # broken_data_stream.png is found by the quick check too: its damaged IDAT chunk no longer matches
    # its CRC, which Pillow's verify() checks without decoding (see the deep test below for damage
    # only a decode can find).
    report = check_page(page(CORPUS / row["file"]), deep=deep)
    assert not report.ok
    errors = [p for p in report.problems if p.severity == "error"]
    assert errors and all(p.fix for p in errors)


@pytest.mark.parametrize("row", labelled("fixable"))
def test_every_fixable_corpus_file_is_fixable_with_the_fix_named(row):
    expected = {
        "png_named_as.jpg": ("name-mismatch", "rename it to png_named_as.png and send it as image/png "
                                              "(the same bytes, not re-encoded)"),
        # a lossy photo stays JPEG
        "hopper.webp": ("format", "convert WebP to JPEG (quality 95, 4:4:4; the source is lossy)"),
        "hopper.bmp": ("format", "convert BMP to PNG (lossless, like the source)"),
        "hopper.tif": ("format", "convert TIFF to PNG (lossless, like the source)"),
        "avif_exif.avif": ("format", "convert AVIF to JPEG (quality 95, 4:4:4; the source is lossy)"),
    }
    code, fix = expected[row["file"]]
    report = check_page(page(CORPUS / row["file"]))
    assert report.format == row["real_format"]
    assert not report.ok
    assert [(p.code, p.severity, p.fix) for p in report.problems] == [(code, "fixable", fix)]


def test_a_renamed_png_is_sent_with_the_mime_type_of_its_bytes():
    report = check_page(page(CORPUS / "png_named_as.jpg"))
    assert (report.format, report.mime) == ("PNG", "image/png")


def damage_pixel_data(png: bytes) -> bytes:
    """The PNG with its first deflate block made invalid and the IDAT's CRC recomputed: every chunk is
    well formed, so only decoding the pixels shows the damage."""
    start = png.index(b"IDAT") - 4
    length = struct.unpack(">I", png[start:start + 4])[0]
    body = bytearray(png[start + 8:start + 8 + length])
    body[2:66] = b"\xff" * 64
    return png[:start] + png_chunk(b"IDAT", bytes(body)) + png[start + 12 + length:]


def test_only_the_deep_check_finds_damaged_pixel_data_in_an_intact_container(tmp_path):
    # This is why `--deep` exists.
    path = tmp_path / "damaged.png"
    path.write_bytes(damage_pixel_data((CORPUS / "hopper.png").read_bytes()))

    assert check_page(page(path)).ok
    deep = check_page(page(path), deep=True)
    assert codes(deep, "error") == ["corrupt"]
    assert "damaged" in deep.problems[0].message


def test_a_decompression_bomb_is_refused_from_its_header():
    pixels_limit = Image.MAX_IMAGE_PIXELS
    report = check_page(page(CORPUS / "decompression_bomb.gif"), deep=True)
    assert codes(report) == ["bomb"]
    assert "refused without decoding" in report.problems[0].message
    assert Image.MAX_IMAGE_PIXELS == pixels_limit  # Pillow's global bound is left alone


def test_a_header_claiming_more_pixels_than_any_page_is_refused_before_decoding(tmp_path):
    # 1,000 x 120,001 px: above mdupload's bound, below the point where Pillow itself refuses.
    path = tmp_path / "huge.png"
    path.write_bytes(png_header_only(1_000, 120_001))
    report = check_page(page(path), deep=True)
    assert codes(report) == ["bomb"]
    assert "1,000x120,001 px" in report.problems[0].message
    assert (report.width, report.height) == (1_000, 120_001)


def test_a_page_too_long_on_both_sides_must_be_scaled_by_the_user(tmp_path):
    path = tmp_path / "poster.png"
    path.write_bytes(png_header_only(10_500, 10_500))
    report = check_page(page(path))
    assert [(p.code, p.severity) for p in report.problems] == [("side-too-long", "error")]
    assert "scale it down" in report.problems[0].fix


def test_a_png_whose_text_chunk_inflates_too_far_is_rejected_clearly():
    report = check_page(page(CORPUS / "png_decompression_dos.png"))
    assert codes(report, "error") == ["bomb"]
    assert "text chunk" in report.problems[0].message


def test_a_page_taller_than_mangadex_allows_is_split(tmp_path):
    path = tmp_path / "strip.png"
    Image.new("1", (800, 25_000)).save(path)
    report = check_page(page(path), deep=True)
    assert [(p.code, p.severity, p.fix) for p in report.problems] == [
        ("side-too-long", "fixable", "split into 3 pages of at most 10,000 px at quiet rows, top to bottom")]
    assert report.problems[0].message.startswith("800x25,000 px")


def test_an_animation_too_long_to_fit_cannot_be_split(tmp_path):
    path = tmp_path / "scroll.gif"
    frames = [Image.new("P", (20, 10_001)) for _ in range(2)]
    frames[1].putpixel((5, 5), 1)
    frames[0].save(path, save_all=True, append_images=frames[1:])
    report = check_page(page(path))
    assert [(p.code, p.severity) for p in report.problems] == [("side-too-long", "error")]
    assert "an animation cannot be split" in report.problems[0].fix


def test_a_file_over_the_size_limit_is_fixable_by_re_encoding(tmp_path):
    path = tmp_path / "big.jpg"
    path.write_bytes((CORPUS / "hopper.jpg").read_bytes() + b"\0" * limits.BYTES_PER_FILE)
    report = check_page(page(path))
    assert [(p.code, p.severity, p.fix) for p in report.problems] == [
        ("file-too-large", "fixable", "re-encode it as JPEG at the highest quality under 20.0 MiB (lossy)")]
    assert "20.0 MiB" in report.problems[0].message


def test_a_file_too_large_to_inspect_is_an_error_without_reading_it_into_memory(tmp_path, monkeypatch):
    monkeypatch.setattr(images, "MAX_INSPECT_BYTES", 1000)
    path = CORPUS / "hopper.png"
    report = check_page(page(path))
    assert codes(report, "error") == ["file-too-large"]
    assert report.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_hash_and_size_are_those_of_the_file():
    path = CORPUS / "flower.jpg"
    report = check_page(page(path))
    assert report.size == path.stat().st_size
    assert report.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert (report.width, report.height) == (480, 360)


@pytest.mark.parametrize("name, content, words", [
    ("empty.png", b"", "empty (0 bytes)"),
    ("notes.png", b"Chapter 3 translation notes\nPage 1: ...\n", "text file"),
    ("photo.heic", b"\x00\x00\x00\x18ftypheic" + bytes(64), "HEIC"),
])
def test_unreadable_files_are_errors_saying_what_to_do(tmp_path, name, content, words):
    path = tmp_path / name
    path.write_bytes(content)
    report = check_page(page(path))
    assert codes(report) == ["unreadable"]
    assert words in report.problems[0].message
    assert "re-export" in report.problems[0].fix
    assert report.format is None


def test_a_truncated_jpeg_is_caught_by_the_quick_check():
    report = check_page(page(CORPUS / "truncated_hopper.jpg"))
    assert codes(report) == ["corrupt"]
    assert "cut off" in report.problems[0].message


def test_an_animation_with_too_many_frames_is_an_error(tmp_path):
    frames = []
    for n in range(images.MAX_FRAMES + 1):
        frame = Image.new("P", (8, 8))
        frame.putpixel((n % 8, n // 8 % 8), 1 + n % 200)
        frames.append(frame)
    path = tmp_path / "flipbook.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    report = check_page(page(path), deep=True)
    assert codes(report) == ["too-many-frames"]
    assert f"{images.MAX_FRAMES + 1:,} frames" in report.problems[0].message


def test_an_animated_webp_converts_to_gif(tmp_path):
    frames = [Image.new("RGB", (64, 64), (n * 80, 0, 0)) for n in range(3)]
    path = tmp_path / "blink.webp"
    frames[0].save(path, save_all=True, append_images=frames[1:])
    report = check_page(page(path), deep=True)
    assert [(p.code, p.fix) for p in report.problems] == [
        ("format", "convert animated WebP to GIF (3 frames, durations kept)")]


@pytest.mark.parametrize("mode, options, why", [("RGB", {"lossless": True}, "lossless, like the source"),
                                                ("RGBA", {"quality": 80}, "lossless, keeps the transparency")])
def test_a_lossless_or_transparent_webp_converts_to_png(tmp_path, mode, options, why):
    path = tmp_path / "page.webp"
    Image.new(mode, (64, 64)).save(path, **options)
    report = check_page(page(path))
    assert [(p.code, p.fix) for p in report.problems] == [("format", f"convert WebP to PNG ({why})")]


def test_a_multi_picture_jpeg_from_a_phone_is_a_jpeg(tmp_path):
    path = tmp_path / "photo.jpg"
    Image.new("RGB", (64, 64), "red").save(path, "MPO", save_all=True,
                                           append_images=[Image.new("RGB", (64, 64), "blue")])
    with Image.open(path) as image:
        assert image.format == "MPO"
    report = check_page(page(path), deep=True)
    assert report.ok and report.problems == []
    assert (report.format, report.mime) == ("JPEG", "image/jpeg")


def test_an_unaccepted_format_mdupload_does_not_convert_is_an_error(tmp_path):
    path = tmp_path / "page.png"
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64)).save(buffer, "PCX")
    path.write_bytes(buffer.getvalue())
    report = check_page(page(path))
    assert report.format == "PCX"
    assert [(p.code, p.severity) for p in report.problems] == [("format", "error")]
