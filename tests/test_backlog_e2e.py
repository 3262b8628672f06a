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
