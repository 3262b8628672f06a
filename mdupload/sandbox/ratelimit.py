"""Rate limits counted as MangaDex counts them: fixed windows per IP, global and per endpoint.

Every answer carries `X-RateLimit-Limit`, `X-RateLimit-Remaining` and `X-RateLimit-Retry-After`
(the UNIX time, in whole seconds, at which the window ends) of the endpoint's window, or of the
global one for endpoints without their own.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass

from . import rules


@dataclass
class _Window:
    started: float
    count: int = 0


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    headers: dict[str, str]


class RateLimiter:
    def __init__(self, clock=time.time):
        self._clock = clock
        self._windows: dict[tuple[str, str], _Window] = {}
        self._lock = threading.Lock()

    def admit(self, ip: str, bucket: str | None) -> Verdict:
        """Count one request, or refuse it when a window it belongs to is full."""
        limits = [("global", rules.GLOBAL_LIMIT)]
        if bucket:
            limits.append((bucket, rules.ENDPOINT_LIMITS[bucket]))
        now = self._clock()
        with self._lock:
            windows = [(self._window(ip, name, size, now), limit, size) for name, (limit, size) in limits]
            for window, limit, size in windows:
                if window.count >= limit:
                    return Verdict(False, _headers(window, limit, size))
            for window, _limit, _size in windows:
                window.count += 1
            window, limit, size = windows[-1]
            return Verdict(True, _headers(window, limit, size))

    def _window(self, ip: str, name: str, size: float, now: float) -> _Window:
        window = self._windows.get((ip, name))
        if window is None or now >= window.started + size:
            window = self._windows[(ip, name)] = _Window(now)
        return window


def _headers(window: _Window, limit: int, size: float) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(max(0, limit - window.count)),
        "X-RateLimit-Retry-After": str(math.ceil(window.started + size)),
    }
