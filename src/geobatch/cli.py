"""The ``geobatch`` command: run the service, submit and manage jobs, or run a job in-process."""

from __future__ import annotations

import asyncio
import ipaddress
import json
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from importlib import resources
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeRemainingColumn
from rich.table import Column, Table

from geobatch.client import Client, media_type_for
from geobatch.errors import GeobatchError
from geobatch.io.outputs import OutputFormat

app = typer.Typer(
    help="geobatch: bulk geospatial jobs.", no_args_is_help=True, pretty_exceptions_enable=False
)
jobs_app = typer.Typer(help="Inspect and manage jobs on a server.", no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")
releases_app = typer.Typer(
    help="Build and manage reference data releases (in GEOBATCH_RELEASES_DIR).",
    no_args_is_help=True,
)
app.add_typer(releases_app, name="releases")
keys_app = typer.Typer(
    help="Manage API keys (stored hashed in the job database).", no_args_is_help=True
)
app.add_typer(keys_app, name="keys")

console = Console()
err = Console(stderr=True)

ServerOpt = Annotated[str, typer.Option("--server", envvar="GEOBATCH_SERVER", help="API base URL")]
ApiKeyOpt = Annotated[
    str | None, typer.Option("--api-key", envvar="GEOBATCH_API_KEY", help="API key")
]
OptionOpt = Annotated[
    list[str] | None, typer.Option("--option", "-O", help="job option key=value (repeatable)")
]
FormatOpt = Annotated[
    OutputFormat | None,
    typer.Option("--format", help="output format; default: from the file name, else csv"),
]
DEFAULT_SERVER = "http://127.0.0.1:8000"
T = TypeVar("T")


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code=1)


def _guard(action: Callable[[], T]) -> T:
    """Run ``action``; any geobatch error becomes one line on stderr and exit code 1."""
    try:
        return action()
    except GeobatchError as exc:
        raise _fail(exc.detail) from None
    except OSError as exc:
        raise _fail(
            f"{exc.strerror or exc}: {getattr(exc, 'filename', '') or ''}".rstrip(": ")
        ) from None


def _options(pairs: list[str] | None) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise _fail(f"--option takes key=value, not {pair!r}")
        try:
            options[key] = json.loads(value)
        except json.JSONDecodeError:
            options[key] = value
    return options


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        TextColumn("{task.fields[detail]}"),
        TimeRemainingColumn(),
        console=err,
    )


def _follow(client: Client, job_id: str) -> dict[str, Any]:
    with _progress() as bar:
        task = bar.add_task("queued", total=100, detail="")
        job: dict[str, Any] = {}
        for job in client.wait(job_id):
            stats = job["statistics"]
            rate = stats.get("records_per_second")
            detail = f"{stats['processed_records']:,}/{stats['total_records'] or 0:,} records"
            if rate:
                detail += f" · {rate:,.0f}/s"
            bar.update(
                task, completed=job["progress"]["percent"], description=job["status"], detail=detail
            )
    return job


def _summary(job: dict[str, Any]) -> None:
    stats = job["statistics"]
    table = Table(show_header=False, box=None)
    for key in ("id", "type", "status"):
        table.add_row(key, str(job[key]))
    for key in ("total_records", "processed_records", "successful_records", "failed_records"):
        table.add_row(key, f"{stats[key]:,}" if stats[key] is not None else "-")
    shown = {"total_records", "processed_records", "successful_records", "failed_records"}
    for key, value in stats.items():  # the job type's own statistics
        if key not in shown and isinstance(value, int | float):
            table.add_row(key, f"{value:,.4g}" if isinstance(value, float) else f"{value:,}")
    if job.get("error"):
        table.add_row("error", job["error"]["message"])
    err.print(table)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="port to listen on")] = 8000,
    scheduler: Annotated[
        bool, typer.Option(help="also run a scheduler and its workers (off for API replicas)")
    ] = True,
) -> None:
    """Run the API, the scheduler and a local worker pool (SQLite and a local folder by default)."""
    _serve(host, port, run_scheduler=scheduler, jobs_api=True)


@app.command("scheduler")
def scheduler_command(
    host: Annotated[str, typer.Option(help="interface for /healthz, /readyz, /metrics")] = (
        "127.0.0.1"
    ),
    port: Annotated[int, typer.Option(help="port for /healthz, /readyz, /metrics")] = 8100,
) -> None:
    """Run a scheduler and its workers alone, beside API replicas on the same database."""
    _serve(host, port, run_scheduler=True, jobs_api=False)


