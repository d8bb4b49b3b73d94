"""A live server for a test module: uvicorn on a free port in this process, over real HTTP."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import uvicorn

from geobatch.api.app import create_app
from geobatch.config import Settings
from geobatch.jobs import Platform, open_platform
from tests.e2e.conftest import free_port


@dataclass(frozen=True)
class LiveServer:
    url: str
    platform: Platform


@contextmanager
def live_server(settings: Settings, *, run_scheduler: bool = False) -> Iterator[LiveServer]:
    platform = open_platform(settings, run_scheduler=run_scheduler)
    port = free_port()
    app = create_app(settings, platform=platform)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        while not server.started:
            assert thread.is_alive(), "the server did not start"
            threading.Event().wait(0.01)
        yield LiveServer(url=f"http://127.0.0.1:{port}", platform=platform)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        platform.close()
