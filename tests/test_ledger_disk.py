"""A full disk and a read-only ledger say so, and never advise moving the ledger aside (issue 16, point 3).

The real conditions need a small filesystem of its own: a tmpfs mounted for the test (root only; the
test is skipped, saying why, where mounting is refused). SQLite's max_page_count gives the same
SQLITE_FULL everywhere, so the message is held on every machine.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from mdupload.errors import LedgerError
from mdupload.ledger import Ledger

KEY = ("0" * 8 + "-0000-4000-8000-" + "0" * 12, "en", ("group",), None, "1")
FULL = "is full; free space and run again: it resumes"


@pytest.fixture
def small_disk(tmp_path):
    """A 512 KB tmpfs of the test's own."""
    mount = tmp_path / "disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=512k,mode=0755", "tmpfs", str(mount)],
                          capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"a small tmpfs cannot be mounted here (it needs root): {done.stderr.strip()}")
    yield mount
    subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(folder) -> None:
    try:
        with open(folder / "filler", "wb", buffering=0) as out:
            while True:
                out.write(b"\0" * 4096)
    except OSError:
        pass


def write_until_refused(ledger: Ledger) -> LedgerError:
    for attempt in range(1000):
        try:
            ledger.record(KEY, "UPLOADING", detail=f"batch {attempt} " + "x" * 2000)
        except LedgerError as exc:
            return exc
    raise AssertionError("the ledger kept accepting writes on a full disk")


def test_a_full_disk_says_so_and_the_rerun_resumes(small_disk):
    ledger = Ledger(small_disk / "ledger.sqlite3")
    ledger.record(KEY, "CHECKED")
    ledger.record(KEY, "SESSION_OPEN", session_id="11111111-1111-4111-8111-111111111111")
    fill(small_disk)

    error = write_until_refused(ledger)
    assert f"the disk holding the ledger {small_disk / 'ledger.sqlite3'} {FULL}" in str(error)
    assert "aside" not in str(error)
    assert "damaged" not in str(error)

    os.remove(small_disk / "filler")
    ledger.record(KEY, "UPLOADING", detail="after the disk was freed")
    ledger.close()
    reopened = Ledger(small_disk / "ledger.sqlite3")
    assert reopened.chapter(KEY).session_id == "11111111-1111-4111-8111-111111111111"
    assert reopened.last_state(KEY)[0] == "UPLOADING"
    reopened.close()


def test_sqlite_full_is_a_full_disk_not_damage(tmp_path):
    ledger = Ledger(tmp_path / "ledger.sqlite3")
    ledger.record(KEY, "CHECKED")
    pages = ledger._db.execute("PRAGMA page_count").fetchone()[0]
    ledger._db.execute(f"PRAGMA max_page_count={pages}")

    error = write_until_refused(ledger)
    assert FULL in str(error)
    assert "aside" not in str(error)
    ledger._db.execute("PRAGMA max_page_count=1073741823")
    ledger.record(KEY, "UPLOADING")  # the same ledger goes on once there is room
    assert ledger.last_state(KEY)[0] == "UPLOADING"
    ledger.close()


def test_a_read_only_ledger_says_so(small_disk):
    path = small_disk / "ledger.sqlite3"
    ledger = Ledger(path)
    ledger.record(KEY, "CHECKED")
    ledger.close()
    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)

    with pytest.raises(LedgerError) as raised:
        Ledger(path).record(KEY, "UPLOADING")
    text = str(raised.value)
    assert f"the ledger {path} cannot be written" in text and "read-only" in text
    assert "run again: it resumes" in text
    assert "aside" not in text and "damaged" not in text
