"""Hostile input, end to end: archives, page files, manifests and server answers that try to do harm.

Every kind issue 8 names is made here (nothing is downloaded) and sent through the real command
line: each gets one clear error naming the file, no traceback, and nothing is written outside the
work folder. tests/test_pages.py, test_images.py and test_manifest.py test the pieces one by one;
this file tests what a user sees, the hardening added for issue 8 (folder links, page names, entry
counts read before parsing, bounded frame counting) and fuzzes the page collector.
"""

from __future__ import annotations

import io
import json
import os
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import zipfile
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from mdupload import images
from mdupload import pages as pages_module
from mdupload.errors import PageError
from mdupload.images import check_page, count_frames
from mdupload.mangadex import ApiError, Credentials, MangaDexClient, NetworkError
from mdupload.pages import Page, collect_pages
from mdupload.sandbox import SandboxConfig, start_sandbox
from tests.e2e import cli_env

pytestmark = pytest.mark.e2e

MANGA = "f9c33607-9180-4ba6-b85c-e4b5faee7192"
CORPUS = Path(__file__).parent / "corpus" / "images"
PNG = (CORPUS / "hopper.png").read_bytes()


# --- making hostile files -------------------------------------------------------------------------------

def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_with_chunk(kind: bytes, data: bytes) -> bytes:
    """hopper.png with one more chunk after its header."""
    ihdr_end = 8 + 12 + struct.unpack(">I", PNG[8:12])[0]
    return PNG[:ihdr_end] + png_chunk(kind, data) + PNG[ihdr_end:]


def png_claiming(width: int, height: int) -> bytes:
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", zlib.compress(b""))
            + png_chunk(b"IEND", b""))


def gif_with_frames(count: int) -> bytes:
    """A 1x1 GIF with `count` frames, each a few bytes (a million frames fit in 23 MB)."""
    head = b"GIF89a" + struct.pack("<HHBBB", 1, 1, 0x80, 0, 0) + b"\0\0\0\xff\xff\xff"
    frame = (b"\x21\xf9\x04\x00\x00\x00\x00\x00" + b"\x2c" + struct.pack("<HHHHB", 0, 0, 1, 1, 0)
             + b"\x02\x02\x44\x01\x00")
    return head + frame * count + b"\x3b"


def tiff_with_pages(count: int, sizes=None) -> bytes:
    """A little-endian TIFF with `count` 8-bit grey pages (all 1x1 unless `sizes` says otherwise)."""
    sizes = sizes or [(1, 1)] * count
    entries = 8
    ifd_size = 2 + entries * 12 + 4
    pixels_at = 8 + count * ifd_size
    out = bytearray(b"II*\x00" + struct.pack("<I", 8))
    for index, (width, height) in enumerate(sizes):
        following = 8 + (index + 1) * ifd_size if index < count - 1 else 0
        tags = [(256, 4, 1, width), (257, 4, 1, height), (258, 3, 1, 8), (259, 3, 1, 1), (262, 3, 1, 1),
                (273, 4, 1, pixels_at), (278, 4, 1, height), (279, 4, 1, width * height)]
        out += struct.pack("<H", entries) + b"".join(struct.pack("<HHII", *t) for t in tags)
        out += struct.pack("<I", following)
    largest = max(w * h for w, h in sizes)
    return bytes(out) + b"\x80" * largest


def write_zip(path: Path, members: list) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as bundle:
        for name, data in members:
            bundle.writestr(name, data)
    return path


def special(name: str, kind: int) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name)
    info.create_system = 3
    info.external_attr = (kind | 0o644) << 16
    return info


def encrypted(path: Path) -> Path:
    data = bytearray(write_zip(path, [("1.png", PNG)]).read_bytes())
    data[6] |= 0x1
    data[data.index(b"PK\x01\x02") + 8] |= 0x1
    path.write_bytes(bytes(data))
    return path


def folder(path: Path, files: dict) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        target = Path(os.fsdecode(os.path.join(os.fsencode(path), name if isinstance(name, bytes) else name.encode())))
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return path


def deep_folder(path: Path, depth: int) -> Path:
    current = path
    for level in range(depth):
        current = current / f"d{level}"
    folder(current, {"1.png": PNG})
    return path


def linked_out(path: Path, outside: Path) -> Path:
    folder(path, {"1.png": PNG})
    folder(outside, {"private.png": PNG})
    (path / "extras").symlink_to(outside)
    return path


