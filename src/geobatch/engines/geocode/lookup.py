"""Lookup: the reference objects a release keeps under an id, for whole chunks of ids.

Every row of every table is a result row of the release's mapped lookup index
(``reference.indexes.lookup``), filed under its ``id`` (``osm:node/1``, ``osm:way/2:0``, a
GERS id, ``geonames:..``, ``street:..``); road segments are filed under their source way's id
too, so ``osm:way/2`` finds every piece of that way. Answering is one binary search over the
ids' hashes for the whole chunk and one ``take``.
An id can name several objects (an OSM node that is both an address and a POI): all are
returned, addresses first, up to ``limit``. An unknown id is answered with null match fields.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from geobatch.engines.geocode.cache import cached
from geobatch.engines.geocode.checks import split_invalid
from geobatch.engines.geocode.output import GEOCODE_COLUMNS
from geobatch.engines.result import EngineResult
from geobatch.engines.schemas import RECORD_SCHEMAS
from geobatch.engines.validate import _column
from geobatch.reference import Release
from geobatch.reference.indexes.lookup import LookupIndex

DEFAULT_LIMIT = 10


def find(index: LookupIndex, ids: list[str | None], limit: int = DEFAULT_LIMIT) -> pa.Table:
    """Result rows (``GEOCODE_COLUMNS``) for each id, ``_ordinal`` its position in ``ids``."""
    codes = index.ids.groups([i.strip() if i is not None else None for i in ids])
    starts, order = index.ids.starts, index.ids.rows
    known = codes >= 0
    first = np.zeros(len(ids), dtype=np.int64)
    first[known] = starts[codes[known]]
    counts = np.zeros(len(ids), dtype=np.int64)
    counts[known] = starts[codes[known] + 1] - first[known]
    counts = np.minimum(counts, limit)
    shown = np.maximum(counts, 1)  # an unknown id still gets its one empty row
    query = np.repeat(np.arange(len(ids)), shown)
    seq = np.arange(len(query)) - np.repeat(np.cumsum(shown) - shown, shown)
    found = np.repeat(known, shown)
    at = np.where(found, first[query] + seq, 0)
    # a null index takes a row of nulls: the unknown ids' empty rows
    indices = pa.array(np.asarray(order[at]) if len(order) else at, mask=~found)
    rows = index.objects.take(indices)
    columns = {
        "_ordinal": pa.array(query, pa.int64()),
        "recId": pa.nulls(len(query), pa.string()),
        "seqNumber": pa.array(np.where(found, seq + 1, 0), pa.int32()),
        "seqLength": pa.array(np.repeat(counts, shown), pa.int32()),
    }
    return pa.Table.from_arrays(
        [columns[f.name] if f.name in columns else rows.column(f.name) for f in GEOCODE_COLUMNS],
        schema=GEOCODE_COLUMNS,
    )


def lookup_index(release: Release) -> LookupIndex:
    """The release's id index, mapped from its files (opened once per process)."""
    return cached("lookup", release, lambda r: LookupIndex.open(r.path))


def lookup(release: Release, ids: list[str | None], limit: int = DEFAULT_LIMIT) -> pa.Table:
    return find(lookup_index(release), ids, limit)


def lookup_records(records: pa.Table, release: Release, limit: int) -> EngineResult:
    """A chunk of ``id`` records: blank ids go to the error report, the rest are looked up."""
    valid, errors = split_invalid(records, RECORD_SCHEMAS["lookup"])
    kept = records.filter(pa.array(valid))
    column = _column(kept, "id")
    ids = pc.cast(column, pa.string()).to_pylist() if column is not None else []
    found = lookup(release, ids, limit)
    position = found.column("_ordinal").to_numpy()
    results = found.set_column(0, "_ordinal", kept.column("_ordinal").take(position))
    results = results.set_column(1, "recId", kept.column("recId").take(position).cast(pa.string()))
    return EngineResult(results=results, errors=errors)
