"""Archiving published chapters to a LANraragi library: `mdupload archive` and `upload --archive`.

Each chapter the ledger records as published on MangaDex is packed as a .cbz (its pages in reading
order, ComicInfo.xml with the series title and group names MangaDex knows and the chapter's MangaDex
URL) and stored on the server with its tags and category (mdupload/lanraragi.py does the packing and
follows the server's rules). The archive id goes into the ledger; a rerun finds it there (and on the
server) and sends nothing again.

Only published chapters are archived, so that an archive always carries its MangaDex URL: archiving
before publishing would pack other bytes than archiving after, and LANraragi would then hold two
files for one chapter (or refuse the second under the same name).

Where the server is: `--to URL`, else MDUPLOAD_LANRARAGI_URL, else the manifest's `lanraragi: url:`;
the API key comes from MDUPLOAD_LANRARAGI_KEY only.
"""

from __future__ import annotations

import ipaddress
import logging
import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, urlsplit

from .checks import checked_report
from .deadlines import Timeouts
from .errors import AuthError, ManifestError, MdUploadError, UsageError
from .lanraragi import (
    CATEGORY_ID,
    KEY_ENV,
    ComicInfo,
    LanraragiClient,
    archive_title,
    build_tags,
    cbz_filename,
    pack_cbz,
)
from .ledger import Ledger
from .mangadex.client import MangaDexClient
from .mangadex.errors import ApiError
from .manifest import ChapterSpec, Manifest
from .settings import LANRARAGI_URL
from .vocabulary import PUBLISHED_STATES, Status, chapter_url

log = logging.getLogger("mdupload.archive")

URL_ENV = LANRARAGI_URL.variable


@dataclass(frozen=True)
class ArchiveTarget:
    """Where and how the chapters are archived."""

    url: str
    category: str | None = None
    tags: tuple[str, ...] = ()


@dataclass
class ChapterArchive:
    """What happened to one chapter."""

    spec: ChapterSpec
    status: str  # archived | already-archived | already-there | not-uploaded | failed
    chapter_id: str | None = None
    archive_id: str | None = None
    filename: str | None = None
    category_added: bool = False
    error: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status in ("archived", "already-archived", "already-there")

    def to_json(self) -> dict:
        return {"chapter": self.spec.chapter, "volume": self.spec.volume, "language": self.spec.language,
                "status": self.status, "chapter_id": self.chapter_id, "archive_id": self.archive_id,
                "filename": self.filename, "category_added": self.category_added, "error": self.error,
                "notes": self.notes}


@dataclass
class ArchiveRun:
    server: str
    chapters: list[ChapterArchive] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.chapters)

    def to_json(self) -> dict:
        """The `archive` part of a JSON result document (print_json adds "version")."""
        return {"ok": self.ok, "server": self.server, "chapters": [c.to_json() for c in self.chapters]}


# Pages(spec) -> the chapter's page files in reading order (the ones uploaded to MangaDex)
Pages = Callable[[ChapterSpec], Sequence[Path]]


# --- settings --------------------------------------------------------------------------------------


def resolve_target(manifest: Manifest, to: str | None = None, *, environ: Mapping[str, str],
                   option: str = "--to") -> ArchiveTarget:
    """The server (option, environment, manifest), the manifest's category and tags; checked. `option` is how
    the running command calls the server's option (`archive --to`, `upload --archive-to`)."""
    section = manifest.lanraragi
    where = f"{manifest.path}:{section.line}" if section else None
    if to:
        url, source = to, option
    elif environ.get(URL_ENV):
        url, source = environ[URL_ENV], URL_ENV
    elif section is not None and section.url:
        url, source = section.url, f"{where}: lanraragi url"
    else:
        raise UsageError("there is no LANraragi server to archive to.",
                         hint=f"Pass {option} URL, set {URL_ENV}, or add to {manifest.path} a section "
                              "`lanraragi:` with `url: http://your-server:3000`.")
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UsageError(f"{source} is not an http(s) URL: {url!r}.",
                         hint="Give the server's address as in a browser, e.g. http://192.168.1.20:3000.")
    if parts.scheme == "http" and environ.get(KEY_ENV) and not _private_host(parts.hostname):
        log.warning("the LANraragi API key goes unencrypted over plain http to %s; use https for a server "
                    "outside your own network", parts.hostname)
    category = section.category if section else None
    if category is not None and not CATEGORY_ID.fullmatch(category):
        raise ManifestError(f"lanraragi category {category!r} is not a LANraragi category id (they look like "
                            "SET_1613080290).", path=manifest.path,
                            line=section.category_line or section.line,
                            hint="Copy the id from LANraragi's category list (GET /api/categories), not its name.")
    return ArchiveTarget(url=url, category=category, tags=tuple(section.tags) if section else ())


