"""What works on MangaDex works on the sandbox, what MangaDex holds back the sandbox holds back (issue 13).

A foreign client, written only from MangaDex's documented upload flow with plain requests (nothing of
mdupload), uploads to it; every kind of file part MangaDex stores is stored, with a warning; chapters
stay unlisted and without pages until processed; MangaDex@Home refuses tokens and serves a separate
data-saver rendition; the catalogue endpoints answer; connections stay open.
"""

from __future__ import annotations

import http.client
import io
import json
import time
from urllib.parse import urlsplit

import pytest
import requests
from PIL import Image

from click.testing import CliRunner

import mdupload.sandbox.api as sandbox_api
from mdupload.sandbox import DEMO_GROUP, DEMO_MANGA, DOCS_GROUP, ConfigError, SandboxConfig, start_sandbox
from mdupload.sandbox.cli import sandbox_command
from mdupload.sandbox.config import load_catalog
from tests.e2e import cli_env, copy_example, run_cli
from tests.test_sandbox import ALICE, Api, image

DOCS_MANGA = "f9c33607-9180-4ba6-b85c-e4b5faee7192"  # the manga of MangaDex's upload documentation sample


def photo(size=(800, 1000)) -> bytes:
    """A noisy, photo-like PNG (a JPEG rendition of it is much smaller)."""
    picture = Image.effect_noise(size, 60).convert("RGB")
    out = io.BytesIO()
    picture.save(out, "PNG")
    return out.getvalue()


# --- a foreign client, from MangaDex's documentation only ----------------------------------------------------

class DocumentedClient:
    """MangaDex's documented upload flow ("Uploading a chapter" guide), with requests and nothing else."""

    def __init__(self, api: str, token_url: str):
        self.api = api
        self.http = requests.Session()
        answer = self.http.post(token_url, data={"grant_type": "password", "username": "demo", "password": "demo",
                                                 "client_id": "mdupload-demo", "client_secret": "demo-secret"})
        answer.raise_for_status()
        self.http.headers["Authorization"] = f"Bearer {answer.json()['access_token']}"

    def upload_chapter(self, manga: str, groups: list[str], pages: list[tuple[str, bytes]], chapter: str) -> str:
        existing = self.http.get(f"{self.api}/upload")
        if existing.status_code == 200:
            self.http.delete(f"{self.api}/upload/{existing.json()['data']['id']}")
        session = self.http.post(f"{self.api}/upload/begin", json={"manga": manga, "groups": groups})
        session.raise_for_status()
        session_id = session.json()["data"]["id"]
        ids = []
        for start in range(0, len(pages), 5):  # the guide's batches of five, typed image/<extension>
            batch = pages[start:start + 5]
            files = {f"file{n}": (name, data, f"image/{name.rsplit('.', 1)[1]}") for n, (name, data) in enumerate(batch)}
            answer = self.http.post(f"{self.api}/upload/{session_id}", files=files)
            answer.raise_for_status()
            assert answer.json()["result"] == "ok", answer.text
            ids += [f["id"] for f in answer.json()["data"]]
        commit = self.http.post(f"{self.api}/upload/{session_id}/commit", json={
            "chapterDraft": {"volume": None, "chapter": chapter, "title": None, "translatedLanguage": "en"},
            "pageOrder": ids, "termsAccepted": True})
        commit.raise_for_status()
        return commit.json()["data"]["id"]


