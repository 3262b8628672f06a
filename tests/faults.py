"""The fault matrix: the real `mdupload upload` in a subprocess against an in-process sandbox with its
fault options on, killed with SIGKILL at chosen or random points, then run again until it succeeds.

A scenario is decided by its seed alone (its faults, its kill points, the sandbox's fault draws);
only the exact instant of a timed kill varies between replays. After every scenario the invariants
are checked from the sandbox's `/_sandbox/state` document and from `mdupload status --json`:

- each chapter of the manifest exists exactly once on the server, and nothing else was published;
- its pages are exactly the local pages, in natural order (names and SHA-256);
- no upload session is left open;
- the ledger agrees with the server (each chapter committed, with the server's chapter id);
- no page was stored twice in one session (a killed batch is found by listing, not sent again);
- every run that was not killed ends with exit code 0 or 1 and without a traceback, and the
  scenario ends with a run that succeeds within MAX_RUNS runs.

Kill points (each on the n-th matching request of the run, as the sandbox logs it, which happens
after the server did the work and before the answer is written):

  begin_unanswered  the session was begun; the answer never reaches the client
  after_begin       a moment after the begin was answered (the client is recording it or uploading)
  mid_batch         a batch was stored; its answer never arrives (other batches may be in flight)
  between_batches   a moment after a batch was answered, before the next one is handled
  commit_sent       the commit was done (the chapter exists); its answer never arrives
  commit_answered   a moment after the commit was answered (the ledger may or may not know it)
  random            the n-th request of any kind plus a random delay, or a random instant of the
                    run's first 1.5 s (starting up, checking the pages, signing in)

Edit scenarios (`Scenario.edit`): the series is first published cleanly, then a page of chapter 1 is
changed, the last page of chapter 2 removed and a page added to chapter 2.5, and `upload --replace`
is killed at the points of a correction (EDIT_KILL_POINTS); besides the invariants above, each chapter
keeps the id it was first published with.

  edit_begin_unanswered  the edit session was begun (POST /upload/begin/{chapterId}); no answer
  edit_after_begin       a moment after the edit session's begin was answered
  edit_delete            the removed and changed pages were deleted from the edit session; no answer
  edit_mid_batch         a batch of new pages was stored; its answer never arrives
  edit_commit_sent       the edit's commit was done; its answer never arrives

`tests/test_fault_matrix.py` runs a fixed set of seeds in CI; `make soak` (tests/soak.py) runs hundreds.
"""

from __future__ import annotations

import collections
import hashlib
import json
import logging
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import requests
from PIL import Image

from mdupload.sandbox import (
    DEMO_GROUP,
    DEMO_MANGA,
    SECOND_GROUP,
    SandboxConfig,
    start_sandbox,
)
from mdupload.sandbox import uploads as sandbox_uploads
from tests.e2e import ROOT, cli_env

KILL_POINTS = ("begin_unanswered", "after_begin", "mid_batch", "between_batches", "commit_sent", "commit_answered",
               "random")
EDIT_KILL_POINTS = ("edit_begin_unanswered", "edit_after_begin", "edit_delete", "edit_mid_batch",
                    "edit_commit_sent", "random")
MAX_RUNS = 12  # runs of one scenario (killed ones included) before it counts as not finishing
RUN_TIMEOUT_S = 150.0

# The manifest: (chapter, volume, language, groups, publish_at, page count). Chapter 1 takes two batches;
# chapter 2 credits two groups; chapter 2.5 is scheduled for later (found only by the second duplicate query).
CHAPTERS = (
    ("1", "1", "en", (DEMO_GROUP,), None, 13),
    ("2", "1", "en", (DEMO_GROUP, SECOND_GROUP), None, 6),
    ("2.5", None, "en", (DEMO_GROUP,), "2031-06-01T12:00:00Z", 4),
)
BATCHES = 4  # batches of a run that uploads everything: 13 -> 10 + 3, 6, 4


