"""`mdupload init`: a manifest for a folder of conventionally named releases, ids found on MangaDex (the sandbox)."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest
from PIL import Image

from mdupload.errors import UsageError
from mdupload.identify import Catalogue
from mdupload.init_manifest import init_manifest
from mdupload.mangadex.client import MangaDexClient
from mdupload.manifest import load_manifest
from tests.e2e import cli_env, run_cli

MANGA = "f9c33607-9180-4ba6-b85c-e4b5faee7192"
ADULT_MANGA = "3f1c8a52-7d4e-4b9a-9c21-5e8f0a6b2d47"
GROUP = "145f9110-0a6c-4b71-8737-6acb1a3c5da4"
SECOND = "6e9a1d8c-3f41-4a7e-9a59-2b7c0d5e8f13"


def _page(color) -> Image.Image:
    return Image.new("RGB", (60, 90), color)


def releases(folder: Path, names: list[str]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index, name in enumerate(names):
        if name.endswith(".cbz"):
            with zipfile.ZipFile(folder / name, "w") as archive:
                for page in (1, 2):
                    path = folder / f"tmp{page}.png"
                    _page((index * 30, page * 80, 10)).save(path)
                    archive.write(path, f"{page}.png")
                    path.unlink()
        else:
            (folder / name).mkdir()
            for page in (1, 2):
                _page((index * 30, page * 80, 10)).save(folder / name / f"{page}.png")
    return folder


NAMES = ["The Sandbox Chronicles - c010 [Sandbox Scans]", "The Sandbox Chronicles - c002 (Color) [Sandbox Scans]",
         "The Sandbox Chronicles v01 c001 - The Beginning [Sandbox Scans].cbz",
         "The Sandbox Chronicles - c002.5 [Sandbox Scans & Second Shift Scans]"]


@pytest.fixture
def catalogue(sandbox):
    return Catalogue(MangaDexClient(api_url=sandbox.api_url, auth_url=sandbox.auth_url, rate_limiter=None))


def test_a_folder_of_releases_becomes_a_manifest_in_number_order_with_names_as_comments(tmp_path, catalogue):
    folder = releases(tmp_path / "releases", NAMES + ["cover art"])
    (folder / "notes.txt").write_text("not a release")
    result = init_manifest(folder, catalogue)
    text = result.manifest.read_text()
    assert f"manga: {MANGA}  # The Sandbox Chronicles" in text
    assert f"groups:\n  - {GROUP}  # Sandbox Scans\n" in text
    assert f"      - {SECOND}  # Second Shift Scans" in text  # chapter 2.5's own groups
    assert "# Left out (no chapter in the name): cover art" in text
    manifest = load_manifest(result.manifest)
    assert [(s.chapter, s.volume, s.title) for s in manifest.chapters] == [
        ("1", "1", "The Beginning"), ("2", None, None), ("2.5", None, None), ("10", None, None)]
    assert manifest.chapters[2].groups == (GROUP, SECOND) and manifest.chapters[0].groups == (GROUP,)
    assert manifest.chapters[0].pages == folder / NAMES[2]


def test_an_existing_manifest_is_never_replaced_without_force(tmp_path, catalogue):
    folder = releases(tmp_path / "releases", NAMES[:1])
    (folder / "manifest.yaml").write_text("mine\n")
    with pytest.raises(UsageError, match="--force"):
        init_manifest(folder, catalogue)
    assert (folder / "manifest.yaml").read_text() == "mine\n"
    init_manifest(folder, catalogue, force=True)
    assert load_manifest(folder / "manifest.yaml").manga == MANGA


def test_ambiguous_answers_are_asked_on_a_terminal_and_refused_elsewhere(tmp_path, catalogue):
    folder = releases(tmp_path / "Sandbox", ["Sandbox - c001 [Scans]"])
    with pytest.raises(UsageError) as caught:
        init_manifest(folder, catalogue)
    assert "several mangas named like 'Sandbox'" in str(caught.value) and "--manga ID|URL" in str(caught.value)
    assert "After Dark in the Sandbox (3f1c8a52" in str(caught.value)  # every content rating is searched
    asked = []

    def choose(question, candidates):
        asked.append((question, [c.name for c in candidates]))
        return candidates[-1]

    result = init_manifest(folder, catalogue, choose=choose)
    assert asked[0][0].startswith("MangaDex knows several mangas") and len(asked[0][1]) == 2
    assert asked[1] == ("MangaDex knows several groups named like 'Scans':", ["Sandbox Scans", "Second Shift Scans"])
    assert result.groups[0].id == SECOND


def test_ids_and_addresses_given_are_used_as_they_are(tmp_path, catalogue):
    folder = releases(tmp_path / "releases", ["Whatever - c001"])
    result = init_manifest(folder, catalogue, manga=f"https://mangadex.org/title/{ADULT_MANGA}/after-dark",
                           group_ids=[SECOND], language="pt-br")
    manifest = load_manifest(result.manifest)
    assert (manifest.manga, manifest.groups, manifest.language) == (ADULT_MANGA, (SECOND,), "pt-br")
    with pytest.raises(UsageError, match="no manga 00000000"):
        init_manifest(folder, catalogue, manga="00000000-0000-4000-8000-000000000000", force=True)


@pytest.mark.e2e
def test_init_then_validate_shows_the_title_and_the_groups(sandbox, tmp_path):
    env = cli_env(sandbox, tmp_path / "ledger.sqlite")
    folder = releases(tmp_path / "releases", NAMES)
    run = run_cli(["init", str(folder)], env)
    assert run.code == 0, run.stderr
    assert "wrote" in run.stderr and "4 chapter(s) of The Sandbox Chronicles" in run.stderr
    checked = run_cli(["validate", str(folder / "manifest.yaml")], env)
    assert checked.code == 0, checked.stderr
    assert f"manga {MANGA}: The Sandbox Chronicles" in checked.stderr
    assert f"group {GROUP}: Sandbox Scans" in checked.stderr and f"group {SECOND}: Second Shift Scans" in checked.stderr
    again = run_cli(["init", str(folder)], env)
    assert again.code == 2 and "already exists" in again.stderr and "--force" in again.stderr
    ambiguous = releases(tmp_path / "other", ["Sandbox - c001 [Sandbox Scans]"])
    refused = run_cli(["init", str(ambiguous)], env)  # not a terminal: nobody to ask
    assert refused.code == 2 and "--manga ID|URL" in refused.stderr and not (ambiguous / "manifest.yaml").exists()


def test_an_output_folder_that_does_not_exist_is_a_clear_error(tmp_path, catalogue):
    folder = releases(tmp_path / "releases", NAMES[:1])
    with pytest.raises(UsageError, match="cannot write .*--output"):
        init_manifest(folder, catalogue, output=tmp_path / "missing" / "manifest.yaml")
