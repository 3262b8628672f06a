"""The rate limiter keeps all threads together under MangaDex's allowances, in virtual time."""

from __future__ import annotations

import bisect
import json
import re
import threading

import pytest
import responses

from mdupload import limits
from mdupload.mangadex import Credentials, MangaDexClient, RateLimiter, UploadFile
from mdupload.mangadex.ratelimit import bucket_for

T0 = 1_750_000_000.0
API = "https://api.mangadex.org"
AUTH = "https://auth.mangadex.org/realms/mangadex/protocol/openid-connect/token"
SESSION = "11111111-1111-4111-8111-111111111111"
MANGA = "f9c33607-9180-4ba6-b85c-e4b5faee7192"


class VirtualClock:
    """Time that moves only when every worker thread sleeps: then it jumps to the earliest wake-up.

    While any worker runs, the clock stands still, so a request arrives at the fake server at the
    very moment the limiter let it go, and no real time is ever slept.
    """

    def __init__(self, workers: int = 1):
        self.now = T0
        self.running = workers
        self.wakes: list[float] = []
        self.cv = threading.Condition()

    def __call__(self) -> float:
        with self.cv:
            return self.now

    def sleep(self, seconds: float) -> None:
        with self.cv:
            wake = self.now + max(seconds, 0.0)
            bisect.insort(self.wakes, wake)
            self.running -= 1
            self._advance()
            while self.now < wake:
                self.cv.wait()
            self.wakes.remove(wake)
            self.running += 1

    def done(self) -> None:
        with self.cv:
            self.running -= 1
            self._advance()

    def _advance(self) -> None:
        if self.running == 0 and self.wakes:
            self.now = max(self.now, self.wakes[0])
            self.cv.notify_all()


def most_in_any_window(times: list[float], window: float) -> int:
    """The largest number of `times` inside any half-open interval [t, t + window)."""
    times = sorted(times)
    return max((bisect.bisect_left(times, t + window) - i for i, t in enumerate(times)), default=0)


def run_workers(count: int, clock: VirtualClock, work) -> None:
    errors = []

    def worker(n):
        try:
            work(n)
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            errors.append(exc)
        finally:
            clock.done()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


@pytest.mark.parametrize("method, path, bucket", [
    ("GET", "/upload", "upload.get"),
    ("POST", "/upload/begin", "upload.begin"),
    ("POST", f"/upload/begin/{SESSION}", "upload.begin"),
    ("POST", f"/upload/{SESSION}", "upload.file"),
    ("DELETE", f"/upload/{SESSION}/{MANGA}", "upload.file"),
    ("DELETE", f"/upload/{SESSION}/batch", "upload.file"),
    ("POST", f"/upload/{SESSION}/commit", "upload.commit"),
    ("DELETE", f"/upload/{SESSION}", "upload.abandon"),
    ("GET", f"/at-home/server/{SESSION}", "at-home.server"),
    ("POST", "/upload/check-approval-required", None),
    ("GET", "/chapter", None),
    ("GET", f"/upload/{SESSION}", None),
])
def test_endpoints_are_classified_by_method_and_path_template(method, path, bucket):
    assert bucket_for(method, path) == bucket
    assert bucket is None or bucket in limits.ENDPOINT_LIMITS


def test_one_caller_goes_at_full_speed_then_waits_for_the_window_to_free_a_slot():
    clock = VirtualClock()
    limiter = RateLimiter(monotonic=clock, wall=clock, sleep=clock.sleep)
    times = []
    for _ in range(21):
        ticket = limiter.acquire("POST", "/upload/begin")
        limiter.observe("POST", "/upload/begin", ticket, 200, {})  # answered at once (the transport observes each)
        times.append(clock() - T0)
    assert times[:limits.GLOBAL_REQUESTS_PER_SECOND] == [0.0] * limits.GLOBAL_REQUESTS_PER_SECOND
    assert times[19] < 10  # the first 20 only wait for the per-second allowance
    assert 60 < times[20] <= 62  # the 21st waits for the first to leave the minute (with a small margin)


def test_a_new_limiter_sends_its_first_request_alone_and_learns_from_its_answer_what_came_before():
    """Another program (or a run that just ended) may have used this second's allowance: until the first
    answer tells what MangaDex counted, nothing else goes out; then the count it tells is respected."""
    clock = VirtualClock()
    limiter = RateLimiter(monotonic=clock, wall=clock, sleep=clock.sleep)
    first = limiter.acquire("GET", "/chapter")
    clock.sleep(0.2)  # the answer's round trip: MangaDex counted 5 requests this second, 4 of them not ours
    limiter.observe("GET", "/chapter", first, 200, {"X-RateLimit-Limit": "5", "X-RateLimit-Remaining": "0",
                                                    "X-RateLimit-Retry-After": str(int(T0) + 1)})
    limiter.acquire("GET", "/chapter")
    assert clock() - T0 >= 1.0  # not before MangaDex's window ended


