"""An in-process server over real HTTP: uvicorn on a free port, the platform without scheduler.

Tests drive jobs through ``platform.store`` and watch them through the API. The allow-list
lets callbacks reach a receiver on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import uvicorn

from geobatch.api.app import create_app
from geobatch.config import Settings
from geobatch.jobs import Platform, open_platform
from tests.e2e.conftest import free_port


@pytest.fixture
def platform(settings: Settings) -> Iterator[Platform]:
    opened = open_platform(
        settings.model_copy(update={"url_allowlist": ["127.0.0.1/32"]}), run_scheduler=False
    )
    yield opened
    opened.close()


@contextlib.contextmanager
def serve_app(app: Any) -> Iterator[str]:
    """Serve ``app`` with uvicorn on a free port for the block; yields its base URL."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        assert thread.is_alive(), "the server did not start"
        threading.Event().wait(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.fixture
def base_url(platform: Platform) -> Iterator[str]:
    with serve_app(create_app(platform.settings, platform=platform)) as url:
        yield url
