"""How pytest-xdist shares the suite between its workers.

Tests go out a file at a time (module-scoped servers start once), except the compatible-API
package, whose tests share one package-scoped pair of servers: it goes out whole, so that only
one worker starts them. The longest units go first (real servers, browsers, crashes, large
jobs), so that the short unit tests at the end even out when the workers finish.
"""

from __future__ import annotations

from typing import Any

import pytest

ONE_UNIT_PACKAGES = ("tests/api/compat/",)
"""Packages sent to one worker as one unit: their tests share package-scoped servers."""

COSTLY_MARKS = {"browser": 2, "slow": 2, "e2e": 1}
"""How much each mark says about a unit's duration, the heaviest mark of a unit counting."""


def unit_of(nodeid: str) -> str:
    """The work unit of a test: its package where it must go whole, else its file."""
    for package in ONE_UNIT_PACKAGES:
        if nodeid.startswith(package):
            return package
    return nodeid.split("::", 1)[0]


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Order the units heaviest first: by mark, then by number of tests (xdist's own rule)."""
    weight: dict[str, int] = {}
    count: dict[str, int] = {}
    for item in items:
        unit = unit_of(item.nodeid)
        marks = (COSTLY_MARKS.get(mark.name, 0) for mark in item.iter_markers())
        weight[unit] = max(weight.get(unit, 0), *marks, 0)
        count[unit] = count.get(unit, 0) + 1
    units = dict.fromkeys(unit_of(item.nodeid) for item in items)
    first = {unit: index for index, unit in enumerate(units)}
    items.sort(key=lambda item: (-weight[u := unit_of(item.nodeid)], -count[u], first[u]))


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    from xdist.scheduler import LoadFileScheduling

    class UnitScheduling(LoadFileScheduling):
        """xdist's ``loadfile``, with ``unit_of`` for units and the collection's order."""

        def _split_scope(self, nodeid: str) -> str:
            return unit_of(nodeid)

    config.option.loadscopereorder = False
    return UnitScheduling(config, log)
