"""Every session release in turn (the releases themselves are built in tests/conftest.py)."""

from __future__ import annotations

import pytest

from geobatch.reference.release import Release


@pytest.fixture(params=["monaco", "andorra", "helsinki"])
def release(request: pytest.FixtureRequest) -> Release:
    """Each session release in turn, for checks every release must pass."""
    built: Release = request.getfixturevalue(request.param)
    return built
