"""Packing a chapter as .cbz and storing it on LANraragi, against the sandbox LANraragi."""

import base64
import hashlib
import json
import logging
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import pytest
import responses
from PIL import Image

from mdupload.errors import AuthError, PageError, UsageError
from mdupload.lanraragi import (
    DAMAGED_ATTEMPTS,
    KEY_ENV,
    LOCKED_ATTEMPTS,
    MAX_FILENAME_BYTES,
    ComicInfo,
    LanraragiClient,
    LanraragiError,
    archive_id,
    archive_title,
    build_tags,
    cbz_filename,
    pack_cbz,
    sha1_hex,
)
from mdupload.redact import redact
from mdupload.sandbox.lanraragi import start_lanraragi
from tests.e2e import LANRARAGI_KEY as KEY

BEARER = base64.b64encode(KEY.encode()).decode()
INFO = ComicInfo(series="Pretty Cure, Max", number="10.5", language="pt-br", volume="2", title="The Return",
                 translators=("Alpha Scans", "Beta, Gamma"),
                 web="https://mangadex.org/chapter/0b9e5e3c-5d07-4d5f-a1c6-1b1e5d2c7a10")


def make_page(path: Path, shade: int, fmt: str = "PNG") -> Path:
    Image.new("RGB", (40, 60), (shade, 255 - shade, 90)).save(path, fmt)
    return path


@pytest.fixture
def pages(tmp_path):
    folder = tmp_path / "pages"
    folder.mkdir()
    # Reading order as collect_pages gives it (natural order): p1, p2, p10.
    return [make_page(folder / "p1.png", 10), make_page(folder / "p2.JPG", 120, "JPEG"),
            make_page(folder / "p10.png", 240)]


@pytest.fixture
def cbz(tmp_path, pages):
    return pack_cbz(pages, INFO, tmp_path / cbz_filename(INFO))


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def client(lrr, sleeps):
    return LanraragiClient(lrr.url, KEY, sleep=sleeps.append)


def upload_statuses(server):
    return [r["status"] for r in server.requests() if r["path"] == "/api/archives/upload"]


def archive(client, cbz, category=None, extra=()):
    return client.upload(cbz, archive_title(INFO), build_tags(INFO, extra), category)


# --- packing ---


def test_pages_are_packed_in_reading_order_under_names_that_sort(cbz, pages):
    with zipfile.ZipFile(cbz) as packed:
        names = packed.namelist()
        assert names == ["001.png", "002.jpg", "003.png", "ComicInfo.xml"]
        for name, page in zip(names, pages):
            assert packed.read(name) == page.read_bytes()


def test_names_stay_sortable_past_a_thousand_pages(tmp_path):
    pages = []
    for index in range(1, 1001):
        page = tmp_path / f"{index}.png"
        page.write_bytes(index.to_bytes(2, "big"))
        pages.append(page)
    with zipfile.ZipFile(pack_cbz(pages, INFO, tmp_path / "long.cbz")) as packed:
        names = [n for n in packed.namelist() if n != "ComicInfo.xml"]
        assert names[0] == "0001.png" and names[-1] == "1000.png"
        assert sorted(names) == names
        assert [packed.read(n) for n in names] == [p.read_bytes() for p in pages]


def test_comicinfo_xml_describes_the_chapter(cbz):
    with zipfile.ZipFile(cbz) as packed:
        root = ET.fromstring(packed.read("ComicInfo.xml"))
    assert root.tag == "ComicInfo"
    fields = {child.tag: child.text for child in root}
    assert fields == {"Title": "The Return", "Series": "Pretty Cure, Max", "Number": "10.5", "Volume": "2",
                      "Translator": "Alpha Scans, Beta, Gamma", "Web": INFO.web, "PageCount": "3",
                      "LanguageISO": "pt-br", "Manga": "Yes"}
    # The schema is a sequence: strict readers want the elements in its order.
    assert list(fields) == ["Title", "Series", "Number", "Volume", "Translator", "Web", "PageCount", "LanguageISO",
                            "Manga"]