# --- the series -------------------------------------------------------------------------------

@dataclass(frozen=True)
class LocalChapter:
    chapter: str
    volume: str | None
    language: str
    groups: tuple[str, ...]
    scheduled: bool
    pages: tuple[tuple[str, str], ...]  # (file name, SHA-256) in reading order


def make_series(folder: Path) -> tuple[Path, list[LocalChapter]]:
    """A manifest and its pages (small PNGs, all different); the chapters as the harness expects them."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = [f"manga: {DEMO_MANGA}", f"groups: [{DEMO_GROUP}]", "language: en", "chapters:"]
    expected = []
    for index, (number, volume, language, groups, publish_at, count) in enumerate(CHAPTERS):
        pages_dir = folder / f"c{number}"
        pages_dir.mkdir(exist_ok=True)
        pages = []
        for n in range(1, count + 1):  # written 1..count: the natural order (10.png after 9.png)
            path = pages_dir / f"{n}.png"
            Image.new("RGB", (48 + n, 64 + index), ((n * 37) % 256, (index * 90) % 256, 120)).save(path)
            pages.append((path.name, hashlib.sha256(path.read_bytes()).hexdigest()))
        lines.append(f'  - chapter: "{number}"')
        if volume is not None:
            lines.append(f'    volume: "{volume}"')
        lines.append(f"    pages: {pages_dir.name}")
        if groups != (DEMO_GROUP,):
            lines.append(f"    groups: [{', '.join(groups)}]")
        if publish_at is not None:
            lines.append(f"    publish_at: {publish_at}")
        expected.append(LocalChapter(number, volume, language, groups, publish_at is not None, tuple(pages)))
    manifest = folder / "manifest.yaml"
    manifest.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return manifest, expected


def edit_series(folder: Path, chapters: list[LocalChapter]) -> list[LocalChapter]:
    """The corrections of an edit scenario, made on disk: page 5 of chapter 1 replaced, the last page of chapter
    2 removed, a page added to chapter 2.5; the chapters as they must then be on the server."""
    edited = []
    for local in chapters:
        pages_dir = folder / f"c{local.chapter}"
        pages = list(local.pages)
        if local.chapter == "1":
            Image.new("RGB", (53, 64), (250, 10, 10)).save(pages_dir / "5.png")
            pages[4] = ("5.png", hashlib.sha256((pages_dir / "5.png").read_bytes()).hexdigest())
        elif local.chapter == "2":
            name, _digest = pages.pop()
            (pages_dir / name).unlink()
        else:
            added = pages_dir / f"{len(pages) + 1}.png"
            Image.new("RGB", (70, 70), (10, 250, 10)).save(added)
            pages.append((added.name, hashlib.sha256(added.read_bytes()).hexdigest()))
        edited.append(LocalChapter(local.chapter, local.volume, local.language, local.groups, local.scheduled,
                                   tuple(pages)))
    return edited


# --- scenarios --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Kill:
    point: str
    kind: str  # which requests count: "begin", "batch", "commit", "any", or "time" (an instant after the start)
    occurrence: int  # the n-th such request of the run (1-based)
    delay: float  # seconds after that request was handled (0: before its answer is written)

    def describe(self) -> str:
        if self.kind == "time":
            return f"{self.point}@{self.delay:.2f}s"
        return f"{self.point}#{self.occurrence}" + (f"+{self.delay * 1000:.0f}ms" if self.delay else "")


def kill_at(point: str, rng: random.Random, first: bool = True) -> Kill:
    """A kill at `point`; `first`: in the first run (later runs have less left to do, so they are killed early)."""
    chapters, batches, requests_ = (len(CHAPTERS), BATCHES, 25) if first else (1, 2, 10)
    if point == "begin_unanswered":
        return Kill(point, "begin", rng.randint(1, chapters), 0.0)
    if point == "after_begin":
        return Kill(point, "begin", rng.randint(1, chapters), rng.uniform(0.02, 0.4))
    if point == "mid_batch":
        return Kill(point, "batch", rng.randint(1, batches), 0.0)
    if point == "between_batches":
        return Kill(point, "batch", rng.randint(1, batches), rng.uniform(0.01, 0.15))
    if point == "commit_sent":
        return Kill(point, "commit", rng.randint(1, chapters), 0.0)
    if point == "commit_answered":
        return Kill(point, "commit", rng.randint(1, chapters), rng.uniform(0.005, 0.3))
    if point == "random":
        if rng.random() < 0.2:
            return Kill(point, "time", 0, rng.uniform(0.05, 1.5))
        return Kill(point, "any", rng.randint(1, requests_), rng.uniform(0.0, 0.3))
    if point == "edit_begin_unanswered":
        return Kill(point, "edit_begin", rng.randint(1, chapters), 0.0)
    if point == "edit_after_begin":
        return Kill(point, "edit_begin", rng.randint(1, chapters), rng.uniform(0.02, 0.4))
    if point == "edit_delete":
        return Kill(point, "delete", rng.randint(1, 2 if first else 1), 0.0)
    if point == "edit_mid_batch":
        return Kill(point, "batch", rng.randint(1, 2 if first else 1), 0.0)
    if point == "edit_commit_sent":
        return Kill(point, "commit", rng.randint(1, chapters), 0.0)
    raise ValueError(f"unknown kill point {point!r}; known: {', '.join(KILL_POINTS + EDIT_KILL_POINTS)}")


FAULT_PROFILES = {
    "none": {},
    "light": {"error_rate": 0.04, "drop_rate": 0.03, "lost_answer_rate": 0.05, "burst_rate": 0.02,
              "early_expiry_rate": 0.03},
    "heavy": {"error_rate": 0.1, "drop_rate": 0.06, "lost_answer_rate": 0.12, "burst_rate": 0.04,
              "early_expiry_rate": 0.06},
    "lost": {"lost_answer_rate": 0.3, "lost_answer_stall": 0.05},
}


DEFAULT_PROCESSING_DELAY = SandboxConfig().processing_delay


@dataclass(frozen=True)
class Scenario:
    seed: int
    kills: tuple[Kill, ...]  # one per run, in order; the runs after them are not killed
    profile: str
    faults: dict
    concurrency: int
    latency: float
    processing_delay: float
    edit: bool = False  # publish cleanly, change the pages, then correct with --replace under the kills

    @classmethod
    def from_seed(cls, seed: int, points: tuple[str, ...] | None = None, profile: str | None = None,
                  processing_delay: float | None = None, edit: bool = False) -> Scenario:
        """The scenario of a seed; `points`, `profile` and `processing_delay` pin what the seed would choose."""
        rng = random.Random(f"fault-matrix:{seed}")
        if points is None:
            points = tuple(rng.choice(EDIT_KILL_POINTS if edit else KILL_POINTS)
                           for _ in range(rng.choice((1, 1, 2, 2, 3))))
        kills = tuple(kill_at(point, rng, first=n == 0) for n, point in enumerate(points))
        if profile is None:
            profile = rng.choice(("none", "light", "light", "heavy", "lost"))
        # The sandbox's default processing delay: a chapter MangaDex has not processed yet is not listed, so only
        # the ledger, or the run's wait for the listing, stands between a rerun and a second upload.
        return cls(seed, kills, profile, dict(FAULT_PROFILES[profile]), rng.choice((1, 2, 3)),
                   rng.choice((0.0, 0.0, 0.01, 0.03)),
                   DEFAULT_PROCESSING_DELAY if processing_delay is None else processing_delay, edit)

    def describe(self) -> str:
        kills = ", ".join(k.describe() for k in self.kills) or "no kill"
        return (f"seed {self.seed}: {'edit, ' if self.edit else ''}{kills}; faults {self.profile}; concurrency {self.concurrency}; "
                f"latency {self.latency}s; processing delay {self.processing_delay}s")

    def config(self) -> SandboxConfig:
        # Rate limits of the sandbox stay off: the CLI keeps its own, and bursts of 429 are among the faults.
        return SandboxConfig(rate_limits=False, seed=self.seed, latency=self.latency,
                             processing_delay=self.processing_delay, **self.faults)


# --- watching the sandbox ----------------------------------------------------------------------

_SESSION_PATH = re.compile(r"^/upload/[0-9a-fA-F-]{36}$")
_COMMIT_PATH = re.compile(r"^/upload/[0-9a-fA-F-]{36}/commit$")
_EDIT_BEGIN_PATH = re.compile(r"^/upload/begin/[0-9a-fA-F-]{36}$")
_DELETE_PATH = re.compile(r"^/upload/[0-9a-fA-F-]{36}/(batch|[0-9a-fA-F-]{36})$")


def request_kind(entry: dict) -> str | None:
    """begin, edit_begin, batch, delete or commit for a request that took effect on the server; None otherwise."""
    if not (entry["status"] == 200 or entry["fault"] == "lost_answer"):
        return None
    path = entry["path"]
    if entry["method"] == "DELETE":
        return "delete" if _DELETE_PATH.match(path) else None
    if entry["method"] != "POST":
        return None
    if path == "/upload/begin":
        return "begin"
    if _EDIT_BEGIN_PATH.match(path):
        return "edit_begin"
    if _COMMIT_PATH.match(path):
        return "commit"
    if _SESSION_PATH.match(path):
        return "batch"
    return None


class StoreTap:
    """Records every file a sandbox stores, per session: (session id, original file name, SHA-256).

    The sandbox keeps only the files a session still holds; to prove that no page was stored twice,
    the harness wraps the function that stores accepted files (one wrapper for every sandbox of the
    process, told apart by their API URL).
    """

    _lock: ClassVar[threading.Lock] = threading.Lock()
    _taps: ClassVar[dict[str, list]] = {}
    _original: ClassVar = None

    def __init__(self, sandbox):
        self.url = sandbox.api_url
        self.stored: list[tuple[str, str, str]] = []
        with StoreTap._lock:
            if StoreTap._original is None:
                StoreTap._original = sandbox_uploads._store
                sandbox_uploads._store = StoreTap._wrapped
            StoreTap._taps[self.url] = self.stored

    @staticmethod
    def _wrapped(core, account, session_id, received):
        stored, errors = StoreTap._original(core, account, session_id, received)
        with StoreTap._lock:
            sink = StoreTap._taps.get(core.api_url)
            if sink is not None:
                sink.extend((f.session_id, f.original_file_name, f.file_hash) for f in stored)
        return stored, errors

    def close(self) -> None:
        with StoreTap._lock:
            StoreTap._taps.pop(self.url, None)
            if not StoreTap._taps and StoreTap._original is not None:
                sandbox_uploads._store = StoreTap._original
                StoreTap._original = None

    def stored_twice(self) -> list[tuple[str, str]]:
        counts = collections.Counter((session, name) for session, name, _sha in self.stored)
        return sorted(key for key, n in counts.items() if n > 1)


class SandboxErrors(logging.Handler):
    """While scenarios run: keeps the sandbox's own failures (a bug in it answers 500 and logs "sandbox error
    on ..."), and keeps its complaints about the sockets of killed clients (the point of the exercise) quiet."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.records: list[str] = []
        self._users = 0
        self._lock = threading.Lock()
        self._logger = logging.getLogger("mdupload.sandbox")

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("sandbox error on"):
            self.records.append(message)

    def __enter__(self):
        with self._lock:
            if self._users == 0:
                self._logger.addHandler(self)
                self._propagate, self._logger.propagate = self._logger.propagate, False
            self._users += 1
        return self

    def __exit__(self, *exc_info):
        with self._lock:
            self._users -= 1
            if self._users == 0:
                self._logger.removeHandler(self)
                self._logger.propagate = self._propagate


