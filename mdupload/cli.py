"""The command line: parse options, call one function, render its result, pick the exit code.

Exit codes: 0 all selected chapters done (or valid), 1 some failed, 2 usage or manifest error,
3 authentication error (see mdupload/errors.py).
"""

from __future__ import annotations

import logging
import os
import sys
import tempfile
import time
from datetime import UTC, timedelta
from pathlib import Path

import click

from . import __version__
from .ci import (
    annotate,
    annotate_error,
    annotate_reports,
    annotate_results,
    write_step_summary,
)
from .errors import EXIT_AUTH, EXIT_FAILED, EXIT_OK, AuthError, MdUploadError
from .images import megabytes
from .manifest import in_utc_and_local, load_manifest
from .options import (
    accept_terms_option,
    api_options,
    chapter_option,
    concurrency_option,
    fix_option,
    host_options,
    json_flag,
    ledger_option,
    manifest_argument,
    open_ledger,
    quiet_option,
    stale_after_option,
)
from .output import Reporter, chapter_result_json, print_json
from .redact import RedactingFilter, redact
from .run_summary import RunSummary
from .selection import select_chapters
from .upload import DEFAULT_CONCURRENCY

log = logging.getLogger("mdupload")


class CommandGroup(click.Group):
    """Turns every MdUploadError into one clear line (or a JSON document) and its exit code."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except MdUploadError as exc:
            annotate_error(exc)
            if ctx.meta.get("mdupload.json"):
                print_json({"ok": False, "error": str(exc), "chapters": []})
            click.echo(f"error: {exc}", err=True)
            log.debug("details", exc_info=True)
            ctx.exit(exc.exit_code)
        except KeyboardInterrupt:
            click.echo("interrupted: run the same command again to resume where it stopped", err=True)
            ctx.exit(130)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise
        except Exception as exc:  # a bug: one line, redacted like everything else; the traceback only with -v
            message = redact(f"unexpected error ({type(exc).__name__}: {exc}).")
            hint = "Run it again with -v for the details, and please report it; what was done is in the ledger."
            annotate("error", f"{message} {hint}", title="mdupload")
            if ctx.meta.get("mdupload.json"):
                print_json({"ok": False, "error": message, "chapters": []})
            click.echo(f"error: {message} {hint}", err=True)
            log.debug("details", exc_info=True)
            ctx.exit(EXIT_FAILED)


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


def _client(api_url, auth_url, dev):
    """A signed-in client: MDUPLOAD_* credentials when set, else the account `mdupload login` stored for this
    API (MDUPLOAD_ACCOUNT picks one when several are stored); see accounts.py."""
    from .accounts import client_for

    return client_for(api_url, auth_url, dev)


# --- validate ----------------------------------------------------------------------------------

@main.command()
@manifest_argument
@chapter_option
@click.option("--deep", is_flag=True, help="Decode every page fully (finds corrupt pixel data headers hide).")
@fix_option
@click.option("--offline", is_flag=True, help="Check the files only; do not ask MangaDex about the manga and groups.")
@api_options
@json_flag
def validate(manifest, chapters, exclude, deep, fix, offline, api_url, dev, as_json):
    """Check every page of the manifest's chapters against MangaDex's rules, and (unless --offline) that
    MangaDex knows its manga and groups."""
    from .publish import check_all

    loaded = load_manifest(manifest)
    specs = select_chapters(loaded, chapters, exclude)
    reporter = Reporter(quiet=False)
    for warning in loaded.warnings:
        reporter.warn(warning)
    identified = None
    if not offline:
        identified = _identify(loaded, api_url, dev, unreachable_hint="Check the connection (and --api-url / "
                                                                       "--dev), or check the files only with --offline.")
        for line in identified.lines():
            reporter.info(line)
    with tempfile.TemporaryDirectory(prefix="mdupload-") as workdir:
        reports = check_all(specs, Path(workdir), deep=deep, fix=fix)
    for report in reports:
        _show_report(reporter, report)
    ok = all(r.ok for r in reports)
    annotate_reports(reports, loaded)
    write_step_summary("mdupload validate", [_check_row(r) for r in reports])
    if as_json:
        document = {"ok": ok, "chapters": [r.to_json() for r in reports]}
        if identified is not None:
            document["mangadex"] = identified.to_json()
        print_json(document)
    sys.exit(EXIT_OK if ok else EXIT_FAILED)


def _identify(loaded, api_url, dev, *, unreachable_hint: str):
    """The manifest's manga and groups as MangaDex names them (public reads: no sign-in); see identify.py."""
    from .identify import identify

    return identify(loaded, _catalogue(api_url, dev), unreachable_hint=unreachable_hint)


