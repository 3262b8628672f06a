"""The upload state machine, against an in-memory MangaDex (tests/fake_mangadex.py)."""

from __future__ import annotations

import hashlib
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from PIL import Image

from mdupload.cli import main
from mdupload.ledger import Ledger
from mdupload.mangadex.client import Chapter
from mdupload.sandbox import SECOND_GROUP
from mdupload.upload import (
    BEGIN_ATTEMPTS,
    ChapterPlan,
    ChapterUpload,
    PlannedPage,
    UploadEvents,
    UploadOptions,
)
from mdupload.vocabulary import ChapterKey
from tests.fake_mangadex import GROUP, MANGA, FakeMangaDex

NO_WAIT = {"sleep": lambda s: None}


def make_plan(folder: Path, count: int = 12, chapter: str = "1") -> ChapterPlan:
    folder.mkdir(parents=True, exist_ok=True)
    pages = []
    for n in range(1, count + 1):  # natural order: 1.png, 2.png, ..., 10.png, 11.png
        path = folder / f"{n}.png"
        Image.new("RGB", (40 + n, 60), (n * 10 % 256, sum(map(ord, chapter)) * 7 % 256, 0)).save(path)  # per chapter
        data = path.read_bytes()
        pages.append(PlannedPage(f"c{chapter}/{n}.png", path, f"{n}.png", "image/png", len(data),
                                 hashlib.sha256(data).hexdigest()))
    key = ChapterKey(MANGA, "en", (GROUP,), None, chapter)
    draft = {"volume": None, "chapter": chapter, "title": None, "translatedLanguage": "en"}
    return ChapterPlan(key, f"chapter {chapter} (en)", MANGA, (GROUP,), "en", draft, tuple(pages))


@pytest.fixture
def ledger(tmp_path):
    db = Ledger(tmp_path / "ledger.sqlite3")
    yield db
    db.close()


def run(fake, ledger, plan, **options):
    return ChapterUpload(fake, ledger, plan, UploadOptions(**options), **NO_WAIT).run()


def test_pages_are_committed_in_natural_order_whatever_order_the_answers_come(tmp_path, ledger):
    fake = FakeMangaDex()
    plan = make_plan(tmp_path / "c1", 23)
    result = run(fake, ledger, plan)
    assert result.status == "uploaded"
    assert result.chapter_id == fake.chapters[0].id
    assert fake.committed_orders == [[f"{n}.png" for n in range(1, 24)]]
    assert sorted(fake.sent_names) == sorted(p.upload_name for p in plan.pages)  # each page sent once


def test_every_batch_holds_at_most_ten_files(tmp_path, ledger):
    fake = FakeMangaDex()
    run(fake, ledger, make_plan(tmp_path / "c1", 31))
    assert max(fake.batch_sizes) == 10 and sum(fake.batch_sizes) == 31  # each page sent once


def test_the_result_says_where_the_time_went_phase_by_phase_and_batch_by_batch(tmp_path, ledger):
    plan = make_plan(tmp_path / "c1", 31)
    result = run(FakeMangaDex(), ledger, plan)
    timings = result.timings
    # (no session lookup: nothing of this chapter's earlier runs to look for; see the two tests below)
    assert list(timings.phases) == ["duplicate_check", "begin", "upload", "reconcile", "commit"]
    assert all(seconds >= 0 for seconds in timings.phases.values())
    assert sum(b.pages for b in timings.batches) == 31 and sum(b.accepted for b in timings.batches) == 31
    assert sum(b.bytes for b in timings.batches) == plan.total_bytes and {b.round for b in timings.batches} == {1}
    document = timings.to_json()
    assert document["batches"][0]["bytes"] == timings.batches[0].bytes and "last_answers_s" in document


def test_a_new_chapter_begins_at_once_and_commits_without_listing_its_session(tmp_path, ledger):
    """Nothing of an earlier run to look for, and every batch answered: no GET /upload at all, so that
    the next chapter's begin follows a commit with nothing in between."""
    fake = FakeMangaDex()
    result = run(fake, ledger, make_plan(tmp_path / "c1", 23))
    assert result.status == "uploaded" and "get_open_session" not in fake.calls
    assert fake.calls[0] == "begin_session" and fake.calls[-1] == "commit"


