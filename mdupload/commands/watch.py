"""`mdupload watch`: publish every chapter that appears in a folder (watch.run_watch), each through
publish.publish_manifest like `upload`."""

from __future__ import annotations

import sys
from datetime import timedelta
from pathlib import Path

import click

from ..errors import AuthError
from ..output import Reporter, publication_json, show_publication
from ..publish import publish_manifest
from ..upload import DEFAULT_CONCURRENCY, UploadOptions
from ..watch import SETTLE_S, run_watch
from .options import (
    accept_terms_option,
    concurrency_option,
    github,
    host_options,
    hosts_of,
    ledger_option,
    open_ledger,
    settings_for,
    signed_in_client,
    stale_after_option,
)


@click.command("watch")
@click.argument("inbox", type=click.Path(path_type=Path))
@click.option("--series", "series_paths", multiple=True, required=True, type=click.Path(path_type=Path),
              metavar="SERIES.yaml", help="A series file, or a folder of them (repeatable).")
@click.option("--settle", type=click.FloatRange(min=0), default=SETTLE_S, show_default=True, metavar="SECONDS",
              help="An item is taken once its sizes and times have not changed for this long.")
@click.option("--once", is_flag=True, help="Process what is in the inbox now, then exit (for cron and timers).")
@click.option("--dry-run", is_flag=True,
              help="List what would be published now, in order, and how each name is read; publish nothing.")
@accept_terms_option
@stale_after_option
@concurrency_option
@host_options
@ledger_option
def watch(inbox, series_paths, settle, once, dry_run, accept_terms, stale_after, concurrency, api_url, auth_url,
          dev, ledger_path):
    """Publish every chapter that appears in INBOX (a folder, .zip or .cbz), once it is complete.

    Published items move to INBOX/done/ with a JSON receipt, failed ones to INBOX/failed/ with a
    .error.txt saying what to fix. Items of one series go out in chapter order. A problem outside the item
    (MangaDex unreachable or failing, the ledger or the account's session busy) leaves it in INBOX and is
    retried after a growing delay. Runs until SIGINT/SIGTERM (the chapter in flight is finished first).
    """
    if dry_run:
        sys.exit(run_watch(inbox, series_paths, publish=None, settle=settle, dry_run=True))
    settings = settings_for(api_url=api_url, auth_url=auth_url, dev=dev, ledger=ledger_path,
                            accept_terms=accept_terms)
    reporter = Reporter(quiet=False, force_plain=True)  # a log, not a terminal show
    options = UploadOptions(stale_after=timedelta(minutes=stale_after),
                            concurrency=concurrency or DEFAULT_CONCURRENCY, command="watch")
    api = hosts_of(settings).api_url
    clients = []  # one client (one token) for the watcher's whole life

    def connect():
        if not clients:
            clients.append(signed_in_client(settings))
        return clients[0]

    ledger = open_ledger(settings)  # like the client, one for the watcher's whole life

    def publish(manifest) -> dict:
        publication = publish_manifest(manifest, list(manifest.chapters), settings, reporter=reporter,
                                       options=options, connect=connect, ledger=ledger, api_url=api)
        show_publication(reporter, publication, command="watch")
        github(settings).annotate_publication(publication, manifest, api)
        document = publication_json(publication)
        if publication.signed_out:  # stop watching: every item would fail the same way
            raise AuthError(document["error"])
        return document

    sys.exit(run_watch(inbox, series_paths, publish=publish, settle=settle, once=once))
