"""What `pip install .` gives a user: a wheel built without setuptools warnings, holding every module,
the JSON schemas and the demo's example series, and a `mdupload demo` that runs from `/`.

The wheel is built once, by pip as a user would (`pip wheel`, build isolation on), then installed
with --no-deps into a fresh venv that sees this venv's dependencies through a .pth line (never this
checkout: the demo must find its series inside the installed package).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from tests.e2e import ROOT

pytestmark = pytest.mark.e2e


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MDUPLOAD_", "PYTHON"))}
    env["PYTHON_KEYRING_BACKEND"] = "keyring.backends.fail.Keyring"
    return env


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, str]:
    """The wheel, and everything pip printed while building it (-v shows the build backend's output)."""
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run([sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "-w", str(out), str(ROOT)],
                          capture_output=True, text=True, env=_env(), timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    [wheel] = out.glob("mdupload-*.whl")
    return wheel, done.stdout + done.stderr


def test_building_prints_no_setuptools_warning(built):
    _, log = built
    # pip's own "WARNING: ..." lines are about the machine's pip configuration (unreachable indexes),
    # not about this package; everything else that warns comes from the build backend.
    warnings = [line for line in log.splitlines() if re.search("warn", line, re.I) and not line.lstrip().startswith("WARNING:")]
    assert warnings == []


def test_the_wheel_holds_every_module_the_schemas_and_the_example_series(built):
    wheel, _ = built
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {p.relative_to(ROOT).as_posix() for p in (ROOT / "mdupload").rglob("*.py") if "__pycache__" not in p.parts}
    assert modules - names == set()
    assert {"mdupload/schema/manifest.schema.json", "mdupload/schema/series.schema.json"} <= names
    series = ROOT / "manifests"
    example = {"mdupload/demo_series/" + p.relative_to(series).as_posix()
               for p in [series / "example.yaml", *(series / "chapters").rglob("*")] if p.is_file()}
    assert len(example) == 1 + 10 + 1 + 4  # the manifest, c001's pages, c002.cbz, c002.5's pages
    assert example - names == set()
    assert not any(name.startswith(("tests/", "manifests/")) for name in names)


@pytest.fixture(scope="module")
def installed(built, tmp_path_factory) -> Path:
    """A fresh venv holding the wheel alone; its dependencies are this venv's (a .pth line), not installed again."""
    wheel, _ = built
    venv = tmp_path_factory.mktemp("venv") / "v"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               capture_output=True, text=True, check=True).stdout.strip())
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    done = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", str(wheel)],
                          capture_output=True, text=True, env=_env(), timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return venv


@pytest.mark.parametrize("command", [["bin/mdupload", "demo"], ["bin/python", "-m", "mdupload.demo"]],
                         ids=["mdupload demo", "python -m mdupload.demo"])
def test_the_demo_runs_from_the_root_directory_with_the_installed_example(installed, command):
    head, *rest = command
    done = subprocess.run([str(installed / head), *rest], cwd="/", capture_output=True, text=True,
                          env=_env(), timeout=300)
    assert done.returncode == 0, done.stderr
    published = re.search(r"\$ mdupload upload (\S+) --accept-terms", done.stderr).group(1)
    assert Path(published).is_relative_to(installed) and published.endswith("mdupload/demo_series/example.yaml")
    assert "chapter     1 (en)" in done.stderr and "10 pages in order: 1.png, 2.png, 3.png" in done.stderr
    assert "chapter   2.5 (en)" in done.stderr and "open sessions: 0" in done.stderr
