"""How long and how large an answer mdupload waits for, for every request it sends (docs/bounds.md).

requests bounds only the wait for a connection and the wait between two bytes, so a server sending
one byte a second holds a request forever. Here every request runs under a Deadline:

- it starts at `Timeouts.total_s` (MDUPLOAD_TIMEOUT) and grows by the bytes that move at the minimum
  rate (MDUPLOAD_TIMEOUT_MIN_RATE): a large upload or image at a fair speed never runs out of time,
  a drip does, after about `total_s`;
- a watchdog thread shuts the sockets of a request whose deadline passed, which ends whatever read
  or write is blocked on them; leaving the `with` block then raises DeadlineExceeded, whatever the
  blocked call made of the closed socket (an error, or an answer that looks complete);
- only connections made through a BoundedAdapter are watched (every Session of mdupload mounts one).

Cancelling (Ctrl-C, SIGTERM in `watch`: interrupts.py): `cancel_requests()` shuts the sockets of every
request in flight, and from then on every Deadline raises Cancelled, as its request starts or ends.

The sizes: answers are read as a stream up to a cap (the callers' read loops), never whole into
memory. The variables are listed with every other setting in settings.py, which builds the
run's Timeouts from them.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.poolmanager import ProxyManager

from . import limits
from .errors import UsageError

TOTAL_ENV = "MDUPLOAD_TIMEOUT"
CONNECT_ENV = "MDUPLOAD_TIMEOUT_CONNECT"
IDLE_ENV = "MDUPLOAD_TIMEOUT_IDLE"
MIN_RATE_ENV = "MDUPLOAD_TIMEOUT_MIN_RATE"

DEFAULT_TOTAL_S = 120.0  # a JSON answer, a token, a page's first bytes: generous for a slow or busy server
DEFAULT_CONNECT_S = 10.0
DEFAULT_IDLE_S = 60.0  # the longest silence between two bytes
DEFAULT_MIN_RATE_KB_S = 16.0  # 128 kbit/s: a 20 MB page may take 21 min more, an upload of 150 MB 2.7 h

MAX_ANSWER_BYTES = 16 * limits.MB  # a JSON answer from MangaDex or LANraragi (the largest real ones are < 1 MB)
MAX_IMAGE_BYTES = limits.BYTES_PER_FILE  # no page MangaDex serves can be larger than it accepts

WATCH_TICK_S = 0.1  # how often the watchdog looks at the deadlines


@dataclass(frozen=True)
class Timeouts:
    """The time bounds of one kind of client; `from_env()` reads the MDUPLOAD_TIMEOUT* variables."""

    total_s: float = DEFAULT_TOTAL_S
    connect_s: float = DEFAULT_CONNECT_S
    idle_s: float = DEFAULT_IDLE_S
    min_rate_kb_s: float = DEFAULT_MIN_RATE_KB_S

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Timeouts:
        """The bounds the run's variables set (Settings.timeouts passes them), else the defaults."""
        return cls(_seconds(environ, TOTAL_ENV, DEFAULT_TOTAL_S), _seconds(environ, CONNECT_ENV, DEFAULT_CONNECT_S),
                   _seconds(environ, IDLE_ENV, DEFAULT_IDLE_S), _seconds(environ, MIN_RATE_ENV, DEFAULT_MIN_RATE_KB_S))

    @property
    def between_bytes(self) -> tuple[float, float]:
        """requests' `timeout`: seconds to connect, seconds between two bytes."""
        return self.connect_s, self.idle_s

    def deadline(self, what: str, sending: int = 0, total_s: float | None = None) -> Deadline:
        """The deadline of one request sending `sending` bytes (its answer's bytes extend it as they come)."""
        return Deadline(what, self.total_s if total_s is None else total_s, self.min_rate_kb_s * 1024, sending)


def _seconds(environ: Mapping[str, str], name: str, default: float) -> float:
    text = environ.get(name, "").strip()
    if not text:
        return default
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise UsageError(f"{name}={text!r} is not a positive number.",
                         hint=f"Set it to a number like {default:g}, or unset it for the default ({default:g}).")
    return value


class DeadlineExceeded(requests.Timeout):
    """The request did not complete within its deadline (a Timeout, so callers treat it like one)."""


class Cancelled(KeyboardInterrupt):
    """The run was interrupted: no request starts any more, and those in flight were cut (a KeyboardInterrupt,
    so that no `except Exception` takes it for a network failure to retry)."""


_CANCELLED = threading.Event()


def cancel_requests() -> None:
    """Stop every request of this process: the sockets of those in flight are shut at once (and any a
    request opens later), and every request that starts or ends from now on raises Cancelled."""
    _CANCELLED.set()
    _WATCHDOG.expire_all()


def allow_requests() -> None:
    """Let requests start again (the end of an interrupted scope that did not end the process: tests, mostly)."""
    _CANCELLED.clear()


