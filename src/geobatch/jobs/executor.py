"""Executors that run chunk work: a local process pool, or a Dask cluster for scale-out.

Both sit behind ``concurrent.futures.Executor``, so the scheduler does not care which.
"""

from __future__ import annotations

import multiprocessing
import os
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from typing import Any, Final, TypeVar

from geobatch.config import Settings
from geobatch.errors import InvalidInput

T = TypeVar("T")


def _exit_with(server_pid: int) -> None:
    """Exit when the server is gone: a killed server must not leave workers behind.

    Workers are children of the forkserver, not of the server, and block forever on the task
    queue once the server has died; nothing else would end them.
    """
    forkserver = os.getppid()
    while True:
        time.sleep(1.0)
        if os.getppid() != forkserver:  # the forkserver ends when the server does
            os._exit(1)
        try:
            os.kill(server_pid, 0)
        except ProcessLookupError:
            os._exit(1)
        except PermissionError:
            continue


def _start_worker(server_pid: int, environment: dict[str, str]) -> None:
    """Import the heavy modules once per worker, not on its first chunk; watch the server.

    The forkserver keeps the environment it started with; a worker takes the server's as it
    is when the pool starts (storage credentials and endpoints may have been set since).
    """
    os.environ.update(environment)
    import geobatch.jobs.tasks  # noqa: F401

    threading.Thread(target=_exit_with, args=(server_pid,), daemon=True).start()


PRELOADED: Final = ("geobatch.jobs.tasks", "pandas")
"""What the forkserver imports once for every worker it forks. Arrow imports pandas on a
process's first conversion to NumPy (a third of a second), so it comes preloaded too."""


def _ready() -> None:
    """Nothing: submitted as the pool starts, so that a worker is up before the first job."""


def make_executor(settings: Settings) -> Executor:
    if settings.executor == "local":
        # forkserver: workers never inherit the server's threads, sockets or database pool.
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(list(PRELOADED))
        pool = ProcessPoolExecutor(
            max_workers=settings.worker_count,
            mp_context=context,
            initializer=_start_worker,
            initargs=(os.getpid(), dict(os.environ)),
        )
        pool.submit(_ready)
        return pool
    if settings.executor.startswith(("dask://", "tcp://")):
        return DaskExecutor(settings.executor.replace("dask://", "tcp://", 1))
    raise InvalidInput(
        f"GEOBATCH_EXECUTOR must be 'local' or dask://host:port, not {settings.executor!r}"
    )


class DaskExecutor(Executor):
    """A Dask cluster behind the ``Executor`` interface; shutting it down closes the client.

    Tasks are submitted as impure, so a chunk that runs again (its lease expired) really runs
    again instead of returning Dask's cached result of the first run.
    """

    def __init__(self, address: str) -> None:
        try:
            from distributed import Client
        except ImportError:
            raise InvalidInput(
                "GEOBATCH_EXECUTOR names a Dask scheduler but dask.distributed is not installed "
                "(pip install 'geobatch[dask]')"
            ) from None
        self.client = Client(address)  # type: ignore[no-untyped-call]
        self._executor = self.client.get_executor(pure=False)  # type: ignore[no-untyped-call]

    def submit(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> Future[T]:
        return self._executor.submit(fn, *args, **kwargs)  # type: ignore[no-any-return]

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._executor.shutdown(wait=wait and not cancel_futures)
        self.client.close()  # type: ignore[no-untyped-call]


def worker_pids(executor: Executor) -> list[int]:
    """Process ids of a local pool's workers (for operations and crash tests)."""
    if isinstance(executor, ProcessPoolExecutor):
        return [p.pid for p in executor._processes.values() if p.pid is not None]
    return []


def executor_problem(executor: Executor | None, setting: str) -> str | None:
    """Why the executor cannot take work now, or None when it can.

    ``executor`` is this process's own (where a scheduler runs here); without one, a Dask
    scheduler named by ``setting`` must at least accept connections.
    """
    if isinstance(executor, DaskExecutor):
        if executor.client.status != "running":
            return f"Dask client is {executor.client.status}"
        info = executor.client.scheduler_info()
        return None if info.get("workers") else "the Dask cluster has no workers"
    if isinstance(executor, ProcessPoolExecutor):
        return "the worker pool is broken" if executor._broken else None
    if executor is None and setting.startswith(("dask://", "tcp://")):
        host, _, port = setting.split("://", 1)[1].rpartition(":")
        try:
            socket.create_connection((host, int(port)), timeout=2).close()
        except (OSError, ValueError) as exc:
            return f"Dask scheduler unreachable: {exc.__class__.__name__}"
    return None
