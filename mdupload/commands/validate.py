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
from .options import (
    chapter_option,
    fix_option,
    github,
    json_flag,
    manifest_argument,
    settings_for,
)


@click.command("validate")
@manifest_argument
@chapter_option
@click.option("--deep", is_flag=True, help="Decode every page fully (finds corrupt pixel data headers hide).")
@fix_option
@json_flag
def validate(manifest, chapters, deep, fix, as_json):
    """Check every page of the manifest's chapters against MangaDex's rules."""
    settings = settings_for()
    loaded = load_manifest(manifest, settings.environ)
    specs = loaded.select(chapters)
    reporter = Reporter(quiet=False)
    for warning in loaded.warnings:
        reporter.warn(warning)
    with tempfile.TemporaryDirectory(prefix="mdupload-") as workdir:
        reports = check_all(specs, Path(workdir), deep=deep, fix=fix, fix_cache=settings.fix_cache)
    for report in reports:
        show_report(reporter, report)
    ok = all(r.ok for r in reports)
    github(settings).annotate_reports(reports, loaded)
    github(settings).write_step_summary("mdupload validate", check_rows(reports))
    if as_json:
        print_json({"ok": ok, "chapters": [r.to_json() for r in reports]})
    sys.exit(EXIT_OK if ok else EXIT_FAILED)
