"""The watched folder: items are taken only when complete, land in done/ or failed/, and are never published twice.

The clock is injected: settling is tested by moving a fake clock, never by sleeping. One test uses real
time to see that a watchdog event (not a rescan) wakes the watcher; it asserts what happens, not how fast.
"""

import fcntl
import io
import json
import os
import signal
import threading
import time
import zipfile
from pathlib import Path

import pytest

from mdupload.errors import AuthError, MdUploadError, UsageError
from mdupload.series import load_series
from mdupload.watch import LOCK_FILE, Watcher, run_watch
from tests.fake_mangadex import FAKE_API

MANGA = "f9c33607-9180-4ba6-b85c-e4b5faee7192"
OTHER_MANGA = "0b7c1f2e-5d3a-4e8b-9c6d-7a1b2c3d4e5f"
GROUP = "145f9110-0a6c-4b71-8737-6acb1a3c5da4"
NIGHT = "Night Market - c001 [Group]"


class Clock:
    """A monotonic clock that only moves when told to, or when the watcher sleeps."""

    def __init__(self):
        self.now = 1000.0
        self.sleeps = []
        self.on_sleep = None

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        if self.on_sleep:
            self.on_sleep()


class FakePublish:
    """`publish(manifest)` as the integrator's: a chapter is uploaded once, then answered "skipped" with its id
    (the ledger and MangaDex's duplicate check do this for the real one). A page named bad.png fails the upload."""

    def __init__(self):
        self.calls = []  # (item name, ChapterSpec, page names as read at publish time)
        self.uploaded = {}  # chapter key -> chapter id
        self.error = None  # raised instead of publishing
        self.during = None  # called while "uploading"

    def __call__(self, manifest) -> dict:
        (spec,) = manifest.chapters
        pages = page_names(spec.pages)
        self.calls.append((spec.pages.name, spec, pages, manifest.manga))
        if self.during:
            self.during()
        if self.error:
            raise self.error
        entry = {"chapter": spec.chapter, "volume": spec.volume, "language": spec.language, "pages": len(pages),
                 "chapter_id": None, "error": None, "failed_pages": {}}
        if "bad.png" in pages:
            entry.update(status="failed", error="1 page(s) still failed after 3 retries: bad.png.",
                         failed_pages={f"{spec.pages.name}/bad.png": "400: the file is not an image"})
            return {"ok": False, "chapters": [entry]}
        key = manifest.chapter_key(spec, FAKE_API)
        status = "skipped" if key in self.uploaded else "uploaded"
        entry.update(status=status, chapter_id=self.uploaded.setdefault(key, f"chapter-{len(self.uploaded) + 1}"))
        return {"ok": True, "chapters": [entry]}

    @property
    def items(self) -> list[str]:
        return [name for name, *_ in self.calls]


def page_names(source: Path) -> list[str]:
    if source.is_dir():
        return sorted(p.relative_to(source).as_posix() for p in source.rglob("*") if p.is_file())
    with zipfile.ZipFile(source) as archive:
        return sorted(archive.namelist())


def make_folder(path: Path, pages=("1.png", "2.png", "3.png")) -> Path:
    path.mkdir(parents=True)
    for page in pages:
        (path / page).write_bytes(b"page " + page.encode())
    return path


def zip_bytes(pages=("1.png", "2.png", "3.png")) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for page in pages:
            archive.writestr(page, (b"page " + page.encode()) * 200)
    return buffer.getvalue()


def write_series(folder: Path, name: str, text: str, manga: str = MANGA) -> Path:
    path = folder / name
    path.write_text(f"manga: {manga}\ngroups: [{GROUP}]\nlanguage: en\nterms_accepted: true\n" + text)
    return path


@pytest.fixture
def inbox(tmp_path):
    path = tmp_path / "inbox"
    path.mkdir()
    return path


@pytest.fixture
def night(tmp_path):
    return write_series(tmp_path, "night.yaml", "match: Night Market\n")