def test_a_begin_refused_because_a_session_is_open_looks_for_it_and_deals_with_it(tmp_path, ledger):
    """MangaDex refuses a begin while a session is open: the refused begin leads to the lookup that was
    skipped, then to what the lookup decides (here: a stale session abandoned), then to a second begin."""
    fake = FakeMangaDex()
    stale = fake.open_foreign_session(minutes_ago=30)
    result = run(fake, ledger, make_plan(tmp_path / "c1"))
    assert result.status == "uploaded" and fake.abandoned == [stale.id]
    assert fake.calls[:4] == ["begin_session", "get_open_session", "abandon_session", "begin_session"]
    assert len(fake.chapters) == 1


def test_a_session_someone_opened_just_now_still_stops_a_new_chapter(tmp_path, ledger):
    """The begin without a lookup changes nothing for a session in use: it is named, and nothing is sent."""
    fake = FakeMangaDex()
    busy = fake.open_foreign_session(minutes_ago=1)
    result = run(fake, ledger, make_plan(tmp_path / "c1"))
    assert result.status == "failed" and busy.id in result.error and "upload_files" not in fake.calls
    assert fake.abandoned == [] and fake.calls.count("begin_session") == 1


def test_a_lost_batch_answer_still_lists_the_session_before_the_commit(tmp_path, ledger):
    fake = FakeMangaDex()
    fake.lose_answer_of_batches = 1
    plan = make_plan(tmp_path / "c1", 23)
    result = run(fake, ledger, plan)
    assert result.status == "uploaded" and "get_open_session" in fake.calls
    assert sorted(fake.committed_orders[0]) == sorted(p.upload_name for p in plan.pages)
    assert len(fake.sent_names) == 23  # the stored batch whose answer was lost is found, not sent again


def test_a_stale_session_is_abandoned_and_the_user_is_told(tmp_path, ledger):
    fake = FakeMangaDex()
    stale = fake.open_foreign_session(minutes_ago=30)
    result = run(fake, ledger, make_plan(tmp_path / "c1"))
    assert result.status == "uploaded"
    assert fake.abandoned == [stale.id]
    assert any("abandoning a stale upload" in n and stale.id in n for n in result.notices)


def test_the_default_stale_threshold_is_10_minutes_on_both_sides_of_it(tmp_path):
    """With the defaults (no stale_after given): a foreign session untouched 11 minutes is abandoned, one
    untouched 9 minutes may be someone uploading now and stops the upload."""
    old = FakeMangaDex()
    eleven = old.open_foreign_session(minutes_ago=11)
    with closing(Ledger(tmp_path / "old.sqlite3")) as db:
        result = ChapterUpload(old, db, make_plan(tmp_path / "c1"), **NO_WAIT).run()
    assert result.status == "uploaded" and old.abandoned == [eleven.id]
    assert any("untouched for longer than 10 min" in n for n in result.notices)

    recent = FakeMangaDex()
    nine = recent.open_foreign_session(minutes_ago=9)
    with closing(Ledger(tmp_path / "recent.sqlite3")) as db:
        result = ChapterUpload(recent, db, make_plan(tmp_path / "c1"), **NO_WAIT).run()
    assert result.status == "failed" and recent.abandoned == [] and nine.id in result.error


def test_the_stale_after_option_defaults_to_10_minutes():
    shown = CliRunner().invoke(main, ["upload", "--help"], terminal_width=200).output
    assert "--stale-after MIN" in shown and "[default: 10" in shown.split("--stale-after", 1)[1].split("--", 1)[0]


def test_a_fresh_foreign_session_stops_the_upload_and_explains(tmp_path, ledger):
    fake = FakeMangaDex()
    fresh = fake.open_foreign_session(minutes_ago=2)
    result = run(fake, ledger, make_plan(tmp_path / "c1"))
    assert result.status == "failed"
    assert fake.abandoned == [] and fake.chapters == []
    assert "website" in result.error and "--abandon-open" in result.error
    assert fresh.id in result.error


def test_a_fresh_foreign_session_is_abandoned_only_with_consent(tmp_path, ledger):
    fake = FakeMangaDex()
    fresh = fake.open_foreign_session(minutes_ago=2)
    result = run(fake, ledger, make_plan(tmp_path / "c1"), abandon_open=True)
    assert result.status == "uploaded"
    assert fake.abandoned == [fresh.id]


