"""A simulated bad day: a bandwidth cap shared by all connections, seeded faults, dropped sockets."""

from __future__ import annotations

import collections
import io
import random
import socket
import threading
import time
from typing import NoReturn


class Throttle:
    """A token bucket shared by every connection: at most `rate` bytes per second after a small burst.

    It keeps its own accounting (when it was first asked, bytes let through, seconds made to wait, and
    the recent grants as (time after waiting, bytes, bytes so far)) so that a test can check the cap
    without a stopwatch: bytes so far <= burst + rate * (grant time - started), always.
    """

    def __init__(self, rate: int, *, clock=time.monotonic, sleep=time.sleep):
        self.rate = rate
        self.burst = max(1, rate // 20)  # 50 ms worth of bytes
        self.chunk = min(self.burst, 1 << 20)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._due: float | None = None  # when the bytes granted so far have drained at `rate`
        self.started: float | None = None
        self.bytes = 0
        self.waited = 0.0
        self.grants: collections.deque[tuple[float, int, int]] = collections.deque(maxlen=10_000)

    def take(self, n: int) -> None:
        """Wait until `n` bytes (at most `chunk`) may pass."""
        with self._lock:
            now = self._clock()
            if self.started is None:
                self.started = now
            due = now if self._due is None else max(self._due, now)
            self._due = due + n / self.rate
            wait = max(0.0, self._due - self.burst / self.rate - now)
            self.waited += wait
        if wait:
            self._sleep(wait)
        with self._lock:
            self.bytes += n
            self.grants.append((self._clock(), n, self.bytes))


class CountingInput(io.RawIOBase):
    """The request body as the application reads it: counted, and throttled when a cap is set."""

    def __init__(self, stream, throttle: Throttle | None):
        self._stream = stream
        self._throttle = throttle
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        size = len(buffer) if self._throttle is None else min(len(buffer), self._throttle.chunk)
        data = self._stream.read(size)
        if data and self._throttle is not None:
            self._throttle.take(len(data))
        buffer[: len(data)] = data
        self.count += len(data)
        return len(data)


class Faults:
    """Seeded decisions: the n-th eligible request of a kind fails or not depending on (seed, kind, n)
    alone, so a sequential client sees the same faults on every run with the same seed."""

    def __init__(self, config, seed: int):
        self.config = config
        self.seed = seed
        self._counters: collections.Counter[str] = collections.Counter()
        self.injected: collections.Counter[str] = collections.Counter()
        self._burst_left = 0
        self._lock = threading.Lock()

    def draw(self, kind: str) -> random.Random | None:
        """A random source for this event when the fault `kind` strikes it, else None."""
        rate = getattr(self.config, f"{kind}_rate")
        if rate <= 0:
            return None
        with self._lock:
            n = self._counters[kind]
            self._counters[kind] += 1
        rng = random.Random(f"{self.seed}:{kind}:{n}")
        if rng.random() >= rate:
            return None
        with self._lock:
            self.injected[kind] += 1
        return rng

    def in_burst(self) -> bool:
        """Whether this request is answered 429 by a burst (one starts with probability burst_rate)."""
        with self._lock:
            if self._burst_left:
                self._burst_left -= 1
                self.injected["burst"] += 1
                return True
        if self.draw("burst") is None:
            return False
        with self._lock:
            self._burst_left = self.config.burst_length - 1
        return True


def drop_connection(environ) -> NoReturn:
    """Close the client's connection without an answer (werkzeug treats the error as a dropped client)."""
    try:
        environ["werkzeug.socket"].shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    raise ConnectionAbortedError("sandbox fault: connection closed without an answer")