@pytest.fixture
def dawn(tmp_path):
    return write_series(tmp_path, "dawn.yaml", "match: Dawn Chorus\n", OTHER_MANGA)


class Rig:
    """A watcher on a fake clock, its fake publish function and what it logged."""

    def __init__(self, inbox: Path, series_paths, *, settle=30.0, wall_clock=lambda: 0.0):
        self.inbox = inbox
        self.clock = Clock()
        self.publish = FakePublish()
        self.logs = []
        self.series = [load_series(path) for path in series_paths]
        self.settle = settle
        self.wall_clock = wall_clock  # 0: every file looks just written, so settling is measured by the fake clock
        self.watcher = self.restart()

    def restart(self) -> Watcher:
        self.watcher = Watcher(self.inbox, self.series, self.publish, settle=self.settle, rescan_every=10,
                               clock=self.clock, wall_clock=self.wall_clock, sleep=self.clock.sleep,
                               log=self.logs.append)
        return self.watcher

    def poll(self):
        return self.watcher.poll()

    def said(self, fragment: str) -> int:
        return sum(fragment in line for line in self.logs)


@pytest.fixture
def rig(inbox, night):
    return Rig(inbox, [night])


def done(inbox: Path, name: str) -> Path:
    return inbox / "done" / name


def receipt(inbox: Path, name: str) -> dict:
    return json.loads((inbox / "done" / f"{name}.json").read_text())


# --- taken only when complete -----------------------------------------------------------------------

def test_a_folder_filled_page_by_page_is_taken_only_when_complete(rig, inbox):
    item = inbox / NIGHT
    item.mkdir()
    for page in range(1, 5):
        (item / f"{page}.png").write_bytes(b"x" * page)
        assert rig.poll() == []
        rig.clock.advance(20)  # slower than the copy of a page, quicker than the settle time
    rig.clock.advance(9)
    assert rig.poll() == [] and rig.publish.calls == []  # 29 s since the last page appeared
    rig.clock.advance(1)
    (result,) = rig.poll()
    assert (result.status, result.chapter_id, result.moved_to) == ("uploaded", "chapter-1", done(inbox, NIGHT))
    assert rig.publish.calls[0][2] == ["1.png", "2.png", "3.png", "4.png"]
    assert not item.exists() and page_names(done(inbox, NIGHT)) == ["1.png", "2.png", "3.png", "4.png"]
    assert receipt(inbox, NIGHT) == {
        "item": NIGHT, "series": str(rig.series[0].path), "manga": MANGA, "chapter": "1", "volume": None,
        "language": "en", "status": "uploaded", "chapter_id": "chapter-1", "pages": 4,
        "time": "1970-01-01T00:00:00+00:00"}


def test_an_archive_written_in_chunks_is_taken_only_when_complete(rig, inbox):
    data = zip_bytes()
    name = "Night Market - c002 [Group].cbz"
    with open(inbox / name, "wb") as archive:
        for start in range(0, len(data), 1000):
            archive.write(data[start:start + 1000])
            archive.flush()
            assert rig.poll() == []
            rig.clock.advance(10)
    rig.clock.advance(20)
    (result,) = rig.poll()
    assert result.status == "uploaded"
    assert rig.publish.calls[0][2] == ["1.png", "2.png", "3.png"]
    assert done(inbox, name).read_bytes() == data


