"""Break each guard the docs promise, one at a time, run the tests that hold it, restore the file (tests/README.md).

Run from a clean worktree: `.venv/bin/python tests/break_guards.py [N ...]` (N: only those guards). It edits
the source in place while a guard is broken: do not edit or commit while it runs.
"""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
PY = sys.executable
GUARDS = [
 ("the default stale threshold (10 -> 20 min)", "mdupload/upload.py", "STALE_AFTER_MIN = 10 ", "STALE_AFTER_MIN = 20 ", ["tests/test_upload.py"]),
 ("the stale comparison (age > 2 x stale_after)", "mdupload/upload.py", "if age > self.options.stale_after:", "if age > 2 * self.options.stale_after:", ["tests/test_upload.py"]),
 ("the credential-free image session (images through the API's session)", "mdupload/athome.py", "self.images = session or image_session(self.concurrency)", "self.images = session or client.transport.session", ["tests/test_bounds.py", "-k", "credentials"]),
 ("redaction (redact() returns the text as it is)", "mdupload/redact.py", "    return pattern.sub(MASK, text)", "    return text", ["tests/test_redact.py"]),
 ("token hosts (the Bearer token on every origin)", "mdupload/mangadex/http.py", "        if origin(request.url) in self.origins:\n", "        if True:\n", ["tests/test_token_hosts.py"]),
 ("a token kept across a redirect to another origin", "mdupload/mangadex/http.py", "        if origin(prepared_request.url) != origin(response.request.url):", "        if False:", ["tests/test_token_hosts.py"]),
 ("O_EXCL | O_NOFOLLOW (files.create_new opens like open(path, 'wb'))", "mdupload/files.py", "os.O_WRONLY | os.O_CREAT | os.O_EXCL | O_NOFOLLOW |", "os.O_WRONLY | os.O_CREAT | os.O_TRUNC |", ["tests/test_files.py"]),
 ("records written in place (pull's record straight to its temporary name, following links)", "mdupload/files.py", "    temporary = unique_name(target)\n", "    temporary = target.with_name(target.name + '.tmp'); temporary.write_bytes(data) if temporary.is_symlink() else None\n", ["tests/test_athome.py", "-k", "planted"]),
 ("status creates nothing (the ledger opened, so created, when missing)", "mdupload/commands/options.py", "return Ledger(settings.ledger) if settings.ledger.exists() else None", "return Ledger(settings.ledger)", ["tests/test_files.py"]),
 ("the page cap (20 MB per image from MangaDex@Home)", "mdupload/athome.py", "if received > MAX_IMAGE_BYTES:", "if False:", ["tests/test_bounds.py", "-k", "endless_image"]),
 ("the total deadline (an expired deadline not raised)", "mdupload/deadlines.py", "        if self.expired:\n            raise DeadlineExceeded(", "        if False:\n            raise DeadlineExceeded(", ["tests/test_bounds.py", "-k", "dripped_a_byte"]),
 ("the answer cap (16 MB per JSON or LANraragi answer)", "mdupload/deadlines.py", "if size + len(chunk) > cap:", "if False:", ["tests/test_bounds.py", "-k", "3_gb"]),
 ("the --timeout option (ignored)", "mdupload/commands/options.py", "    if timeout is not None:\n        environment", "    if False:\n        environment", ["tests/test_bounds.py", "-k", "timeout_option_bounds"]),
 ("Ctrl-C cuts the requests in flight (cancel_requests does nothing)", "mdupload/deadlines.py", "    _CANCELLED.set()\n    _WATCHDOG.expire_all()", "    pass", ["tests/test_interrupts.py", "-k", "four_batch"]),
 ("server error texts stripped of markup (server_text quotes the body whole)", "mdupload/errors.py", "    text = _TAG.sub(\" \", _HIDDEN_ELEMENTS.sub(\" \", text))\n", "", ["tests/test_client.py", "-k", "html"]),
 ("logout says what the keyring kept (the refusal swallowed)", "mdupload/accounts/store.py", "            if still_there:\n", "            if False:\n", ["tests/test_accounts.py", "-k", "refused_to_remove"]),
 ("truthful progress (bytes counted as they leave, before the answer)", "mdupload/upload.py", "        \"\"\"The body's bytes leaving (for the timings); the progress counts them once answered (_send_batch).\"\"\"\n", "        \"\"\"The body's bytes leaving (for the timings); the progress counts them once answered (_send_batch).\"\"\"\n        self.events.bytes_sent(self.plan, _count)\n", ["tests/test_upload.py", "-k", "answered_for"]),
 ("a retry is a line (HTTP retries silent)", "mdupload/mangadex/http.py", "            before_sleep=lambda state: self._say_retry(request, state),\n", "", ["tests/test_client.py", "-k", "every_retry"]),
 ("the wrong-password --json document (the signed_out document at the first chapter)", "mdupload/publish.py", "                if not any(done.status == Status.UPLOADED for done in outcome.results):\n                    raise", "                if False:\n                    raise", ["tests/test_e2e.py", "-k", "wrong_password"]),
 ("a full disk said plainly (taken for damage)", "mdupload/ledger.py", "        if code == sqlite3.SQLITE_FULL or", "        if False and code == sqlite3.SQLITE_FULL or", ["tests/test_ledger_disk.py"]),
 ("at most 10 files per batch (11)", "mdupload/limits.py", "FILES_PER_REQUEST = 10", "FILES_PER_REQUEST = 11", ["tests/test_upload.py", "-k", "ten_files"]),
]


def main() -> None:
    only = sys.argv[1:] and {int(i) for i in sys.argv[1:]}
    for n, (name, path, old, new, args) in enumerate(GUARDS):
        if only and n not in only:
            continue
        f = ROOT / path
        text = f.read_text()
        assert text.count(old) == 1, (name, text.count(old))
        f.write_text(text.replace(old, new))
        try:
            done = subprocess.run([PY, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *args], cwd=ROOT,
                                  capture_output=True, text=True, timeout=900)
        finally:
            f.write_text(text)
        failed = re.findall(r"^FAILED (\S+)", done.stdout, re.M) or re.findall(r"^ERROR (\S+)", done.stdout, re.M)
        print(f"{n}\t{name}\t{'CAUGHT by ' + failed[0] if done.returncode != 0 and failed else 'NOT CAUGHT rc=%d' % done.returncode}", flush=True)


if __name__ == "__main__":
    main()
