"""The watched folder: chapter order, outages that leave items in the inbox, --dry-run, and its hints.

Uses test_watch.py's rig (a fake clock, a fake publish function): nothing sleeps for real.
"""

from __future__ import annotations

import pytest

from mdupload.ledger import Ledger
from mdupload.mangadex.errors import NetworkError, RateLimited, ServerError
from mdupload.upload import SessionBusy
from mdupload.watch import run_watch
from tests.test_watch import Rig, inbox, make_folder, night  # noqa: F401 - fixtures

ITEMS = ["Night Market - c013.5 [Group]", "Night Market [en] - c012 [Group]", "Night Market - c2 [Group]",
         "Night Market - c10a [Group]", "Night Market - c010 [Group]"]
IN_CHAPTER_ORDER = [ITEMS[2], ITEMS[4], ITEMS[3], ITEMS[1], ITEMS[0]]  # 2, 10, 10a, 12, 13.5


@pytest.fixture
def rig(inbox, night):
    return Rig(inbox, [night], settle=0)


def test_items_of_a_series_go_out_in_chapter_order_not_name_order(rig, inbox):
    for name in ITEMS:
        make_folder(inbox / name)
    results = rig.poll()
    assert [r.name for r in results] == IN_CHAPTER_ORDER
    assert [spec.chapter for _name, spec, *_ in rig.publish.calls] == ["2", "10", "10a", "12", "13.5"]


class Outage:
    """MangaDex down for the first `failures` calls (the exception the client raises after its own retries)."""

    def __init__(self, publish, error, failures: int):
        self.publish, self.error, self.failures, self.tried = publish, error, failures, []

    def __call__(self, manifest):
        self.tried.append(manifest.chapters[0].chapter)
        if self.failures:
            self.failures -= 1
            raise self.error
        return self.publish(manifest)


@pytest.mark.parametrize("error", [
    NetworkError("MangaDex could not be reached (connection refused)."),
    ServerError("MangaDex answered 503.", status=503),
    RateLimited("MangaDex answered 429.", status=429, retry_after=None),
])
def test_an_outage_keeps_every_item_in_the_inbox_and_publishes_them_in_order_once_back(rig, inbox, error):
    for name in ITEMS:
        make_folder(inbox / name)
    outage = Outage(rig.publish, error, failures=3)
    rig.watcher.publish = outage
    rig.watcher.retry_first, rig.watcher.retry_max = 30, 100
    published, delays = [], []
    for _ in range(3):  # each poll tries the first item, fails, and pauses everything
        results = rig.poll()
        assert [r.status for r in results] == ["deferred"]
        assert sorted(p.name for p in inbox.iterdir() if not p.name.startswith(".")) == sorted(ITEMS)
        assert rig.poll() == []  # paused: nothing is tried before the retry is due
        delays.append(rig.watcher._paused_until - rig.clock.now)
        rig.clock.advance(delays[-1])
    assert delays == [30, 60, 100]  # doubled, capped
    assert rig.said("retry 1 in 30 s") == 1 and rig.said("retry 3 in 100 s") == 1
    assert rig.said("stays in the inbox") == 3
    published = rig.poll()
    assert [r.name for r in published] == IN_CHAPTER_ORDER and {r.status for r in published} == {"uploaded"}
    assert outage.tried == ["2", "2", "2", "2", "10", "10a", "12", "13.5"]
    assert not (inbox / "failed").exists()


def test_after_an_outage_the_delay_starts_again_from_the_first(rig, inbox):
    make_folder(inbox / ITEMS[0])
    rig.watcher.publish = Outage(rig.publish, ServerError("503", status=503), failures=1)
    rig.poll()
    rig.clock.advance(30)
    assert [r.status for r in rig.poll()] == ["uploaded"]
    make_folder(inbox / ITEMS[1])
    rig.watcher.publish = Outage(rig.publish, ServerError("503", status=503), failures=1)
    rig.poll()
    assert rig.said("retry 1 in 30 s") == 2


def test_someone_elses_session_or_a_busy_ledger_leaves_the_item_too(rig, inbox, tmp_path, monkeypatch):
    make_folder(inbox / ITEMS[0])
    rig.watcher.publish = Outage(rig.publish, SessionBusy("another upload is open on this account."), failures=1)
    assert [r.status for r in rig.poll()] == ["deferred"]
    rig.clock.advance(30)
    monkeypatch.setattr("mdupload.ledger.WRITER_WAIT_S", 0.05)
    holder = Ledger(tmp_path / "ledger.sqlite")
    holder.record(("m", "en", (), None, "1"), "UPLOADING")  # another run is writing
    busy = Ledger(tmp_path / "ledger.sqlite")

    def publish_with_the_busy_ledger(manifest):
        busy.record(("m", "en", (), None, "2"), "CHECKED")
        return rig.publish(manifest)

    rig.watcher.publish = publish_with_the_busy_ledger
    assert [r.status for r in rig.poll()] == ["deferred"]
    assert rig.said("in use by another mdupload upload") == 1
    assert not (inbox / "failed").exists()
    holder.close()
    rig.clock.advance(60)
    assert [r.status for r in rig.poll()] == ["uploaded"]
    busy.close()


def test_a_failure_marked_retry_later_in_the_result_leaves_the_item(rig, inbox):
    make_folder(inbox / ITEMS[0])
    answers = [{"ok": False, "chapters": [{"chapter": "13.5", "status": "failed", "retry_later": True,
                                           "error": "the commit of session s failed three times (503)."}]}]

    def publish(manifest):
        return answers.pop() if answers else rig.publish(manifest)

    rig.watcher.publish = publish
    assert [r.status for r in rig.poll()] == ["deferred"]
    rig.clock.advance(30)
    assert [r.status for r in rig.poll()] == ["uploaded"]


def test_once_reports_items_left_by_an_outage_and_exits_1(inbox, night):
    make_folder(inbox / ITEMS[0])
    logs = []

    def publish(manifest):
        raise NetworkError("MangaDex could not be reached.")

    assert run_watch(inbox, [night], publish=publish, settle=0, once=True, log=logs.append, retry_first=3600) == 1
    assert (inbox / ITEMS[0]).is_dir()
    assert any("left in the inbox by a problem outside them" in line for line in logs)


def test_dry_run_lists_in_order_how_each_name_is_read(inbox, night):
    for name in ITEMS + ["Night Market - no number here"]:
        make_folder(inbox / name)
    logs = []

    def publish(manifest):
        raise AssertionError("a dry run publishes nothing")

    assert run_watch(inbox, [night], publish=publish, settle=0, dry_run=True, log=logs.append) == 1
    assert [line.split(":")[0] for line in logs[:5]] == [f"{n}. {name}" for n, name in enumerate(IN_CHAPTER_ORDER, 1)]
    assert "chapter 12; language en; groups 145f9110" in logs[3]
    assert "Night Market - no number here: would go to failed/" in logs[5]
    assert sorted(p.name for p in inbox.iterdir()) == sorted(ITEMS + ["Night Market - no number here"])


def test_chapter_order_holds_when_only_some_names_give_a_volume(rig, inbox):
    names = ["Night Market v02 c011 [Group]", "Night Market - c010 [Group]", "Night Market v01 c003 [Group]"]
    for name in names:
        make_folder(inbox / name)
    assert [r.name for r in rig.poll()] == [names[2], names[1], names[0]]
