"""The real command line in a subprocess against the sandbox: what a scanlator and a CI job see."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import requests
from PIL import Image

from mdupload.ledger import Ledger
from mdupload.mangadex.auth import Credentials
from mdupload.mangadex.client import MangaDexClient
from mdupload.batches import BatchQueue, LinkEstimate
from mdupload.upload import ChapterPlan, ChapterUpload, PlannedPage, UploadOptions
from mdupload.vocabulary import ChapterKey
from tests.e2e import chapter_pages, cli_env, copy_example, run_cli

pytestmark = pytest.mark.e2e

MANGA = "f9c33607-9180-4ba6-b85c-e4b5faee7192"
GROUP = "145f9110-0a6c-4b71-8737-6acb1a3c5da4"
CORPUS = Path(__file__).parent / "corpus" / "images"
C001 = [f"{n}.png" for n in range(1, 11)]


@pytest.fixture
def series(tmp_path) -> Path:
    return copy_example(tmp_path / "series")


@pytest.fixture
def env(sandbox, tmp_path):
    return cli_env(sandbox, tmp_path / "ledger.sqlite")


def _token(sandbox) -> str:
    answer = requests.post(sandbox.auth_url, data={
        "grant_type": "password", "username": "demo", "password": "demo",
        "client_id": "mdupload-demo", "client_secret": "demo-secret"}, timeout=10)
    return answer.json()["access_token"]


def _open_a_session_elsewhere(sandbox) -> str:
    """What the website leaves behind: a session of the same account with a page in it."""
    headers = {"Authorization": f"Bearer {_token(sandbox)}"}
    session = requests.post(f"{sandbox.api_url}/upload/begin", json={"manga": MANGA, "groups": []},
                            headers=headers, timeout=10).json()["data"]["id"]
    page = (Path(__file__).parent.parent / "manifests" / "chapters" / "c001" / "1.png").read_bytes()
    requests.post(f"{sandbox.api_url}/upload/{session}", files={"file1": ("website.png", page, "image/png")},
                  headers=headers, timeout=10)
    return session


def test_the_example_is_published_whole_and_in_order(sandbox, series, env):
    run = run_cli(["upload", str(series), "--accept-terms", "--json"], env)
    assert run.code == 0, run.stderr
    document = run.json
    assert document["version"] == 1 and document["ok"] is True
    assert [(c["chapter"], c["status"], c["pages"]) for c in document["chapters"]] == [
        ("1", "uploaded", 10), ("2", "uploaded", 6), ("2.5", "uploaded", 4)]
    state = sandbox.state()
    assert chapter_pages(state, "1") == [C001]
    assert chapter_pages(state, "2") == [[f"p{n}.jpg" for n in range(1, 7)]]
    assert state["sessions"] == []
    # people's output is on stderr, and says where each chapter went
    assert "uploaded as chapter" in run.stderr and run.stdout.strip().startswith("{")


def test_json_and_verbose_say_where_the_time_went_phase_by_phase_and_batch_by_batch(sandbox, series, env):
    run = run_cli(["-v", "upload", str(series), "--accept-terms", "--json"], env)
    assert run.code == 0, run.stderr
    document = run.json
    assert {"checks_s", "sign_in_and_lookups_s", "chapters_s", "listing_wait_s"} <= set(document["timings"])
    first = document["chapters"][0]["timings"]
    assert {"duplicate_check", "begin", "upload", "reconcile", "commit"} <= set(first["phases"])
    # nothing of an earlier run to look for, every batch answered: no session lookup, before or after the batches
    assert "session_lookup" not in first["phases"]
    assert not [r for r in sandbox.state()["requests"] if r["method"] == "GET" and r["path"] == "/upload"]
    assert sum(batch["pages"] for batch in first["batches"]) == 10 and all(b["bytes"] > 0 for b in first["batches"])
    assert first["last_answers_s"] >= 0
    assert "chapter 1 (en): where the time went: duplicate_check" in run.stderr and "the run's time: checks_s" in run.stderr


def test_a_second_run_skips_what_is_published_even_without_the_ledger(sandbox, series, env, tmp_path):
    assert run_cli(["upload", str(series), "--accept-terms"], env).code == 0
    lost_ledger = cli_env(sandbox, tmp_path / "new-ledger.sqlite")
    run = run_cli(["upload", str(series), "--accept-terms", "--json"], lost_ledger)
    assert run.code == 0, run.stderr
    assert {c["status"] for c in run.json["chapters"]} == {"skipped"}
    assert all(len(chapter_pages(sandbox.state(), n)) == 1 for n in ("1", "2", "2.5"))


def test_a_stale_session_is_abandoned_and_said_so(sandbox, series, env):
    stale = _open_a_session_elsewhere(sandbox)
    # --stale-after 0: any session untouched for any time at all counts as stale
    run = run_cli(["upload", str(series), "--chapter", "2", "--accept-terms", "--stale-after", "0"], env)
    assert run.code == 0, run.stderr
    assert f"abandoning a stale upload session {stale}" in run.stderr
    assert chapter_pages(sandbox.state(), "2") == [[f"p{n}.jpg" for n in range(1, 7)]]
    assert sandbox.state()["sessions"] == []


def test_a_fresh_foreign_session_stops_the_upload_until_the_user_consents(sandbox, series, env):
    fresh = _open_a_session_elsewhere(sandbox)
    run = run_cli(["upload", str(series), "--chapter", "1", "--accept-terms", "--json"], env)
    assert run.code == 1
    assert fresh in run.stderr and "--abandon-open" in run.stderr
    assert run.json["chapters"][0]["status"] == "failed"
    assert [s["id"] for s in sandbox.state()["sessions"]] == [fresh]  # left alone
    run = run_cli(["upload", str(series), "--chapter", "1", "--accept-terms", "--abandon-open"], env)
    assert run.code == 0, run.stderr
    assert chapter_pages(sandbox.state(), "1") == [C001]


def test_a_page_the_server_refuses_is_retried_then_named_and_a_rerun_sends_only_it(sandbox, tmp_path):
    """The checks are skipped on purpose here (they would catch the page first): this is the path of a page
    that changed after it was checked, through the real client and the sandbox's own decoder."""
    ledger = Ledger(tmp_path / "ledger.sqlite")
    client = MangaDexClient(api_url=sandbox.api_url, auth_url=sandbox.auth_url, rate_limiter=None,
                            credentials=Credentials.from_env(sandbox.env))
    folder = tmp_path / "c1"
    folder.mkdir()
    for n in range(1, 12):
        Image.new("RGB", (800, 1200), (n * 20, 0, 0)).save(folder / f"{n}.png")
    shutil.copy(CORPUS / "broken_data_stream.png", folder / "7.png")

    def plan() -> ChapterPlan:
        pages = tuple(PlannedPage(f"c1/{n}.png", folder / f"{n}.png", f"{n}.png", "image/png",
                                  (folder / f"{n}.png").stat().st_size,
                                  hashlib.sha256((folder / f"{n}.png").read_bytes()).hexdigest()) for n in range(1, 12))
        draft = {"volume": None, "chapter": "9", "title": None, "translatedLanguage": "en"}
        return ChapterPlan(ChapterKey(MANGA, "en", (), None, "9", None, sandbox.api_url), "chapter 9 (en)", MANGA, (), "en", draft, pages)

    options = UploadOptions(retry_backoff_s=0)
    result = ChapterUpload(client, ledger, plan(), options).run()
    assert result.status == "failed"
    assert list(result.failed_pages) == ["c1/7.png"] and "corrupt" in result.failed_pages["c1/7.png"]
    assert "c1/7.png" in result.error and chapter_pages(sandbox.state(), "9") == []
    sent = [r for r in sandbox.state()["requests"] if r["method"] == "POST" and r["path"].startswith("/upload/")
            and r["path"].count("/") == 2 and not r["path"].endswith(("begin", "commit", "approval-required"))]
    first_round = len(list(iter(BatchQueue(plan().pages, LinkEstimate()).take, [])))  # nothing measured yet
    assert len(sent) == first_round + options.retry_rounds  # the batches, then the one page alone each round
    Image.new("RGB", (800, 1200), "white").save(folder / "7.png")  # re-exported
    result = ChapterUpload(client, ledger, plan(), options).run()
    assert result.status == "uploaded", result.error
    assert chapter_pages(sandbox.state(), "9") == [[f"{n}.png" for n in range(1, 12)]]
    resent = [r for r in sandbox.state()["requests"] if r["method"] == "POST" and r["path"].startswith("/upload/")
              and r["path"].count("/") == 2
              and not r["path"].endswith(("begin", "commit", "approval-required"))][len(sent):]
    assert len(resent) == 1 and resent[0]["bytes"] < (folder / "7.png").stat().st_size + 2_000
    assert sandbox.state()["sessions"] == []


