"""No secret in any output: every command of `mdupload --help`, run with -v against the sandbox.

The commands are enumerated from the click group, so a command added later is run too: with the
recipe below when it has one, else with arguments guessed from its parameters (a command whose
arguments cannot be guessed fails the test, asking for a recipe). The runs happen as in a GitHub
Actions job (CI, annotations, a step summary). Then stdout, stderr and every file the runs wrote
(ledger, step summary, receipts, caches, anything under the XDG folders) are searched for every
secret used: the password and client secret, the access and refresh tokens the sandbox issued (read
from its own state file), the LANraragi key, and the wrong password, secret and key that the error
runs send, each in its plain, URL-encoded, JSON-escaped, annotation-escaped and (the key) base64 forms.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote, quote_plus

import click
import pytest
import yaml

from mdupload.cli import main
from mdupload.sandbox import Account, SandboxConfig, start_sandbox
from mdupload.sandbox.lanraragi import start_lanraragi
from tests.e2e import EXAMPLE, copy_example

pytestmark = pytest.mark.e2e

# Secrets with characters that change when encoded (a leak in a form body or URL is still found).
ACCOUNT = Account("scanlator-q7", "pw&Q9v/x7+long=pass word%41", "client-id-3b1f9c2e", "client/secret+9d2f&e1=aa")
WRONG_PASSWORD = "wrong&pass/word+5e8c=zz"
WRONG_SECRET = "wrong/client+secret&7a0d"
LRR_KEY = "lrr-key/4c1e+9b&x=73"
WRONG_LRR_KEY = "wrong-lrr/key+0f3a&y"
FIXED = (ACCOUNT.password, ACCOUNT.client_secret, WRONG_PASSWORD, WRONG_SECRET, LRR_KEY, WRONG_LRR_KEY)
DEMO_SERIES_ITEM = "Demo Series - c007 [Demo Scans]"


@dataclass
class Run:
    name: str  # the command
    args: list[str]
    code: int
    stdout: str
    stderr: str
    expected: tuple[int, ...] = (0,)


@dataclass
class World:
    root: Path
    sandbox: object
    lanraragi: object
    second_library: object
    manifest: Path
    series: Path
    inbox: Path
    hosts_env: dict[str, str]  # hosts and settings only: credentials come from the stored account
    env: dict[str, str]  # plus the account in MDUPLOAD_* variables
    private: set[Path] = field(default_factory=set)  # inputs and stores that hold secrets by design
    runs: list[Run] = field(default_factory=list)
    generic: list[str] = field(default_factory=list)

    def run(self, name: str, args: list[str], env: dict[str, str], expected: tuple[int, ...] = (0,)) -> Run:
        done = subprocess.run([sys.executable, "-m", "mdupload", "-v", *args], check=False, env=env, capture_output=True,
                              text=True, timeout=180, stdin=subprocess.DEVNULL, cwd=self.root)
        run = Run(name, args, done.returncode, done.stdout, done.stderr, expected)
        self.runs.append(run)
        return run


def base_env(root: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MDUPLOAD_", "GITHUB_", "XDG_"))}
    env.pop("CI", None)
    for kind in ("CONFIG", "CACHE", "STATE", "DATA", "RUNTIME"):
        (root / "xdg" / kind.lower()).mkdir(parents=True, exist_ok=True, mode=0o700)
        env[f"XDG_{kind}_HOME" if kind != "RUNTIME" else "XDG_RUNTIME_DIR"] = str(root / "xdg" / kind.lower())
    env.update(MDUPLOAD_CONFIG_DIR=str(root / "config"), PYTHON_KEYRING_BACKEND="keyring.backends.fail.Keyring",
               MDUPLOAD_LEDGER=str(root / "state" / "ledger.sqlite3"), MDUPLOAD_CACHE_DIR=str(root / "cache"))
    # As in a GitHub Actions job: annotations on stderr and a step summary file are written too.
    env.update(CI="true", GITHUB_ACTIONS="true", GITHUB_STEP_SUMMARY=str(root / "state" / "step-summary.md"))
    return env


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("secrets")
    (root / "state").mkdir()
    sandbox = start_sandbox(SandboxConfig(rate_limits=False, processing_delay=0, users=(ACCOUNT,), state_dir=root / "sandbox-state"))
    lanraragi = start_lanraragi(api_key=LRR_KEY)
    second_library = start_lanraragi(api_key=LRR_KEY)
    try:
        manifest = copy_example(root / "series")
        text = manifest.read_text(encoding="utf-8")
        manifest.write_text(text.replace("chapters:", f"lanraragi:\n  url: {lanraragi.url}\nchapters:", 1),
                            encoding="utf-8")
        series = root / "series" / "demo-series.yaml"
        shutil.copy(EXAMPLE.parent / "example-series.yaml", series)
        inbox = root / "inbox"
        shutil.copytree(EXAMPLE.parent / "chapters" / "c001", inbox / DEMO_SERIES_ITEM)
        hosts = {"MDUPLOAD_API_URL": sandbox.api_url, "MDUPLOAD_AUTH_URL": sandbox.auth_url,
                 "MDUPLOAD_REPORT_URL": sandbox.report_url, "MDUPLOAD_LANRARAGI_KEY": LRR_KEY,
                 "MDUPLOAD_LANRARAGI_URL": lanraragi.url, "MDUPLOAD_ACCEPT_TERMS": "1"}
        hosts_env = {**base_env(root), **hosts}
        env = {**hosts_env, "MDUPLOAD_USERNAME": ACCOUNT.username, "MDUPLOAD_PASSWORD": ACCOUNT.password,
               "MDUPLOAD_CLIENT_ID": ACCOUNT.client_id, "MDUPLOAD_CLIENT_SECRET": ACCOUNT.client_secret}
        users = root / "config-inputs" / "users.yaml"
        users.parent.mkdir()
        users.write_text(yaml.safe_dump([ACCOUNT.__dict__]), encoding="utf-8")
        world = World(root, sandbox, lanraragi, second_library, manifest, series, inbox, hosts_env, env,
                      private={root / "config", root / "config-inputs", root / "sandbox-state"})
        run_everything(world, users)
        yield world
    finally:
        second_library.stop()
        lanraragi.stop()
        sandbox.stop()


# --- what runs ------------------------------------------------------------------------------------

def recipes(world: World) -> dict[str, list]:
    """Known commands: (arguments, environment, exit codes expected) in the order they run, or a function
    that makes them when the command's turn comes (from what the runs before it produced)."""
    manifest, env, stored = str(world.manifest), world.env, world.hosts_env
    return {
        "login": [(["login", "--json"], env, (0,)),
                  (["login"], {**env, "MDUPLOAD_PASSWORD": WRONG_PASSWORD}, (3,))],
        "whoami": [(["whoami", "--check", "--json"], stored, (0,)), (["whoami", "--all", "--json"], env, (0,))],
        "validate": [(["validate", "--json", manifest], env, (0,))],
        "upload": [(["upload", manifest, "--accept-terms", "--json"], env, (0,))],
        "sessions": [(["sessions", "--json"], stored, (0,)),
                     (["sessions", "--json"], {**env, "MDUPLOAD_CLIENT_SECRET": WRONG_SECRET}, (3,))],
        "status": [(["status", manifest, "--json"], env, (0,))],
        "archive": [(["archive", manifest, "--json"], env, (0,)),  # then a second library, with a wrong key:
                    (["archive", manifest, "--json", "--to", world.second_library.url],
                     {**env, "MDUPLOAD_LANRARAGI_KEY": WRONG_LRR_KEY}, (3,))],
        "watch": [(["watch", str(world.inbox), "--series", str(world.series), "--once", "--settle", "0",
                    "--accept-terms"], stored, (0,))],
        "verify": [(["verify", manifest, "--download", "--json"], stored, (0,))],
        "pull": [lambda: (["pull", uploaded_chapter(world), str(world.root / "pulled"), "--json"], stored, (0,))],
        "logout": [(["logout", "--json"], env, (0,))],
        "init": [lambda: (["init", str(releases(world))], world.hosts_env, (0,))],
    }


