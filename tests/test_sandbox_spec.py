"""The sandbox speaks MangaDex's OpenAPI: every request and answer of a scenario that calls every operation it
implements is validated with openapi-core against the official spec, patched only by the named list of known
deviations of the live API (tests/spec_deviations.py)."""

from __future__ import annotations

import copy
from functools import cache
from pathlib import Path

import pytest
import requests
import yaml
from openapi_core import OpenAPI
from openapi_core.contrib.requests import (
    RequestsOpenAPIRequest,
    RequestsOpenAPIResponse,
)
from openapi_core.exceptions import OpenAPIError

from mdupload.sandbox import DEMO_GROUP, DEMO_MANGA, DOCS_GROUP, SandboxConfig, start_sandbox
from mdupload.sandbox.api import HANDLERS, URL_MAP
from tests.spec_deviations import KNOWN_DEVIATIONS, SPEC_5_10, SPEC_5_12
from tests.test_sandbox import CORPUS, Api, image

ROOT = Path(__file__).resolve().parents[1]
SPEC_DIRS = (ROOT / "tests" / "spec", ROOT.parent / "shared" / "spec")  # the copy first, then ../shared/spec
OPERATION_IDS = {SPEC_5_12: {"upload-check-approval-required": "UploadCheckApprovalRequired"}}


