"""Wiring the job platform together from one settings object."""

from __future__ import annotations

from dataclasses import dataclass

from geobatch.config import Settings
from geobatch.io.storage import BlobStorage
from geobatch.jobs.catalog import ReleaseCatalog
from geobatch.jobs.changes import ChangeFeed
from geobatch.jobs.database import Database
from geobatch.jobs.hooks import FinishRunner
from geobatch.jobs.keys import KeyStore
from geobatch.jobs.notify import Listener, Notifier
from geobatch.jobs.releases import load_release, resolve_for
from geobatch.jobs.scheduler import Scheduler
from geobatch.jobs.service import JobService
from geobatch.jobs.store import JobStore
from geobatch.reference import Release


@dataclass(kw_only=True)
class Platform:
    settings: Settings
    database: Database
    store: JobStore
    storage: BlobStorage
    feed: ChangeFeed
    service: JobService
    scheduler: Scheduler | None
    releases: ReleaseCatalog
    keys: KeyStore
    listener: Listener | None = None
    finish: FinishRunner | None = None

    def release(self, release_id: str | None = None) -> Release:
        """A loaded release for single-shot requests: the one named, else the newest."""
        manifest = resolve_for(self.settings, release_id)
        return load_release(str(self.releases.store.root), manifest.id, self.settings.releases_url)

    def close(self) -> None:
        if self.scheduler is not None:
            self.scheduler.stop()
        if self.finish is not None:
            self.finish.close()
        if self.listener is not None:
            self.listener.stop()
        self.database.dispose()


def open_platform(settings: Settings, *, run_scheduler: bool = True) -> Platform:
    """Migrate the store, open storage and (optionally) start the scheduler and its workers."""
    database = Database(settings.database_url)
    database.migrate()
    feed = ChangeFeed()
    on_change = feed.publish if database.is_sqlite else Notifier(database)
    store = JobStore(database, on_change=on_change)
    storage = BlobStorage(settings.storage_url)
    scheduler = Scheduler(settings, store, storage) if run_scheduler else None
    listener = None
    if not database.is_sqlite:
        # Other processes share this database: hear their changes (and ours, announced by
        # the Notifier) and wake the waiters here; a job started elsewhere wakes our scheduler.
        def heard(job_id: str) -> None:
            feed.publish(job_id)
            if scheduler is not None:
                scheduler.wake()

        listener = Listener(database, heard)
        listener.start()
    service = JobService(
        settings, store, storage, feed, wake_scheduler=scheduler.wake if scheduler else lambda: None
    )
    finish = None
    if scheduler is not None:
        feed.subscribe(scheduler.deliverer.wake)
        finish = scheduler.on_finish = FinishRunner(service)
        scheduler.start()
    return Platform(
        settings=settings,
        database=database,
        store=store,
        storage=storage,
        feed=feed,
        service=service,
        scheduler=scheduler,
        releases=ReleaseCatalog.for_settings(settings),
        keys=KeyStore(database, settings.api_keys),
        listener=listener,
        finish=finish,
    )
