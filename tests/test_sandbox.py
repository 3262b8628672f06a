"""The sandbox behaves like MangaDex: auth, upload sessions and their limits, commit, edit, chapters, MangaDex@Home.

Everything here talks to a started sandbox with plain `requests`, never with mdupload's client.
"""

from __future__ import annotations

import hashlib
import io
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
from PIL import Image

from mdupload.sandbox import (
    ADULT_MANGA,
    DEMO_GROUP,
    DEMO_MANGA,
    SECOND_GROUP,
    Account,
    SandboxConfig,
    start_sandbox,
)

ALICE = Account("alice", "wonderland", "alice-client", "alice-secret")
CORPUS = Path(__file__).parent / "corpus" / "images"


def image(fmt: str = "PNG", size: tuple[int, int] = (8, 8), colour: int = 0, padding: int = 0) -> bytes:
    """A real image file; `padding` bytes appended after its end make it as large as needed."""
    out = io.BytesIO()
    Image.new("RGB", size, (colour % 256, 40, 90)).save(out, fmt)
    return out.getvalue() + b"\0" * padding


class Api:
    """A logged-in MangaDex user talking plain HTTP to a sandbox."""

    def __init__(self, sandbox, account: Account | None = None):
        self.sandbox = sandbox
        self.account = account or Account("demo", "demo", "mdupload-demo", "demo-secret")
        self.http = requests.Session()
        self.tokens = self.login()

    def login(self) -> dict:
        a = self.account
        answer = requests.post(self.sandbox.auth_url, data={"grant_type": "password", "username": a.username,
                                                            "password": a.password, "client_id": a.client_id,
                                                            "client_secret": a.client_secret}, timeout=10)
        assert answer.status_code == 200, answer.text
        self.tokens = answer.json()
        self.http.headers["Authorization"] = f"Bearer {self.tokens['access_token']}"
        return self.tokens

    def call(self, method: str, path: str, **kwargs) -> requests.Response:
        return self.http.request(method, self.sandbox.api_url + path, timeout=30, **kwargs)

    def begin(self, manga: str = DEMO_MANGA, groups=(DEMO_GROUP,)) -> str:
        answer = self.call("POST", "/upload/begin", json={"manga": manga, "groups": list(groups)})
        assert answer.status_code == 200, answer.text
        return answer.json()["data"]["id"]

    def upload(self, session: str, files: list[tuple[str, bytes]], mime: str | None = None) -> requests.Response:
        parts = [(f"file{i}", (name, data, mime or _mime_of(name))) for i, (name, data) in enumerate(files)]
        return self.call("POST", f"/upload/{session}", files=parts)

    def upload_ok(self, session: str, files: list[tuple[str, bytes]]) -> list[str]:
        answer = self.upload(session, files)
        assert answer.status_code == 200 and answer.json()["result"] == "ok", answer.text
        return [f["id"] for f in answer.json()["data"]]

    def commit(self, session: str, order: list[str], chapter: str = "1", language: str = "en", **draft):
        body = {"chapterDraft": {"volume": None, "chapter": chapter, "title": None, "translatedLanguage": language,
                                 **draft}, "pageOrder": order, "termsAccepted": True}
        return self.call("POST", f"/upload/{session}/commit", json=body)

    def publish(self, chapter: str = "1", pages: int = 2, language: str = "en", groups=(DEMO_GROUP,),
                manga: str = DEMO_MANGA, **draft) -> str:
        session = self.begin(manga, groups)
        ids = self.upload_ok(session, [(f"{n}.png", image(colour=n)) for n in range(1, pages + 1)])
        answer = self.commit(session, ids, chapter, language, **draft)
        assert answer.status_code == 200, answer.text
        return answer.json()["data"]["id"]


def _mime_of(name: str) -> str:
    return {"png": "image/png", "jpg": "image/jpeg", "gif": "image/gif"}.get(name.rsplit(".", 1)[-1],
                                                                           "application/octet-stream")