def test_refused_files_are_retried_and_the_chapter_completes(tmp_path, ledger):
    fake = FakeMangaDex()
    fake.refuse = {"3.png": 2, "11.png": 1}
    result = run(fake, ledger, make_plan(tmp_path / "c1"))
    assert result.status == "uploaded"
    assert fake.sent_names.count("3.png") == 3 and fake.sent_names.count("11.png") == 2
    assert fake.sent_names.count("1.png") == 1
    assert fake.committed_orders[0] == [f"{n}.png" for n in range(1, 13)]


def test_files_that_keep_failing_are_named_in_the_report_and_nothing_is_committed(tmp_path, ledger):
    fake = FakeMangaDex()
    fake.refuse = {"7.png": 99}
    result = run(fake, ledger, make_plan(tmp_path / "c1"))
    assert result.status == "failed"
    assert fake.chapters == []
    assert fake.sent_names.count("7.png") == 4  # the first try and three retries
    assert result.failed_pages == {"c1/7.png": "7.png: the server refused it"}
    assert "c1/7.png" in result.error
    assert fake.session is not None, "the session stays open so that a rerun resumes it"


def test_a_rerun_resumes_the_session_and_sends_only_what_is_missing(tmp_path, ledger):
    fake = FakeMangaDex()
    plan = make_plan(tmp_path / "c1", 15)
    fake.refuse = {"14.png": 99}
    assert run(fake, ledger, plan, retry_rounds=0).status == "failed"
    sent_before = len(fake.sent_names)
    fake.refuse = {}
    result = run(fake, ledger, plan)
    assert result.status == "uploaded"
    assert fake.sent_names[sent_before:] == ["14.png"]
    assert any("resuming session" in n for n in result.notices)
    assert fake.abandoned == []


def test_a_page_changed_on_disk_since_it_was_uploaded_is_replaced(tmp_path, ledger):
    fake = FakeMangaDex()
    plan = make_plan(tmp_path / "c1", 12)
    fake.refuse = {"12.png": 99}
    run(fake, ledger, plan, retry_rounds=0)
    # page 2 is re-exported between the runs
    changed = plan.pages[1].path
    Image.new("RGB", (99, 99), (0, 200, 0)).save(changed)
    data = changed.read_bytes()
    pages = list(plan.pages)
    pages[1] = PlannedPage(pages[1].origin, changed, "2.png", "image/png", len(data), hashlib.sha256(data).hexdigest())
    fake.refuse = {}
    result = run(fake, ledger, ChapterPlan(**{**plan.__dict__, "pages": tuple(pages)}))
    assert result.status == "uploaded"
    committed = fake.chapters[0]
    assert committed.pages == 12
    assert fake.sent_names.count("2.png") == 2


def test_a_batch_whose_answer_was_lost_is_not_sent_twice(tmp_path, ledger):
    fake = FakeMangaDex()
    fake.lose_answer_of_batches = 1
    result = run(fake, ledger, make_plan(tmp_path / "c1", 25), concurrency=1)
    assert result.status == "uploaded"
    assert len(fake.sent_names) == 25, "the stored batch is found by listing the session, not re-sent"
    assert fake.committed_orders[0] == [f"{n}.png" for n in range(1, 26)]


def test_a_commit_whose_answer_was_lost_publishes_the_chapter_once(tmp_path, ledger):
    fake = FakeMangaDex()
    fake.lose_commit_answers = 1
    plan = make_plan(tmp_path / "c1")
    result = run(fake, ledger, plan)
    assert result.status == "uploaded"
    assert len(fake.chapters) == 1 and result.chapter_id == fake.chapters[0].id
    # and a rerun does not publish it again
    again = run(fake, ledger, plan)
    assert again.status == "skipped" and again.chapter_id == fake.chapters[0].id
    assert len(fake.chapters) == 1


def test_a_chapter_mangadex_already_has_is_skipped_unless_forced(tmp_path, ledger):
    fake = FakeMangaDex()
    plan = make_plan(tmp_path / "c1")
    first = run(fake, ledger, plan)
    other_ledger = Ledger(tmp_path / "other.sqlite3")  # the ledger was lost: MangaDex still knows
    second = run(fake, other_ledger, plan)
    assert second.status == "skipped" and second.chapter_id == first.chapter_id
    assert any("MangaDex already has it" in n for n in second.notices)
    forced = run(fake, other_ledger, plan, force_new=True)
    assert forced.status == "uploaded" and len(fake.chapters) == 2
    other_ledger.close()


