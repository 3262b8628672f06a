"""Helpers for end-to-end tests: the real command line in a subprocess, against the sandbox."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "manifests" / "example.yaml"
LANRARAGI_KEY = "correct-horse-battery-staple"  # the API key of the test LANraragi libraries


@dataclass
class CliRun:
    code: int
    stdout: str
    stderr: str

    @property
    def json(self) -> dict:
        return json.loads(self.stdout)


def cli_env(sandbox, ledger: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MDUPLOAD_", "GITHUB_"))}
    env.update(sandbox.env)
    env["MDUPLOAD_LEDGER"] = str(ledger)
    # never the developer's own stored accounts or system keyring
    env["MDUPLOAD_CONFIG_DIR"] = str(ledger.parent / "mdupload-config")
    env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"
    env.pop("CI", None)
    env.update(extra)
    return env


def run_cli(args: list[str], env: dict[str, str], *, timeout: float = 120, cwd: Path | None = None) -> CliRun:
    done = subprocess.run([sys.executable, "-m", "mdupload", *args], env=env, capture_output=True, text=True,
                          timeout=timeout, cwd=cwd, stdin=subprocess.DEVNULL)
    return CliRun(done.returncode, done.stdout, done.stderr)


def copy_example(dest: Path) -> Path:
    """A private copy of the example series (manifest and pages), so a test may change it."""
    shutil.copytree(EXAMPLE.parent, dest, ignore=shutil.ignore_patterns("*.py", "__pycache__"))
    return dest / EXAMPLE.name


def chapter_pages(state: dict, chapter: str) -> list[list[str]]:
    """The ordered page names of every chapter with this number in the sandbox."""
    return [[p["originalFileName"] for p in c["pages"]] for c in state["chapters"] if c["chapter"] == chapter]