def test_upload_refuses_without_the_terms_before_any_network_call(sandbox, series, env):
    before = len(sandbox.state()["requests"])
    run = run_cli(["upload", str(series), "--json"], env)
    assert run.code == 2
    assert "--accept-terms" in run.stderr and "MDUPLOAD_ACCEPT_TERMS=1" in run.stderr
    assert run.json == {"version": 1, "ok": False, "error": run.json["error"], "chapters": []}
    assert len(sandbox.state()["requests"]) == before  # not one request


def test_the_terms_can_be_accepted_by_environment(sandbox, series, env):
    run = run_cli(["upload", str(series), "--chapter", "2"], {**env, "MDUPLOAD_ACCEPT_TERMS": "1"})
    assert run.code == 0, run.stderr


def test_wrong_credentials_exit_3_without_showing_the_password(sandbox, series, env):
    run = run_cli(["upload", str(series), "--accept-terms"], {**env, "MDUPLOAD_PASSWORD": "hunter2-wrong"})
    assert run.code == 3
    assert "hunter2-wrong" not in run.stderr + run.stdout
    assert "error:" in run.stderr and "Traceback" not in run.stderr


def test_a_bad_manifest_exits_2_naming_the_line(series, env):
    series.write_text(series.read_text().replace('chapter: "2"\n', 'chapter: "02"\n'))
    run = run_cli(["validate", str(series)], env)
    assert run.code == 2
    line = next(n for n, text in enumerate(series.read_text().splitlines(), 1) if '"02"' in text)
    assert f"{series}:{line}" in run.stderr and "Traceback" not in run.stderr


