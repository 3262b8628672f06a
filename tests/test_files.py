"""Files are written only where mdupload means to (issue 16, point 2; docs/security.md)."""

from __future__ import annotations

import json
import os

import pytest
from click.testing import CliRunner

from mdupload.cli import main
from mdupload.files import create_new, write_replacing
from mdupload.ledger import Ledger
from tests.e2e import copy_example


def test_status_with_a_ledger_that_does_not_exist_creates_nothing(tmp_path):
    manifest = copy_example(tmp_path / "series")
    missing = tmp_path / "not" / "there" / "ledger.sqlite3"
    result = CliRunner().invoke(main, ["status", str(manifest), "--ledger", str(missing), "--json"])
    assert result.exit_code == 0, result.output
    assert not (tmp_path / "not").exists()
    document = json.loads(result.stdout)
    assert [c["state"] for c in document["chapters"]] == ["not started"] * 3


def test_verify_with_a_ledger_that_does_not_exist_creates_nothing(tmp_path):
    manifest = copy_example(tmp_path / "series")
    missing = tmp_path / "not" / "there" / "ledger.sqlite3"
    result = CliRunner().invoke(main, ["verify", str(manifest), "--ledger", str(missing), "--wait", "0",
                                       "--api-url", "http://127.0.0.1:9", "--json"])
    assert result.exit_code == 1, result.output  # nothing published: every chapter is not uploaded
    assert not (tmp_path / "not").exists()
    document = json.loads(result.stdout)
    assert [c["status"] for c in document["chapters"]] == ["not-uploaded"] * 3
    assert "no ledger (there is none yet)" in document["chapters"][0]["error"]


def test_status_reads_an_existing_ledger_and_creates_no_lock_file(tmp_path):
    manifest = copy_example(tmp_path / "series")
    ledger_path = tmp_path / "ledger.sqlite3"
    Ledger(ledger_path).close()  # a ledger no upload ever wrote to: no writer lock file
    result = CliRunner().invoke(main, ["status", str(manifest), "--ledger", str(ledger_path)])
    assert result.exit_code == 0, result.output
    assert not ledger_path.with_name(ledger_path.name + ".lock").exists()


def test_a_record_written_over_a_planted_link_replaces_the_link_not_the_victim(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    record = tmp_path / "record.json"
    record.symlink_to(victim)
    write_replacing(record, b"{}")
    assert victim.read_text() == "precious"
    assert not record.is_symlink() and record.read_bytes() == b"{}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["record.json", "victim"]  # no temporary left


@pytest.mark.skipif(not hasattr(os, "O_NOFOLLOW"), reason="O_NOFOLLOW is POSIX")
def test_a_new_file_is_never_created_through_a_link_or_over_a_file(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (tmp_path / "dangling").symlink_to(tmp_path / "would-be-created")
    (tmp_path / "link").symlink_to(victim)
    for name in ("dangling", "link", "victim"):
        with pytest.raises(FileExistsError):
            create_new(tmp_path / name)
    assert victim.read_text() == "precious" and not (tmp_path / "would-be-created").exists()