def errors_of(answer: requests.Response) -> list[dict]:
    """The errors of an answer: a refusal, or a 200 whose `result` stays "ok" while it lists refused files."""
    document = answer.json()
    assert document["result"] == ("ok" if answer.status_code == 200 else "error")
    for entry in document["errors"]:
        assert set(entry) == {"id", "status", "title", "detail", "context"}
    return document["errors"]


@pytest.fixture(scope="module")
def sandbox():
    with start_sandbox(SandboxConfig(rate_limits=False, users=(ALICE,), processing_delay=0)) as running:
        yield running


@pytest.fixture()
def api(sandbox):
    user = Api(sandbox)
    yield user
    open_session = user.call("GET", "/upload")
    if open_session.status_code == 200:
        user.call("DELETE", f"/upload/{open_session.json()['data']['id']}")


# --- authentication ---------------------------------------------------------------------------------------------

def test_password_and_refresh_grants_follow_keycloak(sandbox):
    form = {"grant_type": "password", "username": "demo", "password": "demo", "client_id": "mdupload-demo",
            "client_secret": "demo-secret"}
    tokens = requests.post(sandbox.auth_url, data=form).json()
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] == 900 and tokens["refresh_expires_in"] > 900

    wrong = requests.post(sandbox.auth_url, data={**form, "password": "nope"})
    assert (wrong.status_code, wrong.json()["error"]) == (401, "invalid_grant")
    bad_client = requests.post(sandbox.auth_url, data={**form, "client_secret": "nope"})
    assert (bad_client.status_code, bad_client.json()["error"]) == (401, "invalid_client")
    other_users_client = requests.post(sandbox.auth_url, data={**form, "client_id": ALICE.client_id,
                                                               "client_secret": ALICE.client_secret})
    assert other_users_client.status_code == 401  # a personal client works for its own account only
    as_json = requests.post(sandbox.auth_url, json=form)
    assert (as_json.status_code, as_json.json()["error"]) == (400, "invalid_request")

    refreshed = requests.post(sandbox.auth_url, data={"grant_type": "refresh_token", "client_id": "mdupload-demo",
                                                      "client_secret": "demo-secret",
                                                      "refresh_token": tokens["refresh_token"]})
    assert refreshed.status_code == 200
    check = requests.get(sandbox.api_url + "/auth/check",
                         headers={"Authorization": f"Bearer {refreshed.json()['access_token']}"}).json()
    assert check["isAuthenticated"] is True
    assert requests.get(sandbox.api_url + "/auth/check").json()["isAuthenticated"] is False
    forged = requests.post(sandbox.auth_url, data={"grant_type": "refresh_token", "client_id": "mdupload-demo",
                                                   "client_secret": "demo-secret",
                                                   "refresh_token": tokens["access_token"]})
    assert (forged.status_code, forged.json()["error"]) == (400, "invalid_grant")


def test_access_tokens_expire_and_refresh_brings_them_back():
    with start_sandbox(SandboxConfig(rate_limits=False, token_lifetime=0.3)) as sandbox:
        user = Api(sandbox)
        assert user.tokens["expires_in"] == 1
        assert user.call("GET", "/auth/check").json()["isAuthenticated"] is True
        time.sleep(0.5)
        expired = user.call("GET", "/upload")
        assert expired.status_code == 401 and errors_of(expired)[0]["title"] == "unauthorized_http_exception"
        refreshed = requests.post(sandbox.auth_url, data={
            "grant_type": "refresh_token", "client_id": "mdupload-demo", "client_secret": "demo-secret",
            "refresh_token": user.tokens["refresh_token"]}).json()
        user.http.headers["Authorization"] = f"Bearer {refreshed['access_token']}"
        assert user.call("GET", "/upload").status_code == 404  # authenticated again; no session open


def test_upload_calls_need_a_token(sandbox):
    answer = requests.get(sandbox.api_url + "/upload")
    assert answer.status_code == 401
    assert errors_of(answer)[0]["status"] == 401
    garbage = requests.get(sandbox.api_url + "/upload", headers={"Authorization": "Bearer not-a-token"})
    assert garbage.status_code == 401


