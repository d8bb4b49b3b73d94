"""Finish hooks run for each ended job, after the fact, and a failing one harms nothing."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from geobatch.errors import NotFound
from geobatch.jobs import hooks


class _Store:
    def get(self, job_id: str) -> Any:
        if job_id == "gone":
            raise NotFound("deleted")
        return SimpleNamespace(id=job_id)


@pytest.fixture
def registered() -> Iterator[list[hooks.FinishHook]]:
    saved = list(hooks._HOOKS)
    hooks._HOOKS.clear()
    yield hooks._HOOKS
    hooks._HOOKS[:] = saved


def test_every_hook_sees_each_finished_job_once(
    registered: list[hooks.FinishHook], caplog: pytest.LogCaptureFixture
) -> None:
    seen: list[tuple[str, str]] = []

    def broken(_service: Any, job: Any) -> None:
        seen.append(("broken", job.id))
        raise RuntimeError("boom")

    def writer(_service: Any, job: Any) -> str:
        seen.append(("writer", job.id))
        return "written"

    hooks.on_finish(broken)
    hooks.on_finish(writer)
    hooks.on_finish(writer)  # registering twice runs it once
    runner = hooks.FinishRunner(SimpleNamespace(store=_Store()))  # type: ignore[arg-type]
    for job_id in ("a", "gone", "b"):
        runner(job_id)
    runner.close()
    assert seen == [("broken", "a"), ("writer", "a"), ("broken", "b"), ("writer", "b")]
    assert "a finish hook failed for job a" in caplog.text
