"""Where the live MangaDex API is known to differ from its published OpenAPI files: the one list.

tests/test_sandbox_spec.py validates every request and answer of the sandbox against the spec. It
skips nothing: each known deviation is applied to the spec as a patch, so the check is made against
the API as it really behaves (API-NOTES.md says how we know). A deviation names the operations it
touches (the official operationIds, which are also the sandbox's endpoint names), the spec files it
patches, why, and the patch.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

SPEC_5_10 = "mangadex-api.yaml"
SPEC_5_12 = "mangadex-api-5.12.0.embedded.json"

ENTITY_ANSWERS = {  # operationId -> the entity schema its 200 answer carries
    "get-upload-session": "UploadSession",
    "begin-upload-session": "UploadSession",
    "begin-edit-session": "UploadSession",
    "commit-upload-session": "Chapter",
}


@dataclass(frozen=True)
class Deviation:
    name: str
    operations: tuple[str, ...]  # operationIds
    why: str
    # patch(spec, {operationId: operation object of that spec}); None when the deviation is the choice of file
    patch: Callable[[dict, dict[str, dict]], None] | None
    specs: tuple[str, ...] = (SPEC_5_10,)  # the files it patches, or, without a patch, validates against


def _envelope(spec: dict, operations: dict[str, dict]) -> None:
    for operation_id, schema in ENTITY_ANSWERS.items():
        content = operations[operation_id]["responses"]["200"]["content"]["application/json"]
        content["schema"] = {
            "type": "object",
            "required": ["result", "response", "data"],
            "properties": {"result": {"type": "string", "enum": ["ok"]},
                           "response": {"type": "string", "enum": ["entity"]},
                           "data": {"$ref": f"#/components/schemas/{schema}"}},
        }


def _session_relationships(spec: dict, operations: dict[str, dict]) -> None:
    spec["components"]["schemas"]["UploadSession"]["properties"]["relationships"] = {
        "type": "array", "items": {"$ref": "#/components/schemas/Relationship"}}
    operations["get-upload-session"].setdefault("parameters", []).append({
        "name": "includes[]", "in": "query",
        "schema": {"type": "array", "items": {"type": "string", "enum": ["upload_session_file"]}}})


def _terms_accepted(spec: dict, operations: dict[str, dict]) -> None:
    commit = spec["components"]["schemas"]["CommitUploadSession"]
    commit["properties"]["termsAccepted"] = {"type": "boolean", "enum": [True]}
    commit["required"] = [*commit.get("required", []), "termsAccepted"]


def _several_files(spec: dict, operations: dict[str, dict]) -> None:
    body = operations["put-upload-session-file"]["requestBody"]["content"]["multipart/form-data"]
    binary = {"type": "string", "format": "binary"}
    names = ["file", *(f"file{n}" for n in range(1, 11))]
    body["schema"] = {"type": "object", "minProperties": 1, "maxProperties": 10,
                      "properties": {name: binary for name in names}, "additionalProperties": binary}


ORDERED = ("get-chapter", "get-manga-id-feed", "get-search-manga", "get-search-group")


def _exploded_order(spec: dict, operations: dict[str, dict]) -> None:
    for operation_id in ORDERED:
        (order,) = [p for p in operations[operation_id]["parameters"] if p["name"] == "order"]
        order["explode"] = True


def _null_attributes(spec: dict, operations: dict[str, dict]) -> None:
    schemas = spec["components"]["schemas"]
    for name in ("MangaAttributes", "ScanlationGroupAttributes"):
        for prop in schemas[name]["properties"].values():
            if "type" in prop:
                prop["nullable"] = True
                if "enum" in prop and None not in prop["enum"]:
                    prop["enum"] = [*prop["enum"], None]


def _localized_string_keys(spec: dict, operations: dict[str, dict]) -> None:
    del spec["components"]["schemas"]["LocalizedString"]["additionalProperties"]["pattern"]


# --- error statuses: one entry per operation and status the sandbox answers that its spec file does not list ---

ENVELOPE = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}
GATEWAY_PAGE = {"text/html": {"schema": {"type": "string"}}}

AUTHENTICATED = ("get-upload-session", "begin-upload-session", "upload-check-approval-required",
                 "put-upload-session-file", "abandon-upload-session", "commit-upload-session",
                 "delete-uploaded-session-files", "delete-uploaded-session-file", "put-chapter-id",
                 "delete-chapter-id", "get-user-me")
TOKEN_OPTIONAL = ("get-auth-check", "get-chapter", "get-chapter-id", "get-search-manga", "get-manga-id",
                  "get-manga-id-feed", "get-manga-aggregate", "get-search-group", "get-group-id",
                  "get-at-home-server-chapterId")
EVERY_OPERATION = (*AUTHENTICATED, "begin-edit-session", *TOKEN_OPTIONAL)

EVIDENCE_401 = ("API-NOTES.md, Authentication: \"A 401 from the API means: refresh once, then retry once\"; the spec "
                "declares 401 for begin-edit-session only (mangadex-api.yaml line 4626), yet the same bearer check "
                "guards every call that needs an account.")
EVIDENCE_401_OPTIONAL = ("MangaDex's docs (Authentication): a request that sends an expired or invalid token is refused "
                         "401 even where a token is optional (the token is checked before the operation); "
                         "public clients (MangaDex.py, mangadex-full-api) refresh and retry on it for read calls too.")
EVIDENCE_429 = ("API-NOTES.md, Errors and rate limits, and MangaDex's docs, Rate limits: about 5 requests per second "
                "per IP on every endpoint, each answered 429 with X-RateLimit-Retry-After when exceeded; the spec "
                "declares 429 nowhere.")
EVIDENCE_500 = ("MangaDex's docs, Errors: every error, internal ones included, comes in the ErrorResponse envelope "
                "with a status; API-NOTES.md: retry 5xx with backoff. The sandbox injects it as a fault (--error-rate).")
EVIDENCE_GATEWAY = ("The proxy in front of api.mangadex.org answers 502/503 with its own HTML page, not MangaDex's "
                    "envelope, when the API is down or overloaded (API-NOTES.md: retry 5xx and dropped connections "
                    "with backoff). The sandbox injects them as faults (--error-rate).")
EVIDENCE_400_BODY = ("The spec gives this operation a JSON body with a schema but lists no 400; MangaDex refuses a body "
                     "that breaks the schema with 400 validation_exception (the docs, Errors; the spec does list 400 "
                     "for begin-edit-session's body, line 4620).")
EVIDENCE_400_COMMITTED = ("The session is already committed: MangaDex answers 400 bad_request (API-NOTES.md, Upload "
                          "sessions: a committed session takes no more calls).")
EVIDENCE_404_SESSION = ("The session id is not an open session of this account: 404, as GET /upload's own 404 (spec line "
                        "4555) and API-NOTES.md (\"treat 404 as already gone\" for DELETE /upload/{id}).")
EVIDENCE_404_ENTITY = ("An unknown manga, group or chapter id in the body or path: 404 not_found_http_exception, as the "
                       "spec lists it for GET /manga/{id}, GET /chapter/{id} and POST /upload/check-approval-required.")
EVIDENCE_409_OPEN = ("API-NOTES.md, Upload sessions: begin answers \"an error when one is already open\" (one open "
                     "session per account); the sandbox uses 409 conflict, the status MangaDex uses for its other state "
                     "conflicts (optimistic_lock_exception).")
EVIDENCE_409_VERSION = ("API-NOTES.md, Upload sessions: a stale version is answered 409 optimistic_lock_exception, its "
                        "detail naming the current version; PUT /chapter/{id} and an edit session's commit carry the "
                        "same version check.")
EVIDENCE_403_EXTERNAL = ("API-NOTES.md, Commit body: externalUrl \"needs a special permission\"; without it MangaDex "
                         "answers 403 forbidden.")
EVIDENCE_413 = ("A body over 10 files of 20 MB each (API-NOTES.md limits) is cut off by the server in front of the API "
                "with 413 payload too large before MangaDex reads it.")

ERROR_STATUSES: tuple[tuple[str, int, str], ...] = (
    *((op, 401, EVIDENCE_401) for op in AUTHENTICATED),
    *((op, 401, EVIDENCE_401_OPTIONAL) for op in TOKEN_OPTIONAL),
    *((op, 429, EVIDENCE_429) for op in EVERY_OPERATION),
    *((op, 500, EVIDENCE_500) for op in EVERY_OPERATION),
    *((op, status, EVIDENCE_GATEWAY) for op in EVERY_OPERATION for status in (502, 503)),
    ("begin-upload-session", 400, EVIDENCE_400_BODY),
    ("begin-upload-session", 404, EVIDENCE_404_ENTITY),
    ("begin-upload-session", 409, EVIDENCE_409_OPEN),
    ("begin-edit-session", 404, EVIDENCE_404_ENTITY),
    ("begin-edit-session", 409, EVIDENCE_409_VERSION),
    ("upload-check-approval-required", 400, EVIDENCE_400_BODY),
    ("put-upload-session-file", 404, EVIDENCE_404_SESSION),
    ("put-upload-session-file", 413, EVIDENCE_413),
    ("abandon-upload-session", 400, EVIDENCE_400_COMMITTED),
    ("abandon-upload-session", 404, EVIDENCE_404_SESSION),
    ("commit-upload-session", 400, EVIDENCE_400_BODY),
    ("commit-upload-session", 403, EVIDENCE_403_EXTERNAL),
    ("commit-upload-session", 404, EVIDENCE_404_SESSION),
    ("commit-upload-session", 409, EVIDENCE_409_VERSION),
    ("delete-uploaded-session-files", 400, EVIDENCE_400_BODY),
    ("delete-uploaded-session-files", 404, EVIDENCE_404_SESSION),
    ("delete-uploaded-session-file", 400, EVIDENCE_400_COMMITTED),
    ("delete-uploaded-session-file", 404, EVIDENCE_404_SESSION),
    ("put-chapter-id", 409, EVIDENCE_409_VERSION),
    ("get-manga-id-feed", 404, EVIDENCE_404_ENTITY),
    ("get-manga-aggregate", 400, "Its query (translatedLanguage[], groups[]) is validated like GET /chapter's, "
                                 "which the spec answers 400 (get-chapter)."),
    ("get-manga-aggregate", 404, EVIDENCE_404_ENTITY),
)


def _error_status(operation_id: str, status: int):
    def patch(spec: dict, operations: dict[str, dict]) -> None:
        operations[operation_id]["responses"][str(status)] = {
            "description": "Not in the spec (see tests/spec_deviations.py)",
            "content": GATEWAY_PAGE if status in (502, 503) else ENVELOPE}
    return patch


def _spec_file(operation_id: str) -> str:
    return SPEC_5_12 if operation_id == "upload-check-approval-required" else SPEC_5_10


KNOWN_DEVIATIONS = (
    Deviation(
        "response envelope", tuple(ENTITY_ANSWERS),
        "The spec gives these 200 answers as the bare UploadSession or Chapter; the live API wraps them as "
        '{"result": "ok", "response": "entity", "data": <entity>}, as it does every entity.',
        _envelope),
    Deviation(
        "session relationships and includes[]", ("get-upload-session", "begin-upload-session", "begin-edit-session"),
        "UploadSession has no relationships in the spec; the live API lists the user, the manga, each group, each "
        "upload_session_file (with attributes when asked with includes[]=upload_session_file) and, for an edit "
        "session, the chapter. GET /upload's includes[] parameter is not in the spec either.",
        _session_relationships),
    Deviation(
        "termsAccepted", ("commit-upload-session",),
        "Since mid-2025 the live API refuses a commit without a root-level termsAccepted: true, which neither "
        "spec file has.",
        _terms_accepted),
    Deviation(
        "several files per request", ("put-upload-session-file",),
        "The spec shows one multipart part named 'file'; the live API takes 1 to 10 file parts per request, "
        "whatever their field names (clients use file, or file1 to file10).",
        _several_files),
    Deviation(
        "order[...] is an exploded deepObject", ORDERED,
        "GET /chapter takes order[chapter]=asc and the like (so do the feed and the manga and group searches); the spec declares `order` as a deepObject without "
        "`explode: true`, which OpenAPI reads as not exploded, so no query could match it.",
        _exploded_order),
    Deviation(
        "null manga and group attributes", ("get-manga-id", "get-search-manga", "get-group-id", "get-search-group"),
        "The live API sends null for what a manga or group lacks (publicationDemographic, year, lastVolume, website, "
        "discord, description, ...: see any group without a website on api.mangadex.org/group); the spec marks most of "
        "these attributes not nullable, or nullable with an enum that lacks null.",
        _null_attributes),
    Deviation(
        "LocalizedString keys, not values, are language codes",
        ("get-manga-id", "get-search-manga"),
        "The spec puts the pattern ^[a-z]{2,8}$ on LocalizedString's values; it describes the keys ({\"en\": \"A "
        "title\"}, as every live answer and the spec's own examples show); OpenAPI 3.0 cannot say that of keys, so the "
        "pattern is dropped.",
        _localized_string_keys),
    *(Deviation(f"{operation_id} answers {status}", (operation_id,), evidence, _error_status(operation_id, status),
                (_spec_file(operation_id),))
      for operation_id, status, evidence in ERROR_STATUSES),
    Deviation(
        "check-approval-required is 5.12 only", ("upload-check-approval-required",),
        "POST /upload/check-approval-required appeared in 5.10.2; the 5.10.0 file does not have it, so it is "
        "validated against the 5.12.0 file (where oapi-codegen renamed its operationId UploadCheckApprovalRequired).",
        None, (SPEC_5_12,)),
)