def _catalogue(api_url, dev):
    """MangaDex's catalogue of mangas and groups, read without signing in."""
    from .identify import Catalogue
    from .mangadex.client import MangaDexClient, resolve_hosts

    hosts = resolve_hosts(api_url=api_url, dev=dev)
    return Catalogue(MangaDexClient(api_url=hosts.api_url, auth_url=hosts.auth_url))


def _check_row(report) -> dict:
    problems = [p for p in report.problems if p.severity != "warning"]
    problems += [p for page in report.pages for p in page.problems if p.severity != "warning"]
    return {"label": report.spec.label, "status": "ok" if report.ok else "cannot be uploaded as it is",
            "pages": len(report.pages), "error": f"{len(problems)} problem(s)" if problems else None}


def _show_report(reporter: Reporter, report) -> None:
    for fixed in report.fixes:
        if fixed.done:
            made = ", ".join(page.upload_name for page in fixed.pages)
            reporter.info(f"  fixed {fixed.source.origin}: {'; '.join(fixed.done)} -> {made}")
    spec = report.spec
    verdict = "ok" if report.ok else "cannot be uploaded as it is"
    reporter.info(f"{spec.label}: {len(report.pages)} pages, {megabytes(report.total_bytes)}, "
                  f"largest side {report.largest_side or 0} px: {verdict}")
    if spec.publish_at is not None:
        reporter.info(f"  scheduled for {in_utc_and_local(spec.publish_at)}")
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
@manifest_argument
@chapter_option
@accept_terms_option
@stale_after_option
@click.option("--abandon-open", is_flag=True, help="Abandon an open session even when it was used recently.")
@click.option("--force-new", is_flag=True, help="Upload even when the chapter already exists.")
@concurrency_option
@click.option("--deep", is_flag=True, help="Decode every page fully before uploading.")
@fix_option
@click.option("--dry-run", is_flag=True, help="Check, then print what would be sent; upload nothing.")
@click.option("--skip-invalid", is_flag=True,
              help="Publish the chapters that pass their checks and report the others (exit 1), instead of "
                   "uploading nothing when one fails.")
@quiet_option
@click.option("--archive", is_flag=True,
              help="Then store the published chapters in LANraragi (the manifest's lanraragi: section, or "
                   "MDUPLOAD_LANRARAGI_URL; the key from MDUPLOAD_LANRARAGI_KEY).")
@click.option("--archive-to", metavar="URL", help="The LANraragi server for --archive.")
@host_options
@ledger_option
@json_flag
def upload(manifest, chapters, exclude, accept_terms, stale_after, abandon_open, force_new, concurrency, deep, fix,
           dry_run, skip_invalid, quiet, archive, archive_to, api_url, auth_url, dev, ledger_path, as_json):
    """Check, then publish the manifest's chapters to MangaDex."""
    from .upload import UploadOptions

    loaded = load_manifest(manifest)
    specs = select_chapters(loaded, chapters, exclude)
    reporter = Reporter(quiet=quiet)
    options = UploadOptions(stale_after=timedelta(minutes=stale_after), abandon_open=abandon_open,
                            force_new=force_new, concurrency=concurrency or DEFAULT_CONCURRENCY)
    archive_target = None
    if archive and not dry_run:  # a missing server or a bad category stops the command before any upload
        from .archive import resolve_target

        archive_target = resolve_target(loaded, archive_to, option="--archive-to")
    if not dry_run:  # a wrong id is found at its manifest line, before anything is uploaded
        from .publish import require_terms

        require_terms(loaded, accept_terms)  # before any network call
        for line in _identify(loaded, api_url, dev, unreachable_hint="Nothing was uploaded; run the same command "
                                                                      "again once MangaDex answers.").lines():
            reporter.info(line)
    document = publish_and_report(loaded, specs, reporter=reporter, options=options,
                                  connect=lambda: _client(api_url, auth_url, dev),
                                  ledger=None if dry_run else open_ledger(ledger_path),
                                  api_url=_api_url(api_url, dev), accept_terms=accept_terms, deep=deep, fix=fix,
                                  dry_run=dry_run, skip_invalid=skip_invalid, archive_target=archive_target)
    if as_json:
        print_json(document)
    sys.exit(EXIT_AUTH if document.get("signed_out") else EXIT_OK if document["ok"] else EXIT_FAILED)