def test_a_client_written_from_mangadex_docs_uploads_with_the_docs_ids_and_reads_back_once_processed():
    pages = [(f"{n:02d}.{'jpg' if n % 2 else 'png'}", image("JPEG" if n % 2 else "PNG", colour=n))
             for n in range(1, 16)]
    with start_sandbox(SandboxConfig(rate_limits=False, processing_delay=2)) as sandbox:
        client = DocumentedClient(sandbox.api_url, sandbox.auth_url)
        chapter = client.upload_chapter(DOCS_MANGA, [DOCS_GROUP], pages, "1")
        held = client.http.get(f"{sandbox.api_url}/chapter/{chapter}").json()["data"]
        listed = client.http.get(f"{sandbox.api_url}/chapter", params={"manga": DOCS_MANGA}).json()
        assert held["attributes"]["pages"] == 0 and listed["data"] == []  # processing: known by id only
        deadline = time.monotonic() + 10  # the delay draws 0.5x to 1.5x of 2 s
        while time.monotonic() < deadline and not client.http.get(
                f"{sandbox.api_url}/chapter", params={"manga": DOCS_MANGA}).json()["data"]:
            time.sleep(0.2)
        served = requests.get(f"{sandbox.api_url}/at-home/server/{chapter}").json()
        got = [requests.get(f"{served['baseUrl']}/data/{served['chapter']['hash']}/{name}").content
               for name in served["chapter"]["data"]]
        state = sandbox.state()
    assert got == [data for _name, data in pages]  # all 15 pages, in order, byte for byte
    # "image/jpg" is what the docs send: stored from the bytes, each one a warning about a stricter server
    assert {w["leniency"].split(";")[0] for w in state["warnings"]} == {
        "the part says image/jpg but its bytes are image/jpeg"}
    assert len(state["warnings"]) == 8 and state["internalErrors"] == []


# --- point 1: each kind of file part MangaDex stores ----------------------------------------------------------

JPEG = image("JPEG")
PART_KINDS = {  # kind -> (filename, declared Content-Type or None, warnings expected)
    "typed": ("page.jpg", "image/jpeg", []),
    "untyped, named 0 (a widely used uploader)": ("0", None, ["no Content-Type", "no extension"]),
    "application/octet-stream": ("page.jpg", "application/octet-stream", ["says application/octet-stream"]),
    "image/jpg (MangaDex's docs sample)": ("page.jpg", "image/jpg", ["says image/jpg"]),
    "a type the bytes contradict": ("page.png", "image/png", ["says image/png", "ends in .png"]),
    "no extension": ("page", "image/jpeg", ["no extension"]),
}


@pytest.mark.sandbox_warnings_allowed
@pytest.mark.parametrize("kind", list(PART_KINDS))
def test_each_kind_of_part_mangadex_stores_is_stored_and_its_leniencies_are_warnings(sandbox, kind):
    name, declared, expected = PART_KINDS[kind]
    api = Api(sandbox)
    session = api.begin()
    part = (name, JPEG) if declared is None else (name, JPEG, declared)
    answer = api.call("POST", f"/upload/{session}", files=[("0" if declared is None else "file1", part)])
    assert answer.status_code == 200 and answer.json()["result"] == "ok" and answer.json()["errors"] == []
    [stored] = answer.json()["data"]
    assert stored["attributes"]["mimeType"] == "image/jpeg" and stored["attributes"]["originalFileName"] == name
    warnings = sandbox.state()["warnings"]
    assert len(warnings) == len(expected)
    for warning, words in zip(warnings, expected, strict=True):
        assert words in warning["leniency"] and repr(name) in warning["part"] and warning["stricter"]
        assert warning["request"] == f"POST /upload/{session}"


def test_a_part_that_is_no_image_is_still_refused_inside_a_200_whose_result_is_ok(sandbox):
    api = Api(sandbox)
    session = api.begin()
    answer = api.call("POST", f"/upload/{session}", files=[("file1", ("a.png", image(), "image/png")),
                                                             ("file2", ("notes.png", b"not an image", "image/png"))])
    document = answer.json()
    assert answer.status_code == 200 and document["result"] == "ok"
    assert [f["attributes"]["originalFileName"] for f in document["data"]] == ["a.png"]
    assert len(document["errors"]) == 1 and "notes.png" in document["errors"][0]["detail"]


# --- point 3: processing ----------------------------------------------------------------------------------------