def _serve(host: str, port: int, *, run_scheduler: bool, jobs_api: bool) -> None:
    import uvicorn

    from geobatch.api import create_app
    from geobatch.config import Settings
    from geobatch.logs import configure_logging

    settings = _guard(Settings)
    if jobs_api and not _is_loopback(host):
        with _key_store() as store:
            if not store.any_keys():
                raise _fail(
                    "without API keys the server listens on loopback only; create one with "
                    f"geobatch keys create (or set GEOBATCH_API_KEYS) to use {host}"
                )
    configure_logging(settings)
    uvicorn.run(
        create_app(settings, run_scheduler=run_scheduler, jobs_api=jobs_api),
        host=host,
        port=port,
        log_level="info",
        log_config=None if settings.log_format == "json" else uvicorn.config.LOGGING_CONFIG,
        access_log=settings.access_log,
    )


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@app.command()
def submit(
    file: Annotated[
        Path,
        typer.Argument(
            exists=True, dir_okay=False, help="input file (csv, geojson, parquet; .gz ok)"
        ),
    ],
    type: Annotated[str, typer.Option("--type", "-t", help="job type")],
    option: OptionOpt = None,
    wait: Annotated[bool, typer.Option(help="follow progress until the job ends")] = False,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="write the results here (implies --wait)")
    ] = None,
    fmt: FormatOpt = None,
    server: ServerOpt = DEFAULT_SERVER,
    api_key: ApiKeyOpt = None,
) -> None:
    """Upload FILE as a new job on a server."""
    params = {"options": json.dumps(_options(option))}
    with Client(server, api_key) as client:
        job = _guard(lambda: client.submit(file, type, params))
        err.print(f"job [bold]{job['id']}[/bold] {job['status']}")
        if not (wait or output):
            console.print(job["id"])
            return
        job = _guard(lambda: _follow(client, job["id"]))
        _summary(job)
        if job["status"] != "succeeded":
            raise _fail(f"job {job['id']} ended {job['status']}")
        if output is not None:
            with output.open("wb") as sink:
                _guard(lambda: client.download(job["id"], sink, fmt=_format_for(output, fmt)))
            err.print(f"results written to {output}")


@jobs_app.command("list")
def jobs_list(
    status: Annotated[str | None, typer.Option(help="filter by status")] = None,
    type: Annotated[str | None, typer.Option("--type", help="filter by job type")] = None,
    limit: Annotated[int, typer.Option(help="how many")] = 20,
    server: ServerOpt = DEFAULT_SERVER,
    api_key: ApiKeyOpt = None,
) -> None:
    """List jobs, newest first."""
    params: dict[str, Any] = {"page_size": limit}
    if status:
        params["status"] = status
    if type:
        params["type"] = type
    with Client(server, api_key) as client:
        page = _guard(lambda: client.request("GET", "/v1/jobs", params=params))
    table = Table("id", "type", "status", "records", "created")
    for job in page["jobs"]:
        table.add_row(
            job["id"],
            job["type"],
            job["status"],
            str(job["statistics"]["total_records"] or "-"),
            job["created_at"],
        )
    console.print(table)


@jobs_app.command("show")
def jobs_show(job_id: str, server: ServerOpt = DEFAULT_SERVER, api_key: ApiKeyOpt = None) -> None:
    """Print one job as JSON."""
    with Client(server, api_key) as client:
        console.print_json(data=_guard(lambda: client.job(job_id)))


@jobs_app.command("cancel")
def jobs_cancel(job_id: str, server: ServerOpt = DEFAULT_SERVER, api_key: ApiKeyOpt = None) -> None:
    """Cancel a job."""
    with Client(server, api_key) as client:
        job = _guard(lambda: client.request("POST", f"/v1/jobs/{job_id}/cancel"))
    err.print(f"job {job['id']} {job['status']}")


@jobs_app.command("results")
def jobs_results(
    job_id: str,
    output: Annotated[Path, typer.Option("--output", "-o", help="where to write")],
    errors: Annotated[
        bool, typer.Option("--errors", help="the error report instead of the results")
    ] = False,
    fmt: FormatOpt = None,
    server: ServerOpt = DEFAULT_SERVER,
    api_key: ApiKeyOpt = None,
) -> None:
    """Download a job's results (or error report)."""
    with Client(server, api_key) as client, output.open("wb") as sink:
        size = _guard(
            lambda: client.download(job_id, sink, errors=errors, fmt=_format_for(output, fmt))
        )
    err.print(f"{size:,} bytes written to {output}")


