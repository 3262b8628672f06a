"""Draw the pages of the example series once (run from anywhere: `python manifests/make_example_pages.py`).

Writes chapters/c001/1.png ... 10.png (10 after 9 only in natural order), chapters/c002.cbz holding
p1.jpg ... p6.jpg, and chapters/c002.5/ with PNG and JPEG pages: grayscale 800x1200 panels with the page
number, small enough to keep the whole folder well under 1.5 MB. The output is committed; rerun only to
change the pages.
"""

import io
import zipfile
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

CHAPTERS = Path(__file__).resolve().parent / "chapters"
WIDTH, HEIGHT, MARGIN = 800, 1200, 40


def draw_page(chapter: str, page: int) -> Image.Image:
    image = Image.new("L", (WIDTH, HEIGHT), 255)
    draw = ImageDraw.Draw(image)
    rows = 2 + page % 2  # two or three rows of panels, the last row split in two
    height = (HEIGHT - MARGIN * (rows + 1)) // rows
    for row in range(rows):
        top = MARGIN + row * (height + MARGIN)
        columns = 2 if row == rows - 1 else 1
        width = (WIDTH - MARGIN * (columns + 1)) // columns
        for column in range(columns):
            left = MARGIN + column * (width + MARGIN)
            draw.rectangle((left, top, left + width, top + height), fill=235 - 20 * ((row + column) % 3),
                           outline=0, width=6)
    draw.text((WIDTH // 2, MARGIN + height // 2), str(page), fill=0, font=ImageFont.load_default(size=140), anchor="mm")
    draw.text((WIDTH // 2, HEIGHT - MARGIN // 2), f"chapter {chapter}", fill=0,
              font=ImageFont.load_default(size=24), anchor="mm")
    return image


def encode(image: Image.Image, name: str) -> bytes:
    out = io.BytesIO()
    if name.endswith(".jpg"):
        image.save(out, "JPEG", quality=70)
    else:
        image.save(out, "PNG", optimize=True)
    return out.getvalue()


def main() -> None:
    folder = CHAPTERS / "c001"
    folder.mkdir(parents=True, exist_ok=True)
    for page in range(1, 11):
        (folder / f"{page}.png").write_bytes(encode(draw_page("1", page), ".png"))
    with zipfile.ZipFile(CHAPTERS / "c002.cbz", "w", zipfile.ZIP_STORED) as archive:
        for page in range(1, 7):
            entry = zipfile.ZipInfo(f"p{page}.jpg", date_time=(2024, 1, 1, 0, 0, 0))
            archive.writestr(entry, encode(draw_page("2", page), ".jpg"))
    folder = CHAPTERS / "c002.5"
    folder.mkdir(parents=True, exist_ok=True)
    for page, name in enumerate(["1.png", "2.jpg", "3.png", "4.jpg"], start=1):
        (folder / name).write_bytes(encode(draw_page("2.5", page), name))


if __name__ == "__main__":
    main()
