"""GitHub Actions: problems as workflow annotations, and a summary table of the chapters.

Inside GitHub Actions (`GITHUB_ACTIONS=true`) every problem is also printed as a workflow command
(`::error file=...,line=...::message`) on stderr, where the runner reads it as well as on stdout, so
that stdout keeps carrying nothing but the `--json` document. The annotation points at the manifest
line of a chapter, or at the page file (the archive, for a page inside one). At the end of `validate`
and `upload` a Markdown table of the chapters is appended to `$GITHUB_STEP_SUMMARY`. Any other CI gets
the plain log and the JSON document.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping

from .errors import ManifestError, MdUploadError, PageError
from .pages import display_path
from .vocabulary import Status, chapter_url


class GitHubActions:
    """Annotations and the step summary, when `environ` (settings.Environment's variables) says this is
    GitHub Actions; outside it every method does nothing."""

    def __init__(self, environ: Mapping[str, str]):
        self.enabled = environ.get("GITHUB_ACTIONS") == "true"
        self.summary_path = environ.get("GITHUB_STEP_SUMMARY") or None

    def annotate(self, level: str, message: str, *, file: str | None = None, line: int | None = None,
                 title: str | None = None) -> None:
        """Print one workflow annotation (`error`, `warning` or `notice`)."""
        if not self.enabled:
            return
        properties = [f"{name}={_escape_property(str(value))}"
                      for name, value in (("file", file), ("line", line), ("title", title)) if value is not None]
        command = f"{level} {','.join(properties)}" if properties else level
        print(f"::{command}::{_escape_data(message)}", file=sys.stderr, flush=True)

    def annotate_error(self, error: MdUploadError) -> None:
        """The error that stopped a command, pointing at the manifest line or the file it names."""
        if isinstance(error, ManifestError):
            self.annotate("error", str(error), file=_repo_path(error.path), line=error.line,
                          title="mdupload: manifest")
        elif isinstance(error, PageError):
            self.annotate("error", str(error), file=_repo_path(error.path), title="mdupload: pages")
        else:
            self.annotate("error", str(error), title="mdupload")

    def annotate_reports(self, reports: Iterable, manifest) -> None:
        """Every problem the checks found: page problems on the page file, chapter problems on its manifest line."""
        for report in reports:
            spec = report.spec
            for problem in report.problems:
                self.annotate(_level(problem), _problem_text(spec.label, None, problem),
                              file=_repo_path(manifest.path), line=spec.line, title=f"mdupload: {spec.label}")
            for page in report.pages:
                for problem in page.problems:
                    self.annotate(_level(problem), _problem_text(spec.label, page.page.origin, problem),
                                  file=page.page.origin.split("!")[0], title=f"mdupload: {spec.label}")

    def annotate_results(self, results: Iterable, manifest) -> None:
        """On the chapter's manifest line: a failed upload (an error), a published chapter that differs from the
        manifest and was left as it is (a warning: --replace corrects it), a correction made (a notice)."""
        for result in results:
            line = next((spec.line for spec in manifest.chapters
                         if manifest.chapter_key(spec, result.plan.key.api) == result.plan.key), None)
            label = result.plan.label
            if result.status == Status.FAILED:
                pages = "".join(f"\n{origin}: {why}" for origin, why in result.failed_pages.items())
                self.annotate("error", f"{label}: {result.error}{pages}", file=_repo_path(manifest.path),
                              line=line, title=f"mdupload: {label} failed")
            elif result.status == Status.CORRECTED:
                self.annotate("notice", f"{label}: chapter {result.chapter_id} corrected in place "
                              f"({', '.join(result.changed)})", file=_repo_path(manifest.path), line=line,
                              title=f"mdupload: {label} corrected")
            elif result.changed:
                self.annotate("warning", f"{label}: " + "\n".join(result.notices), file=_repo_path(manifest.path),
                              line=line, title=f"mdupload: {label} differs from the published chapter")

    def annotate_publication(self, publication, manifest, api_url: str | None) -> None:
        """Annotations and the step summary of `upload` (and of each `watch` item): a publish.Publication."""
        outcome = publication.outcome
        if not outcome.checks_passed:
            self.annotate_reports(outcome.reports, manifest)
            self.write_step_summary("mdupload upload: checks failed, nothing uploaded", check_rows(outcome.reports))
            return
        if publication.dry_run:
            return
        self.annotate_results(outcome.results, manifest)
        self.write_step_summary("mdupload upload", [
            {"label": r.plan.label, "status": r.status, "pages": len(r.plan.pages), "chapter_id": r.chapter_id,
             "error": r.error or (f"{'corrected' if r.status == Status.CORRECTED else 'changed'}: "
                                  f"{', '.join(r.changed)}" if r.changed else None)}
            for r in outcome.results], api_url=api_url)
        if outcome.signed_out is not None:
            self.annotate_error(outcome.signed_out)

    def write_step_summary(self, title: str, rows: list[dict], api_url: str | None = None) -> None:
        """Append a Markdown table (chapter, status, pages, link) to $GITHUB_STEP_SUMMARY, if there is one."""
        target = self.summary_path
        if not self.enabled or not target:
            return
        lines = [f"### {title}", "", "| chapter | status | pages | MangaDex | note |",
                 "| --- | --- | --- | --- | --- |"]
        for row in rows:
            note = (row.get("error") or "").replace("|", "\\|").replace("\n", " ")
            lines.append(f"| {row['label']} | {row['status']} | {row['pages']} | "
                         f"{chapter_link(api_url, row.get('chapter_id'))} | {note} |")
        try:
            with open(target, "a", encoding="utf-8") as summary:
                summary.write("\n".join(lines) + "\n\n")
        except OSError as exc:
            print(f"warning: cannot append to $GITHUB_STEP_SUMMARY ({target}): {exc.strerror}", file=sys.stderr)


def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _level(problem) -> str:
    return "warning" if problem.severity == "warning" else "error"


def _problem_text(label: str, where: str | None, problem) -> str:
    text = f"{label}: {where + ': ' if where else ''}{problem.message}"
    return text + (f" ({problem.severity}: {problem.fix})" if problem.fix else "")


def _repo_path(path) -> str | None:
    return display_path(path) if path is not None else None


# --- the step summary ------------------------------------------------------------------------------

def chapter_link(api_url: str | None, chapter_id: str | None) -> str:
    """Where people read the chapter: mangadex.org or mangadex.dev, else the API's own chapter URL."""
    if not chapter_id:
        return ""
    return f"[{chapter_id}]({chapter_url(api_url, chapter_id)})"


def check_rows(reports: Iterable) -> list[dict]:
    """The step summary's rows for checked chapters (validate, and an upload whose checks failed)."""
    rows = []
    for report in reports:
        problems = [p for p in report.problems if p.severity != "warning"]
        problems += [p for page in report.pages for p in page.problems if p.severity != "warning"]
        rows.append({"label": report.spec.label, "status": "ok" if report.ok else "cannot be uploaded as it is",
                     "pages": len(report.pages), "error": f"{len(problems)} problem(s)" if problems else None})
    return rows