def publish_and_report(loaded, specs, *, reporter: Reporter, options, connect, ledger, api_url,
                       accept_terms=False, deep=False, fix=False, dry_run=False, skip_invalid=False,
                       archive_target=None) -> dict:
    """`upload` without the exit: check and publish (then archive, with a target), tell people and GitHub,
    return the JSON document (`watch` publishes each item through this too)."""
    from .publish import upload_manifest

    archived = None
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="mdupload-") as workdir:
        outcome = upload_manifest(loaded, specs, Path(workdir), connect=connect, ledger=ledger, reporter=reporter,
                                  options=options, accept_terms=accept_terms, deep=deep, fix=fix,
                                  dry_run=dry_run, skip_invalid=skip_invalid)
        if archive_target is not None and outcome.checks_passed:  # while --fix's repaired pages still exist
            from .archive import archive_after_upload

            archived = archive_after_upload(loaded, outcome.results, ledger, reporter, api_url=api_url,
                                            target=archive_target)
    if not outcome.checks_passed:
        for report in outcome.reports:
            if not report.ok:
                _show_report(reporter, report)
        bad = sum(1 for r in outcome.reports if not r.ok)
        if options.command == "upload":
            reporter.error(f"{bad} chapter(s) cannot be uploaded as they are; nothing was uploaded. Fix them, "
                           "or publish the others with --skip-invalid (or pick chapters with --chapter / --exclude).")
        else:
            reporter.error(f"{bad} chapter(s) cannot be uploaded as they are; nothing was uploaded.")
        annotate_reports(outcome.reports, loaded)
        write_step_summary("mdupload upload: checks failed, nothing uploaded", [_check_row(r) for r in outcome.reports])
        return {"ok": False, "error": "checks failed", "chapters": [_unchecked_json(r) for r in outcome.reports]}
    for report in outcome.reports:
        for fixed in report.fixes:
            if fixed.done:
                reporter.info(f"{report.spec.label}: fixed {fixed.source.origin}: {'; '.join(fixed.done)}")
    for report in outcome.set_aside:
        _show_report(reporter, report)
    if outcome.set_aside:
        reporter.error(f"{len(outcome.set_aside)} chapter(s) cannot be uploaded as they are and were set aside "
                       f"(--skip-invalid): {', '.join(r.spec.label for r in outcome.set_aside)}.")
        annotate_reports(outcome.set_aside, loaded)
    set_aside = [_unchecked_json(r, status="invalid") for r in outcome.set_aside]
    if dry_run:
        _show_dry_run(reporter, outcome.plans)
        return {"ok": outcome.ok, "dry_run": True, "chapters": [_dry_run_json(p) for p in outcome.plans] + set_aside}
    annotate_results(outcome.results, loaded)
    write_step_summary("mdupload upload", [
        {"label": r.plan.label, "status": r.status, "pages": len(r.plan.pages), "chapter_id": r.chapter_id,
         "error": r.error} for r in outcome.results], api_url=api_url)
    summary = RunSummary.of(outcome.results, [r.spec.label for r in outcome.set_aside], api_url=api_url,
                            seconds=time.monotonic() - started)
    if summary.chapters > 1:
        reporter.info(summary.line())
    for line in summary.link_lines():
        reporter.info(line)
    chapters = [dict(chapter_result_json(r), url=summary.link(r)) for r in outcome.results]
    document = {"ok": outcome.ok and (archived is None or archived.ok), "chapters": chapters + set_aside,
                "summary": summary.to_json()}
    if outcome.signed_out is not None:
        reporter.error(str(outcome.signed_out))
        annotate_error(outcome.signed_out)
        document.update(ok=False, error=str(outcome.signed_out), signed_out=True)
    if archived is not None:
        document["archive"] = archived.to_json()
    return document


def _api_url(api_url, dev) -> str:
    from .mangadex.client import resolve_hosts

    return resolve_hosts(api_url=api_url, auth_url=None, dev=dev).api_url


def _unchecked_json(report, status: str = "failed") -> dict:
    document = report.to_json()
    document["status"] = status if not report.ok else "not uploaded"
    return document


