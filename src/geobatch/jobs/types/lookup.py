"""``lookup``: the reference objects a release keeps under each record's ``id``."""

from __future__ import annotations

import pyarrow as pa
from pydantic import Field

from geobatch.engines import RECORD_SCHEMAS, EngineResult
from geobatch.engines.geocode.language import localized
from geobatch.engines.geocode.lookup import DEFAULT_LIMIT, lookup_records
from geobatch.jobs.types import JobType, NamedResultOptions, register
from geobatch.jobs.types.reverse_geocode import tally_candidates
from geobatch.reference import Release


class LookupOptions(NamedResultOptions):
    truncate_at: int = Field(
        default=DEFAULT_LIMIT,
        ge=1,
        le=1_000,
        description="Most objects per id (a way's id finds each of its road segments).",
    )


def _run(records: pa.Table, options: LookupOptions, release: Release | None) -> EngineResult:
    assert release is not None  # uses_release: the worker always passes one
    found = lookup_records(records, release, options.truncate_at)
    return localized(found, records, options.lang, release)


register(
    JobType(
        name="lookup",
        options_model=LookupOptions,
        record_schema=lambda _options: RECORD_SCHEMAS["lookup"],
        run=_run,
        tally=tally_candidates,
        uses_release=True,
        chunk_scale=10,
    )
)