def test_unknown_paths_answer_in_the_envelope_and_are_logged(sandbox):
    answer = requests.post(sandbox.api_url + "/uploads/begin", headers={"Authorization": "Bearer x"})
    assert answer.status_code == 404 and errors_of(answer)[0]["title"] == "not_found_http_exception"
    assert requests.put(sandbox.api_url + "/upload").status_code == 405
    logged = sandbox.state()["requests"][-2:]
    assert [(r["method"], r["path"], r["status"], r["authorization"]) for r in logged] == [
        ("POST", "/uploads/begin", 404, True), ("PUT", "/upload", 405, False)]


# --- sessions and files -----------------------------------------------------------------------------------------

def test_one_open_session_per_account(sandbox, api):
    session = api.begin()
    again = api.call("POST", "/upload/begin", json={"manga": DEMO_MANGA, "groups": []})
    assert again.status_code == 409 and session in errors_of(again)[0]["detail"]
    alice = Api(sandbox, ALICE)
    alices = alice.begin(groups=())
    assert alices != session  # another account has its own
    current = api.call("GET", "/upload").json()["data"]
    assert current["id"] == session and current["attributes"]["isCommitted"] is False
    kinds = [(r["type"], r["id"]) for r in current["relationships"]]
    assert ("manga", DEMO_MANGA) in kinds and ("scanlation_group", DEMO_GROUP) in kinds
    assert alice.call("DELETE", f"/upload/{session}").status_code == 404  # not hers
    assert api.call("DELETE", f"/upload/{session}").status_code == 200
    assert api.call("GET", "/upload").status_code == 404
    assert api.call("DELETE", f"/upload/{session}").status_code == 404  # already gone
    api.begin()
    alice.call("DELETE", f"/upload/{alices}")


def test_begin_checks_its_body(api):
    unknown_manga = api.call("POST", "/upload/begin", json={"manga": SECOND_GROUP, "groups": []})
    assert unknown_manga.status_code == 404
    eleven_groups = api.call("POST", "/upload/begin", json={"manga": DEMO_MANGA, "groups": [DEMO_GROUP] * 11})
    assert eleven_groups.status_code == 400
    extra = api.call("POST", "/upload/begin", json={"manga": DEMO_MANGA, "groups": [], "volume": "1"})
    assert extra.status_code == 400 and errors_of(extra)[0]["title"] == "validation_exception"
    assert api.call("GET", "/upload").status_code == 404


def test_a_batch_of_eleven_files_is_refused_whole(api):
    session = api.begin()
    answer = api.upload(session, [(f"{n}.png", image(colour=n)) for n in range(11)])
    assert answer.status_code == 400 and "10" in errors_of(answer)[0]["detail"]
    assert api.upload_ok(session, [(f"{n}.png", image(colour=n)) for n in range(10)])


def test_the_501st_file_of_a_session_is_refused(api):
    session = api.begin()
    page = image()
    for batch in range(50):
        assert len(api.upload_ok(session, [(f"{batch}-{n}.png", page) for n in range(10)])) == 10
    answer = api.upload(session, [("501.png", page)])
    assert answer.status_code == 200 and answer.json()["data"] == []
    assert "500" in errors_of(answer)[0]["detail"] and "501.png" in errors_of(answer)[0]["detail"]


def test_files_other_than_jpeg_png_gif_are_refused_one_by_one_inside_a_200(api):
    session = api.begin()
    webp = (CORPUS / "hopper.webp").read_bytes()
    answer = api.upload(session, [("1.png", image()), ("notes.txt", b"not an image"), ("2.jpg", image("JPEG")),
                                  ("3.webp", webp), ("4.gif", image("GIF"))])
    assert answer.status_code == 200
    details = [e["detail"] for e in errors_of(answer)]
    assert len(details) == 2 and "notes.txt" in details[0] and "3.webp" in details[1] and "WEBP" in details[1]
    stored = answer.json()["data"]
    assert [f["attributes"]["originalFileName"] for f in stored] == ["1.png", "2.jpg", "4.gif"]
    assert [f["attributes"]["mimeType"] for f in stored] == ["image/png", "image/jpeg", "image/gif"]
    # the format comes from the bytes, as on MangaDex: a PNG sent as image/jpeg and named .jpg is a PNG
    lying = api.upload(session, [("5.jpg", image())], mime="image/jpeg")
    assert [f["attributes"]["mimeType"] for f in lying.json()["data"]] == ["image/png"]


