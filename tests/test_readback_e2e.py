"""`mdupload verify`, `pull` and `archive` as a scanlator and a CI job run them: the real command line in a
subprocess, against the sandbox MangaDex and the sandbox LANraragi."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from mdupload.sandbox import SandboxConfig, start_sandbox
from tests.e2e import LANRARAGI_KEY as KEY
from tests.e2e import ROOT, cli_env, copy_example, run_cli

pytestmark = pytest.mark.e2e

C001 = [f"{n}.png" for n in range(1, 11)]


@pytest.fixture
def series(tmp_path) -> Path:
    return copy_example(tmp_path / "series")


@pytest.fixture
def env(sandbox, tmp_path):
    return cli_env(sandbox, tmp_path / "ledger.sqlite", MDUPLOAD_CACHE_DIR=str(tmp_path / "cache"),
                   MDUPLOAD_LANRARAGI_KEY=KEY)


def with_library(series: Path, url: str, category: str) -> Path:
    text = series.read_text()
    series.write_text(text.replace("chapters:\n", f"lanraragi:\n  url: {url}\n  category: {category}\n"
                                                  "  tags: [scanlator:Sandbox Scans]\nchapters:\n", 1))
    return series


def image_requests(sandbox) -> list[dict]:
    return [r for r in sandbox.state()["requests"] if "/data/" in r["path"] or "/data-saver/" in r["path"]]


def uploads(lrr) -> list[int]:
    return [r["status"] for r in lrr.requests() if r["path"] == "/api/archives/upload"]


def chapter_id(sandbox, number: str) -> str:
    [found] = [c["id"] for c in sandbox.state()["chapters"] if c["chapter"] == number]
    return found


def test_upload_verify_pull_twice_and_archive_twice(sandbox, lrr, series, env, tmp_path):
    category = lrr.state()["categories"][0]["id"]
    with_library(series, lrr.url, category)
    assert run_cli(["upload", str(series), "--accept-terms"], env).code == 0

    verify = run_cli(["verify", str(series), "--download", "--json"], env)
    assert verify.code == 0, verify.stderr
    assert verify.json["version"] == 1 and verify.json["ok"] is True and verify.json["processing"] == 0
    assert [(c["chapter"], c["status"], c["checked"], c["served"]) for c in verify.json["chapters"]] == [
        ("1", "verified", "pages", 10), ("2", "verified", "pages", 6), ("2.5", "verified", "pages", 4)]
    assert "every page downloaded and matches" in verify.stderr

    dest = tmp_path / "pulled"
    first = run_cli(["pull", chapter_id(sandbox, "1"), str(dest)], env)
    assert first.code == 0, first.stderr
    assert [p.read_bytes() for p in sorted(dest.glob("*.png"))] == [
        (series.parent / "chapters" / "c001" / name).read_bytes() for name in C001]
    before = len(image_requests(sandbox))
    second = run_cli(["pull", f"https://mangadex.org/chapter/{chapter_id(sandbox, '1')}", str(dest), "--json"], env)
    assert second.code == 0 and (second.json["downloaded"], second.json["kept"]) == (0, 10)
    assert len(image_requests(sandbox)) == before
    state = sandbox.state()
    assert not any(r["authorization"] for r in image_requests(sandbox))
    assert len(state["reports"]) == before == 20 + 10  # verify's 20 pages, then pull's 10: one report each

    archived = run_cli(["archive", str(series), "--json"], env)
    assert archived.code == 0, archived.stderr
    assert [c["status"] for c in archived.json["chapters"]] == ["archived"] * 3
    assert archived.json["server"] == lrr.url
    library = {a["id"]: a for a in lrr.state()["archives"]}
    assert {c["archive_id"] for c in archived.json["chapters"]} == set(library)
    one = library[archived.json["chapters"][0]["archive_id"]]
    assert one["categories"] == [category] and "scanlator:Sandbox Scans" in one["tags"]
    assert f"source:{sandbox.api_url}/chapter/{chapter_id(sandbox, '1')}" in one["tags"]

    again = run_cli(["archive", str(series), "--json"], env)
    assert again.code == 0 and [c["status"] for c in again.json["chapters"]] == ["already-archived"] * 3
    assert uploads(lrr) == [200, 200, 200]
    status = run_cli(["status", str(series), "--json"], env)
    assert [c["archive_id"] for c in status.json["chapters"]] == [c["archive_id"] for c in archived.json["chapters"]]


def test_verify_names_a_page_that_differs_and_fails(sandbox, series, env):
    assert run_cli(["upload", str(series), "--accept-terms", "--chapter", "1"], env).code == 0
    page = series.parent / "chapters" / "c001" / "7.png"
    with Image.open(page) as image:
        width, height = image.size
    Image.new("RGB", (width, height + 5), (9, 9, 9)).save(page)
    run = run_cli(["verify", str(series), "--chapter", "1", "--download", "--json"], env)
    assert run.code == 1
    [chapter] = run.json["chapters"]
    assert chapter["status"] == "differs" and run.json["ok"] is False
    assert [(d["position"], d["problem"]) for d in chapter["differences"]] == [
        (7, f"served {width}x{height} px, the local page is {width}x{height + 5} px")]
    assert "page 7" in run.stderr and "c001/7.png" in run.stderr


def test_a_chapter_still_processing_after_the_wait_is_reported_and_is_not_an_error(tmp_path, series):
    with start_sandbox(SandboxConfig(rate_limits=False, processing_delay=3600)) as sandbox:
        env = cli_env(sandbox, tmp_path / "ledger.sqlite")
        assert run_cli(["upload", str(series), "--accept-terms", "--chapter", "2"], env).code == 0
        early = run_cli(["verify", str(series), "--chapter", "2", "--wait", "0", "--json"], env)
        waited = run_cli(["verify", str(series), "--chapter", "2", "--wait", "0.02", "--json"], env)
    assert early.code == 0 and early.json["ok"] is True and early.json["processing"] == 1
    assert early.json["chapters"][0]["status"] == "processing" and "still processing" in early.stderr
    assert "--wait MINUTES" in early.stderr
    assert waited.code == 0 and waited.json["chapters"][0]["status"] == "processing"
    assert "waiting for MangaDex to process 1 chapter(s)" in waited.stderr and "--wait MINUTES" not in waited.stderr


def test_pull_replaces_a_failing_node_and_reports_it(tmp_path, series):
    with start_sandbox(SandboxConfig(rate_limits=False, processing_delay=0, athome_fail_rate=0.3, seed=11)) as sandbox:
        env = cli_env(sandbox, tmp_path / "ledger.sqlite")
        assert run_cli(["upload", str(series), "--accept-terms", "--chapter", "1"], env).code == 0
        run = run_cli(["pull", chapter_id(sandbox, "1"), str(tmp_path / "pulled"), "--json"], env)
        state = sandbox.state()
    assert run.code == 0, run.stderr
    assert run.json["downloaded"] == 10 and run.json["new_base_urls"] >= 1
    assert [p.read_bytes() for p in sorted((tmp_path / "pulled").glob("*.png"))] == [
        (series.parent / "chapters" / "c001" / name).read_bytes() for name in C001]
    failed = [r for r in state["reports"] if not r["success"]]
    assert failed and len(state["reports"]) == len([r for r in state["requests"] if "/data/" in r["path"]])


def test_archive_retries_a_damaged_transfer_and_refuses_a_different_file_under_the_same_name(sandbox, lrr, series,
                                                                                          env, tmp_path):
    assert run_cli(["upload", str(series), "--accept-terms", "--chapter", "1"], env).code == 0
    other = tmp_path / "other.sqlite"  # a second ledger that knows the upload but not the archive
    with sqlite3.connect(env["MDUPLOAD_LEDGER"]) as source, sqlite3.connect(other) as target:
        source.backup(target)
    lrr.faults.corrupt_uploads = 1
    first = run_cli(["archive", str(series), "--chapter", "1", "--to", lrr.url, "--json"], env)
    assert first.code == 0, first.stderr
    assert uploads(lrr) == [417, 200]

    page = series.parent / "chapters" / "c001" / "2.png"
    with Image.open(page) as image:
        Image.new("RGB", image.size, (200, 0, 0)).save(page)
    clash = run_cli(["archive", str(series), "--chapter", "1", "--to", lrr.url, "--ledger", str(other), "--json"], env)
    assert clash.code == 1
    [chapter] = clash.json["chapters"]
    assert chapter["status"] == "failed" and "already holds a different file under this name" in chapter["error"]
    assert first.json["chapters"][0]["archive_id"] in chapter["error"]
    assert "already holds a different file" in clash.stderr
    assert len(lrr.state()["archives"]) == 1


def test_mistakes_get_one_clear_line_and_their_exit_code(sandbox, series, env, tmp_path):
    bad_id = run_cli(["pull", "chapter-12", str(tmp_path / "x")], env)
    assert bad_id.code == 2 and "is not a MangaDex chapter id" in bad_id.stderr and "Traceback" not in bad_id.stderr
    no_server = run_cli(["archive", str(series), "--json"], {**env, "MDUPLOAD_LANRARAGI_URL": ""})
    assert no_server.code == 2 and no_server.json["ok"] is False and "no LANraragi server" in no_server.json["error"]
    never = run_cli(["verify", str(series), "--chapter", "2.5"], env)
    assert never.code == 1 and "upload it first" in never.stderr
    missing = run_cli(["pull", "0b9e5e3c-5d07-4d5f-a1c6-1b1e5d2c7a10", str(tmp_path / "y")], env)
    assert missing.code == 1 and "MangaDex has no chapter 0b9e5e3c" in missing.stderr


def test_sandbox_lanraragi_prints_what_points_archive_at_it(tmp_path, series):
    command = [sys.executable, "-m", "mdupload", "sandbox", "--lanraragi", "--no-rate-limits", "--quiet"]
    base = {k: v for k, v in os.environ.items() if not k.startswith("MDUPLOAD_")}
    server = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=base,
                              cwd=ROOT)
    try:
        lines = []
        for line in server.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("Serving until Ctrl-C."):
                break
        exports = dict(line[len("export "):].split("=", 1) for line in lines if line.startswith("export "))
        assert exports["MDUPLOAD_LANRARAGI_URL"].startswith("http://127.0.0.1:") and exports["MDUPLOAD_LANRARAGI_KEY"]
        category = next(line.split()[1] for line in lines if line.strip().startswith("category SET_"))
        env = {**base, **exports, "MDUPLOAD_LEDGER": str(tmp_path / "ledger.sqlite"),
               "MDUPLOAD_CACHE_DIR": str(tmp_path / "cache")}
        with_library(series, "http://unused.invalid:1", category)  # the environment's URL comes first
        assert run_cli(["upload", str(series), "--accept-terms", "--chapter", "1"], env).code == 0
        run = run_cli(["archive", str(series), "--chapter", "1", "--json"], env)
        assert run.code == 0, run.stderr
        assert run.json["server"] == exports["MDUPLOAD_LANRARAGI_URL"] and run.json["chapters"][0]["status"] == "archived"
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


def test_upload_archive_publishes_then_archives_in_one_run_and_a_rerun_does_neither_twice(sandbox, lrr, series, env):
    category = lrr.state()["categories"][0]["id"]
    with_library(series, lrr.url, category)
    run = run_cli(["upload", str(series), "--accept-terms", "--archive", "--json"], env)
    assert run.code == 0, run.stderr
    assert [c["status"] for c in run.json["chapters"]] == ["uploaded"] * 3
    assert [c["status"] for c in run.json["archive"]["chapters"]] == ["archived"] * 3
    library = lrr.state()
    assert len(library["archives"]) == 3
    assert all(category in a["categories"] for a in library["archives"])
    again = run_cli(["upload", str(series), "--accept-terms", "--archive", "--json"], env)
    assert again.code == 0, again.stderr
    assert [c["status"] for c in again.json["chapters"]] == ["skipped"] * 3
    assert [c["status"] for c in again.json["archive"]["chapters"]] == ["already-archived"] * 3
    assert len(lrr.state()["archives"]) == 3 and len(sandbox.state()["chapters"]) == 3


def test_upload_archive_without_a_server_stops_before_uploading(sandbox, series, env):
    run = run_cli(["upload", str(series), "--accept-terms", "--archive"], {**env, "MDUPLOAD_LANRARAGI_URL": ""})
    assert run.code == 2 and "LANraragi" in run.stderr
    assert sandbox.state()["chapters"] == [] and sandbox.state()["requests"] == []
