"""A real geobatch server in a subprocess on a free port, driven over HTTP."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
import sqlalchemy as sa

READY_TIMEOUT = 180
"""Seconds a server may take to answer /readyz: a start loads indexes, slow on a busy machine
(a server that is ready sooner is used at once)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """``geobatch serve`` with its own data folder and database; can be killed and restarted."""

    def __init__(self, data_dir: Path, database_url: str, **env: str) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {
            **os.environ,
            "GEOBATCH_DATA_DIR": str(data_dir),
            "GEOBATCH_DATABASE_URL": database_url,
            "GEOBATCH_WORKERS": "2",
            "GEOBATCH_LEASE_SECONDS": "3",
            **env,
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.log = data_dir / "server.log"
        self.orphans: list[psutil.Process] = []
        """Descendants of a killed server process, remembered so that teardown can reap them."""

    def start(self, timeout: float = READY_TIMEOUT) -> None:
        self.launch()
        self.wait_ready(timeout)

    def launch(self) -> None:
        """Start the process without waiting for it: several servers can start together."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "geobatch", "serve", "--port", str(self.port)],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def wait_ready(self, timeout: float = READY_TIMEOUT) -> None:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited early:\n{self.log.read_text()[-3000:]}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server did not become ready:\n{self.log.read_text()[-3000:]}")

    def kill(self) -> None:
        """SIGKILL the server alone, as a crash would; its descendants are left to themselves.

        They are remembered in ``orphans``: the fixture teardown kills any still alive.
        """
        assert self.process is not None
        self.orphans.extend(self.descendants())
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def descendants(self) -> list[psutil.Process]:
        """Every live process below the server: resource tracker, forkserver, pool workers."""
        assert self.process is not None
        try:
            return psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def pool_workers(self) -> list[psutil.Process]:
        """The worker-pool processes: children of the forkserver, itself a child of the server.

        The forkserver and the workers it forks share one command line, so they are told apart
        by their parent: the forkserver's parent is the server, a worker's is the forkserver.
        """
        assert self.process is not None
        workers = []
        for proc in self.descendants():
            try:
                if proc.ppid() != self.process.pid and "multiprocessing.forkserver" in " ".join(
                    proc.cmdline()
                ):
                    workers.append(proc)
            except psutil.NoSuchProcess:
                continue
        return workers

    def reap_orphans(self) -> None:
        """Kill what is left of killed servers' process trees, including processes an orphaned
        forkserver started after the kill (a worker spawn can be in flight when it happens)."""
        alive: dict[int, psutil.Process] = {}
        for proc in self.orphans:
            with contextlib.suppress(psutil.NoSuchProcess):
                if proc.is_running():
                    alive[proc.pid] = proc
                    alive.update((child.pid, child) for child in proc.children(recursive=True))
        for proc in alive.values():
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        psutil.wait_procs(list(alive.values()), timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@pytest.fixture
def server_factory(
    database_url: str, tmp_path: Path, releases_root: Path
) -> Iterator[type[ServerProcess]]:
    started: list[ServerProcess] = []

    class Factory(ServerProcess):
        def __init__(self, **env: str) -> None:
            env = {"GEOBATCH_RELEASES_DIR": str(releases_root), **env}
            super().__init__(tmp_path / "server", database_url, **env)
            started.append(self)

    yield Factory
    for server in started:
        server.stop()
        server.reap_orphans()


@pytest.fixture
def server(server_factory: type[ServerProcess]) -> ServerProcess:
    instance = server_factory()
    instance.start()
    return instance


@pytest.fixture
def client(server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=60) as http:
        yield http


def _module_database(
    request: pytest.FixtureRequest, folder: Path, kind: str | None = None
) -> Iterator[str]:
    """Like the ``database_url`` fixture, for a module-scoped server: a fresh database of the
    ``kind`` given, else of the kind ``request.param`` names."""
    if (kind or request.param) == "sqlite":
        yield f"sqlite:///{folder / 'geobatch.db'}"
        return
    admin: sa.Engine = request.getfixturevalue("postgres_admin")
    name = f"geobatch_e2e_{uuid.uuid4().hex[:12]}"
    with admin.connect() as connection:
        connection.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin.url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def shared_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, releases_root: Path
) -> Iterator[ServerProcess]:
    """One server per test module and database, for tests that need no fresh database.

    Starting a server takes seconds; tests that only look at their own jobs (error answers,
    one job's life) share this one. Environment overrides come from the module's
    ``SHARED_SERVER_ENV`` dict, if it has one.
    """
    folder = tmp_path_factory.mktemp("shared-server")
    env: dict[str, str] = {
        "GEOBATCH_RELEASES_DIR": str(releases_root),
        **getattr(request.module, "SHARED_SERVER_ENV", {}),
    }
    yield from serve_on_fresh_database(request, folder, env)


def serve_on_fresh_database(
    request: pytest.FixtureRequest, folder: Path, env: dict[str, str], kind: str | None = None
) -> Iterator[ServerProcess]:
    """A started server over a fresh database of the ``kind`` given, else of the kind
    ``request.param`` names."""
    for database_url in _module_database(request, folder, kind):
        instance = ServerProcess(folder / "server", database_url, **env)
        try:
            instance.start()
            yield instance
        finally:
            instance.stop()
            instance.reap_orphans()


@pytest.fixture
def shared_client(shared_server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=shared_server.url, timeout=60) as http:
        yield http
