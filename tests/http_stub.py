"""A real HTTP server on 127.0.0.1 standing in for an outside service's HTTP API (the SMS
operator, the carrier's name + phone check), so that the production HTTP clients are tested
over real sockets: it records every POST and answers from ``script`` in order (status, JSON
payload or raw bytes, delay in seconds), then with ``answer``. A delayed answer waits on
``release`` so that stopping the server never hangs on a timeout test."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Answer = tuple[int, Any, float]


class _Handler(BaseHTTPRequestHandler):
    server: StubServer

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length)
        with self.server.lock:
            self.server.received.append({"path": self.path, "headers": dict(self.headers),
                                         "body": body})
            status, payload, delay = (self.server.script.pop(0) if self.server.script
                                      else self.server.answer)
        if delay:
            self.server.release.wait(delay)
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)
        except OSError:
            pass  # the client gave up (timeout tests)


class StubServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, path: str, answer: Answer) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.path = path
        self.lock = threading.Lock()
        self.received: list[dict[str, Any]] = []
        self.script: list[Answer] = []
        self.answer = answer
        self.release = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}{self.path}"

    def body(self, index: int = 0) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.received[index]["body"].decode("utf-8"))
        return loaded


@contextmanager
def stub_server(path: str, answer: Answer) -> Iterator[StubServer]:
    """Serve in a thread for the ``with`` block; stopped (and any delay released) after."""
    server = StubServer(path, answer)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                              daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.release.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
