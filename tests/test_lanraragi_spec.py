"""The sandbox LANraragi's answers, checked against LANraragi's own OpenAPI document.

tests/spec/lanraragi-api.yaml is an unmodified copy of the server's tools/openapi.yaml (see
tests/spec/LANRARAGI-SOURCE.md). Every operation the sandbox implements is called for every status
it can answer, over real HTTP; each answer is validated with openapi-core. Where the real server
answers differently from its own spec, the sandbox does too: those answers are listed, with the
reason, in KNOWN_DEVIATIONS, and must still fail validation, so that the list stays true.
"""

import base64
import hashlib
import io
import zipfile
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests
from openapi_core import OpenAPI
from openapi_core.exceptions import OpenAPIError
from openapi_core.testing import MockRequest, MockResponse

from mdupload.sandbox.lanraragi import start_lanraragi

SPEC = Path(__file__).parent / "spec" / "lanraragi-api.yaml"
SPEC_SERVER = "https://lrr.tvc-16.science"  # the spec's `servers` entry: requests are matched against it
KEY = "spec-test-key"
AUTH = {"Authorization": "Bearer " + base64.b64encode(KEY.encode()).decode()}
UNKNOWN_ID = "0" * 40

KNOWN_DEVIATIONS = {
    "upload without the key": "401 is not among the upload's responses; the OpenAPI plugin's security check "
                              "answers {errors, status}",
    "add to a category without the key": "401 is not among addToCategory's responses (same security check)",
    "upload with a malformed category_id": "the OpenAPI plugin's input validation answers 400 {errors, status}, "
                                           "not the OperationResponse the spec gives for 400",
    "add to a category the server does not have": "add_to_category fails with 400 and an OperationResponse; the "
                                                  "spec lists only 200 and 423",
    "list categories": "`pinned` is the text Redis hands back (\"0\"); the spec's enum wants the integer 0 or 1",
    "categories of an archive": "the same category documents, `pinned` as text",
    "update metadata without the key": "401 is not among updateArchiveMetadata's responses (same security check)",
    "delete without the key": "401 is not among deleteArchive's responses (same security check)",
}

SCENARIOS = {}


def scenario(name, operation, status):
    def register(run):
        SCENARIOS[name] = (operation, status, run)
        return run
    return register


def cbz_bytes(marker: bytes) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("001.png", b"\x89PNG\r\n\x1a\n" + marker)
    return buffer.getvalue()


def put_archive(lrr, name, data, *, headers=AUTH, checksum=None, **form):
    form["file_checksum"] = checksum if checksum is not None else hashlib.sha1(data).hexdigest()
    return requests.put(f"{lrr.url}/api/archives/upload", headers=headers, data=form,
                        files={"file": (name, data, "application/zip")}, timeout=30)


def stored(lrr, name="one.cbz", marker=b"one", **form):
    response = put_archive(lrr, name, cbz_bytes(marker), **form)
    assert response.status_code == 200
    return response.json()["id"]


def get(lrr, path, **params):
    return requests.get(f"{lrr.url}{path}", params=params, timeout=30)


# --- PUT /api/archives/upload ---


@scenario("upload", "uploadArchive", 200)
def _(lrr, category):
    data = cbz_bytes(b"one")
    response = put_archive(lrr, "one.cbz", data, title="One", tags="series:S, language:en", category_id=category)
    assert response.json() == {"operation": "upload", "success": 1, "id": hashlib.sha1(data[:512_000]).hexdigest()}
    [archive] = lrr.state()["archives"]
    assert archive["title"] == "One" and archive["categories"] == [category]
    assert archive["tags"][:2] == ["series:S", "language:en"] and archive["tags"][2].startswith("date_added:")
    return response


@scenario("upload the same file again", "uploadArchive", 409)
def _(lrr, category):
    arcid = stored(lrr)
    response = put_archive(lrr, "one.cbz", cbz_bytes(b"one"))
    assert response.json()["id"] == arcid
    assert response.json()["error"].startswith("This file already exists in the Library.")
    return response


@scenario("upload another file under a stored name", "uploadArchive", 409)
def _(lrr, category):
    stored(lrr)
    other = cbz_bytes(b"two")
    response = put_archive(lrr, "one.cbz", other)
    # The id is the one computed from the bytes just sent, not the stored archive's.
    assert response.json()["id"] == hashlib.sha1(other).hexdigest()
    assert response.json()["error"].startswith("A file with the same name is present in the Library.")
    return response


@scenario("upload with an uppercase checksum", "uploadArchive", 417)
def _(lrr, category):
    data = cbz_bytes(b"one")
    response = put_archive(lrr, "one.cbz", data, checksum=hashlib.sha1(data).hexdigest().upper())
    assert response.json()["error"].startswith("Checksum mismatch")
    assert lrr.state()["archives"] == []
    return response


