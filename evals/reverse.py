"""How often reverse geocoding names the right address and street, by distance from it.

Run with ``.venv/bin/python evals/reverse.py [--sample N] [--json PATH]``.

The test set comes from each release's own address points (with a street and a house number):
every point is moved by a random distance in one of the jitter bands (0-2, 2-5, 5-10, 10-15 m,
and 15-30 and 30-60 m, where the street level starts to answer) in a random direction, as a GPS
fix or a geocoded parcel centroid would be, and reverse geocoded with the default options.
A result is the *same address* when its street and house number equal the point's (another
point of the same address, such as a second entrance, counts), and the *same street* when the
street name does. Releases: the bundled Helsinki
default always; Monaco, Andorra and Baltimore from ``../shared/data/osm`` when present.

A second table pools every answer by ``confidence`` band: how often the answer was the same
address and the same street. Higher confidence should mean more often right.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
from rich.console import Console
from rich.table import Table

from geobatch.engines.geocode.reverse import reverse_geocode
from geobatch.engines.geocode.spatial import EARTH_RADIUS_M
from geobatch.reference import Release, ReleaseStore, ensure_default_release, import_osm

SHARED_OSM = Path(__file__).resolve().parents[2] / "shared" / "data" / "osm"
BANDS_M = ((0.0, 2.0), (2.0, 5.0), (5.0, 10.0), (10.0, 15.0), (15.0, 30.0), (30.0, 60.0))
CONFIDENCE_BANDS = ((0, 40), (40, 60), (60, 70), (70, 80), (80, 90), (90, 101))


def _key(values: list[str | None]) -> np.ndarray:
    return np.array([" ".join(v.casefold().split()) if v else "" for v in values], dtype=object)


def _filled(column: Any) -> Any:
    return pc.fill_null(pc.greater(pc.utf8_length(pc.utf8_trim_whitespace(column)), 0), False)


def jitter(
    lat: np.ndarray, lon: np.ndarray, low: float, high: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Points moved by a uniform distance in [low, high) metres in a uniform direction."""
    distance = rng.uniform(low, high, len(lat))
    heading = rng.uniform(0, 2 * np.pi, len(lat))
    dlat = np.degrees(distance * np.cos(heading) / EARTH_RADIUS_M)
    dlon = np.degrees(distance * np.sin(heading) / (EARTH_RADIUS_M * np.cos(np.radians(lat))))
    return lat + dlat, lon + dlon


def evaluate(release: Release, sample: int, seed: int = 5) -> dict[str, Any]:
    table = release.table("addresses")
    usable = pc.and_(_filled(table.column("street")), _filled(table.column("housenumber")))
    table = table.filter(usable)
    rng = np.random.default_rng(seed)
    if table.num_rows > sample:
        table = table.take(np.sort(rng.choice(table.num_rows, sample, replace=False)))
    lat, lon = table.column("lat").to_numpy(), table.column("lon").to_numpy()
    street = _key(table.column("street").to_pylist())
    number = _key(table.column("housenumber").to_pylist())
    bands = []
    confidences, addresses_hit, streets_hit = [], [], []
    for low, high in BANDS_M:
        moved_lat, moved_lon = jitter(lat, lon, low, high, rng)
        found = reverse_geocode(release, moved_lat, moved_lon)
        same_street = _key(found.column("street").to_pylist()) == street
        same_address = same_street & (_key(found.column("houseNumber").to_pylist()) == number)
        levels = np.array(found.column("match_level").to_pylist(), dtype=object)
        bands.append(
            {
                "band": f"{low:g}-{high:g} m",
                "points": len(lat),
                "same_address": float(same_address.mean()) if len(lat) else 0.0,
                "same_street": float(same_street.mean()) if len(lat) else 0.0,
                "houseNumber_level": float((levels == "houseNumber").mean()) if len(lat) else 0.0,
            }
        )
        confidences.append(np.nan_to_num(found.column("confidence").to_numpy(zero_copy_only=False)))
        addresses_hit.append(same_address)
        streets_hit.append(same_street)
    return {
        "addresses": len(lat),
        "bands": bands,
        "confidence": np.concatenate(confidences).tolist() if confidences else [],
        "same_address": np.concatenate(addresses_hit).tolist() if addresses_hit else [],
        "same_street": np.concatenate(streets_hit).tolist() if streets_hit else [],
    }


def releases(store: ReleaseStore) -> list[Release]:
    found = [store.load(ensure_default_release(store).id)]
    for name in ("monaco", "andorra", "baltimore"):
        path = SHARED_OSM / f"{name}.osm.pbf"
        if path.is_file():
            found.append(store.load(import_osm(path, store).id))
    return found


def calibration(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    confidence = np.concatenate([np.asarray(r["confidence"]) for r in results.values()])
    address = np.concatenate([np.asarray(r["same_address"], dtype=bool) for r in results.values()])
    street = np.concatenate([np.asarray(r["same_street"], dtype=bool) for r in results.values()])
    rows = []
    for low, high in CONFIDENCE_BANDS:
        inside = (confidence >= low) & (confidence < high)
        count = int(inside.sum())
        rows.append(
            {
                "band": f"{low}-{min(high, 100)}",
                "answers": count,
                "same_address": float(address[inside].mean()) if count else None,
                "same_street": float(street[inside].mean()) if count else None,
            }
        )
    return rows


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sample", type=int, default=2_000, help="addresses per release")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    console = Console(width=160)
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="geobatch-eval-") as root:
        for release in releases(ReleaseStore(Path(root))):
            results[release.manifest.id] = evaluate(release, args.sample)
    table = Table(title="reverse geocoding of jittered address points (default options)")
    for column in ("release", "addresses", "jitter", "same address", "same street", "at address"):
        table.add_column(column, justify="left" if column in ("release", "jitter") else "right")
    for name, result in results.items():
        for band in result["bands"]:
            table.add_row(
                name,
                str(band["points"]),
                band["band"],
                _pct(band["same_address"]),
                _pct(band["same_street"]),
                _pct(band["houseNumber_level"]),
            )
    console.print(table)
    rows = calibration(results)
    calibrated = Table(title="confidence calibration (all releases and bands pooled)")
    for column in ("confidence", "answers", "same address", "same street"):
        calibrated.add_column(column, justify="right")
    for row in rows:
        calibrated.add_row(
            row["band"], str(row["answers"]), _pct(row["same_address"]), _pct(row["same_street"])
        )
    console.print(calibrated)
    if args.json:
        summary = {
            name: {"addresses": r["addresses"], "bands": r["bands"]} for name, r in results.items()
        }
        args.json.write_text(json.dumps({"releases": summary, "calibration": rows}, indent=2))


if __name__ == "__main__":
    main()