SANDBOX_ERRORS = SandboxErrors()


class Killer:
    """Kills the current CLI process when its kill point comes (called from the sandbox's request threads)."""

    def __init__(self):
        self._lock = threading.Lock()
        self._proc: subprocess.Popen | None = None
        self._kill: Kill | None = None
        self._seen: collections.Counter[str] = collections.Counter()
        self.killed = False
        self.timers: list[threading.Timer] = []

    def arm(self, proc: subprocess.Popen, kill: Kill | None) -> None:
        with self._lock:
            self._proc, self._kill, self.killed = proc, kill, False
            self._seen.clear()
        if kill is not None and kill.kind == "time":
            self._later(kill.delay, proc)

    def disarm(self) -> None:
        with self._lock:
            self._proc, self._kill = None, None
        for timer in self.timers:
            timer.cancel()
        self.timers.clear()

    def observe(self, entry: dict) -> None:
        with self._lock:
            kill, proc = self._kill, self._proc
            if kill is None or proc is None or kill.kind == "time":
                return
            kind = "any" if kill.kind == "any" else request_kind(entry)
            if kind != kill.kind:
                return
            self._seen[kind] += 1
            if self._seen[kind] != kill.occurrence:
                return
            self._kill = None  # once
            if kill.delay <= 0:
                self._now(proc)  # before the answer to this request is written
                return
        self._later(kill.delay, proc)

    def _later(self, delay: float, proc: subprocess.Popen) -> None:
        timer = threading.Timer(delay, self._at_time, args=(proc,))
        timer.daemon = True
        self.timers.append(timer)
        timer.start()

    def _at_time(self, proc: subprocess.Popen) -> None:
        with self._lock:
            if self._proc is proc:
                self._now(proc)

    def _now(self, proc: subprocess.Popen) -> None:
        if proc.poll() is None:
            try:
                os.kill(proc.pid, signal.SIGKILL)
                self.killed = True
            except ProcessLookupError:
                pass