@pytest.mark.parametrize("damage", ["truncated", "damaged member"])
def test_an_archive_that_does_not_open_cleanly_is_not_taken_until_it_does(rig, inbox, damage):
    data = zip_bytes()
    name = "Night Market - c003 [Group].cbz"
    path = inbox / name
    if damage == "truncated":  # a copy that stalled for longer than the settle time
        path.write_bytes(data[: len(data) // 2])
    else:  # the central directory is there, a page's bytes are not what its CRC says
        middle = data.index(b"page 2.png")
        path.write_bytes(data[:middle] + b"PAGE" + data[middle + 4:])
    for _ in range(4):
        assert rig.poll() == []
        rig.clock.advance(60)
    assert rig.publish.calls == [] and path.exists()
    assert rig.said(f"{name}: not taken: the archive does not open cleanly") == 1  # reported once
    summary = rig.watcher.run_once()
    assert (summary.waiting, summary.exit_code) == ([name], 0)
    path.write_bytes(data)  # the copy completes
    assert rig.poll() == []
    rig.clock.advance(30)
    (result,) = rig.poll()
    assert result.status == "uploaded" and done(inbox, name).exists()


def test_a_folder_with_a_download_in_progress_is_not_taken(rig, inbox):
    item = make_folder(inbox / NIGHT, pages=("1.png", "2.png.crdownload"))
    for _ in range(3):
        assert rig.poll() == []
        rig.clock.advance(60)
    (item / "2.png.crdownload").rename(item / "2.png")
    assert rig.poll() == []
    rig.clock.advance(30)
    assert [r.status for r in rig.poll()] == ["uploaded"]
    assert rig.publish.calls[0][2] == ["1.png", "2.png"]


def test_an_item_changed_while_another_was_published_waits_to_settle_again(rig, inbox):
    make_folder(inbox / NIGHT)
    second = make_folder(inbox / "Night Market - c002 [Group]")

    def add_a_page_once():
        if not (second / "4.png").exists():
            (second / "4.png").write_bytes(b"late page")

    rig.publish.during = add_a_page_once
    assert rig.poll() == []
    rig.clock.advance(30)
    assert [r.name for r in rig.poll()] == [NIGHT]  # c002 changed while c001 was being uploaded
    rig.clock.advance(30)
    assert [r.name for r in rig.poll()] == [second.name]
    assert rig.publish.calls[1][2] == ["1.png", "2.png", "3.png", "4.png"]


# --- done/ and failed/ ------------------------------------------------------------------------------

def test_a_failing_item_goes_to_failed_with_its_reason_and_through_once_fixed(rig, inbox):
    make_folder(inbox / NIGHT, pages=("1.png", "bad.png"))
    rig.poll()
    rig.clock.advance(30)
    (result,) = rig.poll()
    failed = inbox / "failed" / NIGHT
    assert (result.status, result.moved_to) == ("failed", failed)
    assert failed.is_dir() and not (inbox / NIGHT).exists()
    reason = (inbox / "failed" / f"{NIGHT}.error.txt").read_text()
    for fragment in ("mdupload could not publish", "chapter 1 (en)", "1 page(s) still failed after 3 retries",
                     f"{NIGHT}/bad.png: 400: the file is not an image", f"move the item back into {inbox}"):
        assert fragment in reason
    assert rig.said(f"{NIGHT}: failed (chapter 1: 1 page(s) still failed after 3 retries: bad.png.); moved to "
                    f"failed/{NIGHT}, the reason in failed/{NIGHT}.error.txt.") == 1

    (failed / "bad.png").unlink()  # the fix
    failed.rename(inbox / NIGHT)  # moved back
    rig.poll()
    rig.clock.advance(30)
    (result,) = rig.poll()
    assert result.status == "uploaded" and done(inbox, NIGHT).is_dir()
    assert rig.publish.calls[-1][2] == ["1.png"]


@pytest.mark.parametrize("error, fragments", [
    (UsageError("MangaDex requires uploaders to accept its upload terms.", hint="Add `terms_accepted: true`."),
     ["accept its upload terms", "terms_accepted: true"]),
    (RuntimeError("disk on fire"), ["unexpected error (RuntimeError): disk on fire"]),
])
def test_other_errors_fail_the_item(rig, inbox, error, fragments):
    make_folder(inbox / NIGHT)
    rig.publish.error = error
    summary = rig.watcher.run_once()
    assert [r.status for r in summary.results] == ["failed"] and summary.exit_code == 1
    reason = (inbox / "failed" / f"{NIGHT}.error.txt").read_text()
    for fragment in fragments:
        assert fragment in reason


def test_pages_that_fail_the_checks_are_listed_with_their_fixes(rig, inbox):
    """The document `upload --json` writes when the checks fail: each problem with its file and fix."""
    make_folder(inbox / NIGHT)
    problems = [
        {"file": f"{NIGHT}/2.png", "code": "side-too-long", "severity": "fixable",
         "message": "2.png is 24,000 px tall; MangaDex takes at most 10,000", "fix": "split into 3 pages"},
        {"file": f"{NIGHT}/3.png", "code": "corrupt", "severity": "error",
         "message": "3.png cannot be decoded", "fix": "Export the page again."},
        {"file": f"{NIGHT}/1.png", "code": "tiny", "severity": "warning", "message": "1.png is tiny", "fix": None},
    ]
    rig.watcher.publish = lambda manifest: {"ok": False, "error": "checks failed", "chapters": [
        {"chapter": "1", "volume": None, "language": "en", "status": "failed", "problems": problems}]}
    assert rig.watcher.run_once().exit_code == 1
    reason = (inbox / "failed" / f"{NIGHT}.error.txt").read_text()
    assert f"  {NIGHT}/2.png: 2.png is 24,000 px tall; MangaDex takes at most 10,000 (fixable: split into 3 pages)" \
        in reason
    assert f"  {NIGHT}/3.png: 3.png cannot be decoded (error: Export the page again.)" in reason
    assert "1.png is tiny" not in reason  # warnings do not stop an upload
    assert "when the series file says `fix: true`" in reason


def test_a_name_without_a_chapter_fails_with_what_to_do(rig, inbox):
    make_folder(inbox / "Night Market [Group]")
    summary = rig.watcher.run_once()
    assert summary.exit_code == 1 and rig.publish.calls == []
    reason = (inbox / "failed" / "Night Market [Group].error.txt").read_text()
    assert "cannot read the chapter from its name" in reason and "Rename it like" in reason


def test_an_authentication_error_stops_the_watcher_and_leaves_the_item(rig, inbox):
    make_folder(inbox / NIGHT)
    make_folder(inbox / "Night Market - c002 [Group]")
    rig.publish.error = AuthError("MangaDex refused the credentials.")
    with pytest.raises(AuthError, match="refused the credentials"):
        rig.watcher.run_once()
    assert len(rig.publish.calls) == 1  # the second item was not tried
    assert (inbox / NIGHT).is_dir() and not (inbox / "failed").exists()


def test_name_collisions_get_a_suffix_and_nothing_is_overwritten(rig, inbox):
    name = "Night Market - c004 [Group].cbz"
    (inbox / "done").mkdir()
    done(inbox, name).write_bytes(b"an earlier upload")
    done(inbox, "Night Market - c004 [Group] (2).cbz.json").write_text("{}")  # a receipt without its item
    (inbox / name).write_bytes(zip_bytes())
    make_folder(inbox / "failed" / "Night Market [Group]")
    make_folder(inbox / "Night Market [Group]")
    summary = rig.watcher.run_once()
    assert sorted((r.status, r.moved_to.name) for r in summary.results) == [
        ("failed", "Night Market [Group] (2)"), ("uploaded", "Night Market - c004 [Group] (3).cbz")]
    assert done(inbox, name).read_bytes() == b"an earlier upload"
    assert done(inbox, "Night Market - c004 [Group] (2).cbz.json").read_text() == "{}"
    assert receipt(inbox, "Night Market - c004 [Group] (3).cbz")["item"] == name
    assert (inbox / "failed" / "Night Market [Group] (2).error.txt").exists()
    assert not (inbox / "failed" / "Night Market [Group].error.txt").exists()


def test_a_crash_between_publish_and_the_move_does_not_publish_twice(rig, inbox):
    class Killed(BaseException):
        """The process dies right after the upload finished, before the item is moved."""

    make_folder(inbox / NIGHT)

    def publish_then_die(manifest):
        rig.publish(manifest)
        raise Killed

    rig.watcher.publish = publish_then_die
    with pytest.raises(Killed):
        rig.watcher.run_once()
    assert (inbox / NIGHT).is_dir() and list(rig.publish.uploaded.values()) == ["chapter-1"]

    summary = rig.restart().run_once()  # the watcher is started again
    (result,) = summary.results
    assert (result.status, result.chapter_id) == ("skipped", "chapter-1")
    assert len(rig.publish.uploaded) == 1 and len(rig.publish.calls) == 2
    assert receipt(inbox, NIGHT)["status"] == "skipped" and receipt(inbox, NIGHT)["chapter_id"] == "chapter-1"
    assert rig.said("already on MangaDex as chapter chapter-1") == 1


# --- which series ----------------------------------------------------------------------------------

def test_unmatched_items_stay_and_are_reported_once(rig, inbox):
    make_folder(inbox / "Some Other Series - c001")
    (inbox / "notes.txt").write_text("not a chapter")
    (inbox / ".hidden-partial.cbz").write_bytes(b"rsync temp")
    for _ in range(5):
        assert rig.poll() == []
        rig.clock.advance(60)
    assert rig.said("Some Other Series - c001: matches no series (the `match` texts are 'Night Market')") == 1
    assert rig.said("notes.txt: not a folder, .zip or .cbz") == 1
    assert rig.said(".hidden") == 0
    summary = rig.watcher.run_once()
    assert (summary.unmatched, summary.exit_code, rig.publish.calls) == (["Some Other Series - c001"], 0, [])
    assert (inbox / "Some Other Series - c001").is_dir()


def test_two_series_share_an_inbox(inbox, night, dawn):
    rig = Rig(inbox, [night, dawn])
    make_folder(inbox / NIGHT)
    (inbox / "Dawn Chorus [es-la] - c004 (v02) [Group].cbz").write_bytes(zip_bytes())
    make_folder(inbox / "Night Market at Dawn Chorus - c2")  # matches both
    summary = rig.watcher.run_once()
    published = {name: (spec.label, manga) for name, spec, _pages, manga in rig.publish.calls}
    assert published == {NIGHT: ("chapter 1 (en)", MANGA),
                         "Dawn Chorus [es-la] - c004 (v02) [Group].cbz": ("vol 2 chapter 4 (es-la)", OTHER_MANGA)}
    assert summary.ambiguous == ["Night Market at Dawn Chorus - c2"] and summary.exit_code == 1
    assert (inbox / "Night Market at Dawn Chorus - c2").is_dir()
    rig.poll()
    assert rig.said("Night Market at Dawn Chorus - c2: matches 2 series") == 1  # reported once, not guessed
    assert sum(rig.clock.sleeps) == 30  # the first look saw them all settling


# --- --once ---------------------------------------------------------------------------------------

def test_once_waits_up_to_the_settle_time_then_leaves_what_is_still_written(rig, inbox):
    make_folder(inbox / NIGHT)
    growing = make_folder(inbox / "Night Market - c002 [Group]")
    rig.clock.on_sleep = lambda: (growing / f"{len(rig.clock.sleeps) + 3}.png").write_bytes(b"more")
    summary = rig.watcher.run_once()
    assert [r.name for r in summary.results] == [NIGHT]
    assert (summary.waiting, summary.exit_code) == ([growing.name], 0)
    assert sum(rig.clock.sleeps) == 30 and growing.is_dir()
    assert summary.describe() == "1 published, 1 not complete yet (left for the next run)"


def test_once_takes_items_quiet_for_long_at_first_sight(inbox, night):
    rig = Rig(inbox, [night], wall_clock=lambda: time.time() + 3600)  # as if the item was written an hour ago
    make_folder(inbox / NIGHT)
    summary = rig.watcher.run_once()
    assert [r.status for r in summary.results] == ["uploaded"] and rig.clock.sleeps == []


def test_once_with_nothing_to_do(rig):
    summary = rig.watcher.run_once()
    assert (summary.exit_code, summary.describe(), rig.clock.sleeps) == (0, "nothing to do", [])


# --- watching: events, signals, the lock ----------------------------------------------------------

def test_a_watchdog_event_wakes_the_watcher(tmp_path, inbox, night):
    """With rescans an hour apart, only the event of the item's arrival can get it published."""
    make_folder(inbox / "Unrelated - c1")  # its report tells that the first scan is over
    scanned, published = threading.Event(), threading.Event()
    publish = FakePublish()
    publish.during = published.set

    def log(text):
        if text.startswith("Unrelated - c1: matches no series"):
            scanned.set()

    watcher = Watcher(inbox, [load_series(night)], publish, settle=0.2, rescan_every=3600, log=log)
    stop = threading.Event()
    thread = threading.Thread(target=watcher.run_forever, args=(stop,))
    thread.start()
    try:
        assert scanned.wait(30)
        make_folder(tmp_path / "staging" / NIGHT).rename(inbox / NIGHT)
        assert published.wait(30)
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()
    assert publish.items == [NIGHT] and done(inbox, NIGHT).is_dir()


def test_sigterm_stops_the_watcher_and_takes_no_new_item(inbox, night):
    make_folder(inbox / NIGHT)
    make_folder(inbox / "Night Market - c002 [Group]")
    publish = FakePublish()
    publish.during = lambda: len(publish.calls) == 1 and os.kill(os.getpid(), signal.SIGTERM)  # during the first
    before = signal.getsignal(signal.SIGTERM)
    logs = []
    assert run_watch(inbox, [night], publish=publish, settle=0, log=logs.append) == 0
    assert publish.items == [NIGHT] and done(inbox, NIGHT).is_dir()
    assert (inbox / "Night Market - c002 [Group]").is_dir()  # not started
    assert any(line.startswith("SIGTERM: stopping now") for line in logs)
    assert signal.getsignal(signal.SIGTERM) is before


def test_a_second_signal_stops_at_once_and_leaves_the_item_to_resume(inbox, night):
    make_folder(inbox / NIGHT)
    publish = FakePublish()
    publish.during = lambda: [os.kill(os.getpid(), signal.SIGINT) for _ in range(2)]
    before = signal.getsignal(signal.SIGINT)  # whatever pytest inherited (ignored, in a background job)
    with pytest.raises(KeyboardInterrupt):
        run_watch(inbox, [night], publish=publish, settle=0, log=lambda text: None)
    assert (inbox / NIGHT).is_dir() and not (inbox / "done").exists() and not (inbox / "failed").exists()
    assert signal.getsignal(signal.SIGINT) is before


def test_run_watch_once_exit_codes(inbox, night):
    make_folder(inbox / NIGHT)
    logs = []
    assert run_watch(inbox, [night], publish=FakePublish(), settle=0, once=True, log=logs.append) == 0
    assert logs[-1] == f"{inbox}: 1 published."
    make_folder(inbox / "Night Market - c002 [Group]", pages=("bad.png",))
    assert run_watch(inbox, [night], publish=FakePublish(), settle=0, once=True, log=logs.append) == 1
    assert logs[-1] == f"{inbox}: 1 failed (see failed/)."


def test_one_watcher_per_inbox(inbox, night):
    make_folder(inbox / NIGHT)
    publish, logs = FakePublish(), []
    with open(inbox / LOCK_FILE, "a+") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
        held.write("4242\n")
        held.flush()
        assert run_watch(inbox, [night], publish=publish, settle=0, once=True, log=logs.append) == 0
        assert logs == [f"another `mdupload watch` (pid 4242) is processing {inbox}; nothing to do for this run."]
        with pytest.raises(UsageError, match="pid 4242"):
            run_watch(inbox, [night], publish=publish, settle=0, log=logs.append)
    assert publish.calls == []


def test_run_watch_refuses_a_missing_inbox_or_series(tmp_path, night):
    with pytest.raises(UsageError, match="is not a folder"):
        run_watch(tmp_path / "nope", [night], publish=FakePublish())
    with pytest.raises(MdUploadError, match="no such file"):
        run_watch(tmp_path, [tmp_path / "missing.yaml"], publish=FakePublish())
