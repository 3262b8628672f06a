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


def pytest_configure(config):
    config.addinivalue_line("markers", "sandbox_warnings_allowed: the test sends what the sandbox warns about "
                            "on purpose (the `sandbox` fixture then only fails on its internal errors)")


@pytest.fixture
def sandbox(request):
    """A fresh sandbox on free loopback ports, without rate limits (they have tests of their own) and with
    chapters processed at once (tests of the processing delay start their own).

    The test fails when the traffic it caused made the sandbox warn (something a stricter server than
    the sandbox might refuse) or fail on a bug of its own (answered 500, which a client retries through).
    """
    running = start_sandbox(SandboxConfig(rate_limits=False, processing_delay=0))
    yield running
    state = running.state()
    running.stop()
    problems = [f"sandbox internal error on {e['request']}: {e['error']}" for e in state["internalErrors"]]
    if not request.node.get_closest_marker("sandbox_warnings_allowed"):
        problems += [f"sandbox warning on {w['request']} part {w['part']}: {w['leniency']} (a stricter server might "
                     f"{w['stricter']})" for w in state["warnings"]]
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture
def lrr():
    """A local LANraragi library with one static category, "Manga", and the tests' API key."""
    with start_lanraragi(api_key=LANRARAGI_KEY, categories=["Manga"]) as library:
        yield library


@pytest.fixture
def category(lrr):
    """The id of the library's "Manga" category."""
    return lrr.state()["categories"][0]["id"]
