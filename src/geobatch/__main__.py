"""``python -m geobatch``."""

from geobatch.cli import app

app()
