"""A real webhook receiver on localhost: answers as scripted and records every request."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HANG = -1
"""A scripted status that means: read the request, then never answer."""


@dataclass(frozen=True)
class Received:
    at: float
    """``time.monotonic()`` when the request arrived."""
    path: str
    headers: dict[str, str]
    body: bytes
    answered: int


@dataclass
class Receiver:
    """Answers request ``n`` with ``script[n]`` (status, headers); 200 once the script runs out."""

    url: str
    script: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    requests: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    released: threading.Event = field(default_factory=threading.Event)
    reply_body: bytes = b"ok"

    def next_answer(self) -> tuple[int, dict[str, str]]:
        with self.lock:
            return self.script.pop(0) if self.script else (200, {})

    def record(self, request: Received) -> None:
        with self.lock:
            self.requests.append(request)

    def of_type(self, event_type: str) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if json.loads(r.body)["type"] == event_type]

    def wait_for(self, predicate: Any, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError(f"receiver: timed out; got {len(self.requests)} requests")
            time.sleep(0.02)


def _handler(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("content-length", "0")))
            status, headers = receiver.next_answer()
            receiver.record(
                Received(
                    at=time.monotonic(),
                    path=self.path,
                    headers={k.lower(): v for k, v in self.headers.items()},
                    body=body,
                    answered=status,
                )
            )
            if status == HANG:
                receiver.released.wait(30)
                return
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("content-length", str(len(receiver.reply_body)))
            self.end_headers()
            # The sender may stop reading a long answer.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                self.wfile.write(receiver.reply_body)

        do_GET = do_POST  # HERE-style notifications call with GET, without a body

        def log_message(self, *_args: Any) -> None:
            pass

    return Handler


def serve_receiver(host: str = "127.0.0.1", name: str = "localhost") -> Iterator[Receiver]:
    """Run a receiver until the generator is closed; its URL names the host as ``name``."""
    receiver = Receiver(url="")
    server = ThreadingHTTPServer((host, 0), _handler(receiver))
    server.daemon_threads = True
    receiver.url = f"http://{name}:{server.server_address[1]}/hook"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        receiver.released.set()
        server.shutdown()
        server.server_close()
