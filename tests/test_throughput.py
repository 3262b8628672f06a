"""Throughput (issue 5): rate limits against the sandbox, concurrent batches, streaming bodies, the overlap
of checks and uploads across a manifest, and what people see while it runs.

Speed and memory are measured by `make bench` (tests/bench.py); these tests assert behaviour only.
"""

from __future__ import annotations

import io
import json
import os
import re
import struct
import threading
import zlib
from pathlib import Path

import pytest
import requests
from PIL import Image
from requests_toolbelt.multipart.decoder import MultipartDecoder

from mdupload.ledger import Ledger
from mdupload.mangadex.auth import Credentials
from mdupload.mangadex.client import MangaDexClient, UploadFile
from mdupload.mangadex.ratelimit import RateLimiter
from mdupload.manifest import load_manifest
from mdupload.output import Reporter
from mdupload.publish import upload_manifest
from mdupload.sandbox import SandboxConfig, start_sandbox
from mdupload.upload import ChapterUpload, UploadOptions
from tests.e2e import cli_env, run_cli
from tests.fake_mangadex import FAKE_API, GROUP, MANGA, FakeMangaDex
from tests.test_ratelimit import T0, VirtualClock
from tests.test_upload import make_plan

ANSI = re.compile(r"\x1b\[")


# --- helpers -------------------------------------------------------------------------------------

def write_series(root: Path, chapters: dict[str, int], *, size=(60, 80), fix: bool = False) -> Path:
    """A manifest of chapters named by number, each a folder of `count` small PNG pages."""
    root.mkdir(parents=True, exist_ok=True)
    lines = [f"manga: {MANGA}", f"groups: [{GROUP}]", "language: en", "terms_accepted: true", "chapters:"]
    for number, count in chapters.items():
        folder = root / f"c{number}"
        folder.mkdir()
        for n in range(1, count + 1):
            Image.new("RGB", size, (n * 9 % 256, int(float(number)) * 40 % 256, 90)).save(folder / f"{n}.png")
        lines += [f'  - chapter: "{number}"', f"    pages: c{number}"] + (["    fix: true"] if fix else [])
    manifest = root / "series.yaml"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest


def damage_pixel_data(path: Path) -> None:
    """Scramble a PNG's compressed pixels but keep every checksum right: only decoding finds it."""
    data = bytearray(path.read_bytes())
    at = data.find(b"IDAT")
    length = struct.unpack(">I", data[at - 4:at])[0]
    payload = data[at + 4:at + 4 + length]
    for k in range(8, len(payload) - 4, 5):
        payload[k] ^= 0x5A
    data[at + 4:at + 4 + length] = payload
    data[at + 4 + length:at + 8 + length] = struct.pack(">I", zlib.crc32(b"IDAT" + payload) & 0xFFFFFFFF)
    path.write_bytes(data)


def publish(manifest_path: Path, workdir: Path, client, ledger: Ledger, *, reporter=None, deep=False, fix=False,
            concurrency=4):
    manifest = load_manifest(manifest_path)
    api_url = client.transport.api_url if isinstance(client, MangaDexClient) else FAKE_API
    return upload_manifest(manifest, list(manifest.chapters), workdir, connect=lambda: client, ledger=ledger,
                           api_url=api_url,
                           reporter=reporter or Reporter(quiet=True),
                           options=UploadOptions(concurrency=concurrency, retry_backoff_s=0.0),
                           accept_terms=True, deep=deep, fix=fix)


@pytest.fixture(autouse=True)
def fix_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MDUPLOAD_CACHE_DIR", str(tmp_path / "cache"))