def test_every_transition_is_in_the_ledger(tmp_path, ledger):
    fake = FakeMangaDex()
    fake.open_foreign_session(minutes_ago=30)
    plan = make_plan(tmp_path / "c1")
    result = run(fake, ledger, plan)
    states = [t[0] for t in ledger.transitions(plan.key)]
    assert states[0] == "CHECKED" and states[-1] == "COMMITTED"
    for expected in ("BEGINNING", "FINDING_SESSION", "ABANDONING", "UPLOADING", "RECONCILING", "COMMITTING"):
        assert expected in states
    record = ledger.chapter(plan.key)
    assert record.chapter_id == result.chapter_id and record.session_id is None


def test_approval_is_announced(tmp_path, ledger):
    fake = FakeMangaDex()
    fake.approval_required = True
    result = run(fake, ledger, make_plan(tmp_path / "c1"))
    assert any("staff approval" in n for n in result.notices)


# --- killed at every point: the rerun publishes each chapter once, never a page twice -------------

class Killed(BaseException):
    """The process died here (a BaseException: nothing in mdupload catches it, as nothing outlives SIGKILL)."""


class KillSwitch:
    """Counts the moments a kill can fall between (before and after every call to MangaDex, after every
    ledger write) and raises Killed at the chosen one."""

    def __init__(self, at: int | None = None, label: str | None = None):
        self.at = at  # the n-th moment
        self.label = label  # or the first moment with this label
        self.moments: list[str] = []

    def tick(self, label: str) -> None:
        self.moments.append(label)
        if len(self.moments) == self.at or label == self.label:
            self.at, self.label = None, None
            raise Killed(label)


class KillableClient:
    def __init__(self, fake: FakeMangaDex, switch: KillSwitch):
        self._fake, self._switch = fake, switch

    def __getattr__(self, name):
        call = getattr(self._fake, name)

        def killable(*args, **kwargs):
            self._switch.tick(f"before {name}")  # killed before the request went out
            answer = call(*args, **kwargs)
            self._switch.tick(f"after {name}")  # MangaDex did it; the answer never arrives
            return answer
        return killable


class KillableLedger:
    WRITES = ("record", "plan_pages", "set_file_ids", "forget_session")

    def __init__(self, ledger: Ledger, switch: KillSwitch):
        self._ledger, self._switch = ledger, switch

    def __getattr__(self, name):
        attribute = getattr(self._ledger, name)
        if name not in self.WRITES:
            return attribute

        def killable(*args, **kwargs):
            attribute(*args, **kwargs)
            self._switch.tick(f"after ledger.{name}({args[1] if name == 'record' else ''})")
        return killable


def _publish_all(client, ledger, plans, **options) -> list:
    """What `mdupload upload` does with a manifest: each chapter in turn."""
    return [ChapterUpload(client, ledger, plan, UploadOptions(concurrency=1, **options), **NO_WAIT).run()
            for plan in plans]


def _killed_then_rerun(tmp_path, plans, at: int | None, *, listed: bool, stale_session: bool):
    fake = FakeMangaDex()
    fake.listed = listed
    if stale_session:
        fake.open_foreign_session(minutes_ago=30)
    ledger = Ledger(tmp_path / f"ledger-{at}-{listed}-{stale_session}.sqlite3")
    switch = KillSwitch(at)
    try:
        _publish_all(KillableClient(fake, switch), KillableLedger(ledger, switch), plans)
    except Killed:
        pass
    for _rerun in range(3):
        results = _publish_all(fake, ledger, plans)
        if all(r.status != "failed" for r in results):
            break
        fake.listed = True  # MangaDex has processed what was committed: it is listed from now on
    return fake, ledger, switch, results


