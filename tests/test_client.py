"""The MangaDex client against mocked HTTP (responses): requests, answers, retries, errors."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
import responses
from requests_toolbelt.multipart.decoder import MultipartDecoder
from urllib3.exceptions import MaxRetryError, NewConnectionError

from mdupload.deadlines import Timeouts
from mdupload.errors import UsageError
from mdupload.mangadex import (
    ApiError,
    CaptchaRequired,
    Conflict,
    Credentials,
    MangaDexClient,
    NetworkError,
    OutcomeUnknown,
    RateLimited,
    ServerError,
    UploadFile,
    resolve_hosts,
)
from mdupload.mangadex.http import USER_AGENT

API = "https://api.mangadex.org"
AUTH = "https://auth.mangadex.org/realms/mangadex/protocol/openid-connect/token"
NOW = 1_750_000_000.0
SESSION = "11111111-1111-4111-8111-111111111111"
MANGA = "f9c33607-9180-4ba6-b85c-e4b5faee7192"
GROUP = "145f9110-0a6c-4b71-8737-6acb1a3c5da4"
CHAPTER = "22222222-2222-4222-8222-222222222222"
ACCESS = "access-token-0123456789"


def file_doc(file_id: str, name: str, size: int = 10, source: str = "local") -> dict:
    return {"id": file_id, "type": "upload_session_file",
            "attributes": {"originalFileName": name, "fileHash": "ab" * 32, "fileSize": size,
                           "mimeType": "image/png", "source": source, "version": 1}}


def session_doc(files=(), chapter: str | None = None) -> dict:
    relationships = [{"id": "33333333-3333-4333-8333-333333333333", "type": "user"},
                     {"id": MANGA, "type": "manga"}, {"id": GROUP, "type": "scanlation_group"}, *files]
    if chapter:
        relationships.append({"id": chapter, "type": "chapter"})
    return {"result": "ok", "response": "entity",
            "data": {"id": SESSION, "type": "upload_session",
                     "attributes": {"isCommitted": False, "isProcessed": False, "isDeleted": False, "version": 1,
                                    "createdAt": "2025-06-01T10:00:00+00:00", "updatedAt": "2025-06-01T10:05:00+00:00"},
                     "relationships": relationships}}


def chapter_doc(chapter_id: str = CHAPTER, number: str | None = "1", publish_at: str = "2025-06-01T10:10:00+00:00"):
    return {"id": chapter_id, "type": "chapter",
            "attributes": {"title": None, "volume": "1", "chapter": number, "pages": 3, "translatedLanguage": "en",
                           "version": 1, "publishAt": publish_at},
            "relationships": [{"id": MANGA, "type": "manga"}, {"id": GROUP, "type": "scanlation_group"}]}


def error_doc(status: int, title: str, detail: str) -> dict:
    return {"result": "error", "errors": [{"id": "e1", "status": status, "title": title, "detail": detail,
                                           "context": None}]}


def connection_refused() -> requests.ConnectionError:
    return requests.ConnectionError(MaxRetryError(None, "/", NewConnectionError(None, "Connection refused")))


@pytest.fixture
def http():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.post(AUTH, json={"access_token": ACCESS, "expires_in": 900, "refresh_token": "refresh-token-0123456789",
                              "refresh_expires_in": 2_592_000, "token_type": "Bearer"})
        yield mock


@pytest.fixture
def sleeps():
    return []


@pytest.fixture
def client(sleeps):
    return MangaDexClient(api_url=API, auth_url=AUTH,
                          credentials=Credentials("demo", "password-123", "client-id", "client-secret-123"),
                          rate_limiter=None, sleep=sleeps.append, clock=lambda: NOW,
                          timeouts=Timeouts(connect_s=3.0, idle_s=40.0))


def api_calls(http, path: str | None = None, method: str | None = None):
    return [c for c in http.calls if c.request.url.startswith(API)
            and (path is None or urlsplit(c.request.url).path == path)
            and (method is None or c.request.method == method)]


# --- requests as sent --------------------------------------------------------------------------

def test_every_request_has_the_user_agent_timeouts_and_no_via(http, client):
    http.get(f"{API}/auth/check", json={"result": "ok", "isAuthenticated": True, "roles": [], "permissions": []})
    assert client.auth_check()["isAuthenticated"] is True
    for call in http.calls:  # the token request and the API request
        assert call.request.headers["User-Agent"] == USER_AGENT
        assert "Via" not in call.request.headers
        assert call.request.req_kwargs["timeout"] == (3.0, 40.0)
    assert api_calls(http)[0].request.headers["Authorization"] == f"Bearer {ACCESS}"


def test_begin_session_sends_manga_and_groups_and_parses_the_session(http, client):
    http.post(f"{API}/upload/begin", json=session_doc())
    session = client.begin_session(MANGA, [GROUP])
    assert json.loads(api_calls(http)[0].request.body) == {"manga": MANGA, "groups": [GROUP]}
    assert session.id == SESSION and session.manga_id == MANGA and session.group_ids == (GROUP,)
    assert session.files == () and session.chapter_id is None
    assert session.updated_at == datetime(2025, 6, 1, 10, 5, tzinfo=UTC)


def test_get_open_session_asks_for_the_files_and_reads_them_from_relationships(http, client):
    http.get(f"{API}/upload", json=session_doc([file_doc("f1", "001.png", 1234), file_doc("f2", "002.png")]))
    session = client.get_open_session()
    assert dict(parse_qsl(urlsplit(api_calls(http)[0].request.url).query)) == {"includes[]": "upload_session_file"}
    assert [(f.id, f.original_file_name, f.file_size) for f in session.files] == [("f1", "001.png", 1234),
                                                                                ("f2", "002.png", 10)]


def test_no_open_session_is_none(http, client):
    http.get(f"{API}/upload", status=404, json=error_doc(404, "not_found_http_exception", "no session"))
    assert client.get_open_session() is None


def test_edit_session_without_file_attributes_is_read_back_with_them(http, client):
    bare = {"id": "f9", "type": "upload_session_file"}
    http.post(f"{API}/upload/begin/{CHAPTER}", json=session_doc([bare], chapter=CHAPTER))
    http.get(f"{API}/upload", json=session_doc([file_doc("f9", "x1.png", source="remote")], chapter=CHAPTER))
    session = client.begin_edit_session(CHAPTER, 3)
    assert json.loads(api_calls(http, f"/upload/begin/{CHAPTER}")[0].request.body) == {"version": 3}
    assert session.chapter_id == CHAPTER and session.files[0].source == "remote"


def test_stale_chapter_version_is_a_conflict_with_the_detail(http, client):
    http.post(f"{API}/upload/begin/{CHAPTER}", status=409,
              json=error_doc(409, "optimistic_lock_exception", "the current version is 4"))
    with pytest.raises(Conflict) as caught:
        client.begin_edit_session(CHAPTER, 3)
    assert caught.value.title == "optimistic_lock_exception" and "current version is 4" in str(caught.value)


def test_commit_sends_draft_order_and_terms_and_returns_the_chapter(http, client):
    http.post(f"{API}/upload/{SESSION}/commit", json={"result": "ok", "response": "entity", "data": chapter_doc()})
    draft = {"volume": "1", "chapter": "1", "title": None, "translatedLanguage": "en"}
    chapter = client.commit(SESSION, draft, ["f2", "f1"])
    assert json.loads(api_calls(http)[0].request.body) == {"chapterDraft": draft, "pageOrder": ["f2", "f1"],
                                                            "termsAccepted": True}
    assert (chapter.id, chapter.manga_id, chapter.group_ids, chapter.pages) == (CHAPTER, MANGA, (GROUP,), 3)


def test_delete_files_sends_the_ids_and_abandoning_a_gone_session_is_fine(http, client):
    http.delete(f"{API}/upload/{SESSION}/batch", json={"result": "ok"})
    http.delete(f"{API}/upload/{SESSION}", status=404, json=error_doc(404, "not_found_http_exception", "gone"))
    client.delete_files(SESSION, ["f1", "f2"])
    client.abandon_session(SESSION)
    assert json.loads(api_calls(http, f"/upload/{SESSION}/batch")[0].request.body) == ["f1", "f2"]


def test_approval_check(http, client):
    http.post(f"{API}/upload/check-approval-required", json={"result": "ok", "requiresApproval": True})
    assert client.check_approval_required(MANGA, "pt-br") is True
    assert json.loads(api_calls(http)[0].request.body) == {"manga": MANGA, "locale": "pt-br"}


def test_find_chapters_asks_twice_with_every_rating_and_merges_by_id(http, client):
    scheduled = chapter_doc("44444444-4444-4444-8444-444444444444", publish_at="2030-01-01T00:00:00+00:00")
    http.get(f"{API}/chapter", match=[responses.matchers.query_param_matcher({"includeFuturePublishAt": "1"},
                                                                            strict_match=False)],
             json={"result": "ok", "data": [chapter_doc(), scheduled], "total": 2})
    http.get(f"{API}/chapter", json={"result": "ok", "data": [chapter_doc()], "total": 1})
    found = client.find_chapters(MANGA, "1", "en", [GROUP])
    assert [c.id for c in found] == [CHAPTER, scheduled["id"]]
    first, second = (parse_qsl(urlsplit(c.request.url).query) for c in api_calls(http, "/chapter"))
    for query in (first, second):
        assert {("manga", MANGA), ("chapter", "1"), ("translatedLanguage[]", "en"), ("groups[]", GROUP),
                ("includeUnavailable", "1"), ("limit", "100")} <= set(query)
        assert sorted(v for k, v in query if k == "contentRating[]") == ["erotica", "pornographic", "safe",
                                                                         "suggestive"]
    assert ("includeFuturePublishAt", "1") not in first and ("includeFuturePublishAt", "1") in second


def test_at_home_server_is_asked_without_the_token(http, client):
    http.get(f"{API}/auth/check", json={"result": "ok", "isAuthenticated": True})
    http.get(f"{API}/at-home/server/{CHAPTER}",
             json={"result": "ok", "baseUrl": "https://x.mangadex.network", "chapter": {"hash": "h", "data": []}})
    client.auth_check()  # a token exists now
    assert client.at_home_server(CHAPTER)["baseUrl"] == "https://x.mangadex.network"
    assert "Authorization" not in api_calls(http, f"/at-home/server/{CHAPTER}")[0].request.headers


# --- uploading files ---------------------------------------------------------------------------

def test_upload_streams_parts_with_filenames_and_real_mime_types(http, client, tmp_path):
    (tmp_path / "a.png").write_bytes(b"\x89PNG" + b"a" * 5000)
    (tmp_path / "b.jpg").write_bytes(b"\xff\xd8" + b"b" * 3000)
    files = [UploadFile(tmp_path / "a.png", "001.png", "image/png"),
             UploadFile(tmp_path / "b.jpg", "002.jpg", "image/jpeg")]
    stored = [file_doc("f2", "002.jpg", 3002), file_doc("f1", "001.png", 5004)]
    http.post(f"{API}/upload/{SESSION}", json={"result": "ok", "errors": [], "data": stored})
    progress = []
    result = client.upload_files(SESSION, files, on_bytes=progress.append)
    request = api_calls(http)[0].request
    parts = MultipartDecoder(request.body, request.headers["Content-Type"]).parts
    dispositions = [p.headers[b"Content-Disposition"].decode() for p in parts]
    assert dispositions == ['form-data; name="file1"; filename="001.png"',
                            'form-data; name="file2"; filename="002.jpg"']
    assert [p.headers[b"Content-Type"] for p in parts] == [b"image/png", b"image/jpeg"]
    assert [p.content for p in parts] == [(tmp_path / "a.png").read_bytes(), (tmp_path / "b.jpg").read_bytes()]
    assert sum(progress) == 5004 + 3002
    assert sorted(f.original_file_name for f in result.files) == ["001.png", "002.jpg"]
    assert result.errors == [] and result.missing == []


def test_progress_is_not_counted_twice_when_a_batch_is_sent_again(http, client, tmp_path):
    (tmp_path / "a.png").write_bytes(b"a" * 7000)
    http.post(f"{API}/upload/{SESSION}", status=503, body="Service Unavailable")
    http.post(f"{API}/upload/{SESSION}", json={"result": "ok", "errors": [], "data": [file_doc("f1", "001.png")]})
    progress = []
    client.upload_files(SESSION, [UploadFile(tmp_path / "a.png", "001.png", "image/png")], on_bytes=progress.append)
    assert len(api_calls(http)) == 2 and sum(progress) == 7000


def test_a_200_with_per_file_errors_reports_the_missing_files(http, client, tmp_path):
    paths = []
    for name in ("001.png", "002.png", "003.png"):
        (tmp_path / name).write_bytes(b"x" * 10)
        paths.append(UploadFile(tmp_path / name, name, "image/png"))
    http.post(f"{API}/upload/{SESSION}", json={
        "result": "error", "errors": [{"id": "e", "status": 400, "title": "bad_request_http_exception",
                                       "detail": "002.png is not a valid image", "context": None}],
        "data": [file_doc("f1", "001.png"), file_doc("f3", "003.png")]})
    result = client.upload_files(SESSION, paths)
    assert result.missing == ["002.png"]
    assert [e.detail for e in result.errors] == ["002.png is not a valid image"]
    assert {f.original_file_name for f in result.files} == {"001.png", "003.png"}


def test_concurrent_batches_share_one_client(http, client, tmp_path):
    http.post(f"{API}/upload/{SESSION}", json={"result": "ok", "errors": [], "data": [file_doc("f", "p.png")]})
    (tmp_path / "p.png").write_bytes(b"x" * 10)
    results, errors = [], []

    def send():
        try:
            results.append(client.upload_files(SESSION, [UploadFile(tmp_path / "p.png", "p.png", "image/png")]))
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=send) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and len(results) == 8
    assert len([c for c in http.calls if c.request.url == AUTH]) == 1  # one sign-in for all threads


def test_a_vanished_page_file_is_a_page_error_not_a_traceback(client, tmp_path):
    from mdupload.errors import PageError

    with pytest.raises(PageError, match="gone.png"):
        client.upload_files(SESSION, [UploadFile(tmp_path / "gone.png", "gone.png", "image/png")])


# --- retries and lost answers ------------------------------------------------------------------

def test_429_waits_until_retry_after_then_retries(http, client, sleeps):
    http.get(f"{API}/upload", status=429, headers={"X-RateLimit-Retry-After": str(int(NOW) + 17)},
             json=error_doc(429, "rate_limited", "slow down"))
    http.get(f"{API}/upload", json=session_doc())
    assert client.get_open_session().id == SESSION
    assert sleeps == [17.0]


def test_with_the_rate_limiter_on_a_429_is_waited_out_once(http):
    class Clock:
        def __init__(self):
            self.now, self.slept = NOW, []

        def __call__(self):
            return self.now

        def sleep(self, seconds):
            self.slept.append(seconds)
            self.now += seconds

    clock = Clock()
    limited = MangaDexClient(api_url=API, auth_url=AUTH,
                             credentials=Credentials("demo", "password-123", "client-id", "client-secret-123"),
                             sleep=clock.sleep, clock=clock)
    http.get(f"{API}/upload", status=429, headers={"X-RateLimit-Retry-After": str(int(NOW) + 17)})
    http.get(f"{API}/upload", json=session_doc())
    assert limited.get_open_session().id == SESSION
    assert clock.slept == [17.0]


def test_429_without_header_waits_a_minute_and_a_post_is_retried(http, client, sleeps):
    http.post(f"{API}/upload/begin", status=429, json=error_doc(429, "rate_limited", "slow down"))
    http.post(f"{API}/upload/begin", json=session_doc())
    client.begin_session(MANGA, [])
    assert sleeps == [60.0] and len(api_calls(http)) == 2


def test_429_asking_for_a_long_wait_is_reported(http, client):
    http.get(f"{API}/upload", status=429, headers={"X-RateLimit-Retry-After": str(int(NOW) + 3600)})
    with pytest.raises(RateLimited, match="Wait until"):
        client.get_open_session()
    assert len(api_calls(http)) == 1


def test_5xx_on_a_get_is_retried_with_backoff(http, client, sleeps):
    http.get(f"{API}/upload", status=502, body="<html>Bad Gateway</html>")
    http.get(f"{API}/upload", status=500, json=error_doc(500, "internal", "oops"))
    http.get(f"{API}/upload", json=session_doc())
    assert client.get_open_session().id == SESSION
    assert sleeps == [1.0, 2.0]


def test_5xx_exhausted_is_a_server_error(http, client, sleeps):
    http.get(f"{API}/chapter/{CHAPTER}", status=500, json=error_doc(500, "internal_server_error", "oops"))
    with pytest.raises(ServerError, match="oops") as caught:
        client.get_chapter(CHAPTER)
    assert caught.value.status == 500 and len(api_calls(http)) == 4 and sleeps == [1.0, 2.0, 4.0]


HTML_503 = ("<html><head><title>503</title><style>body { color: red }</style></head><body><h1>503 Service "
            "Temporarily Unavailable</h1><p>The upstream &amp; its backup are down.</p>" + "<p>padding</p>" * 400
            + "</body></html>")


def test_an_html_error_page_is_quoted_without_markup_and_short(http, client, sleeps):
    http.get(f"{API}/chapter/{CHAPTER}", status=503, body=HTML_503)
    with pytest.raises(ServerError) as caught:
        client.get_chapter(CHAPTER)
    message = str(caught.value)
    assert "503 Service Temporarily Unavailable The upstream & its backup are down." in message
    assert "<" not in message and "color: red" not in message
    assert len(message) < 400


def test_a_post_answered_500_is_not_sent_again(http, client):
    http.post(f"{API}/upload/{SESSION}/commit", status=500, json=error_doc(500, "internal", "oops"))
    with pytest.raises(ServerError):
        client.commit(SESSION, {"volume": None, "chapter": "1", "title": None, "translatedLanguage": "en"}, ["f1"])
    assert len(api_calls(http)) == 1


def test_a_post_answered_503_is_retried(http, client):
    http.post(f"{API}/upload/begin", status=503, body="Service Unavailable")
    http.post(f"{API}/upload/begin", json=session_doc())
    assert client.begin_session(MANGA, [GROUP]).id == SESSION
    assert len(api_calls(http)) == 2


def test_post_read_timeout_is_outcome_unknown_and_not_sent_again(http, client):
    http.post(f"{API}/upload/{SESSION}/commit", body=requests.ReadTimeout("read timed out"))
    with pytest.raises(OutcomeUnknown, match="answer was lost"):
        client.commit(SESSION, {"volume": None, "chapter": "1", "title": None, "translatedLanguage": "en"}, ["f1"])
    assert len(api_calls(http)) == 1


def test_post_that_could_not_connect_is_sent_again(http, client):
    http.post(f"{API}/upload/begin", body=connection_refused())
    http.post(f"{API}/upload/begin", json=session_doc())
    assert client.begin_session(MANGA, []).id == SESSION
    assert len(api_calls(http)) == 2


def test_get_with_a_dropped_connection_is_retried(http, client):
    http.get(f"{API}/upload", body=requests.ConnectionError("Connection aborted: RemoteDisconnected"))
    http.get(f"{API}/upload", json=session_doc())
    assert client.get_open_session().id == SESSION


def test_unreachable_api_is_a_network_error(http, client):
    http.get(f"{API}/upload", body=connection_refused())
    with pytest.raises(NetworkError, match="Could not connect to api.mangadex.org"):
        client.get_open_session()
    assert len(api_calls(http)) == 4


def test_delete_whose_first_answer_was_lost_and_then_404s_is_done(http, client):
    http.delete(f"{API}/upload/{SESSION}/f1", body=requests.ReadTimeout("read timed out"))
    http.delete(f"{API}/upload/{SESSION}/f1", status=404, json=error_doc(404, "not_found_http_exception", "gone"))
    client.delete_file(SESSION, "f1")
    assert len(api_calls(http)) == 2


def test_other_4xx_are_not_retried(http, client):
    http.post(f"{API}/upload/begin", status=400, json=error_doc(400, "validation_exception", "manga is invalid"))
    with pytest.raises(ApiError, match="manga is invalid") as caught:
        client.begin_session(MANGA, [])
    assert caught.value.status == 400 and caught.value.title == "validation_exception"
    assert len(api_calls(http)) == 1


# --- unreadable answers ------------------------------------------------------------------------

def test_captcha_required_tells_the_user_what_to_do(http, client):
    http.post(f"{API}/upload/begin", status=403,
              json=error_doc(403, "captcha_required_exception", "Captcha required"))
    with pytest.raises(CaptchaRequired) as caught:
        client.begin_session(MANGA, [])
    assert "captcha" in str(caught.value) and "browser" in str(caught.value)
    assert len(api_calls(http)) == 1


@pytest.mark.parametrize("body", ["<html>maintenance</html>", '{"result": "ok", "data": {"id": '])
def test_an_answer_that_is_not_json_is_an_api_error(http, client, body):
    http.get(f"{API}/chapter/{CHAPTER}", body=body)
    with pytest.raises(ApiError, match="not JSON"):
        client.get_chapter(CHAPTER)


def test_an_answer_missing_keys_names_the_call(http, client):
    doc = session_doc()
    del doc["data"]["attributes"]["createdAt"]
    http.get(f"{API}/upload", json=doc)
    with pytest.raises(ApiError, match=r"GET /upload .*missing 'createdAt'"):
        client.get_open_session()


def test_an_enormous_answer_is_refused(http, client):
    client.transport.max_answer_bytes = 1000
    http.get(f"{API}/chapter/{CHAPTER}", json={"result": "ok", "data": chapter_doc(), "padding": "x" * 5000})
    with pytest.raises(ApiError, match="larger than"):
        client.get_chapter(CHAPTER)


def test_an_unreadable_answer_to_a_successful_commit_is_outcome_unknown(http, client):
    http.post(f"{API}/upload/{SESSION}/commit", body="not json at all")
    with pytest.raises(OutcomeUnknown):
        client.commit(SESSION, {"volume": None, "chapter": "1", "title": None, "translatedLanguage": "en"}, ["f1"])


# --- where the token goes ----------------------------------------------------------------------

def test_the_token_never_goes_to_another_host_through_the_same_session(http, client):
    http.get(f"{API}/auth/check", json={"result": "ok", "isAuthenticated": True})
    http.get("https://uploads.mangadex.org/data/hash/1.png", body=b"png")
    http.get("https://api.mangadex.org:8443/upload", body=b"{}")
    client.auth_check()
    client.session.get("https://uploads.mangadex.org/data/hash/1.png", timeout=5)
    client.session.get("https://api.mangadex.org:8443/upload", timeout=5)  # same host, another port
    assert [("Authorization" in c.request.headers) for c in http.calls[1:]] == [True, False, False]


def test_a_redirect_from_the_api_to_another_host_drops_the_token(http, client):
    http.get(f"{API}/chapter/{CHAPTER}", status=302, headers={"Location": "https://elsewhere.example/chapter"})
    http.get("https://elsewhere.example/chapter", json={"result": "ok", "data": chapter_doc()})
    client.get_chapter(CHAPTER)
    first, redirected = http.calls[1], http.calls[2]
    assert first.request.headers["Authorization"] == f"Bearer {ACCESS}"
    assert redirected.request.url == "https://elsewhere.example/chapter"
    assert "Authorization" not in redirected.request.headers


# --- hosts -------------------------------------------------------------------------------------

def test_hosts_default_to_production():
    hosts = resolve_hosts(environ={})
    assert (hosts.api_url, hosts.auth_url) == (API, AUTH)


def test_hosts_from_the_environment_and_an_origin_only_auth_url():
    hosts = resolve_hosts(environ={"MDUPLOAD_API_URL": "http://127.0.0.1:8080/",
                                   "MDUPLOAD_AUTH_URL": "http://127.0.0.1:8081"})
    assert hosts.api_url == "http://127.0.0.1:8080"
    assert hosts.auth_url == "http://127.0.0.1:8081/realms/mangadex/protocol/openid-connect/token"


def test_options_and_dev_win_over_the_environment():
    environ = {"MDUPLOAD_API_URL": "http://localhost:1", "MDUPLOAD_AUTH_URL": "http://localhost:2/token"}
    dev = resolve_hosts(dev=True, environ=environ)
    assert dev.api_url == "https://api.mangadex.dev"
    assert dev.auth_url == "https://auth.mangadex.dev/realms/mangadex/protocol/openid-connect/token"
    assert resolve_hosts(api_url="https://example.org/api", environ=environ).api_url == "https://example.org/api"
    assert resolve_hosts(environ=environ).auth_url == "http://localhost:2/token"


@pytest.mark.parametrize("url", ["api.mangadex.org", "ftp://api.mangadex.org", "http://api.mangadex.org"])
def test_bad_or_plain_http_hosts_are_usage_errors(url):
    with pytest.raises(UsageError, match="MDUPLOAD_API_URL"):
        resolve_hosts(environ={"MDUPLOAD_API_URL": url})


def test_every_retry_is_a_line_saying_what_failed_the_wait_and_the_attempt(http, client, sleeps, caplog):
    http.get(f"{API}/chapter/{CHAPTER}", status=503, body=HTML_503)
    http.get(f"{API}/chapter/{CHAPTER}", body=requests.ConnectionError("connection reset by peer"))
    http.get(f"{API}/chapter/{CHAPTER}", json={"result": "ok", "data": chapter_doc()})
    with caplog.at_level("WARNING", logger="mdupload"):
        client.get_chapter(CHAPTER)
    lines = [r.getMessage() for r in caplog.records if "trying again" in r.getMessage()]
    assert len(lines) == 2 and sleeps == [1.0, 2.0]
    assert lines[0].startswith(f"GET /chapter/{CHAPTER} failed (MangaDex failed on GET /chapter/")
    assert "503 Service Temporarily Unavailable" in lines[0] and "<" not in lines[0]
    assert lines[0].endswith("trying again in 1 s (attempt 2 of 4)")
    assert "ConnectionError" in lines[1] and lines[1].endswith("trying again in 2 s (attempt 3 of 4)")
