"""The upload state machine, against an in-memory MangaDex (tests/fake_mangadex.py)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from PIL import Image

from mdupload.ledger import Ledger
from mdupload.upload import ChapterPlan, ChapterUpload, PlannedPage, UploadOptions
from tests.fake_mangadex import GROUP, MANGA, FakeMangaDex

NO_WAIT = dict(sleep=lambda s: None)


def make_plan(folder: Path, count: int = 12, chapter: str = "1") -> ChapterPlan:
    folder.mkdir(parents=True, exist_ok=True)
    pages = []
    for n in range(1, count + 1):  # natural order: 1.png, 2.png, ..., 10.png, 11.png
        path = folder / f"{n}.png"
        Image.new("RGB", (40 + n, 60), (n * 10 % 256, 0, 0)).save(path)
        data = path.read_bytes()
        pages.append(PlannedPage(f"c{chapter}/{n}.png", path, f"{n}.png", "image/png", len(data),
                                 hashlib.sha256(data).hexdigest()))
    key = (MANGA, "en", (GROUP,), None, chapter)
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
    assert fake.calls.count("upload_files") == 4


def test_a_stale_session_is_abandoned_and_the_user_is_told(tmp_path, ledger):
    fake = FakeMangaDex()
    stale = fake.open_foreign_session(minutes_ago=30)
    result = run(fake, ledger, make_plan(tmp_path / "c1"))
    assert result.status == "uploaded"
    assert fake.abandoned == [stale.id]
    assert any("abandoning a stale upload" in n and stale.id in n for n in result.notices)


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
    plan = make_plan(tmp_path / "c1")
    result = run(fake, ledger, plan)
    states = [t[0] for t in ledger.transitions(plan.key)]
    assert states[0] == "CHECKED" and states[-1] == "COMMITTED"
    for expected in ("FINDING_SESSION", "BEGINNING", "UPLOADING", "RECONCILING", "COMMITTING"):
        assert expected in states
    record = ledger.chapter(plan.key)
    assert record.chapter_id == result.chapter_id and record.session_id is None


def test_approval_is_announced(tmp_path, ledger):
    fake = FakeMangaDex()
    fake.approval_required = True
    result = run(fake, ledger, make_plan(tmp_path / "c1"))
    assert any("staff approval" in n for n in result.notices)
