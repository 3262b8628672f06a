"""A local, faithful LANraragi: the part of its HTTP API that archiving uses, for tests and demos.

It is an independent implementation of the contract (../shared/spec/lanraragi-api.yaml and
API-NOTES.md) and imports nothing from the client. Its answers follow LANraragi's own code
(Controller/Api/Archive.pm and Category.pm, Model/Upload.pm and Category.pm, Utils/Login.pm, and
the OpenAPI plugin's security and validation), quirks included:

- the upload checks the checksum before anything else about the file, as a string against the
  lowercase hex digest (an uppercase checksum gets 417), then takes a lock on the file name (423
  while another upload of that name runs), then checks the extension (415);
- the archive id is the SHA-1 of the first 512,000 bytes; a second upload of that id, or of another
  file under a name already stored, gets 409 with the id computed from the bytes just received;
- a `category_id` naming no static category is ignored and the answer is still 200;
- the server adds a `date_added:<epoch>` tag; `/api/search` answers 204 with no body while the
  library is empty; category documents carry `pinned` as the text Redis hands back ("0");
- `PUT /api/archives/{id}/metadata` overwrites the title, tags and summary given in its query (400 for an
  unknown id); `DELETE /api/archives/{id}` answers 200 with the deleted file's name, or `filename: "0"`
  and `success: 0` for an unknown id (Model/Archive.pm returns the name, or 0); both answer 423 while
  the archive is locked; `GET /api/info` describes the server;
- with an API key set, the 🔑 operations need `Authorization: Bearer <base64 of the key>` and
  answer 401 `{"errors": [...], "status": 401}` without it; the public GETs stay open.

Faults for tests: damage the next uploads on the way in (-> 417), hold a lock on a file name or a
category for the next attempts (-> 423), drop the upload's `category_id`. Every request is logged
with whether it carried an Authorization header. `GET /_sandbox/state` describes the library.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Self

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, Rule
from werkzeug.serving import WSGIRequestHandler, make_server
from werkzeug.wrappers import Request, Response

ID_PREFIX_BYTES = 512_000
CHUNK_BYTES = 1024 * 1024
PAGE_SIZE = 100  # the server's default archives per page, for /api/search
FIRST_CATEGORY_TIME = 1_700_000_000  # category ids are "SET_" + a creation time
ARCHIVE_NAME = re.compile(r"^.+\.(?:zip|rar|7z|tar|tar\.gz|lzma|xz|cbz|cbr|cb7|cbt|cbw|pdf|epub|tar\.zst|zst)$",
                          re.IGNORECASE)
IMAGE_NAME = re.compile(r"^.+\.(?:png|jpg|gif|bmp|jpeg|jfif|webp|avif|heif|heic|jxl)$", re.IGNORECASE)
PROTECTED = frozenset({"upload", "add_to_category", "update_metadata", "delete_archive"})  # the operations with `security: api_key` in the spec
SERVER_VERSION = "0.9.8"  # the version of ../shared/spec/lanraragi-api.yaml
DUPLICATE_SUFFIX = " Enable replace duplicated archive in config to replace old ones."


@dataclass
class Faults:
    """What goes wrong on purpose; tests may change these between requests."""

    corrupt_uploads: int = 0  # the next N uploads arrive with one byte changed
    locked: dict[str, int] = field(default_factory=dict)  # file name or category id -> the next N attempts get 423
    ignore_category_id: bool = False  # the upload's category_id is dropped (and the answer is still 200)


@dataclass
class _Archive:
    id: str
    filename: str  # as stored, with its extension
    title: str
    tags: list[str]
    summary: str | None
    size: int
    sha1: str
    pagecount: int

    def document(self) -> dict:
        stem, _dot, extension = self.filename.rpartition(".")
        return {"arcid": self.id, "title": self.title, "filename": stem, "tags": ", ".join(self.tags),
                "summary": self.summary, "isnew": "true", "extension": extension.lower(), "progress": 0,
                "pagecount": self.pagecount, "lastreadtime": 0, "size": self.size}


@dataclass
class _Category:
    id: str
    name: str
    search: str = ""  # a dynamic category's predicate; "" for a static one
    archives: list[str] = field(default_factory=list)

    def document(self) -> dict:
        return {"archives": list(self.archives) if not self.search else [], "id": self.id, "name": self.name,
                "pinned": "0", "search": self.search}


class LanraragiApp:
    """The WSGI application; all state lives here, behind one lock."""

    def __init__(self, api_key: str | None = None, faults: Faults | None = None, *,
                 clock: Callable[[], float] = time.time):
        self.faults = faults or Faults()
        self._bearer = "Bearer " + base64.b64encode(api_key.encode()).decode("ascii") if api_key else None
        self._clock = clock
        self._lock = threading.Lock()
        self._archives: dict[str, _Archive] = {}
        self._categories: dict[str, _Category] = {}
        self._uploading: set[str] = set()
        self._log: list[dict] = []
        self.on_request: Callable[[dict], None] | None = None  # called with every request log entry
        self._map = Map([
            Rule("/api/archives", endpoint="list_archives", methods=["GET"]),
            Rule("/api/archives/upload", endpoint="upload", methods=["PUT"]),
            Rule("/api/archives/<arcid>/metadata", endpoint="metadata", methods=["GET"]),
            Rule("/api/archives/<arcid>/metadata", endpoint="update_metadata", methods=["PUT"]),
            Rule("/api/archives/<arcid>", endpoint="delete_archive", methods=["DELETE"]),
            Rule("/api/info", endpoint="info", methods=["GET"]),
            Rule("/api/archives/<arcid>/categories", endpoint="archive_categories", methods=["GET"]),
            Rule("/api/categories", endpoint="list_categories", methods=["GET"]),
            Rule("/api/categories/<catid>/<arcid>", endpoint="add_to_category", methods=["PUT"]),
            Rule("/api/search", endpoint="search", methods=["GET"]),
            Rule("/_sandbox/state", endpoint="state", methods=["GET"]),
        ])

    def __call__(self, environ, start_response):
        request = Request(environ)
        response = self._dispatch(request)
        entry = {"method": request.method, "host": request.host, "path": request.path,
                 "status": response.status_code, "authorization": "Authorization" in request.headers}
        with self._lock:
            self._log.append(entry)
        if self.on_request is not None:
            self.on_request(dict(entry))
        return response(environ, start_response)

    # --- test helpers ---

    def add_category(self, name: str, search: str = "") -> str:
        with self._lock:
            catid = f"SET_{FIRST_CATEGORY_TIME + len(self._categories)}"
            self._categories[catid] = _Category(catid, name, search)
        return catid

    def requests(self) -> list[dict]:
        with self._lock:
            return [dict(entry) for entry in self._log]

    def state(self) -> dict:
        with self._lock:
            return {
                "archives": [
                    {"id": a.id, "filename": a.filename, "title": a.title, "tags": list(a.tags),
                     "categories": [c.id for c in self._categories.values() if a.id in c.archives],
                     "size": a.size, "sha1": a.sha1, "pagecount": a.pagecount, "summary": a.summary}
                    for a in self._archives.values()
                ],
                "categories": [{"id": c.id, "name": c.name, "search": c.search, "archives": list(c.archives)}
                               for c in self._categories.values()],
            }

    # --- HTTP ---

    def _dispatch(self, request: Request) -> Response:
        try:
            endpoint, args = self._map.bind_to_environ(request.environ).match()
        except HTTPException:
            return _json({"errors": [{"message": "Not Found.", "path": "/"}], "status": 404}, 404)
        if endpoint in PROTECTED and self._bearer and request.headers.get("Authorization") != self._bearer:
            return _json({"errors": [{"message": "Unauthorized", "path": "/security/0/api_key"}], "status": 401}, 401)
        return getattr(self, f"_{endpoint}")(request, **args)

    def _upload(self, request: Request) -> Response:
        invalid = _validate([("/body/category_id", request.form.get("category_id"), 14, 14, None),
                             ("/body/file_checksum", request.form.get("file_checksum"), None, None,
                              r"^[a-fA-F0-9]{40}$")])
        if invalid:
            return invalid
        upload = request.files.get("file")
        if upload is None or not upload.filename:
            return _operation("upload", 400, error="No file attached")
        stream = upload.stream
        with self._lock:
            damage = self.faults.corrupt_uploads > 0
            if damage:
                self.faults.corrupt_uploads -= 1
        if damage:
            _change_one_byte(stream)
        sha1, arcid, size = _digests(stream)
        expected = request.form.get("file_checksum")
        if expected and expected != sha1:
            return _operation("upload", 417, error=f"Checksum mismatch: expected {expected}, got {sha1}.")
        filename = upload.filename.replace("\\", "/").rpartition("/")[2]
        if self._locked(filename, hold=True):
            return _operation("upload", 423, error=f"Locked resource: {filename}.")
        try:
            return self._store(request, stream, filename, arcid, sha1, size)
        finally:
            with self._lock:
                self._uploading.discard(filename)

    def _store(self, request: Request, stream, filename: str, arcid: str, sha1: str, size: int) -> Response:
        if not ARCHIVE_NAME.match(filename):
            return _operation("upload", 415, error=f"Unsupported file extension ({filename})")
        pagecount = _count_pages(stream)
        with self._lock:
            if arcid in self._archives or any(a.filename == filename for a in self._archives.values()):
                message = ("This file already exists in the Library." if arcid in self._archives
                           else "A file with the same name is present in the Library.")
                return _operation("upload", 409, error=message + DUPLICATE_SUFFIX, id=arcid)
            tags = _split_tags(request.form.get("tags", ""))
            tags.append(f"date_added:{int(self._clock())}")
            self._archives[arcid] = _Archive(
                id=arcid, filename=filename, title=request.form.get("title") or filename.rpartition(".")[0],
                tags=list(dict.fromkeys(tags)), summary=request.form.get("summary") or None, size=size, sha1=sha1,
                pagecount=pagecount)
            catid = request.form.get("category_id")
            if catid and not self.faults.ignore_category_id:
                self._add(catid, arcid)  # a failure here only changes a message the answer does not carry
        return _operation("upload", 200, id=arcid)

    def _metadata(self, request: Request, arcid: str) -> Response:
        invalid = _validate([("/id", arcid, 40, 40, None)])
        if invalid:
            return invalid
        with self._lock:
            archive = self._archives.get(arcid)
            if archive is None:
                return _api_response("metadata", "This ID doesn't exist on the server.")
            return _json(archive.document())

    def _update_metadata(self, request: Request, arcid: str) -> Response:
        invalid = _validate([("/id", arcid, 40, 40, None)])
        if invalid:
            return invalid
        if self._locked(arcid):
            return _operation("update_metadata", 423, error=f"Locked resource: {arcid}.")
        with self._lock:
            archive = self._archives.get(arcid)
            if archive is None:
                return _api_response("update_metadata", "This ID doesn't exist on the server.")
            args = request.args
            if "title" in args:
                archive.title = args["title"]
            if "tags" in args:
                archive.tags = list(dict.fromkeys(_split_tags(args["tags"])))
            if "summary" in args:
                archive.summary = args["summary"] or None
        return _api_response("update_metadata", None, f"Updated metadata for \"{archive.title}\"!")

    def _delete_archive(self, request: Request, arcid: str) -> Response:
        invalid = _validate([("/id", arcid, 40, 40, None)])
        if invalid:
            return invalid
        if self._locked(arcid):
            return _operation("delete_archive", 423, error=f"Locked resource: {arcid}.")
        with self._lock:
            archive = self._archives.pop(arcid, None)
            for category in self._categories.values():
                if arcid in category.archives:
                    category.archives.remove(arcid)
        return _json({"operation": "delete_archive", "id": arcid, "filename": archive.filename if archive else "0",
                      "success": int(archive is not None)})

    def _info(self, request: Request) -> Response:
        with self._lock:
            total = len(self._archives)
        return _json({"name": "LANraragi", "motd": "Welcome to this Library running LANraragi!",
                      "version": SERVER_VERSION, "version_name": "Sandbox", "version_desc": "mdupload's local stand-in",
                      "has_password": self._bearer is not None, "debug_mode": False, "nofun_mode": False,
                      "archives_per_page": PAGE_SIZE, "server_resizes_images": False, "server_tracks_progress": True,
                      "authenticated_progress": False, "total_pages_read": 0, "total_archives": total,
                      "cache_last_cleared": int(self._clock()), "excluded_namespaces": ["date_added"]})

    def _archive_categories(self, request: Request, arcid: str) -> Response:
        invalid = _validate([("/id", arcid, 40, 40, None)])
        if invalid:
            return invalid
        with self._lock:
            found = [c.document() for c in self._categories.values() if not c.search and arcid in c.archives]
        return _json({"operation": "find_arc_categories", "categories": found, "success": 1})

    def _list_archives(self, request: Request) -> Response:
        with self._lock:
            return _json([a.document() for a in self._archives.values()])

    def _list_categories(self, request: Request) -> Response:
        with self._lock:
            return _json([c.document() for c in self._categories.values()])

    def _add_to_category(self, request: Request, catid: str, arcid: str) -> Response:
        invalid = _validate([("/id", catid, 14, 14, None), ("/archive", arcid, 15, 40, None)])
        if invalid:
            return invalid
        if self._locked(catid):
            return _operation("add_to_category", 423, error=f"Locked resource: {catid}.")
        with self._lock:
            error = self._add(catid, arcid)
            if error is not None:
                return _api_response("add_to_category", error)
            title, name = self._archives[arcid].title, self._categories[catid].name
        return _api_response("add_to_category", None, f'Added "{title}" to category "{name}"!')

    def _search(self, request: Request) -> Response:
        with self._lock:
            if not self._archives:
                return Response(status=204)
            archives = list(self._archives.values())
            category = self._categories.get(request.args.get("category", ""))
            if request.args.get("category"):
                archives = [a for a in archives if category is not None and a.id in category.archives]
            words = request.args.get("filter", "").strip().lower()
            if words:
                archives = [a for a in archives
                            if words in a.title.lower() or any(words in tag.lower() for tag in a.tags)]
            archives.sort(key=lambda a: a.title.lower())
            start = int(request.args.get("start") or 0)
            page = archives if start == -1 else archives[start:start + PAGE_SIZE]
            return _json({"data": [a.document() for a in page], "draw": 0, "recordsFiltered": len(archives),
                          "recordsTotal": len(self._archives)})

    def _state(self, request: Request) -> Response:
        return _json(self.state())

    # --- the model ---

    def _locked(self, resource: str, *, hold: bool = False) -> bool:
        """True when `resource` is locked (a fault, or an upload of that name still running); otherwise,
        with `hold`, lock it until the upload is over."""
        with self._lock:
            remaining = self.faults.locked.get(resource, 0)
            if remaining:
                self.faults.locked[resource] = remaining - 1
                return True
            if resource in self._uploading:
                return True
            if hold:
                self._uploading.add(resource)
            return False

    def _add(self, catid: str, arcid: str) -> str | None:
        """Add the archive to the static category (lock held); the error text when it cannot be done."""
        category = self._categories.get(catid)
        if category is None:
            return f"{catid} doesn't exist in the database!"
        if category.search:
            return f"{catid} is a favorite search/dynamic category, can't add archives to it."
        if arcid not in self._archives:
            return f"{arcid} does not exist in the database."
        if arcid not in category.archives:
            category.archives.append(arcid)
        return None


class _QuietHandler(WSGIRequestHandler):
    def log_request(self, code="-", size="-"):
        pass


class RunningLanraragi:
    """A LANraragi serving on a thread of this process; stop() or use it as a context manager."""

    def __init__(self, app: LanraragiApp, host: str, port: int, api_key: str | None = None):
        self.app = app
        self.api_key = api_key  # None: an open server
        self._server = make_server(host, port, app, threaded=True, request_handler=_QuietHandler)
        shown = "127.0.0.1" if host in ("0.0.0.0", "") else host
        self.url = f"http://{shown}:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="lanraragi-sandbox", daemon=True)
        self._thread.start()

    @property
    def faults(self) -> Faults:
        return self.app.faults

    def add_category(self, name: str, search: str = "") -> str:
        """Create a category (dynamic when `search` is given); return its id."""
        return self.app.add_category(name, search)

    def state(self) -> dict:
        return self.app.state()

    def requests(self) -> list[dict]:
        """Every request so far: method, host, path, status, and whether it carried an Authorization header."""
        return self.app.requests()

    def on_request(self, callback: Callable[[dict], None]) -> None:
        """Call `callback(entry)` with every request log entry as it is recorded."""
        self.app.on_request = callback

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join()
        self._server.server_close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start_lanraragi(api_key: str | None = None, host: str = "127.0.0.1", port: int = 0,
                    faults: Faults | None = None, categories: Iterable[str] = (),
                    clock: Callable[[], float] = time.time) -> RunningLanraragi:
    """Serve a fresh, empty library (with the named static categories) on a free port unless `port` is given."""
    app = LanraragiApp(api_key, faults, clock=clock)
    for name in categories:
        app.add_category(name)
    return RunningLanraragi(app, host, port, api_key)


# --- answers as the server words them ---


def _json(document, status: int = 200) -> Response:
    return Response(json.dumps(document), status=status, mimetype="application/json")


def _operation(operation: str, status: int, **fields) -> Response:
    """The upload's answers: {"operation", "success", ...}."""
    return _json({"operation": operation, "success": int(status == 200), **fields}, status)