# --- running a scenario ------------------------------------------------------------------------

@dataclass
class Run:
    kill: Kill | None
    killed: bool
    code: int | None
    seconds: float
    stdout: str
    stderr: str


@dataclass
class ScenarioResult:
    scenario: Scenario
    runs: list[Run] = field(default_factory=list)
    faults: collections.Counter = field(default_factory=collections.Counter)
    requests: int = 0
    violations: list[str] = field(default_factory=list)
    seconds: float = 0.0
    events: collections.Counter = field(default_factory=collections.Counter)

    @property
    def kills(self) -> int:
        return sum(1 for r in self.runs if r.killed)

    @property
    def reruns(self) -> int:
        return max(0, len(self.runs) - 1)

    @property
    def ok(self) -> bool:
        return not self.violations

    def report(self) -> str:
        lines = [self.scenario.describe(),
                 f"  {len(self.runs)} runs, {self.kills} killed, faults {dict(self.faults)}, {self.seconds:.1f}s"]
        for n, run in enumerate(self.runs, 1):
            how = "killed" if run.killed else f"exit {run.code}"
            lines.append(f"  run {n} ({run.kill.describe() if run.kill else 'no kill'}): {how} in {run.seconds:.1f}s")
        lines += [f"  VIOLATION: {v}" for v in self.violations]
        if self.violations:
            for n, run in enumerate(self.runs, 1):
                lines.append(f"  --- run {n} stderr ---")
                lines += ["    " + line for line in run.stderr.splitlines()[-60:]]
        return "\n".join(lines)


