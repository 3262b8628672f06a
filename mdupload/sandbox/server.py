"""Running a sandbox in background threads of this process: two loopback HTTP servers sharing one state."""

from __future__ import annotations

import dataclasses
import random
import shutil
import tempfile
import threading
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path

from werkzeug.serving import WSGIRequestHandler, make_server

from . import api, athome
from .app import CLOSE_CONNECTION, App, logger
from .config import DEMO_ACCOUNT, DEMO_GROUP, CatalogChapter, SandboxConfig
from .core import REPORT_PATH, STATE_PATH, TOKEN_PATH, Core, new_id, now
from .network import Faults, Throttle
from .ratelimit import RateLimiter
from .statedoc import state_document
from .store import Chapter, Store


NOBODY = "00000000-0000-4000-8000-000000000000"  # the uploader of chapters that existed before the sandbox


class _QuietHandler(WSGIRequestHandler):
    """HTTP/1.1 with persistent connections, as MangaDex's API keeps them; the request log is the
    sandbox's own (Core.requests), werkzeug's access log stays silent."""

    protocol_version = "HTTP/1.1"
    # TCP_NODELAY, as production HTTP servers set it (nginx's tcp_nodelay is on by default): without it an
    # answer written in pieces waits for the client's delayed ACK (40 ms on Linux), a delay MangaDex has not.
    disable_nagle_algorithm = True

    # werkzeug's development server closes every connection after its answer, and then reads whatever
    # the client sent meanwhile (a next request included) to discard an unread body. The sandbox keeps the
    # connection open instead, unless the application asks for the close (an answer given before the whole
    # request body was read: app.CLOSE_CONNECTION), and reads nothing more once the answer has begun.

    def run_wsgi(self) -> None:
        connection_input = self.rfile
        self.rfile = _UntilAnswered(connection_input, self)
        try:
            super().run_wsgi()
        finally:
            self.rfile = connection_input

    def send_header(self, keyword: str, value: str) -> None:
        if keyword.lower() == "connection" and value.lower() == "close" and not self._closing():
            return
        super().send_header(keyword, value)

    def end_headers(self) -> None:
        self.environ[_ANSWERED] = True
        super().end_headers()

    def _closing(self) -> bool:
        return bool(self.environ.get(CLOSE_CONNECTION))

    def log_request(self, code="-", size="-") -> None:
        pass

    def connection_dropped(self, error, environ=None) -> None:
        """A fault closed the connection: read no further request from it."""
        self.close_connection = True

    def log(self, type: str, message: str, *args) -> None:
        if type == "error":
            logger.error(message.rstrip(), *args)


_ANSWERED = "mdupload.sandbox.answered"  # in the WSGI environ: the answer's headers are out


class _UntilAnswered:
    """A connection's input that reads nothing more once the answer has begun (the request body was read
    before it), unless the connection is to be closed: what follows is the client's next request."""

    def __init__(self, stream, handler: _QuietHandler):
        self._stream = stream
        self._handler = handler

    def read(self, size: int = -1) -> bytes:
        if self._handler.environ.get(_ANSWERED) and not self._handler._closing():
            return b""
        return self._stream.read(size)

    def __getattr__(self, name: str):
        return getattr(self._stream, name)


