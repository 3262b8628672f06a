"""The command line: parse options, call one function, render its result, pick the exit code.

Exit codes: 0 all selected chapters done (or valid), 1 some failed, 2 usage or manifest error,
3 authentication error (see mdupload/errors.py).
"""

from __future__ import annotations

import logging
import sys
import tempfile
from datetime import UTC, timedelta
from pathlib import Path

import click

from . import __version__
from .errors import EXIT_FAILED, EXIT_OK, MdUploadError
from .ledger import Ledger, default_ledger_path
from .manifest import load_manifest
from .output import Reporter, chapter_result_json, print_json
from .redact import RedactingFilter

log = logging.getLogger("mdupload")


class CommandGroup(click.Group):
    """Turns every MdUploadError into one clear line (or a JSON document) and its exit code."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except MdUploadError as exc:
            sub = ctx.meta.get("mdupload.json")
            if sub:
                print_json({"ok": False, "error": str(exc), "chapters": []})
            click.echo(f"error: {exc}", err=True)
            log.debug("details", exc_info=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted: run the same command again to resume where it stopped", err=True)
            ctx.exit(130)


def _setup_logging(verbose: int) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RedactingFilter())
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("mdupload")
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else logging.WARNING)
    root.propagate = False


@click.group(cls=CommandGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="mdupload")
@click.option("-v", "--verbose", count=True, help="Log what is done, including a redacted HTTP trace.")
def main(verbose: int) -> None:
    """Publish manga chapters to MangaDex from a YAML manifest."""
    _setup_logging(verbose)


def _json_flag(f):
    def remember(ctx, _param, value):
        ctx.meta["mdupload.json"] = value
        return value

    return click.option("--json", "as_json", is_flag=True, expose_value=True, callback=remember, is_eager=True,
                        help="Write one JSON result document to stdout (people's output stays on stderr).")(f)


_chapter_option = click.option("--chapter", "chapters", multiple=True, metavar="N",
                               help="Only this chapter number (repeatable; 'oneshot' for a oneshot).")
_fix_option = click.option(
    "--fix", is_flag=True,
    help="Repair fixable pages (split long strips, convert formats, re-encode oversize pages) into a work "
         "folder; the originals are never touched.")
_manifest_argument = click.argument("manifest", type=click.Path(path_type=Path))


def _host_options(f):
    f = click.option("--dev", is_flag=True, help="Use api.mangadex.dev and auth.mangadex.dev.")(f)
    f = click.option("--auth-url", metavar="URL", help="OAuth token URL (env MDUPLOAD_AUTH_URL).")(f)
    f = click.option("--api-url", metavar="URL", help="MangaDex API base URL (env MDUPLOAD_API_URL).")(f)
    return f


def _ledger_option(f):
    return click.option("--ledger", "ledger_path", type=click.Path(path_type=Path), metavar="PATH",
                        help="The ledger file (env MDUPLOAD_LEDGER; default in the user's state folder).")(f)


def _open_ledger(path: Path | None) -> Ledger:
    return Ledger(path or default_ledger_path())


def _client(api_url, auth_url, dev):
    from .mangadex.auth import Credentials
    from .mangadex.client import MangaDexClient, resolve_hosts

    hosts = resolve_hosts(api_url=api_url, auth_url=auth_url, dev=dev)
    return MangaDexClient(api_url=hosts.api_url, auth_url=hosts.auth_url, credentials=Credentials.from_env())


# --- validate ----------------------------------------------------------------------------------

@main.command()
@_manifest_argument
@_chapter_option
@click.option("--deep", is_flag=True, help="Decode every page fully (finds corrupt pixel data headers hide).")
@_fix_option
@_json_flag
def validate(manifest, chapters, deep, fix, as_json):
    """Check every page of the manifest's chapters against MangaDex's rules."""
    from .publish import check_all

    loaded = load_manifest(manifest)
    specs = loaded.select(chapters)
    reporter = Reporter(quiet=False)
    with tempfile.TemporaryDirectory(prefix="mdupload-") as workdir:
        reports = check_all(specs, Path(workdir), deep=deep, fix=fix)
    for report in reports:
        _show_report(reporter, report)
    ok = all(r.ok for r in reports)
    if as_json:
        print_json({"ok": ok, "chapters": [r.to_json() for r in reports]})
    sys.exit(EXIT_OK if ok else EXIT_FAILED)


def _show_report(reporter: Reporter, report) -> None:
    for fixed in report.fixes:
        if fixed.done:
            made = ", ".join(page.upload_name for page in fixed.pages)
            reporter.info(f"  fixed {fixed.source.origin}: {'; '.join(fixed.done)} -> {made}")
    spec = report.spec
    verdict = "ok" if report.ok else "cannot be uploaded as it is"
    reporter.info(f"{spec.label}: {len(report.pages)} pages, {report.total_bytes / 1_000_000:.1f} MB, "
                  f"largest side {report.largest_side or 0} px: {verdict}")
    for warning in report.warnings:
        reporter.warn(f"  {warning}")
    for problem in report.problems:
        _show_problem(reporter, None, problem)  # chapter-level messages name the source themselves
    for page in report.pages:
        for problem in page.problems:
            _show_problem(reporter, page.page.origin, problem)


def _show_problem(reporter: Reporter, where, problem) -> None:
    text = f"  {where + ': ' if where else ''}{problem.message}" + (f" ({problem.severity}: {problem.fix})" if problem.fix else "")
    if problem.severity == "warning":
        reporter.warn(text)
    else:
        reporter.info(text)


# --- upload ------------------------------------------------------------------------------------

@main.command()
@_manifest_argument
@_chapter_option
@click.option("--accept-terms", is_flag=True, help="Accept MangaDex's upload terms (or MDUPLOAD_ACCEPT_TERMS=1).")
@click.option("--stale-after", type=click.FloatRange(min=0), default=10, show_default=True, metavar="MIN",
              help="An open session untouched this many minutes is abandoned.")
@click.option("--abandon-open", is_flag=True, help="Abandon an open session even when it was used recently.")
@click.option("--force-new", is_flag=True, help="Upload even when the chapter already exists.")
@click.option("--concurrency", type=click.IntRange(1, 8), default=None, metavar="N",
              help="Batches in flight at once within a session.")
@click.option("--deep", is_flag=True, help="Decode every page fully before uploading.")
@_fix_option
@click.option("--dry-run", is_flag=True, help="Check, then print what would be sent; upload nothing.")
@click.option("--quiet", is_flag=True, help="Print nothing on stderr but errors.")
@_host_options
@_ledger_option
@_json_flag
def upload(manifest, chapters, accept_terms, stale_after, abandon_open, force_new, concurrency, deep, fix,
           dry_run, quiet, api_url, auth_url, dev, ledger_path, as_json):
    """Check, then publish the manifest's chapters to MangaDex."""
    from .publish import upload_manifest
    from .upload import DEFAULT_CONCURRENCY, UploadOptions

    loaded = load_manifest(manifest)
    specs = loaded.select(chapters)
    reporter = Reporter(quiet=quiet)
    options = UploadOptions(stale_after=timedelta(minutes=stale_after), abandon_open=abandon_open,
                            force_new=force_new, concurrency=concurrency or DEFAULT_CONCURRENCY)
    with tempfile.TemporaryDirectory(prefix="mdupload-") as workdir:
        outcome = upload_manifest(loaded, specs, Path(workdir), connect=lambda: _client(api_url, auth_url, dev),
                                  ledger=None if dry_run else _open_ledger(ledger_path), reporter=reporter,
                                  options=options, accept_terms=accept_terms, deep=deep, fix=fix,
                                  dry_run=dry_run)
    if not outcome.checks_passed:
        for report in outcome.reports:
            if not report.ok:
                _show_report(reporter, report)
        bad = sum(1 for r in outcome.reports if not r.ok)
        reporter.error(f"{bad} chapter(s) cannot be uploaded as they are; nothing was uploaded. Fix them, "
                       "or name only the good ones with --chapter.")
        if as_json:
            print_json({"ok": False, "error": "checks failed", "chapters": [_unchecked_json(r) for r in outcome.reports]})
        sys.exit(EXIT_FAILED)
    if dry_run:
        _show_dry_run(reporter, outcome.plans)
        if as_json:
            print_json({"ok": True, "dry_run": True, "chapters": [_dry_run_json(p) for p in outcome.plans]})
        sys.exit(EXIT_OK)
    if as_json:
        print_json({"ok": outcome.ok, "chapters": [chapter_result_json(r) for r in outcome.results]})
    sys.exit(EXIT_OK if outcome.ok else EXIT_FAILED)


