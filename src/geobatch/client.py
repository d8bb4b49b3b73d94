"""A small HTTP client for the geobatch API, used by the CLI."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import httpx
from httpx_sse import connect_sse

from geobatch.errors import GeobatchError

TERMINAL = frozenset({"succeeded", "failed", "cancelled", "expired"})

MEDIA_TYPES = {
    ".csv": "text/csv",
    ".tsv": "text/csv",
    ".txt": "text/csv",
    ".geojson": "application/geo+json",
    ".json": "application/geo+json",
    ".parquet": "application/vnd.apache.parquet",
}


class ApiError(GeobatchError):
    """The server refused the request."""

    def __init__(self, status: int, problem: dict[str, Any]) -> None:
        detail = problem.get("detail") or problem.get("title") or f"HTTP {status}"
        super().__init__(str(detail))
        self.status = status
        self.problem = problem


def media_type_for(path: Path) -> tuple[str, bool]:
    """The upload's media type from its name, and whether it is gzip-compressed."""
    suffixes = [s.lower() for s in path.suffixes]
    gzipped = bool(suffixes) and suffixes[-1] == ".gz"
    if gzipped:
        suffixes = suffixes[:-1]
    media = MEDIA_TYPES.get(suffixes[-1] if suffixes else "", "text/csv")
    return media, gzipped


class Client:
    def __init__(self, base_url: str, api_key: str | None = None, timeout: float = 60) -> None:
        headers = {"X-API-Key": api_key} if api_key else {}
        self.http = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def _check(self, response: httpx.Response) -> httpx.Response:
        if response.status_code >= 400:
            try:
                problem = response.json()
            except ValueError:
                problem = {"detail": response.text[:200] or response.reason_phrase}
            raise ApiError(response.status_code, problem)
        return response

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._check(self.http.request(method, path, **kwargs))
        except httpx.TransportError as exc:
            raise GeobatchError(f"cannot reach the server at {self.http.base_url}: {exc}") from None
        return response.json() if response.content else None

    def submit(self, path: Path, job_type: str, params: dict[str, str]) -> dict[str, Any]:
        media, gzipped = media_type_for(path)
        headers = {"Content-Type": media}
        if gzipped:
            headers["Content-Encoding"] = "gzip"
        with path.open("rb") as handle:
            result: dict[str, Any] = self.request(
                "POST",
                "/v1/jobs",
                params={"type": job_type, "file_name": path.name, **params},
                content=_read_pieces(handle),
                headers=headers,
            )
        return result

    def job(self, job_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", f"/v1/jobs/{job_id}")
        return result

    def wait(self, job_id: str, reconnect_seconds: float = 1.0) -> Iterator[dict[str, Any]]:
        """Yield the job as it changes until it ends, following its server-sent events.

        Each event updates the status, progress and counts of the job first fetched; the last
        item is the job fetched again once it has ended. A dropped stream is resumed where it
        stopped (``Last-Event-ID``); a server that stays unreachable ends the wait with an error.
        """
        job = self.job(job_id)
        yield job
        last_id: str | None = None
        failures = 0
        while job["status"] not in TERMINAL:
            headers = {"Last-Event-ID": last_id} if last_id else {}
            try:
                with connect_sse(
                    self.http,
                    "GET",
                    f"/v1/jobs/{job_id}/events",
                    headers=headers,
                    timeout=httpx.Timeout(self.http.timeout.connect, read=None),
                ) as source:
                    if source.response.status_code >= 400:
                        source.response.read()
                        self._check(source.response)
                    for event in source.iter_sse():
                        failures = 0
                        if not event.data:
                            continue  # the opening frame sets only the reconnection delay
                        last_id = event.id or last_id
                        job = _merge_event(job, event.json())
                        yield job
            except httpx.TransportError as exc:
                failures += 1
                if failures > 5:
                    raise GeobatchError(f"lost the event stream of job {job_id}: {exc}") from None
                time.sleep(reconnect_seconds)
                continue
            job = self.job(job_id)
        yield job

    def download(
        self, job_id: str, out: BinaryIO, *, errors: bool = False, fmt: str | None = None
    ) -> int:
        kind = "errors" if errors else "results"
        written = 0
        params = {"format": fmt} if fmt else {}
        try:
            with self.http.stream("GET", f"/v1/jobs/{job_id}/{kind}", params=params) as response:
                if response.status_code >= 400:
                    response.read()
                    self._check(response)
                for piece in response.iter_bytes():
                    out.write(piece)
                    written += len(piece)
        except httpx.TransportError as exc:
            raise GeobatchError(f"download from {self.http.base_url} failed: {exc}") from None
        return written


def _merge_event(job: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """The job as last seen, updated by one event's status, progress and counts."""
    return {
        **job,
        "status": data.get("status", job["status"]),
        "progress": {**job["progress"], "percent": data.get("progress", 0.0)},
        "statistics": {**job["statistics"], **data.get("statistics", {})},
    }


def _read_pieces(handle: BinaryIO, size: int = 1024 * 1024) -> Iterator[bytes]:
    while piece := handle.read(size):
        yield piece