def test_oversize_files_and_sides_over_10000_px_are_refused(api):
    session = api.begin()
    too_heavy = image(padding=20 * 1024 * 1024)
    answer = api.upload(session, [("heavy.png", too_heavy), ("long.png", image(size=(1, 10_001))),
                                  ("wide.gif", image("GIF", size=(10_001, 1))), ("edge.png", image(size=(10_000, 1)))])
    assert answer.status_code == 200
    details = [e["detail"] for e in errors_of(answer)]
    assert ["heavy.png" in details[0], "long.png" in details[1], "wide.gif" in details[2]] == [True] * 3
    assert [f["attributes"]["originalFileName"] for f in answer.json()["data"]] == ["edge.png"]


def test_a_session_holds_at_most_150_mb(api):
    session = api.begin()
    big = 20 * 1024 * 1024 - 1024
    for n in range(7):  # 7 x (20 MB - 1 KB): under 140 MB
        api.upload_ok(session, [(f"{n}.png", image(colour=n, padding=big - len(image(colour=n))))])
    answer = api.upload(session, [("fits.png", image(padding=9 * 1024 * 1024)),
                                  ("over.png", image(colour=9, padding=2 * 1024 * 1024))])
    assert [f["attributes"]["originalFileName"] for f in answer.json()["data"]] == ["fits.png"]
    assert "over.png" in errors_of(answer)[0]["detail"]


def test_file_hash_is_the_sha256_and_includes_expands_attributes(api):
    session = api.begin()
    data = image("JPEG", size=(30, 20))
    (file_id,) = api.upload_ok(session, [("page.jpg", data)])
    plain = api.call("GET", "/upload").json()["data"]["relationships"]
    assert {"id": file_id, "type": "upload_session_file"} in plain
    expanded = api.call("GET", "/upload", params={"includes[]": "upload_session_file"}).json()["data"]
    (described,) = [r for r in expanded["relationships"] if r["type"] == "upload_session_file"]
    assert described["attributes"] == {"originalFileName": "page.jpg", "fileHash": hashlib.sha256(data).hexdigest(),
                                       "fileSize": len(data), "mimeType": "image/jpeg", "source": "local",
                                       "version": 1}


def test_deleting_files_one_by_one_and_in_batches(api):
    session = api.begin()
    ids = api.upload_ok(session, [(f"{n}.png", image(colour=n)) for n in range(4)])
    assert api.call("DELETE", f"/upload/{session}/{ids[0]}").status_code == 200
    assert api.call("DELETE", f"/upload/{session}/{ids[0]}").status_code == 404
    unknown = api.call("DELETE", f"/upload/{session}/batch", json=[ids[1], ids[0]])
    assert unknown.status_code == 404  # one unknown id: nothing is deleted
    assert api.call("DELETE", f"/upload/{session}/batch", json=ids[1:3]).status_code == 200
    left = [r["id"] for r in api.call("GET", "/upload").json()["data"]["relationships"]
            if r["type"] == "upload_session_file"]
    assert left == [ids[3]]


# --- commit -----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("change, expected", [
    (lambda body: body.pop("termsAccepted"), "termsAccepted"),
    (lambda body: body.update(termsAccepted=False), "termsAccepted"),
    (lambda body: body["chapterDraft"].update(chapter="01"), "/chapterDraft/chapter"),
    (lambda body: body["chapterDraft"].update(volume="123456789"), "/chapterDraft/volume"),
    (lambda body: body["chapterDraft"].update(extra="x"), "extra"),
    (lambda body: body["chapterDraft"].pop("title"), "title"),
    (lambda body: body["chapterDraft"].update(translatedLanguage="EN"), "/chapterDraft/translatedLanguage"),
    (lambda body: body["chapterDraft"].update(publishAt="2026-12-01 00:00:00"), "/chapterDraft/publishAt"),
    (lambda body: body.update(pageOrder=[]), "/pageOrder"),
], ids=["no-terms", "terms-false", "chapter-01", "volume-too-long", "extra-key", "no-title", "language",
        "publish-at", "empty-order"])
