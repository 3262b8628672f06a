"""What every part of a running sandbox shares, and MangaDex's answer envelopes."""

from __future__ import annotations

import collections
import json
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from werkzeug.wrappers import Response

from .config import Account, SandboxConfig
from .network import Faults, Throttle
from .ratelimit import RateLimiter
from .store import Store

TOKEN_PATH = "/realms/mangadex/protocol/openid-connect/token"
STATE_PATH = "/_sandbox/state"
REDIRECT_PATH = "/_sandbox/redirect"  # sandbox-only: ?to=URL[&status=307] answers a redirect there
REPORT_PATH = "/report"


@dataclass
class Core:
    config: SandboxConfig
    store: Store
    faults: Faults
    throttle: Throttle | None
    limiter: RateLimiter
    api_url: str = ""
    athome_url: str = ""
    stopping: threading.Event = field(default_factory=threading.Event)
    processing_rng: random.Random = field(default_factory=random.Random)  # the jitter of processing times
    # MangaDex@Home base URL token -> (chapter id, chapter hash, issued at); guarded by store.lock
    athome_bases: dict[str, tuple[str, str, float]] = field(default_factory=dict)
    cached: set[str] = field(default_factory=set)  # image paths a node has served once (X-Cache: HIT after)
    on_request: Callable[[dict], None] | None = None  # called with every request log entry
    # one entry per request: time, host, method, path, query, status, authorization, fault, bytes
    requests: collections.deque = field(default_factory=lambda: collections.deque(maxlen=100_000))
    # what the sandbox let through that a stricter server might refuse: {request, part, leniency, stricter}
    warnings: collections.deque = field(default_factory=lambda: collections.deque(maxlen=10_000))
    # the sandbox's own failures (a bug answered 500): {request, error}
    internal_errors: collections.deque = field(default_factory=lambda: collections.deque(maxlen=1_000))

    @property
    def accounts(self) -> dict[str, Account]:
        """The demo account, the configured ones, and every one a previous run with this state knew."""
        with self.store.lock:
            return {name: Account(**fields) for name, fields in self.store.records.accounts.items()}

    @property
    def mangas(self):
        return {m.id: m for m in self.config.mangas}

    @property
    def groups(self):
        return {g.id: g for g in self.config.groups}

    def processing_time(self, needs_approval: bool) -> float:
        """Seconds from a commit until this chapter is processed (and approved, when it needs to be)."""
        with self.store.lock:
            jitter = self.processing_rng.uniform(0.5, 1.5)
        return self.config.processing_delay * jitter + (self.config.approval_delay if needs_approval else 0.0)

    def warn(self, request: str, part: str | None, leniency: str, stricter: str) -> None:
        """Record a leniency: MangaDex's behaviour here is unknown or lenient, a stricter server might refuse."""
        self.warnings.append({"time": now(), "request": request, "part": part, "leniency": leniency,
                              "stricter": stricter})

    def log(self, entry: dict) -> None:
        self.requests.append(entry)
        if self.on_request is not None:
            self.on_request(entry)


def now() -> float:
    return time.time()


def new_id() -> str:
    return str(uuid.uuid4())


def iso(timestamp: float) -> str:
    """MangaDex's date format: 2024-05-01T12:00:00+00:00."""
    return datetime.fromtimestamp(int(timestamp), UTC).isoformat()


class ApiError(Exception):
    """An answer in MangaDex's error envelope."""

    def __init__(self, status: int, title: str, detail: str, *, headers: dict | None = None,
                 more: list[tuple[str, str]] = ()):
        super().__init__(detail)
        self.status = status
        self.details = [(title, detail), *more]
        self.headers = headers or {}

    def response(self) -> Response:
        errors = [error(self.status, title, detail) for title, detail in self.details]
        return json_response({"result": "error", "errors": errors}, self.status, self.headers)


def error(status: int, title: str, detail: str, context: str | None = None) -> dict:
    return {"id": new_id(), "status": status, "title": title, "detail": detail, "context": context}


def not_found(what: str) -> ApiError:
    return ApiError(404, "not_found_http_exception", what)


def json_response(document, status: int = 200, headers: dict | None = None) -> Response:
    return Response(json.dumps(document), status=status, headers=headers, content_type="application/json")


def entity(data: dict) -> dict:
    return {"result": "ok", "response": "entity", "data": data}