@pytest.mark.parametrize("listed", [True, False], ids=["listed", "processing"])
@pytest.mark.parametrize("stale_session", [False, True], ids=["no-session", "stale-session"])
def test_killed_at_any_moment_a_rerun_publishes_each_chapter_once(tmp_path, listed, stale_session):
    # Two chapters (the first takes two batches); the kill falls at every moment of the first run in turn:
    # before or after each call to MangaDex (after: it was done, its answer lost), after each ledger write.
    # "processing": MangaDex does not list a committed chapter yet, so only the ledger prevents a second upload.
    plans = [make_plan(tmp_path / "c1", 13, "1"), make_plan(tmp_path / "c2", 3, "2")]
    _fake, _ledger, clean, _results = _killed_then_rerun(tmp_path, plans, None, listed=listed,
                                                         stale_session=stale_session)
    moments = len(clean.moments)
    assert moments > 40
    for at in range(1, moments + 1):
        fake, ledger, switch, results = _killed_then_rerun(tmp_path, plans, at, listed=listed,
                                                          stale_session=stale_session)
        where = f"killed at moment {at} ({switch.moments[-1]})"
        assert [r.status for r in results] in (["uploaded", "uploaded"], ["skipped", "uploaded"],
                                               ["skipped", "skipped"], ["uploaded", "skipped"]), (where, results)
        assert sorted(c.chapter for c in fake.chapters) == ["1", "2"], where
        by_number = {c.chapter: c for c in fake.chapters}
        for plan in plans:
            number = plan.draft["chapter"]
            assert fake.committed_orders[fake.chapters.index(by_number[number])] == [
                p.upload_name for p in plan.pages], where
            record = ledger.chapter(plan.key)
            assert record.chapter_id == by_number[number].id and record.session_id is None, where
        assert fake.session is None, where
        assert fake.stored_twice() == [], where
        ledger.close()


def _killed_at(fake, ledger, plan, label: str) -> None:
    switch = KillSwitch(label=label)
    with pytest.raises(Killed):
        ChapterUpload(KillableClient(fake, switch), KillableLedger(ledger, switch), plan,
                      UploadOptions(concurrency=1), **NO_WAIT).run()


def test_a_session_begun_by_a_killed_run_is_claimed_even_after_an_earlier_one_was_closed_elsewhere(tmp_path, ledger):
    fake = FakeMangaDex()
    plan = make_plan(tmp_path / "c1", 12)
    fake.refuse = {"12.png": 99}
    assert run(fake, ledger, plan, retry_rounds=0).status == "failed"
    fake.abandon_session(fake.session.id)  # `mdupload sessions --abandon`, or the website
    fake.refuse = {}
    _killed_at(fake, ledger, plan, "after begin_session")  # the session is open; its answer never came
    begun = fake.session.id
    result = run(fake, ledger, plan)
    assert result.status == "uploaded", result.error
    assert any(f"resuming session {begun}" in n for n in result.notices)
    assert fake.abandoned == [fake.abandoned[0]] and fake.chapters[0].pages == 12


def test_a_chapter_published_meanwhile_is_skipped_and_its_unfinished_session_closed(tmp_path, ledger):
    fake = FakeMangaDex()
    first, second = make_plan(tmp_path / "c1", 12, "1"), make_plan(tmp_path / "c2", 3, "2")
    fake.refuse = {"12.png": 99}
    assert run(fake, ledger, first, retry_rounds=0).status == "failed"
    leftover = fake.session.id
    # a teammate publishes chapter 1 through the website meanwhile
    published = Chapter("c0ffee00-0000-4000-8000-000000000001", MANGA, "1", None, None, "en", (GROUP,), 12, 1, None)
    fake.chapters.append(published)
    fake.refuse = {}
    results = _publish_all(fake, ledger, [first, second])
    assert (results[0].status, results[0].chapter_id) == ("skipped", published.id)
    assert any(f"abandoning session {leftover}" in n for n in results[0].notices)
    assert results[1].status == "uploaded", results[1].error  # not stopped by chapter 1's leftover session
    assert fake.abandoned == [leftover] and fake.session is None
    assert ledger.chapter(first.key).session_id is None


def test_a_begin_the_server_failed_is_asked_again_when_no_session_was_opened(tmp_path, ledger):
    fake = FakeMangaDex()
    fake.fail_begins = 2
    result = run(fake, ledger, make_plan(tmp_path / "c1"))
    assert result.status == "uploaded", result.error
    assert fake.calls.count("begin_session") == 3


def test_a_begin_that_keeps_failing_fails_the_chapter_and_leaves_nothing_open(tmp_path, ledger):
    fake = FakeMangaDex()
    fake.fail_begins = 9
    result = run(fake, ledger, make_plan(tmp_path / "c1"))
    assert result.status == "failed" and "POST /upload/begin" in result.error
    assert fake.session is None and fake.calls.count("begin_session") == 3


