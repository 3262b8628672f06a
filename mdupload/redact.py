"""The one place that knows the secrets of this process, and scrubs them from text and log records.

Whatever learns a secret (a password, a client secret, an access or refresh token, an API key)
registers it here; `redact(text)` then replaces every occurrence, also in the encoded forms a secret
takes in a form body, a URL or a JSON string. `RedactingFilter` applies it to log records (message,
arguments, exception and stack text), so a handler with it attached never writes a secret.
"""

from __future__ import annotations

import json
import logging
import re
import threading
from urllib.parse import quote, quote_plus

MASK = "[REDACTED]"

# Shorter values are too likely to be ordinary words to be replaced everywhere; MangaDex's own
# passwords, secrets and tokens are all much longer.
MIN_SECRET_LENGTH = 4

# Keys whose values are secrets wherever they appear in a mapping (form bodies, token answers).
SECRET_KEYS = frozenset({"password", "client_secret", "access_token", "refresh_token", "id_token", "token",
                         "authorization", "api_key", "key"})

_lock = threading.Lock()
_secrets: set[str] = set()
_pattern: re.Pattern | None = None


def register_secret(value: str | None) -> None:
    """Remember a secret (and its encoded forms) so that `redact` hides it from now on."""
    global _pattern
    if not value or len(value) < MIN_SECRET_LENGTH:
        return
    forms = {value, quote_plus(value), quote(value, safe=""), json.dumps(value)[1:-1]}
    with _lock:
        if forms <= _secrets:
            return
        _secrets.update(forms)
        # Longest first, so that a secret containing another is replaced whole.
        ordered = sorted(_secrets, key=len, reverse=True)
        _pattern = re.compile("|".join(re.escape(s) for s in ordered))


def redact(text: str) -> str:
    """`text` with every registered secret replaced by [REDACTED]."""
    pattern = _pattern
    if pattern is None or not text:
        return text
    return pattern.sub(MASK, text)


def redact_mapping(mapping: dict) -> dict:
    """A copy of `mapping` with the values of secret keys masked (for logging form bodies and answers)."""
    return {k: (MASK if str(k).lower() in SECRET_KEYS and v else v) for k, v in mapping.items()}


class RedactingFilter(logging.Filter):
    """Scrubs registered secrets from a record before any handler formats it."""

    _formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a malformed format string must not break the caller
            message = f"{record.msg} {record.args!r}"
        record.msg = redact(message)
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = self._formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True
