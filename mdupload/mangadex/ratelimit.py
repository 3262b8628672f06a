"""Keep every thread of a client, together, under MangaDex's rate limits.

MangaDex counts about 5 requests per second per IP on the API host, and some endpoints have their
own allowance per minute (mdupload/limits.py). Whether the server counts in fixed or sliding
windows is not documented, so each allowance is kept as a sliding log of the moments requests were
let through: no interval of the window's length ever holds more than the allowance, which also
keeps every fixed window under it. Each window is padded (a quarter of it, at most a second)
so that requests leaving a little apart cannot arrive closer together than allowed.

The server's `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Retry-After` headers
correct the count. An answer says how many requests MangaDex counted in the window of that request
(Limit - Remaining); the ones this limiter let through up to that request are known, so the rest
were sent by someone else on the same IP (another program, a run that just ended). Those are
added to the log as "foreign" requests that leave when MangaDex's window ends (Retry-After), so
the limiter slows down exactly as much as MangaDex saw. Until the first answer, a new limiter lets
one request through: what came before it is not known until that answer tells. It does not simply stop until Retry-After
whenever Remaining reaches 0: Retry-After is rounded up to whole seconds, and waiting for it after
each fifth request would waste most of a second every time the log already keeps the count. A lower
Limit than the one known is adopted, and a 429 closes the bucket until the window ends (60 s when
the answer does not say).
"""

from __future__ import annotations

import re
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from .. import limits

GLOBAL = "global"

# (method, path template as a pattern, bucket in limits.ENDPOINT_LIMITS); first match wins, so the
# fixed paths come before the `{id}` ones that would also match them.
_RULES: tuple[tuple[str, re.Pattern, str | None], ...] = tuple(
    (method, re.compile(pattern), bucket)
    for method, pattern, bucket in (
        ("GET", r"/upload", "upload.get"),
        ("POST", r"/upload/begin(/[^/]+)?", "upload.begin"),
        ("POST", r"/upload/check-approval-required", None),
        ("POST", r"/upload/[^/]+/commit", "upload.commit"),
        ("POST", r"/upload/[^/]+", "upload.file"),
        ("DELETE", r"/upload/[^/]+/[^/]+", "upload.file"),  # one file, or /batch
        ("DELETE", r"/upload/[^/]+", "upload.abandon"),
        ("GET", r"/at-home/server/[^/]+", "at-home.server"),
    )
)


def bucket_for(method: str, path: str) -> str | None:
    """The per-endpoint allowance a request falls under (path without query), or None."""
    path = path.split("?", 1)[0].rstrip("/") or "/"
    for rule_method, pattern, bucket in _RULES:
        if method.upper() == rule_method and pattern.fullmatch(path):
            return bucket
    return None


# A new limiter knows nothing of what was sent just before it started (another program, a run that just ended):
# its first request goes alone, and the others wait for its answer, which says what MangaDex counted (at most
# this long, should no answer come).
FIRST_ANSWER_WAIT_S = 1.25
FIRST_ANSWER_POLL_S = 0.01


def _padding(window: float) -> float:
    return min(1.0, window / 4)


@dataclass
class _Bucket:
    limit: int
    window: float  # padded
    grants: deque = field(default_factory=deque)  # (monotonic time, ticket) of each request let through
    foreign: list = field(default_factory=list)  # when each request someone else made leaves MangaDex's window
    closed_until: float = float("-inf")

    def wait(self, now: float) -> float:
        """Seconds until one more request fits (0: now)."""
        while self.grants and self.grants[0][0] <= now - self.window:
            self.grants.popleft()
        self.foreign = [until for until in self.foreign if until > now]
        wait = 0.0
        excess = len(self.grants) + len(self.foreign) - self.limit
        if excess >= 0:
            leaving = sorted([when + self.window for when, _ticket in self.grants] + self.foreign)
            wait = leaving[excess] - now
        if self.closed_until > now:
            wait = max(wait, self.closed_until - now)
        return wait

    def grant(self, now: float, ticket: int) -> None:
        self.grants.append((now, ticket))

    def learn(self, now: float, ticket: int, counted: int, until: float) -> None:
        """MangaDex counted `counted` requests in the window of request `ticket`, a window ending at `until`."""
        self.wait(now)  # forget what has left
        ours = sum(1 for _when, t in self.grants if t <= ticket)  # what it can have counted of ours
        unknown = counted - ours - len(self.foreign)
        if unknown > 0:
            self.foreign.extend([until] * unknown)


class RateLimiter:
    """Thread-safe: `acquire` before each request to the API host, `observe` each answer."""

    def __init__(self, *, per_second: int = limits.GLOBAL_REQUESTS_PER_SECOND,
                 endpoints: Mapping[str, tuple[int, float]] = limits.ENDPOINT_LIMITS,
                 monotonic: Callable[[], float] = time.monotonic, wall: Callable[[], float] = time.time,
                 sleep: Callable[[float], None] = time.sleep):
        self._monotonic = monotonic
        self._wall = wall
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tickets = 0
        self._first_granted_at: float | None = None
        self._answered = False  # an answer came, and with it MangaDex's own count
        self._buckets = {GLOBAL: _Bucket(per_second, 1 + _padding(1))}
        for name, (count, window) in endpoints.items():
            self._buckets[name] = _Bucket(count, window + _padding(window))

    def acquire(self, method: str, path: str) -> int:
        """Block until this request may be sent; returns a ticket to pass to `observe`."""
        names = [GLOBAL] + [b for b in (bucket_for(method, path),) if b]
        buckets = [self._buckets[n] for n in names]
        while True:
            with self._lock:
                now = self._monotonic()
                wait = max(b.wait(now) for b in buckets)
                if self._first_granted_at is not None and not self._answered:
                    wait = max(wait, min(FIRST_ANSWER_POLL_S, self._first_granted_at + FIRST_ANSWER_WAIT_S - now))
                if wait <= 0:
                    self._tickets += 1
                    for b in buckets:
                        b.grant(now, self._tickets)
                    if self._first_granted_at is None:
                        self._first_granted_at = now
                    return self._tickets
            self._sleep(wait)

    def observe(self, method: str, path: str, ticket: int, status: int, headers: Mapping[str, str]) -> None:
        """Correct the count from an answer's rate-limit headers (and close the bucket on a 429).

        The headers describe the endpoint's own window, or the global one for endpoints without one.
        """
        with self._lock:
            self._answered = True
        name = bucket_for(method, path) or GLOBAL
        limit = _number(headers.get("X-RateLimit-Limit"))
        left = _number(headers.get("X-RateLimit-Remaining"))
        reset = _number(headers.get("X-RateLimit-Retry-After"))
        with self._lock:
            bucket = self._buckets[name]
            now = self._monotonic()
            # Not from a 429: it may come from another limiter (the global one, 5 a second) than this bucket's.
            if limit is not None and 0 < limit < bucket.limit and status != 429:
                bucket.limit = int(limit)
            if status == 429:
                wait = reset - self._wall() if reset is not None else limits.RATE_LIMIT_DEFAULT_WAIT_S
                bucket.closed_until = max(bucket.closed_until, now + wait)
                return
            if left is None:
                return
            # The window ends at most its length from now (Retry-After is rounded up to whole seconds).
            until = min(now + (reset - self._wall() if reset is not None else bucket.window), now + bucket.window)
            if until > now:  # an answer about a window that has ended says nothing about the next one
                bucket.learn(now, ticket, int(limit if limit is not None else bucket.limit) - int(left), until)


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