def test_resuming_trusts_the_ledger_when_the_servers_file_hash_is_not_sha256(tmp_path, ledger):
    # MangaDex does not document what fileHash is: pages the ledger saw stored must not be sent again.
    fake = FakeMangaDex()
    fake.hash_is_sha256 = False
    plan = make_plan(tmp_path / "c1", 12)
    fake.refuse = {"12.png": 99}
    run(fake, ledger, plan, retry_rounds=0)
    fake.refuse = {}
    sent_before = len(fake.sent_names)
    result = run(fake, ledger, plan)
    assert result.status == "uploaded"
    assert fake.sent_names[sent_before:] == ["12.png"]
    assert "delete_files" not in fake.calls


def test_the_busy_message_names_the_chapter_whose_unfinished_session_is_open(tmp_path, ledger):
    fake = FakeMangaDex()
    first, second = make_plan(tmp_path / "c1", 12, "1"), make_plan(tmp_path / "c2", 3, "2")
    fake.refuse = {"12.png": 99}
    run(fake, ledger, first, retry_rounds=0)
    result = run(fake, ledger, second)  # e.g. `mdupload upload --chapter 2`
    assert result.status == "failed"
    assert "unfinished upload of chapter 1 (en) from an earlier run" in result.error
    assert "website" not in result.error


# --- the duplicate check, against the sandbox with the real client ----------------------------------

@pytest.fixture(scope="module")
def sandbox():
    from mdupload.sandbox import SandboxConfig, start_sandbox

    running = start_sandbox(SandboxConfig(rate_limits=False, processing_delay=0))
    yield running
    running.stop()


def _real_client(sandbox):
    from mdupload.mangadex.auth import Credentials
    from mdupload.mangadex.client import MangaDexClient

    return MangaDexClient(api_url=sandbox.api_url, auth_url=sandbox.auth_url, rate_limiter=None,
                          credentials=Credentials("demo", "demo", "mdupload-demo", "demo-secret"))


def _plan_for(plan: ChapterPlan, manga: str, chapter: str, groups=(GROUP,)) -> ChapterPlan:
    return ChapterPlan(ChapterKey(manga, "en", tuple(sorted(groups)), None, chapter), f"chapter {chapter} (en)", manga,
                       tuple(groups), "en", {**plan.draft, "chapter": chapter}, plan.pages)


@pytest.mark.parametrize("kind", ["scheduled for next week", "unavailable", "of a pornographic manga", "plain"])
def test_a_chapter_mangadex_has_in_any_form_is_skipped_with_its_id(tmp_path, ledger, sandbox, kind):
    from datetime import timedelta

    from mdupload.sandbox import ADULT_MANGA

    number = {"scheduled for next week": "70", "unavailable": "71", "of a pornographic manga": "72", "plain": "73"}[kind]
    manga = ADULT_MANGA if kind == "of a pornographic manga" else MANGA
    existing = sandbox.add_chapter(manga=manga, chapter=number, groups=(GROUP,),
                                   publish_at=datetime.now(UTC) + timedelta(days=7) if kind.startswith("scheduled")
                                   else None, unavailable=kind == "unavailable")
    before = len(sandbox.state()["chapters"])
    plan = _plan_for(make_plan(tmp_path / "c", 2), manga, number)
    result = ChapterUpload(_real_client(sandbox), ledger, plan, UploadOptions(), **NO_WAIT).run()
    assert (result.status, result.chapter_id) == ("skipped", existing), result.error
    assert len(sandbox.state()["chapters"]) == before


@pytest.mark.parametrize("existing_number, existing_groups", [("5.0", (GROUP,)), ("5", (SECOND_GROUP,))],
                         ids=["5.0 is not 5", "another group's"])
def test_a_chapter_that_only_looks_alike_is_not_a_duplicate(tmp_path, ledger, sandbox, existing_number,
                                                            existing_groups):
    chapter = "80" if existing_number == "5.0" else "81"
    sandbox.add_chapter(manga=MANGA, chapter=existing_number.replace("5", chapter), groups=existing_groups)
    plan = _plan_for(make_plan(tmp_path / "c", 2), MANGA, chapter)
    result = ChapterUpload(_real_client(sandbox), ledger, plan, UploadOptions(), **NO_WAIT).run()
    assert result.status == "uploaded", result.error
    ours = [c["id"] for c in sandbox.state()["chapters"] if c["chapter"] == chapter and c["groups"] == [GROUP]]
    assert ours == [result.chapter_id]