class Ticking:
    """A clock that moves half a second each time it is read."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        self.now += 0.5
        return self.now


@pytest.fixture
def ledger(tmp_path):
    db = Ledger(tmp_path / "ledger.sqlite3")
    yield db
    db.close()


# --- the rate limiter against the sandbox --------------------------------------------------------

def _busy_run(tmp_path: Path, sandbox, name: str, numbers: tuple[str, ...], rate_limiter) -> list[int]:
    """Chapters of 16 pages at concurrency 8 through the real client: with no network latency its requests
    would come far faster than 5 a second. The statuses the sandbox answered, in order."""
    before = len(sandbox.state()["requests"])
    client = MangaDexClient(api_url=sandbox.api_url, auth_url=sandbox.auth_url, rate_limiter=rate_limiter,
                            credentials=Credentials.from_env(sandbox.env))
    manifest = write_series(tmp_path / name, {number: 16 for number in numbers})
    db = Ledger(tmp_path / f"{name}.sqlite3")
    try:
        outcome = publish(manifest, tmp_path / f"{name}-work", client, db, concurrency=8)
    finally:
        db.close()
    assert [r.status for r in outcome.results] == ["uploaded"] * len(numbers), [r.error for r in outcome.results]
    return [r["status"] for r in sandbox.state()["requests"][before:] if r["path"] != "/_sandbox/state"]


def test_a_busy_run_against_the_sandbox_with_rate_limits_meets_no_429(tmp_path):
    with start_sandbox(SandboxConfig(rate_limits=True, processing_delay=0)) as sandbox:
        # The control: the same run without the limiter does meet MangaDex's limits (and waits them out).
        unlimited = _busy_run(tmp_path, sandbox, "unlimited", ("1",), rate_limiter=None)
        assert unlimited.count(429) > 0
        # The limiter, starting after that run (so the sandbox's windows are not empty when it begins).
        statuses = _busy_run(tmp_path, sandbox, "limited", ("4", "5", "6"), rate_limiter=RateLimiter())
        assert len(statuses) >= 25 and 429 not in statuses


def test_remaining_that_only_counts_our_own_requests_does_not_hold_back_until_the_rounded_retry_after():
    """MangaDex's Retry-After is rounded up to whole seconds: believing it whenever Remaining reaches 0 would
    stall every fifth request for up to a second that the limiter's own count already accounts for."""
    clock = VirtualClock()
    limiter = RateLimiter(monotonic=clock, wall=clock, sleep=clock.sleep)
    for left in (4, 3, 2, 1, 0):
        ticket = limiter.acquire("GET", "/chapter")
        limiter.observe("GET", "/chapter", ticket, 200, {"X-RateLimit-Limit": "5", "X-RateLimit-Remaining": str(left),
                                                         "X-RateLimit-Retry-After": str(int(T0) + 2)})
    limiter.acquire("GET", "/chapter")
    assert clock() - T0 == pytest.approx(1.25)  # the window and its padding, not the 2 s of Retry-After


def test_requests_someone_else_made_are_counted_until_mangadex_s_window_ends():
    clock = VirtualClock()
    limiter = RateLimiter(monotonic=clock, wall=clock, sleep=clock.sleep)
    ticket = limiter.acquire("POST", "/upload/begin")
    # MangaDex counted 15 begins in this window: 14 were not ours.
    limiter.observe("POST", "/upload/begin", ticket, 200, {"X-RateLimit-Limit": "20", "X-RateLimit-Remaining": "5",
                                                           "X-RateLimit-Retry-After": str(T0 + 40)})
    times = []
    for _ in range(6):
        limiter.acquire("POST", "/upload/begin")
        times.append(clock() - T0)
    assert times[4] < 2 and times[5] == pytest.approx(40)  # five more fit; the sixth waits for the window's end


# --- concurrent batches ----------------------------------------------------------------------------

class OutOfOrderMangaDex(FakeMangaDex):
    """Holds every batch until `width` are in flight at once, then answers them last-sent first."""

    def __init__(self, width: int):
        super().__init__()
        self.width = width
        self.lock = threading.Lock()
        self.in_flight = 0
        self.most_in_flight = 0
        self.arrived: list[threading.Event] = []
        self.answered: list[threading.Event] = []
        self.answer_order: list[int] = []
        self.barrier = threading.Barrier(width, timeout=20)

    def upload_files(self, session_id, files, on_bytes=None):
        for f in files:  # the body goes out whole; the answer is what waits
            if on_bytes:
                on_bytes(f.path.stat().st_size)
        with self.lock:
            index = len(self.arrived)
            self.arrived.append(threading.Event())
            self.answered.append(threading.Event())
            self.in_flight += 1
            self.most_in_flight = max(self.most_in_flight, self.in_flight)
        if index < self.width:
            self.barrier.wait()  # raises BrokenBarrierError unless `width` batches are in flight at once
            if index + 1 < self.width:
                assert self.answered[index + 1].wait(20), "the batch sent after this one was never answered"
        with self.lock:
            answer = super().upload_files(session_id, files)
            self.in_flight -= 1
            self.answer_order.append(index)
        self.answered[index].set()
        return answer