def _private_host(host: str) -> bool:
    if host == "localhost" or host.endswith((".local", ".lan", ".home.arpa")):
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return "." not in host  # a bare name on the local network
    return address.is_private or address.is_loopback or address.is_link_local


# --- archiving -------------------------------------------------------------------------------------


def archive_chapters(manifest: Manifest, specs: Sequence[ChapterSpec], ledger: Ledger, *,
                     lanraragi: LanraragiClient, mangadex: MangaDexClient, target: ArchiveTarget, pages: Pages,
                     workdir: Path, reporter=None) -> ArchiveRun:
    """Archive each published chapter among `specs`; a refused key (AuthError) stops the run."""
    run = ArchiveRun(server=lanraragi.base_url)
    for spec in specs:
        outcome = _archive_one(manifest, spec, ledger, lanraragi=lanraragi, mangadex=mangadex, target=target,
                               pages=pages, workdir=workdir)
        run.chapters.append(outcome)
        if reporter is not None:
            _tell(reporter, outcome)
    return run


def archive_after_upload(manifest: Manifest, results: Sequence, ledger: Ledger, reporter, *, api_url: str,
                         to: str | None = None, target: ArchiveTarget | None = None,
                         environ: Mapping[str, str], fix_cache: Path | None = None,
                         lanraragi: LanraragiClient | None = None,
                         mangadex: MangaDexClient | None = None) -> ArchiveRun:
    """`upload --archive`: archive the chapters this upload published (or found already published).

    `results` are upload's ChapterResults; failed ones are left out (upload reports them). Pages come
    from each result's plan while its files still exist (the repaired pages of `--fix` live in the
    upload's work folder), else they are collected and checked again from the manifest.
    `target` is resolve_target(manifest, to) done beforehand (so that a missing server or a bad
    category stops the command before it uploads anything); without it, it is resolved here.
    Raises UsageError/ManifestError when there is no server or the category is not a category id,
    before anything is sent; AuthError when the server refuses the key.
    """
    target = target or resolve_target(manifest, to, environ=environ)
    lanraragi = lanraragi or LanraragiClient.from_env(target.url, environ=environ)
    mangadex = mangadex or MangaDexClient(api_url=api_url, timeouts=Timeouts.from_env(environ))
    by_key = {manifest.chapter_key(spec, api_url): spec for spec in manifest.chapters}
    done = [r for r in results if r.status in (Status.UPLOADED, Status.CORRECTED, Status.SKIPPED) and r.chapter_id
            and r.plan.key in by_key]
    planned = {r.plan.key: [p.path for p in r.plan.pages] for r in done}
    with tempfile.TemporaryDirectory(prefix="mdupload-archive-") as scratch:
        checked = checked_pages(Path(scratch) / "pages", fix_cache)

        def pages(spec: ChapterSpec) -> Sequence[Path]:
            paths = planned.get(manifest.chapter_key(spec, api_url))
            if paths and all(Path(p).is_file() for p in paths):
                return paths
            return checked(spec)

        return archive_chapters(manifest, [by_key[r.plan.key] for r in done], ledger, lanraragi=lanraragi,
                                mangadex=mangadex, target=target, pages=pages, workdir=Path(scratch), reporter=reporter)


def checked_pages(workdir: Path, fix_cache: Path | None = None) -> Pages:
    """The chapter's page files as `upload` sends them (see checked_report); a chapter whose pages do
    not pass the checks cannot be archived."""
    counter = iter(range(1_000_000))

    def pages(spec: ChapterSpec) -> Sequence[Path]:
        report = checked_report(spec, Path(workdir) / f"chapter-{next(counter):03d}", fix_cache)
        if not report.ok:
            problems = [p.message for p in report.problems if p.severity != "warning"]
            problems += [f"{page.page.origin}: {p.message}" for page in report.pages for p in page.problems
                         if p.severity != "warning"]
            raise _NotArchivable(f"its pages do not pass the checks ({'; '.join(problems[:3])}).",
                                 hint=f"Run `mdupload validate {spec.pages}` to see every problem.")
        return [r.page.path for r in report.pages]

    return pages


class _NotArchivable(MdUploadError):
    pass