def test_the_busy_message_names_the_chapter_stopped_while_it_was_beginning_its_session(tmp_path, ledger):
    fake = FakeMangaDex()
    first, second = make_plan(tmp_path / "c1", 12, "1"), make_plan(tmp_path / "c2", 3, "2")
    _killed_at(fake, ledger, first, "after begin_session")  # the session is open; the ledger never learnt its id
    result = run(fake, ledger, second)
    assert result.status == "failed"
    assert "it may be the session an earlier run of chapter 1 (en) began just before it was stopped" in result.error
    assert run(fake, ledger, first).status == "uploaded"  # which finishes it
    assert run(fake, ledger, second).status == "uploaded"


def test_a_chapter_whose_begin_failed_never_takes_the_session_a_later_chapter_began(tmp_path, ledger):
    # Found by the fault matrix (seed 1004): chapter 1's begin failed (its last step: BEGINNING, no session);
    # chapter 2 began a session and was killed after its first batch. On the rerun chapter 1 took that session
    # for the one it had begun (its page names 1.png.. fit), deleted chapter 2's pages and committed there.
    fake = FakeMangaDex()
    first, second = make_plan(tmp_path / "c1", 12, "1"), make_plan(tmp_path / "c2", 3, "2")
    fake.fail_begins = BEGIN_ATTEMPTS
    assert run(fake, ledger, first).status == "failed"
    _killed_at(fake, ledger, second, "after upload_files")
    seconds_session = fake.session.id
    results = _publish_all(fake, ledger, [first, second])
    assert [r.status for r in results] == ["failed", "uploaded"]
    assert "unfinished upload of chapter 2 (en)" in results[0].error
    assert "resuming session" in " ".join(results[1].notices)
    assert [r.status for r in _publish_all(fake, ledger, [first, second])] == ["uploaded", "skipped"]
    assert fake.stored_twice() == []  # chapter 2's pages were never deleted and sent again
    assert fake.committed_orders == [[f"{n}.png" for n in range(1, 4)], [f"{n}.png" for n in range(1, 13)]]
    assert fake.abandoned == [] and seconds_session not in [c.id for c in fake.chapters]


class _Timeline(UploadEvents):
    def __init__(self):
        self.events: list[tuple[str, int]] = []

    def bytes_sent(self, plan, count):
        self.events.append(("counted as sent", count))


def test_bytes_count_as_sent_only_once_mangadex_answered_for_them(tmp_path, ledger):
    """A body can leave for the socket's buffers long before the server has it: the progress counts a
    batch's bytes when its answer comes, and only the pages MangaDex accepted."""
    timeline = _Timeline()

    class Buffered(FakeMangaDex):
        def upload_files(self, session_id, files, on_bytes=None):
            answer = super().upload_files(session_id, files, on_bytes)  # the body "left" (on_bytes, if any)
            timeline.events.append(("answered", sum(f.path.stat().st_size for f in files
                                                    if f.filename in {s.original_file_name for s in answer.files})))
            return answer

    fake = Buffered()
    fake.refuse = {"4.png": 1}
    plan = make_plan(tmp_path / "c1", 12)
    result = ChapterUpload(fake, ledger, plan, UploadOptions(concurrency=1), timeline, **NO_WAIT).run()
    assert result.status == "uploaded"
    answered = [n for what, n in timeline.events if what == "answered"]
    counted = [n for what, n in timeline.events if what == "counted as sent"]
    assert counted == answered and sum(counted) == plan.total_bytes
    assert [what for what, _n in timeline.events] == ["answered", "counted as sent"] * len(answered)


def test_every_round_of_sending_refused_pages_again_is_a_notice(tmp_path, ledger):
    fake = FakeMangaDex()
    fake.refuse = {"3.png": 2}
    result = ChapterUpload(fake, ledger, make_plan(tmp_path / "c1"), UploadOptions(retry_backoff_s=2.0),
                           **NO_WAIT).run()
    assert result.status == "uploaded"
    again = [n for n in result.notices if "sending them again" in n]
    assert again == ["1 page(s) not accepted yet (3.png: the server refused it); sending them again in 2 s (round 2 of 4)",
                     "1 page(s) not accepted yet (3.png: the server refused it); sending them again in 4 s (round 3 of 4)"]