def _show_dry_run(reporter: Reporter, plans) -> None:
    for plan in plans:
        reporter.info(f"would upload {plan.label} to manga {plan.manga} with groups {list(plan.groups) or 'none'}: "
                      f"{len(plan.pages)} pages, {megabytes(plan.total_bytes)}, chapterDraft {plan.draft}")
        for page in plan.pages:
            reporter.info(f"  {page.upload_name} ({page.mime}, {page.size} bytes) from {page.origin}")


def _dry_run_json(plan) -> dict:
    return {"chapter": plan.draft["chapter"], "volume": plan.draft["volume"], "language": plan.language,
            "status": "dry-run", "chapter_draft": plan.draft,
            "pages": [{"name": p.upload_name, "mime": p.mime, "size": p.size, "sha256": p.sha256} for p in plan.pages]}


# --- init --------------------------------------------------------------------------------------

@main.command()
@click.argument("folder", type=click.Path(path_type=Path), default=".")
@click.option("--manga", metavar="ID|URL", help="The manga's id or mangadex.org/title/ address (else found by title).")
@click.option("--title", metavar="TEXT", help="Search the manga by this title (else the series name in the names).")
@click.option("--group", "group_ids", multiple=True, metavar="ID",
              help="A group's id (repeatable; else the names in the items' [Group] tags are looked up).")
@click.option("--language", metavar="CODE", help="The chapters' language (else the one most names give, else en).")
@click.option("--output", type=click.Path(path_type=Path), metavar="PATH",
              help="Where to write the manifest (default FOLDER/manifest.yaml).")
@click.option("--force", is_flag=True, help="Replace an existing manifest.")
@api_options
def init(folder, manga, title, group_ids, language, output, force, api_url, dev):
    """Write a manifest for a FOLDER of releases named like `Series - c012 [Group]` (folders, .cbz, .zip)."""
    from .init_manifest import init_manifest

    result = init_manifest(folder, _catalogue(api_url, dev), output=output, manga=manga, title=title,
                           group_ids=group_ids, language=language, force=force,
                           choose=_ask if sys.stdin.isatty() and not os.environ.get("CI") else None)
    click.echo(f"wrote {result.manifest}: {len(result.releases)} chapter(s) of {result.manga.name} ({result.manga.id}), "
               f"groups {', '.join(g.name for g in result.groups) or 'none'}", err=True)
    for name in result.unreadable:
        click.echo(f"warning: {name}: no chapter in the name; left out of the manifest", err=True)
    click.echo(f"next: mdupload validate {result.manifest}", err=True)


def _ask(question: str, candidates):
    click.echo(question, err=True)
    for number, candidate in enumerate(candidates, start=1):
        click.echo(f"  {number}. {candidate.name} ({candidate.id})", err=True)
    chosen = click.prompt("Which one", type=click.IntRange(1, len(candidates)), err=True)
    return candidates[chosen - 1]


# --- watch -------------------------------------------------------------------------------------

@main.command()
@click.argument("inbox", type=click.Path(path_type=Path))
@click.option("--series", "series_paths", multiple=True, required=True, type=click.Path(path_type=Path),
              metavar="SERIES.yaml", help="A series file, or a folder of them (repeatable).")
@click.option("--settle", type=click.FloatRange(min=0), default=30, show_default=True, metavar="SECONDS",
              help="An item is taken once its sizes and times have not changed for this long.")
@click.option("--once", is_flag=True, help="Process what is in the inbox now, then exit (for cron and timers).")
@click.option("--dry-run", is_flag=True,
              help="List what would be published now, in order, and how each name is read; publish nothing.")
@accept_terms_option
@stale_after_option
@concurrency_option
@host_options
@ledger_option
def watch(inbox, series_paths, settle, once, dry_run, accept_terms, stale_after, concurrency, api_url, auth_url, dev,
          ledger_path):
    """Publish every chapter that appears in INBOX (a folder, .zip or .cbz), once it is complete.

    Published items move to INBOX/done/ with a JSON receipt, failed ones to INBOX/failed/ with a
    .error.txt saying what to fix. Items of one series go out in chapter order. A problem outside the item
    (MangaDex unreachable or failing, the ledger or the account's session busy) leaves it in INBOX and is
    retried after a growing delay. Runs until SIGINT/SIGTERM (the chapter in flight is finished first).
    """
    from .upload import UploadOptions
    from .watch import run_watch

    reporter = Reporter(quiet=False, force_plain=True)  # a log, not a terminal show
    if dry_run:
        sys.exit(run_watch(inbox, series_paths, publish=None, settle=settle, dry_run=True))
    options = UploadOptions(stale_after=timedelta(minutes=stale_after),
                            concurrency=concurrency or DEFAULT_CONCURRENCY, command="watch")
    clients = []  # one client (one token) for the watcher's whole life

    def connect():
        if not clients:
            clients.append(_client(api_url, auth_url, dev))
        return clients[0]

    ledger = open_ledger(ledger_path)  # like the client, one for the watcher's whole life

    def publish(manifest) -> dict:
        document = publish_and_report(manifest, list(manifest.chapters), reporter=reporter, options=options,
                                      connect=connect, ledger=ledger, api_url=_api_url(api_url, dev),
                                      accept_terms=accept_terms)
        if document.get("signed_out"):  # stop watching: every item would fail the same way
            raise AuthError(document["error"])
        return document

    sys.exit(run_watch(inbox, series_paths, publish=publish, settle=settle, once=once))