def _unchecked_json(report) -> dict:
    document = report.to_json()
    document["status"] = "failed" if not report.ok else "not uploaded"
    return document


def _show_dry_run(reporter: Reporter, plans) -> None:
    for plan in plans:
        reporter.info(f"would upload {plan.label} to manga {plan.manga} with groups {list(plan.groups) or 'none'}: "
                      f"{len(plan.pages)} pages, {plan.total_bytes / 1_000_000:.1f} MB, chapterDraft {plan.draft}")
        for page in plan.pages:
            reporter.info(f"  {page.upload_name} ({page.mime}, {page.size} bytes) from {page.origin}")


def _dry_run_json(plan) -> dict:
    return {"chapter": plan.draft["chapter"], "volume": plan.draft["volume"], "language": plan.language,
            "status": "dry-run", "chapter_draft": plan.draft,
            "pages": [{"name": p.upload_name, "mime": p.mime, "size": p.size, "sha256": p.sha256} for p in plan.pages]}


# --- sessions ----------------------------------------------------------------------------------

@main.command()
@click.option("--abandon", is_flag=True, help="Abandon the open session.")
@_host_options
@_json_flag
def sessions(abandon, api_url, auth_url, dev, as_json):
    """Show (or abandon) the account's open upload session."""
    from datetime import datetime

    client = _client(api_url, auth_url, dev)
    session = client.get_open_session()
    if session is None:
        click.echo("no upload session is open on this account", err=True)
        if as_json:
            print_json({"ok": True, "session": None})
        return
    age = datetime.now(UTC) - session.updated_at
    click.echo(f"open session {session.id}: manga {session.manga_id}, groups {', '.join(session.group_ids) or 'none'}, "
               f"{len(session.files)} files, last used {int(age.total_seconds() // 60)} min ago", err=True)
    if abandon:
        client.abandon_session(session.id)
        click.echo(f"abandoned session {session.id}", err=True)
    if as_json:
        print_json({"ok": True, "abandoned": abandon, "session": {
            "id": session.id, "manga": session.manga_id, "groups": list(session.group_ids),
            "files": len(session.files), "updated_at": session.updated_at.isoformat()}})


