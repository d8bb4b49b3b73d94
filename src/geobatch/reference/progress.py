"""How an importer reports its passes and phases, so a caller can draw progress bars.

The importer names each phase as it starts (with its size in steps when known) and advances
it; the CLI draws these with rich, tests and the default release pass nothing.
"""

from __future__ import annotations

from typing import Protocol


class ImportProgress(Protocol):
    def phase(self, name: str, total: int | None = None) -> None:
        """A new phase begins (the previous one is done); ``total`` steps, or None if unknown."""

    def advance(self, steps: int = 1, detail: str = "") -> None:
        """``steps`` more of the current phase are done; ``detail`` says what so far."""


class NoProgress:
    """Reports nowhere."""

    def phase(self, name: str, total: int | None = None) -> None:
        pass

    def advance(self, steps: int = 1, detail: str = "") -> None:
        pass
