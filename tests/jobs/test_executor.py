"""The local worker pool: a worker is up, its heavy imports done, before the first job."""

from __future__ import annotations

import time
from pathlib import Path

from geobatch.config import Settings
from geobatch.jobs.executor import make_executor, worker_pids

STARTUP_SECONDS = 60.0


def _mapped(pid: int) -> str:
    return Path(f"/proc/{pid}/maps").read_text()


def test_a_local_pool_starts_a_worker_with_its_imports_done(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        storage_url=str(tmp_path / "storage"),
        workers=1,
        _env_file=None,  # type: ignore[call-arg]
    )
    executor = make_executor(settings)
    try:
        deadline = time.monotonic() + STARTUP_SECONDS
        while not (pids := worker_pids(executor)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(pids) == 1, "no worker started before any work was submitted"
        # Forked from the forkserver with the engines and pandas (which Arrow imports on a
        # process's first conversion to NumPy) already loaded: their compiled parts are mapped.
        maps = _mapped(pids[0])
        assert "pandas/_libs" in maps
        assert "shapely/lib" in maps
    finally:
        executor.shutdown(wait=True)