class Deadline:
    """`with deadline:` bounds the requests made in the block by this thread (see the module's text)."""

    def __init__(self, what: str, seconds: float, min_rate_bytes_s: float, sending: int = 0):
        self.what = what
        self.seconds = seconds
        self.min_rate = min_rate_bytes_s
        self._allowance = seconds + sending / min_rate_bytes_s
        self._sockets: list[socket.socket] = []
        self._started = 0.0
        self._outer: Deadline | None = None
        self.expired = False

    def moved(self, size: int) -> None:
        """`size` more bytes came (or went): the deadline moves by the time they may take at the minimum rate."""
        self._allowance += size / self.min_rate

    @property
    def expires_at(self) -> float:
        return self._started + self._allowance

    def watch(self, sock: socket.socket) -> None:
        self._sockets.append(sock)

    def __enter__(self) -> Deadline:
        if _CANCELLED.is_set():
            raise Cancelled(f"{self.what}: not sent, the run was interrupted")
        self._started = time.monotonic()
        self._outer = getattr(_current, "deadline", None)
        _current.deadline = self
        _WATCHDOG.add(self)
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        _WATCHDOG.remove(self)
        _current.deadline = self._outer
        if _CANCELLED.is_set():
            raise Cancelled(f"{self.what}: cut, the run was interrupted") from exc
        if self.expired:
            raise DeadlineExceeded(
                f"{self.what} did not complete within {time.monotonic() - self._started:.0f} s "
                f"(the deadline: {self.seconds:g} s, more as bytes move at {self.min_rate / 1024:g} KB/s or faster; "
                f"{TOTAL_ENV} and {MIN_RATE_ENV} change it)") from exc
        return False

    def expire(self) -> None:
        """Called by the watchdog once the deadline passed (and on every tick after): end the sockets."""
        self.expired = True
        for sock in self._sockets:
            try:  # socket.socket's own shutdown: an SSLSocket's would tear down its state under the reader
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
            except OSError:  # closed already
                pass


_current = threading.local()


class _Watchdog:
    """One daemon thread, running while a deadline is active, expiring the deadlines that passed."""

    def __init__(self):
        self._active: set[Deadline] = set()
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    def add(self, deadline: Deadline) -> None:
        with self._changed:
            self._active.add(deadline)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="mdupload-deadlines", daemon=True)
                self._thread.start()
            self._changed.notify()

    def remove(self, deadline: Deadline) -> None:
        with self._changed:
            self._active.discard(deadline)

    def expire_all(self) -> None:
        """Expire every active deadline now (and, on every tick after, those still active: see _run)."""
        with self._changed:
            for deadline in self._active:
                deadline.expire()
            self._changed.notify()

    def _run(self) -> None:
        with self._changed:
            while True:
                while not self._active:
                    self._changed.wait()
                now = time.monotonic()
                for deadline in self._active:
                    if now >= deadline.expires_at or _CANCELLED.is_set():
                        deadline.expire()  # again on every tick: a socket may come late
                self._changed.wait(WATCH_TICK_S)


_WATCHDOG = _Watchdog()


def _watched(connection_class: type[HTTPConnection]) -> type[HTTPConnection]:
    """The connection class, its sockets handed to the thread's current Deadline (new and reused ones).

    The socket itself is kept: http.client lets go of it (sock = None) once an answer says Connection: close,
    while the answer is still being read from it.
    """
    class Watched(connection_class):
        def _new_conn(self):
            sock = super()._new_conn()
            _watch(sock)
            return sock

        def request(self, *args, **kwargs):
            if self.sock is not None:
                _watch(self.sock)
            return super().request(*args, **kwargs)

    Watched.__name__ = Watched.__qualname__ = f"Watched{connection_class.__name__}"
    return Watched


def _watch(sock: socket.socket) -> None:
    deadline = getattr(_current, "deadline", None)
    if deadline is not None:
        deadline.watch(sock)


class _WatchedHTTPPool(HTTPConnectionPool):
    ConnectionCls = _watched(HTTPConnection)


class _WatchedHTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _watched(HTTPSConnection)


_WATCHED_POOLS = {"http": _WatchedHTTPPool, "https": _WatchedHTTPSPool}


class BoundedAdapter(HTTPAdapter):
    """An HTTPAdapter whose connections a Deadline can end (direct and through an HTTP(S) proxy)."""

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _WATCHED_POOLS

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if type(manager) is ProxyManager:  # a SOCKS proxy has connection classes of its own
            manager.pool_classes_by_scheme = _WATCHED_POOLS
        return manager


def read_capped(response: requests.Response, cap: int, deadline: Deadline,
                chunk_bytes: int = 64 * 1024) -> tuple[bytes, bool]:
    """The answer's body, streamed: (the bytes, whether it went past `cap`: then only the first `cap`)."""
    chunks, size = [], 0
    for chunk in response.iter_content(chunk_bytes):
        deadline.moved(len(chunk))
        if size + len(chunk) > cap:
            chunks.append(chunk[:cap - size])
            return b"".join(chunks), True
        size += len(chunk)
        chunks.append(chunk)
    return b"".join(chunks), False
