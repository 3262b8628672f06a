"""MangaDex's numbers, held to the spec: the client's mdupload/limits.py and the sandbox's own
mdupload/sandbox/rules.py (which states them independently) each against tests/spec/API-NOTES.md and
tests/spec/mangadex-api.yaml. A number mistyped on either side, or changed in the notes, fails here."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from mdupload import limits
from mdupload.sandbox import rules

SPEC = Path(__file__).resolve().parent / "spec"
NOTES = (SPEC / "API-NOTES.md").read_text(encoding="utf-8")
API = yaml.safe_load((SPEC / "mangadex-api.yaml").read_text(encoding="utf-8"))
SCHEMAS = API["components"]["schemas"]
MIB = 2 ** 20  # the notes' "MB" are MangaDex's, binary megabytes


def noted(pattern: str) -> str:
    found = re.search(pattern, NOTES)
    assert found, f"API-NOTES.md no longer says {pattern!r}"
    return found.group(1)


def noted_number(pattern: str) -> int:
    return int(noted(pattern).replace(",", ""))


# (what, the spec's number, the client's, the sandbox's)
UPLOAD_LIMITS = [
    ("files per request", noted_number(r"\*\*(\d+) files per request\*\*"),
     limits.FILES_PER_REQUEST, rules.FILES_PER_REQUEST),
    ("files per session", noted_number(r"\*\*(\d+) files per session\*\*"),
     limits.FILES_PER_SESSION, rules.FILES_PER_SESSION),
    ("bytes per file", noted_number(r"\*\*(\d+) MB per file\*\*") * MIB, limits.BYTES_PER_FILE, rules.BYTES_PER_FILE),
    ("bytes per session", noted_number(r"\*\*(\d+) MB per session\*\*") * MIB,
     limits.BYTES_PER_SESSION, rules.BYTES_PER_SESSION),
    ("pixels per side", noted_number(r"each side at most \*\*([\d,]+) px\*\*"), limits.MAX_SIDE_PX, rules.MAX_SIDE_PX),
    ("groups per session", SCHEMAS["BeginUploadSession"]["properties"]["groups"]["maxItems"],
     limits.MAX_GROUPS, rules.BEGIN_SESSION["properties"]["groups"]["maxItems"]),
]


@pytest.mark.parametrize(("what", "spec", "client", "sandbox"), UPLOAD_LIMITS, ids=[row[0] for row in UPLOAD_LIMITS])
def test_upload_limits_match_the_spec(what, spec, client, sandbox):
    assert (client, sandbox) == (spec, spec)


def test_accepted_formats_match_the_spec():
    extensions = set(noted(r"extensions\s+`([^`]+)`").split())
    assert noted(r"formats (JPEG, PNG, GIF) only") == "JPEG, PNG, GIF"
    mimes = {"image/jpeg", "image/png", "image/gif"}
    assert limits.ACCEPTED_EXTENSIONS == extensions
    assert {mime for mime, _extensions in limits.ACCEPTED_FORMATS.values()} == mimes
    assert set(rules.ACCEPTED_FORMATS.values()) == mimes
    # Pillow's MPO is a JPEG carrying extra pictures: both sides take it as the JPEG it is, and nothing else.
    assert set(limits.ACCEPTED_FORMATS) | limits.JPEG_VARIANTS == set(rules.ACCEPTED_FORMATS)
    assert all(rules.ACCEPTED_FORMATS[variant] == "image/jpeg" for variant in limits.JPEG_VARIANTS)


ENDPOINTS = {  # bucket -> the notes' row for it
    "upload.get": "`GET /upload`",
    "upload.begin": "`POST /upload/begin`",
    "upload.file": "`POST /upload/{id}`",
    "upload.commit": "`POST /upload/{id}/commit`",
    "upload.abandon": "`DELETE /upload/{id}`",
    "at-home.server": "`GET /at-home/server/{id}`",
}


def test_rate_limits_match_the_spec():
    table = {}
    for bucket, endpoint in ENDPOINTS.items():
        row = next(line for line in NOTES.splitlines() if line.startswith(f"| {endpoint}") and "/ minute" in line)
        table[bucket] = (int(re.search(r"\| (\d+) / minute", row).group(1)), 60)
    assert limits.ENDPOINT_LIMITS == table
    assert rules.ENDPOINT_LIMITS == table
    per_second = noted_number(r"about \*\*(\d+) requests per second per IP\*\*")
    assert limits.GLOBAL_REQUESTS_PER_SECOND == per_second
    assert rules.GLOBAL_LIMIT == (per_second, 1)
    assert limits.RATE_LIMIT_DEFAULT_WAIT_S == noted_number(r"\((\d+) s if absent\)")


def test_chapter_draft_rules_match_the_openapi_spec():
    draft = SCHEMAS["ChapterDraft"]["properties"]
    for field in ("volume", "chapter"):
        assert (draft[field]["pattern"], draft[field]["maxLength"]) == (limits.CHAPTER_PATTERN, limits.CHAPTER_MAX_LENGTH)
    assert draft["title"]["maxLength"] == limits.TITLE_MAX_LENGTH
    assert draft["translatedLanguage"]["pattern"] == limits.LANGUAGE_PATTERN == rules.LANGUAGE_PATTERN


def test_chapter_listing_matches_the_openapi_spec():
    parameters = {p["name"]: p["schema"] for p in API["paths"]["/chapter"]["get"]["parameters"] if "name" in p}
    assert parameters["limit"]["maximum"] == limits.LIST_PAGE_SIZE == rules.CHAPTER_LIST_MAX_LIMIT
    ratings = parameters["contentRating[]"]["items"]["enum"]
    assert tuple(ratings) == limits.CONTENT_RATINGS == rules.CONTENT_RATINGS
