"""`mdupload upload`: check, then publish the manifest's chapters to MangaDex (publish.publish_manifest)."""

from __future__ import annotations

import sys
from datetime import timedelta

import click

from ..archive import resolve_target
from ..errors import EXIT_AUTH, EXIT_FAILED, EXIT_OK
from ..manifest import load_manifest
from ..output import Reporter, print_json, publication_json, show_publication
from ..publish import publish_manifest, require_terms
from ..selection import select_chapters
from ..upload import DEFAULT_CONCURRENCY, UploadOptions
from .options import (
    accept_terms_option,
    chapter_option,
    concurrency_option,
    fix_option,
    github,
    host_options,
    hosts_of,
    identify_ids,
    json_flag,
    ledger_option,
    manifest_argument,
    open_ledger,
    quiet_option,
    settings_for,
    signed_in_client,
    stale_after_option,
)


@click.command("upload")
@manifest_argument
@chapter_option
@accept_terms_option
@stale_after_option
@click.option("--abandon-open", is_flag=True, help="Abandon an open session even when it was used recently.")
@click.option("--force-new", is_flag=True, help="Upload even when the chapter already exists.")
@click.option("--replace", is_flag=True,
              help="Correct a published chapter whose pages or metadata changed, in place (docs/identity.md).")
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
def upload(manifest, chapters, exclude, accept_terms, stale_after, abandon_open, force_new, replace, concurrency, deep,
           fix, dry_run, skip_invalid, quiet, archive, archive_to, api_url, auth_url, dev, ledger_path, as_json):
    """Check, then publish the manifest's chapters to MangaDex."""
    settings = settings_for(api_url=api_url, auth_url=auth_url, dev=dev, ledger=ledger_path,
                            accept_terms=accept_terms)
    loaded = load_manifest(manifest, settings.environ)
    specs = select_chapters(loaded, chapters, exclude)
    reporter = Reporter(quiet=quiet)
    # a missing server or a bad category stops the command before any upload
    archive_target = (resolve_target(loaded, archive_to, environ=settings.environ, option="--archive-to")
                      if archive and not dry_run else None)
    group_names = {}  # a change of a chapter's groups names them as MangaDex does, where known
    if not dry_run:  # a wrong id is found at its manifest line, before anything is uploaded
        require_terms(loaded, settings.accept_terms)  # before any network call
        identified = identify_ids(loaded, settings, unreachable_hint="Nothing was uploaded; run the same command "
                                                                     "again once MangaDex answers.")
        for line in identified.lines():
            reporter.info(line)
        group_names = {group.id: group.name for group in identified.groups.values()}
    options = UploadOptions(stale_after=timedelta(minutes=stale_after), abandon_open=abandon_open,
                            force_new=force_new, replace=replace, concurrency=concurrency or DEFAULT_CONCURRENCY,
                            group_names=group_names)
    api = hosts_of(settings).api_url
    publication = publish_manifest(loaded, specs, settings, reporter=reporter, options=options,
                                   connect=lambda: signed_in_client(settings),
                                   ledger=None if dry_run else open_ledger(settings), api_url=api, deep=deep,
                                   fix=fix, dry_run=dry_run, skip_invalid=skip_invalid,
                                   archive_target=archive_target)
    show_publication(reporter, publication)
    github(settings).annotate_publication(publication, loaded, api)
    if as_json:
        print_json(publication_json(publication))
    sys.exit(EXIT_AUTH if publication.signed_out else EXIT_OK if publication.ok else EXIT_FAILED)
