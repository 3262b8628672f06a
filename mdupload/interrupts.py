"""Ctrl-C is prompt (docs/resilience.md): the first one stops new requests and cuts those in flight
(deadlines.cancel_requests shuts their sockets), and the process exits 130 within GRACE_S whatever its
threads are doing; a second one exits at once. Nothing is lost: every transition is in the ledger
before the call it leads to, so the rerun finds out what was sent, as after a kill.

`watch` handles SIGINT and SIGTERM itself (watch.stop_on_signals) and calls `interrupted()`.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from contextlib import contextmanager

from .deadlines import allow_requests, cancel_requests
from .errors import EXIT_INTERRUPTED

GRACE_S = 3.0  # after the first signal, the longest wait for the threads to let go before exiting anyway
RESUME = "run the same command again to resume where it stopped"

_failsafe_armed = False  # a command's run is in progress (prompt_on_interrupt): the failsafe may end the process
_timer: threading.Timer | None = None


def interrupted() -> None:
    """A first interrupt: no request starts any more, those in flight end now, and the process is given
    GRACE_S to exit (when a command's run is in progress)."""
    global _timer
    cancel_requests()
    if _failsafe_armed and _timer is None:
        _timer = threading.Timer(GRACE_S, _exit_now, args=(f"interrupted: stopped; {RESUME}",))
        _timer.daemon = True
        _timer.start()


def exit_now(why: str) -> None:
    """A second interrupt: exit at once (the ledger is written transaction by transaction, like after a kill)."""
    _exit_now(f"{why}: exiting now; {RESUME}")


def _exit_now(line: str) -> None:
    try:
        sys.stderr.write(line + "\n")
        sys.stderr.flush()
    finally:
        os._exit(EXIT_INTERRUPTED)


@contextmanager
def prompt_on_interrupt():
    """Around a command's run: Ctrl-C as the module says. A SIGINT ignored by the parent (a background
    job) or handled by someone else stays so."""
    global _failsafe_armed
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handle(_signum, _frame):
        if _timer is not None:
            exit_now("Ctrl-C again")
        interrupted()
        raise KeyboardInterrupt

    installed = signal.getsignal(signal.SIGINT) is signal.default_int_handler
    previous = signal.signal(signal.SIGINT, handle) if installed else None
    _failsafe_armed = True
    try:
        yield
    finally:
        _failsafe_armed = False
        if installed:
            signal.signal(signal.SIGINT, previous)
        resume_requests()


def resume_requests() -> None:
    """The end of an interruptible scope: requests may start again, unless the process is on its way out
    (the failsafe is armed: the threads still running must not send anything more)."""
    if _timer is None:
        allow_requests()
