"""The GitHub Actions workflow of docs/github-actions.md, run step by step against the sandbox.

The `run:` steps are executed as written, in order, with bash (as GitHub's runner does), with the
workflow's, the job's and the step's `env`, the secrets replaced by the sandbox's demo account, and
`GITHUB_ACTIONS`/`GITHUB_STEP_SUMMARY` set. Two kinds of steps cannot run here and are emulated:
`pip install` from GitHub (the package under test is already installed, and these machines reach
no GitHub) and the `actions/*` steps (checkout is the test's copy of the example series; the cache is
a folder of the test).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.e2e import ROOT, cli_env

pytestmark = pytest.mark.e2e

SECRETS = {"MANGADEX_USERNAME": "demo", "MANGADEX_PASSWORD": "demo", "MANGADEX_CLIENT_ID": "mdupload-demo",
           "MANGADEX_CLIENT_SECRET": "demo-secret"}


def documented_workflow() -> dict:
    text = (ROOT / "docs" / "github-actions.md").read_text()
    marker = text.index("<!-- workflow:")
    block = re.search(r"```yaml\n(.*?)```", text[marker:], re.S)
    return yaml.safe_load(block.group(1))


def _expand(value: str, github: dict) -> str:
    def one(match: re.Match) -> str:
        expression = match.group(1).strip()
        if expression.startswith("secrets."):
            return SECRETS[expression.removeprefix("secrets.")]
        return str(github[expression])

    return re.sub(r"\$\{\{(.*?)\}\}", one, value)


class Runner:
    """Runs one job of the workflow the way the runner would, in `repo`."""

    def __init__(self, workflow: dict, repo: Path, base_env: dict, summary: Path, cache: Path):
        self.workflow, self.repo, self.base_env, self.summary, self.cache = workflow, repo, base_env, summary, cache
        self.github = {"github.run_id": "1", "github.ref": "refs/tags/release-1"}
        self.log: list[tuple[str, int, str]] = []  # (command, exit code, stderr)

    def job(self, name: str) -> bool:
        job = self.workflow["jobs"][name]
        env = {**self.workflow.get("env", {}), **job.get("env", {})}
        failed = False
        for step in job["steps"]:
            if failed and "always()" not in str(step.get("if", "")):
                continue
            if "uses" in step:
                self._emulate(step)
            elif "pip install" in step["run"]:
                continue  # the package under test is installed already
            else:
                failed |= self._run(step, env) != 0
        return not failed

    def _run(self, step: dict, job_env: dict) -> int:
        step_env = {k: _expand(str(v), self.github) for k, v in {**job_env, **step.get("env", {})}.items()}
        env = {**self.base_env, **step_env, "GITHUB_ACTIONS": "true", "CI": "true",
               "GITHUB_STEP_SUMMARY": str(self.summary),
               "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
        for key in SECRETS:  # the workflow passes credentials only where it says so
            env.pop(key, None)
        if "MDUPLOAD_USERNAME" not in step_env:
            for key in ("MDUPLOAD_USERNAME", "MDUPLOAD_PASSWORD", "MDUPLOAD_CLIENT_ID", "MDUPLOAD_CLIENT_SECRET"):
                env.pop(key, None)
        done = subprocess.run(["bash", "-e", "-c", step["run"]], cwd=self.repo, env=env, capture_output=True,
                              text=True, timeout=120, stdin=subprocess.DEVNULL)
        self.log.append((step["run"], done.returncode, done.stderr))
        return done.returncode

    def _emulate(self, step: dict) -> None:
        action = step["uses"].split("@")[0]
        if action == "actions/cache/restore" and self.cache.exists():
            shutil.copytree(self.cache, self.repo / step["with"]["path"], dirs_exist_ok=True)
        elif action == "actions/cache/save" and (self.repo / step["with"]["path"]).exists():
            shutil.copytree(self.repo / step["with"]["path"], self.cache, dirs_exist_ok=True)


@pytest.fixture
def repo(tmp_path) -> Path:
    """A scanlation group's repository: the workflow's manifest path holds the example series."""
    repo = tmp_path / "repo"
    shutil.copytree(ROOT / "manifests", repo / "manifests", ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    shutil.copy(repo / "manifests" / "example.yaml", repo / "manifests" / "series.yaml")
    return repo


def test_the_documented_workflow_validates_then_releases_and_a_rerun_publishes_nothing_twice(sandbox, repo, tmp_path):
    workflow = documented_workflow()
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert set(triggers) == {"pull_request", "push"} and triggers["push"]["tags"] == ["release-*"] and list(workflow["jobs"]) == ["validate", "release"]
    base_env = {k: v for k, v in cli_env(sandbox, tmp_path / "unused").items() if k != "MDUPLOAD_LEDGER"}
    summary = tmp_path / "summary.md"
    runner = Runner(workflow, repo, base_env, summary, tmp_path / "cache")

    assert runner.job("validate"), runner.log
    assert json.loads((repo / "validate.json").read_text())["ok"] is True

    assert runner.job("release"), runner.log
    document = json.loads((repo / "upload.json").read_text())
    assert [c["status"] for c in document["chapters"]] == ["uploaded"] * 3
    chapters = sandbox.state()["chapters"]
    assert sorted(c["chapter"] for c in chapters) == ["1", "2", "2.5"]
    assert "| vol 1 chapter 2.5 (en) | uploaded | 4 |" in summary.read_text()
    assert (tmp_path / "cache" / "ledger.sqlite").exists()  # the ledger was saved for the next run
    status = runner.log[-1]
    assert status[0].startswith("mdupload status") and "committed as chapter" in status[2]

    # The job re-run with the ledger restored, then with the cache lost: nothing is published twice.
    assert runner.job("release"), runner.log
    assert [c["status"] for c in json.loads((repo / "upload.json").read_text())["chapters"]] == ["skipped"] * 3
    shutil.rmtree(tmp_path / "cache")
    shutil.rmtree(repo / ".mdupload")
    assert runner.job("release"), runner.log
    assert [c["status"] for c in json.loads((repo / "upload.json").read_text())["chapters"]] == ["skipped"] * 3
    assert len(sandbox.state()["chapters"]) == 3


def test_the_documented_workflow_fails_a_pull_request_with_a_broken_page_and_annotates_it(sandbox, repo, tmp_path):
    (repo / "manifests" / "chapters" / "c001" / "4.png").write_bytes(b"<html>a saved web page</html>")
    runner = Runner(documented_workflow(), repo, cli_env(sandbox, tmp_path / "unused"), tmp_path / "summary.md",
                    tmp_path / "cache")
    assert not runner.job("validate")
    command, code, stderr = runner.log[-1]
    assert code == 1 and "::error file=manifests/chapters/c001/4.png," in stderr
    assert json.loads((repo / "validate.json").read_text())["ok"] is False