def test_batches_go_out_together_and_pages_are_committed_in_order_whatever_order_the_answers_come(tmp_path, ledger):
    fake = OutOfOrderMangaDex(width=4)
    plan = make_plan(tmp_path / "c1", 57)  # 6 batches: 4 at once, then 2
    result = ChapterUpload(fake, ledger, plan, UploadOptions(concurrency=4), sleep=lambda s: None).run()
    assert result.status == "uploaded", result.error
    assert fake.most_in_flight == 4
    assert [i for i in fake.answer_order if i < 4] == [3, 2, 1, 0]  # of the first four, the first sent came back last
    assert fake.committed_orders == [[f"{n}.png" for n in range(1, 58)]]
    assert sorted(fake.sent_names) == sorted(p.upload_name for p in plan.pages)  # each page sent once


def test_files_refused_in_concurrent_batches_are_sent_again_and_land_in_their_place(tmp_path, ledger):
    fake = FakeMangaDex()
    fake.refuse = {"3.png": 1, "24.png": 2, "38.png": 1}  # in three different batches
    plan = make_plan(tmp_path / "c1", 40)
    result = ChapterUpload(fake, ledger, plan, UploadOptions(concurrency=4), sleep=lambda s: None).run()
    assert result.status == "uploaded", result.error
    assert [fake.sent_names.count(n) for n in ("3.png", "24.png", "38.png", "1.png")] == [2, 3, 2, 1]
    assert fake.committed_orders == [[f"{n}.png" for n in range(1, 41)]]


# --- streaming -------------------------------------------------------------------------------------

class _Receiver(requests.adapters.BaseAdapter):
    """Reads a request body the way a socket would, in small pieces, calling `between` after the first one."""

    def __init__(self, between):
        super().__init__()
        self.between = between
        self.body_type = None
        self.received = b""
        self.content_type = ""

    def send(self, request, **kwargs):
        self.body_type = type(request.body)
        self.content_type = request.headers["Content-Type"]
        pieces = [request.body.read(64 * 1024)]
        self.between()
        while piece := request.body.read(64 * 1024):
            pieces.append(piece)
        self.received = b"".join(pieces)
        name = MultipartDecoder(self.received, self.content_type).parts[0].headers[b"Content-Disposition"]
        filename = re.search(rb'filename="([^"]+)"', name).group(1).decode()
        answer = {"result": "ok", "errors": [], "data": [{"id": "f1", "type": "upload_session_file", "attributes": {
            "originalFileName": filename, "fileHash": "", "fileSize": 1, "mimeType": "image/png"}}]}
        response = requests.Response()
        response.status_code, response.reason, response.url, response.request = 200, "OK", request.url, request
        response.headers["Content-Type"] = "application/json"
        response.raw = io.BytesIO(json.dumps(answer).encode())
        return response

    def close(self):
        pass


def test_a_batch_is_streamed_from_the_files_while_it_is_sent_not_read_into_memory_first(tmp_path):
    """The end of the page is rewritten after the first 64 KiB of the body went out: the bytes that arrive
    are the new ones only if the body is read from the file as it is sent."""
    page = tmp_path / "001.png"
    page.write_bytes(b"\x89PNG" + os.urandom(3 * 1024 * 1024))
    new_tail = b"rewritten while the batch was on its way" * 100

    def rewrite_the_end():
        with open(page, "r+b") as file:
            file.seek(-len(new_tail), os.SEEK_END)
            file.write(new_tail)

    client = MangaDexClient(api_url="https://api.mangadex.org", auth_url="https://auth.mangadex.org/token",
                            rate_limiter=None)
    receiver = _Receiver(rewrite_the_end)
    client.session.mount("https://api.mangadex.org/", receiver)
    answer = client.upload_files("11111111-1111-4111-8111-111111111111", [UploadFile(page, "001.png", "image/png")])
    assert [f.original_file_name for f in answer.files] == ["001.png"]
    assert receiver.body_type not in (bytes, bytearray, str)
    [part] = MultipartDecoder(receiver.received, receiver.content_type).parts
    assert part.content == page.read_bytes() and part.content.endswith(new_tail)


# --- overlap across a manifest -----------------------------------------------------------------------