class RunningSandbox:
    """A started sandbox. URLs: `api_url` (= `base_url`) serves MangaDex's API at its root and the token
    endpoint at `auth_url`; `athome_base` is the image host (MangaDex@Home nodes and `report_url`)."""

    def __init__(self, config: SandboxConfig):
        self.config = config
        self._temporary = config.state_dir is None
        root = Path(tempfile.mkdtemp(prefix="mdupload-sandbox-")) if self._temporary else Path(config.state_dir)
        store = Store(root, persist=not self._temporary)
        for leftover in store.incoming.iterdir():
            leftover.unlink()
        seed = config.seed if config.seed is not None else random.SystemRandom().randrange(1 << 31)
        throttle = Throttle(config.bandwidth) if config.bandwidth else None
        self._core = core = Core(config, store, Faults(config, seed), throttle, RateLimiter(),
                                 processing_rng=random.Random(seed))
        with store.lock:
            store.records.accounts.update({a.username: dataclasses.asdict(a) for a in config.accounts})
            for existing in config.chapters:
                if existing.id not in store.records.chapters:
                    store.records.chapters[existing.id] = _published(existing)
            store.save()
        self._servers = []
        try:
            for app, port in ((App(core, api.URL_MAP, api.handle), config.port),
                              (App(core, athome.URL_MAP, athome.handle), config.athome_port)):
                self._servers.append(make_server(config.host, port, app, threaded=True, request_handler=_QuietHandler))
        except BaseException:
            self._close()
            raise
        host = "127.0.0.1" if config.host in ("", "0.0.0.0") else config.host
        host = f"[{host}]" if ":" in host else host
        api_url, node_url = (f"http://{host}:{server.server_port}" for server in self._servers)
        core.api_url, core.athome_url = api_url, node_url
        self.api_url = self.base_url = api_url
        self.auth_url = api_url + TOKEN_PATH
        self.state_url = api_url + STATE_PATH
        self.athome_base = node_url
        self.report_url = node_url + REPORT_PATH
        self.state_dir = root
        self.seed = seed
        self.throttle = throttle
        self.env = {
            "MDUPLOAD_API_URL": self.api_url,
            "MDUPLOAD_AUTH_URL": self.auth_url,
            "MDUPLOAD_USERNAME": DEMO_ACCOUNT.username,
            "MDUPLOAD_PASSWORD": DEMO_ACCOUNT.password,
            "MDUPLOAD_CLIENT_ID": DEMO_ACCOUNT.client_id,
            "MDUPLOAD_CLIENT_SECRET": DEMO_ACCOUNT.client_secret,
            "MDUPLOAD_REPORT_URL": self.report_url,
        }
        self._threads = [threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05},
                                          name=f"sandbox-{s.server_port}", daemon=True) for s in self._servers]
        for thread in self._threads:
            thread.start()

    def state(self) -> dict:
        """The GET /_sandbox/state document."""
        return state_document(self._core)

    def on_request(self, callback) -> None:
        """Call `callback(entry)` with every request log entry as it is recorded."""
        self._core.on_request = callback

    def add_chapter(self, *, manga: str, chapter: str | None, language: str = "en",
                    groups: Sequence[str] = (DEMO_GROUP,), volume: str | None = None, title: str | None = None,
                    publish_at: datetime | None = None, unavailable: bool = False,
                    external_url: str | None = None) -> str:
        """Put a processed chapter without pages on the sandbox, as if someone had published it; its id."""
        created = now()
        record = Chapter(new_id(), manga, list(groups), new_id(), volume, chapter, title, language, external_url,
                         publish_at.timestamp() if publish_at else created, created, created, created,
                         new_id().replace("-", ""), [], unavailable=unavailable)
        with self._core.store.lock:
            self._core.store.records.chapters[record.id] = record
            self._core.store.save()
        return record.id

    def stop(self) -> None:
        """Stop serving (stalled faults end at once); a temporary state folder is removed."""
        self._core.stopping.set()
        for server in self._servers:
            server.shutdown()
        for thread in self._threads:
            thread.join()
        self._close()

    def _close(self) -> None:
        for server in self._servers:
            server.server_close()
        self._servers = []
        if self._temporary:
            shutil.rmtree(self._core.store.root, ignore_errors=True)

    def __enter__(self) -> RunningSandbox:
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()


def _published(existing: CatalogChapter) -> Chapter:
    """A chapter of the catalogue file: processed, without pages, uploaded by nobody the sandbox knows."""
    at = now()
    return Chapter(existing.id, existing.manga, list(existing.groups), NOBODY, existing.volume, existing.chapter,
                   existing.title, existing.language, None, at, at, at, at, new_id().replace("-", ""), [])


def start_sandbox(config: SandboxConfig | None = None) -> RunningSandbox:
    """Start a sandbox on loopback (free ports unless the config names them) in background threads."""
    return RunningSandbox(config or SandboxConfig())
