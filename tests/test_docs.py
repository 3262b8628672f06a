"""The README and the guides in docs/: every relative link leads somewhere, and the README links every guide."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")

# Guides written on other branches (issue 17's `house`, issue 13's `sandbox`), linked already. When one
# of them is merged, this test fails until its line is removed here.
WRITTEN_ELSEWHERE: set[str] = set()


def _links(page: Path) -> list[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)  # code is not a link
    return [target for target in LINK.findall(text) if not re.match(r"[a-z]+:", target)]


def _anchors(page: Path) -> set[str]:
    """GitHub's anchors for the page's headings: lower case, punctuation dropped, spaces as hyphens."""
    headings = re.findall(r"^#+ (.*)$", page.read_text(encoding="utf-8"), re.M)
    return {re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-") for heading in headings}


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(ROOT).as_posix())
def test_every_relative_link_points_to_an_existing_file_and_heading(page):
    missing = set()
    for target in _links(page):
        path, _, anchor = target.partition("#")
        file = (page.parent / path).resolve() if path else page
        name = file.relative_to(ROOT).as_posix() if file.is_relative_to(ROOT) else str(file)
        if not file.exists():
            missing.add(name)
        elif anchor:
            assert anchor in _anchors(file), f"{page.name}: {target} names no heading of {name}"
    assert missing <= WRITTEN_ELSEWHERE, f"{page.name} links to missing files: {sorted(missing - WRITTEN_ELSEWHERE)}"


def test_the_files_written_elsewhere_are_still_missing():
    assert [name for name in WRITTEN_ELSEWHERE if (ROOT / name).exists()] == [], "merged: remove it from WRITTEN_ELSEWHERE"


def test_the_readme_links_every_guide():
    linked = {(ROOT / target.partition("#")[0]).resolve() for target in _links(ROOT / "README.md")}
    guides = {page.resolve() for page in (ROOT / "docs").glob("*.md")} | {ROOT / name for name in WRITTEN_ELSEWHERE}
    assert sorted(p.name for p in guides - linked) == []
