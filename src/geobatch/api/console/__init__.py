"""The web console: static pages and scripts under ``/console``, a client of the public API.

Nothing here reads the job store or a release: the console's scripts call ``/v1`` with the
API key the user typed (kept in the browser's session storage), so whatever the console shows
or does is also possible with curl. Its assets (MapLibre GL JS, vendored with its licence)
ship in the package; there is no build step.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"


def mount(app: FastAPI) -> None:
    """Serve the console at ``/console/`` (``/console`` redirects there)."""

    @app.get("/console", include_in_schema=False)
    def console_root() -> RedirectResponse:
        return RedirectResponse("/console/")

    app.mount("/console", StaticFiles(directory=STATIC, html=True), name="console")
