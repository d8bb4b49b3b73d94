"""A local S3 endpoint for tests: moto's standalone server in a subprocess, and a proxy in
front of it that can answer 503 for a while (an object store having a bad minute)."""

from __future__ import annotations

import contextlib
import http.server
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx

CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    # Retries with back-off, so a short outage is ridden out rather than failing the work.
    "AWS_RETRY_MODE": "standard",
    "AWS_MAX_ATTEMPTS": "10",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def moto_server(log: Path) -> Iterator[str]:
    """``moto_server`` on a free port; yields its endpoint URL."""
    port = free_port()
    with log.open("ab") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{endpoint}/moto-api/", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"moto did not start:\n{log.read_text()[-2000:]}") from None
                time.sleep(0.1)
        yield endpoint
    finally:
        process.terminate()
        process.wait(timeout=10)


def create_bucket(endpoint: str) -> str:
    """A fresh bucket on the endpoint (path-style ``PUT /bucket``, which moto accepts unsigned)."""
    name = f"geobatch-{uuid.uuid4().hex[:10]}"
    httpx.put(f"{endpoint}/{name}", timeout=10).raise_for_status()
    return name


class FaultyProxy:
    """Forwards requests to ``upstream``; while ``failing`` is set, answers 503 SlowDown."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.failing = threading.Event()
        self.refused = 0
        self.http = httpx.Client(timeout=60)
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_args: object) -> None:
                return

            def _forward(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                if proxy.failing.is_set():
                    proxy.refused += 1
                    payload = b"<Error><Code>SlowDown</Code><Message>try later</Message></Error>"
                    self.send_response(503)
                    self.send_header("content-length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                reply = proxy.http.request(
                    self.command,
                    proxy.upstream + self.path,
                    content=body,
                    headers=headers,
                    timeout=60,
                )
                self.send_response(reply.status_code)
                skipped = {"transfer-encoding", "connection"}
                if self.command != "HEAD":  # a HEAD answer keeps the object's length
                    skipped.add("content-length")
                for key, value in reply.headers.items():
                    if key.lower() not in skipped:
                        self.send_header(key, value)
                if self.command != "HEAD":
                    self.send_header("content-length", str(len(reply.content)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(reply.content)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.endpoint = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @contextlib.contextmanager
    def outage(self, *, at_least: float, refusals: int, timeout: float = 120) -> Iterator[None]:
        """Answer 503 for ``at_least`` seconds and until ``refusals`` requests were refused."""
        before = self.refused
        started = time.monotonic()
        self.failing.set()
        try:
            yield
            while time.monotonic() - started < at_least or self.refused - before < refusals:
                if time.monotonic() - started > timeout:
                    raise AssertionError(f"only {self.refused - before} requests came")
                time.sleep(0.05)
        finally:
            self.failing.clear()

    def __enter__(self) -> FaultyProxy:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.http.close()
