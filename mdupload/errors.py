"""One exception hierarchy; each error carries a user-facing message and an exit code.

Exit codes are part of the interface:
  0  everything selected was done (uploaded, skipped or valid)
  1  some chapter failed or cannot be uploaded
  2  the manifest is invalid or the command was misused
  3  authentication failed (credentials missing, refused or expired)
  130 interrupted (Ctrl-C; interrupts.py)
"""

import html
import re

from .redact import redact

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_AUTH = 3
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT), as shells count it

SERVER_TEXT_CHARS = 200  # the most of a server's own words an error message quotes

_HIDDEN_ELEMENTS = re.compile(r"<(script|style|head)\b.*?(</\1\s*>|\Z)", re.IGNORECASE | re.DOTALL)
_TAG = re.compile(r"<[!/?]?[A-Za-z][^>]*>|<!--.*?-->", re.DOTALL)


def server_text(text: str | bytes, limit: int = SERVER_TEXT_CHARS) -> str:
    """What a server said, fit to quote in one line: markup (an HTML error page) stripped, entities
    decoded, white space and control characters collapsed, at most `limit` characters."""
    if isinstance(text, bytes):
        text = text[:limit * 64].decode("utf-8", "replace")
    text = _TAG.sub(" ", _HIDDEN_ELEMENTS.sub(" ", text))
    text = " ".join("".join(c if c.isprintable() else " " for c in html.unescape(text)).split())
    return text if len(text) <= limit else text[:limit - 1].rstrip() + "…"


class MdUploadError(Exception):
    """Base class: `str(error)` is a complete sentence for the user, naming what to fix."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:  # every way an error is shown (line, JSON, ledger, log) goes through redact
        return redact(f"{self.message} {self.hint}" if self.hint else self.message)


class UsageError(MdUploadError):
    """The command was misused (bad option, missing consent)."""

    exit_code = EXIT_USAGE


class ManifestError(MdUploadError):
    """The manifest is invalid: the message names the file, the line and the chapter."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, *, path=None, line: int | None = None, chapter: str | None = None,
                 hint: str | None = None):
        where = str(path) if path is not None else "manifest"
        if line is not None:
            where += f":{line}"
        if chapter is not None:
            where += f" (chapter {chapter})"
        super().__init__(f"{where}: {message}", hint=hint)
        self.path = path
        self.line = line
        self.chapter = chapter


class PageError(MdUploadError):
    """A page file or archive cannot be read safely; the message names the file."""

    def __init__(self, message: str, *, path=None, hint: str | None = None):
        super().__init__(f"{path}: {message}" if path is not None else message, hint=hint)
        self.path = path


class AuthError(MdUploadError):
    """Signing in failed or the credentials are missing or expired."""

    exit_code = EXIT_AUTH


class LedgerError(MdUploadError):
    """The local ledger is corrupt, locked or from a newer version."""
