"""The web console in a real headless Chromium against a real server, as a user drives it.

One server (with two tenants' API keys) and one browser serve every test of the module. Each
page the tests visit is saved as a screenshot in the session's temporary folder, and also in
``GEOBATCH_CONSOLE_SCREENSHOTS`` when that names a folder (how ``docs/screenshots`` is made).
"""

from __future__ import annotations

import json
import os
import random
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import shapely
import shapely.affinity

from geobatch.jobs import JOB_TYPES
from geobatch.reference import Release, ReleaseStore
from tests.e2e.conftest import ServerProcess, free_port
from tests.e2e.helpers import get_job, wait_for, wait_for_status

playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = [pytest.mark.e2e, pytest.mark.browser]

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# MapLibre needs WebGL; headless Chromium has it through SwiftShader, a software renderer.
CHROMIUM_ARGS = ["--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist"]
KEYS = {"alpha": "key-alpha-1", "beta": "key-beta-2"}
TIMEOUT_MS = 60_000
JOB_TIMEOUT_MS = 180_000  # a whole job, on a busy machine

# Central Helsinki, inside the bundled default release.
LAT, LON = (60.1645, 60.1785), (24.9365, 24.9525)
STREETS = ["Mannerheimintie", "Aleksanterinkatu", "Mikonkatu", "Bulevardi", "Fredrikinkatu"]


def points_csv(count: int, *, broken_every: int = 0) -> str:
    """``count`` GPS points ``recId,lat,lon`` in the release's area; every ``broken_every``-th
    one has a latitude that is not a number (it belongs in the error report)."""
    rng = random.Random(count)
    lines = ["recId,lat,lon"]
    for i in range(1, count + 1):
        lat = f"{rng.uniform(*LAT):.6f}"
        if broken_every and i % broken_every == 0:
            lat = "north"
        lines.append(f"p{i},{lat},{rng.uniform(*LON):.6f}")
    return "\n".join(lines) + "\n"


def addresses_csv(count: int) -> str:
    rng = random.Random(count)
    lines = ["recId,searchText"]
    for i in range(1, count + 1):
        lines.append(f'a{i},"{rng.choice(STREETS)} {rng.randint(1, 60)}, Helsinki"')
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def console_releases(
    tmp_path_factory: pytest.TempPathFactory, session_store: ReleaseStore, helsinki: Release
) -> Path:
    """A releases folder holding the default release alone: jobs that name no release use the
    newest, and the session's folder gains others (Monaco, Andorra) as other tests run."""
    folder = tmp_path_factory.mktemp("console-releases")
    (folder / helsinki.manifest.id).symlink_to(session_store.path(helsinki.manifest.id))
    return folder


@pytest.fixture(scope="module")
def console_server(
    tmp_path_factory: pytest.TempPathFactory, console_releases: Path
) -> Iterator[ServerProcess]:
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (.ci/run installs Debian's package)")
    folder = tmp_path_factory.mktemp("console")
    server = ServerProcess(
        folder / "server",
        f"sqlite:///{folder / 'geobatch.db'}",
        GEOBATCH_RELEASES_DIR=str(console_releases),
        GEOBATCH_API_KEYS=",".join(f"{key}:{tenant}" for tenant, key in KEYS.items()),
        GEOBATCH_WORKERS="1",
        GEOBATCH_CHUNK_SIZE="2000",
        GEOBATCH_URL_ALLOWLIST="127.0.0.1/32",
    )
    try:
        server.start()
        yield server
    finally:
        server.stop()
        server.reap_orphans()


@pytest.fixture(scope="module")
def browser(console_server: ServerProcess) -> Iterator[Any]:
    with playwright_api.sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folders = [tmp_path_factory.mktemp("screenshots")]
    if extra := os.environ.get("GEOBATCH_CONSOLE_SCREENSHOTS"):
        folders.append(Path(extra))
        folders[-1].mkdir(parents=True, exist_ok=True)
    return folders


class Console:
    """A browser tab on the console with one tenant's API key typed into it."""

    def __init__(self, page: Any, base: str, shots: list[Path]) -> None:
        self.page = page
        self.base = base
        self.shots = shots
        self.errors: list[str] = []
        page.on("pageerror", lambda error: self.errors.append(str(error)))

    def open(self, fragment: str) -> None:
        self.page.goto(f"{self.base}/console/{fragment}")

    def use_key(self, key: str) -> None:
        self.page.get_by_label("API key").fill(key)
        self.page.get_by_role("button", name="Use key").click()

    def shot(self, name: str) -> None:
        self.page.evaluate("window.scrollTo(0, 0)")
        for folder in self.shots:
            self.page.screenshot(path=str(folder / f"{name}.png"))

    def drop(self, name: str, text: str, mime: str) -> None:
        """Drop a file on the upload zone, as dragging it from the desktop does."""
        transfer = self.page.evaluate_handle(
            """([name, text, mime]) => {
                const transfer = new DataTransfer();
                transfer.items.add(new File([text], name, { type: mime }));
                return transfer;
            }""",
            [name, text, mime],
        )
        self.page.dispatch_event("#drop-zone", "drop", {"dataTransfer": transfer})


def _console(browser: Any, server: ServerProcess, shots: list[Path], tenant: str) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1200, "height": 760}, accept_downloads=True)
    context.set_default_timeout(TIMEOUT_MS)
    console = Console(context.new_page(), server.url, shots)
    console.open("")
    console.use_key(KEYS[tenant])
    yield console
    context.close()
    assert not console.errors, console.errors


