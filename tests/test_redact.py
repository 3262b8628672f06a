"""Secrets never reach log output or error messages."""

from __future__ import annotations

import io
import logging

import pytest
import responses

from mdupload.mangadex import ApiError, Credentials, MangaDexClient
from mdupload.redact import MASK, RedactingFilter, redact, register_secret

API = "https://api.mangadex.org"
AUTH = "https://auth.mangadex.org/realms/mangadex/protocol/openid-connect/token"
PASSWORD = "p@ss word&more-9f3e"
CLIENT_SECRET = "client-secret-7d1c0a"
ACCESS = "eyJhbGciOi.access-token-5be2"
REFRESH = "eyJhbGciOi.refresh-token-a91f"


@pytest.fixture
def captured():
    """The `mdupload` logger at DEBUG into a string, through the redacting filter (as the CLI sets it up)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logger = logging.getLogger("mdupload")
    old_level, old_propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    logger.propagate = False
    yield stream
    logger.removeHandler(handler)
    logger.setLevel(old_level)
    logger.propagate = old_propagate


def test_registered_secrets_are_replaced_in_plain_and_encoded_forms():
    register_secret("s3cr3t/with+chars")
    text = "a s3cr3t/with+chars b s3cr3t%2Fwith%2Bchars c"
    assert redact(text) == f"a {MASK} b {MASK} c"
    assert redact("nothing secret here") == "nothing secret here"


def test_the_filter_scrubs_message_arguments_and_exception_text(captured):
    register_secret("token-in-an-exception-42")
    log = logging.getLogger("mdupload.test")
    log.warning("sent %s", "token-in-an-exception-42")
    try:
        raise RuntimeError("failed with token-in-an-exception-42")
    except RuntimeError:
        log.exception("boom")
    output = captured.getvalue()
    assert "token-in-an-exception-42" not in output
    assert f"sent {MASK}" in output and f"RuntimeError: failed with {MASK}" in output


def test_the_http_trace_shows_the_calls_but_no_secret(captured):
    with responses.RequestsMock() as http:
        http.post(AUTH, json={"access_token": ACCESS, "expires_in": 900, "refresh_token": REFRESH,
                              "refresh_expires_in": 3600})
        http.get(f"{API}/upload", status=400, json={"result": "error", "errors": [
            {"status": 400, "title": "bad_request", "detail": f"token {ACCESS} is odd"}]})
        client = MangaDexClient(api_url=API, auth_url=AUTH,
                                credentials=Credentials("demo", PASSWORD, "client-id", CLIENT_SECRET),
                                rate_limiter=None, sleep=lambda s: None)
        with pytest.raises(ApiError) as caught:
            client.get_open_session()
    output = captured.getvalue()
    assert f"POST {AUTH} -> 200" in output and f"GET {API}/upload?" in output and "-> 400" in output
    assert "Bearer [REDACTED]" in output
    for secret in (PASSWORD, CLIENT_SECRET, ACCESS, REFRESH, "p%40ss+word%26more"):
        assert secret not in output
        assert secret not in str(caught.value)
    assert "is odd" in str(caught.value)