def test_commit_refuses_what_mangadex_refuses(api, change, expected):
    session = api.begin()
    ids = api.upload_ok(session, [("1.png", image())])
    body = {"chapterDraft": {"volume": "1", "chapter": "1", "title": None, "translatedLanguage": "en"},
            "pageOrder": ids, "termsAccepted": True}
    change(body)
    answer = api.call("POST", f"/upload/{session}/commit", json=body)
    assert answer.status_code == 400
    assert expected in " ".join(e["detail"] for e in errors_of(answer))
    assert api.call("GET", "/upload").json()["data"]["id"] == session  # still open


def test_commit_keeps_page_order_deletes_left_out_files_and_creates_the_chapter(sandbox, api):
    session = api.begin()
    pages = {name: image(colour=n) for n, name in enumerate(["a.png", "b.png", "c.png"])}
    ids = dict(zip(pages, api.upload_ok(session, list(pages.items()))))
    answer = api.commit(session, [ids["c.png"], ids["a.png"]], chapter="10a", volume="0", title="Read Online")
    assert answer.status_code == 200
    chapter = answer.json()["data"]
    assert chapter["type"] == "chapter" and chapter["attributes"]["chapter"] == "10a"
    assert chapter["attributes"]["pages"] == 2 and chapter["attributes"]["version"] == 1
    assert api.call("GET", "/upload").status_code == 404
    assert api.call("POST", f"/upload/{session}", files=[("f", ("x.png", image(), "image/png"))]).status_code == 400
    (recorded,) = [c for c in sandbox.state()["chapters"] if c["id"] == chapter["id"]]
    assert [(p["originalFileName"], p["fileSize"], p["fileHash"]) for p in recorded["pages"]] == [
        (name, len(pages[name]), hashlib.sha256(pages[name]).hexdigest()) for name in ("c.png", "a.png")]
    assert not (sandbox.state_dir / "blobs" / hashlib.sha256(pages["b.png"]).hexdigest()).exists()
    assert api.call("GET", f"/chapter/{chapter['id']}").json()["data"]["attributes"]["title"] == "Read Online"


def test_commit_refuses_files_of_other_sessions_and_duplicates(api):
    session = api.begin()
    ids = api.upload_ok(session, [("1.png", image())])
    assert api.commit(session, ids * 2).status_code == 400
    assert api.commit(session, ["00000000-0000-4000-8000-000000000000"]).status_code == 400
    assert api.commit(session, ids, externalUrl="https://example.org/c1").status_code == 403


def test_edit_session_starts_from_the_current_version_only(sandbox, api):
    chapter_id = api.publish(chapter="7", pages=3)
    stale = api.call("POST", f"/upload/begin/{chapter_id}", json={"version": 2})
    assert stale.status_code == 409
    (problem,) = errors_of(stale)
    assert problem["title"] == "optimistic_lock_exception" and "version 1" in problem["detail"]

    edit = api.call("POST", f"/upload/begin/{chapter_id}", json={"version": 1})
    assert edit.status_code == 200
    session = edit.json()["data"]["id"]
    assert {"id": chapter_id, "type": "chapter"} in edit.json()["data"]["relationships"]
    listed = api.call("GET", "/upload", params={"includes[]": "upload_session_file"}).json()["data"]
    remote = [r for r in listed["relationships"] if r["type"] == "upload_session_file"]
    assert [(r["attributes"]["originalFileName"], r["attributes"]["source"]) for r in remote] == [
        ("1.png", "remote"), ("2.png", "remote"), ("3.png", "remote")]
    (added,) = api.upload_ok(session, [("new.png", image(colour=99))])
    committed = api.commit(session, [added, remote[0]["id"]], chapter="7", title="Fixed")
    assert committed.status_code == 200
    data = committed.json()["data"]
    assert data["id"] == chapter_id and data["attributes"]["version"] == 2
    (recorded,) = [c for c in sandbox.state()["chapters"] if c["id"] == chapter_id]
    assert [p["originalFileName"] for p in recorded["pages"]] == ["new.png", "1.png"]
    assert api.call("POST", f"/upload/begin/{chapter_id}", json={"version": 1}).status_code == 409
    alice = Api(sandbox, ALICE)
    assert alice.call("POST", f"/upload/begin/{chapter_id}", json={"version": 2}).status_code == 401