async def _file_body(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as handle:
        while piece := handle.read(1024 * 1024):
            yield piece


@app.command()
def run(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="input file")],
    type: Annotated[str, typer.Option("--type", "-t", help="job type")],
    output: Annotated[Path, typer.Option("--output", "-o", help="results file")],
    errors_output: Annotated[
        Path | None, typer.Option("--errors-output", help="error report file")
    ] = None,
    option: OptionOpt = None,
    fmt: FormatOpt = None,
) -> None:
    """Run one job in this process, with no server: FILE in, results out."""
    _guard(lambda: _run_local(file, type, output, errors_output, _options(option), fmt))


def _run_local(
    file: Path,
    job_type: str,
    output: Path,
    errors_output: Path | None,
    options: dict[str, Any],
    fmt: OutputFormat | None,
) -> None:
    import tempfile

    from geobatch.config import Settings
    from geobatch.jobs import InputSource, JobRequest, open_platform

    media, gzipped = media_type_for(file)
    with tempfile.TemporaryDirectory(prefix="geobatch-run-") as scratch:
        platform = open_platform(Settings(data_dir=Path(scratch)))
        try:
            request = JobRequest(
                type=job_type,
                input=InputSource(media_type=media, file_name=file.name, gzip=gzipped),
                options=options,
            )
            job, _ = asyncio.run(platform.service.create("local", request, _file_body(file)))
            with _progress() as bar:
                task = bar.add_task("running", total=100, detail="")
                while not job.status.is_terminal:
                    time.sleep(0.1)
                    job = platform.service.get("local", job.id)
                    stats = job.statistics
                    done = (
                        100.0 * stats.processed_records / stats.total_records
                        if stats.total_records
                        else 0.0
                    )
                    bar.update(
                        task,
                        completed=done,
                        description=job.status.value,
                        detail=f"{stats.processed_records:,} records",
                    )
            if job.error:
                raise GeobatchError(f"job failed: {job.error['message']}")
            for path, is_errors in ((output, False), (errors_output, True)):
                if path is None:
                    continue
                chosen = _format_for(path, None if is_errors else fmt)
                result = platform.service.download("local", job.id, errors=is_errors, fmt=chosen)
                with path.open("wb") as sink:
                    for piece in result.chunks:
                        sink.write(piece)
            stats = job.statistics
            err.print(
                f"{stats.processed_records:,} records: {stats.successful_records:,} successful, "
                f"{stats.failed_records:,} in the error report; results in {output}"
            )
        finally:
            platform.close()