def test_without_an_answer_the_first_request_holds_the_others_back_for_a_window_at_most():
    clock = VirtualClock()
    limiter = RateLimiter(monotonic=clock, wall=clock, sleep=clock.sleep)
    limiter.acquire("GET", "/chapter")  # its answer never comes (a dropped connection)
    limiter.acquire("GET", "/chapter")
    assert 1.0 <= clock() - T0 <= 1.3
    limiter.acquire("GET", "/chapter")  # from then on, the allowance alone counts
    assert clock() - T0 <= 1.3


def test_many_threads_together_stay_under_the_global_and_endpoint_allowances():
    workers = 6
    clock = VirtualClock(workers)
    limiter = RateLimiter(monotonic=clock, wall=clock, sleep=clock.sleep)
    plan = [("POST", f"/upload/{SESSION}"), ("POST", f"/upload/{SESSION}/commit"), ("GET", "/upload"),
            ("DELETE", f"/upload/{SESSION}/batch"), ("GET", "/chapter")]
    sent: list[tuple[float, str, str]] = []
    lock = threading.Lock()

    def work(n):
        for i in range(25):
            method, path = plan[(n + i) % len(plan)]
            limiter.acquire(method, path)
            with lock:
                sent.append((clock(), method, path))

    run_workers(workers, clock, work)
    assert len(sent) == workers * 25
    assert most_in_any_window([t for t, _m, _p in sent], 1.0) <= limits.GLOBAL_REQUESTS_PER_SECOND
    for bucket, (allowed, window) in limits.ENDPOINT_LIMITS.items():
        times = [t for t, m, p in sent if bucket_for(m, p) == bucket]
        assert most_in_any_window(times, window) <= allowed, bucket
    commits = sorted(t for t, m, p in sent if p.endswith("/commit"))
    assert len(commits) == 30 and commits[-1] - commits[0] < 4 * 62  # 30 commits at 10 a minute: no dawdling


def test_remaining_zero_closes_the_bucket_until_retry_after():
    clock = VirtualClock()
    limiter = RateLimiter(monotonic=clock, wall=clock, sleep=clock.sleep)
    ticket = limiter.acquire("GET", "/upload")
    limiter.observe("GET", "/upload", ticket, 200, {"X-RateLimit-Limit": "30", "X-RateLimit-Remaining": "0",
                                                    "X-RateLimit-Retry-After": str(T0 + 42)})
    limiter.acquire("GET", "/upload")
    assert clock() == T0 + 42
    limiter.acquire("GET", "/chapter")  # other endpoints were never held up
    assert clock() == T0 + 42


def test_what_the_server_says_is_left_is_believed_when_less_than_the_count():
    clock = VirtualClock()
    limiter = RateLimiter(monotonic=clock, wall=clock, sleep=clock.sleep)
    ticket = limiter.acquire("POST", f"/upload/{SESSION}/commit")
    # Another program used most of the allowance: 2 left until T0 + 30.
    limiter.observe("POST", f"/upload/{SESSION}/commit", ticket, 200,
                    {"X-RateLimit-Remaining": "2", "X-RateLimit-Retry-After": str(T0 + 30)})
    times = []
    for _ in range(3):
        limiter.acquire("POST", f"/upload/{SESSION}/commit")
        times.append(clock() - T0)
    assert times[:2] < [1.0, 1.0] and times[2] == 30.0


def test_requests_sent_after_the_observed_one_count_against_what_is_left():
    clock = VirtualClock()
    limiter = RateLimiter(monotonic=clock, wall=clock, sleep=clock.sleep)
    first = limiter.acquire("POST", "/upload/begin")
    limiter.acquire("POST", "/upload/begin")  # in flight when the first one's answer comes
    limiter.observe("POST", "/upload/begin", first, 200,
                    {"X-RateLimit-Remaining": "1", "X-RateLimit-Retry-After": str(T0 + 20)})
    limiter.acquire("POST", "/upload/begin")
    assert clock() == T0 + 20


def test_a_429_without_headers_closes_the_bucket_for_the_default_wait():
    clock = VirtualClock()
    limiter = RateLimiter(monotonic=clock, wall=clock, sleep=clock.sleep)
    ticket = limiter.acquire("DELETE", f"/upload/{SESSION}")
    limiter.observe("DELETE", f"/upload/{SESSION}", ticket, 429, {})
    limiter.acquire("DELETE", f"/upload/{SESSION}")
    assert clock() == T0 + limits.RATE_LIMIT_DEFAULT_WAIT_S


def test_a_lower_limit_announced_by_the_server_is_adopted():
    clock = VirtualClock()
    limiter = RateLimiter(monotonic=clock, wall=clock, sleep=clock.sleep)
    ticket = limiter.acquire("GET", "/upload")
    limiter.observe("GET", "/upload", ticket, 200, {"X-RateLimit-Limit": "2", "X-RateLimit-Remaining": "1",
                                                    "X-RateLimit-Retry-After": str(T0 + 60)})
    for _ in range(2):
        limiter.acquire("GET", "/upload")
    assert clock() - T0 > 60


