"""Reading JSON request bodies and refusing them in MangaDex's words."""

from __future__ import annotations

import json

import jsonschema
from werkzeug.wrappers import Request

from .core import ApiError


def json_body(request: Request, schema: dict):
    """The request's JSON body, checked against `schema`; every violation becomes one error entry."""
    if request.mimetype != "application/json":
        raise ApiError(400, "bad_request_http_exception",
                       f"The body must be JSON with 'Content-Type: application/json', not {request.mimetype or 'none'}")
    try:
        body = json.loads(request.get_data(cache=False) or b"null")
    except ValueError as exc:
        raise ApiError(400, "bad_request_http_exception", f"The body is not valid JSON: {exc}") from exc
    problems = [_describe(problem) for problem in
                sorted(jsonschema.Draft202012Validator(schema).iter_errors(body), key=lambda e: list(e.absolute_path))]
    if problems:
        first, *rest = problems
        raise ApiError(400, "validation_exception", first, more=[("validation_exception", p) for p in rest])
    return body


def _describe(problem: jsonschema.ValidationError) -> str:
    where = "/" + "/".join(str(part) for part in problem.absolute_path)
    if problem.validator == "const":
        return f"Error validating {where}: must be {json.dumps(problem.validator_value)}"
    return f"Error validating {where}: {problem.message}"
