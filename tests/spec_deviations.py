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
    operations: tuple[str, ...]  # operationIds; ("*",): every operation the sandbox implements
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


def _exploded_order(spec: dict, operations: dict[str, dict]) -> None:
    (order,) = [p for p in operations["get-chapter"]["parameters"] if p["name"] == "order"]
    order["explode"] = True


def _error_answers(spec: dict, operations: dict[str, dict]) -> None:
    for operation in operations.values():
        operation["responses"].setdefault("default", {
            "description": "An error in MangaDex's envelope",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}}})


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
        "order[...] is an exploded deepObject", ("get-chapter",),
        "GET /chapter takes order[chapter]=asc and the like; the spec declares `order` as a deepObject without "
        "`explode: true`, which OpenAPI reads as not exploded, so no query could match it.",
        _exploded_order),
    Deviation(
        "error answers", ("*",),
        "The spec lists few error statuses per operation (none at all for some); the live API can answer any "
        "call with 400, 401, 403, 404, 409, 429 or 5xx in the ErrorResponse envelope.",
        _error_answers, (SPEC_5_10, SPEC_5_12)),
    Deviation(
        "check-approval-required is 5.12 only", ("upload-check-approval-required",),
        "POST /upload/check-approval-required appeared in 5.10.2; the 5.10.0 file does not have it, so it is "
        "validated against the 5.12.0 file (where oapi-codegen renamed its operationId UploadCheckApprovalRequired).",
        None, (SPEC_5_12,)),
)