def many_entries(path: Path, count: int) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as bundle:
        for index in range(count):
            bundle.writestr(f"x{index}.txt", b"")
    return path


# Each: chapter source (made by the function, inside the series folder) -> (problem code, words, the file named)
def hostile_chapters(series: Path, outside: Path) -> dict[str, tuple]:
    return {
        "zip slip": (lambda p: write_zip(p.with_suffix(".cbz"), [("1.png", PNG), ("../../escaped.png", PNG)]),
                     "pages-unreadable", "member '../../escaped.png' points outside the archive", ".cbz"),
        "absolute member": (lambda p: write_zip(p.with_suffix(".cbz"), [("1.png", PNG),
                                                                     (str(outside / "abs.png"), PNG)]),
                            "pages-unreadable", "has an absolute path", ".cbz"),
        "symlink member": (lambda p: write_zip(p.with_suffix(".cbz"), [(special("2.png", stat.S_IFLNK),
                                                                     b"/etc/passwd")]),
                           "pages-unreadable", "member '2.png' is a symbolic link", ".cbz"),
        "device member": (lambda p: write_zip(p.with_suffix(".cbz"), [(special("2.png", stat.S_IFCHR), b"")]),
                          "pages-unreadable", "member '2.png' is a device or special file", ".cbz"),
        "zip bomb": (lambda p: write_zip(p.with_suffix(".cbz"), [("1.png", PNG),
                                                                ("2.png", b"\0" * (pages_module.MAX_MEMBER_BYTES + 1))]),
                     "pages-unreadable", "member 2.png inflates past 40 MB", ".cbz"),
        "nested archive": (lambda p: write_zip(p.with_suffix(".cbz"), [("inner.cbz", write_zip(
            p.with_name("inner.zip"), [("1.png", PNG)]).read_bytes())]),
                           "no-pages", "holds no page images (only inner.cbz)", ".cbz"),
        "password": (lambda p: encrypted(p.with_suffix(".cbz")), "pages-unreadable",
                     "member 1.png is password-protected", ".cbz"),
        "truncated zip": (lambda p: p.with_suffix(".cbz").write_bytes(
            write_zip(p.with_name("whole.zip"), [(f"{n}.png", PNG) for n in range(3)]).read_bytes()[:4000])
            and p.with_suffix(".cbz"), "pages-unreadable", "is not a readable zip archive", ".cbz"),
        "too many entries": (lambda p: many_entries(p.with_suffix(".cbz"), pages_module.MAX_MEMBERS + 1),
                             "pages-unreadable", f"holds {pages_module.MAX_MEMBERS + 1:,} entries", ".cbz"),
        "folder link out": (lambda p: linked_out(p, outside / "private-pictures"), "pages-unreadable",
                            "extras links to a folder outside it", ""),
        "too deep": (lambda p: deep_folder(p, pages_module.MAX_FOLDER_DEPTH + 2), "pages-unreadable",
                     f"nested more than {pages_module.MAX_FOLDER_DEPTH} deep", ""),
        "not utf-8 name": (lambda p: folder(p, {"1.png": PNG, b"\xff2.png": PNG}), "pages-unreadable",
                           "the name of \\xff2.png is not UTF-8", ""),
        "control characters": (lambda p: folder(p, {"1\x1b[31m.png": PNG}), "pages-unreadable",
                               "the name of 1\\x1b[31m.png holds control characters", ""),
        "bidi override": (lambda p: folder(p, {"1\u202egnp.exe.png": PNG}), "pages-unreadable",
                          "the name of 1\\u202egnp.exe.png holds invisible characters", ""),
        "decompression bomb": (lambda p: folder(p, {"1.png": png_claiming(60_000, 60_000)}), "bomb",
                               "a decompression bomb", "/1.png"),
        "truncated image": (lambda p: folder(p, {"1.jpg": (CORPUS / "hopper.jpg").read_bytes()[:3000]}), "corrupt",
                            "cut off", "/1.jpg"),
        "zero bytes": (lambda p: folder(p, {"1.png": b""}), "unreadable", "the file is empty (0 bytes)", "/1.png"),
        "text named png": (lambda p: folder(p, {"1.png": b"<html>not an image</html>\n"}), "unreadable",
                           "it is a text file, not an image", "/1.png"),
        "metadata bomb": (lambda p: folder(p, {"1.png": png_with_chunk(b"zTXt", b"k\0\0" + zlib.compress(
            b"a" * 40_000_000))}), "bomb", "its metadata", "/1.png"),
        "colour profile bomb": (lambda p: folder(p, {"1.png": png_with_chunk(b"iCCP", b"p\0\0" + zlib.compress(
            b"a" * 40_000_000))}), "bomb", "colour profile", "/1.png"),
        "gif frames": (lambda p: folder(p, {"1.gif": gif_with_frames(300_000)}), "too-many-frames",
                       "at least 1,001 frames", "/1.gif"),
        "tiff pages": (lambda p: folder(p, {"1.tif": tiff_with_pages(30_000)}), "too-many-frames",
                       "at least 1,001 frames", "/1.tif"),
    }


