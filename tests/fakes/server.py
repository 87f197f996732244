"""A tiny threaded HTTP server on 127.0.0.1 for fake provider APIs, with failure injection.

A fake subclasses ``FakeAPI`` and implements ``route(request) -> Response``. Tests call
``fail_next(route_name, 429, 502, ("delay", 1.0))`` to make the next requests of a route fail.
"""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, payload: object, **headers: str) -> Response:
        return cls(status, json.dumps(payload).encode(), {"Content-Type": "application/json", **headers})


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):  # a client that was killed or timed out: expected
        pass


class FakeAPI:
    """Base of the fakes: request log, injected failures, start/stop."""

    def __init__(self, api_key: str):
        self.api_key = api_key
        self.lock = threading.RLock()
        self.log: list[tuple[str, str, str]] = []  # (route name, method, path)
        self._injected: dict[str, list[object]] = {}
        self._server: ThreadingHTTPServer | None = None
        self.base_url = ""

    # -- test controls ----------------------------------------------------------------------------
    def fail_next(self, route: str, *failures: object) -> None:
        """Answer the next requests of ``route`` with these statuses (or ``("delay", seconds)``)."""
        with self.lock:
            self._injected.setdefault(route, []).extend(failures)

    def count(self, route: str) -> int:
        with self.lock:
            return sum(1 for name, _, _ in self.log if name == route)

    # -- to implement -------------------------------------------------------------------------------
    def route_name(self, request: Request) -> str:
        raise NotImplementedError

    def route(self, name: str, request: Request) -> Response:
        raise NotImplementedError

    def error(self, status: int, message: str) -> Response:
        return Response.json(status, {"error": message})

    # -- plumbing -------------------------------------------------------------------------------------
    def handle(self, request: Request) -> Response:
        name = self.route_name(request)
        with self.lock:
            self.log.append((name, request.method, request.path))
            queue = self._injected.get(name)
            failure = queue.pop(0) if queue else None
        if isinstance(failure, tuple) and failure[0] == "delay":
            time.sleep(failure[1])  # longer than the client's timeout: the client gives up
        elif isinstance(failure, int):
            headers = {"Retry-After": "0"} if failure == 429 else {}
            return self._status(failure, headers)
        return self.route(name, request)

    def _status(self, status: int, headers: dict[str, str]) -> Response:
        response = self.error(status, f"injected HTTP {status}")
        response.status = status
        response.headers.update(headers)
        return response

    def start(self, ssl_context=None) -> FakeAPI:
        """Serve on 127.0.0.1, a free port; over HTTPS when ``ssl_context`` (a server context) is given."""
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                request = Request(
                    self.command,
                    parts.path,
                    parse_qs(parts.query),
                    {k.lower(): v for k, v in self.headers.items()},
                    body,
                )
                response = fake.handle(request)
                try:
                    self.send_response(response.status)
                    for key, value in response.headers.items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", str(len(response.body)))
                    self.end_headers()
                    self.wfile.write(response.body)
                except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
                    pass

            do_GET = do_POST = do_DELETE = do_PUT = _serve

            def log_message(self, format, *args):  # noqa: A002 - keep test output quiet
                pass

        self._server = _QuietServer(("127.0.0.1", 0), Handler)
        if ssl_context is not None:
            self._server.socket = ssl_context.wrap_socket(self._server.socket, server_side=True)
        host, port = self._server.server_address[:2]
        self.base_url = f"{'https' if ssl_context else 'http'}://{host}:{port}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