def test_a_429_from_the_global_limit_does_not_shrink_an_endpoints_allowance():
    # Found by the fault matrix: a burst of 429s saying "Limit: 5" (the per-second allowance) on a batch
    # upload cut the upload.file bucket from 250 to 5 per minute, and the next batches waited a minute.
    clock = VirtualClock()
    limiter = RateLimiter(monotonic=clock, wall=clock, sleep=clock.sleep)
    path = f"/upload/{SESSION}"
    ticket = limiter.acquire("POST", path)
    limiter.observe("POST", path, ticket, 429, {"X-RateLimit-Limit": "5", "X-RateLimit-Remaining": "0",
                                                "X-RateLimit-Retry-After": str(T0 + 2)})
    for _ in range(10):
        limiter.acquire("POST", path)
    assert clock() - T0 < 10  # closed until the Retry-After, then the global 5 a second, not 5 a minute


class CountingServer:
    """Answers like MangaDex and counts like it: sliding or fixed windows, 429 past an allowance."""

    def __init__(self, clock: VirtualClock, mode: str):
        self.clock = clock
        self.mode = mode
        self.lock = threading.Lock()
        self.seen: dict[str, list[float]] = {}
        self.statuses: list[int] = []

    def used(self, bucket: str, window: float, now: float) -> tuple[int, float]:
        times = self.seen.setdefault(bucket, [])
        if self.mode == "fixed":
            start = now - (now % window)
            inside = [t for t in times if t >= start]
            return len(inside), start + window
        inside = [t for t in times if t > now - window]
        return len(inside), (inside[0] + window if inside else now + window)

    def __call__(self, request):
        path = request.path_url.split("?")[0]
        bucket = bucket_for(request.method, path)
        with self.lock:
            now = self.clock()
            checks = [("global", limits.GLOBAL_REQUESTS_PER_SECOND, 1)]
            if bucket:
                checks.append((bucket, *limits.ENDPOINT_LIMITS[bucket]))
            headers = {}
            for name, allowed, window in checks:
                used, reset = self.used(name, window, now)
                if name == bucket:
                    headers = {"X-RateLimit-Limit": str(allowed),
                               "X-RateLimit-Remaining": str(max(0, allowed - used - 1)),
                               "X-RateLimit-Retry-After": str(int(reset) + 1)}
                if used >= allowed:
                    self.statuses.append(429)
                    return 429, {"X-RateLimit-Retry-After": str(int(reset) + 1)}, json.dumps(
                        {"result": "error", "errors": [{"status": 429, "title": "too_many_requests"}]})
            for name, _allowed, _window in checks:
                self.seen[name].append(now)
            self.statuses.append(200)
        return 200, headers, json.dumps(self.answer(request.method, path))

    @staticmethod
    def answer(method: str, path: str) -> dict:
        session = {"id": SESSION, "type": "upload_session",
                   "attributes": {"isCommitted": False, "version": 1, "createdAt": "2025-06-01T10:00:00+00:00",
                                  "updatedAt": "2025-06-01T10:00:00+00:00"},
                   "relationships": [{"id": MANGA, "type": "manga"}]}
        if path.endswith("/commit"):
            return {"result": "ok", "data": {"id": MANGA, "type": "chapter",
                                             "attributes": {"chapter": "1", "translatedLanguage": "en"}}}
        if method == "POST" and path.startswith("/upload/"):
            return {"result": "ok", "errors": [], "data": []}
        return {"result": "ok", "data": session}


@pytest.mark.parametrize("mode", ["sliding", "fixed"])
def test_a_busy_multi_threaded_run_never_meets_a_429(mode, tmp_path):
    workers = 4
    clock = VirtualClock(workers)
    server = CountingServer(clock, mode)
    page = tmp_path / "001.png"
    page.write_bytes(b"\x89PNG" + b"x" * 100)
    client = MangaDexClient(api_url=API, auth_url=AUTH, credentials=Credentials("demo", "pw-12345", "cid", "secret-1"),
                            sleep=clock.sleep, clock=clock)

    def work(n):
        for i in range(40):
            step = (n + i) % 4
            if step == 0:
                client.upload_files(SESSION, [UploadFile(page, "001.png", "image/png")])
            elif step == 1:
                client.commit(SESSION, {"volume": None, "chapter": "1", "title": None, "translatedLanguage": "en"}, [])
            elif step == 2:
                client.get_open_session()
            else:
                client.abandon_session(SESSION)

    with responses.RequestsMock() as http:
        http.post(AUTH, json={"access_token": "access-0123456789", "expires_in": 900,
                              "refresh_token": "refresh-0123456789", "refresh_expires_in": 86400})
        for method in (responses.GET, responses.POST, responses.DELETE):
            http.add_callback(method, re.compile(rf"{API}/upload.*"), callback=server)
        run_workers(workers, clock, work)
    assert len(server.statuses) == workers * 40
    assert 429 not in server.statuses
