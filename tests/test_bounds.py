"""Every answer is bounded in time and size (issue 16, points 1 and 7; docs/bounds.md).

Hostile servers of the tests' own (tests/hostile_server.py, on 127.0.0.1) drip answers one byte a
second, send endless images and a 3 GB body. The client runs in a subprocess with short deadlines set
through the environment variables users set, so each test also holds that the variables are read, and
so that the client's peak memory (its own ru_maxrss) is measured apart from the server's.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from mdupload.deadlines import MAX_ANSWER_BYTES, MAX_IMAGE_BYTES, Timeouts
from mdupload.vocabulary import CHUNK_BYTES  # the reader stops within one chunk of the cap
from mdupload.errors import UsageError

from .hostile_server import HostileServer, drip, endless, json_answer

ROOT = Path(__file__).resolve().parent.parent
CHAPTER = "8c7f4a1e-0d3b-4e5f-9a6b-1c2d3e4f5a6b"
PAGE = "1-" + "ab" * 32 + ".png"
TOTAL_S = 2.0  # MDUPLOAD_TIMEOUT in these tests
SLACK_S = 4.0  # start-up of the subprocess and a loaded machine
MEMORY_LIMIT_MB = 200
ACCESS_TOKEN = "access-token-that-must-stay-home"
PNG = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==")


def run_client(scenario: str, tmp_path: Path, **env: str) -> dict:
    """Run `scenario` (Python, with `url` set) in a fresh interpreter; what it raised, how long, peak memory."""
    program = textwrap.dedent("""
        import json, resource, sys, time
        url = sys.argv[1]
        started = time.monotonic()
        outcome = {"error": None}
        try:
        {scenario}
        except Exception as exc:
            outcome = {"error": str(exc), "kind": type(exc).__name__}
        outcome["seconds"] = time.monotonic() - started
        outcome["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(outcome))
    """).replace("{scenario}", textwrap.indent(textwrap.dedent(scenario), "    "))
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MDUPLOAD_")}
    environ.update({"MDUPLOAD_TIMEOUT": str(TOTAL_S), "HOME": str(tmp_path), "PYTHONPATH": str(ROOT)}, **env)
    done = subprocess.run([sys.executable, "-c", program, env.pop("URL", "")], capture_output=True, text=True,
                          env=environ, cwd=tmp_path, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def client_scenario(call: str, *, signed_in: bool = False) -> str:
    credentials = 'Credentials("reader", "secret-password", "client-id", "client-secret")' if signed_in else "None"
    return f"""
        import os
        from mdupload.deadlines import Timeouts
        from mdupload.mangadex import MangaDexClient
        from mdupload.mangadex.auth import Credentials
        client = MangaDexClient(api_url=url + "/api", auth_url=url + "/token", credentials={credentials},
                                rate_limiter=None, retries=0, timeouts=Timeouts.from_env(os.environ))
        {call}
    """


def reader_scenario(dest: Path, *, signed_in: bool = False) -> str:
    return client_scenario(f"""
        from mdupload.athome import AtHomeReader
        from mdupload.pull import pull_chapter
        {"client.get_open_session()  # signs in: a token is live while the pages download" if signed_in else ""}
        reader = AtHomeReader(client, report_url=url + "/report", environ=os.environ, sleep=lambda s: None)
        pull_chapter(reader, "{CHAPTER}", "{dest}")
        """, signed_in=signed_in)


def at_home(server: HostileServer) -> None:
    server.routes["/api/at-home/server/"] = json_answer(
        {"result": "ok", "baseUrl": server.url + "/node", "chapter": {"hash": "ab" * 16, "data": [PAGE], "dataSaver": []}})
    server.routes["/report"] = json_answer({"result": "ok"})


def reports(server: HostileServer) -> list[dict]:
    return [json.loads(seen.body) for seen in server.seen.requests if seen.path == "/report"]


def assert_within_deadline(outcome: dict, attempts: int = 1) -> None:
    assert TOTAL_S * attempts * 0.9 <= outcome["seconds"] <= TOTAL_S * attempts + SLACK_S, outcome
    assert outcome["peak_rss_mb"] < MEMORY_LIMIT_MB, outcome


def test_an_api_answer_dripped_a_byte_a_second_ends_at_the_deadline(tmp_path):
    with HostileServer() as server:
        server.routes["/api/"] = drip(headers_too=True)
        outcome = run_client(client_scenario(f'client.at_home_server("{CHAPTER}")'), tmp_path, URL=server.url)
    assert outcome["kind"] == "NetworkError", outcome
    assert "GET /at-home/server/" in outcome["error"] and f"did not complete within {TOTAL_S:.0f} s" in outcome["error"]
    assert_within_deadline(outcome)


def test_an_api_body_dripped_after_prompt_headers_ends_at_the_deadline(tmp_path):
    with HostileServer() as server:
        server.routes["/api/"] = drip(headers_too=False)
        outcome = run_client(client_scenario(f'client.at_home_server("{CHAPTER}")'), tmp_path, URL=server.url)
    assert outcome["kind"] == "NetworkError" and "did not complete within" in outcome["error"], outcome
    assert_within_deadline(outcome)


def test_a_dripping_token_endpoint_ends_at_the_deadline(tmp_path):
    with HostileServer() as server:
        server.routes["/token"] = drip(headers_too=False)
        outcome = run_client(client_scenario("client.get_open_session()", signed_in=True), tmp_path, URL=server.url)
    assert outcome["kind"] == "NetworkError" and "POST /token" in outcome["error"], outcome
    assert "did not complete within" in outcome["error"]
    assert not [seen for seen in server.seen.requests if seen.path.startswith("/api/")]  # never signed in
    assert_within_deadline(outcome)


def test_a_dripping_image_node_is_reported_failed_and_replaced_until_the_chapter_is_given_up(tmp_path):
    with HostileServer() as server:
        at_home(server)
        server.routes["/node/"] = drip(headers_too=False)
        outcome = run_client(reader_scenario(tmp_path / "pull"), tmp_path, URL=server.url)
        told = reports(server)
    assert outcome["kind"] == "AtHomeError", outcome
    assert "001.png (the image did not complete within 2 s" in outcome["error"], outcome
    assert "4 attempts" in outcome["error"]
    # 4 base URLs, one try on each: the node failed 4 times, reported each time, and a new base URL asked 3 times
    assert [report["success"] for report in told] == [False] * 4
    assert len([s for s in server.seen.requests if s.path.startswith("/api/at-home/server/")]) == 4
    assert_within_deadline(outcome, attempts=4)
    assert not list((tmp_path / "pull").glob("*.png*"))


def test_an_endless_image_stops_at_the_page_cap_and_the_node_counts_as_failing(tmp_path):
    with HostileServer() as server:
        at_home(server)
        server.routes["/node/"] = endless()
        outcome = run_client(reader_scenario(tmp_path / "pull"), tmp_path, URL=server.url)
        told, sent = reports(server), server.seen.sent
    assert outcome["kind"] == "AtHomeError", outcome
    assert f"001.png (more than {MAX_IMAGE_BYTES // 2**20} MB, larger than any page" in outcome["error"], outcome
    assert [report["success"] for report in told] == [False] * 4
    assert all(MAX_IMAGE_BYTES < report["bytes"] <= MAX_IMAGE_BYTES + CHUNK_BYTES for report in told), told
    # what crossed the wire per try: the cap and what the sockets' buffers held when the client hung up
    assert len(sent) == 4 and all(size < MAX_IMAGE_BYTES + 16 * 2**20 for size in sent), sent
    assert outcome["peak_rss_mb"] < MEMORY_LIMIT_MB, outcome
    assert not list((tmp_path / "pull").glob("*.png*"))  # the .part of each try is gone: bounded disk


def test_a_3_gb_lanraragi_error_body_is_never_read_whole(tmp_path):
    with HostileServer() as server:
        server.routes["/api/archives/"] = endless(status=500, content_length=3 * 2**30)
        outcome = run_client("""
            import os
            from mdupload.lanraragi import LanraragiClient
            LanraragiClient.from_env(url, environ=os.environ).exists("0123456789abcdef0123456789abcdef01234567")
        """, tmp_path, URL=server.url)
        sent = server.seen.sent
    assert outcome["kind"] == "LanraragiError", outcome
    assert f"(500) with more than {MAX_ANSWER_BYTES // 2**20} MB" in outcome["error"], outcome
    assert outcome["peak_rss_mb"] < MEMORY_LIMIT_MB, outcome
    assert sent and sent[0] < MAX_ANSWER_BYTES + 16 * 2**20, sent


def test_a_dripping_lanraragi_ends_at_the_deadline(tmp_path):
    with HostileServer() as server:
        server.routes["/api/"] = drip(headers_too=True)
        outcome = run_client("""
            import os
            from mdupload.lanraragi import LanraragiClient
            LanraragiClient.from_env(url, environ=os.environ).exists("0123456789abcdef0123456789abcdef01234567")
        """, tmp_path, URL=server.url)
    assert outcome["kind"] == "LanraragiError" and "did not complete within" in outcome["error"], outcome
    assert_within_deadline(outcome)


def test_a_fast_large_answer_is_not_cut_by_the_deadline(tmp_path):
    """The deadline grows with the bytes: an image of 18 MB at a rate above the minimum passes."""
    size = 18 * 2**20
    with HostileServer() as server:
        at_home(server)
        server.routes["/node/"] = endless(content_length=size)
        outcome = run_client(reader_scenario(tmp_path / "pull"), tmp_path, URL=server.url,
                             MDUPLOAD_TIMEOUT="0.5", MDUPLOAD_TIMEOUT_MIN_RATE="1024")
    assert outcome["error"] is None, outcome
    assert (tmp_path / "pull" / "001.png").stat().st_size == size


def test_the_image_reader_sends_no_credentials_to_a_node(tmp_path):
    """Through the reader itself, signed in, with a ~/.netrc naming the host, on the API's own origin."""
    (tmp_path / ".netrc").write_text("machine 127.0.0.1 login netrc-user password netrc-password\n")
    (tmp_path / ".netrc").chmod(0o600)
    with HostileServer() as server:
        at_home(server)
        server.routes["/token"] = json_answer({"access_token": ACCESS_TOKEN, "refresh_token": "refresh-token-x",
                                               "expires_in": 900})
        server.routes["/api/upload"] = json_answer({"result": "error"}, 404)
        server.routes["/node/data/"] = _png
        outcome = run_client(reader_scenario(tmp_path / "pull", signed_in=True), tmp_path, URL=server.url)
        seen = server.seen.requests
    assert outcome["error"] is None, outcome
    assert (tmp_path / "pull" / "001.png").read_bytes() == PNG
    upload = [s for s in seen if s.path.startswith("/api/upload")]
    assert upload and upload[0].headers.get("Authorization") == f"Bearer {ACCESS_TOKEN}"  # a token was live
    image_side = [s for s in seen if s.path.startswith("/node/") or s.path == "/report"]
    assert {s.path.split("/")[1] for s in image_side} == {"node", "report"}
    for request in image_side:
        names = {name.lower() for name in request.headers}
        assert not names & {"authorization", "cookie", "proxy-authorization"}, request
        assert ACCESS_TOKEN not in json.dumps(request.headers) and "netrc" not in json.dumps(request.headers)


def _png(handler, _seen) -> None:
    handler.wfile.write(f"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: {len(PNG)}\r\n"
                        "Connection: close\r\n\r\n".encode() + PNG)


def test_the_variables_are_read_and_checked():
    assert Timeouts.from_env({}) == Timeouts()
    assert Timeouts.from_env({"MDUPLOAD_TIMEOUT": "30", "MDUPLOAD_TIMEOUT_CONNECT": "3", "MDUPLOAD_TIMEOUT_IDLE": "9",
                              "MDUPLOAD_TIMEOUT_MIN_RATE": "4"}) == Timeouts(30, 3, 9, 4)
    for bad in ("0", "-1", "soon", "inf", "nan"):
        with pytest.raises(UsageError, match=f"MDUPLOAD_TIMEOUT={bad!r} is not a positive number"):
            Timeouts.from_env({"MDUPLOAD_TIMEOUT": bad})


def test_the_timeout_option_bounds_a_command_in_place_of_the_variable(tmp_path):
    """`--timeout 2` on a command that reads from MangaDex, with MDUPLOAD_TIMEOUT set far longer: 2 s wins."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("MDUPLOAD_")}
    environ.update({"MDUPLOAD_TIMEOUT": "600", "HOME": str(tmp_path), "PYTHONPATH": str(ROOT)})
    with HostileServer() as server:
        server.routes["/api/"] = drip(headers_too=True)
        started = time.monotonic()
        done = subprocess.run([sys.executable, "-m", "mdupload", "pull", CHAPTER, str(tmp_path / "pull"),
                               "--api-url", server.url + "/api", "--timeout", str(TOTAL_S)],
                              capture_output=True, text=True, env=environ, cwd=tmp_path, timeout=120, check=False)
        seconds = time.monotonic() - started
    assert done.returncode != 0 and f"did not complete within {TOTAL_S:.0f} s" in done.stderr, done.stderr
    attempts = 4  # a GET is tried 4 times (docs/bounds.md), each ending at the 2 s deadline
    assert seconds <= attempts * (TOTAL_S + 8) + SLACK_S, (seconds, done.stderr)
    assert "Traceback" not in done.stderr


def test_the_timeout_option_refuses_what_is_not_a_positive_number(tmp_path):
    done = subprocess.run([sys.executable, "-m", "mdupload", "pull", CHAPTER, str(tmp_path), "--timeout", "0"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=60, check=False,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 2 and "--timeout" in done.stderr, done.stderr