def test_dry_run_shows_what_would_be_sent_and_sends_nothing(sandbox, series, env):
    run = run_cli(["upload", str(series), "--dry-run", "--json"], env)
    assert run.code == 0, run.stderr
    chapters = run.json["chapters"]
    assert [p["name"] for p in chapters[0]["pages"]] == C001
    assert chapters[0]["chapter_draft"] == {"volume": "1", "chapter": "1", "title": "The Beginning",
                                            "translatedLanguage": "en"}
    assert sandbox.state()["chapters"] == [] and "would upload" in run.stderr


def test_validate_reports_every_corpus_verdict(tmp_path, env):
    labels = [line.split("\t") for line in (CORPUS / "LABELS.tsv").read_text().splitlines()[1:] if line.strip()]
    labels = [(name, verdict) for name, _format, verdict, *_ in labels]
    for name, verdict in labels:
        folder = tmp_path / verdict / name.replace(".", "_")
        folder.mkdir(parents=True)
        shutil.copy(CORPUS / name, folder / name)
    chapters = "".join(f'  - chapter: "{n}"\n    pages: {folder.relative_to(tmp_path)}\n'
                       for n, folder in enumerate(sorted(p for p in tmp_path.glob("*/*") if p.is_dir()), 1))
    manifest = tmp_path / "corpus.yaml"
    manifest.write_text(f"manga: {MANGA}\ngroups: []\nlanguage: en\nchapters:\n{chapters}")
    run = run_cli(["validate", str(manifest), "--deep", "--json"], env)
    assert run.code == 1
    by_folder = {c["source"].split("/")[-2]: c for c in run.json["chapters"]}
    for name, verdict in labels:
        chapter = next(c for c in run.json["chapters"] if c["source"].endswith(name.replace(".", "_")))
        severities = {p["severity"] for p in chapter["problems"]}
        if verdict == "accept":
            assert chapter["ok"], (name, chapter["problems"])
        elif verdict == "fixable":
            assert "fixable" in severities and "error" not in severities, (name, chapter["problems"])
        else:
            assert "error" in severities, (name, chapter["problems"])
    assert by_folder


def test_fix_repairs_a_long_strip_and_a_webp_then_uploads_them_in_place(sandbox, tmp_path, env):
    pages = tmp_path / "strip"
    pages.mkdir()
    Image.new("RGB", (800, 1200), "white").save(pages / "01.png")
    strip = Image.new("RGB", (800, 25_000), "white")
    for top in range(0, 25_000, 1_500):  # panels with white gutters between them
        strip.paste((30, 30, 30), (50, top + 100, 750, top + 1_300))
    strip.save(pages / "02.png")
    shutil.copy(CORPUS / "hopper.webp", pages / "03.webp")
    manifest = tmp_path / "strip.yaml"
    manifest.write_text(f'manga: {MANGA}\ngroups: []\nlanguage: en\nchapters:\n  - chapter: "7"\n    pages: strip\n')
    run = run_cli(["validate", str(manifest)], env)
    assert run.code == 1 and "fixable" in run.stderr
    run = run_cli(["upload", str(manifest), "--accept-terms", "--fix", "--json"], env)
    assert run.code == 0, run.stderr
    names = chapter_pages(sandbox.state(), "7")[0]
    assert names[0] == "01.png" and names[-1] == "03.jpg"
    assert names[1:-1] == [f"02-{n}.png" for n in range(1, len(names) - 1)] and len(names) >= 5
    assert "fixed" in run.stderr and (pages / "02.png").stat().st_size > 0  # the original stays