class WatchedMangaDex(FakeMangaDex):
    """Records the order of what the state machine asks, per chapter, and can hold the first upload."""

    def __init__(self):
        super().__init__()
        self.log: list[tuple[str, str | None]] = []
        self.hold_first_upload: threading.Event | None = None
        self.hold_commit_until_asked: str | None = None  # a chapter number
        self.asked = threading.Event()
        self.uploads = 0
        self.lock = threading.Lock()

    def find_chapters(self, manga, chapter, language, groups):
        with self.lock:
            self.log.append(("find", chapter))
        if chapter == self.hold_commit_until_asked:
            self.asked.set()
        return super().find_chapters(manga, chapter, language, groups)

    def check_approval_required(self, manga, locale):
        with self.lock:
            self.log.append(("approval", None))
        return super().check_approval_required(manga, locale)

    def begin_session(self, manga, groups):
        self.log.append(("begin", None))
        return super().begin_session(manga, groups)

    def upload_files(self, session_id, files, on_bytes=None):
        with self.lock:
            self.uploads += 1
            first = self.uploads == 1
        if first and self.hold_first_upload is not None:
            assert self.hold_first_upload.wait(20), "the next chapter's deep check did not run during this upload"
        return super().upload_files(session_id, files, on_bytes)

    def commit(self, session_id, draft, page_order):
        if self.hold_commit_until_asked not in (None, draft["chapter"]):
            assert self.asked.wait(20), "the next chapter was not looked up while this one uploaded"
        with self.lock:
            self.log.append(("commit", draft["chapter"]))
        return super().commit(session_id, draft, page_order)


def test_without_deep_a_chapter_that_fails_its_checks_means_nothing_is_uploaded(tmp_path, ledger):
    manifest = write_series(tmp_path / "s", {"1": 3, "2": 3, "3": 3})
    (tmp_path / "s" / "c3" / "2.png").write_bytes(b"\x89PNG\r\n\x1a\n cut off here")
    fake = WatchedMangaDex()
    outcome = publish(manifest, tmp_path / "work", fake, ledger)
    assert not outcome.checks_passed and outcome.results == []
    # the first chapter's questions may have been asked while the checks ran; nothing was begun or sent
    assert set(fake.calls) <= {"get_open_session"} and set(fake.log) <= {("find", "1"), ("approval", None)}
    assert fake.chapters == []


def test_signing_in_and_the_first_chapter_s_questions_overlap_the_checks_and_are_not_asked_again(
        tmp_path, ledger, monkeypatch):
    import mdupload.publish as publish_module

    manifest = write_series(tmp_path / "s", {"1": 3})
    fake = WatchedMangaDex()
    checked = publish_module.check_all

    def check_all(*args, **kwargs):  # the checks end only once MangaDex was asked whether chapter 1 is published
        for _ in range(2000):
            if ("find", "1") in fake.log:
                return checked(*args, **kwargs)
            threading.Event().wait(0.01)
        raise AssertionError("the first chapter's questions were not asked while the checks ran")

    monkeypatch.setattr(publish_module, "check_all", check_all)
    outcome = publish(manifest, tmp_path / "work", fake, ledger)
    assert [r.status for r in outcome.results] == ["uploaded"], [r.error for r in outcome.results]
    # the chapter's lookup: ahead, and once more after the commit (the run waits until MangaDex lists it); the
    # approval question once, during the upload; no session lookup (nothing to resume) and no listing before
    # the commit (every batch was answered)
    assert fake.log.count(("find", "1")) == 2 and fake.log.count(("approval", None)) == 1
    assert "get_open_session" not in fake.calls
    assert {"checks_s", "sign_in_and_lookups_s", "chapters_s", "listing_wait_s"} <= set(outcome.timings)


def test_with_deep_the_next_chapter_is_decoded_while_the_current_one_uploads(tmp_path, ledger, monkeypatch):
    import mdupload.publish as publish_module

    manifest = write_series(tmp_path / "s", {"1": 12, "2": 12})
    fake = WatchedMangaDex()
    fake.hold_first_upload = second_checked = threading.Event()
    checked = publish_module._deep_check

    def deep_check(spec, workdir, fix, fix_cache):
        report = checked(spec, workdir, fix, fix_cache)
        if spec.chapter == "2":
            second_checked.set()
        return report

    monkeypatch.setattr(publish_module, "_deep_check", deep_check)
    outcome = publish(manifest, tmp_path / "work", fake, ledger, deep=True)
    assert [r.status for r in outcome.results] == ["uploaded", "uploaded"], [r.error for r in outcome.results]
    assert fake.committed_orders == [[f"{n}.png" for n in range(1, 13)]] * 2


