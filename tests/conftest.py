"""Fixtures shared by the end-to-end tests."""

from __future__ import annotations

import pytest

from mdupload.sandbox import SandboxConfig, start_sandbox
from mdupload.sandbox.lanraragi import start_lanraragi
from tests.e2e import LANRARAGI_KEY


@pytest.fixture(autouse=True)
def no_stored_accounts(tmp_path_factory, monkeypatch):
    """No test reads or writes the developer's stored accounts or system keyring."""
    monkeypatch.setenv("MDUPLOAD_CONFIG_DIR", str(tmp_path_factory.mktemp("mdupload-config")))
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.fail.Keyring")


@pytest.fixture
def sandbox():
    """A fresh sandbox on free loopback ports, without rate limits (they have tests of their own)."""
    running = start_sandbox(SandboxConfig(rate_limits=False))
    yield running
    running.stop()


@pytest.fixture
def lrr():
    """A local LANraragi library with one static category, "Manga", and the tests' API key."""
    with start_lanraragi(api_key=LANRARAGI_KEY, categories=["Manga"]) as library:
        yield library


@pytest.fixture
def category(lrr):
    """The id of the library's "Manga" category."""
    return lrr.state()["categories"][0]["id"]