def test_until_processed_a_chapter_is_unlisted_and_pageless_everywhere_then_it_appears():
    with start_sandbox(SandboxConfig(rate_limits=False, processing_delay=1.0, approval_required=("*:pt-br",),
                                     approval_delay=30)) as sandbox:
        api = Api(sandbox)
        chapter = api.publish("7", pages=2)
        held = api.publish("7", pages=1, language="pt-br")
        me = api.call("GET", "/user/me").json()["data"]["id"]

        def visible() -> dict:
            return {
                "list": [c["id"] for c in api.call("GET", "/chapter", params={"manga": DEMO_MANGA}).json()["data"]],
                "mine": [c["id"] for c in api.call("GET", "/chapter", params={"uploader": me}).json()["data"]],
                "feed": [c["id"] for c in api.call("GET", f"/manga/{DEMO_MANGA}/feed").json()["data"]],
                "aggregate": api.call("GET", f"/manga/{DEMO_MANGA}/aggregate").json()["volumes"],
                "pages": api.call("GET", f"/chapter/{chapter}").json()["data"]["attributes"]["pages"],
                "athome": requests.get(f"{sandbox.api_url}/at-home/server/{chapter}").json()["chapter"]["data"],
            }

        assert visible() == {"list": [], "mine": [], "feed": [], "aggregate": {}, "pages": 0, "athome": []}
        deadline = time.monotonic() + 5
        while visible()["list"] == [] and time.monotonic() < deadline:
            time.sleep(0.1)
        after = visible()
        states = {c["id"]: c for c in sandbox.state()["chapters"]}
    assert after["list"] == after["mine"] == after["feed"] == [chapter] and after["pages"] == 2
    assert len(after["athome"]) == 2 and after["aggregate"]["none"]["chapters"]["7"]["id"] == chapter
    # the chapter that needs approval is held on: it exists (by id), nobody lists it
    assert states[held]["awaitingApproval"] is True and states[held]["processed"] is False


def test_by_default_processing_takes_a_few_seconds():
    config = SandboxConfig()
    assert config.processing_delay >= 2 and config.approval_delay > config.processing_delay
    with start_sandbox(SandboxConfig(rate_limits=False)) as sandbox:
        api = Api(sandbox)
        for number in ("1", "2", "3"):
            api.publish(number)
        listed = api.call("GET", "/chapter", params={"manga": DEMO_MANGA}).json()["data"]
        chapters = sandbox.state()["chapters"]
    assert listed == [] and [c["processed"] for c in chapters] == [False] * 3


# --- point 4: MangaDex@Home ---------------------------------------------------------------------------------

def test_athome_refuses_tokens_and_serves_a_smaller_jpeg_data_saver_under_its_own_names(sandbox):
    api = Api(sandbox)
    original = photo()
    session = api.begin()
    ids = api.upload_ok(session, [("1.png", original), ("2.png", image())])
    chapter = api.commit(session, ids).json()["data"]["id"]
    served = requests.get(f"{sandbox.api_url}/at-home/server/{chapter}").json()
    base, digest, data, saver = (served["baseUrl"], served["chapter"]["hash"], served["chapter"]["data"],
                                 served["chapter"]["dataSaver"])
    assert len(saver) == 2 and set(saver).isdisjoint(data) and all(name.endswith(".jpg") for name in saver)
    first = requests.get(f"{base}/data-saver/{digest}/{saver[0]}")
    again = requests.get(f"{base}/data-saver/{digest}/{saver[0]}")
    assert first.status_code == 200 and first.headers["Content-Type"] == "image/jpeg"
    assert (first.headers["X-Cache"], again.headers["X-Cache"]) == ("MISS", "HIT") and first.content == again.content
    assert len(first.content) < len(original) // 2
    with Image.open(io.BytesIO(first.content)) as rendition:
        assert rendition.format == "JPEG"
    assert requests.get(f"{base}/data/{digest}/{saver[0]}").status_code == 404  # not a name of the originals
    assert requests.get(f"{base}/data-saver/{digest}/{data[0]}").status_code == 404
    refused = requests.get(f"{base}/data/{digest}/{data[0]}", headers={"Authorization": "Bearer x"})
    assert refused.status_code == 403 and "Authorization" in refused.text
    assert sandbox.state()["requests"][-1]["authorization"] is True