# --- sessions ----------------------------------------------------------------------------------

@main.command()
@click.option("--abandon", is_flag=True, help="Abandon the open session.")
@host_options
@json_flag
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
@manifest_argument
@chapter_option
@ledger_option
@json_flag
def status(manifest, chapters, exclude, ledger_path, as_json):
    """Show what the ledger knows of each chapter of the manifest.

    Each chapter is not started, in progress (its state, pages uploaded / total, its session, and
    whether an upload is running now or was interrupted), committed (the chapter id and when) or
    failed (why). Nothing is asked of MangaDex.
    """
    loaded = load_manifest(manifest)
    ledger = open_ledger(ledger_path)
    running = ledger.writer_running()
    rows = []
    for spec in select_chapters(loaded, chapters, exclude):
        key = loaded.chapter_key(spec)
        record = ledger.chapter(key)
        pages = ledger.pages(key)
        row = {"chapter": spec.chapter, "volume": spec.volume, "language": spec.language,
               "state": "not started", "chapter_id": None, "session_id": None, "committed_at": None,
               "pages_uploaded": sum(1 for p in pages if p.file_id), "pages": len(pages), "error": None,
               "last_state": None, "archive_id": None, "running": False}
        if record is not None:
            last = (ledger.last_state(key) or (record.state,))[0]
            state = _status_of(record, last)
            row.update(state=state, chapter_id=record.chapter_id if state == "committed" else None,
                       session_id=record.session_id, committed_at=record.committed_at if state == "committed" else None,
                       error=record.error if state == "failed" else None, last_state=last,
                       archive_id=record.archive_id, running=running and state == "in progress")
        rows.append(row)
        line = f"{spec.label}: {row['state']}"
        kept = (f"{row['pages_uploaded']}/{row['pages']} pages uploaded, session {row['session_id']}"
                if row["session_id"] else f"{row['pages']} pages")
        if row["state"] == "committed":
            how = "uploaded" if row["last_state"] == "COMMITTED" else "recorded"
            line += f" as chapter {row['chapter_id']} ({how} {row['committed_at']})"
            if row["archive_id"]:
                line += f"; archived in LANraragi as {row['archive_id']}"
        elif row["state"] == "in progress":
            line += (f" ({row['last_state'].lower()}, {kept}; "
                     + ("an upload is running now)" if running else
                        "interrupted: run `mdupload upload` again to resume)"))
        elif row["state"] == "failed":
            line += f": {row['error']}" + (f" ({kept}; run `mdupload upload` again to resume)"
                                           if row["session_id"] else "")
        click.echo(line, err=True)
    if as_json:
        print_json({"ok": True, "chapters": rows})


def _status_of(record, last: str) -> str:
    if last in ("COMMITTED", "SKIPPED"):
        return "committed" if record.chapter_id else "not started"
    if last == "FAILED":
        return "failed"
    if last in ("CHECKED", "FINDING_SESSION"):
        return "not started"
    return "in progress"


def _register_commands_of_other_modules() -> None:
    """Commands that live beside what they do (imported here, at the end, since they use this module's options)."""
    from .accounts import login_command, logout_command, whoami_command
    from .readback_cli import register as register_readback
    from .sandbox.cli import sandbox_command

    main.add_command(sandbox_command, name="sandbox")
    main.add_command(login_command, name="login")
    main.add_command(logout_command, name="logout")
    main.add_command(whoami_command, name="whoami")
    register_readback(main)  # verify, pull, archive


_register_commands_of_other_modules()


if __name__ == "__main__":
    main()