@pytest.fixture
def alpha(browser: Any, console_server: ServerProcess, shots: list[Path]) -> Iterator[Console]:
    yield from _console(browser, console_server, shots, "alpha")


@pytest.fixture
def beta(browser: Any, console_server: ServerProcess, shots: list[Path]) -> Iterator[Console]:
    yield from _console(browser, console_server, shots, "beta")


@pytest.fixture
def api(console_server: ServerProcess) -> Iterator[httpx.Client]:
    headers = {"X-API-Key": KEYS["alpha"]}
    with httpx.Client(base_url=console_server.url, headers=headers, timeout=60) as client:
        yield client


def unlabelled_controls(console: Console) -> list[str]:
    """Form controls that a screen reader could not name (no <label>, no aria-label)."""
    found: list[str] = console.page.evaluate(
        """() => [...document.querySelectorAll("input, select, textarea, button")]
            .filter((e) => !(e.labels && e.labels.length) && !e.getAttribute("aria-label")
                && !(e.tagName === "BUTTON" && e.textContent.trim()))
            .map((e) => e.id || e.name || e.outerHTML.slice(0, 60))"""
    )
    return found


def rendered(console: Console, layer: str) -> int:
    """How many features MapLibre has drawn in ``layer`` (its queryRenderedFeatures)."""
    count: int = console.page.evaluate(
        "(layer) => window.consoleMap.queryRenderedFeatures({ layers: [layer] }).length", layer
    )
    return count


def basemap_drawn(console: Console, at_least: int) -> int:
    """Wait until the basemap shows more than ``at_least`` roads: it is fetched for the map's
    view after the map is ready, so under load it may come a little later."""
    console.page.wait_for_function(
        "(n) => window.consoleMap.queryRenderedFeatures({ layers: ['roads'] }).length > n",
        arg=at_least,
        timeout=30_000,
    )
    return rendered(console, "roads")


