"""The sandbox's rate limits, simulated network and faults, persistence, configuration files and command line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import requests
from click.testing import CliRunner

from mdupload.sandbox import (
    DEMO_MANGA,
    ConfigError,
    SandboxConfig,
    load_profile,
    load_users,
    start_sandbox,
)
from mdupload.sandbox.cli import sandbox_command
from mdupload.sandbox.network import Throttle
from mdupload.sandbox.ratelimit import RateLimiter
from tests.test_sandbox import Api, image

# --- rate limits ------------------------------------------------------------------------------------------------


def test_rate_limiter_counts_fixed_windows_globally_and_per_endpoint():
    clock = [1000.25]
    limiter = RateLimiter(clock=lambda: clock[0])
    answers = [limiter.admit("1.2.3.4", None) for _ in range(6)]
    assert [a.allowed for a in answers] == [True] * 5 + [False]
    assert [a.headers["X-RateLimit-Remaining"] for a in answers] == ["4", "3", "2", "1", "0", "0"]
    assert answers[-1].headers["X-RateLimit-Retry-After"] == "1002"  # the window's end, as a UNIX time
    assert limiter.admit("5.6.7.8", None).allowed  # per IP
    clock[0] += 1
    assert limiter.admit("1.2.3.4", None).allowed  # a new window

    begins = []
    for _ in range(21):  # 4 per second: under the global allowance, over the 20 per minute of /upload/begin
        clock[0] += 0.25
        begins.append(limiter.admit("1.2.3.4", "upload.begin"))
    assert [b.allowed for b in begins] == [True] * 20 + [False]
    assert begins[-1].headers["X-RateLimit-Limit"] == "20"
    assert int(begins[-1].headers["X-RateLimit-Retry-After"]) == int(1001.25 + 0.25 + 60) + 1


def test_past_the_limit_the_answer_is_429_with_the_headers():
    with start_sandbox() as sandbox:
        answers = []
        while len(answers) < 50 and (not answers or answers[-1].status_code != 429):
            answers.append(requests.get(sandbox.api_url + "/chapter"))
        refused = answers[-1]
        assert refused.status_code == 429
        assert refused.json()["errors"][0]["status"] == 429
        assert refused.headers["X-RateLimit-Remaining"] == "0"
        assert int(refused.headers["X-RateLimit-Retry-After"]) >= int(time.time())
        assert all({"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Retry-After"} <= set(a.headers)
                   for a in answers)


def test_no_rate_limits_turns_them_off():
    with start_sandbox(SandboxConfig(rate_limits=False)) as sandbox:
        answers = [requests.get(sandbox.api_url + "/chapter") for _ in range(15)]
        assert {a.status_code for a in answers} == {200}
        assert not any("X-RateLimit-Limit" in a.headers for a in answers)


# --- network simulation -----------------------------------------------------------------------------------------

def test_throttle_shares_one_budget_between_connections():
    clock, slept = [0.0], []

    def sleep(seconds):
        slept.append(seconds)
        clock[0] += seconds

    throttle = Throttle(1000, clock=lambda: clock[0], sleep=sleep)
    assert (throttle.burst, throttle.chunk) == (50, 50)
    for _ in range(10):  # two connections taking turns still share 1000 bytes/s
        throttle.take(50)
        throttle.take(50)
    assert throttle.bytes == 1000
    assert throttle.waited == pytest.approx((1000 - 50) / 1000)
    assert clock[0] == pytest.approx(0.95)


def test_bandwidth_cap_holds_for_request_bodies():
    with start_sandbox(SandboxConfig(rate_limits=False, bandwidth=400_000)) as sandbox:
        user = Api(sandbox)
        session = user.begin()
        body = image(padding=150_000)
        user.upload_ok(session, [("big.png", body)])
        throttle = sandbox.throttle
        assert throttle.bytes >= len(body)  # every byte of the body went through it
        assert throttle.waited > 0
        for granted_at, _size, so_far in throttle.grants:
            assert so_far <= throttle.burst + throttle.rate * (granted_at - throttle.started)
        network = sandbox.state()["network"]
        assert network["bandwidth"] == 400_000 and network["throttledBytes"] == throttle.bytes


def test_latency_and_file_processing_time_are_added():
    config = SandboxConfig(rate_limits=False, latency=0.2, file_processing_time=0.1)
    with start_sandbox(config) as sandbox:
        user = Api(sandbox)
        session = user.begin()
        started = time.monotonic()
        requests.get(sandbox.api_url + "/chapter")
        assert time.monotonic() - started >= 0.2
        started = time.monotonic()
        user.upload_ok(session, [(f"{n}.png", image(colour=n)) for n in range(3)])
        assert time.monotonic() - started >= 0.2 + 3 * 0.1


# --- faults -----------------------------------------------------------------------------------------------------

def _outcome(call) -> int | str:
    try:
        return call().status_code
    except requests.Timeout:
        return "timeout"
    except requests.ConnectionError:
        return "dropped"


def _twice(config: SandboxConfig, scenario) -> list:
    """The outcomes of the same scenario against two sandboxes with the same settings and seed."""
    runs = []
    for _ in range(2):
        with start_sandbox(config) as sandbox:
            runs.append(scenario(sandbox))
    assert runs[0] == runs[1], "the same seed must give the same faults"
    return runs[0]


def test_error_rate_answers_5xx_deterministically():
    outcomes = _twice(SandboxConfig(rate_limits=False, error_rate=0.4, seed=11),
                      lambda s: [_outcome(lambda: requests.get(s.api_url + "/chapter")) for _ in range(25)])
    assert 200 in outcomes and set(outcomes) - {200} and set(outcomes) <= {200, 500, 502, 503}


def test_burst_rate_answers_runs_of_429():
    def scenario(sandbox):
        outcomes = [_outcome(lambda: requests.get(sandbox.api_url + "/chapter")) for _ in range(30)]
        return outcomes, sandbox.state()["faults"]["injected"].get("burst", 0)

    outcomes, injected = _twice(SandboxConfig(rate_limits=False, burst_rate=0.1, burst_length=3, seed=5), scenario)
    assert injected == outcomes.count(429) > 0
    runs = "".join("x" if o == 429 else "." for o in outcomes).split(".")
    assert all(len(run) >= 3 for run in runs[:-1] if run)  # a burst lasts burst_length answers


def test_drop_rate_closes_connections_mid_body():
    def scenario(sandbox):
        user = Api(sandbox)
        body = {"manga": DEMO_MANGA, "locale": "en"}
        return [_outcome(lambda: user.call("POST", "/upload/check-approval-required", json=body)) for _ in range(20)]

    outcomes = _twice(SandboxConfig(rate_limits=False, drop_rate=0.3, seed=3), scenario)
    assert set(outcomes) == {200, "dropped"}

    with start_sandbox(SandboxConfig(rate_limits=False, drop_rate=1.0)) as sandbox:
        user = Api(sandbox)
        begin = {"manga": DEMO_MANGA, "groups": []}
        assert _outcome(lambda: user.call("POST", "/upload/begin", json=begin)) == "dropped"  # any call with a body
        body = image(padding=1_000_000)
        assert _outcome(lambda: user.upload("00000000-0000-4000-8000-000000000000", [("a.png", body)])) == "dropped"
        dropped = [r for r in sandbox.state()["requests"] if r["fault"] == "drop"]
        assert dropped[-1]["status"] is None and 0 < dropped[-1]["bytes"] < len(body)
        assert sandbox.state()["sessions"] == []


def test_lost_answers_are_stored_without_an_answer():
    def scenario(sandbox):
        user = Api(sandbox)
        outcomes = [_outcome(lambda: user.call("POST", "/upload/begin", json={"manga": DEMO_MANGA, "groups": []}))]
        session = user.call("GET", "/upload").json()["data"]["id"]  # it began, answered or not
        for n in range(10):
            outcomes.append(_outcome(lambda: user.upload(session, [(f"{n}.png", image(colour=n))])))
        files = sandbox.state()["sessions"][0]["files"]
        return outcomes, [f["originalFileName"] for f in files]

    outcomes, stored = _twice(SandboxConfig(rate_limits=False, lost_answer_rate=0.4, seed=9), scenario)
    assert set(outcomes) == {200, "dropped"}
    assert stored == [f"{n}.png" for n in range(10)]  # every batch was stored, answered or not

    with start_sandbox(SandboxConfig(rate_limits=False, lost_answer_rate=1.0, lost_answer_stall=5)) as sandbox:
        user = Api(sandbox)
        stalled = _outcome(lambda: user.http.post(sandbox.api_url + "/upload/begin", timeout=0.3,
                                                  json={"manga": DEMO_MANGA, "groups": []}))
        assert stalled == "timeout" and len(sandbox.state()["sessions"]) == 1


def test_early_token_expiry_answers_401_until_the_client_logs_in_again():
    def scenario(sandbox):
        user, outcomes = Api(sandbox), []
        for _ in range(20):
            outcomes.append(_outcome(lambda: user.call("GET", "/auth/check")))
            if outcomes[-1] == 401:
                assert user.call("GET", "/auth/check").status_code == 401  # that token stays dead
                user.login()
        return outcomes

    outcomes = _twice(SandboxConfig(rate_limits=False, early_expiry_rate=0.25, seed=2), scenario)
    assert set(outcomes) == {200, 401}


def test_athome_nodes_fail_at_the_configured_rate():
    def scenario(sandbox):
        user = Api(sandbox)
        chapter = user.publish(pages=1)
        served = requests.get(f"{sandbox.api_url}/at-home/server/{chapter}").json()
        url = f"{served['baseUrl']}/data/{served['chapter']['hash']}/{served['chapter']['data'][0]}"
        return [_outcome(lambda: requests.get(url)) for _ in range(25)]

    outcomes = _twice(SandboxConfig(rate_limits=False, athome_fail_rate=0.4, seed=8, processing_delay=0), scenario)
    assert set(outcomes) == {200, 500, "dropped"}


# --- state, configuration, command line -------------------------------------------------------------------------

def test_state_survives_a_restart(tmp_path):
    config = SandboxConfig(rate_limits=False, state_dir=tmp_path / "state", processing_delay=0)
    with start_sandbox(config) as sandbox:
        user = Api(sandbox)
        chapter = user.publish(chapter="3", pages=2)
        session = user.begin()
        user.upload_ok(session, [("kept.png", image(colour=7))])
        before = sandbox.state()
    with start_sandbox(config) as sandbox:
        after = sandbox.state()
        assert after["chapters"] == before["chapters"] and after["sessions"] == before["sessions"]
        still = requests.get(sandbox.api_url + "/upload", headers=user.http.headers)  # the old token still works
        assert still.status_code == 200 and still.json()["data"]["id"] == session
        served = requests.get(f"{sandbox.api_url}/at-home/server/{chapter}").json()
        page = requests.get(f"{served['baseUrl']}/data/{served['chapter']['hash']}/{served['chapter']['data'][1]}")
        assert page.content == image(colour=2)


def test_users_file_adds_accounts(tmp_path):
    users = tmp_path / "users.yaml"
    users.write_text("- {username: bob, password: pw, client_id: bob-client, client_secret: s3}\n")
    (bob,) = load_users(users)
    with start_sandbox(SandboxConfig(rate_limits=False, users=(bob,))) as sandbox:
        assert Api(sandbox, bob).call("GET", "/auth/check").json()["isAuthenticated"] is True
    users.write_text("- {username: bob, password: pw, client_id: bob-client}\n")
    with pytest.raises(ConfigError, match="users.yaml: account 1 needs"):
        load_users(users)


def test_profile_file_sets_options_by_name(tmp_path):
    profile = tmp_path / "bad-day.yaml"
    profile.write_text("latency: 0.05\ndrop-rate: 0.1\nseed: 4\nstate_dir: st\napproval_required: ['*:ja']\n")
    assert load_profile(profile) == {"latency": 0.05, "drop_rate": 0.1, "seed": 4, "state_dir": tmp_path / "st",
                                     "approval_required": ("*:ja",)}
    profile.write_text('{"lag": 1}')
    with pytest.raises(ConfigError, match="unknown option 'lag'.*latency"):
        load_profile(profile)
    profile.write_text("error_rate: 2")
    with pytest.raises(ConfigError, match="error_rate must be between 0 and 1"):
        SandboxConfig(**load_profile(profile))


def test_command_refuses_a_bad_users_file(tmp_path):
    users = tmp_path / "users.yaml"
    users.write_text("just text")
    result = CliRunner().invoke(sandbox_command, ["--users", str(users)])
    assert result.exit_code == 2 and "expected a list of accounts" in result.output


def test_command_prints_urls_and_env_then_serves_until_sigterm(tmp_path):
    profile = tmp_path / "profile.json"
    profile.write_text('{"seed": 99, "latency": 0}')
    process = subprocess.Popen([sys.executable, "-m", "mdupload.sandbox", "--profile", str(profile), "--seed", "5",
                                "--no-rate-limits", "--state", str(tmp_path / "st")],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               cwd=os.path.dirname(os.path.dirname(__file__)))
    try:
        lines = []
        while not lines or lines[-1] != "Serving until Ctrl-C.":
            line = process.stdout.readline()
            assert line, process.stderr.read()
            lines.append(line.rstrip("\n"))
        env = dict(line[len("export "):].split("=", 1) for line in lines if line.startswith("export "))
        assert set(env) >= {"MDUPLOAD_API_URL", "MDUPLOAD_AUTH_URL", "MDUPLOAD_USERNAME", "MDUPLOAD_PASSWORD",
                            "MDUPLOAD_CLIENT_ID", "MDUPLOAD_CLIENT_SECRET"}
        assert env["MDUPLOAD_AUTH_URL"] == env["MDUPLOAD_API_URL"] + "/realms/mangadex/protocol/openid-connect/token"
        state = requests.get(env["MDUPLOAD_API_URL"] + "/_sandbox/state").json()
        assert state["faults"]["seed"] == 5  # the option wins over the profile
        token = requests.post(env["MDUPLOAD_AUTH_URL"], data={
            "grant_type": "password", "username": env["MDUPLOAD_USERNAME"], "password": env["MDUPLOAD_PASSWORD"],
            "client_id": env["MDUPLOAD_CLIENT_ID"], "client_secret": env["MDUPLOAD_CLIENT_SECRET"]})
        assert token.status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) == 0
    assert (tmp_path / "st" / "state.json").exists()
