"""The API host: MangaDex's paths at the root (as on api.mangadex.org), the OAuth token endpoint at
Keycloak's path (as on auth.mangadex.org), and the sandbox-only GET /_sandbox/state and
/_sandbox/redirect (answers a redirect to any URL, to test what a client sends where).

Endpoint names are the official operationIds, so a test can tell which operations it covered.
"""

from __future__ import annotations

import math

from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from . import catalog, edits, titles, uploads
from .app import Dropped, drain
from .core import (
    REDIRECT_PATH,
    STATE_PATH,
    TOKEN_PATH,
    ApiError,
    Core,
    json_response,
    now,
)
from .statedoc import state_document
from .tokens import authenticate, require_account, token_endpoint

URL_MAP = Map([
    Rule(TOKEN_PATH, endpoint="oauth-token", methods=["POST"]),
    Rule(STATE_PATH, endpoint="sandbox-state", methods=["GET"]),
    Rule(REDIRECT_PATH, endpoint="sandbox-redirect", methods=["GET", "POST", "DELETE"]),
    Rule("/auth/check", endpoint="get-auth-check", methods=["GET"]),
    Rule("/upload", endpoint="get-upload-session", methods=["GET"]),
    Rule("/upload/begin", endpoint="begin-upload-session", methods=["POST"]),
    Rule("/upload/begin/<chapter_id>", endpoint="begin-edit-session", methods=["POST"]),
    Rule("/upload/check-approval-required", endpoint="upload-check-approval-required", methods=["POST"]),
    Rule("/upload/<session_id>", endpoint="put-upload-session-file", methods=["POST"]),
    Rule("/upload/<session_id>", endpoint="abandon-upload-session", methods=["DELETE"]),
    Rule("/upload/<session_id>/commit", endpoint="commit-upload-session", methods=["POST"]),
    Rule("/upload/<session_id>/batch", endpoint="delete-uploaded-session-files", methods=["DELETE"]),
    Rule("/upload/<session_id>/<file_id>", endpoint="delete-uploaded-session-file", methods=["DELETE"]),
    Rule("/chapter", endpoint="get-chapter", methods=["GET"]),
    Rule("/chapter/<chapter_id>", endpoint="get-chapter-id", methods=["GET"]),
    Rule("/chapter/<chapter_id>", endpoint="put-chapter-id", methods=["PUT"]),
    Rule("/chapter/<chapter_id>", endpoint="delete-chapter-id", methods=["DELETE"]),
    Rule("/manga", endpoint="get-search-manga", methods=["GET"]),
    Rule("/manga/<manga_id>", endpoint="get-manga-id", methods=["GET"]),
    Rule("/manga/<manga_id>/feed", endpoint="get-manga-id-feed", methods=["GET"]),
    Rule("/manga/<manga_id>/aggregate", endpoint="get-manga-aggregate", methods=["GET"]),
    Rule("/group", endpoint="get-search-group", methods=["GET"]),
    Rule("/group/<group_id>", endpoint="get-group-id", methods=["GET"]),
    Rule("/user/me", endpoint="get-user-me", methods=["GET"]),
    Rule("/at-home/server/<chapter_id>", endpoint="get-at-home-server-chapterId", methods=["GET"]),
], strict_slashes=False)

# operationId -> (handler, needs an account)
HANDLERS = {
    "get-auth-check": (catalog.auth_check, False),
    "get-upload-session": (uploads.get_session, True),
    "begin-upload-session": (uploads.begin, True),
    "begin-edit-session": (uploads.begin_edit, True),
    "upload-check-approval-required": (uploads.check_approval, True),
    "put-upload-session-file": (uploads.upload_files, True),
    "abandon-upload-session": (uploads.abandon, True),
    "commit-upload-session": (uploads.commit, True),
    "delete-uploaded-session-files": (uploads.delete_files, True),
    "delete-uploaded-session-file": (uploads.delete_file, True),
    "get-chapter": (catalog.list_chapters, False),
    "get-chapter-id": (catalog.get_chapter, False),
    "put-chapter-id": (edits.update_chapter, True),
    "delete-chapter-id": (edits.delete_chapter, True),
    "get-search-manga": (titles.search_manga, False),
    "get-manga-id": (titles.get_manga, False),
    "get-manga-id-feed": (catalog.manga_feed, False),
    "get-manga-aggregate": (catalog.manga_aggregate, False),
    "get-search-group": (titles.search_group, False),
    "get-group-id": (titles.get_group, False),
    "get-user-me": (titles.user_me, True),
    "get-at-home-server-chapterId": (catalog.athome_server, False),
}