def _format_for(path: Path, explicit: OutputFormat | None) -> OutputFormat:
    """The format asked for, else the one the file name says (``.parquet``), else CSV."""
    if explicit is not None:
        return explicit
    suffix = path.suffix.lower().lstrip(".")
    names = {"csv": "csv", "geojson": "geojson", "json": "geojson", "parquet": "parquet"}
    return OutputFormat(names.get(suffix, "csv"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def _background_server(data_dir: Path) -> Any:
    import os

    port = _free_port()
    env = {**os.environ, "GEOBATCH_DATA_DIR": str(data_dir)}
    process = subprocess.Popen(
        [sys.executable, "-m", "geobatch", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        with Client(url) as client:
            while True:
                try:
                    client.request("GET", "/readyz")
                    break
                except GeobatchError:
                    if process.poll() is not None or time.monotonic() > deadline:
                        raise GeobatchError("the demo server did not start") from None
                    time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


@app.command()
def demo(
    output: Annotated[Path, typer.Option("--output", "-o", help="results file")] = Path(
        "demo-results.csv"
    ),
    data_dir: Annotated[Path, typer.Option(help="where the demo server keeps its data")] = Path(
        "geobatch-data"
    ),
) -> None:
    """Start a server, reverse geocode the bundled sample points over HTTP, save the results.

    The first run also builds the bundled default reference release (a few seconds).
    """
    sample = resources.files("geobatch") / "samples" / "points.csv"
    with resources.as_file(sample) as path, _background_server(data_dir) as url:
        err.print(f"server running at {url}; submitting {path.name}")
        with Client(url) as client:
            job = _guard(
                lambda: client.submit(
                    path, "reverse_geocode", {"options": json.dumps({"release": "default"})}
                )
            )
            job = _guard(lambda: _follow(client, job["id"]))
            _summary(job)
            with output.open("wb") as sink:
                _guard(lambda: client.download(job["id"], sink))
            with (output.parent / f"{output.stem}-errors.csv").open("wb") as sink:
                _guard(lambda: client.download(job["id"], sink, errors=True))
    err.print(
        f"results in {output}, error report in {output.parent / (output.stem + '-errors.csv')}"
    )
    if job["status"] != "succeeded":
        raise _fail(f"the sample job ended {job['status']}")


def _release_store() -> Any:
    from geobatch.config import Settings
    from geobatch.reference import ReleaseStore

    return ReleaseStore(_guard(Settings).releases_path)


@releases_app.command("import")
def releases_import(
    paths: Annotated[list[Path], typer.Argument(exists=True, dir_okay=False, help="source files")],
    name: Annotated[str | None, typer.Option(help="release name (default: from the file)")] = None,
    source_format: Annotated[
        str | None,
        typer.Option(
            "--format",
            help="osm (.pbf files, several make one release), overture (kind detected from "
            "columns) or overture-segments|overture-connectors|overture-addresses|overture-places",
        ),
    ] = None,
    gazetteer: Annotated[
        bool, typer.Option(help="include the GeoNames world gazetteer (OSM imports)")
    ] = True,
    memory_mb: Annotated[
        int | None,
        typer.Option(
            "--memory-mb", min=64, help="memory budget (default: GEOBATCH_IMPORT_MEMORY_MB)"
        ),
    ] = None,
    progress: Annotated[
        bool | None,
        typer.Option(help="progress bars on stderr (default: when stderr is a terminal)"),
    ] = None,
) -> None:
    """Build a release from OSM PBF extracts or Overture GeoParquet files."""
    from geobatch.config import Settings
    from geobatch.reference import ReleaseStore, import_osm
    from geobatch.reference.overture import import_overture

    settings = _guard(Settings)
    store = ReleaseStore(settings.releases_path)
    is_osm = source_format == "osm" or (
        source_format is None and all(p.name.lower().endswith(".pbf") for p in paths)
    )
    if is_osm:
        budget = (memory_mb or settings.import_memory_mb) * 1024**2
        show = err.is_terminal if progress is None else progress
        with _import_bars(show) as bars:
            manifest = _guard(
                lambda: import_osm(
                    paths,
                    store,
                    name=name,
                    gazetteer=gazetteer,
                    memory_budget=budget,
                    progress=bars,
                )
            )
    elif source_format is None or source_format.startswith("overture"):
        kind = None if source_format in (None, "overture") else source_format
        manifest = _guard(lambda: import_overture(paths, store, kind=kind, name=name))
    else:
        raise _fail(f"unknown --format {source_format!r}; use osm or overture[-kind]")
    console.print(manifest.id)
    _print_manifest(manifest)


class _ImportBars:
    """An import's phases as rich progress bars on stderr, one line per phase."""

    def __init__(self, bars: Progress | None) -> None:
        self._bars = bars
        self._task: Any = None

    def phase(self, name: str, total: int | None = None) -> None:
        if self._bars is not None:
            self.finish()
            self._task = self._bars.add_task(name, total=total, detail="")

    def finish(self) -> None:
        """Show the current phase complete (a phase of unknown size ends when the next begins)."""
        if self._bars is not None and self._task is not None:
            done = self._bars.tasks[-1].completed or 1
            self._bars.update(self._task, total=done, completed=done)

    def advance(self, steps: int = 1, detail: str = "") -> None:
        if self._bars is not None and self._task is not None:
            self._bars.update(self._task, advance=steps, detail=detail)


@contextmanager
def _import_bars(show: bool) -> Any:
    if not show:
        yield _ImportBars(None)
        return
    with _progress() as bars:
        tracker = _ImportBars(bars)
        yield tracker
        tracker.finish()


def _print_manifest(manifest: Any) -> None:
    table = Table(show_header=False, box=None)
    table.add_row("id", manifest.id)
    table.add_row("created", manifest.created_at.isoformat())
    for key, count in manifest.counts.items():
        table.add_row(key, f"{count:,}")
    if manifest.bbox:
        table.add_row("bbox", ", ".join(f"{v:.5f}" for v in manifest.bbox))
    for source in manifest.sources:
        table.add_row("source", f"{source.kind} {source.path} sha256:{source.sha256[:12]}")
    err.print(table)


def _release_catalog() -> Any:
    from geobatch.config import Settings
    from geobatch.jobs.catalog import ReleaseCatalog

    return ReleaseCatalog.for_settings(_guard(Settings))


@releases_app.command("list")
def releases_list() -> None:
    """Releases, newest first: those built here and, with GEOBATCH_RELEASES_URL, those
    published there."""
    catalog = _release_catalog()
    releases = _guard(catalog.list)
    columns: list[Any] = [
        Column("id", no_wrap=True),
        "created",
        "segments",
        "addresses",
        "places",
        "on disk",
    ]
    where: dict[str, str] = {}
    if catalog.url:
        here = {m.id for m in catalog.built_here()}
        published = {m.id for m in _guard(catalog.published)}
        labels = {(True, False): "here", (False, True): "published", (True, True): "both"}
        where = {m.id: labels[(m.id in here, m.id in published)] for m in releases}
        columns.append(Column("stored", no_wrap=True))
    table = Table(*columns)
    for manifest in releases:
        counts = manifest.counts
        table.add_row(
            manifest.id,
            manifest.created_at.isoformat(timespec="seconds"),
            *(f"{counts.get(key, 0):,}" for key in ("segments", "addresses", "places")),
            f"{manifest.size_bytes / 1024**2:,.1f} MiB",
            *([where[manifest.id]] if where else []),
        )
    console.print(table)


@releases_app.command("show")
def releases_show(release: str) -> None:
    """Print a release's manifest as JSON (by id, or the newest release of a name), built
    here or published to GEOBATCH_RELEASES_URL."""
    catalog = _release_catalog()
    console.print_json(data=_guard(lambda: catalog.resolve(release).to_json()))


@releases_app.command("delete")
def releases_delete(release_id: str) -> None:
    """Delete a release."""
    store = _release_store()
    _guard(lambda: store.delete(release_id))
    err.print(f"release {release_id} deleted")


@releases_app.command("publish")
def releases_publish(
    release: str,
    to: Annotated[
        str, typer.Option(help="object-store URL of the releases (default GEOBATCH_RELEASES_URL)")
    ] = "",
) -> None:
    """Upload a local release to object storage, where a cluster's workers mirror it from."""
    from geobatch.config import Settings
    from geobatch.jobs.releases import publish_release

    target = to or _guard(Settings).releases_url
    if not target:
        raise _fail("name the object store with --to or GEOBATCH_RELEASES_URL")
    store = _release_store()
    manifest = _guard(lambda: store.resolve(release))
    url = _guard(lambda: publish_release(store, manifest.id, target))
    err.print(f"release {manifest.id} published to {url}")


@contextmanager
def _key_store() -> Iterator[Any]:
    from geobatch.config import Settings
    from geobatch.jobs.database import Database
    from geobatch.jobs.keys import KeyStore

    settings = _guard(Settings)
    database = Database(settings.database_url)
    try:
        _guard(database.migrate)
        yield KeyStore(database, settings.api_keys)
    finally:
        database.dispose()


@keys_app.command("create")
def keys_create(
    tenant: Annotated[str, typer.Option(help="the tenant whose jobs the key reaches")],
    role: Annotated[str, typer.Option(help="admin, member or read")] = "member",
    name: Annotated[str | None, typer.Option(help="a note to recognise the key by")] = None,
) -> None:
    """Create a key and print it: this is the only time it is shown."""
    from geobatch.jobs.keys import parse_role

    with _key_store() as store:
        record, secret = _guard(lambda: store.create(tenant, parse_role(role), name))
    console.print(secret, highlight=False)
    err.print(f"key {record.id} ({record.prefix}…) for tenant {tenant}, role {record.role}")


@keys_app.command("list")
def keys_list(
    all_keys: Annotated[bool, typer.Option("--all", help="include revoked keys")] = False,
) -> None:
    """Keys by id and prefix, with tenant and role (never the keys themselves)."""
    table = Table("id", "prefix", "tenant", "role", "name", "created", "revoked")
    with _key_store() as store:
        for key in store.list(include_revoked=all_keys):
            table.add_row(
                key.id,
                key.prefix,
                key.tenant,
                key.role.value,
                key.name or "",
                key.created_at.isoformat(timespec="seconds"),
                key.revoked_at.isoformat(timespec="seconds") if key.revoked_at else "",
            )
    console.print(table)


@keys_app.command("revoke")
def keys_revoke(key_id: Annotated[str, typer.Argument(help="the key's id or prefix")]) -> None:
    """Revoke a key; servers refuse it within a few seconds."""
    with _key_store() as store:
        record = _guard(lambda: store.revoke(key_id))
    err.print(f"key {record.id} ({record.prefix}…) revoked")