# --- point 5: the catalogue ---------------------------------------------------------------------------------

def test_the_catalogue_answers_in_the_spec_shapes_with_the_docs_ids(sandbox):
    api = Api(sandbox)
    manga = api.call("GET", f"/manga/{DOCS_MANGA}").json()
    assert manga["response"] == "entity" and manga["data"]["type"] == "manga"
    group = api.call("GET", f"/group/{DOCS_GROUP}").json()["data"]
    assert group["type"] == "scanlation_group" and group["attributes"]["name"]
    assert [g["id"] for g in api.call("GET", "/group", params={"name": "DOCUMENTATION"}).json()["data"]] == [DOCS_GROUP]
    found = api.call("GET", "/manga", params={"title": "chronicles"}).json()
    assert [m["id"] for m in found["data"]] == [DEMO_MANGA] and found["total"] == 1
    assert api.call("GET", "/manga", params={"title": "after dark"}).json()["data"] == []  # pornographic: opt in
    me = api.call("GET", "/user/me").json()["data"]
    assert me["type"] == "user" and me["attributes"]["username"] == "demo"
    assert requests.get(f"{sandbox.api_url}/user/me").status_code == 401


def test_get_chapter_orders_pages_and_filters_like_mangadex(sandbox):
    api = Api(sandbox)
    for number in ("10", "2", "10a", "1"):
        sandbox.add_chapter(manga=DEMO_MANGA, chapter=number, volume="1")
    sandbox.add_chapter(manga=DEMO_MANGA, chapter="3", groups=(DOCS_GROUP,), language="fr")

    def numbers(**params) -> list[str]:
        return [c["attributes"]["chapter"] for c in api.call("GET", "/chapter", params=params).json()["data"]]

    assert numbers(**{"order[chapter]": "asc"}) == ["1", "2", "3", "10", "10a"]
    assert numbers(**{"order[chapter]": "desc", "limit": 2, "offset": 1}) == ["10", "3"]
    assert numbers(**{"groups[]": [DOCS_GROUP]}) == ["3"]
    assert numbers(**{"excludedGroups[]": [DOCS_GROUP], "translatedLanguage[]": ["en"], "order[chapter]": "asc"}) == [
        "1", "2", "10", "10a"]
    assert numbers(**{"volume[]": ["1"], "chapter": "10a"}) == ["10a"]
    assert api.call("GET", "/chapter", params={"order[chapter]": "up"}).status_code == 400
    aggregate = api.call("GET", f"/manga/{DEMO_MANGA}/aggregate", params={"translatedLanguage[]": ["en"]}).json()
    assert aggregate["volumes"]["1"]["count"] == 4 and set(aggregate["volumes"]["1"]["chapters"]) == {
        "1", "2", "10", "10a"}


def test_a_chapter_is_edited_with_its_version_and_deleted_by_its_uploader_only():
    with start_sandbox(SandboxConfig(rate_limits=False, processing_delay=0, users=(ALICE,))) as sandbox:
        demo, alice = Api(sandbox), Api(sandbox, ALICE)
        chapter = demo.publish("4")
        assert alice.call("PUT", f"/chapter/{chapter}", json={"title": "Mine", "version": 1}).status_code == 403
        edited = demo.call("PUT", f"/chapter/{chapter}", json={"title": "Renamed", "groups": [DOCS_GROUP], "version": 1})
        attributes = edited.json()["data"]["attributes"]
        assert (attributes["title"], attributes["version"]) == ("Renamed", 2)
        stale = demo.call("PUT", f"/chapter/{chapter}", json={"title": "Again", "version": 1})
        assert stale.status_code == 409 and stale.json()["errors"][0]["title"] == "optimistic_lock_exception"
        assert alice.call("DELETE", f"/chapter/{chapter}").status_code == 403
        assert demo.call("DELETE", f"/chapter/{chapter}").status_code == 200
        assert demo.call("GET", f"/chapter/{chapter}").status_code == 404
        assert demo.call("GET", "/chapter", params={"manga": DEMO_MANGA}).json()["total"] == 0