# --- GitHub Actions -----------------------------------------------------------------------------

def test_in_github_actions_problems_are_annotations_and_the_summary_is_a_table(sandbox, series, env, tmp_path):
    summary = tmp_path / "summary.md"
    gha = {**env, "GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary), "CI": "true"}
    (series.parent / "chapters" / "c001" / "5.png").write_bytes(b"not an image at all")
    run = run_cli(["validate", str(series)], gha, cwd=series.parent)
    assert run.code == 1
    assert "::error file=chapters/c001/5.png,title=mdupload%3A vol 1 chapter 1 (en)::" in run.stderr
    assert "| vol 1 chapter 1 (en) | cannot be uploaded as it is | 10 |" in summary.read_text()
    (series.parent / "chapters" / "c001" / "5.png").unlink()
    run = run_cli(["upload", str(series), "--accept-terms"], gha, cwd=series.parent)
    assert run.code == 0, run.stderr
    table = summary.read_text()
    chapter_id = next(c["id"] for c in sandbox.state()["chapters"] if c["chapter"] == "2")
    assert f"| vol 1 chapter 2 (en) | uploaded | 6 | [{chapter_id}]({sandbox.api_url}/chapter/{chapter_id}) |" in table
    run = run_cli(["upload", str(series)], {**gha, "MDUPLOAD_ACCEPT_TERMS": ""}, cwd=series.parent)
    assert run.code == 2 and "::error title=mdupload::" in run.stderr


def test_a_manifest_error_is_annotated_on_its_line(series, env):
    series.write_text(series.read_text().replace("title: Intermission", "tittle: Intermission"))
    run = run_cli(["validate", "example.yaml"], {**env, "GITHUB_ACTIONS": "true"}, cwd=series.parent)
    assert run.code == 2
    line = next(n for n, text in enumerate(series.read_text().splitlines(), 1) if "tittle" in text)
    assert f"::error file=example.yaml,line={line},title=mdupload%3A manifest::" in run.stderr


def test_outside_github_actions_there_are_no_workflow_commands(series, env):
    (series.parent / "chapters" / "c001" / "5.png").write_bytes(b"not an image at all")
    run = run_cli(["validate", str(series)], {**env, "CI": "true"})
    assert run.code == 1 and "::error" not in run.stderr and "5.png" in run.stderr


# --- the watched folder ----------------------------------------------------------------------------

def test_watch_once_publishes_dropped_chapters_and_files_the_failures(sandbox, tmp_path, env):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    series_file = tmp_path / "demo.yaml"
    series_file.write_text(f"manga: {MANGA}\ngroups: [{GROUP}]\nlanguage: en\nmatch: Demo Series\n"
                           "terms_accepted: true\n")
    good = inbox / "Demo Series - c012.5 (v03) (The Title) [Demo Scans]"
    shutil.copytree(Path(__file__).parent.parent / "manifests" / "chapters" / "c001", good)
    bad = inbox / "Demo Series [es-la] - c013 [Demo Scans]"
    bad.mkdir()
    (bad / "1.png").write_bytes(b"half a page")
    other = inbox / "Another Series - c001"
    other.mkdir()
    args = ["watch", str(inbox), "--series", str(series_file), "--settle", "0", "--once"]
    run = run_cli(args, env)
    assert run.code == 1, run.stderr  # one item failed
    state = sandbox.state()
    published = [c for c in state["chapters"] if c["chapter"] == "12.5"]
    assert len(published) == 1 and published[0]["volume"] == "3" and published[0]["title"] == "The Title"
    assert [p["originalFileName"] for p in published[0]["pages"]] == C001
    receipt = json.loads((inbox / "done" / f"{good.name}.json").read_text())
    assert receipt["chapter_id"] == published[0]["id"] and receipt["pages"] == 10
    reason = (inbox / "failed" / f"{bad.name}.error.txt").read_text()
    assert "1.png" in reason and "What to do" in reason
    assert other.exists()  # matches no series: left where it is
    # fixed and moved back, it goes through; the published item is never sent again
    shutil.move(inbox / "failed" / bad.name, inbox / bad.name)
    Image.new("RGB", (800, 1200), "white").save(inbox / bad.name / "1.png")
    run = run_cli(args, env)
    assert run.code == 0, run.stderr
    chapters = sandbox.state()["chapters"]
    assert [c["translatedLanguage"] for c in chapters if c["chapter"] == "13"] == ["es-la"]
    assert len([c for c in chapters if c["chapter"] == "12.5"]) == 1


def test_watch_stops_with_exit_3_when_it_cannot_sign_in(sandbox, tmp_path, env):
    inbox = tmp_path / "inbox"
    (inbox / "Demo Series - c001").mkdir(parents=True)
    Image.new("RGB", (800, 1200), "white").save(inbox / "Demo Series - c001" / "1.png")
    series_file = tmp_path / "demo.yaml"
    series_file.write_text(f"manga: {MANGA}\ngroups: []\nlanguage: en\nmatch: Demo Series\nterms_accepted: true\n")
    run = run_cli(["watch", str(inbox), "--series", str(series_file), "--settle", "0", "--once"],
                  {**env, "MDUPLOAD_PASSWORD": "wrong"})
    assert run.code == 3, run.stderr
    assert (inbox / "Demo Series - c001").exists()  # not filed as failed: nothing is wrong with the item


class _Killed(BaseException):
    """What SIGKILL would do to the process at this point: nothing after it runs."""


def test_a_rerun_finishes_the_interrupted_chapter_first_so_no_other_finds_its_session_in_the_way(sandbox, series,
                                                                                               tmp_path):
    from mdupload.manifest import load_manifest
    from mdupload.output import Reporter
    from mdupload.publish import build_plan, check_all, upload_manifest

    manifest = load_manifest(series)
    ledger = Ledger(tmp_path / "ledger.sqlite")
    client = MangaDexClient(api_url=sandbox.api_url, auth_url=sandbox.auth_url, rate_limiter=None,
                            credentials=Credentials.from_env(sandbox.env))
    chapter_2 = next(spec for spec in manifest.chapters if spec.chapter == "2")
    plan = build_plan(manifest, check_all([chapter_2], tmp_path / "work")[0], sandbox.api_url)

    def killed_while_sending(*_args, **_kwargs):
        raise _Killed

    client_upload, client.upload_files = client.upload_files, killed_while_sending
    with pytest.raises(_Killed):
        ChapterUpload(client, ledger, plan).run()
    client.upload_files = client_upload
    [left_open] = sandbox.state()["sessions"]  # chapter 2's, fresh: any other chapter would have to stop

    outcome = upload_manifest(manifest, list(manifest.chapters), tmp_path / "rerun", connect=lambda: client,
                              ledger=ledger, reporter=Reporter(quiet=True), options=UploadOptions(),
                              api_url=sandbox.api_url, accept_terms=True)
    assert [(r.plan.draft["chapter"], r.status) for r in outcome.results] == [
        ("1", "uploaded"), ("2", "uploaded"), ("2.5", "uploaded")]  # reported in manifest order
    assert any("resuming session" in notice for notice in outcome.results[1].notices)
    chapters = sandbox.state()["chapters"]
    assert [c["chapter"] for c in chapters] == ["2", "1", "2.5"]  # published interrupted-first
    assert left_open["id"] and sandbox.state()["sessions"] == []


def test_a_watcher_killed_mid_upload_and_restarted_finishes_without_a_duplicate(tmp_path):
    import signal
    import subprocess
    import sys
    import time

    from mdupload.sandbox import SandboxConfig, start_sandbox

    slow = start_sandbox(SandboxConfig(rate_limits=False, processing_delay=0, latency=0.3))
    try:
        env = cli_env(slow, tmp_path / "ledger.sqlite")
        inbox = tmp_path / "inbox"
        item = inbox / "Demo Series - c004 [Demo Scans]"
        item.mkdir(parents=True)
        for n in range(1, 26):
            Image.new("RGB", (600, 900), (n * 9, 40, 40)).save(item / f"{n}.png")
        series_file = tmp_path / "demo.yaml"
        series_file.write_text(f"manga: {MANGA}\ngroups: []\nlanguage: en\nmatch: Demo Series\nterms_accepted: true\n")
        args = [sys.executable, "-m", "mdupload", "watch", str(inbox), "--series", str(series_file), "--settle", "0"]
        watcher = subprocess.Popen(args, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while not any(r["method"] == "POST" and r["path"].count("/") == 2 and r["status"] == 200
                          and not r["path"].endswith(("begin", "commit", "approval-required"))
                          for r in slow.state()["requests"]):
                assert time.monotonic() < deadline and watcher.poll() is None, "the watcher never sent a batch"
                time.sleep(0.05)
            watcher.send_signal(signal.SIGKILL)  # the first batch is in, the others are not
        finally:
            watcher.wait(timeout=10)
        assert slow.state()["chapters"] == [] and len(slow.state()["sessions"]) == 1
        run = run_cli(args[3:] + ["--once"], env)
        assert run.code == 0, run.stderr
        assert "resuming session" in run.stderr
        [chapter] = slow.state()["chapters"]
        assert [p["originalFileName"] for p in chapter["pages"]] == [f"{n}.png" for n in range(1, 26)]
        assert slow.state()["sessions"] == [] and (inbox / "done" / f"{item.name}.json").exists()
        assert run_cli(args[3:] + ["--once"], env).code == 0 and len(slow.state()["chapters"]) == 1
    finally:
        slow.stop()


def test_a_sign_in_refused_mid_run_keeps_what_was_published_and_stops_the_rest(sandbox, series, tmp_path):
    from mdupload.errors import AuthError
    from mdupload.manifest import load_manifest
    from mdupload.output import Reporter, publication_json
    from mdupload.publish import publish_manifest
    from mdupload.settings import Settings

    manifest = load_manifest(series)
    client = MangaDexClient(api_url=sandbox.api_url, auth_url=sandbox.auth_url, rate_limiter=None,
                            credentials=Credentials.from_env(sandbox.env))
    sent = client.upload_files

    def refused_after_the_first_chapter(session_id, *args, **kwargs):
        if sandbox.state()["chapters"]:
            raise AuthError("MangaDex no longer accepts the stored sign-in. Run `mdupload login` again.")
        return sent(session_id, *args, **kwargs)

    client.upload_files = refused_after_the_first_chapter
    publication = publish_manifest(manifest, list(manifest.chapters), Settings.build(accept_terms=True),
                                   reporter=Reporter(quiet=True), options=UploadOptions(), connect=lambda: client,
                                   ledger=Ledger(tmp_path / "ledger.sqlite"), api_url=sandbox.api_url)
    document = publication_json(publication)
    assert document["ok"] is False and document["signed_out"] is True and "mdupload login" in document["error"]
    statuses = [(c["chapter"], c["status"]) for c in document["chapters"]]
    assert statuses == [("1", "uploaded"), ("2", "failed"), ("2.5", "failed")]
    assert document["chapters"][0]["chapter_id"] == sandbox.state()["chapters"][0]["id"]
    assert "signing in failed" in document["chapters"][2]["error"]


def test_a_wrong_password_with_json_is_the_failed_command_document_and_one_error(sandbox, series, tmp_path):
    env = cli_env(sandbox, tmp_path / "ledger.sqlite", MDUPLOAD_PASSWORD="not-the-password")
    run = run_cli(["upload", str(series), "--accept-terms", "--json"], env)
    assert run.code == 3, run.stderr
    assert run.json == {"version": 1, "ok": False, "error": run.json["error"], "chapters": []}
    assert "refused to sign in" in run.json["error"]
    errors = [line for line in run.stderr.splitlines() if "refused to sign in" in line]
    assert len(errors) == 1 and errors[0].startswith("error: "), run.stderr
    assert sandbox.state()["chapters"] == []


def test_an_unexpected_error_is_one_redacted_line_not_a_traceback(monkeypatch, series):
    from click.testing import CliRunner

    import mdupload.cli as cli
    from mdupload.commands import validate
    from mdupload.redact import register_secret

    register_secret("s3cr3t-token-value")

    def broken(_path, _environ=None):
        raise RuntimeError("the token s3cr3t-token-value went somewhere odd")

    monkeypatch.setattr(validate, "load_manifest", broken)
    result = CliRunner().invoke(cli.main, ["validate", str(series), "--json"])
    assert result.exit_code == 1
    assert "Traceback" not in result.output and "s3cr3t-token-value" not in result.output
    assert "unexpected error (RuntimeError: the token [REDACTED] went somewhere odd)" in result.output
    assert '"ok": false' in result.output
