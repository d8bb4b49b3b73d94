"""Cross-process change notifications over PostgreSQL ``LISTEN/NOTIFY``.

Every committed job change is also announced on one channel; each process (API replica or
scheduler) listens on its own connection and republishes what it hears on its local
:class:`~geobatch.jobs.changes.ChangeFeed`, so a long poll or event stream served by one
replica wakes within milliseconds of a change committed by another. SQLite deployments run
in one process and need none of this.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable

import psycopg
import sqlalchemy as sa

from geobatch.jobs.database import Database

log = logging.getLogger(__name__)

CHANNEL = "geobatch_job_changes"
ANY_JOB = "*"
"""Published after the listener reconnects: changes may have been missed meanwhile."""
RECONNECT_SECONDS = 0.5


class Notifier:
    """Announces a committed change to every listening process."""

    _NOTIFY = sa.text("SELECT pg_notify(:channel, :job_id)")

    def __init__(self, database: Database) -> None:
        self.db = database

    def __call__(self, job_id: str) -> None:
        try:
            with self.db.write_engine.begin() as connection:
                connection.execute(self._NOTIFY, {"channel": CHANNEL, "job_id": job_id})
        except sa.exc.SQLAlchemyError:
            # Listeners fall back to their poll interval; the change itself is committed.
            log.warning("could not announce a change to job %s", job_id, exc_info=True)


class Listener:
    """A thread holding one ``LISTEN`` connection; it reconnects when the database restarts."""

    def __init__(self, database: Database, publish: Callable[[str], None]) -> None:
        url = database.write_engine.url.set(drivername="postgresql")
        self._dsn = url.render_as_string(hide_password=False)
        self._publish = publish
        self._stopping = threading.Event()
        self._connection: psycopg.Connection[tuple[object, ...]] | None = None
        self._thread = threading.Thread(target=self._run, name="geobatch-listen", daemon=True)
        self.listening = threading.Event()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._connection is not None:
            with contextlib.suppress(Exception):
                self._connection.cancel_safe()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                with psycopg.connect(self._dsn, autocommit=True) as connection:
                    self._connection = connection
                    connection.execute(f"LISTEN {CHANNEL}")
                    self.listening.set()
                    self._publish(ANY_JOB)
                    while not self._stopping.is_set():
                        for note in connection.notifies(timeout=1.0):
                            self._publish(note.payload)
            except psycopg.Error:
                if self._stopping.is_set():
                    return
                self.listening.clear()
                log.warning("lost the LISTEN connection; reconnecting", exc_info=True)
                self._stopping.wait(RECONNECT_SECONDS)
            finally:
                self._connection = None