def test_put_chapter_changes_its_groups_as_chapter_request_says_and_refuses_what_mangadex_would():
    """ChapterEdit (ChapterRequest + a required version): `groups` an array of at most 10 uuids; an unknown group is
    refused as POST /upload/begin refuses it, and nothing changes."""
    from mdupload.sandbox import SECOND_GROUP

    with start_sandbox(SandboxConfig(rate_limits=False, processing_delay=0)) as sandbox:
        api = Api(sandbox)
        chapter = api.publish("4")
        unknown = "00000000-0000-4000-8000-000000000000"
        refused = api.call("PUT", f"/chapter/{chapter}", json={"groups": [DEMO_GROUP, unknown], "version": 1})
        assert refused.status_code == 404 and unknown in refused.json()["errors"][0]["detail"]
        too_many = api.call("PUT", f"/chapter/{chapter}", json={"groups": [DEMO_GROUP] * 11, "version": 1})
        assert too_many.status_code == 400
        assert api.call("PUT", f"/chapter/{chapter}", json={"groups": ["not-a-uuid"], "version": 1}).status_code == 400
        assert api.call("PUT", f"/chapter/{chapter}", json={"groups": [DEMO_GROUP]}).status_code == 400  # no version
        edited = api.call("PUT", f"/chapter/{chapter}", json={"groups": [SECOND_GROUP, DOCS_GROUP], "version": 1})
        assert edited.status_code == 200 and edited.json()["data"]["attributes"]["version"] == 2  # the refusals changed nothing
        shown = api.call("GET", f"/chapter/{chapter}").json()["data"]["relationships"]
        assert sorted(r["id"] for r in shown if r["type"] == "scanlation_group") == sorted([SECOND_GROUP, DOCS_GROUP])
        listed = api.call("GET", "/chapter", params={"groups[]": [DEMO_GROUP], "manga": DEMO_MANGA}).json()
        assert listed["total"] == 0  # no longer credited to the group it was published with


def test_a_catalog_file_adds_a_groups_real_series_and_its_published_chapters(tmp_path):
    manga, group = "0b0c9a7e-1f34-4d1a-9c7e-2d6f3b1e8a01", "5a3f8e21-7c4b-4e9d-8f12-6b0a9c3d2e14"
    catalog = {"mangas": [{"id": manga, "title": "Our Real Series", "contentRating": "suggestive"}],
               "groups": [{"id": group, "name": "Our Real Group"}],
               "chapters": [{"manga": manga, "chapter": "12", "volume": "2", "language": "en", "groups": [group]}]}
    as_yaml = tmp_path / "catalog.yaml"
    as_yaml.write_text(f"# our group\n{json.dumps(catalog)}\n")
    as_json = tmp_path / "catalog.json"
    as_json.write_text(json.dumps(catalog))
    assert load_catalog(as_yaml) == load_catalog(as_json)
    with start_sandbox(SandboxConfig(rate_limits=False, processing_delay=0, **load_catalog(as_yaml))) as sandbox:
        api = Api(sandbox)
        assert api.call("GET", f"/manga/{manga}").json()["data"]["attributes"]["title"] == {"en": "Our Real Series"}
        assert api.call("GET", f"/group/{DEMO_GROUP}").status_code == 200  # the default catalogue stays
        existing = api.call("GET", "/chapter", params={"manga": manga, "chapter": "12", "groups[]": [group]}).json()
        assert [c["attributes"]["volume"] for c in existing["data"]] == ["2"]
        assert api.begin(manga, (group,))  # a rehearsal with the real ids
    broken = tmp_path / "broken.yaml"
    broken.write_text("mangas: [{id: not-a-uuid, title: X}]\n")
    with pytest.raises(ConfigError, match="broken.yaml: manga 1 needs an id that is a UUID"):
        load_catalog(broken)