def snapshot(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): p.lstat().st_size for p in root.rglob("*")}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A series whose every chapter is hostile, its manifest, and the validate run over all of them."""
    root = tmp_path_factory.mktemp("hostile")
    series, outside, scratch = root / "series", root / "outside", root / "tmp"
    series.mkdir()
    scratch.mkdir()
    cases = hostile_chapters(series, outside)
    lines = [f"manga: {MANGA}", "groups: []", "language: en", "chapters:"]
    sources = {}
    for number, (label, (make, *_rest)) in enumerate(cases.items(), start=1):
        source = Path(make(series / f"c{number:02d}"))
        sources[label] = (str(number), source)
        lines += [f'  - chapter: "{number}"', f"    pages: {source.name}"]
    for leftover in ("inner.zip", "whole.zip"):
        for found in series.glob(f"*{leftover}"):
            found.unlink()
    manifest = series / "manifest.yaml"
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    before = {"series": snapshot(series), "outside": snapshot(outside)}
    env = {k: v for k, v in os.environ.items() if not k.startswith("MDUPLOAD_")}
    env["TMPDIR"] = str(scratch)
    run = subprocess.run([sys.executable, "-m", "mdupload", "validate", "--offline", "--json", "manifest.yaml"], env=env,
                         cwd=series, capture_output=True, text=True, timeout=300, check=False)
    return {"cases": cases, "sources": sources, "run": run, "root": root, "series": series, "outside": outside,
            "scratch": scratch, "before": before}


def test_every_hostile_chapter_gets_one_clear_error_naming_the_file(corpus):
    run = corpus["run"]
    assert run.returncode == 1, run.stderr[-3000:]
    assert "Traceback" not in run.stderr
    chapters = {c["chapter"]: c for c in json.loads(run.stdout)["chapters"]}
    for label, (_make, code, words, named) in corpus["cases"].items():
        number, source = corpus["sources"][label]
        chapter = chapters[number]
        assert not chapter["ok"], label
        problems = [p for p in chapter["problems"] if p["severity"] == "error"]
        assert [p["code"] for p in problems] == [code], (label, problems)
        (problem,) = problems
        assert words in problem["message"], (label, problem["message"])
        assert problem["file"].startswith(source.name) and problem["file"].endswith(named or source.name), (
            label, problem["file"])
        assert problem["fix"], label  # and what to do about it
        assert f"{problem['file']}: {problem['message']}" in run.stderr or problem["message"] in run.stderr, label


def test_nothing_is_written_outside_the_work_folder(corpus):
    assert snapshot(corpus["series"]) == corpus["before"]["series"]  # the sources are only read
    assert snapshot(corpus["outside"]) == corpus["before"]["outside"]
    assert list(corpus["scratch"].iterdir()) == []  # the work folder (under TMPDIR) is gone at exit
    assert not list(corpus["root"].rglob("escaped.png")) and not list(corpus["root"].rglob("abs.png"))


# --- manifests, through the command line ---------------------------------------------------------------

def one_chapter(pages: str) -> str:
    return f'manga: {MANGA}\ngroups: []\nlanguage: en\nchapters:\n  - chapter: "1"\n    pages: {pages}\n'


MANIFESTS = {
    "not YAML": ("manga: x\nlanguage: en: fr\n", "manifest.yaml:2: not valid YAML"),
    "billion laughs": ("a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 9) + "]\n" for prev, name in zip("abcdefgh", "bcdefghi")),
                       "anchors and aliases"),
    "python object": ("manga: !!python/object/apply:os.system ['touch PWNED']\n", "tag !!python/object/apply"),
    "wrong type": (one_chapter("[c1]"), "manifest.yaml:6 (chapter 1)"),
    "unknown key": (f"manga: {MANGA}\ngroups: []\nlanguage: en\nchapterz: []\n", "unknown key `chapterz`"),
    "pages a device": (one_chapter(os.devnull), "manifest.yaml:6 (chapter 1)"),
    "pages a pipe": (one_chapter("pipe.cbz"), "manifest.yaml:6 (chapter 1)"),
    "pages a symlink loop": (one_chapter("loop"), "manifest.yaml:6 (chapter 1)"),
}


@pytest.mark.parametrize("case", MANIFESTS, ids=list(MANIFESTS))
def test_a_hostile_manifest_is_one_clear_error_naming_the_line(tmp_path, case):
    text, words = MANIFESTS[case]
    (tmp_path / "manifest.yaml").write_text(text, encoding="utf-8")
    os.mkfifo(tmp_path / "pipe.cbz")
    (tmp_path / "loop").symlink_to(tmp_path / "loop")
    run = subprocess.run([sys.executable, "-m", "mdupload", "validate", "--offline", "manifest.yaml"], cwd=tmp_path, timeout=60,
                         capture_output=True, text=True, check=False, stdin=subprocess.DEVNULL)
    assert run.returncode == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: manifest.yaml") and words in lines[0], run.stderr
    assert not (tmp_path / "PWNED").exists()


def test_a_manifest_and_pages_with_names_that_are_not_utf8_are_refused_clearly_not_a_traceback(tmp_path):
    with start_sandbox(SandboxConfig(rate_limits=False, processing_delay=0)) as sandbox:
        where = os.fsencode(tmp_path)
        manifest = os.path.join(where, b"s\xe9rie.yaml")
        with open(manifest, "w", encoding="utf-8") as file:
            file.write(one_chapter("c1"))
        folder(tmp_path / "c1", {"1.png": PNG, b"2\xfe.png": PNG})
        run = subprocess.run([sys.executable, "-m", "mdupload", "upload", "--accept-terms", os.fsdecode(manifest)],
                             env=cli_env(sandbox, tmp_path / "ledger.sqlite3"), capture_output=True, timeout=120,
                             check=False, stdin=subprocess.DEVNULL)
        assert sandbox.state()["sessions"] == [] and sandbox.state()["chapters"] == []
    stderr = run.stderr.decode("utf-8")  # what was printed is UTF-8 itself
    assert run.returncode == 1 and "Traceback" not in stderr, stderr
    assert "c1: the name of 2\\xfe.png is not UTF-8" in stderr and "Rename the file" in stderr


# --- answers from a hostile server ---------------------------------------------------------------------

TOKENS = json.dumps({"access_token": "hostile-access-4f1a", "expires_in": 900, "refresh_token": "hostile-refresh-4f1a",
                     "refresh_expires_in": 3600, "token_type": "Bearer"}).encode()
ANSWERS = {
    "good": (TOKENS, None),
    "not JSON": (b"<html><body>502 Bad Gateway</body></html>", None),
    "truncated": (TOKENS[:25], len(TOKENS)),
    "missing keys": (b'{"result": "ok", "token_type": "Bearer"}', None),
    "enormous": (b'{"result": "ok", "data": "' + b"x" * (17 * 1024 * 1024) + b'"}', None),
}


class HostileHandler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        self._answer()

    def do_POST(self):
        self._answer()

    def _answer(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length:
            self.rfile.read(length)
        body, declared = ANSWERS[self.server.modes["token" if self.path.startswith("/token") else "api"]]
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(declared or len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = declared is not None


@pytest.fixture(scope="module")
def hostile_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), HostileHandler)
    server.modes = {}
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


SERVER_CASES = {
    ("token", "not JSON"): (1, "The token URL", "answered something that is not a JSON object"),
    ("token", "missing keys"): (3, "The token URL", "answered without an access_token"),
    ("token", "enormous"): (1, "The token URL", "answered something that is not a JSON object"),
    ("api", "not JSON"): (1, "GET /upload", "an answer that is not JSON (or was cut short): '<html><body>502"),
    ("api", "missing keys"): (1, "GET /upload", "is not what its API promises (missing 'data')"),
    ("api", "enormous"): (1, "GET /upload", "an answer larger than 16 MB"),
}


@pytest.mark.parametrize("case", SERVER_CASES, ids=[" ".join(c) for c in SERVER_CASES])
def test_a_hostile_answer_is_one_clear_error(hostile_server, tmp_path, case):
    where, answer = case
    hostile_server.modes = {"token": "good", "api": "good", where: answer}
    url = f"http://127.0.0.1:{hostile_server.server_port}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MDUPLOAD_")}
    env.update(MDUPLOAD_API_URL=url, MDUPLOAD_AUTH_URL=url + "/token", MDUPLOAD_USERNAME="someone",
               MDUPLOAD_PASSWORD="pass-9c2e", MDUPLOAD_CLIENT_ID="client", MDUPLOAD_CLIENT_SECRET="secret-9c2e",
               MDUPLOAD_CONFIG_DIR=str(tmp_path))
    run = subprocess.run([sys.executable, "-m", "mdupload", "sessions"], env=env, capture_output=True, text=True,
                         timeout=120, check=False, stdin=subprocess.DEVNULL)
    code, names, words = SERVER_CASES[case]
    lines = run.stderr.strip().splitlines()
    assert run.returncode == code and len(lines) == 1, run.stderr[-3000:]
    assert lines[0].startswith("error: ") and names in lines[0] and words in lines[0], lines[0]
    assert len(lines[0]) < 1000  # an enormous answer is not echoed


@pytest.mark.parametrize("where", ["token", "api"])
def test_a_truncated_answer_is_a_network_error_naming_the_call(hostile_server, where):
    hostile_server.modes = {"token": "good", "api": "good", where: "truncated"}
    url = f"http://127.0.0.1:{hostile_server.server_port}"
    client = MangaDexClient(api_url=url, auth_url=url + "/token", rate_limiter=None, retries=1,
                            sleep=lambda seconds: None,
                            credentials=Credentials("someone", "pass-9c2e", "client", "secret-9c2e"))
    with pytest.raises(NetworkError, match=r"kept losing its answer .*IncompleteRead") as caught:
        client.get_open_session()
    assert ("POST /token" if where == "token" else "GET /upload") in str(caught.value)
    assert isinstance(caught.value, ApiError)


# --- the hardening, piece by piece ---------------------------------------------------------------------

def test_an_archive_claiming_too_many_entries_is_refused_before_its_directory_is_read(tmp_path, monkeypatch):
    archive = many_entries(tmp_path / "c1.cbz", 40)
    monkeypatch.setattr(pages_module, "MAX_MEMBERS", 30)

    def never(*args, **kwargs):
        raise AssertionError("the central directory was parsed")

    monkeypatch.setattr(pages_module.zipfile, "ZipFile", never)
    with pytest.raises(PageError, match="holds 40 entries, more than the 30 mdupload reads"):
        collect_pages(archive, tmp_path / "work")


def test_a_zip64_archive_is_counted_from_its_zip64_end_record(tmp_path):
    archive = tmp_path / "c1.cbz"
    with zipfile.ZipFile(archive, "w", allowZip64=True) as bundle:
        bundle.writestr("1.png", PNG)
    data = bytearray(archive.read_bytes())
    end = data.rindex(b"PK\x05\x06")
    assert pages_module._declared_entries(archive) == 1
    # The same entry count behind 0xFFFF, as a Zip64 writer puts it: read from the Zip64 record.
    directory_size, directory_at = struct.unpack_from("<LL", data, end + 12)
    zip64 = struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, 1, 1, directory_size, directory_at)
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, end, 1)
    record = bytearray(data[end:end + 22])
    record[8:12] = b"\xff\xff\xff\xff"
    archive.write_bytes(bytes(data[:end]) + zip64 + locator + bytes(record))
    assert pages_module._declared_entries(archive) == 1
    assert [p.upload_name for p in collect_pages(archive, tmp_path / "work").pages] == ["1.png"]


def test_a_linked_folder_inside_the_chapter_is_still_a_second_link_and_a_linked_page_still_works(tmp_path):
    chapter = folder(tmp_path / "c1", {"a/1.png": PNG})
    (chapter / "b").symlink_to(chapter / "a")
    with pytest.raises(PageError, match="already read"):
        collect_pages(chapter, tmp_path / "work")
    (chapter / "b").unlink()
    folder(tmp_path / "shared", {"credits.png": PNG})
    (chapter / "a" / "2.png").symlink_to(tmp_path / "shared" / "credits.png")
    assert [p.upload_name for p in collect_pages(chapter, tmp_path / "work").pages] == ["1.png", "2.png"]


def test_a_folder_with_too_many_entries_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(pages_module, "MAX_FOLDER_ENTRIES", 10)
    chapter = folder(tmp_path / "c1", {f"{n}.png": PNG for n in range(11)})
    with pytest.raises(PageError, match="more than 10 files and folders"):
        collect_pages(chapter, tmp_path / "work")


def test_a_non_page_file_with_a_hostile_name_is_named_safely_in_the_warning(tmp_path):
    chapter = folder(tmp_path / "c1", {"1.png": PNG, b"notes\xff\x1b[2J.txt": b"hi"})
    assert collect_pages(chapter, tmp_path / "work").warnings == ["ignored unexpected file notes\\xff\\x1b[2J.txt"]


@pytest.mark.parametrize("count", [1, 2, 7])
def test_frames_are_counted_as_pillow_counts_them(tmp_path, count):
    frames = []
    for n in range(count):
        frame = Image.new("L", (16, 16), 0)
        frame.putpixel((n, n), 255)  # every frame differs (Pillow merges equal GIF frames)
        frames.append(frame)
    for fmt in ("GIF", "TIFF"):
        out = io.BytesIO()
        frames[0].save(out, fmt, save_all=True, append_images=frames[1:])
        with Image.open(io.BytesIO(out.getvalue())) as image:
            assert count_frames(image, out.getvalue(), 1000) == image.n_frames == count, fmt
    with Image.open(CORPUS / "dispose_bgnd.gif") as image:
        data = (CORPUS / "dispose_bgnd.gif").read_bytes()
        assert count_frames(image, data, 1000) == image.n_frames


def test_a_tiff_whose_later_pages_are_huge_is_refused_by_the_deep_check(tmp_path, monkeypatch):
    monkeypatch.setattr(images, "MAX_ANIMATION_PIXELS", 3_000_000)
    path = tmp_path / "1.tif"
    path.write_bytes(tiff_with_pages(3, [(1, 1), (1500, 1000), (1500, 1000)]))
    report = check_page(Page(path, path.name, path.name), deep=True)
    assert [p.code for p in report.problems] == ["too-many-frames"]
    assert "more than 3 megapixels in all (by frame 3)" in report.problems[0].message


# --- fuzzing the page collector ----------------------------------------------------------------------------

names = st.one_of(
    st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40),
    st.lists(st.sampled_from(["..", ".", "", "a", "b.png", "C:", "\\", "~", "/", "c.zip", "__MACOSX", ".hidden"]),
             min_size=1, max_size=6).map("/".join),
)
kinds = st.sampled_from([0, stat.S_IFREG, stat.S_IFDIR, stat.S_IFLNK, stat.S_IFCHR, stat.S_IFIFO])


@pytest.mark.filterwarnings("ignore:Duplicate name")  # the fuzzer's own archives repeat names on purpose
@settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "150")), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(members=st.lists(st.tuples(names, kinds, st.binary(max_size=64)), min_size=1, max_size=8))
def test_fuzzed_archives_are_refused_or_extracted_inside_the_work_folder(members):
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(scratch)
        archive, work = root / "in" / "c1.cbz", root / "work"
        archive.parent.mkdir()
        with zipfile.ZipFile(archive, "w") as bundle:
            for name, kind, data in members:
                info = zipfile.ZipInfo(name)
                info.create_system = 3
                info.external_attr = (kind | 0o644) << 16
                bundle.writestr(info, data)
        before = snapshot(root)
        try:
            collected = collect_pages(archive, work)
        except PageError as exc:
            assert str(exc).startswith("in/c1.cbz: ") or str(exc).startswith(str(archive))
            collected = None
        after = snapshot(root)
        new = set(after) - set(before)
        assert all(path == "work" or path.startswith("work/") for path in new), new
        if collected is not None:
            assert all(page.path.resolve().is_relative_to(work.resolve()) for page in collected.pages)
            assert all(page.path.is_file() and not page.path.is_symlink() for page in collected.pages)
