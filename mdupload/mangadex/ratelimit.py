"""Keep every thread of a client, together, under MangaDex's rate limits.

MangaDex counts about 5 requests per second per IP on the API host, and some endpoints have their
own allowance per minute (mdupload/limits.py). Whether the server counts in fixed or sliding
windows is not documented, so each allowance is kept as a sliding log of the moments requests were
let through: no interval of the window's length ever holds more than the allowance, which also
keeps every fixed window under it. Each window is padded (a quarter of it, at most a second)
so that requests leaving a little apart cannot arrive closer together than allowed.

The server's `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Retry-After` headers
correct the count: when MangaDex says less is left than the log thinks (another program on the same
IP, a run that just ended), the limiter believes MangaDex; `Remaining: 0` or a 429 closes the
bucket until the window ends.
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


def _padding(window: float) -> float:
    return min(1.0, window / 4)


@dataclass
class _Bucket:
    limit: int
    window: float  # padded
    grants: deque = field(default_factory=deque)  # (monotonic time, ticket) of each request let through
    closed_until: float = float("-inf")
    server_left: int | None = None  # what MangaDex last said is left, minus what was sent since
    server_until: float = float("-inf")

    def wait(self, now: float) -> float:
        while self.grants and self.grants[0][0] <= now - self.window:
            self.grants.popleft()
        wait = 0.0
        if len(self.grants) >= self.limit:
            wait = self.grants[len(self.grants) - self.limit][0] + self.window - now
        if self.closed_until > now:
            wait = max(wait, self.closed_until - now)
        if self.server_left is not None:
            if now >= self.server_until:
                self.server_left = None
            elif self.server_left <= 0:
                wait = max(wait, self.server_until - now)
        return wait

    def grant(self, now: float, ticket: int) -> None:
        self.grants.append((now, ticket))
        if self.server_left is not None:
            self.server_left -= 1

    def sent_after(self, ticket: int) -> int:
        return sum(1 for _when, t in self.grants if t > ticket)


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
                if wait <= 0:
                    self._tickets += 1
                    for b in buckets:
                        b.grant(now, self._tickets)
                    return self._tickets
            self._sleep(wait)

    def observe(self, method: str, path: str, ticket: int, status: int, headers: Mapping[str, str]) -> None:
        """Correct the count from an answer's rate-limit headers (and close the bucket on a 429)."""
        name = bucket_for(method, path) or GLOBAL
        limit = _number(headers.get("X-RateLimit-Limit"))
        left = _number(headers.get("X-RateLimit-Remaining"))
        reset = _number(headers.get("X-RateLimit-Retry-After"))
        with self._lock:
            bucket = self._buckets[name]
            now = self._monotonic()
            until = now + (reset - self._wall() if reset is not None else bucket.window)
            if limit is not None and 0 < limit < bucket.limit:
                bucket.limit = int(limit)
            if status == 429:
                if reset is None:
                    until = now + limits.RATE_LIMIT_DEFAULT_WAIT_S
                bucket.closed_until = max(bucket.closed_until, until)
            elif left is not None:
                # The window ends at most its length from now (Retry-After is rounded up to whole seconds).
                until = min(until, now + bucket.window)
                left = int(left) - bucket.sent_after(ticket)
                if bucket.server_left is not None and bucket.server_until > now:
                    left, until = min(left, bucket.server_left), max(until, bucket.server_until)
                bucket.server_left, bucket.server_until = left, until


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None