# --- the duplicate check at each boundary of a chapter's identity (vocabulary.ChapterKey) -------------

def _release(plan: ChapterPlan, api: str, *, chapter: str | None, volume: str | None = None, title: str | None = None,
             language: str = "en", groups=(GROUP,)) -> ChapterPlan:
    key = ChapterKey.of(api=api, manga=MANGA, language=language, groups=groups, volume=volume, chapter=chapter,
                        title=title)
    draft = {"volume": volume, "chapter": chapter, "title": title, "translatedLanguage": language}
    return ChapterPlan(key, key.label, MANGA, tuple(groups), language, draft, plan.pages)


# name: (what MangaDex has, what is uploaded, whether it is the same chapter)
BOUNDARIES = {
    "the same groups in another order": ({"chapter": "90", "groups": (SECOND_GROUP, GROUP)},
                                         {"chapter": "90", "groups": (GROUP, SECOND_GROUP)}, True),
    "A and B published, A alone uploaded": ({"chapter": "91", "groups": (GROUP, SECOND_GROUP)},
                                            {"chapter": "91", "groups": (GROUP,)}, False),
    "A published, A and B uploaded": ({"chapter": "92", "groups": (GROUP,)},
                                      {"chapter": "92", "groups": (GROUP, SECOND_GROUP)}, False),
    "the same number in another volume": ({"chapter": "93", "volume": "1"}, {"chapter": "93", "volume": "2"}, False),
    "the same number in the same volume": ({"chapter": "94", "volume": "2"}, {"chapter": "94", "volume": "2"}, True),
    "a volume-only release of another volume": ({"chapter": None, "volume": "907"},
                                                {"chapter": None, "volume": "908"}, False),
    "a volume-only release of the same volume": ({"chapter": None, "volume": "909"},
                                                 {"chapter": None, "volume": "909"}, True),
    "another oneshot title": ({"chapter": None, "title": "Summer Special"},
                              {"chapter": None, "title": "Winter Special"}, False),
    "the same oneshot title": ({"chapter": None, "title": "Spring Special"},
                               {"chapter": None, "title": "Spring Special"}, True),
    "another language": ({"chapter": "95", "language": "fr"}, {"chapter": "95", "language": "en"}, False),
}


@pytest.mark.parametrize("name", BOUNDARIES)
def test_the_duplicate_check_at_each_boundary_of_identity(tmp_path, ledger, sandbox, name):
    existing, ours, same = BOUNDARIES[name]
    published = sandbox.add_chapter(manga=MANGA, **{"groups": (GROUP,), **existing})
    plan = _release(make_plan(tmp_path / "c", 2), sandbox.api_url, **ours)
    result = ChapterUpload(_real_client(sandbox), ledger, plan, UploadOptions(), **NO_WAIT).run()
    if same:
        assert (result.status, result.chapter_id) == ("skipped", published), result.error
    else:
        assert result.status == "uploaded" and result.chapter_id != published, result.error


def test_a_chapter_the_ledger_records_on_another_api_is_published_on_this_one(tmp_path, ledger, sandbox):
    rehearsal = _release(make_plan(tmp_path / "c", 2), "http://127.0.0.1:9", chapter="96")
    ledger.record(rehearsal.key, "COMMITTED", chapter_id="rehearsed-on-another-sandbox", clear_session=True)
    here = _release(make_plan(tmp_path / "c", 2), sandbox.api_url, chapter="96")
    result = ChapterUpload(_real_client(sandbox), ledger, here, UploadOptions(), **NO_WAIT).run()
    assert result.status == "uploaded" and result.chapter_id != "rehearsed-on-another-sandbox", result.error
    again = ChapterUpload(_real_client(sandbox), ledger, here, UploadOptions(), **NO_WAIT).run()
    assert (again.status, again.chapter_id) == ("skipped", result.chapter_id)  # on the same API: the ledger says so
    assert ledger.chapter(rehearsal.key).chapter_id == "rehearsed-on-another-sandbox"  # and the other is kept