def releases(world: World) -> Path:
    """A folder holding one release named by the convention, for `mdupload init`."""
    folder = world.root / "releases"
    shutil.copytree(EXAMPLE.parent / "chapters" / "c001", folder / "The Sandbox Chronicles - c001 [Sandbox Scans]")
    return folder


ORDER = ["login", "whoami", "validate", "upload", "sessions", "status", "archive", "watch", "verify", "pull"]
LAST = ["logout"]


def uploaded_chapter(world: World) -> str:
    """The id of a chapter the upload run published (from its JSON document)."""
    upload = next(run for run in world.runs if run.name == "upload" and run.code == 0)
    return json.loads(upload.stdout)["chapters"][0]["chapter_id"]


def guessed(world: World, command: click.Command) -> list[str] | None:
    """Arguments for a command without a recipe, from its parameters; None when they cannot be guessed."""
    args: list[str] = []
    for param in command.params:
        if isinstance(param, click.Argument):
            name = param.name.lower()
            if "inbox" in name:
                args.append(str(world.inbox))
            elif "manifest" in name or "path" in name or "file" in name:
                args.append(str(world.manifest))
            elif param.required:
                return None
        elif isinstance(param, click.Option) and param.required:
            if param.name and "series" in param.name:
                args += [param.opts[0], str(world.series)]
            else:
                return None
    flags = {opt for param in command.params if isinstance(param, click.Option) for opt in param.opts}
    return [*args, *(flag for flag in ("--json", "--accept-terms", "--once") if flag in flags)]


