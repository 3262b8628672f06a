"""The fault matrix in CI: the real `mdupload upload`, killed with SIGKILL at each chosen point (and at
random ones) against a sandbox with faults on, then run again until it succeeds; every invariant of
tests/faults.py must hold. A fixed set of scenarios, run four at a time (they spend their time
waiting for the CLI's own rate limiter, not on the CPU). `make soak` runs hundreds of seeds.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.faults import (
    CHAPTERS,
    DEFAULT_PROCESSING_DELAY,
    FAULT_PROFILES,
    Kill,
    LocalChapter,
    Run,
    Scenario,
    ScenarioResult,
    check,
    run_scenario,
)

pytestmark = pytest.mark.e2e


def _scenario(seed: int, kills: tuple[Kill, ...], profile: str = "light", *, concurrency: int = 2,
              processing_delay: float = DEFAULT_PROCESSING_DELAY, latency: float = 0.01) -> Scenario:
    return Scenario(seed, kills, profile, dict(FAULT_PROFILES[profile]), concurrency, latency, processing_delay)


# Each chosen point, on a request that every run reaches (so that the kill does happen), with faults on.
SCENARIOS = {
    "begin_unanswered": _scenario(101, (Kill("begin_unanswered", "begin", 1, 0.0),)),
    "after_begin": _scenario(102, (Kill("after_begin", "begin", 2, 0.05),)),
    "mid_batch": _scenario(103, (Kill("mid_batch", "batch", 1, 0.0),), concurrency=3),
    "between_batches": _scenario(104, (Kill("between_batches", "batch", 1, 0.03),), concurrency=1),
    # the chapter exists but is not listed yet: only the ledger stands between the rerun and a second upload
    "commit_sent, not processed yet": _scenario(105, (Kill("commit_sent", "commit", 1, 0.0),), "lost"),
    "commit_answered": _scenario(106, (Kill("commit_answered", "commit", 2, 0.01),)),
    "three kills in a row": _scenario(107, (Kill("mid_batch", "batch", 2, 0.0), Kill("commit_sent", "commit", 1, 0.0),
                                            Kill("random", "any", 3, 0.05))),
    "random, heavy faults": Scenario.from_seed(108, ("random", "random"), "heavy"),
}


def _edit(seed: int, kills: tuple[Kill, ...], profile: str = "light") -> Scenario:
    return Scenario(seed, kills, profile, dict(FAULT_PROFILES[profile]), 2, 0.01, DEFAULT_PROCESSING_DELAY, edit=True)


# Corrections (upload --replace after pages changed), killed at each step of an edit.
EDIT_SCENARIOS = {
    "edit: begin unanswered": _edit(201, (Kill("edit_begin_unanswered", "edit_begin", 1, 0.0),)),
    "edit: after begin": _edit(202, (Kill("edit_after_begin", "edit_begin", 1, 0.05),)),
    "edit: pages deleted, unanswered": _edit(203, (Kill("edit_delete", "delete", 1, 0.0),)),
    "edit: a batch stored, unanswered": _edit(204, (Kill("edit_mid_batch", "batch", 1, 0.0),)),
    "edit: commit sent, unanswered": _edit(205, (Kill("edit_commit_sent", "commit", 1, 0.0),), "lost"),
    "edit: three kills in a row": _edit(206, (Kill("edit_begin_unanswered", "edit_begin", 2, 0.0),
                                              Kill("edit_commit_sent", "commit", 1, 0.0),
                                              Kill("random", "any", 3, 0.05))),
}
SCENARIOS.update(EDIT_SCENARIOS)


@pytest.fixture(scope="module")
def results() -> dict[str, ScenarioResult]:
    with ThreadPoolExecutor(max_workers=4) as pool:
        futures = {name: pool.submit(run_scenario, scenario) for name, scenario in SCENARIOS.items()}
        return {name: future.result() for name, future in futures.items()}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_killed_and_rerun_each_chapter_is_published_once_whole_and_in_order(results, name):
    result = results[name]
    assert result.violations == [], result.report()
    scenario = result.scenario
    if scenario.kills and scenario.kills[0].point != "random":
        assert result.runs[0].killed, "the chosen kill point was not reached:\n" + result.report()
    assert result.runs[-1].code == 0 and not result.runs[-1].killed


def test_the_matrix_kills_and_faults_for_real(results):
    """The scenarios above are not vacuous: processes died, faults struck, and reruns took the recovery paths."""
    total = ScenarioResult(None)
    for result in results.values():
        total.faults.update(result.faults)
        total.events.update(result.events)
    assert sum(r.kills for r in results.values()) >= len(SCENARIOS)
    assert {"error", "lost_answer"} <= set(total.faults), total.faults
    assert total.events["runs that resumed a session"] >= 2, total.events
    assert total.events["runs that resolved a lost commit"] >= 1, total.events


# --- the checks themselves catch what they are meant to catch ----------------------------------------

def _local() -> list[LocalChapter]:
    return [LocalChapter(number, volume, language, groups, publish_at is not None,
                         tuple((f"{n}.png", f"{n:064x}") for n in range(1, count + 1)))
            for number, volume, language, groups, publish_at, count in CHAPTERS]


def _server_chapter(local: LocalChapter, chapter_id: str, pages=None) -> dict:
    from mdupload.sandbox import DEMO_MANGA

    pages = local.pages if pages is None else pages
    return {"id": chapter_id, "manga": DEMO_MANGA, "chapter": local.chapter, "volume": local.volume,
            "translatedLanguage": local.language, "groups": list(local.groups),
            "pages": [{"originalFileName": name, "fileHash": sha} for name, sha in pages]}


def _status(chapters: list[LocalChapter], ids: list[str]) -> Run:
    import json

    rows = [{"chapter": c.chapter, "state": "committed", "chapter_id": i, "session_id": None}
            for c, i in zip(chapters, ids, strict=True)]
    return Run(None, False, 0, 0.0, json.dumps({"chapters": rows}), "")


def _violations(state: dict, status: Run, stored_twice=()) -> list[str]:
    result = ScenarioResult(None)
    base = {"requests": [], "sessions": [], "faults": {"injected": {}}, "warnings": [], "internalErrors": []}
    check(result, _local(), {**base, **state}, status, list(stored_twice))
    return result.violations


def test_the_checks_pass_a_correct_end_state():
    local = _local()
    ids = [f"id-{n}" for n in range(len(local))]
    assert _violations({"chapters": [_server_chapter(c, i) for c, i in zip(local, ids, strict=True)]},
                       _status(local, ids)) == []


def test_the_checks_catch_a_sandbox_warning_and_a_sandbox_bug():
    local = _local()
    ids = [f"id-{n}" for n in range(len(local))]
    chapters = [_server_chapter(c, i) for c, i in zip(local, ids, strict=True)]
    warning = {"request": "POST /upload/x", "part": "file1 ('1')", "leniency": "the file name has no extension",
               "stricter": "refuse it"}
    for extra in ({"warnings": [warning]}, {"internalErrors": [{"request": "GET /upload", "error": "KeyError"}]}):
        [violation] = _violations({"chapters": chapters, **extra}, _status(local, ids))
        assert "made the sandbox warn" in violation


def test_the_checks_catch_a_chapter_published_twice_pages_out_of_order_and_an_open_session():
    local = _local()
    ids = [f"id-{n}" for n in range(len(local))]
    chapters = [_server_chapter(c, i) for c, i in zip(local, ids, strict=True)]
    chapters.append(_server_chapter(local[1], "id-again"))
    shuffled = (local[2].pages[1], local[2].pages[0], *local[2].pages[2:])
    chapters[2] = _server_chapter(local[2], ids[2], shuffled)
    violations = _violations({"chapters": chapters, "sessions": [{"id": "s", "files": []}]}, _status(local, ids),
                             stored_twice=[("s", "3.png")])
    text = "\n".join(violations)
    assert "chapter 2 exists 2 times" in text
    assert "chapter 2.5 has pages ['2.png', '1.png'" in text
    assert "sessions left open" in text
    assert "pages stored twice in one session: [('s', '3.png')]" in text


def test_the_checks_catch_a_ledger_that_disagrees_with_the_server():
    local = _local()
    ids = [f"id-{n}" for n in range(len(local))]
    chapters = [_server_chapter(c, i) for c, i in zip(local, ids, strict=True)]
    violations = _violations({"chapters": chapters}, _status(local, ["id-0", "id-other", "id-2"]))
    assert any("the ledger says chapter 2 is committed as id-other" in v for v in violations), violations