def test_comicinfo_leaves_out_what_the_chapter_does_not_have():
    oneshot = ComicInfo(series="Solo\x07", number=None, language="en", volume="1.5")
    fields = {child.tag: child.text for child in ET.fromstring(oneshot.to_xml(7))}  # no character XML refuses
    # Volume is an integer in the schema: "1.5" stays in the volume: tag only.
    assert fields == {"Series": "Solo", "PageCount": "7", "LanguageISO": "en", "Manga": "Yes"}
    assert "volume:1.5" in build_tags(oneshot)


def test_packing_is_deterministic(tmp_path, pages):
    first = pack_cbz(pages, INFO, tmp_path / "first.cbz")
    for page in pages:
        os.utime(page, (1_000_000_000, 1_000_000_000))
    second = pack_cbz(pages, INFO, tmp_path / "second.cbz")
    assert first.read_bytes() == second.read_bytes()
    assert archive_id(first) == archive_id(second)
    with zipfile.ZipFile(first) as packed:
        assert {entry.date_time for entry in packed.infolist()} == {(1980, 1, 1, 0, 0, 0)}
        assert {entry.compress_type for entry in packed.infolist()} == {zipfile.ZIP_STORED}


def test_archive_id_is_the_sha1_of_the_first_512000_bytes(tmp_path):
    data = bytes(range(256)) * 3000  # 768,000 bytes
    path = tmp_path / "big.cbz"
    path.write_bytes(data)
    assert archive_id(path) == hashlib.sha1(data[:512_000]).hexdigest()
    assert sha1_hex(path) == hashlib.sha1(data).hexdigest()
    assert sha1_hex(path) == sha1_hex(path).lower() != archive_id(path)


def test_an_unreadable_page_is_named_and_nothing_half_written_is_left(tmp_path, pages):
    missing = pages[1].with_name("gone.png")
    dest = tmp_path / "out.cbz"
    with pytest.raises(PageError) as raised:
        pack_cbz([pages[0], missing], INFO, dest)
    assert str(missing) in str(raised.value)
    assert list(tmp_path.glob("out.cbz*")) == []


def test_file_names_are_safe_and_unique_per_release():
    name = cbz_filename(ComicInfo(series='A/B: "C"?', number="3", language="en", translators=("X|Y",)))
    assert not set('/\\:*?"<>|') & set(name) and name.endswith(".cbz")
    other_group = cbz_filename(ComicInfo(series="S", number="3", language="en", translators=("Z",)))
    other_language = cbz_filename(ComicInfo(series="S", number="3", language="fr", translators=("Z",)))
    assert len({other_group, other_language, cbz_filename(INFO)}) == 3
    long_a = cbz_filename(ComicInfo(series="S" * 300, number="1", language="en", translators=("A",)))
    long_b = cbz_filename(ComicInfo(series="S" * 300, number="1", language="en", translators=("B",)))
    assert long_a != long_b and max(len(long_a.encode()), len(long_b.encode())) <= MAX_FILENAME_BYTES


def test_tags_are_sanitised():
    tags = build_tags(INFO, extra=["artist : Some  One", "full colour", "note:one,\ntwo", "series:Pretty Cure Max",
                                   "empty:"])
    assert tags == ["series:Pretty Cure Max", "language:pt-br", "group:Alpha Scans", "group:Beta Gamma",
                    "chapter:10.5", "volume:2", f"source:{INFO.web}", "artist:Some One", "full colour",
                    "note:one two"]
    assert not any("," in tag or ": " in tag for tag in tags)


# --- storing ---