def test_upload_dry_run_live_progress_and_map_of_a_100k_job(
    alpha: Console, api: httpx.Client
) -> None:
    page = alpha.page
    alpha.open("#/new")
    alpha.drop("points.csv", points_csv(100_000, broken_every=1000), "text/csv")
    page.get_by_text("points.csv (").wait_for()
    page.get_by_label("Job type").select_option("reverse_geocode")
    page.get_by_label("radius_m", exact=True).fill("40")
    assert page.get_by_role("button", name="Create job").is_disabled()  # not checked yet
    page.get_by_role("button", name="Validate (dry run)").click()
    result = page.locator("#dry-run-result")
    result.wait_for()
    assert unlabelled_controls(alpha) == []
    assert result.inner_text().startswith("100,000 records checked: 99,900 valid, 100 invalid")
    alpha.shot("new-job")

    # Every value the progress bar takes, from the moment the job page shows.
    page.evaluate(
        """() => {
            window.seenProgress = [];
            new MutationObserver(() => {
                const bar = document.getElementById("job-progress");
                if (bar) window.seenProgress.push(Number(bar.value));
            }).observe(document.body, { subtree: true, childList: true, attributes: true });
        }"""
    )
    page.get_by_role("button", name="Create job").click()
    page.locator("#job-status", has_text="succeeded").wait_for(timeout=JOB_TIMEOUT_MS)
    job_id = page.url.rsplit("/", 1)[1]
    seen = page.evaluate("window.seenProgress")
    assert any(0 < value < 100 for value in seen), f"no progress shown on the way: {seen}"
    assert seen[-1] == 100
    figures = page.locator("#job-figures").inner_text()
    assert "100,000 of 100,000 records" in figures
    assert "records/s" in figures
    assert "street" in page.locator("table.levels").inner_text()
    job = get_job(api, job_id)
    assert job["options"]["radius_m"] == 40
    assert job["statistics"]["failed_records"] == 100
    alpha.shot("job")

    with page.expect_response(lambda r: "/sample" in r.url) as sample_response:
        page.get_by_role("link", name="Results on a map").click()
    sample = sample_response.value.json()
    # A 100,000-row job reaches the browser as a sample of 2,000 rows (under half a MB).
    assert sample["total_rows"] == 99_900
    assert sample["sampled_rows"] == len(sample["features"]) == 2000
    assert len(sample_response.value.body()) < 600_000
    page.locator("#map[data-ready=true]").wait_for()
    drawn = rendered(alpha, "results")
    assert 1900 <= drawn <= 2000, drawn  # all in view; a few may share a pixel-exact spot
    assert basemap_drawn(alpha, 100) > 100  # the basemap, from the release itself
    assert "Showing 2,000 of 99,900 result rows" in page.locator("#sample-summary").inner_text()
    errors = page.get_by_role("table").filter(has_text="Error report")
    assert "not_a_number" in errors.inner_text()
    assert errors.locator("tbody tr").count() == 100
    page.get_by_label("Colour by").select_option("confidence")
    alpha.shot("map")

    with page.expect_download() as saved:
        page.goto(f"{alpha.base}/console/#/jobs/{job_id}")
        page.get_by_role("button", name="Download errors").click()
    assert saved.value.suggested_filename == f"{job_id}-errors.csv"


def test_stop_and_resume_a_running_job(alpha: Console, api: httpx.Client) -> None:
    response = api.post(
        "/v1/jobs",
        params={"type": "geocode", "options": json.dumps({"truncate_at": 2})},
        content=addresses_csv(12_000).encode(),
        headers={"Content-Type": "text/csv"},
    )
    assert response.status_code == 201, response.text
    job_id = response.json()["id"]
    page = alpha.page
    alpha.open(f"#/jobs/{job_id}")
    wait_for(api, job_id, lambda j: j["statistics"]["processed_records"] > 0, what="progress")
    # Dispatched rather than clicked: live progress redraws the job page several times a
    # second under load, and a pointer click waits for the button to hold still.
    page.get_by_role("button", name="Stop").dispatch_event("click")
    page.locator("#job-status", has_text="paused").wait_for()
    paused = wait_for_status(api, job_id, "paused")
    assert paused["statistics"]["processed_records"] < 12_000, "finished before the stop"
    resume = page.get_by_role("button", name="Resume")
    assert resume.is_enabled()
    assert page.get_by_role("button", name="Stop").is_disabled()
    alpha.shot("job-paused")
    resume.click()
    page.locator("#job-status", has_text="succeeded").wait_for(timeout=JOB_TIMEOUT_MS)
    final = get_job(api, job_id)
    assert final["statistics"]["processed_records"] == 12_000
    assert "12,000 of 12,000 records" in page.locator("#job-figures").inner_text()


