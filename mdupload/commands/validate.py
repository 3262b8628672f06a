"""`mdupload validate`: check every page of the manifest's chapters against MangaDex's rules."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import click

from ..ci import check_rows
from ..errors import EXIT_FAILED, EXIT_OK
from ..manifest import load_manifest
from ..output import Reporter, print_json, show_report
from ..publish import check_all
from ..selection import select_chapters
from .options import (
    api_options,
    chapter_option,
    fix_option,
    github,
    identify_ids,
    json_flag,
    manifest_argument,
    settings_for,
)


@click.command("validate")
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
    settings = settings_for(api_url=api_url, dev=dev)
    loaded = load_manifest(manifest, settings.environ)
    specs = select_chapters(loaded, chapters, exclude)
    reporter = Reporter(quiet=False)
    for warning in loaded.warnings:
        reporter.warn(warning)
    identified = None
    if not offline:
        identified = identify_ids(loaded, settings, unreachable_hint="Check the connection (and --api-url / --dev), "
                                                                     "or check the files only with --offline.")
        for line in identified.lines():
            reporter.info(line)
    with tempfile.TemporaryDirectory(prefix="mdupload-") as workdir:
        reports = check_all(specs, Path(workdir), deep=deep, fix=fix, fix_cache=settings.fix_cache)
    for report in reports:
        show_report(reporter, report)
    ok = all(r.ok for r in reports)
    github(settings).annotate_reports(reports, loaded)
    github(settings).write_step_summary("mdupload validate", check_rows(reports))
    if as_json:
        document = {"ok": ok, "chapters": [r.to_json() for r in reports]}
        if identified is not None:
            document["mangadex"] = identified.to_json()
        print_json(document)
    sys.exit(EXIT_OK if ok else EXIT_FAILED)