def test_archive_then_archive_again_uploads_once(lrr, client, cbz, category):
    first = archive(client, cbz, category)
    assert (first.id, first.status, first.filename, first.category_added) == (
        archive_id(cbz), "uploaded", cbz.name, False)
    [stored] = lrr.state()["archives"]
    assert stored["id"] == first.id and stored["filename"] == cbz.name and stored["sha1"] == sha1_hex(cbz)
    assert stored["title"] == "Pretty Cure, Max Vol. 2 Ch. 10.5 - The Return [pt-br]"
    assert stored["tags"][:-1] == build_tags(INFO) and stored["tags"][-1].startswith("date_added:")
    assert stored["categories"] == [category] and stored["pagecount"] == 3

    again = archive(client, cbz, category)
    assert (again.id, again.status) == (first.id, "already-there")
    assert upload_statuses(lrr) == [200]
    assert not any(r["method"] == "PUT" and r["path"].startswith("/api/categories") for r in lrr.requests())
    assert all(r["authorization"] for r in lrr.requests())


def test_a_different_file_under_the_same_name_is_reported_with_both_ids(lrr, client, cbz, tmp_path, pages):
    stored = archive(client, cbz)
    changed = tmp_path / "changed"
    changed.mkdir()
    other = pack_cbz([make_page(pages[0].with_name("new.png"), 77), *pages[1:]], INFO, changed / cbz.name)
    with pytest.raises(LanraragiError) as raised:
        archive(client, other)
    message = str(raised.value)
    assert raised.value.status == 409
    assert cbz.name in message and stored.id in message and archive_id(other) in message
    assert "Delete the stored archive" in message
    assert [a["id"] for a in lrr.state()["archives"]] == [stored.id]


def test_a_damaged_transfer_is_sent_again(lrr, client, cbz, sleeps):
    lrr.faults.corrupt_uploads = DAMAGED_ATTEMPTS - 1
    result = archive(client, cbz)
    assert result.status == "uploaded"
    assert upload_statuses(lrr) == [417] * (DAMAGED_ATTEMPTS - 1) + [200]
    assert lrr.state()["archives"][0]["sha1"] == sha1_hex(cbz)
    assert sleeps == []


def test_a_transfer_damaged_every_time_gives_up(lrr, client, cbz):
    lrr.faults.corrupt_uploads = 99
    with pytest.raises(LanraragiError) as raised:
        archive(client, cbz)
    assert raised.value.status == 417 and "arrived damaged" in str(raised.value) and cbz.name in str(raised.value)
    assert upload_statuses(lrr) == [417] * DAMAGED_ATTEMPTS
    assert lrr.state()["archives"] == []


def test_a_locked_file_name_is_retried_with_backoff(lrr, client, cbz, sleeps):
    lrr.faults.locked[cbz.name] = 2
    assert archive(client, cbz).status == "uploaded"
    assert upload_statuses(lrr) == [423, 423, 200]
    assert sleeps == [2.0, 4.0]


def test_a_file_name_locked_too_long_gives_up(lrr, client, cbz, sleeps):
    lrr.faults.locked[cbz.name] = 99
    with pytest.raises(LanraragiError) as raised:
        archive(client, cbz)
    assert raised.value.status == 423 and "locked" in str(raised.value)
    assert upload_statuses(lrr) == [423] * LOCKED_ATTEMPTS
    assert sleeps == [2.0, 4.0, 8.0, 16.0]


def test_a_silently_ignored_category_is_detected_and_fixed(lrr, client, cbz, category):
    lrr.faults.ignore_category_id = True
    result = archive(client, cbz, category)
    assert result.category_added is True
    assert lrr.state()["archives"][0]["categories"] == [category]
    calls = [(r["method"], r["path"], r["status"]) for r in lrr.requests()]
    assert calls[-2:] == [("GET", f"/api/archives/{result.id}/categories", 200),
                          ("PUT", f"/api/categories/{category}/{result.id}", 200)]