def test_another_tenants_job_is_refused(alpha: Console, beta: Console, api: httpx.Client) -> None:
    response = api.post(
        "/v1/jobs",
        params={"type": "reverse_geocode", "bulk_id": "alpha-only"},
        content=points_csv(50).encode(),
        headers={"Content-Type": "text/csv"},
    )
    job_id = response.json()["id"]
    beta.open(f"#/jobs/{job_id}")
    # The key lives in this tab's session storage only, never in local storage or a cookie.
    assert beta.page.evaluate("sessionStorage.getItem('geobatch.apiKey')") == KEYS["beta"]
    assert beta.page.evaluate("localStorage.length + document.cookie.length") == 0
    refusal = beta.page.get_by_role("alert")
    assert "belongs to another tenant" in refusal.inner_text()
    assert beta.page.get_by_role("button", name="Stop").count() == 0
    beta.shot("refused")
    beta.open("#/jobs?bulk_id=alpha-only")
    assert "0 jobs on this page" in beta.page.locator("table.jobs caption").inner_text()
    alpha.open("#/jobs?bulk_id=alpha-only")
    alpha.page.get_by_role("link", name=job_id).wait_for()


def test_jobs_list_filters_and_pages(alpha: Console, api: httpx.Client) -> None:
    created = []
    for _ in range(3):
        response = api.post(
            "/v1/jobs",
            params={"type": "reverse_geocode", "bulk_id": "paging", "start": "false"},
            content=points_csv(5).encode(),
            headers={"Content-Type": "text/csv"},
        )
        created.append(response.json()["id"])
    page = alpha.page
    alpha.open("#/jobs")
    page.get_by_label("Bulk id").fill("paging")
    page.get_by_label("Status").select_option("created")
    page.get_by_label("Per page").select_option("10")
    page.get_by_role("button", name="Apply").click()
    page.locator("table.jobs caption", has_text="3 jobs").wait_for()
    assert unlabelled_controls(alpha) == []
    alpha.shot("jobs")
    alpha.open("#/jobs?bulk_id=paging&page_size=2")
    page.locator("table.jobs caption", has_text="2 jobs").wait_for()
    first = page.locator("table.jobs tbody a").all_inner_texts()
    assert first == created[::-1][:2]  # newest first
    page.get_by_role("link", name="Older →").click()
    page.locator("table.jobs caption", has_text="1 job on").wait_for()
    assert page.locator("table.jobs tbody a").all_inner_texts() == created[:1]
    page.get_by_role("link", name="← Newer").click()
    page.locator("table.jobs caption", has_text="2 jobs").wait_for()
    # Keyboard only: tab from the filters to the first job and open it.
    page.locator("table.jobs tbody a").first.focus()
    page.keyboard.press("Enter")
    page.locator("#job-status", has_text="created").wait_for()
    assert page.url.endswith(created[2])
    page.get_by_role("button", name="Cancel").click()
    page.locator("#job-status", has_text="cancelled").wait_for()
    assert get_job(api, created[2])["status"] == "cancelled"
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete").click()
    page.locator("table.jobs").wait_for()
    assert api.get(f"/v1/jobs/{created[2]}").status_code == 404


def test_releases_page_and_its_map(alpha: Console, api: httpx.Client) -> None:
    releases = api.get("/v1/releases").json()["releases"]
    page = alpha.page
    alpha.open("#/releases")
    page.locator("#map[data-ready=true]").wait_for()
    assert rendered(alpha, "bboxes") >= 1
    assert basemap_drawn(alpha, 0) > 0
    first = releases[0]
    section = page.get_by_role("region", name=first["id"])
    text = section.inner_text()
    assert f"{first['counts']['segments']:,}" in text
    assert first["sources"][0]["sha256"][:12] in text
    alpha.shot("releases")


def roads_csv(release: Release, count: int) -> str:
    """``count`` of the release's own roads (over 40 m), shifted about 3 m north, as WKT."""
    segments = release.table("segments")
    lines = ["id,geometry"]
    for row in segments.to_pylist():
        if row["length_m"] > 40 and len(lines) <= count:
            line = shapely.affinity.translate(shapely.from_wkb(row["geometry"]), yoff=0.00003)
            lines.append(f'{row["id"]},"{line.wkt}"')
    return "\n".join(lines) + "\n"