RATE_BUCKETS = {
    "get-upload-session": "upload.get",
    "begin-upload-session": "upload.begin",
    "begin-edit-session": "upload.begin",
    "put-upload-session-file": "upload.file",
    "delete-uploaded-session-file": "upload.file",
    "delete-uploaded-session-files": "upload.file",
    "commit-upload-session": "upload.commit",
    "abandon-upload-session": "upload.abandon",
    "get-at-home-server-chapterId": "at-home.server",
}

# The calls whose answer a `lost_answer` fault loses after they took effect.
LOSABLE = {"begin-upload-session", "begin-edit-session", "put-upload-session-file", "commit-upload-session"}


def handle(core: Core, request: Request, endpoint: str, args: dict, entry: dict) -> Response:
    """Answer one request to the API host: rate limits, then faults, then the operation."""
    if endpoint == "sandbox-state":
        return json_response(state_document(core))
    if endpoint == "oauth-token":
        return token_endpoint(core, request)
    if endpoint == "sandbox-redirect":
        return _redirect(request)
    limits = {}
    if core.config.rate_limits:
        verdict = core.limiter.admit(request.remote_addr or "", RATE_BUCKETS.get(endpoint))
        limits = verdict.headers
        if not verdict.allowed:
            raise ApiError(429, "ratelimit_exceeded_http_exception",
                           "You have been rate limited: wait until X-RateLimit-Retry-After", headers=limits)
    try:
        response = _faulty(core, request, entry) or _call(core, request, endpoint, args)
    except ApiError as refused:
        refused.headers = {**limits, **refused.headers}
        raise
    response.headers.update(limits)
    return response


def _redirect(request: Request) -> Response:
    """Sandbox-only: answer a redirect to `to` (status `status`, 302 by default), as a hostile or
    misconfigured API might; the request log then shows what the client sent where."""
    target, status = request.args.get("to", ""), request.args.get("status", "302")
    if not target.startswith(("http://", "https://")) or status not in ("301", "302", "303", "307", "308"):
        raise ApiError(400, "validation_exception", "to must be an http(s) URL and status one of 301-303, 307, 308")
    drain(request)
    return Response("", status=int(status), headers={"Location": target})


def _faulty(core: Core, request: Request, entry: dict) -> Response | None:
    """The answer of a fault that strikes before the call takes effect, if one does."""
    faults = core.faults
    if faults.in_burst():
        entry["fault"] = "burst"
        retry = str(math.ceil(now()) + 1)
        raise ApiError(429, "ratelimit_exceeded_http_exception", "You have been rate limited",
                       headers={"X-RateLimit-Limit": "5", "X-RateLimit-Remaining": "0",
                                "X-RateLimit-Retry-After": retry})
    rng = faults.draw("error")
    if rng is not None:
        entry["fault"] = "error"
        drain(request)
        status = rng.choice((500, 502, 503))
        if status == 500:
            raise ApiError(500, "internal_server_error", "An internal error occurred (sandbox fault)")
        # a gateway in front of the API answers with its own page, not MangaDex's envelope
        return Response(f"<html><body><h1>{status}</h1>The server is unavailable.</body></html>",
                        status=status, content_type="text/html")
    length = request.content_length or 0
    if length and (rng := faults.draw("drop")) is not None:
        wanted = max(1, min(length - 1, int(length * rng.random())))
        while wanted > 0 and (chunk := request.stream.read(min(wanted, 1 << 16))):
            wanted -= len(chunk)
        raise Dropped("drop")
    return None


def _call(core: Core, request: Request, endpoint: str, args: dict) -> Response:
    handler, needs_account = HANDLERS[endpoint]
    account = require_account(core, request) if needs_account else authenticate(core, request)
    response = handler(core, request, account, **args)
    if endpoint in LOSABLE and response.status_code == 200 and core.faults.draw("lost_answer"):
        core.stopping.wait(core.config.lost_answer_stall)
        raise Dropped("lost_answer")
    return response
