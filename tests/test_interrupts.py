"""Ctrl-C is prompt (issue 16, point 4; docs/resilience.md): the CLI in a subprocess, a slow link to the sandbox."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from mdupload.sandbox import SandboxConfig, start_sandbox
from tests.e2e import cli_env, run_cli

pytestmark = pytest.mark.e2e

MANGA = "f9c33607-9180-4ba6-b85c-e4b5faee7192"
PAGES = 40  # four batches of 10
BANDWIDTH = 200_000  # bytes a second: each batch takes seconds to send
PROMPT_S = 5.0


def noisy_pages(folder: Path) -> None:
    """Pages that compress badly (~90 KB each), so that sending them takes time on the slow link."""
    folder.mkdir(parents=True)
    for n in range(1, PAGES + 1):
        Image.frombytes("RGB", (200, 150), os.urandom(200 * 150 * 3)).save(folder / f"{n}.png")


@pytest.fixture
def slow_link(tmp_path):
    sandbox = start_sandbox(SandboxConfig(rate_limits=False, processing_delay=0, bandwidth=BANDWIDTH))
    try:
        yield sandbox
    finally:
        state = sandbox.state()
        sandbox.stop()
        assert state["internalErrors"] == [] and state["warnings"] == []


def first_batch_answered(sandbox) -> bool:
    return any(r["method"] == "POST" and r["path"].count("/") == 2 and r["status"] == 200
               and not r["path"].endswith(("begin", "commit", "approval-required"))
               for r in sandbox.state()["requests"])


def signalled_after_the_first_batch(sandbox, args: list[str], env: dict, *signals: int) -> tuple[int, str, float]:
    """Run mdupload, send `signals` once its first batch is answered: its exit code, stderr, and the seconds
    from the first signal to its exit."""
    process = subprocess.Popen([sys.executable, "-m", "mdupload", *args], env=env, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while not first_batch_answered(sandbox):
            assert time.monotonic() < deadline and process.poll() is None, "no batch was ever answered"
            time.sleep(0.05)
        for signum in signals:
            process.send_signal(signum)
        signalled = time.monotonic()
        _, stderr = process.communicate(timeout=30)
        return process.returncode, stderr, time.monotonic() - signalled
    finally:
        if process.poll() is None:
            process.kill()


def one_chapter_manifest(tmp_path: Path) -> Path:
    noisy_pages(tmp_path / "c1")
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text(f"manga: {MANGA}\ngroups: []\nlanguage: en\nchapters:\n  - chapter: '1'\n    pages: c1\n")
    return manifest


def test_ctrl_c_during_a_four_batch_upload_ends_within_5_s_and_the_rerun_publishes_once(slow_link, tmp_path):
    env = cli_env(slow_link, tmp_path / "ledger.sqlite")
    args = ["upload", str(one_chapter_manifest(tmp_path)), "--accept-terms", "--concurrency", "2"]
    code, stderr, took = signalled_after_the_first_batch(slow_link, args, env, signal.SIGINT)
    assert code == 130, stderr
    assert took < PROMPT_S, (took, stderr)
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert slow_link.state()["chapters"] == []  # cut before the commit

    rerun = run_cli(args, env, timeout=180)
    assert rerun.code == 0, rerun.stderr
    [chapter] = slow_link.state()["chapters"]
    assert [p["originalFileName"] for p in chapter["pages"]] == [f"{n}.png" for n in range(1, PAGES + 1)]
    assert run_cli(args, env).code == 0 and len(slow_link.state()["chapters"]) == 1


def test_a_second_ctrl_c_exits_at_once(slow_link, tmp_path):
    env = cli_env(slow_link, tmp_path / "ledger.sqlite")
    args = ["upload", str(one_chapter_manifest(tmp_path)), "--accept-terms"]
    code, stderr, took = signalled_after_the_first_batch(slow_link, args, env, signal.SIGINT, signal.SIGINT)
    assert code == 130, stderr
    assert took < 2.0, (took, stderr)


def test_sigterm_cuts_the_chapter_a_watcher_is_publishing_and_the_next_start_resumes_it(slow_link, tmp_path):
    inbox = tmp_path / "inbox"
    item = inbox / "Demo Series - c004 [Demo Scans]"
    noisy_pages(item)
    series_file = write_series(tmp_path)
    env = cli_env(slow_link, tmp_path / "ledger.sqlite")
    args = ["watch", str(inbox), "--series", str(series_file), "--settle", "0"]
    code, stderr, took = signalled_after_the_first_batch(slow_link, args, env, signal.SIGTERM)
    assert code == 130 and took < PROMPT_S, (took, stderr)
    assert "SIGTERM: stopping now" in stderr and "Traceback" not in stderr
    assert item.is_dir() and not (inbox / "failed").exists() and slow_link.state()["chapters"] == []

    rerun = run_cli(args + ["--once"], env, timeout=180)
    assert rerun.code == 0, rerun.stderr
    [chapter] = slow_link.state()["chapters"]
    assert len(chapter["pages"]) == PAGES and (inbox / "done" / f"{item.name}.json").exists()


def write_series(tmp_path: Path) -> Path:
    series_file = tmp_path / "demo.yaml"
    series_file.write_text(f"manga: {MANGA}\ngroups: []\nlanguage: en\nmatch: Demo Series\nterms_accepted: true\n")
    return series_file


def test_an_idle_watcher_stops_on_sigterm_with_exit_0(slow_link, tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    env = cli_env(slow_link, tmp_path / "ledger.sqlite")
    process = subprocess.Popen([sys.executable, "-m", "mdupload", "watch", str(inbox), "--series",
                                str(write_series(tmp_path))],
                               env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    try:
        line = process.stderr.readline()
        assert line.startswith("watching"), line
        process.send_signal(signal.SIGTERM)
        _, stderr = process.communicate(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0, stderr
