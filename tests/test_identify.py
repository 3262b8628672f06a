"""The manga and groups of a manifest, asked of MangaDex (mocked in the spec's shapes) before uploading."""

from __future__ import annotations

from pathlib import Path

import pytest
import responses

from mdupload.errors import ManifestError, MdUploadError
from mdupload.identify import Catalogue, identify
from mdupload.mangadex.client import MangaDexClient
from mdupload.manifest import load_manifest

API = "https://api.example.test"
MANGA = "f9c33607-9180-4ba6-b85c-e4b5faee7192"
GROUP = "145f9110-0a6c-4b71-8737-6acb1a3c5da4"
PARTNER = "6e9a1d8c-3f41-4a7e-9a59-2b7c0d5e8f13"
UNKNOWN = "00000000-0000-4000-8000-000000000000"


def manga_doc(manga_id: str, titles: dict) -> dict:  # the spec's Manga entity (attributes we do not read elided)
    return {"id": manga_id, "type": "manga", "attributes": {"title": titles, "altTitles": [], "version": 1},
            "relationships": []}


def group_doc(group_id: str, name: str) -> dict:
    return {"id": group_id, "type": "scanlation_group", "attributes": {"name": name, "altNames": [], "version": 1},
            "relationships": []}


def not_found(what: str) -> dict:
    return {"result": "error", "errors": [{"id": "e", "status": 404, "title": "not_found_http_exception",
                                           "detail": what, "context": None}]}


@pytest.fixture
def http():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(f"{API}/manga/{MANGA}", json={"result": "ok", "response": "entity",
                                               "data": manga_doc(MANGA, {"ja-ro": "Sunabako", "en": "Sandbox"})})
        mock.get(f"{API}/group/{GROUP}", json={"result": "ok", "response": "entity", "data": group_doc(GROUP, "Sandbox Scans")})
        mock.get(f"{API}/group/{PARTNER}", json={"result": "ok", "response": "entity",
                                                 "data": group_doc(PARTNER, "Second Shift")})
        mock.get(f"{API}/group/{UNKNOWN}", status=404, json=not_found("no such group"))
        mock.get(f"{API}/manga/{UNKNOWN}", status=404, json=not_found("no such manga"))
        yield mock


def catalogue() -> Catalogue:
    return Catalogue(MangaDexClient(api_url=API, auth_url=f"{API}/token", rate_limiter=None, sleep=lambda s: None))


def write(tmp_path: Path, manga: str, groups: list[str], chapter_groups: list[str] | None = None) -> Path:
    for name in ("c1", "c2"):
        (tmp_path / name).mkdir(exist_ok=True)
    text = (f"manga: {manga}\ngroups: [{', '.join(groups)}]\nlanguage: en\nchapters:\n"
            '  - chapter: "1"\n    pages: c1\n'
            '  - chapter: "2"\n    pages: c2\n')
    if chapter_groups is not None:
        text += "    groups:\n" + "".join(f"      - {g}\n" for g in chapter_groups)
    path = tmp_path / "manifest.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_names_come_from_mangadex_once_per_id(http, tmp_path):
    manifest = load_manifest(write(tmp_path, MANGA, [GROUP], [GROUP, PARTNER]))
    found = identify(manifest, catalogue(), unreachable_hint="try later")
    assert found.lines() == [f"manga {MANGA}: Sandbox", f"group {GROUP}: Sandbox Scans", f"group {PARTNER}: Second Shift"]
    assert [c.request.method + " " + c.request.url for c in http.calls] == [
        f"GET {API}/manga/{MANGA}", f"GET {API}/group/{GROUP}", f"GET {API}/group/{PARTNER}"]
    assert all("Authorization" not in c.request.headers for c in http.calls)


def test_an_unknown_group_is_an_error_at_its_own_line(http, tmp_path):
    manifest = load_manifest(write(tmp_path, MANGA, [GROUP], [GROUP, UNKNOWN]))
    with pytest.raises(ManifestError) as caught:
        identify(manifest, catalogue(), unreachable_hint="try later")
    assert caught.value.line == 11  # the chapter's groups: item, not the chapter line
    assert f"MangaDex has no group {UNKNOWN}" in str(caught.value) and "mangadex.org/group/" in str(caught.value)


def test_an_unknown_manga_is_an_error_at_the_manga_line(http, tmp_path):
    manifest = load_manifest(write(tmp_path, UNKNOWN, [UNKNOWN]))
    with pytest.raises(ManifestError) as caught:
        identify(manifest, catalogue(), unreachable_hint="try later")
    assert caught.value.line == 1
    assert f"MangaDex has no manga {UNKNOWN}. Nor group {UNKNOWN} (line 2)." in str(caught.value)


def test_a_title_without_english_takes_the_first_language_given(http):
    http.replace(responses.GET, f"{API}/manga/{UNKNOWN}", json={"result": "ok", "response": "entity",
                                                               "data": manga_doc(UNKNOWN, {"ja-ro": "Sunabako"})})
    assert catalogue().manga(UNKNOWN).name == "Sunabako"


def test_search_sends_the_title_and_every_content_rating(http):
    http.get(f"{API}/manga", json={"result": "ok", "response": "collection", "limit": 10, "offset": 0, "total": 1,
                                   "data": [manga_doc(MANGA, {"en": "Sandbox"})]})
    http.get(f"{API}/group", json={"result": "ok", "response": "collection", "limit": 10, "offset": 0, "total": 1,
                                   "data": [group_doc(GROUP, "Sandbox Scans")]})
    client = catalogue().client
    assert [t.name for t in client.search_manga("sand box")] == ["Sandbox"]
    assert [t.id for t in client.search_groups("Sandbox")] == [GROUP]
    manga_query = http.calls[-2].request.params
    assert manga_query["title"] == "sand box" and "pornographic" in http.calls[-2].request.url
    assert http.calls[-1].request.params["name"] == "Sandbox"


def test_mangadex_not_answering_says_what_the_command_can_do(tmp_path):
    manifest = load_manifest(write(tmp_path, MANGA, [GROUP]))
    with responses.RequestsMock() as mock:
        mock.get(f"{API}/manga/{MANGA}", status=503, json={"result": "error", "errors": []})
        with pytest.raises(MdUploadError) as caught:
            identify(manifest, catalogue(), unreachable_hint="Use --offline.")
    assert "could not ask MangaDex" in str(caught.value) and str(caught.value).endswith("Use --offline.")
