"""Engines for the job store: SQLite (WAL, one writer at a time) or PostgreSQL (psycopg 3)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

MIGRATE_LOCK = 0x6765_6F62_6174_6368 & 0x7FFF_FFFF_FFFF_FFFF
"""The advisory lock key migrations hold on PostgreSQL ("geobatch" in ASCII)."""


def _normalise_url(url: str) -> str:
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


class Database:
    """A pair of engines: reads run concurrently, writes take the write lock up front.

    SQLite's default deferred transactions fail with "database is locked" when a reader later
    tries to write; ``BEGIN IMMEDIATE`` on the write engine avoids that, and WAL mode lets the
    read engine carry on while a write is in progress. PostgreSQL uses one engine for both.
    ``lookup_engine`` is for single-statement reads (one job by id, the hot path of status
    polls): on SQLite it skips the explicit ``BEGIN``, as one statement is atomic anyway.
    """

    def __init__(self, url: str) -> None:
        self.url = _normalise_url(url)
        self.is_sqlite = self.url.startswith("sqlite")
        if self.is_sqlite:
            database = sa.engine.make_url(self.url).database
            if database and database != ":memory:":
                Path(database).parent.mkdir(parents=True, exist_ok=True)
            self.write_engine = self._sqlite_engine(begin="BEGIN IMMEDIATE")
            self.read_engine = self._sqlite_engine(begin="BEGIN")
            self.lookup_engine = self._sqlite_engine(begin=None)
        else:
            self.write_engine = sa.create_engine(
                self.url, pool_size=10, max_overflow=20, pool_pre_ping=True
            )
            self.read_engine = self.write_engine
            self.lookup_engine = self.write_engine

    def _sqlite_engine(self, *, begin: str | None) -> sa.Engine:
        engine = sa.create_engine(
            self.url,
            connect_args={"check_same_thread": False, "timeout": 60},
            pool_size=20,
            max_overflow=20,
        )

        @sa.event.listens_for(engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None  # let SQLAlchemy's BEGIN below decide
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=60000")
            cursor.close()

        if begin is not None:

            @sa.event.listens_for(engine, "begin")
            def _on_begin(connection: sa.Connection) -> None:
                connection.exec_driver_sql(begin)

        return engine

    def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision.

        On PostgreSQL, replicas starting together take turns (an advisory lock): the first
        migrates, the others then find the schema current.
        """
        config = Config()
        config.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
        with self.write_engine.connect() as connection:
            if not self.is_sqlite:
                connection.execute(sa.text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATE_LOCK})
                connection.commit()
            try:
                config.attributes["connection"] = connection
                command.upgrade(config, "head")
                connection.commit()
            finally:
                if not self.is_sqlite:
                    connection.rollback()
                    connection.execute(
                        sa.text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATE_LOCK}
                    )
                    connection.commit()

    def dispose(self) -> None:
        self.write_engine.dispose()
        if self.read_engine is not self.write_engine:
            self.read_engine.dispose()
            self.lookup_engine.dispose()