def test_check_approval_required_follows_the_configured_rules():
    rules = (f"{DEMO_MANGA}:pt-br", "*:ja")
    with start_sandbox(SandboxConfig(rate_limits=False, approval_required=rules, processing_delay=0)) as sandbox:
        user = Api(sandbox)

        def needs(manga, locale):
            answer = user.call("POST", "/upload/check-approval-required", json={"manga": manga, "locale": locale})
            return answer.status_code, answer.json().get("requiresApproval")

        assert needs(DEMO_MANGA, "pt-br") == (200, True)
        assert needs(DEMO_MANGA, "en") == (200, False)
        assert needs(ADULT_MANGA, "ja") == (200, True)
        assert needs(SECOND_GROUP, "en")[0] == 404
        pending = user.publish(language="pt-br")
        shown = user.publish(language="en")
        listed = [c["id"] for c in user.call("GET", "/chapter", params={"manga": DEMO_MANGA}).json()["data"]]
        assert listed == [shown]  # waiting for staff: out of the lists, though it exists
        assert user.call("GET", f"/chapter/{pending}").status_code == 200


# --- reading chapters -------------------------------------------------------------------------------------------

def test_chapter_list_filters_like_mangadex():
    with start_sandbox(SandboxConfig(rate_limits=False, processing_delay=0)) as sandbox:
        user = Api(sandbox)
        later = datetime.now(UTC) + timedelta(days=3)
        ids = {
            "plain": user.publish(chapter="5"),
            "five-point-oh": user.publish(chapter="5.0"),
            "other-group": user.publish(chapter="5", groups=(SECOND_GROUP,)),
            "spanish": user.publish(chapter="5", language="es-la"),
            "scheduled": user.publish(chapter="5", publishAt=later.strftime("%Y-%m-%dT%H:%M:%S")),
            "adult": user.publish(chapter="5", manga=ADULT_MANGA),
            "unavailable": sandbox.add_chapter(manga=DEMO_MANGA, chapter="5", unavailable=True),
            "external": sandbox.add_chapter(manga=DEMO_MANGA, chapter="5", external_url="https://example.org/5"),
        }
        names = {v: k for k, v in ids.items()}

        def found(**params):
            answer = user.call("GET", "/chapter", params=params)
            assert answer.status_code == 200, answer.text
            return sorted(names[c["id"]] for c in answer.json()["data"])

        assert found(chapter="5", manga=DEMO_MANGA) == ["external", "other-group", "plain", "spanish"]
        assert found(chapter="5", **{"translatedLanguage[]": "en", "groups[]": DEMO_GROUP}) == ["external", "plain"]
        assert found(chapter="5.0") == ["five-point-oh"]
        assert found(chapter="5", includeFuturePublishAt=1) == ["scheduled"]  # a filter, not a widening
        assert found(chapter="5", includeFuturePublishAt=0, manga=DEMO_MANGA) == found(chapter="5", manga=DEMO_MANGA)
        assert "unavailable" in found(chapter="5", includeUnavailable=1)
        assert "adult" in found(chapter="5", **{"contentRating[]": ["safe", "pornographic"]})
        assert found(chapter="5", includeExternalUrl=1) == ["external"]
        assert "external" not in found(chapter="5", includeExternalUrl=0)
        assert found(chapter="5", includeEmptyPages=1) == ["external"]
        everything = user.call("GET", "/chapter", params={"limit": 2, "offset": 1}).json()
        assert (everything["total"], everything["limit"], everything["offset"], len(everything["data"])) == (5, 2, 1, 2)
        assert user.call("GET", "/chapter", params={"limit": 101}).status_code == 400
        assert user.call("GET", "/chapter", params={"manga": "not-a-uuid"}).status_code == 400
        assert user.call("GET", "/chapter", params={"includeFuturePublishAt": "yes"}).status_code == 400
        one = user.call("GET", f"/chapter/{ids['plain']}", params={"includes[]": ["manga", "scanlation_group"]})
        related = {r["type"]: r for r in one.json()["data"]["relationships"]}
        assert related["manga"]["attributes"]["contentRating"] == "safe"
        assert related["scanlation_group"]["attributes"]["name"]
        assert user.call("GET", f"/chapter/{SECOND_GROUP}").status_code == 404


