"""The MangaDex token goes to the configured API and token hosts only, whatever an answer or a redirect says.

Proved with the sandbox's request log, which records for every request the host it reached and
whether it carried an Authorization header. "Another host" is a second sandbox on another loopback
port (or the same server under another name: `localhost` instead of `127.0.0.1`), so its log shows
what reached it.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from mdupload.errors import AuthError
from mdupload.mangadex import ApiError, Credentials, MangaDexClient
from mdupload.sandbox import DEMO_MANGA, SandboxConfig, start_sandbox
from mdupload.sandbox.core import REDIRECT_PATH
from tests.e2e import cli_env, copy_example, run_cli

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def elsewhere():
    """Another host: a second sandbox on its own loopback ports; it only ever receives what leaks."""
    with start_sandbox(SandboxConfig(rate_limits=False, processing_delay=0)) as running:
        yield running


@pytest.fixture(scope="module")
def api(elsewhere):
    """The configured API, whose MangaDex@Home answers point at the other host (a hostile node)."""
    with start_sandbox(SandboxConfig(rate_limits=False, processing_delay=0, athome_base_url=elsewhere.api_url + "/hostile-node")) as running:
        yield running


def client_of(sandbox, token_url=None) -> MangaDexClient:
    return MangaDexClient(api_url=sandbox.api_url, auth_url=token_url or sandbox.auth_url,
                          credentials=Credentials.from_env(sandbox.env), rate_limiter=None, retries=0)


def signed_in(sandbox) -> MangaDexClient:
    """A client that holds a token already (the token request is on the API host too, before the mark)."""
    client = client_of(sandbox)
    client.tokens.login()
    return client


def log_of(sandbox, since: int = 0) -> list[dict]:
    return sandbox.state()["requests"][since:]


def mark(sandbox) -> int:
    return len(log_of(sandbox))


def redirect(to: str, status: int = 302) -> list[tuple[str, str]]:
    return [("to", to), ("status", str(status))]


def test_a_hostile_athome_base_url_on_another_port_gets_no_token(api, elsewhere):
    client = client_of(api)
    assert client.auth_check()["isAuthenticated"] is True  # the client holds a token it could leak
    chapter = api.add_chapter(manga=DEMO_MANGA, chapter="1")
    start_api, start_elsewhere = mark(api), mark(elsewhere)
    server = client.at_home_server(chapter)
    assert server["baseUrl"].startswith(elsewhere.api_url)  # the answer names another host
    for quality in ("data", "data-saver"):
        client.session.get(f"{server['baseUrl']}/{quality}/{server['chapter']['hash']}/1.png", timeout=10)
    client.session.post(api.report_url, json={"url": server["baseUrl"], "success": False, "cached": False,
                                              "bytes": 0, "duration": 1}, timeout=10)
    leaked = log_of(elsewhere, start_elsewhere)
    assert [(r["method"], r["path"].split("/")[-3], r["authorization"]) for r in leaked] == [
        ("GET", "data", False), ("GET", "data-saver", False)]
    asked = log_of(api, start_api)
    assert [(r["path"].startswith("/at-home/server/"), r["authorization"]) for r in asked if r["method"] == "GET"] == [
        (True, False)]  # at-home/server itself is asked without the token, as MangaDex documents
    assert api.state()["reports"][-1]["authorization"] is False  # the report endpoint is another host too


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_from_the_api_to_another_host_drops_the_token(api, elsewhere, status):
    client = signed_in(api)
    start_api, start_elsewhere = mark(api), mark(elsewhere)
    with pytest.raises(ApiError):  # the other host answers 401: it got no token
        client.transport.api("GET", REDIRECT_PATH, params=redirect(elsewhere.api_url + "/upload", status))
    assert [(r["path"], r["authorization"]) for r in log_of(api, start_api)
            if r["path"] == REDIRECT_PATH] == [(REDIRECT_PATH, True)]
    assert [(r["path"], r["authorization"]) for r in log_of(elsewhere, start_elsewhere)] == [
        ("/upload", False)]


def test_a_redirect_to_the_same_server_under_another_name_drops_the_token(api):
    """The token is bound to the origin as configured (scheme, host name, port), not to an address."""
    client = signed_in(api)
    port = urlsplit(api.api_url).port
    start = mark(api)
    client.transport.api("GET", REDIRECT_PATH, params=redirect(f"http://localhost:{port}/auth/check"))
    assert [(r["host"].split(":")[0], r["path"], r["authorization"]) for r in log_of(api, start)] == [
        ("127.0.0.1", REDIRECT_PATH, True), ("localhost", "/auth/check", False)]


def test_a_redirect_within_the_api_keeps_the_token(api):
    client = signed_in(api)
    start = mark(api)
    answer = client.transport.api("GET", REDIRECT_PATH, params=redirect(api.api_url + "/auth/check", 307))
    assert answer.data["isAuthenticated"] is True
    assert [(r["path"], r["authorization"]) for r in log_of(api, start)] == [
        (REDIRECT_PATH, True), ("/auth/check", True)]


def test_a_redirect_that_bounces_back_to_the_api_does_not_regain_the_token(api, elsewhere):
    client = signed_in(api)
    start_api, start_elsewhere = mark(api), mark(elsewhere)
    back = f"{elsewhere.api_url}{REDIRECT_PATH}?to={api.api_url}/auth/check&status=302"
    answer = client.transport.api("GET", REDIRECT_PATH, params=redirect(back))
    assert answer.data["isAuthenticated"] is False
    assert [(r["path"], r["authorization"]) for r in log_of(api, start_api)] == [
        (REDIRECT_PATH, True), ("/auth/check", False)]
    assert [r["authorization"] for r in log_of(elsewhere, start_elsewhere)] == [False]


def test_a_post_answered_with_a_redirect_is_not_followed(api, elsewhere):
    """Neither the token nor the body of a POST is sent on to where a redirect points."""
    client = signed_in(api)
    start_elsewhere = mark(elsewhere)
    with pytest.raises(ApiError):
        client.transport.api("POST", REDIRECT_PATH, params=redirect(elsewhere.api_url + "/upload/begin", 307),
                             json={"manga": DEMO_MANGA, "groups": []})
    assert log_of(elsewhere, start_elsewhere) == []


def test_the_password_is_not_posted_on_where_a_redirect_from_the_token_url_points(api, elsewhere):
    token_url = f"{api.api_url}{REDIRECT_PATH}?to={elsewhere.auth_url}&status=307"
    client = client_of(api, token_url)
    start_elsewhere = mark(elsewhere)
    with pytest.raises(AuthError, match="HTTP 307"):
        client.auth_check()
    assert log_of(elsewhere, start_elsewhere) == []


def test_every_command_sends_the_token_to_the_api_host_only(api, elsewhere, tmp_path):
    """An upload and the read-back commands through the real CLI, the at-home base URL pointing at the
    other host: the logs of both hosts show where a token went."""
    manifest = copy_example(tmp_path / "series")
    start_api, start_elsewhere = mark(api), mark(elsewhere)
    env = cli_env(api, tmp_path / "ledger.sqlite")
    upload = run_cli(["-v", "upload", str(manifest), "--accept-terms", "--json"], env)
    assert upload.code == 0, upload.stderr
    chapter = upload.json["chapters"][0]["chapter_id"]
    for args in (["sessions"], ["verify", str(manifest), "--download"], ["pull", chapter, str(tmp_path / "pulled")]):
        run = run_cli(args, env)
        assert run.code == (0 if args == ["sessions"] else 1), run.stderr  # the hostile node serves no page
        assert "Traceback" not in run.stderr
    requests = log_of(api, start_api)
    api_host = urlsplit(api.api_url).netloc
    assert {r["host"] for r in requests if r["authorization"]} == {api_host}
    assert sum(r["authorization"] for r in requests) > 10
    assert not any(r["authorization"] for r in requests if r["path"].startswith("/at-home/"))
    reached = log_of(elsewhere, start_elsewhere)
    assert any(r["path"].startswith("/hostile-node/") for r in reached)  # the commands did follow the base URL
    assert [r for r in reached if r["authorization"]] == []
    assert not any(report["authorization"] for report in api.state()["reports"])