def test_a_page_only_the_deep_check_finds_damaged_stops_the_run_before_its_chapter(tmp_path, ledger, monkeypatch):
    import mdupload.publish as publish_module

    manifest = write_series(tmp_path / "s", {"1": 4, "2": 4, "3": 4}, size=(64, 64))
    damage_pixel_data(tmp_path / "s" / "c2" / "3.png")
    fake = WatchedMangaDex()
    uploading = threading.Event()
    fake.upload_files = lambda *args, _send=fake.upload_files, **kw: (uploading.set(), _send(*args, **kw))[1]
    checked = publish_module._deep_check

    def deep_check(spec, workdir, fix, fix_cache):
        if spec.chapter == "2":  # decoded (and found damaged) only once chapter 1 is on its way
            assert uploading.wait(20)
        return checked(spec, workdir, fix, fix_cache)

    monkeypatch.setattr(publish_module, "_deep_check", deep_check)
    reporter = Reporter(stream=io.StringIO(), force_plain=True)
    outcome = publish(manifest, tmp_path / "work", fake, ledger, reporter=reporter, deep=True)
    assert outcome.checks_passed and not outcome.ok  # the quick checks before the upload passed
    assert [r.status for r in outcome.results] == ["uploaded", "failed", "failed"]
    assert [c.chapter for c in fake.chapters] == ["1"]
    damaged, after = outcome.results[1], outcome.results[2]
    [(page, why)] = damaged.failed_pages.items()
    assert page.endswith("c2/3.png") and "the image data is damaged" in why
    assert "--deep" in damaged.error and "the 1 chapter(s) before it were published" in damaged.error
    assert "not uploaded" in after.error and "chapter 2 (en)" in after.error
    shown = reporter.stream.getvalue()
    assert "error: chapter 2 (en): failed:" in shown and f"error:   {page}: the image data is damaged" in shown


def test_a_deep_failure_known_before_the_first_upload_means_nothing_is_uploaded(tmp_path, ledger, monkeypatch):
    import mdupload.publish as publish_module

    path = write_series(tmp_path / "s", {"1": 4, "2": 4}, size=(64, 64))
    damage_pixel_data(tmp_path / "s" / "c2" / "3.png")
    fake = WatchedMangaDex()
    second_checked = threading.Event()
    checked = publish_module._deep_check

    def deep_check(spec, workdir, fix, fix_cache):
        report = checked(spec, workdir, fix, fix_cache)
        if spec.chapter == "2":
            second_checked.set()
        return report

    def connect():  # signing in takes until every chapter was decoded
        assert second_checked.wait(20)
        return fake

    monkeypatch.setattr(publish_module, "_deep_check", deep_check)
    manifest = load_manifest(path)
    outcome = upload_manifest(manifest, list(manifest.chapters), tmp_path / "work", connect=connect, ledger=ledger,
                              reporter=Reporter(quiet=True), options=UploadOptions(), api_url=FAKE_API,
                              accept_terms=True, deep=True)
    assert [r.status for r in outcome.results] == ["failed", "failed"] and fake.chapters == []
    assert set(fake.calls) <= {"get_open_session"}  # asked ahead about the first chapter; nothing begun or sent
    assert "not uploaded: the run stopped because chapter 2 (en) failed its --deep check" in outcome.results[0].error
    assert "so it was not uploaded" in outcome.results[1].error and "published" not in outcome.results[1].error


def test_the_next_chapter_is_looked_up_while_the_current_one_uploads_and_not_asked_again(tmp_path, ledger):
    manifest = write_series(tmp_path / "s", {"1": 25, "2": 5})
    fake = WatchedMangaDex()
    fake.hold_commit_until_asked = "2"  # chapter 1 is not committed until chapter 2 was looked up
    outcome = publish(manifest, tmp_path / "work", fake, ledger)
    assert [r.status for r in outcome.results] == ["uploaded", "uploaded"], [r.error for r in outcome.results]
    log = fake.log
    before_last_commit = log[:log.index(("commit", "2"))]
    assert before_last_commit.count(("find", "2")) == 1  # asked once, ahead
    assert log.count(("approval", None)) == 1  # one language: asked once in the run
    # once both are published, the run looks for them in MangaDex's lists (a rerun without the ledger needs them)
    assert log[log.index(("commit", "2")) + 1:] == [("find", "1"), ("find", "2")]
    after_commit = log[log.index(("commit", "1")) + 1:]
    assert after_commit[0] == ("begin", None)  # the next session begins right after the commit's answer