def _api_response(operation: str, error: str | None, success_message: str = "") -> Response:
    """Utils/Generic.pm's render_api_response: 400 with the error, or 200; texts are XML-escaped."""
    return _json({"operation": operation, "error": _xml_escape(error or ""), "success": int(error is None),
                  "successMessage": "" if error else _xml_escape(success_message)}, 400 if error else 200)


def _validate(checks: list[tuple[str, str | None, int | None, int | None, str | None]]) -> Response | None:
    """The OpenAPI plugin's input validation of the few parameters that have rules: 400 and the errors."""
    errors = []
    for path, value, shortest, longest, pattern in checks:
        if value is None:
            continue
        if shortest is not None and len(value) < shortest:
            errors.append({"message": f"String is too short: {len(value)}/{shortest}.", "path": path})
        elif longest is not None and len(value) > longest:
            errors.append({"message": f"String is too long: {len(value)}/{longest}.", "path": path})
        elif pattern is not None and not re.search(pattern, value):
            errors.append({"message": f"String does not match {pattern}.", "path": path})
    return _json({"errors": errors, "status": 400}, 400) if errors else None


def _xml_escape(text: str) -> str:
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
            .replace("'", "&#39;"))


def _split_tags(tags: str) -> list[str]:
    return [tag.strip() for tag in re.split(r",\s?", tags) if tag.strip()]


def _digests(stream) -> tuple[str, str, int]:
    """(SHA-1 of the whole file, SHA-1 of its first 512,000 bytes = the archive id, size), read in chunks."""
    whole, prefix, size = hashlib.sha1(), hashlib.sha1(), 0
    stream.seek(0)
    while chunk := stream.read(CHUNK_BYTES):
        whole.update(chunk)
        prefix.update(chunk[: max(0, ID_PREFIX_BYTES - size)])
        size += len(chunk)
    return whole.hexdigest(), prefix.hexdigest(), size


def _change_one_byte(stream) -> None:
    size = stream.seek(0, 2)
    if size:
        stream.seek(size // 2)
        byte = stream.read(1)[0]
        stream.seek(size // 2)
        stream.write(bytes([byte ^ 0xFF]))


def _count_pages(stream) -> int:
    stream.seek(0)
    try:
        with zipfile.ZipFile(stream) as archive:
            return sum(1 for name in archive.namelist() if IMAGE_NAME.match(name))
    except (zipfile.BadZipFile, OSError):
        return 0