def test_a_rerun_puts_an_archive_into_its_category(lrr, client, cbz, category):
    archive(client, cbz)
    again = archive(client, cbz, category)
    assert (again.status, again.category_added) == ("already-there", True)
    assert lrr.state()["archives"][0]["categories"] == [category]
    assert upload_statuses(lrr) == [200]


def test_a_category_the_server_does_not_have_is_reported(lrr, client, cbz, category):
    with pytest.raises(LanraragiError) as raised:
        archive(client, cbz, "SET_1234567890")
    message = str(raised.value)
    assert "SET_1234567890 doesn't exist" in message and f"{category} (Manga)" in message
    assert "is stored but could not be added" in message
    assert len(lrr.state()["archives"]) == 1


def test_a_malformed_category_id_is_refused_before_anything_is_sent(lrr, client, cbz):
    with pytest.raises(UsageError) as raised:
        archive(client, cbz, "SET_1")
    assert "SET_1" in str(raised.value)
    assert lrr.requests() == []


def test_tags_are_sanitised_on_the_way_out(lrr, client, cbz):
    client.upload(cbz, "t", ["artist: A, B", "plain\ntag"])
    assert lrr.state()["archives"][0]["tags"][:2] == ["artist:A B", "plain tag"]


def test_an_unsupported_file_is_reported(client, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("not an archive")
    with pytest.raises(LanraragiError) as raised:
        client.upload(notes, "notes", [])
    assert raised.value.status == 415 and "notes.txt" in str(raised.value)


def test_a_missing_archive_file_is_named(client, tmp_path):
    with pytest.raises(PageError) as raised:
        client.upload(tmp_path / "gone.cbz", "t", [])
    assert "gone.cbz" in str(raised.value)


def test_progress_counts_the_bytes_sent(client, cbz):
    sent = []
    client.upload(cbz, "t", [], on_bytes=sent.append)
    assert all(n >= 0 for n in sent) and sum(sent) > cbz.stat().st_size


# Runs in a process of its own: tracemalloc counts every thread of the process it runs in, and a pytest
# process may have other tests' threads still running, or tracing already started (PYTHONTRACEMALLOC,
# -X tracemalloc: then start() does nothing and the peak is the whole process's). A warm-up upload does
# the first-use work (lazy imports, MIME tables) before measuring; the peak is counted from a reset,
# above what was allocated at that moment.
MEASURE_CLIENT = """
import json, sys, tracemalloc
from pathlib import Path
from mdupload.lanraragi import ComicInfo, LanraragiClient, archive_id, pack_cbz

page, work, url = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
info = ComicInfo(series="Huge", number="1", language="en")
client = LanraragiClient(url)
small = work / "small.png"
small.write_bytes(b"a small page")
client.upload(pack_cbz([small], info, work / "warm-up.cbz"), "warm-up", [])
tracemalloc.start()
tracemalloc.reset_peak()
before = tracemalloc.get_traced_memory()[0]
cbz = pack_cbz([page], info, work / "huge.cbz")
result = client.upload(cbz, "huge", [])
peak = tracemalloc.get_traced_memory()[1] - before
tracemalloc.stop()
print(json.dumps({"peak": peak, "id": result.id, "status": result.status, "expected": archive_id(cbz)}))
"""


def test_a_big_chapter_is_packed_and_sent_without_holding_it_in_memory(tmp_path):
    page = tmp_path / "huge.png"
    with page.open("wb") as out:
        for _ in range(24):
            out.write(os.urandom(1024 * 1024))
    serve = "from mdupload.sandbox.lanraragi import start_lanraragi\nimport sys\n" \
            "print(start_lanraragi().url, flush=True)\nsys.stdin.read()\n"
    with subprocess.Popen([sys.executable, "-c", serve], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          text=True) as server:
        try:
            url = server.stdout.readline().strip()
            client = subprocess.run([sys.executable, "-c", MEASURE_CLIENT, str(page), str(tmp_path), url],
                                    check=False, capture_output=True, text=True, timeout=120)
        finally:
            server.stdin.close()
    assert client.returncode == 0, client.stderr
    measured = json.loads(client.stdout)
    assert measured["id"] == measured["expected"] and measured["status"] == "uploaded"
    assert measured["peak"] < 6 * 1024 * 1024  # a quarter of the file


# --- the API key ---


def test_an_open_server_needs_no_key(cbz):
    with start_lanraragi() as server:
        assert LanraragiClient(server.url).upload(cbz, "t", []).status == "uploaded"
        assert not any(r["authorization"] for r in server.requests())


def test_the_key_comes_from_the_environment(lrr, cbz):
    client = LanraragiClient.from_env(lrr.url + "/api/", environ={KEY_ENV: KEY})
    assert client.upload(cbz, "t", []).status == "uploaded"


def test_a_missing_key_says_where_to_put_it(lrr, cbz):
    with pytest.raises(AuthError) as raised:
        LanraragiClient(lrr.url).upload(cbz, "t", [])
    assert "401" in str(raised.value) and KEY_ENV in str(raised.value)


def test_the_key_never_appears_in_errors_or_logs(lrr, cbz, tmp_path, pages, caplog):
    caplog.set_level(logging.DEBUG)
    errors = []
    wrong = "wrong-key-" + KEY
    with pytest.raises(AuthError) as raised:
        LanraragiClient(lrr.url, wrong).upload(cbz, "t", [])
    errors.append(raised.value)

    client = LanraragiClient(lrr.url, KEY, sleep=lambda s: None)
    archive(client, cbz)
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(LanraragiError) as raised:
        archive(client, pack_cbz(pages[:1], INFO, other / cbz.name))
    errors.append(raised.value)
    lrr.faults.corrupt_uploads = 99
    with pytest.raises(LanraragiError) as raised:
        client.upload(pack_cbz(pages[1:], INFO, tmp_path / "damaged.cbz"), "t", [])
    errors.append(raised.value)
    lrr.faults.corrupt_uploads = 0
    lrr.faults.locked["locked.cbz"] = 99
    with pytest.raises(LanraragiError) as raised:
        client.upload(pack_cbz(pages[1:], INFO, tmp_path / "locked.cbz"), "t", [])
    errors.append(raised.value)
    lrr.stop()
    with pytest.raises(LanraragiError) as raised:
        client.upload(cbz, "t", [])
    errors.append(raised.value)

    secrets = [KEY, BEARER, wrong, base64.b64encode(wrong.encode()).decode()]
    for error in errors:
        text = f"{error} {error!r} {error.__cause__!r}"
        assert not any(secret in text for secret in secrets), text
    assert not any(secret in caplog.text for secret in secrets)
    assert redact(f"Authorization: Bearer {BEARER}") == "Authorization: Bearer [REDACTED]"


def test_an_unreachable_server_is_reported(cbz):
    with start_lanraragi() as server:
        url = server.url
    with pytest.raises(LanraragiError) as raised:
        LanraragiClient(url).upload(cbz, "t", [])
    assert url in str(raised.value) and "Rerunning is safe" in str(raised.value)


def test_an_html_error_page_from_lanraragi_is_quoted_without_markup_and_short(tmp_path):
    page = "<html><body><h1>Internal Server Error</h1><pre>Mojo::Exception at line 3 &lt;here&gt;</pre>" \
           + "<div>noise</div>" * 500 + "</body></html>"
    with responses.RequestsMock(assert_all_requests_are_fired=False) as http:
        http.get("http://lrr.test/api/archives/abc/metadata", status=500, body=page)
        with pytest.raises(LanraragiError) as caught:
            LanraragiClient("http://lrr.test", "key", sleep=lambda s: None).exists("abc")
    message = str(caught.value)
    assert "Internal Server Error Mojo::Exception at line 3 <here>" in message
    assert "<html" not in message and "<div>" not in message and len(message) < 600