def test_fix_still_repairs_before_anything_is_uploaded(tmp_path, ledger):
    manifest = write_series(tmp_path / "s", {"1": 3})
    page = tmp_path / "s" / "c1" / "2.png"
    Image.open(page).convert("RGB").save(page.with_suffix(".webp"), "WEBP")
    page.unlink()
    fake = WatchedMangaDex()
    refused = publish(manifest, tmp_path / "work", fake, ledger)
    assert not refused.checks_passed and fake.calls == []  # (asked ahead: whether it is published); nothing sent
    fixed = publish(manifest, tmp_path / "work2", fake, ledger, fix=True)
    assert [r.status for r in fixed.results] == ["uploaded"], [r.error for r in fixed.results]
    assert fake.committed_orders == [["1.png", "2.jpg", "3.png"]]


# --- what people see -------------------------------------------------------------------------------

def test_plain_output_has_progress_lines_with_speed_and_a_line_per_finished_chapter(tmp_path, ledger):
    manifest = write_series(tmp_path / "s", {"1": 30, "2": 4}, size=(400, 600))
    reporter = Reporter(stream=io.StringIO(), force_plain=True, clock=Ticking())
    fake = FakeMangaDex()
    outcome = publish(manifest, tmp_path / "work", fake, ledger, reporter=reporter, concurrency=1)
    assert outcome.ok
    lines = reporter.stream.getvalue().splitlines()
    assert not any(ANSI.search(line) or "\r" in line for line in lines)
    progress = [line for line in lines if re.match(r"chapter 1 \(en\): \d+/30 pages, [\d.]+ MiB of [\d.]+ MiB", line)]
    # a line each time the pages answered so far reach another tenth (the batches' sizes depend on what was
    # measured: the first ones are full, the tail may be cut finer)
    done, tenths, expected = 0, 0, []
    for size in fake.batch_sizes:
        done += size
        if done > 30:
            break
        if done * 10 // 30 > tenths:
            tenths = done * 10 // 30
            expected.append(f"{done}/30 pages")
    assert [line.split(": ")[1].split(",")[0] for line in progress] == expected
    assert expected[:2] == ["10/30 pages", "20/30 pages"] and expected[-1] == "30/30 pages"
    assert all(re.search(r", [\d.]+ MiB/s", line) for line in progress)
    finished = [line for line in lines if " uploaded as chapter " in line]
    assert [line.split(":")[0] for line in finished] == ["chapter 1 (en)", "chapter 2 (en)"]
    assert re.search(r"\(30 pages, [\d.]+ MiB sent in [\d.]+ s \([\d.]+ MiB/s\)\)$", finished[0])


def test_quiet_shows_nothing_when_all_goes_well_and_only_errors_when_not(tmp_path, ledger):
    manifest = write_series(tmp_path / "s", {"1": 12, "2": 3})
    quiet = Reporter(stream=io.StringIO(), quiet=True)
    assert publish(manifest, tmp_path / "work", FakeMangaDex(), ledger, reporter=quiet).ok
    assert quiet.stream.getvalue() == ""
    fake = FakeMangaDex()
    fake.refuse = {"2.png": 99}
    quiet = Reporter(stream=io.StringIO(), quiet=True)
    failing = write_series(tmp_path / "t", {"5": 3})
    assert not publish(failing, tmp_path / "work2", fake, ledger, reporter=quiet).ok
    lines = quiet.stream.getvalue().splitlines()
    assert lines and all(line.startswith("error: ") for line in lines)
    assert any("c5/2.png" in line for line in lines)


@pytest.mark.e2e
def test_the_command_with_quiet_prints_nothing_on_stderr(sandbox, tmp_path):
    manifest = write_series(tmp_path / "s", {"1": 12, "2": 3})
    run = run_cli(["upload", str(manifest), "--quiet", "--json"], cli_env(sandbox, tmp_path / "ledger.sqlite"))
    assert run.code == 0 and run.stderr == ""
    assert [c["status"] for c in run.json["chapters"]] == ["uploaded", "uploaded"]