@scenario("upload damaged on the way", "uploadArchive", 417)
def _(lrr, category):
    lrr.faults.corrupt_uploads = 1
    data = cbz_bytes(b"one")
    response = put_archive(lrr, "one.cbz", data)
    assert f"expected {hashlib.sha1(data).hexdigest()}, got " in response.json()["error"]
    assert lrr.faults.corrupt_uploads == 0
    return response


@scenario("upload a locked file name", "uploadArchive", 423)
def _(lrr, category):
    lrr.faults.locked["one.cbz"] = 1
    response = put_archive(lrr, "one.cbz", cbz_bytes(b"one"))
    assert response.json() == {"operation": "upload", "success": 0, "error": "Locked resource: one.cbz."}
    assert put_archive(lrr, "one.cbz", cbz_bytes(b"one")).status_code == 200  # the lock was for one attempt
    return response


@scenario("upload an unsupported file", "uploadArchive", 415)
def _(lrr, category):
    response = put_archive(lrr, "notes.txt", b"hello")
    assert response.json()["error"] == "Unsupported file extension (notes.txt)"
    return response


@scenario("upload without a file", "uploadArchive", 400)
def _(lrr, category):
    response = requests.put(f"{lrr.url}/api/archives/upload", headers=AUTH, data={"title": "x"}, timeout=30)
    assert response.json()["error"] == "No file attached"
    return response


@scenario("upload with a malformed category_id", "uploadArchive", 400)
def _(lrr, category):
    response = put_archive(lrr, "one.cbz", cbz_bytes(b"one"), category_id="SET_1")
    assert response.json()["errors"][0]["path"] == "/body/category_id"
    return response


@scenario("upload without the key", "uploadArchive", 401)
def _(lrr, category):
    response = put_archive(lrr, "one.cbz", cbz_bytes(b"one"), headers={"Authorization": "Bearer d3Jvbmc="})
    assert lrr.state()["archives"] == []
    return response


# --- GET /api/archives/{id}/metadata, /api/archives/{id}/categories, /api/archives ---


@scenario("metadata of a stored archive", "getArchiveMetadata", 200)
def _(lrr, category):
    arcid = stored(lrr, title="One")
    response = get(lrr, f"/api/archives/{arcid}/metadata")
    assert response.json()["arcid"] == arcid and response.json()["filename"] == "one"
    return response


@scenario("metadata of an unknown id", "getArchiveMetadata", 400)
def _(lrr, category):
    response = get(lrr, f"/api/archives/{UNKNOWN_ID}/metadata")
    assert response.json()["error"] == "This ID doesn&#39;t exist on the server."  # XML-escaped, as the server does
    return response


@scenario("categories of an archive", "getArchiveCategories", 200)
def _(lrr, category):
    arcid = stored(lrr, category_id=category)
    response = get(lrr, f"/api/archives/{arcid}/categories")
    assert [c["id"] for c in response.json()["categories"]] == [category]
    return response


@scenario("list archives", "getAllArchives", 200)
def _(lrr, category):
    arcid = stored(lrr)
    response = get(lrr, "/api/archives")
    assert [a["arcid"] for a in response.json()] == [arcid]
    return response


# --- categories ---


@scenario("list categories", "getCategoryList", 200)
def _(lrr, category):
    response = get(lrr, "/api/categories")
    assert [c["id"] for c in response.json()] == [category]
    return response


@scenario("add to a category", "addToCategory", 200)
def _(lrr, category):
    arcid = stored(lrr, title="One")
    response = requests.put(f"{lrr.url}/api/categories/{category}/{arcid}", headers=AUTH, timeout=30)
    assert response.json()["successMessage"] == "Added &quot;One&quot; to category &quot;Manga&quot;!"
    assert lrr.state()["archives"][0]["categories"] == [category]
    return response


@scenario("add to a category the server does not have", "addToCategory", 400)
def _(lrr, category):
    arcid = stored(lrr)
    response = requests.put(f"{lrr.url}/api/categories/SET_1234567890/{arcid}", headers=AUTH, timeout=30)
    assert response.json()["error"] == "SET_1234567890 doesn&#39;t exist in the database!"
    return response


@scenario("add to a locked category", "addToCategory", 423)
def _(lrr, category):
    arcid = stored(lrr)
    lrr.faults.locked[category] = 1
    return requests.put(f"{lrr.url}/api/categories/{category}/{arcid}", headers=AUTH, timeout=30)


@scenario("add to a category without the key", "addToCategory", 401)
def _(lrr, category):
    arcid = stored(lrr)
    return requests.put(f"{lrr.url}/api/categories/{category}/{arcid}", timeout=30)


# --- what a client automates around an upload: metadata, deletion, server info ---


@scenario("update metadata", "updateArchiveMetadata", 200)
def _(lrr, category):
    arcid = stored(lrr, title="Old", tags="series:Old")
    response = requests.put(f"{lrr.url}/api/archives/{arcid}/metadata", headers=AUTH, timeout=30,
                            params={"title": "New", "tags": "series:New, language:english"})
    assert response.json()["success"] == 1
    [archive] = lrr.state()["archives"]
    assert (archive["title"], archive["tags"]) == ("New", ["series:New", "language:english"])
    return response