def test_athome_serves_the_committed_bytes_from_its_own_host_and_records_reports(sandbox, api):
    session = api.begin()
    first, second = image(colour=1), image("GIF", colour=2)
    ids = api.upload_ok(session, [("p1.png", first), ("p2.gif", second)])
    chapter = api.commit(session, ids).json()["data"]["id"]
    served = requests.get(f"{sandbox.api_url}/at-home/server/{chapter}").json()
    assert served["result"] == "ok" and served["baseUrl"].startswith(sandbox.athome_base)
    assert not served["baseUrl"].startswith(sandbox.api_url)
    base, digest = served["baseUrl"], served["chapter"]["hash"]
    got = [requests.get(f"{base}/data/{digest}/{name}") for name in served["chapter"]["data"]]
    assert [g.content for g in got] == [first, second]
    assert [g.headers["Content-Type"] for g in got] == ["image/png", "image/gif"]
    assert got[0].headers["X-Cache"] == "MISS"
    assert requests.get(f"{base}/data/{digest}/{served['chapter']['data'][0]}").headers["X-Cache"] == "HIT"
    with_auth = requests.get(f"{base}/data/{digest}/{served['chapter']['data'][0]}",
                             headers={"Authorization": "Bearer leaked"})
    assert with_auth.status_code == 403  # MangaDex@Home refuses image requests that carry a token
    log = [r for r in sandbox.state()["requests"] if r["host"] == sandbox.athome_base.split("//")[1]]
    assert [r["authorization"] for r in log[-4:]] == [False, False, False, True]  # the log tells who sent one

    report = {"url": f"{base}/data/{digest}/x", "success": True, "cached": False, "bytes": len(first), "duration": 12}
    assert requests.post(sandbox.report_url, json=report).status_code == 200
    assert requests.post(sandbox.report_url, json={"url": "x"}).status_code == 400
    recorded = sandbox.state()["reports"][-1]
    assert {k: recorded[k] for k in report} == report and recorded["authorization"] is False
    assert requests.get(f"{sandbox.api_url}/at-home/server/{SECOND_GROUP}").status_code == 404


def test_unprocessed_chapters_are_listed_nowhere_and_athome_urls_expire():
    with start_sandbox(SandboxConfig(rate_limits=False, processing_delay=3600, athome_url_ttl=0.3)) as sandbox:
        user = Api(sandbox)
        chapter = user.publish(pages=2)
        assert user.call("GET", "/chapter", params={"manga": DEMO_MANGA}).json()["data"] == []
        assert user.call("GET", f"/chapter/{chapter}").json()["data"]["attributes"]["pages"] == 0
        served = requests.get(f"{sandbox.api_url}/at-home/server/{chapter}").json()
        assert served["chapter"]["data"] == [] and served["chapter"]["dataSaver"] == []
        (page,) = [c for c in sandbox.state()["chapters"] if c["id"] == chapter][0]["pages"][:1]
        assert requests.get(f"{served['baseUrl']}/data/{served['chapter']['hash']}/{page['name']}").status_code == 404
        time.sleep(0.5)
        late = requests.get(f"{served['baseUrl']}/data/{served['chapter']['hash']}/{page['name']}")
        assert late.status_code == 403
