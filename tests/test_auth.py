"""OAuth tokens: the password grant, refreshes, fallbacks, 401s, and credentials from the environment."""

from __future__ import annotations

import threading
from urllib.parse import parse_qs

import pytest
import responses

from mdupload.errors import EXIT_AUTH, AuthError
from mdupload.mangadex import ApiError, Credentials, MangaDexClient

API = "https://api.mangadex.org"
AUTH = "https://auth.mangadex.org/realms/mangadex/protocol/openid-connect/token"
CHECK = {"result": "ok", "isAuthenticated": True, "roles": [], "permissions": []}
ENV = {"MDUPLOAD_USERNAME": "demo", "MDUPLOAD_PASSWORD": "password-123", "MDUPLOAD_CLIENT_ID": "client-id",
       "MDUPLOAD_CLIENT_SECRET": "client-secret-123"}


class Clock:
    def __init__(self, now: float = 1_750_000_000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


def tokens(n: int, expires_in: int = 900, refresh_expires_in: int = 2_592_000) -> dict:
    return {"access_token": f"access-{n}-0123456789", "expires_in": expires_in,
            "refresh_token": f"refresh-{n}-0123456789", "refresh_expires_in": refresh_expires_in,
            "token_type": "Bearer"}


def refused(description: str = "Invalid refresh token") -> dict:
    return {"error": "invalid_grant", "error_description": description}


def token_forms(http) -> list[dict]:
    forms = []
    for call in http.calls:
        if call.request.url == AUTH:
            assert call.request.headers["Content-Type"] == "application/x-www-form-urlencoded"
            forms.append({k: v[0] for k, v in parse_qs(call.request.body).items()})
    return forms


def bearer_of_api_calls(http) -> list[str]:
    return [c.request.headers.get("Authorization") for c in http.calls if c.request.url.startswith(API)]


@pytest.fixture
def http():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        mock.get(f"{API}/auth/check", json=CHECK)
        yield mock


def make_client(credentials=None, clock=None):
    return MangaDexClient(api_url=API, auth_url=AUTH, credentials=credentials or Credentials.from_env(ENV),
                          rate_limiter=None, sleep=lambda s: None, clock=clock or Clock())


def test_password_grant_is_a_form_post_with_the_personal_client(http):
    http.post(AUTH, json=tokens(1))
    make_client().auth_check()
    assert token_forms(http) == [{"grant_type": "password", "username": "demo", "password": "password-123",
                                  "client_id": "client-id", "client_secret": "client-secret-123"}]
    assert bearer_of_api_calls(http) == ["Bearer access-1-0123456789"]


def test_token_is_refreshed_shortly_before_it_expires_not_earlier(http):
    http.post(AUTH, json=tokens(1))
    http.post(AUTH, json=tokens(2))
    clock = Clock()
    client = make_client(clock=clock)
    client.auth_check()
    clock.now += 900 - 61  # still more than the margin (60 s) left
    client.auth_check()
    assert len(token_forms(http)) == 1
    clock.now += 2  # inside the margin
    client.auth_check()
    forms = token_forms(http)
    assert forms[1] == {"grant_type": "refresh_token", "refresh_token": "refresh-1-0123456789",
                        "client_id": "client-id", "client_secret": "client-secret-123"}
    assert bearer_of_api_calls(http)[-1] == "Bearer access-2-0123456789"


def test_refused_refresh_falls_back_to_the_password_grant(http):
    http.post(AUTH, json=tokens(1))
    http.post(AUTH, status=400, json=refused())
    http.post(AUTH, json=tokens(3))
    clock = Clock()
    client = make_client(clock=clock)
    client.auth_check()
    clock.now += 900
    client.auth_check()
    assert [f["grant_type"] for f in token_forms(http)] == ["password", "refresh_token", "password"]
    assert bearer_of_api_calls(http)[-1] == "Bearer access-3-0123456789"


def test_expired_refresh_token_goes_straight_to_the_password(http):
    http.post(AUTH, json=tokens(1, refresh_expires_in=600))
    http.post(AUTH, json=tokens(2))
    clock = Clock()
    client = make_client(clock=clock)
    client.auth_check()
    clock.now += 900
    client.auth_check()
    assert [f["grant_type"] for f in token_forms(http)] == ["password", "password"]


def test_stored_refresh_token_signs_in_without_a_password(http):
    http.post(AUTH, json=tokens(2))
    client = make_client(Credentials.from_refresh_token("client-id", "client-secret-123", "stored-refresh-0123"))
    client.auth_check()
    assert token_forms(http)[0]["refresh_token"] == "stored-refresh-0123"
    assert client.tokens.refresh_token == "refresh-2-0123456789"  # the new one, to be stored again


def test_refused_stored_refresh_token_asks_to_log_in_again(http):
    http.post(AUTH, status=400, json=refused("Token is not active"))
    client = make_client(Credentials.from_refresh_token("client-id", "client-secret-123", "stored-refresh-0123"))
    with pytest.raises(AuthError, match="mdupload login") as caught:
        client.auth_check()
    assert "Token is not active" in str(caught.value) and caught.value.exit_code == EXIT_AUTH


def test_refused_refresh_and_password_ask_to_log_in_again(http):
    http.post(AUTH, json=tokens(1))
    http.post(AUTH, status=400, json=refused())
    http.post(AUTH, status=401, json=refused("Invalid user credentials"))
    clock = Clock()
    client = make_client(clock=clock)
    client.auth_check()
    clock.now += 900
    with pytest.raises(AuthError, match="mdupload login"):
        client.auth_check()


def test_wrong_password_names_the_settings_to_check(http):
    http.post(AUTH, status=401, json=refused("Invalid user credentials"))
    with pytest.raises(AuthError, match="Invalid user credentials") as caught:
        make_client().auth_check()
    assert "MDUPLOAD_PASSWORD" in str(caught.value) and "password-123" not in str(caught.value)


def test_401_refreshes_once_and_retries_once(http):
    http.post(AUTH, json=tokens(1))
    http.post(AUTH, json=tokens(2))
    http.get(f"{API}/upload", status=401,
             json={"result": "error", "errors": [{"status": 401, "title": "unauthorized"}]})
    http.get(f"{API}/upload", status=404, json={"result": "error", "errors": []})
    assert make_client().get_open_session() is None
    assert [f["grant_type"] for f in token_forms(http)] == ["password", "refresh_token"]
    assert bearer_of_api_calls(http) == ["Bearer access-1-0123456789", "Bearer access-2-0123456789"]


def test_a_second_401_is_an_error_and_not_retried_again(http):
    http.post(AUTH, json=tokens(1))
    http.post(AUTH, json=tokens(2))
    http.post(f"{API}/upload/begin", status=401,
              json={"result": "error", "errors": [{"status": 401, "title": "unauthorized_http_exception",
                                                   "detail": "you may not upload"}]})
    with pytest.raises(ApiError, match="you may not upload") as caught:
        make_client().begin_session("f9c33607-9180-4ba6-b85c-e4b5faee7192", [])
    assert caught.value.status == 401
    assert len(bearer_of_api_calls(http)) == 2


def test_one_refresh_for_all_threads(http):
    http.post(AUTH, json=tokens(1))
    http.post(AUTH, json=tokens(2))
    clock = Clock()
    client = make_client(clock=clock)
    client.auth_check()
    clock.now += 900
    start = threading.Barrier(8)
    errors = []

    def call():
        start.wait()
        try:
            client.auth_check()
        except Exception as exc:  # noqa: BLE001 - asserted below
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert [f["grant_type"] for f in token_forms(http)] == ["password", "refresh_token"]
    assert set(bearer_of_api_calls(http)[1:]) == {"Bearer access-2-0123456789"}


def test_missing_environment_variables_are_named():
    env = dict(ENV)
    del env["MDUPLOAD_PASSWORD"], env["MDUPLOAD_CLIENT_SECRET"]
    with pytest.raises(AuthError) as caught:
        Credentials.from_env(env)
    assert "MDUPLOAD_PASSWORD" in str(caught.value) and "MDUPLOAD_CLIENT_SECRET" in str(caught.value)
    assert "MDUPLOAD_USERNAME" not in str(caught.value)
    assert caught.value.exit_code == EXIT_AUTH


def test_credentials_do_not_show_secrets_in_their_repr():
    text = repr(Credentials.from_env(ENV))
    assert "password-123" not in text and "client-secret-123" not in text and "demo" in text
