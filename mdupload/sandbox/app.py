"""What both of the sandbox's hosts do with every request: read the body through the (optionally
throttled) counting stream, wait the added latency, turn errors into answers, record the request."""

from __future__ import annotations

import logging
from collections.abc import Callable

from werkzeug.exceptions import HTTPException, MethodNotAllowed, NotFound
from werkzeug.routing import Map
from werkzeug.wrappers import Request, Response

from . import rules
from .core import ApiError, Core, now
from .network import CountingInput, drop_connection

logger = logging.getLogger("mdupload.sandbox")


class Dropped(Exception):
    """The connection was closed without an answer (a fault); `fault` names it for the request log."""

    def __init__(self, fault: str):
        super().__init__(fault)
        self.fault = fault


CLOSE_CONNECTION = "mdupload.sandbox.close_connection"  # set in the WSGI environ: close after this answer

Handler = Callable[[Core, Request, str, dict, dict], Response]  # (core, request, endpoint, route args, log entry)


class App:
    """A WSGI application: `url_map` names the endpoint of a request, `handle` answers it."""

    def __init__(self, core: Core, url_map: Map, handle: Handler):
        self.core = core
        self.url_map = url_map
        self.handle = handle

    def __call__(self, environ, start_response):
        body = CountingInput(environ["wsgi.input"], self.core.throttle)
        environ["wsgi.input"] = body
        request = Request(environ)
        request.max_content_length = rules.MAX_REQUEST_BYTES
        entry = {"time": now(), "host": request.host, "method": request.method, "path": request.path,
                 "query": request.query_string.decode("latin-1"), "status": None,
                 "authorization": "Authorization" in request.headers, "fault": None, "bytes": 0}
        try:
            adapter = self.url_map.bind_to_environ(environ)
            endpoint, args = adapter.match()
        except NotFound:
            endpoint, args = None, {}
        except MethodNotAllowed:
            endpoint, args = "", {}
        try:
            response = self.answer(request, endpoint, args, entry)
        except Dropped as dropped:
            entry.update(fault=dropped.fault, bytes=body.count)
            self.core.log(entry)
            drop_connection(environ)
        finally:
            request.close()  # the temporary files of multipart parts
        entry.update(status=response.status_code, bytes=body.count)
        if "chunked" in request.headers.get("Transfer-Encoding", "") or body.count < (request.content_length or 0):
            # Answered before the whole body was read (or its end is unknown): the rest of it cannot be told
            # from a next request on the connection, so the server closes it after this answer.
            environ[CLOSE_CONNECTION] = True
        if endpoint != "sandbox-state":
            self.core.log(entry)
        return response(environ, start_response)

    def answer(self, request: Request, endpoint: str | None, args: dict, entry: dict) -> Response:
        if endpoint is None:
            return ApiError(404, "not_found_http_exception", f"No route for {request.method} {request.path}").response()
        if endpoint == "":
            return ApiError(405, "method_not_allowed_http_exception",
                            f"{request.method} is not allowed on {request.path}").response()
        if self.core.config.latency and endpoint != "sandbox-state":
            self.core.stopping.wait(self.core.config.latency)
        try:
            return self.handle(self.core, request, endpoint, args, entry)
        except ApiError as refused:
            drain(request)
            return refused.response()
        except HTTPException as refused:  # werkzeug's own refusals, e.g. a body over max_content_length
            title = "payload_too_large_http_exception" if refused.code == 413 else "bad_request_http_exception"
            return ApiError(refused.code or 400, title, refused.description or refused.name).response()
        except Dropped:
            raise
        except Exception as bug:  # a bug in the sandbox: answer like a server would, and say what happened
            logger.exception("sandbox error on %s %s", request.method, request.path)
            self.core.internal_errors.append({"time": now(), "request": f"{request.method} {request.path}",
                                              "error": f"{type(bug).__name__}: {bug}"})
            return ApiError(500, "internal_server_error", "The sandbox failed on this request").response()


def drain(request: Request) -> None:
    """Read (and discard) the rest of the body, so that an early answer reaches the client."""
    try:
        while request.stream.read(1 << 16):
            pass
    except HTTPException:  # a body over the size limit, or a client that went away
        pass