@cache
def _load(name: str) -> dict:
    path = next((d / name for d in SPEC_DIRS if (d / name).exists()), None)
    assert path is not None, f"{name} is neither in tests/spec/ nor in ../shared/spec/"
    return yaml.load(path.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def _operations(spec: dict) -> dict[str, dict]:
    return {op["operationId"]: op for item in spec["paths"].values() for op in item.values()
            if isinstance(op, dict) and "operationId" in op}


def spec_of(endpoint: str) -> str:
    for deviation in KNOWN_DEVIATIONS:
        if deviation.patch is None and endpoint in deviation.operations:
            return deviation.specs[0]
    return SPEC_5_10


def validators(api_url: str) -> dict[str, OpenAPI]:
    """One validator per spec file, the known deviations applied, serving at the sandbox's URL."""
    built = {}
    for name in (SPEC_5_10, SPEC_5_12):
        spec = copy.deepcopy(_load(name))
        ids = OPERATION_IDS.get(name, {})
        by_id = _operations(spec)
        mine = {e: by_id[ids.get(e, e)] for e in HANDLERS if spec_of(e) == name}
        for deviation in KNOWN_DEVIATIONS:
            if deviation.patch is not None and name in deviation.specs:
                deviation.patch(spec, mine)
        spec["servers"] = [{"url": api_url}]
        built[name] = OpenAPI.from_dict(spec)
    return built


class Recorder:
    """Calls through plain requests, keeping every exchange and whether its request is meant to be valid."""

    def __init__(self, user: Api):
        self.user = user
        self.exchanges: list[tuple[requests.Response, bool]] = []

    def __call__(self, method: str, path: str, *, valid: bool = True, auth: bool = True, **kwargs):
        headers = dict(self.user.http.headers) if auth else {}
        answer = requests.request(method, self.user.sandbox.api_url + path, headers=headers, timeout=30, **kwargs)
        self.exchanges.append((answer, valid))
        return answer


def scenario(call: Recorder, sandbox) -> None:
    """A tour of every operation, with some refusals."""
    call("GET", "/auth/check", auth=False, valid=False)  # the spec wants a token; the answer says "not logged in"
    call("GET", "/auth/check")
    call("GET", "/upload", auth=False, valid=False)  # 401: the spec requires the Bearer token
    assert call("GET", "/upload").status_code == 404
    begin = {"manga": DEMO_MANGA, "groups": [DEMO_GROUP]}
    call("POST", "/upload/begin", json={**begin, "volume": "1"}, valid=False)
    session = call("POST", "/upload/begin", json=begin).json()["data"]["id"]
    assert call("POST", "/upload/begin", json=begin).status_code == 409
    files = [("file1", ("1.png", image(), "image/png")), ("file2", ("2.jpg", image("JPEG"), "image/jpeg")),
             ("file3", ("3.gif", image("GIF"), "image/gif")),
             ("file4", ("4.webp", (CORPUS / "hopper.webp").read_bytes(), "image/webp"))]
    uploaded = call("POST", f"/upload/{session}", files=files).json()
    assert uploaded["result"] == "ok" and len(uploaded["errors"]) == 1 and len(uploaded["data"]) == 3
    ids = [f["id"] for f in uploaded["data"]]
    call("POST", f"/upload/{session}", files=[("file", ("5.png", image(colour=5), "image/png"))])
    call("GET", "/upload", params={"includes[]": "upload_session_file"})
    assert call("DELETE", f"/upload/{session}/{ids[2]}").status_code == 200
    assert call("DELETE", f"/upload/{session}/{ids[2]}").status_code == 404
    assert call("DELETE", f"/upload/{session}/batch", json=[ids[1]]).status_code == 200
    draft = {"volume": None, "chapter": "1", "title": None, "translatedLanguage": "en"}
    call("POST", f"/upload/{session}/commit", json={"chapterDraft": draft, "pageOrder": ids[:1]}, valid=False)
    call("POST", f"/upload/{session}/commit", valid=False,
         json={"chapterDraft": {**draft, "chapter": "01"}, "pageOrder": ids[:1], "termsAccepted": True})
    chapter = call("POST", f"/upload/{session}/commit",
                   json={"chapterDraft": draft, "pageOrder": ids[:1], "termsAccepted": True}).json()["data"]["id"]
    assert call("POST", f"/upload/begin/{chapter}", json={"version": 2}).status_code == 409
    edit = call("POST", f"/upload/begin/{chapter}", json={"version": 1}).json()["data"]["id"]
    call("GET", "/upload", params={"includes[]": "upload_session_file"})
    assert call("DELETE", f"/upload/{edit}").status_code == 200
    call("POST", "/upload/check-approval-required", json={"manga": DEMO_MANGA, "locale": "pt-br"})
    assert call("POST", "/upload/check-approval-required", json={"manga": chapter, "locale": "en"}).status_code == 404
    query = {"manga": DEMO_MANGA, "chapter": "1", "translatedLanguage[]": ["en"], "groups[]": [DEMO_GROUP],
             "includeUnavailable": "1", "contentRating[]": ["safe", "suggestive", "erotica", "pornographic"],
             "limit": 100}
    assert len(call("GET", "/chapter", params=query).json()["data"]) == 1
    call("GET", "/chapter", params={**query, "includeFuturePublishAt": "1"})
    call("GET", "/chapter", params={"limit": 500}, valid=False)
    call("GET", f"/chapter/{chapter}", params={"includes[]": ["manga", "scanlation_group", "user"]})
    assert call("GET", f"/chapter/{session}").status_code == 404
    call("GET", f"/at-home/server/{chapter}", params={"forcePort443": "false"}, auth=False)
    assert call("GET", f"/at-home/server/{session}", auth=False).status_code == 404
    call("GET", "/chapter", params={"manga": DEMO_MANGA, "order[volume]": "asc", "order[chapter]": "desc"})
    call("GET", "/chapter", params={"uploader": sandbox.state()["accounts"][0]["userId"], "limit": 5, "offset": 0})
    assert call("GET", "/chapter", params={"order[pages]": "asc"}).status_code == 400  # the spec allows any key
    assert call("GET", f"/manga/{DEMO_MANGA}").json()["data"]["attributes"]["availableTranslatedLanguages"] == ["en"]
    assert call("GET", f"/manga/{DOCS_GROUP}").status_code == 404
    assert len(call("GET", "/manga", params={"title": "sandbox chron", "limit": 5}).json()["data"]) == 1
    call("GET", "/manga", params={"limit": 500}, valid=False)
    call("GET", f"/manga/{DEMO_MANGA}/feed", params={"translatedLanguage[]": ["en"], "order[chapter]": "asc",
                                                     "limit": 500, "includeEmptyPages": "0"})
    call("GET", f"/manga/{DEMO_MANGA}/aggregate", params={"translatedLanguage[]": ["en"], "groups[]": [DEMO_GROUP]})
    assert call("GET", f"/group/{DOCS_GROUP}").json()["data"]["attributes"]["name"]
    assert call("GET", f"/group/{DEMO_MANGA}").status_code == 404
    call("GET", "/group", params={"name": "scans", "limit": 10})
    call("GET", "/user/me")
    assert call("GET", "/user/me", auth=False, valid=False).status_code == 401
    assert call("PUT", f"/chapter/{chapter}", json={"title": "Renamed", "version": 1}).json()["data"]["attributes"][
        "version"] == 2
    assert call("PUT", f"/chapter/{chapter}", json={"title": "Again", "version": 1}).status_code == 409
    assert call("PUT", f"/chapter/{chapter}", json={"chapter": "01", "version": 2}).status_code == 400
    assert call("DELETE", f"/chapter/{session}").status_code == 404
    assert call("DELETE", f"/chapter/{chapter}").status_code == 200
    assert call("GET", f"/chapter/{chapter}").status_code == 404


def test_sandbox_requests_and_answers_match_the_spec_with_the_known_deviations():
    with start_sandbox(SandboxConfig(rate_limits=False, processing_delay=0)) as sandbox:
        call = Recorder(Api(sandbox))
        scenario(call, sandbox)
        checkers = validators(sandbox.api_url)
        adapter = URL_MAP.bind("sandbox")
        covered, failures = set(), []
        for answer, valid in call.exchanges:
            path = answer.request.path_url.split("?")[0]
            endpoint, _args = adapter.match(path, method=answer.request.method)
            covered.add(endpoint)
            checker = checkers[spec_of(endpoint)]
            request = RequestsOpenAPIRequest(answer.request)
            where = f"{answer.request.method} {path} -> {answer.status_code}"
            try:
                checker.validate_request(request)
                if not valid:
                    failures.append(f"{where}: the spec accepts a request the scenario meant to be invalid")
            except OpenAPIError as problem:
                if valid:
                    failures.append(f"{where}: request: {problem!r} {getattr(problem, '__cause__', '')!r}")
            try:
                checker.validate_response(request, RequestsOpenAPIResponse(answer))
            except OpenAPIError as problem:
                failures.append(f"{where}: answer: {problem!r} {getattr(problem, '__cause__', '')!r}")
            if answer.status_code >= 400:
                assert answer.json()["result"] == "error", where
                assert all(set(e) == {"id", "status", "title", "detail", "context"} for e in answer.json()["errors"])
        assert failures == [], "\n".join(failures)
        assert covered == set(HANDLERS), "every operation the sandbox implements is validated"
        named = {op for deviation in KNOWN_DEVIATIONS for op in deviation.operations if op != "*"}
        assert named <= covered, "every known deviation is exercised"


def test_the_spec_copies_are_those_of_the_shared_folder():
    shared = ROOT.parent / "shared" / "spec"
    for name in (SPEC_5_10, SPEC_5_12):
        copy_ = ROOT / "tests" / "spec" / name
        assert copy_.exists(), f"tests/spec/{name} is missing"
        if (shared / name).exists():
            assert copy_.read_bytes() == (shared / name).read_bytes(), f"tests/spec/{name} differs from ../shared"


@pytest.mark.parametrize("deviation", KNOWN_DEVIATIONS, ids=lambda d: d.name)
def test_each_known_deviation_changes_the_spec_it_names(deviation):
    if deviation.patch is None:
        name = deviation.specs[0]
        assert all(OPERATION_IDS.get(name, {}).get(op, op) in _operations(_load(name)) for op in deviation.operations)
        assert not any(op in _operations(_load(SPEC_5_10)) for op in deviation.operations)
        return
    for name in deviation.specs:
        spec = copy.deepcopy(_load(name))
        by_id = _operations(spec)
        ids = OPERATION_IDS.get(name, {})
        mine = {e: by_id[ids.get(e, e)] for e in HANDLERS if spec_of(e) == name}
        before = copy.deepcopy(spec)
        deviation.patch(spec, mine)
        assert spec != before, f"{deviation.name} changes nothing in {name}: is it still a deviation?"
