"""Fixtures shared by the end-to-end tests."""

from __future__ import annotations

import pytest

from mdupload.sandbox import SandboxConfig, start_sandbox


@pytest.fixture
def sandbox():
    """A fresh sandbox on free loopback ports, without rate limits (they have tests of their own)."""
    running = start_sandbox(SandboxConfig(rate_limits=False))
    yield running
    running.stop()