def run_everything(world: World, users: Path) -> None:
    commands = main.commands
    book = recipes(world)
    names = [n for n in ORDER if n in commands] + sorted(set(commands) - set(ORDER) - set(LAST) - {"sandbox"})
    names += [n for n in LAST if n in commands]
    for name in names:
        if name in book:
            for recipe in book[name]:
                args, env, expected = recipe() if callable(recipe) else recipe
                world.run(name, args, env, expected)
            continue
        args = guessed(world, commands[name])
        world.generic.append(name)
        if args is None:
            world.runs.append(Run(name, [], -1, "", "", ("no recipe",)))
        else:
            world.run(name, [name, *args], world.env, (0, 1))
    if "sandbox" in commands:
        world.runs.append(run_sandbox_command(world, users))


def run_sandbox_command(world: World, users: Path) -> Run:
    args = ["sandbox", "--port", "0", "--athome-port", "0", "--users", str(users)]
    process = subprocess.Popen([sys.executable, "-m", "mdupload", "-v", *args], env=world.env, cwd=world.root,
                               stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        lines.append(line)
        if line.startswith("Serving until"):
            break
    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=60)
    return Run("sandbox", args, process.returncode, "".join(lines) + stdout, stderr)


# --- what is searched -----------------------------------------------------------------------------

def issued_tokens(world: World) -> set[str]:
    state = json.loads((world.root / "sandbox-state" / "state.json").read_text(encoding="utf-8"))
    return set(state["tokens"])


def forms(secret: str) -> set[str]:
    annotation = secret.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")  # a GitHub workflow command
    shapes = {secret, quote_plus(secret), quote(secret, safe=""), json.dumps(secret)[1:-1], annotation,
              annotation.replace(":", "%3A").replace(",", "%2C")}
    if secret in (LRR_KEY, WRONG_LRR_KEY):
        shapes.add(base64.b64encode(secret.encode()).decode())
    return shapes


def written_files(world: World) -> list[Path]:
    found = []
    for path in world.root.rglob("*"):
        if path.is_file() and not any(path.is_relative_to(p) for p in world.private):
            found.append(path)
    return found


def leaks(text: str, secrets: dict[str, str]) -> list[str]:
    return [label for secret, label in secrets.items() for shape in forms(secret) if shape in text]


@pytest.fixture(scope="module")
def secrets(world) -> dict[str, str]:
    labels = dict(zip(FIXED, ("password", "client secret", "wrong password", "wrong client secret",
                              "LANraragi key", "wrong LANraragi key")))
    tokens = issued_tokens(world)
    return {**labels, **{token: f"token {token[:12]}..." for token in tokens}}


# --- the tests ----------------------------------------------------------------------------------

def test_every_command_of_the_group_was_run(world):
    ran = {run.name for run in world.runs}
    assert ran == set(main.commands), f"not run: {set(main.commands) - ran}"
    unguessable = [run.name for run in world.runs if run.expected == ("no recipe",)]
    assert not unguessable, f"add a recipe to tests/test_secrets_e2e.py for: {unguessable}"


def test_every_run_ended_as_expected_without_a_traceback(world):
    for run in world.runs:
        # -v shows the details of an error as a traceback after "DEBUG mdupload: details"; no other one
        unexpected = run.stderr.count("Traceback") - run.stderr.count("DEBUG mdupload: details\nTraceback")
        assert unexpected == 0, f"{run.args}: {run.stderr[-3000:]}"
        if run.name == "sandbox":
            assert "Serving until Ctrl-C." in run.stdout and "sandbox stopped" in run.stderr, run.stderr
            continue
        assert run.code in run.expected, f"{run.args} -> {run.code}: {run.stderr[-3000:]}"


def test_the_runs_really_used_the_secrets(world, secrets):
    tokens = [s for s in secrets if secrets[s].startswith("token")]
    assert len(tokens) >= 8  # env sign-ins, stored refreshes, the login: each issued an access and a refresh token
    log = world.sandbox.state()["requests"]
    assert sum(r["authorization"] for r in log) >= 20 and any(r["path"].startswith("/upload/") for r in log)
    verbose = "\n".join(run.stderr for run in world.runs)
    assert "Bearer [REDACTED]" in verbose and "client_secret" in verbose  # the -v trace did show the calls
    assert "::error" in verbose  # and the failing runs wrote GitHub annotations
    if "archive" in main.commands:
        assert any(r["authorization"] and r["method"] == "PUT" for r in world.lanraragi.requests())
        assert any(r["authorization"] and r["method"] == "PUT" for r in world.second_library.requests())


def test_no_secret_in_any_output(world, secrets):
    found = {}
    for run in world.runs:
        for stream in ("stdout", "stderr"):
            hits = leaks(getattr(run, stream), secrets)
            if hits:
                found[f"{' '.join(run.args)} ({stream})"] = hits
    assert not found, f"secrets in the output: {found}"


def test_no_secret_in_any_file_the_runs_wrote(world, secrets):
    files = written_files(world)
    assert any(p.name.startswith("ledger") for p in files) and any(p.name == "step-summary.md" for p in files)
    found = {}
    for path in files:
        text = path.read_bytes().decode("latin-1")
        hits = leaks(text, secrets)
        if hits:
            found[str(path.relative_to(world.root))] = hits
    assert not found, f"secrets in files: {found}"
