"""The `mdupload` command group: logging, one clear line per error, and every command of commands/.

Each command lives in its own module under mdupload/commands/; this module only assembles them.

Exit codes: 0 all selected chapters done (or valid), 1 some failed, 2 usage or manifest error,
3 authentication error (see mdupload/errors.py).
"""

from __future__ import annotations

import logging
import sys

import click

from . import __version__
from .ci import GitHubActions
from .commands import (
    archive,
    demo,
    init,
    login,
    logout,
    pull,
    sandbox,
    sessions,
    status,
    upload,
    validate,
    verify,
    watch,
    whoami,
)
from .errors import EXIT_FAILED, MdUploadError
from .output import print_json
from .redact import RedactingFilter, redact
from .settings import Environment

log = logging.getLogger("mdupload")


class CommandGroup(click.Group):
    """Turns every MdUploadError into one clear line (or a JSON document) and its exit code."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except MdUploadError as exc:
            GitHubActions(Environment.current().environ).annotate_error(exc)
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
            GitHubActions(Environment.current().environ).annotate("error", f"{message} {hint}", title="mdupload")
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


for _command in (init.init, validate.validate, upload.upload, watch.watch, sessions.sessions, status.status,
                 verify.verify, pull.pull, archive.archive, login.login, logout.logout, whoami.whoami,
                 sandbox.sandbox, demo.demo):
    main.add_command(_command)


if __name__ == "__main__":
    main()