def test_road_matches_over_input_roads_on_the_map(
    alpha: Console, api: httpx.Client, helsinki: Release
) -> None:
    release = helsinki.manifest.id
    response = api.post(
        "/v1/jobs",
        params={
            "type": "road_match",
            "options": json.dumps({"release": release}),
            # Nothing listens there: the delivery fails, and the job page lists the attempt.
            "callback": json.dumps(
                {
                    "url": f"http://127.0.0.1:{free_port()}/hook",
                    "events": ["job.succeeded"],
                    "retry_policy": {"max_attempts": 1},
                }
            ),
        },
        content=roads_csv(helsinki, 40).encode(),
        headers={"Content-Type": "text/csv"},
    )
    assert response.status_code == 201, response.text
    job_id = response.json()["id"]
    page = alpha.page
    alpha.open(f"#/jobs/{job_id}")
    page.locator("#job-status", has_text="succeeded").wait_for(timeout=JOB_TIMEOUT_MS)
    assert (
        "roads_matched_ratio"
        in page.get_by_role("heading", name="Road statistics").locator("..").inner_text()
    )
    with page.expect_response(lambda r: "/sample" in r.url) as sample_response:
        page.get_by_role("link", name="Results on a map").click()
    layers = [f["properties"]["layer"] for f in sample_response.value.json()["features"]]
    assert layers.count("input") == 40
    assert layers.count("matched") >= 40
    page.locator("#map[data-ready=true]").wait_for()
    assert rendered(alpha, "input-roads") > 0
    assert rendered(alpha, "results") > 0
    alpha.shot("road-map")


def test_job_types_publish_the_schema_options_are_validated_with(api: httpx.Client) -> None:
    published = {t["name"]: t for t in api.get("/v1/job-types").json()["job_types"]}
    assert set(published) == set(JOB_TYPES)
    for name, kind in JOB_TYPES.items():
        assert published[name]["options_schema"] == kind.options_model.model_json_schema()
        assert published[name]["uses_release"] == kind.uses_release


def test_basemap_keeps_major_roads_and_refuses_a_bad_bbox(
    api: httpx.Client, helsinki: Release
) -> None:
    release = helsinki.manifest.id
    box = "24.93,60.16,24.96,60.18"
    everything = api.get(f"/v1/releases/{release}/basemap", params={"bbox": box}).json()
    roads = [f for f in everything["features"] if f["properties"]["layer"] == "road"]
    assert len(roads) == everything["roads_in_bbox"] > 50
    assert any(f["properties"]["layer"] == "place" for f in everything["features"])
    few = api.get(
        f"/v1/releases/{release}/basemap", params={"bbox": box, "max_roads": 10, "max_places": 0}
    ).json()
    assert len(few["features"]) == 10
    kept = {f["properties"]["road_class"] for f in few["features"]}
    assert kept <= {"motorway", "trunk", "primary", "secondary"}, kept
    outside = api.get(f"/v1/releases/{release}/basemap", params={"bbox": "0,0,1,1"}).json()
    assert outside["features"] == []
    for bad in ("1,2,3", "24.96,60.16,24.93,60.18", "a,b,c,d", "0,0,200,1"):
        response = api.get(f"/v1/releases/{release}/basemap", params={"bbox": bad})
        assert response.status_code == 422, bad
        assert response.json()["field"] == "bbox"


def test_another_tenants_sample_is_not_found(console_server: ServerProcess) -> None:
    with httpx.Client(base_url=console_server.url, timeout=60) as client:
        job = client.post(
            "/v1/jobs",
            params={"type": "reverse_geocode", "start": "false"},
            content=points_csv(5).encode(),
            headers={"Content-Type": "text/csv", "X-API-Key": KEYS["alpha"]},
        ).json()
        response = client.get(f"/v1/jobs/{job['id']}/sample", headers={"X-API-Key": KEYS["beta"]})
        assert response.status_code == 404
        mine = client.get(f"/v1/jobs/{job['id']}/sample", headers={"X-API-Key": KEYS["alpha"]})
        assert mine.json() == {
            "type": "FeatureCollection",
            "total_rows": 0,
            "sampled_rows": 0,
            "features": [],
        }
