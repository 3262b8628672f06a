"""A backlog of ten chapters, one of them broken, through the real command line against the sandbox."""

from __future__ import annotations

from pathlib import Path

import pytest
from PIL import Image

from tests.e2e import cli_env, run_cli

pytestmark = pytest.mark.e2e

MANGA = "f9c33607-9180-4ba6-b85c-e4b5faee7192"
GROUP = "145f9110-0a6c-4b71-8737-6acb1a3c5da4"


def _backlog(folder: Path, broken: str = "10") -> Path:
    """Ten chapters of two pages each; chapter `broken` has a page cut off in the middle of its data."""
    lines = [f"manga: {MANGA}", f"groups: [{GROUP}]", "language: en", "terms_accepted: true", "chapters:"]
    for number in range(1, 11):
        pages = folder / f"c{number:03d}"
        pages.mkdir(parents=True)
        for page in (1, 2):
            Image.new("RGB", (60, 90), (number * 20, page * 60, 90)).save(pages / f"{page}.png")
        if str(number) == broken:
            data = (pages / "2.png").read_bytes()
            (pages / "2.png").write_bytes(data[: len(data) // 2])
        lines += [f'  - chapter: "{number}"', f"    pages: c{number:03d}"]
    manifest = folder / "manifest.yaml"
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return manifest


@pytest.fixture
def env(sandbox, tmp_path):
    return cli_env(sandbox, tmp_path / "ledger.sqlite")


def test_skip_invalid_publishes_the_nine_good_chapters_and_reports_the_broken_one(sandbox, tmp_path, env):
    manifest = _backlog(tmp_path / "backlog")
    refused = run_cli(["upload", str(manifest)], env)
    assert refused.code == 1 and "nothing was uploaded" in refused.stderr and "--skip-invalid" in refused.stderr
    assert sandbox.state()["chapters"] == []

    run = run_cli(["upload", str(manifest), "--skip-invalid", "--json"], env)
    assert run.code == 1, run.stderr
    document = run.json
    by_status = {}
    for chapter in document["chapters"]:
        by_status.setdefault(chapter["status"], []).append(chapter["chapter"])
    assert by_status == {"uploaded": [str(n) for n in range(1, 10)], "invalid": ["10"]}
    assert sorted(c["chapter"] for c in sandbox.state()["chapters"]) == sorted(str(n) for n in range(1, 10))
    summary = document["summary"]
    assert (summary["published"], summary["skipped"], summary["invalid"], summary["failed"]) == (9, 0, 1, 0)
    assert summary["bytes"] > 0 and summary["seconds"] > 0
    ids = [c["chapter_id"] for c in document["chapters"] if c["status"] == "uploaded"]
    assert summary["links"] == [f"{sandbox.api_url}/chapter/{chapter_id}" for chapter_id in ids]
    assert "summary: 9 published, 1 set aside by --skip-invalid of 10 chapter(s)" in run.stderr
    assert "chapter 10 (en)" in run.stderr and "c010" in run.stderr  # the broken chapter and its page are named
    for chapter_id in ids:
        assert f"{sandbox.api_url}/chapter/{chapter_id}" in run.stderr


def test_a_range_publishes_just_those_chapters(sandbox, tmp_path, env):
    manifest = _backlog(tmp_path / "backlog")
    run = run_cli(["upload", str(manifest), "--chapter", "1-6", "--exclude", "3", "--json"], env)
    assert run.code == 0, run.stderr
    assert [c["chapter"] for c in run.json["chapters"]] == ["1", "2", "4", "5", "6"]
    assert sorted(c["chapter"] for c in sandbox.state()["chapters"]) == ["1", "2", "4", "5", "6"]

    again = run_cli(["upload", str(manifest), "--chapter", "1-6"], env)
    assert again.code == 0, again.stderr
    assert "summary: 1 published, 5 already on MangaDex (skipped) of 6 chapter(s)" in again.stderr

    typo = run_cli(["upload", str(manifest), "--chapter", "1-6,16"], env)
    assert typo.code == 2
    assert "no chapter matching --chapter 16" in typo.stderr and "Its chapters are: 1-10" in typo.stderr


def _series_file(folder: Path) -> Path:
    path = folder / "night.yaml"
    path.write_text(f"manga: {MANGA}\ngroups: [{GROUP}]\nlanguage: en\nterms_accepted: true\nmatch: Night Market\n",
                    encoding="utf-8")
    return path


def _item(inbox: Path, name: str, *, broken: bool = False) -> None:
    pages = inbox / name
    pages.mkdir(parents=True)
    for page in (1, 2):
        Image.new("RGB", (60, 90), (page * 90, 40, 90)).save(pages / f"{page}.png")
    if broken:
        data = (pages / "2.png").read_bytes()
        (pages / "2.png").write_bytes(data[: len(data) // 2])


def _options_of(command: str) -> set[str]:
    from mdupload.cli import main

    return {name for param in main.commands[command].params for name in param.opts if name.startswith("--")}


def test_watch_keeps_items_through_an_outage_then_publishes_them_in_chapter_order(sandbox, tmp_path, env):
    import re
    import socket

    inbox = tmp_path / "inbox"
    names = ["Night Market - c013.5 [Group]", "Night Market [en] - c012 [Group]", "Night Market - c2 [Group]"]
    for name in names:
        _item(inbox, name)
    series = _series_file(tmp_path)
    with socket.socket() as closed:  # a port nobody listens on: MangaDex unreachable
        closed.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{closed.getsockname()[1]}"
    down = dict(env, MDUPLOAD_API_URL=dead, MDUPLOAD_AUTH_URL=dead)
    run = run_cli(["watch", str(inbox), "--series", str(series), "--once", "--settle", "0"], down, timeout=300)
    said = run.stderr
    assert run.code == 1, run.stderr
    assert sorted(p.name for p in inbox.iterdir() if not p.name.startswith(".")) == sorted(names)
    assert "stays in the inbox; retry 1 in 30 s" in run.stderr and not (inbox / "failed").exists()
    assert "3 left in the inbox by a problem outside them" in run.stderr

    dry = run_cli(["watch", str(inbox), "--series", str(series), "--dry-run"], env)
    assert dry.code == 0, dry.stderr
    assert [line.split(":")[0] for line in dry.stderr.splitlines()[:3]] == [
        f"1. {names[2]}", f"2. {names[1]}", f"3. {names[0]}"]

    _item(inbox, "Night Market - c014 [Group]", broken=True)
    run = run_cli(["watch", str(inbox), "--series", str(series), "--once", "--settle", "0"], env, timeout=300)
    said += run.stderr
    assert run.code == 1, run.stderr
    assert [c["chapter"] for c in sandbox.state()["chapters"]] == ["2", "12", "13.5"]
    assert sorted(p.name for p in (inbox / "failed").iterdir()) == ["Night Market - c014 [Group]",
                                                                   "Night Market - c014 [Group].error.txt"]
    (inbox / "done" / names[0]).rename(inbox / names[0])  # dropped again: found on MangaDex, skipped
    run = run_cli(["watch", str(inbox), "--series", str(series), "--once", "--settle", "0"], env, timeout=300)
    assert run.code == 0 and "already on MangaDex" in run.stderr
    everything = said + run.stderr + dry.stderr + (inbox / "failed" / "Night Market - c014 [Group].error.txt").read_text()
    named = set(re.findall(r"(?<![\w-])--[a-z][a-z-]+", everything))
    assert named <= _options_of("watch"), named - _options_of("watch")


def test_upload_archive_without_a_server_names_uploads_own_option(sandbox, tmp_path, env):
    manifest = _backlog(tmp_path / "backlog", broken="none")
    run = run_cli(["upload", str(manifest), "--archive", "--chapter", "1"], env)
    assert run.code == 2 and "Pass --archive-to URL" in run.stderr and "--to URL" not in run.stderr
    assert sandbox.state()["chapters"] == []
