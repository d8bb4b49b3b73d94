"""Helpers for the end-to-end tests: inputs with known answers, job calls, waits, downloads."""

from __future__ import annotations

import csv
import io
import json
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx

from geobatch.io.outputs import OutputFormat, read_output

REVERSE_GEOCODE = {"target_type": "reverse_geocode"}
VALIDATE_PARAMS = {"type": "validate", "options": json.dumps(REVERSE_GEOCODE)}
TERMINAL = frozenset({"succeeded", "failed", "cancelled", "expired"})
PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "https://geobatch.dev/problems/"
RESULT_COLUMNS = ["recId", "seqNumber", "seqLength", "valid", "reason"]
ERROR_COLUMNS = ["recId", "code", "message", "input"]
FORMATS = (OutputFormat.CSV, OutputFormat.GEOJSON, OutputFormat.PARQUET)


# --- inputs with known answers ---------------------------------------------------------------


def _is_blank(text: str) -> bool:
    return not text.strip()


def _number(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        return math.nan
    return value if math.isfinite(value) else math.nan


def expected_reason(lat: str, lon: str) -> str | None:
    """The first failing rule of the reverse_geocode schema, in the order the spec lists them:
    required columns (lat, lon), then each number rule (not a number, then range)."""
    if _is_blank(lat):
        return "lat is missing"
    if _is_blank(lon):
        return "lon is missing"
    for name, text, limit in (("lat", lat, 90), ("lon", lon, 180)):
        value = _number(text)
        if math.isnan(value):
            return f"{name} is not a number"
        if not -limit <= value <= limit:
            return f"{name} is outside -{limit}..{limit}"
    return None


# Every few rows one of these replaces the good coordinates: (lat, lon).
_ODD_COORDINATES = [
    ("95.5", "10"),  # lat out of range
    ("10", "-180.5"),  # lon out of range
    ("abc", "10"),  # lat not a number
    ("", "10"),  # lat missing
    ("10", "  "),  # lon blank: missing
    ("1e1", " 20.25 "),  # valid: exponent, surrounding spaces
    ("-90", "180"),  # valid: the edges
    ("nan", "5"),  # not a number (NaN is no coordinate)
    ("12.5", "inf"),  # lon not a number
    ("x", ""),  # both bad: lon missing wins over lat not a number
]


@dataclass
class CsvInput:
    """A generated CSV and what the validate job must report for it."""

    body: bytes
    ids: list[str]
    """Every recId in input order."""
    reasons: dict[str, str | None] = field(default_factory=dict)
    """recId -> expected ``reason`` (None: valid) for every well-formed row."""
    malformed: dict[str, tuple[str, str]] = field(default_factory=dict)
    """recId -> (expected error message, raw input text) for rows with a wrong field count."""

    @property
    def total(self) -> int:
        return len(self.ids)

    @property
    def invalid(self) -> int:
        return sum(reason is not None for reason in self.reasons.values())

    @property
    def valid(self) -> int:
        return sum(reason is None for reason in self.reasons.values())

    def expected_results(self) -> list[tuple[str, str, str, str, str]]:
        """Result rows, normalised (see :func:`normalise`), in input order."""
        return [
            (rec, "1", "1", "false" if self.reasons[rec] else "true", self.reasons[rec] or "")
            for rec in self.ids
            if rec in self.reasons
        ]

    def expected_errors(self) -> list[tuple[str, str, str, str]]:
        bad = self.malformed
        return [(rec, "malformed_row", *bad[rec]) for rec in self.ids if rec in bad]

    def check_statistics(self, job: dict[str, Any]) -> None:
        stats = job["statistics"]
        expected = {
            "total_records": self.total,
            "processed_records": self.total,
            "successful_records": self.valid,
            "failed_records": len(self.malformed),
            "no_match_records": 0,
        }
        actual = {key: stats[key] for key in expected}
        assert actual == expected, f"statistics {actual} != expected {expected}"
        assert stats.get("invalid_records") == self.invalid, stats
        # Which record is "last" is checked on its own (test_lifecycle): here only that it is one.
        assert stats["last_record_id"] in self.reasons, stats["last_record_id"]

    def check_outputs(self, client: httpx.Client, job_id: str) -> None:
        """Results and error report (Parquet) are exactly the expected rows, in input order;
        so every input record is in exactly one of them, once."""
        results = download(client, job_id)
        errors = download(client, job_id, errors=True)
        check_exactly_once([row["recId"] for row in results + errors], self.ids)
        fmt = OutputFormat.PARQUET
        assert normalise(errors, ERROR_COLUMNS, fmt) == self.expected_errors(), (
            "the error report is not exactly the malformed rows (was a chunk given up?)"
        )
        assert normalise(results, RESULT_COLUMNS, fmt) == self.expected_results()


def make_csv(
    count: int, *, malformed: int = 0, odd_every: int = 37, prefix: str = "r", name: str = "n"
) -> CsvInput:
    """``count`` records ``recId,lat,lon,name``: mostly valid, every ``odd_every``-th one with
    odd coordinates (see _ODD_COORDINATES), and ``malformed`` rows spread evenly through the
    file that have too many or too few fields. Some names are quoted and hold the delimiter."""
    bad_at = {(k + 1) * count // (malformed + 1) for k in range(malformed)} if malformed else set()
    assert len(bad_at) == malformed, "too many malformed rows for the count"
    lines = ["recId,lat,lon,name"]
    ids: list[str] = []
    result = CsvInput(body=b"", ids=ids)
    for i in range(1, count + 1):
        rec = f"{prefix}{i}"
        ids.append(rec)
        line_no = i + 1  # the header is line 1
        if i in bad_at:
            raw = f"{rec},1.5,2.5,{name}{i},extra" if i % 2 else f"{rec},1.5"
            found = 5 if i % 2 else 2
            result.malformed[rec] = (f"expected 4 fields, found {found} (line {line_no})", raw)
            lines.append(raw)
            continue
        if i % odd_every == 0:
            lat, lon = _ODD_COORDINATES[(i // odd_every) % len(_ODD_COORDINATES)]
        else:
            lat = f"{(i * 7919) % 17999 / 100 - 89.99:.2f}"
            lon = f"{(i * 104729) % 35999 / 100 - 179.99:.2f}"
        label = f'"{name} {i}, Main St"' if i % 11 == 0 else f"{name}{i}"
        lines.append(f"{rec},{lat},{lon},{label}")
        result.reasons[rec] = expected_reason(lat, lon)
    result.body = ("\n".join(lines) + "\n").encode()
    return result


# --- job calls ---------------------------------------------------------------------------------


def assert_problem(
    response: httpx.Response, status: int, *, code: str | None = None, slug: str | None = None
) -> dict[str, Any]:
    """The response is an RFC 9457 problem document with this status (and code / type slug)."""
    assert response.status_code == status, (
        f"expected HTTP {status}, got {response.status_code}: {response.text[:500]}"
    )
    media = response.headers.get("content-type", "").split(";")[0].strip()
    assert media == PROBLEM_JSON, f"content-type {media!r}: {response.text[:300]}"
    body: dict[str, Any] = response.json()
    for member in ("type", "title", "status", "detail"):
        assert member in body, f"problem lacks {member!r}: {body}"
    assert body["status"] == status, body
    assert body["type"].startswith(PROBLEM_BASE), body
    assert isinstance(body["title"], str), body
    assert body["title"], body
    if code is not None:
        assert body.get("code") == code, f"expected code {code!r}: {body}"
    if slug is not None:
        assert body["type"] == PROBLEM_BASE + slug, body
    return body


def create_job(
    client: httpx.Client,
    body: bytes,
    *,
    start: bool = True,
    media_type: str = "text/csv",
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    expect: int = 201,
) -> dict[str, Any]:
    """POST a raw upload as a validate/reverse_geocode job (unless ``params`` say otherwise)."""
    query = {**VALIDATE_PARAMS, "start": "true" if start else "false", **(params or {})}
    response = client.post(
        "/v1/jobs",
        params=query,
        content=body,
        headers={"Content-Type": media_type, **(headers or {})},
    )
    assert response.status_code == expect, response.text[:1000]
    job: dict[str, Any] = response.json()
    assert response.headers["location"] == f"/v1/jobs/{job['id']}"
    return job


def get_job(client: httpx.Client, job_id: str) -> dict[str, Any]:
    response = client.get(f"/v1/jobs/{job_id}")
    assert response.status_code == 200, response.text
    job: dict[str, Any] = response.json()
    return job


def wait_for(
    client: httpx.Client,
    job_id: str,
    predicate: Callable[[dict[str, Any]], bool],
    *,
    timeout: float = 60,
    interval: float = 0.02,
    what: str = "the condition",
) -> dict[str, Any]:
    """Poll the job until ``predicate(job)``; fails on timeout or an unexpected final state."""
    deadline = time.monotonic() + timeout
    while True:
        job = get_job(client, job_id)
        if predicate(job):
            return job
        if job["status"] in TERMINAL:
            raise AssertionError(f"job ended {job['status']} before {what}: {job}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}: {job}")
        time.sleep(interval)


def wait_for_status(
    client: httpx.Client,
    job_id: str,
    statuses: str | Iterable[str],
    timeout: float = 60,
    *,
    interval: float = 0.02,
) -> dict[str, Any]:
    """Poll until the job is in one of ``statuses``; a terminal state not asked for fails."""
    wanted = {statuses} if isinstance(statuses, str) else set(statuses)
    deadline = time.monotonic() + timeout
    while True:
        job = get_job(client, job_id)
        if job["status"] in wanted:
            return job
        # Terminal states are final, except that retention turns them into "expired".
        can_expire = "expired" in wanted and job["status"] != "expired"
        if job["status"] in TERMINAL and not can_expire:
            raise AssertionError(f"job ended {job['status']}, expected {sorted(wanted)}: {job}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {sorted(wanted)}: {job}")
        time.sleep(interval)


def timestamp(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


# --- downloads -----------------------------------------------------------------------------------


def download(
    client: httpx.Client,
    job_id: str,
    *,
    errors: bool = False,
    fmt: OutputFormat = OutputFormat.PARQUET,
    partial: bool | None = False,
) -> list[dict[str, Any]]:
    """The job's results (or error report) parsed into rows; checks X-Geobatch-Partial."""
    kind = "errors" if errors else "results"
    response = client.get(f"/v1/jobs/{job_id}/{kind}", params={"format": fmt.value})
    assert response.status_code == 200, response.text[:500]
    if partial is not None:
        expected = "true" if partial else "false"
        assert response.headers["x-geobatch-partial"] == expected, dict(response.headers)
    return read_output(response.content, fmt)


def _text(value: Any) -> str:
    """A value as the CSV output spells it (null as empty, booleans lower case)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def normalise(
    rows: list[dict[str, Any]], columns: list[str], fmt: OutputFormat
) -> list[tuple[str, ...]]:
    """Rows of any output format as tuples of CSV-style strings, checking the column set."""
    out = []
    for row in rows:
        if fmt is OutputFormat.GEOJSON:
            row = dict(row)
            assert row.pop("geometry") is None, row
        assert list(row) == columns, f"{fmt}: columns {list(row)} != {columns}"
        out.append(tuple(_text(row[column]) for column in columns))
    return out


def all_rec_ids(client: httpx.Client, job_id: str, *, partial: bool | None = False) -> list[str]:
    """recIds of the results followed by those of the error report (both via Parquet)."""
    results = download(client, job_id, partial=partial)
    errors = download(client, job_id, errors=True, partial=partial)
    return [row["recId"] for row in results] + [row["recId"] for row in errors]


def assert_exactly_once(client: httpx.Client, job_id: str, ids: list[str]) -> None:
    """Every input recId is in the results or the error report exactly once, and nothing else."""
    check_exactly_once(all_rec_ids(client, job_id), ids)


def check_exactly_once(found: list[str], ids: list[str]) -> None:
    seen = Counter(found)
    twice = sorted(rec for rec, n in seen.items() if n > 1)
    missing = sorted(set(ids) - set(seen))
    unknown = sorted(set(seen) - set(ids))
    assert not twice, f"{len(twice)} recIds appear more than once, e.g. {twice[:5]}"
    assert not missing, f"{len(missing)} recIds are missing, e.g. {missing[:5]}"
    assert not unknown, f"{len(unknown)} unknown recIds, e.g. {unknown[:5]}"


def csv_bytes(rows: list[list[Any]]) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue().encode()