@scenario("update the metadata of an unknown archive", "updateArchiveMetadata", 400)
def _(lrr, category):
    return requests.put(f"{lrr.url}/api/archives/{UNKNOWN_ID}/metadata", params={"title": "x"}, headers=AUTH,
                        timeout=30)


@scenario("update the metadata of a locked archive", "updateArchiveMetadata", 423)
def _(lrr, category):
    arcid = stored(lrr)
    lrr.faults.locked[arcid] = 1
    return requests.put(f"{lrr.url}/api/archives/{arcid}/metadata", params={"title": "x"}, headers=AUTH, timeout=30)


@scenario("update metadata without the key", "updateArchiveMetadata", 401)
def _(lrr, category):
    arcid = stored(lrr, title="Kept")
    response = requests.put(f"{lrr.url}/api/archives/{arcid}/metadata", params={"title": "x"}, timeout=30)
    assert lrr.state()["archives"][0]["title"] == "Kept"
    return response


@scenario("delete an archive", "deleteArchive", 200)
def _(lrr, category):
    arcid = stored(lrr, category_id=category)
    response = requests.delete(f"{lrr.url}/api/archives/{arcid}", headers=AUTH, timeout=30)
    assert (response.json()["success"], response.json()["filename"]) == (1, "one.cbz")
    assert lrr.state()["archives"] == [] and lrr.state()["categories"][0]["archives"] == []
    return response


@scenario("delete an unknown archive", "deleteArchive", 200)
def _(lrr, category):
    response = requests.delete(f"{lrr.url}/api/archives/{UNKNOWN_ID}", headers=AUTH, timeout=30)
    assert (response.json()["success"], response.json()["filename"]) == (0, "0")
    return response


@scenario("delete a locked archive", "deleteArchive", 423)
def _(lrr, category):
    arcid = stored(lrr)
    lrr.faults.locked[arcid] = 1
    return requests.delete(f"{lrr.url}/api/archives/{arcid}", headers=AUTH, timeout=30)


@scenario("delete without the key", "deleteArchive", 401)
def _(lrr, category):
    stored(lrr)
    response = requests.delete(f"{lrr.url}/api/archives/{hashlib.sha1(cbz_bytes(b'one')).hexdigest()}", timeout=30)
    assert len(lrr.state()["archives"]) == 1
    return response


@scenario("server info", "getServerInfo", 200)
def _(lrr, category):
    stored(lrr)
    response = get(lrr, "/api/info")
    assert response.json()["total_archives"] == 1 and response.json()["has_password"] is True
    return response


# --- GET /api/search ---


@scenario("search", "searchArchives", 200)
def _(lrr, category):
    stored(lrr, title="Alpha")
    arcid = stored(lrr, name="two.cbz", marker=b"two", title="Beta", tags="series:Beta")
    response = get(lrr, "/api/search", filter="beta")
    assert [a["arcid"] for a in response.json()["data"]] == [arcid]
    assert (response.json()["recordsFiltered"], response.json()["recordsTotal"]) == (1, 2)
    return response


@scenario("search an empty library", "searchArchives", 204)
def _(lrr, category):
    response = get(lrr, "/api/search")
    assert response.content == b""
    return response


# --- the checks ---


@pytest.fixture(scope="module")
def openapi():
    return OpenAPI.from_file_path(str(SPEC))


@pytest.fixture
def lrr():
    with start_lanraragi(api_key=KEY, categories=["Manga"]) as server:
        yield server


def validate(openapi, response):
    url = urlsplit(response.request.url)
    request = MockRequest(SPEC_SERVER, response.request.method, url.path)
    answer = MockResponse(response.content, status_code=response.status_code,
                          content_type=response.headers.get("Content-Type"))
    openapi.validate_response(request, answer)


@pytest.mark.parametrize("name", SCENARIOS)
def test_answers_follow_the_spec_or_a_known_deviation(name, openapi, lrr):
    _operation, status, run = SCENARIOS[name]
    response = run(lrr, lrr.state()["categories"][0]["id"])
    assert response.status_code == status
    if name in KNOWN_DEVIATIONS:
        with pytest.raises(OpenAPIError):
            validate(openapi, response)
    else:
        validate(openapi, response)


def test_every_operation_the_sandbox_serves_is_checked():
    assert {operation for operation, _status, _run in SCENARIOS.values()} == {
        "uploadArchive", "getArchiveMetadata", "getArchiveCategories", "getAllArchives", "getCategoryList",
        "addToCategory", "searchArchives", "updateArchiveMetadata", "deleteArchive", "getServerInfo"}
    assert set(KNOWN_DEVIATIONS) <= set(SCENARIOS)


def test_the_spec_copy_is_the_one_the_source_note_describes():
    note = (SPEC.parent / "LANRARAGI-SOURCE.md").read_text()
    assert hashlib.sha256(SPEC.read_bytes()).hexdigest() in note
