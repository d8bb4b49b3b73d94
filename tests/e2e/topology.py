"""The scale-out topology as real processes: a private PostgreSQL that a test may restart, a
Dask scheduler and workers, and geobatch API replicas and schedulers.

The PostgreSQL server is a throwaway instance (``initdb`` into a temp folder, on a free port)
so that restarting it disturbs nobody else's tests; as root it runs as the ``postgres`` user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import psutil
import pytest
import sqlalchemy as sa

from tests.e2e.conftest import free_port


def _wait(
    ready: Callable[[], bool],
    what: str,
    process: subprocess.Popen[bytes] | None,
    log: Path,
    timeout: float = 180,
) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what} exited early:\n{log.read_text()[-3000:]}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{what} did not become ready:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)


class PrivatePostgres:
    """``initdb`` + ``pg_ctl`` from the Debian packages, on a free port in ``folder``."""

    def __init__(self) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
        if not found:
            pytest.skip("PostgreSQL server binaries are not installed")
        self.bin = Path(found[-1]).parent
        # Its own folder under /tmp: pytest's temp folders are private to the test's user.
        folder = Path(tempfile.mkdtemp(prefix="geobatch-postgres-"))
        self.folder = folder
        self.data = folder / "data"
        self.log = folder / "postgres.log"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        self._as_user: list[str] = []
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            self._as_user = ["runuser", "-u", "postgres", "--"]
            shutil.chown(folder, "postgres")

    def _run(self, *args: str) -> None:
        done = subprocess.run([*self._as_user, *args], capture_output=True, timeout=120)
        if done.returncode:
            raise RuntimeError(f"{args[0]} failed: {done.stderr.decode()[-2000:]}")

    def init(self) -> None:
        self._run(
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            "postgres",
            "--no-sync",
            "-E",
            "UTF8",
        )
        self.start()

    def start(self) -> None:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.folder} -c fsync=off "
            "-c full_page_writes=off -c max_connections=200"
        )
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.log),
            "-o",
            options,
            "-w",
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        with contextlib.suppress(RuntimeError):
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", mode, "-w", "stop")

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.folder, ignore_errors=True)

    def restart(self, down_seconds: float = 1.0) -> None:
        """Stop (cutting every connection) and start again after ``down_seconds``."""
        self.stop()
        time.sleep(down_seconds)
        self.start()

    def answers(self) -> bool:
        engine = sa.create_engine(self.url.replace("postgresql://", "postgresql+psycopg://"))
        try:
            with engine.connect() as connection:
                connection.execute(sa.text("SELECT 1"))
            return True
        except sa.exc.OperationalError:
            return False
        finally:
            engine.dispose()


class Service:
    """One long-running process of the topology, its output in a log file."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], folder: Path) -> None:
        self.name = name
        self.command = command
        self.env = env
        self.log = folder / f"{name}.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(
                self.command, env=self.env, stdout=sink, stderr=subprocess.STDOUT
            )

    def wait_http(self, url: str) -> None:
        def ready() -> bool:
            try:
                return httpx.get(url, timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        _wait(ready, self.name, self.process, self.log)

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        tree = psutil.Process(self.process.pid).children(recursive=True)
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for child in tree:
            with contextlib.suppress(psutil.NoSuchProcess):
                child.kill()


def dask_command(*args: str) -> list[str]:
    return [str(Path(sys.executable).parent / "dask"), *args]


def geobatch_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "geobatch", *args]


def dask_worker_processes(service: Service) -> list[psutil.Process]:
    """The worker processes a ``dask worker`` command's nannies started."""
    assert service.process is not None
    return [
        child
        for child in psutil.Process(service.process.pid).children(recursive=True)
        if "multiprocessing" in " ".join(child.cmdline())
        and "spawn_main" in " ".join(child.cmdline())
    ]