def _archive_one(manifest: Manifest, spec: ChapterSpec, ledger: Ledger, *, lanraragi: LanraragiClient,
                 mangadex: MangaDexClient, target: ArchiveTarget, pages: Pages, workdir: Path) -> ChapterArchive:
    key = manifest.chapter_key(spec, mangadex.transport.api_url)  # the chapter on the MangaDex its URL names
    record = ledger.chapter(key)
    if record is None or not record.chapter_id or record.state not in PUBLISHED_STATES:
        return ChapterArchive(spec, "not-uploaded", error=(
            f"not published on MangaDex according to the ledger {ledger.path}: upload it first (its archive "
            "carries its MangaDex URL), or point --ledger at the ledger of the run that uploaded it."))
    outcome = ChapterArchive(spec, "failed", chapter_id=record.chapter_id)
    try:
        if record.archive_id and lanraragi.exists(record.archive_id):
            outcome.status, outcome.archive_id = "already-archived", record.archive_id
            if target.category:
                outcome.category_added = lanraragi.ensure_category(record.archive_id, target.category)
            return outcome
        if record.archive_id:
            outcome.notes.append(f"archive {record.archive_id} from an earlier run is not on {lanraragi.base_url} "
                                 "(deleted, or another server): archiving it again")
        info = _comic_info(spec, manifest, mangadex, record.chapter_id)
        files = list(pages(spec))
        uploaded = [p.sha256 for p in ledger.pages(key)]
        if uploaded and len(uploaded) != len(files):
            outcome.notes.append(f"the chapter has {len(files)} pages on disk, {len(uploaded)} were uploaded to "
                                 "MangaDex: the archive holds the pages on disk")
        cbz = pack_cbz(files, info, workdir / cbz_filename(info))
        try:
            result = lanraragi.upload(cbz, archive_title(info), build_tags(info, target.tags), target.category)
        finally:
            cbz.unlink(missing_ok=True)
        ledger.set_archive_id(key, result.id)
        outcome.status = "archived" if result.status == Status.UPLOADED else "already-there"
        outcome.archive_id, outcome.filename, outcome.category_added = result.id, result.filename, result.category_added
    except (AuthError, UsageError):
        raise  # every chapter would fail the same way
    except MdUploadError as exc:
        outcome.error = str(exc)
    return outcome


def _comic_info(spec: ChapterSpec, manifest: Manifest, mangadex: MangaDexClient, chapter_id: str) -> ComicInfo:
    series, groups = _names_on_mangadex(mangadex, chapter_id, spec.language)
    return ComicInfo(series=series or manifest.manga, number=spec.chapter, language=spec.language,
                     volume=spec.volume, title=spec.title,
                     translators=tuple(groups.get(group, group) for group in spec.groups),
                     web=chapter_url(mangadex.transport.api_url, chapter_id))


def _names_on_mangadex(mangadex: MangaDexClient, chapter_id: str, language: str) -> tuple[str | None, dict[str, str]]:
    """The manga's title and the groups' names, as MangaDex shows them on the chapter (public, no token)."""
    try:
        answer = mangadex.transport.api("GET", f"/chapter/{quote(chapter_id, safe='')}", authed=False,
                                        params=[("includes[]", "manga"), ("includes[]", "scanlation_group")])
    except ApiError as exc:
        raise MdUploadError(f"cannot read the chapter's series and group names from MangaDex: {exc.message}",
                            hint="Run again later; nothing was archived.") from None
    data = answer.data.get("data") if isinstance(answer.data, dict) else None
    relationships = data.get("relationships") if isinstance(data, dict) else None
    series, groups = None, {}
    for related in relationships if isinstance(relationships, list) else []:
        if not isinstance(related, dict) or not isinstance(related.get("attributes"), dict):
            continue
        attributes = related["attributes"]
        if related.get("type") == "manga":
            series = _title(attributes.get("title"), language)
        elif related.get("type") == "scanlation_group" and isinstance(attributes.get("name"), str):
            groups[str(related.get("id"))] = attributes["name"]
    return series, groups


def _title(titles, language: str) -> str | None:
    """The manga's title: in English, else in the chapter's language, else the first one given."""
    if not isinstance(titles, dict):
        return None
    for wanted in ("en", language):
        if isinstance(titles.get(wanted), str) and titles[wanted].strip():
            return titles[wanted].strip()
    return next((t.strip() for t in titles.values() if isinstance(t, str) and t.strip()), None)


def _tell(reporter, outcome: ChapterArchive) -> None:
    label = outcome.spec.label
    for note in outcome.notes:
        reporter.warn(f"{label}: {note}")
    if outcome.status == "archived":
        reporter.info(f"{label}: archived as {outcome.archive_id} ({outcome.filename})")
    elif outcome.status == "already-there":
        reporter.info(f"{label}: already in the library as {outcome.archive_id} ({outcome.filename}); not sent again")
    elif outcome.status == "already-archived":
        reporter.info(f"{label}: already archived as {outcome.archive_id}; not sent again")
    else:
        reporter.error(f"{label}: {'not archived' if outcome.status == 'not-uploaded' else 'failed'}: {outcome.error}")
    if outcome.category_added:
        reporter.info(f"{label}: added to its category")