# Lines of the CLI's output that show which recovery path a run took (counted for the soak table).
EVENT_MARKERS = {
    "runs that resumed a session": "resuming session",
    "runs that resolved a lost commit": "went through",
    "runs that found a commit unlisted yet": "does not list it yet",
    "runs that removed strays": "from the session that are not pages of this plan",
    "runs that skipped a chapter (ledger)": "the ledger records it as published",
    "runs that skipped a chapter (MangaDex)": "MangaDex already has it",
}


def run_scenario(scenario: Scenario, workdir: Path | None = None) -> ScenarioResult:
    """Run one scenario to the end and check every invariant; never raises for a violation."""
    own = workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="mdupload-fault-")) if own else workdir
    result = ScenarioResult(scenario)
    started = time.monotonic()
    errors_before = len(SANDBOX_ERRORS.records)
    try:
        with SANDBOX_ERRORS:
            _scenario(scenario, result, workdir)
    except Exception as exc:  # noqa: BLE001 - a harness failure is reported like a violation, with what it did
        result.violations.append(f"harness error: {type(exc).__name__}: {exc}")
    finally:
        result.seconds = time.monotonic() - started
        if own:
            shutil.rmtree(workdir, ignore_errors=True)
    if len(SANDBOX_ERRORS.records) > errors_before:  # (with scenarios in parallel, maybe another one's)
        result.violations.append(f"the sandbox failed: {SANDBOX_ERRORS.records[errors_before:]}")
    return result