def test_the_sandbox_command_loads_a_catalog_file(tmp_path):
    broken = tmp_path / "catalog.json"
    broken.write_text(json.dumps({"series": []}))
    result = CliRunner().invoke(sandbox_command, ["--catalog", str(broken)])
    assert result.exit_code == 2 and "catalog.json: a catalogue is a mapping" in result.output


# --- point 6: keep-alive ----------------------------------------------------------------------------------

def test_api_connections_stay_open_between_requests(sandbox):
    where = urlsplit(sandbox.api_url)
    connection = http.client.HTTPConnection(where.hostname, where.port, timeout=10)
    try:
        for _ in range(3):  # one connection, three requests: the server keeps it open
            connection.request("GET", f"/chapter?manga={DEMO_MANGA}")
            answer = connection.getresponse()
            body = answer.read()
            assert answer.status == 200 and answer.version == 11 and json.loads(body)["result"] == "ok"
            assert answer.getheader("Connection", "").lower() != "close"
        # an answer given before its body was read closes the connection, so no leftover is read as a request
        connection.request("POST", "/nowhere", body=b"x" * 1000, headers={"Content-Type": "text/plain"})
        refused = connection.getresponse()
        refused.read()
        assert refused.status == 404 and refused.getheader("Connection", "").lower() == "close"
    finally:
        connection.close()


def test_a_sandbox_bug_is_an_internal_error_in_the_state(monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("a sandbox bug")

    monkeypatch.setitem(sandbox_api.HANDLERS, "get-user-me", (broken, False))
    with start_sandbox(SandboxConfig(rate_limits=False, processing_delay=0)) as sandbox:
        assert requests.get(f"{sandbox.api_url}/user/me").status_code == 500
        [failure] = sandbox.state()["internalErrors"]
    assert failure["request"] == "GET /user/me" and "a sandbox bug" in failure["error"]



# --- mdupload under the default processing delay ----------------------------------------------------------

@pytest.mark.e2e
def test_with_the_default_processing_delay_a_rerun_without_the_ledger_publishes_nothing_twice(tmp_path):
    series = copy_example(tmp_path / "series")
    with start_sandbox(SandboxConfig(rate_limits=False)) as sandbox:  # chapters take seconds to be listed
        first = run_cli(["upload", str(series), "--accept-terms"], cli_env(sandbox, tmp_path / "ledger.sqlite"))
        elsewhere = run_cli(["upload", str(series), "--accept-terms"], cli_env(sandbox, tmp_path / "other.sqlite"))
        state = sandbox.state()
    assert first.code == 0, first.stderr
    assert elsewhere.code == 0 and elsewhere.stderr.count("MangaDex already has it") == 3, elsewhere.stderr
    assert sorted(c["chapter"] for c in state["chapters"]) == ["1", "2", "2.5"]
    assert state["warnings"] == [] and state["internalErrors"] == []


@pytest.mark.e2e
def test_a_chapter_held_for_approval_is_not_published_twice_and_verify_waits_for_it(tmp_path):
    series = copy_example(tmp_path / "series")
    config = SandboxConfig(rate_limits=False, approval_required=("*:en",), approval_delay=15)
    with start_sandbox(config) as sandbox:
        env = cli_env(sandbox, tmp_path / "ledger.sqlite")
        first = run_cli(["upload", str(series), "--accept-terms"], env)
        rerun = run_cli(["upload", str(series), "--accept-terms"], env)
        held = [c["processed"] for c in sandbox.state()["chapters"]]
        verify = run_cli(["verify", str(series), "--json"], env)
        state = sandbox.state()
    assert first.code == 0 and "staff approval" in first.stderr, first.stderr
    assert rerun.code == 0 and rerun.stderr.count("the ledger records it as published") == 3, rerun.stderr
    assert held == [False] * 3 and len(state["chapters"]) == 3
    assert verify.code == 0 and verify.json["processing"] == 0, verify.stderr
    assert [c["status"] for c in verify.json["chapters"]] == ["verified"] * 3
    assert "waiting for MangaDex to process" in verify.stderr
    assert state["warnings"] == [] and state["internalErrors"] == []
