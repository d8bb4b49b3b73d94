"""Input and callback URLs cannot reach the server's own network, however they are spelled.

Loopback written as a decimal number, in hex, octal or short form, as IPv6 or IPv4-mapped
IPv6; a name that resolves to a private address; a redirect from an allowed host to
127.0.0.1: each is refused, and nothing is fetched from or sent to the forbidden address.
"""

from __future__ import annotations

import socket
import threading
import uuid
import zlib
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from geobatch.config import Settings
from geobatch.errors import ForbiddenUrl
from geobatch.jobs.delivery import http_client, send
from geobatch.jobs.tasks import SplitTask, input_limits, split_input
from geobatch.jobs.urls import check_url

LOOPBACK_SPELLINGS = [
    "http://127.0.0.1/x",
    "http://2130706433/x",
    "http://0x7f000001/x",
    "http://0177.0.0.1/x",
    "http://127.1/x",
    "http://[::1]/x",
    "http://[0:0:0:0:0:0:0:1]/x",
    "http://[::ffff:127.0.0.1]/x",
    "http://[::ffff:7f00:1]/x",
    "http://0.0.0.0/x",
    "http://localhost/x",
    "http://169.254.169.254/latest/meta-data/",
    "http://[fe80::1]/x",
    "http://[fd00::1]/x",
    "http://10.1.2.3/x",
    "http://192.168.0.1/x",
]


@pytest.mark.parametrize("url", LOOPBACK_SPELLINGS)
@pytest.mark.parametrize("what", ["input URL", "callback URL"])
def test_private_addresses_are_refused_however_spelled(url: str, what: str) -> None:
    with pytest.raises(ForbiddenUrl) as refused:
        check_url(url, [], what=what)
    assert refused.value.detail.startswith(what)


@pytest.fixture
def private_name(monkeypatch: pytest.MonkeyPatch) -> str:
    """``intranet.example.test`` resolves to 10.20.30.40; ``files.example.test`` to 127.0.0.1."""
    real = socket.getaddrinfo
    fake = {"intranet.example.test": "10.20.30.40", "files.example.test": "127.0.0.1"}

    def resolve(host: str, *args: Any, **kwargs: Any) -> Any:
        return real(fake.get(host, host), *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    return "intranet.example.test"


def test_a_name_resolving_to_a_private_address_is_refused(private_name: str) -> None:
    with pytest.raises(ForbiddenUrl, match=r"10\.20\.30\.40"):
        check_url(f"https://{private_name}/in.csv", [], what="input URL")
    # allowing another private network does not allow this one
    with pytest.raises(ForbiddenUrl):
        check_url(f"https://{private_name}/in.csv", ["192.168.0.0/16"], what="input URL")


class Server:
    """A real HTTP server on 127.0.0.1 that records each request and answers with ``status``
    (a redirect to ``location`` when one is set)."""

    def __init__(self, name: str) -> None:
        self.requests: list[str] = []
        self.location: str | None = None
        self.body = b""
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                owner.requests.append(f"{self.command} {self.path}")
                length = int(self.headers.get("content-length") or 0)
                self.rfile.read(length)
                self.send_response(302 if owner.location else 200)
                if owner.location:
                    self.send_header("Location", owner.location)
                self.send_header("Content-Length", str(len(owner.body)))
                self.end_headers()
                self.wfile.write(owner.body)

            do_GET = do_POST = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://{name}:{self._server.server_address[1]}/data.csv"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def redirecting() -> Iterator[tuple[Server, Server]]:
    """An allowed host that redirects to a loopback target which must never be reached."""
    target = Server("127.0.0.1")
    source = Server("files.example.test")
    source.location = target.url
    yield source, target
    source.close()
    target.close()


def _settings(tmp_path: Path) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None, data_dir=tmp_path, url_allowlist=["files.example.test"]
    )


def test_an_input_redirect_to_loopback_is_not_followed(
    private_name: str, redirecting: tuple[Server, Server], tmp_path: Path
) -> None:
    source, target = redirecting
    settings = _settings(tmp_path)
    task = SplitTask(
        job_id=str(uuid.uuid4()),
        job_type="validate",
        options={"target_type": "reverse_geocode"},
        input={"url": source.url, "format": "csv"},
        storage_url=str(tmp_path / "storage"),
        chunk_size=100,
        url_allowlist=tuple(settings.url_allowlist),
    )
    outcome = split_input(task)
    assert outcome.error_code == "download_failed", outcome
    assert len(source.requests) == 1
    assert target.requests == []


def test_a_callback_redirect_to_loopback_is_not_followed(
    private_name: str, redirecting: tuple[Server, Server], tmp_path: Path
) -> None:
    source, target = redirecting
    settings = _settings(tmp_path)
    callback = {
        "url": source.url,
        "secret": "whsec_c2VjcmV0LXNpZ25pbmcta2V5",
        "signature_header": "webhook-signature",
    }
    with http_client(settings) as http:
        result = send(http, settings, callback, "msg_1", '{"type":"job.test"}')
    assert not result.ok
    assert result.status_code == 302
    assert len(source.requests) == 1
    assert target.requests == []


def test_a_fetched_input_is_held_to_the_upload_limits(tmp_path: Path) -> None:
    """A gzip bomb behind an allowed URL fails its job early instead of filling the disk."""
    server = Server("127.0.0.1")
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    server.body = packer.compress(b"recId,lat,lon\n" + bytes(64 << 20)) + packer.flush()
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, data_dir=tmp_path, url_allowlist=["127.0.0.1/32"]
    )
    task = SplitTask(
        job_id=str(uuid.uuid4()),
        job_type="validate",
        options={"target_type": "reverse_geocode"},
        input={"url": server.url, "format": "csv", "gzip": True},
        storage_url=str(tmp_path / "storage"),
        chunk_size=100,
        url_allowlist=tuple(settings.url_allowlist),
        input_limits=input_limits(settings),
    )
    try:
        outcome = split_input(task)
    finally:
        server.close()
    assert outcome.error_code == "field_too_large", outcome
