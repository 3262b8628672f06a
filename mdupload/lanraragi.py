"""Packing a chapter as a .cbz with ComicInfo.xml, and storing it on a LANraragi server.

What this module relies on from LANraragi (API-NOTES.md, LANraragi section; the server's source
confirms each point), in one place:

- an archive's id is the SHA-1 of its first 512,000 bytes, so the id is known before uploading, and
  `GET /api/archives/{id}/metadata` answers 200 when that archive is stored, 400 when not;
- the upload's `file_checksum` is compared with the server's lowercase hex digest as a string, so
  an uppercase checksum gets 417 even when it is right;
- 417 means the bytes were damaged on the way (send again); 423 means another upload of the same
  filename holds the lock, which expires after 10 s (wait, then send again);
- 409 answers a duplicate, but its `id` is the id the server computed from the bytes it received,
  also when the stored file with that name is a different one: only the metadata check tells
  "already there" from "a different file has this name";
- a `category_id` the server does not act on still gets 200: membership is checked afterwards with
  `GET /api/archives/{id}/categories` and added with `PUT /api/categories/{cat}/{id}`.

Packing is deterministic (stored entries, fixed timestamps and attributes), so the same pages give
the same bytes and the same archive id on every run and every machine.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import logging
import os
import re
import shutil
import time
import xml.etree.ElementTree as ET
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import requests
from requests.utils import super_len
from requests_toolbelt import MultipartEncoder, MultipartEncoderMonitor

from . import __version__
from .deadlines import MAX_ANSWER_BYTES, BoundedAdapter, Timeouts, read_capped
from .errors import AuthError, MdUploadError, PageError, UsageError, server_text
from .files import create_new, unique_name
from .redact import register_secret
from .settings import LANRARAGI_KEY
from .vocabulary import CHUNK_BYTES

log = logging.getLogger(__name__)

KEY_ENV = LANRARAGI_KEY.variable

ID_PREFIX_BYTES = 512_000  # LANraragi's compute_id hashes this much of the file
ZIP_TIMESTAMP = (1980, 1, 1, 0, 0, 0)  # the earliest a zip can say: no clock leaks into the bytes
ZIP_FILE_MODE = 0o100644  # a regular file, rw-r--r--
ZIP_SYSTEM_UNIX = 3
CBZ_MIME = "application/vnd.comicbook+zip"
MAX_FILENAME_BYTES = 200  # the server cuts names at 255 bytes including ".upload"; stay well below

DAMAGED_ATTEMPTS = 3  # 417: send the file this many times in all before giving up
LOCKED_ATTEMPTS = 5  # 423: ask this many times in all; the waits between are 2, 4, 8 and 16 s,
LOCKED_BACKOFF_S = 2.0  # 30 s together, well past the 10 s after which the server drops a stale lock

CATEGORY_ID = re.compile(r"^SET_[0-9]{10}$")  # "SET_" + the creation time, 14 characters (the spec's length)

_UNSAFE_IN_FILENAME = re.compile(r'[\x00-\x1f\x7f\\/:*?"<>|]+')
_BREAKS_A_TAG = re.compile(r"[\x00-\x1f\x7f,]+")  # a comma ends a tag; a control character ends a line
_SPACES = re.compile(r"\s+")
_INTEGER = re.compile(r"[0-9]+")
_NOT_IN_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")  # characters XML 1.0 cannot carry


@dataclass(frozen=True)
class ComicInfo:
    """What ComicInfo.xml, the tags and the title say about one chapter."""

    series: str
    number: str | None  # the chapter number; None = oneshot
    language: str  # MangaDex's language code (en, pt-br...)
    volume: str | None = None
    title: str | None = None
    translators: tuple[str, ...] = ()  # the scanlation groups, in manifest order
    web: str | None = None  # the MangaDex chapter URL, when known

    def to_xml(self, page_count: int) -> bytes:
        """ComicInfo.xml, its elements in the order of the Anansi schema's sequence.

        `Translator` is in the schema from v2.1; `Volume` is an integer there, so a volume like
        "1.5" is left out of the XML (the `volume:` tag still carries it).
        """
        root = ET.Element("ComicInfo")
        volume = str(int(self.volume)) if self.volume and _INTEGER.fullmatch(self.volume) else None
        for name, value in (
            ("Title", self.title),
            ("Series", self.series),
            ("Number", self.number),
            ("Volume", volume),
            ("Translator", ", ".join(self.translators)),
            ("Web", self.web),
            ("PageCount", str(page_count)),
            ("LanguageISO", self.language),
            ("Manga", "Yes"),
        ):
            if value:
                ET.SubElement(root, name).text = _NOT_IN_XML.sub("", value)
        ET.indent(root)
        return ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n"


@dataclass(frozen=True)
class ArchiveResult:
    id: str
    status: Literal["uploaded", "already-there"]
    filename: str
    category_added: bool = False  # the archive was not in the category (the server ignored category_id): added


class LanraragiError(MdUploadError):
    """LANraragi refused or could not take an archive; the message names the file and says what to do."""

    def __init__(self, message: str, *, status: int | None = None, hint: str | None = None):
        super().__init__(message, hint=hint)
        self.status = status


# --- packing -------------------------------------------------------------------------------------


def cbz_filename(info: ComicInfo) -> str:
    """A file name for the chapter that is safe on any file system and unique per release.

    The name matters: LANraragi refuses a second file under a name it already holds (409).
    """
    where = [f"v{info.volume}"] if info.volume else []
    where.append(f"c{info.number}" if info.number is not None else "oneshot")
    stem = f"{info.series} {' '.join(where)} [{info.language}]"
    if info.translators:
        stem += f" [{', '.join(info.translators)}]"
    stem = _SPACES.sub(" ", _UNSAFE_IN_FILENAME.sub(" ", stem)).strip().lstrip(".")
    limit = MAX_FILENAME_BYTES - len(".cbz")
    if len(stem.encode()) > limit:
        suffix = " " + hashlib.sha1(stem.encode()).hexdigest()[:8]  # keeps cut names distinct
        stem = stem.encode()[: limit - len(suffix)].decode(errors="ignore").rstrip() + suffix
    return stem + ".cbz"


def pack_cbz(pages: Sequence[Path], info: ComicInfo, dest: Path) -> Path:
    """Write the pages, in the order given, and ComicInfo.xml into the .cbz `dest`; return `dest`.

    Pages are named by their 1-based index, zero-padded so the names sort (`001.png`), with their
    original extension in lowercase. Entries are stored, not compressed (images are compressed
    already), and streamed from disk. The archive appears under `dest` only once it is complete.
    """
    dest = Path(dest)
    if not pages:
        raise PageError("there are no pages to pack", path=dest, hint="check the chapter's pages folder or archive.")
    width = max(3, len(str(len(pages))))
    partial = unique_name(dest, ".part")
    try:
        with create_new(partial) as file, zipfile.ZipFile(file, "w") as archive:
            for index, page in enumerate(pages, 1):
                page = Path(page)
                entry = _zip_entry(f"{index:0{width}d}{page.suffix.lower()}", page.stat().st_size)
                with page.open("rb") as source, archive.open(entry, "w") as target:
                    shutil.copyfileobj(source, target, CHUNK_BYTES)
            xml = info.to_xml(len(pages))
            archive.writestr(_zip_entry("ComicInfo.xml", len(xml)), xml)
        os.replace(partial, dest)
    except OSError as exc:
        partial.unlink(missing_ok=True)
        culprit = exc.filename if exc.filename not in (None, str(partial)) else dest
        raise PageError(f"cannot pack the chapter: {exc.strerror or exc}", path=culprit,
                        hint="check that the file is readable and the disk has room, then rerun.") from exc
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return dest


def _zip_entry(name: str, size: int) -> zipfile.ZipInfo:
    entry = zipfile.ZipInfo(name, date_time=ZIP_TIMESTAMP)
    entry.create_system = ZIP_SYSTEM_UNIX  # ZipInfo's default depends on the machine
    entry.external_attr = ZIP_FILE_MODE << 16
    entry.compress_type = zipfile.ZIP_STORED
    entry.file_size = size  # lets zipfile choose zip64 up front for a huge page
    return entry


def sha1_hex(path: Path) -> str:
    """The lowercase hex SHA-1 of the whole file (the upload's `file_checksum`), read in chunks."""
    digest = hashlib.sha1()
    with open(path, "rb") as file:
        while chunk := file.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def archive_id(path: Path) -> str:
    """The id LANraragi gives this file: the SHA-1 of its first 512,000 bytes."""
    with open(path, "rb") as file:
        return hashlib.sha1(file.read(ID_PREFIX_BYTES)).hexdigest()


# --- tags and title ------------------------------------------------------------------------------


def sanitize_tag(tag: str) -> str:
    """`namespace:value` as LANraragi reads it: no comma or line break inside, no space around the
    colon, runs of spaces made one; "" when nothing is left of the value."""
    namespace, colon, value = tag.partition(":")
    if not colon:
        namespace, value = "", namespace
    value = _SPACES.sub(" ", _BREAKS_A_TAG.sub(" ", value)).strip()
    namespace = _SPACES.sub(" ", _BREAKS_A_TAG.sub(" ", namespace)).strip().lower()
    if not value:
        return ""
    return f"{namespace}:{value}" if namespace else value


def build_tags(info: ComicInfo, extra: Sequence[str] = ()) -> list[str]:
    """The archive's tags: series, language, one `group:` per group, chapter, volume, the MangaDex
    URL as `source:`, then the manifest's extra tags; sanitised, without repeats."""
    raw = [f"series:{info.series}", f"language:{info.language}"]
    raw += [f"group:{group}" for group in info.translators]
    if info.number is not None:
        raw.append(f"chapter:{info.number}")
    if info.volume:
        raw.append(f"volume:{info.volume}")
    if info.web:
        raw.append(f"source:{info.web}")
    tags: list[str] = []
    for tag in (*raw, *extra):
        clean = sanitize_tag(tag)
        if clean and clean not in tags:
            tags.append(clean)
    return tags


def archive_title(info: ComicInfo) -> str:
    """The title LANraragi shows: "Series Vol. 2 Ch. 10.5 - Title [en]"."""
    where = [f"Vol. {info.volume}"] if info.volume else []
    where.append(f"Ch. {info.number}" if info.number is not None else "Oneshot")
    title = f"{info.series} {' '.join(where)}"
    if info.title:
        title += f" - {info.title}"
    return f"{title} [{info.language}]"


def check_category_id(category_id: str) -> None:
    """Refuse what cannot be a category id, before anything is sent."""
    if not CATEGORY_ID.fullmatch(category_id):
        raise UsageError(f"LANraragi category id {category_id!r} is not a category id: ids look like SET_1613080290.",
                         hint="copy the id from LANraragi's Categories page or GET /api/categories into the "
                              "manifest's lanraragi: category.")


# --- the server ----------------------------------------------------------------------------------


class LanraragiClient:
    """One LANraragi server. Every method raises MdUploadError (AuthError for a refused key)."""

    def __init__(self, base_url: str, api_key: str | None = None, *, sleep: Callable[[float], None] = time.sleep,
                 timeouts: Timeouts | None = None, session: requests.Session | None = None):
        self.base_url = _server_root(base_url)
        self._sleep = sleep
        self._timeouts = timeouts or Timeouts()
        self._has_key = bool(api_key)
        self._session = session or _session()
        self._session.headers["User-Agent"] = f"mdupload/{__version__}"
        if api_key:
            bearer = base64.b64encode(api_key.encode()).decode("ascii")
            register_secret(api_key)
            register_secret(bearer)
            self._session.headers["Authorization"] = f"Bearer {bearer}"

    @classmethod
    def from_env(cls, base_url: str, *, environ: Mapping[str, str], **kwargs) -> LanraragiClient:
        """A client with the API key from MDUPLOAD_LANRARAGI_KEY (none when unset: an open server) and the
        run's time bounds."""
        kwargs.setdefault("timeouts", Timeouts.from_env(environ))
        return cls(base_url, environ.get(KEY_ENV) or None, **kwargs)

    def exists(self, arcid: str) -> bool:
        """Whether the server holds the archive with this id."""
        response = self._request("GET", f"/api/archives/{arcid}/metadata")
        if response.status_code in (200, 400):
            return response.status_code == 200
        raise self._error(response, f"checking whether archive {arcid} is stored")

    def upload(self, cbz_path: Path, title: str, tags: Sequence[str], category_id: str | None = None, *,
               on_bytes: Callable[[int], None] | None = None) -> ArchiveResult:
        """Store the archive unless it is there already, then make sure it is in the category.

        `on_bytes(n)` is called as the body goes out (n bytes more); a retried upload counts again.
        """
        path = Path(cbz_path)
        if category_id is not None:
            check_category_id(category_id)
        try:
            local_id, checksum = archive_id(path), sha1_hex(path)
        except OSError as exc:
            raise PageError(f"cannot read the archive: {exc.strerror or exc}", path=path,
                            hint="pack the chapter again and rerun.") from exc
        if self.exists(local_id):
            return self._file(ArchiveResult(local_id, "already-there", path.name), category_id)
        clean_tags = [tag for tag in map(sanitize_tag, tags) if tag]
        damaged = locked = 0
        while True:
            response = self._send(path, checksum, title, clean_tags, category_id, on_bytes)
            status = response.status_code
            if status == 200:
                stored_id = _json(response).get("id") or local_id
                return self._file(ArchiveResult(stored_id, "uploaded", path.name), category_id)
            if status == 409:
                return self._file(self._duplicate(path, local_id, response), category_id)
            if status == 417:
                damaged += 1
                if damaged < DAMAGED_ATTEMPTS:
                    log.warning("%s arrived damaged at LANraragi (417); sending it again", path.name)
                    continue
                raise LanraragiError(
                    f"{path.name}: the file arrived damaged at LANraragi {damaged} times in a row "
                    f"(417: {_message(response)}).", status=status,
                    hint="something between here and the server alters the upload (a proxy, a flaky link); "
                         "fix that and rerun.")
            if status == 423:
                locked += 1
                if self._wait_locked(locked, path.name):
                    continue
                raise LanraragiError(
                    f"{path.name}: LANraragi kept this file name locked through {locked} attempts "
                    f"(423: {_message(response)}).", status=status,
                    hint="another upload of a file with this name is running; rerun when it has finished.")
            raise self._error(response, f"uploading {path.name}")

    def ensure_category(self, arcid: str, category_id: str) -> bool:
        """Put the archive in the static category; True when it had to be added."""
        check_category_id(category_id)
        response = self._request("GET", f"/api/archives/{arcid}/categories")
        if response.status_code != 200:
            raise self._error(response, f"reading the categories of archive {arcid}")
        if any(category.get("id") == category_id for category in _json(response).get("categories", [])):
            return False
        locked = 0
        while True:
            response = self._request("PUT", f"/api/categories/{category_id}/{arcid}")
            if response.status_code == 200:
                log.info("archive %s added to category %s", arcid, category_id)
                return True
            if response.status_code == 423:
                locked += 1
                if self._wait_locked(locked, category_id):
                    continue
            if response.status_code == 400:
                raise LanraragiError(
                    f"archive {arcid} is stored but could not be added to category {category_id}: "
                    f"{_message(response)}", status=400,
                    hint=f"the server's static categories: {self._describe_categories()}. Fix the category in the "
                         "manifest's lanraragi: section and rerun (the archive is not sent again).")
            raise self._error(response, f"adding archive {arcid} to category {category_id}")

    # --- internals ---

    def _send(self, path: Path, checksum: str, title: str, tags: Sequence[str], category_id: str | None,
              on_bytes: Callable[[int], None] | None) -> _Answer:
        with path.open("rb") as file:
            fields = {"file": (path.name, file, CBZ_MIME), "file_checksum": checksum, "tags": ",".join(tags)}
            if title:
                fields["title"] = title
            if category_id:
                fields["category_id"] = category_id
            body = MultipartEncoder(fields)
            if on_bytes is not None:
                body = MultipartEncoderMonitor(body, _progress(on_bytes))
            return self._request("PUT", "/api/archives/upload", data=body, headers={"Content-Type": body.content_type})

    def _file(self, result: ArchiveResult, category_id: str | None) -> ArchiveResult:
        if category_id is None:
            return result
        return dataclasses.replace(result, category_added=self.ensure_category(result.id, category_id))

    def _duplicate(self, path: Path, local_id: str, response: _Answer) -> ArchiveResult:
        # The 409's id is computed from the bytes just sent, so it matches ours either way: ask.
        if _json(response).get("id") == local_id and self.exists(local_id):
            return ArchiveResult(local_id, "already-there", path.name)
        stored = self._stored_id_of(path.name)
        raise LanraragiError(
            f"{path.name}: LANraragi already holds a different file under this name (stored archive "
            f"{stored or 'id unknown'}, this file {local_id}).", status=409,
            hint="the chapter's pages changed since it was archived. Delete the stored archive in LANraragi "
                 "(or turn on replacing duplicated archives in its settings) and rerun.")

    def _stored_id_of(self, filename: str) -> str | None:
        """The id of the stored archive with this file name, to name it in an error (None if unknown)."""
        stem, _dot, extension = filename.rpartition(".")
        try:
            response = self._request("GET", "/api/archives")
        except MdUploadError:
            return None
        archives = _json(response, default=[]) if response.status_code == 200 else []
        for archive in archives if isinstance(archives, list) else []:
            if archive.get("filename") == stem and str(archive.get("extension", "")).lower() == extension.lower():
                return archive.get("arcid")
        return None

    def _describe_categories(self) -> str:
        try:
            response = self._request("GET", "/api/categories")
        except MdUploadError:
            response = None
        categories = _json(response, default=[]) if response is not None and response.status_code == 200 else []
        static = [f"{c.get('id')} ({c.get('name')})" for c in categories if isinstance(c, dict) and not c.get("search")]
        return ", ".join(static) or "none"

    def _wait_locked(self, locked: int, what: str) -> bool:
        """After the `locked`-th 423 in a row: wait and return True, or return False when out of attempts."""
        if locked >= LOCKED_ATTEMPTS:
            return False
        delay = LOCKED_BACKOFF_S * 2 ** (locked - 1)
        log.warning("LANraragi has %s locked (423); asking again in %g s", what, delay)
        self._sleep(delay)
        return True

    def _request(self, method: str, path: str, *, data=None, headers: dict | None = None) -> _Answer:
        """Send one request; its answer is streamed up to MAX_ANSWER_BYTES, all within its deadline."""
        deadline = self._timeouts.deadline(f"LANraragi at {self.base_url} answering {method} {path}",
                                           sending=super_len(data) if data is not None else 0)
        try:
            with deadline, self._session.request(method, self.base_url + path, data=data, headers=headers, stream=True,
                                                 timeout=self._timeouts.between_bytes) as response:
                content, too_large = read_capped(response, MAX_ANSWER_BYTES, deadline)
        except requests.Timeout as exc:
            raise LanraragiError(f"{exc}." if deadline.expired else
                                 f"LANraragi at {self.base_url} stopped answering {method} {path} for "
                                 f"{self._timeouts.idle_s:g} s.", hint=_RERUN_IS_SAFE) from None
        except requests.RequestException as exc:
            raise LanraragiError(f"cannot reach LANraragi at {self.base_url} ({type(exc).__name__}).",
                                 hint="check the url in the manifest's lanraragi: section and that the server "
                                      "is running. " + _RERUN_IS_SAFE) from exc
        if too_large:
            raise LanraragiError(
                f"{self.base_url} answered {method} {path} ({response.status_code}) with more than "
                f"{MAX_ANSWER_BYTES // (1024 * 1024)} MB; no LANraragi answer is that large, so it was not read.",
                status=response.status_code,
                hint="check that the url in the manifest's lanraragi: section is a LANraragi server. " + _RERUN_IS_SAFE)
        return _Answer(response.status_code, response.reason or "", content)

    def _error(self, response: _Answer, doing: str) -> MdUploadError:
        status = response.status_code
        if status == 401:
            hint = (f"the key in {KEY_ENV} is not the one in LANraragi's settings; copy it again."
                    if self._has_key else f"this server needs its API key: set {KEY_ENV} to the key from "
                                          "LANraragi's settings.")
            return AuthError(f"LANraragi refused the API key while {doing} (401: {_message(response)}).", hint=hint)
        return LanraragiError(f"LANraragi answered {status} while {doing}: {_message(response)}", status=status,
                              hint="see the server's log for the cause; rerunning is safe once it is fixed.")


_RERUN_IS_SAFE = "Rerunning is safe: an archive already stored is not sent again."


def _session() -> requests.Session:
    session = requests.Session()
    for scheme in ("https://", "http://"):
        session.mount(scheme, BoundedAdapter())
    return session


@dataclass(frozen=True)
class _Answer:
    """A LANraragi answer, read whole (within the cap)."""

    status_code: int
    reason: str
    content: bytes

    def json(self):
        return json.loads(self.content)  # a ValueError when it is not JSON

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")


def _server_root(url: str) -> str:
    root = url.rstrip("/")
    return root.removesuffix("/api")


def _json(response: _Answer | None, default=None):
    """The answer's JSON document; `default` ({} unless given) when it has none."""
    fallback = {} if default is None else default
    try:
        document = response.json()
    except ValueError:
        return fallback
    return document if isinstance(document, type(fallback)) else fallback


def _message(response: _Answer) -> str:
    """What the server said: its `error` text, its validation errors, or the start of the body."""
    try:
        document = response.json()
    except ValueError:
        return server_text(response.text) or response.reason or "no message"
    if isinstance(document, dict):
        if document.get("error"):
            return server_text(str(document["error"]))  # some answers come XML-escaped
        if isinstance(document.get("errors"), list):
            return server_text("; ".join(f"{e.get('message')} ({e.get('path')})" if isinstance(e, dict) else str(e)
                                         for e in document["errors"]))
    return server_text(str(document))


def _progress(on_bytes: Callable[[int], None]) -> Callable[[MultipartEncoderMonitor], None]:
    sent = 0

    def callback(monitor: MultipartEncoderMonitor) -> None:
        nonlocal sent
        on_bytes(monitor.bytes_read - sent)
        sent = monitor.bytes_read

    return callback
