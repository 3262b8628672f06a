"""The OAuth token endpoint (Keycloak's, as MangaDex runs it) and Bearer tokens on API calls."""

from __future__ import annotations

import base64
import json
import math
import secrets

from werkzeug.wrappers import Request, Response

from .config import Account
from .core import ApiError, Core, json_response, new_id, now
from .store import Token


def token_endpoint(core: Core, request: Request) -> Response:
    """POST /realms/mangadex/protocol/openid-connect/token: the password and refresh_token grants."""
    if request.mimetype != "application/x-www-form-urlencoded":
        return _oauth_error(400, "invalid_request", "Missing form parameter: grant_type")
    form = request.form
    account = _client(core, form.get("client_id"), form.get("client_secret"))
    if account is None:
        return _oauth_error(401, "invalid_client", "Invalid client or Invalid client credentials")
    grant = form.get("grant_type")
    if grant == "password":
        if form.get("username") != account.username or form.get("password") != account.password:
            return _oauth_error(401, "invalid_grant", "Invalid user credentials")
    elif grant == "refresh_token":
        with core.store.lock:
            token = core.store.records.tokens.get(form.get("refresh_token") or "")
        if token is None or token.kind != "refresh" or not _alive(token) or token.client_id != account.client_id:
            return _oauth_error(400, "invalid_grant", "Token is not active")
    elif not grant:
        return _oauth_error(400, "invalid_request", "Missing form parameter: grant_type")
    else:
        return _oauth_error(400, "unsupported_grant_type", f"Unsupported grant_type {grant}")
    config = core.config
    access = _issue(core, account, "access", config.token_lifetime)
    refresh = _issue(core, account, "refresh", config.refresh_lifetime)
    return json_response({
        "access_token": access,
        "expires_in": math.ceil(config.token_lifetime),
        "refresh_expires_in": math.ceil(config.refresh_lifetime),
        "refresh_token": refresh,
        "token_type": "Bearer",
        "not-before-policy": 0,
        "session_state": new_id(),
        "scope": "openid groups profile email",
    }, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


def authenticate(core: Core, request: Request) -> Account | None:
    """The account of the request's Bearer token; None without an Authorization header."""
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value:
        raise ApiError(401, "unauthorized_http_exception", "Authorization must be 'Bearer <access token>'")
    with core.store.lock:
        token = core.store.records.tokens.get(value.strip())
        if token is None or token.kind != "access":
            raise ApiError(401, "unauthorized_http_exception", "The token is not valid")
        if not _alive(token):
            raise ApiError(401, "unauthorized_http_exception", "The token has expired")
        if core.faults.draw("early_expiry"):
            token.revoked = True
            core.store.save()
            raise ApiError(401, "unauthorized_http_exception", "The token has expired")
        account = core.accounts.get(token.username)
        if account is None:
            raise ApiError(401, "unauthorized_http_exception", "The token's account no longer exists")
        return account


def require_account(core: Core, request: Request) -> Account:
    account = authenticate(core, request)
    if account is None:
        raise ApiError(401, "unauthorized_http_exception",
                       "This call needs an access token: send 'Authorization: Bearer <access token>'")
    return account


def _client(core: Core, client_id: str | None, secret: str | None) -> Account | None:
    for account in core.accounts.values():
        if account.client_id == client_id and secrets.compare_digest(account.client_secret, secret or ""):
            return account
    return None


def _alive(token: Token) -> bool:
    return not token.revoked and token.expires_at > now()


def _issue(core: Core, account: Account, kind: str, lifetime: float) -> str:
    issued = now()
    claims = {
        "exp": int(issued + lifetime), "iat": int(issued), "jti": new_id(),
        "iss": f"{core.api_url}/realms/mangadex", "sub": account.user_id, "azp": account.client_id,
        "typ": "Bearer" if kind == "access" else "Refresh", "preferred_username": account.username,
    }
    value = ".".join(_b64(part) for part in (json.dumps({"alg": "RS256", "typ": "JWT"}).encode(),
                                             json.dumps(claims).encode(), secrets.token_bytes(32)))
    with core.store.lock:
        tokens = core.store.records.tokens
        for old in [k for k, t in tokens.items() if not _alive(t)]:
            del tokens[old]
        tokens[value] = Token(value, kind, account.username, account.client_id, issued + lifetime)
        core.store.save()
    return value


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _oauth_error(status: int, code: str, description: str) -> Response:
    return json_response({"error": code, "error_description": description}, status)