def _scenario(scenario: Scenario, result: ScenarioResult, workdir: Path) -> None:
    manifest, chapters = make_series(workdir / "series")
    ledger = workdir / "ledger.sqlite3"
    sandbox = start_sandbox(scenario.config())
    tap = StoreTap(sandbox)
    killer = Killer()
    sandbox.on_request(killer.observe)
    try:
        env = cli_env(sandbox, ledger, MDUPLOAD_CACHE_DIR=str(workdir / "cache"))
        first_ids = {}
        if scenario.edit:
            for _attempt in range(4):  # not killed, but the faults are on: a run may fail, and a rerun resumes
                published = _cli(["upload", str(manifest), "--accept-terms", "--json"], env)
                if published.code == 0:
                    break
            else:
                raise RuntimeError(f"the first publication failed four times: {published.stderr[-2000:]}")
            first_ids = {c["chapter"]: c["chapter_id"] for c in json.loads(published.stdout)["chapters"]}
            chapters = edit_series(manifest.parent, chapters)
        _runs(scenario, result, manifest, env, killer)
        sandbox.on_request(None)
        state = requests.get(sandbox.state_url, timeout=30).json()
        status = _cli(["status", str(manifest), "--json"], env)
        check(result, chapters, state, status, tap.stored_twice())
        now_ids = {c["chapter"]: c["id"] for c in state["chapters"]}
        for number, chapter_id in first_ids.items():
            if now_ids.get(number) != chapter_id:
                result.violations.append(f"chapter {number} was published as {chapter_id}, and is now "
                                         f"{now_ids.get(number)}: a correction must keep the chapter")
    finally:
        sandbox.on_request(None)
        killer.disarm()
        tap.close()
        sandbox.stop()


def _cli(args: list[str], env: dict) -> Run:
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "mdupload", *args], env=env, capture_output=True, text=True,
                          timeout=RUN_TIMEOUT_S, cwd=ROOT, stdin=subprocess.DEVNULL, check=False)
    return Run(None, False, done.returncode, time.monotonic() - started, done.stdout, done.stderr)


