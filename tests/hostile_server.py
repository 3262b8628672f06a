"""A small HTTP server on 127.0.0.1 that misbehaves on purpose, for tests/test_bounds.py.

Each path prefix is given a behaviour: an ordinary JSON answer, an answer dripped one byte a second, an
endless body, a body announced as 3 GB. It records every request (method, path, headers) and how many
bytes each answer put on the wire, so a test can tell how much the client let through.
"""

from __future__ import annotations

import json
import socketserver
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

DRIP_BYTES_MAX = 600  # a drip gives up after this many bytes (10 minutes), so no thread outlives a test run
CHUNK = b"\0" * (256 * 1024)


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Hostile:
    requests: list[Seen] = field(default_factory=list)
    sent: list[int] = field(default_factory=list)  # bytes each streamed answer put on the wire
    lock: threading.Lock = field(default_factory=threading.Lock)


Behaviour = Callable[["_Handler", Seen], None]


def json_answer(document, status: int = 200) -> Behaviour:
    def answer(handler: _Handler, _seen: Seen) -> None:
        body = json.dumps(document).encode()
        handler.wfile.write(f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\n"
                            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
    return answer


def drip(headers_too: bool = True) -> Behaviour:
    """One byte a second: of the whole answer (status line included), or of the body after prompt headers."""
    def answer(handler: _Handler, _seen: Seen) -> None:
        body = b"x" * DRIP_BYTES_MAX
        head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        if not headers_too:
            handler.wfile.write(head)
        for byte in (head + body if headers_too else body):
            handler.wfile.write(bytes([byte]))
            time.sleep(1.0)
    return answer


def endless(status: int = 200, content_length: int | None = None) -> Behaviour:
    """As many bytes as the client takes, as fast as it takes them (a Content-Length, or none at all)."""
    def answer(handler: _Handler, _seen: Seen) -> None:
        length = f"Content-Length: {content_length}\r\n" if content_length is not None else ""
        handler.wfile.write(f"HTTP/1.1 {status} X\r\nContent-Type: application/octet-stream\r\n{length}"
                            "Connection: close\r\n\r\n".encode())
        sent = 0
        try:
            while content_length is None or sent < content_length:
                handler.wfile.write(CHUNK)
                sent += len(CHUNK)
        finally:
            with handler.server.hostile.lock:
                handler.server.hostile.sent.append(sent)
    return answer


class _Handler(socketserver.StreamRequestHandler):
    def handle(self) -> None:
        request_line = self.rfile.readline(65536).decode("latin-1").split()
        if len(request_line) < 2:
            return
        headers = {}
        while (line := self.rfile.readline(65536).decode("latin-1").rstrip("\r\n")):
            name, _colon, value = line.partition(":")
            headers[name.strip()] = value.strip()
        length = int(headers.get("Content-Length", "0") or 0)
        seen = Seen(request_line[0], request_line[1], headers, self.rfile.read(length) if length else b"")
        with self.server.hostile.lock:
            self.server.hostile.requests.append(seen)
        path = seen.path.split("?", 1)[0]
        behaviour = next((b for prefix, b in self.server.routes.items() if path.startswith(prefix)), None)
        try:
            if behaviour is None:
                json_answer({"result": "error"}, 404)(self, seen)
            else:
                behaviour(self, seen)
        except OSError:  # the client hung up: what a bounded client does
            pass


class _Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


class HostileServer:
    """`with HostileServer() as server:` serves on server.url until the block ends; server.routes maps a
    path prefix to its behaviour (the first prefix that matches, in order)."""

    def __init__(self):
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self.routes: dict[str, Behaviour] = {}
        self._server.routes = self.routes
        self._server.hostile = self.seen = Hostile()
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> HostileServer:
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