# --- status ------------------------------------------------------------------------------------

@main.command()
@_manifest_argument
@_chapter_option
@_ledger_option
@_json_flag
def status(manifest, chapters, ledger_path, as_json):
    """Show what the ledger knows of each chapter of the manifest."""
    loaded = load_manifest(manifest)
    ledger = _open_ledger(ledger_path)
    rows = []
    for spec in loaded.select(chapters):
        key = loaded.chapter_key(spec)
        record = ledger.chapter(key)
        pages = ledger.pages(key)
        row = {"chapter": spec.chapter, "volume": spec.volume, "language": spec.language,
               "state": "not started", "chapter_id": None, "session_id": None, "committed_at": None,
               "pages_uploaded": sum(1 for p in pages if p.file_id), "pages": len(pages), "error": None}
        if record is not None:
            row.update(state=_status_of(record), chapter_id=record.chapter_id, session_id=record.session_id,
                       committed_at=record.committed_at, error=record.error, last_state=record.state,
                       archive_id=record.archive_id)
        rows.append(row)
        line = f"{spec.label}: {row['state']}"
        if row["state"] == "committed":
            line += f" as chapter {row['chapter_id']} at {row['committed_at']}"
        elif row["state"] == "in progress":
            line += f" ({record.state.lower()}, {row['pages_uploaded']}/{row['pages']} pages, session {row['session_id']})"
        elif row["state"] == "failed":
            line += f": {row['error']}"
        click.echo(line, err=True)
    if as_json:
        print_json({"ok": True, "chapters": rows})


def _status_of(record) -> str:
    if record.chapter_id and record.state in ("COMMITTED", "SKIPPED"):
        return "committed"
    if record.state == "FAILED":
        return "failed"
    if record.state == "SKIPPED":
        return "not started"
    return "in progress"


def _register_sandbox() -> None:
    from .sandbox.cli import sandbox_command

    main.add_command(sandbox_command, name="sandbox")


_register_sandbox()


if __name__ == "__main__":
    main()