def _runs(scenario: Scenario, result: ScenarioResult, manifest: Path, env: dict, killer: Killer) -> None:
    args = [sys.executable, "-m", "mdupload", "upload", str(manifest), "--accept-terms", "--json",
            "--concurrency", str(scenario.concurrency), *(["--replace"] if scenario.edit else [])]
    for n in range(MAX_RUNS):
        kill = scenario.kills[n] if n < len(scenario.kills) else None
        started = time.monotonic()
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            proc = subprocess.Popen(args, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL, text=True,
                                    cwd=ROOT)
            killer.arm(proc, kill)
            try:
                code = proc.wait(timeout=RUN_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                code = proc.wait()
                result.violations.append(f"run {n + 1} did not finish within {RUN_TIMEOUT_S:.0f}s")
            killer.disarm()
            out.seek(0)
            err.seek(0)
            run = Run(kill, killer.killed, code, time.monotonic() - started, out.read(), err.read())
        result.runs.append(run)
        for event, marker in EVENT_MARKERS.items():
            if marker in run.stderr:
                result.events[event] += 1
        if run.killed:
            continue
        if "Traceback" in run.stderr or "Traceback" in run.stdout:
            result.violations.append(f"run {n + 1} printed a traceback")
        if code not in (0, 1):
            result.violations.append(f"run {n + 1} ended with exit code {code}")
        if code == 0:
            return
        time.sleep(min(2.0, 0.25 * 2 ** sum(1 for r in result.runs if not r.killed)))  # a failed run: try again
    result.violations.append(f"no run succeeded in {MAX_RUNS} runs")


def check(result: ScenarioResult, chapters: list[LocalChapter], state: dict, status: Run,
          stored_twice: list[tuple[str, str]]) -> None:
    """Add to `result` what it did (requests, faults by kind) and every invariant the end state violates."""
    violations = result.violations
    entries = state["requests"]
    result.requests = len(entries)
    result.faults.update(e["fault"] for e in entries if e["fault"])
    result.faults["early_expiry"] += sum(1 for e in entries if e["status"] == 401 and e["authorization"])
    if not result.faults["early_expiry"]:
        del result.faults["early_expiry"]

    server = state["chapters"]
    for local in chapters:
        found = [c for c in server
                 if c["manga"] == DEMO_MANGA and c["chapter"] == local.chapter and c["volume"] == local.volume
                 and c["translatedLanguage"] == local.language and set(c["groups"]) == set(local.groups)]
        if len(found) != 1:
            violations.append(f"chapter {local.chapter} exists {len(found)} times on the server")
            continue
        pages = [(p["originalFileName"], p["fileHash"]) for p in found[0]["pages"]]
        if pages != list(local.pages):
            violations.append(f"chapter {local.chapter} has pages {[n for n, _h in pages]} "
                              f"(hashes {'equal' if {h for _n, h in pages} == {h for _n, h in local.pages} else 'differ'}),"
                              f" not {[n for n, _h in local.pages]}")
    if len(server) != len(chapters):
        violations.append(f"the server has {len(server)} chapters, the manifest {len(chapters)}")
    if state["sessions"]:
        violations.append(f"sessions left open: {[(s['id'], len(s['files'])) for s in state['sessions']]}")
    if stored_twice:
        violations.append(f"pages stored twice in one session: {stored_twice}")
    if state["warnings"] or state["internalErrors"]:
        violations.append(f"mdupload's traffic made the sandbox warn ({state['warnings']}) or fail on a bug of its "
                          f"own ({state['internalErrors']})")
    if state["faults"]["injected"].get("lost_answer", 0) != result.faults.get("lost_answer", 0):
        violations.append("the request log and the sandbox's fault counters disagree")

    if status.code != 0:
        violations.append(f"`mdupload status` ended with exit code {status.code}: {status.stderr.strip()}")
        return
    rows = {row["chapter"]: row for row in json.loads(status.stdout)["chapters"]}
    by_number = {c["chapter"]: c for c in server}
    for local in chapters:
        row = rows.get(local.chapter)
        on_server = by_number.get(local.chapter)
        if row is None or on_server is None:
            continue
        if row["state"] != "committed" or row["chapter_id"] != on_server["id"] or row.get("session_id"):
            violations.append(f"the ledger says chapter {local.chapter} is {row['state']} as {row['chapter_id']} "
                              f"(session {row.get('session_id')}); the server has {on_server['id']}")
