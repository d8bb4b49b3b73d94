"""Local metric projection and resampling of input lines."""

from __future__ import annotations

import numpy as np
import pytest
import shapely
from hypothesis import given, settings
from hypothesis import strategies as st
from pyproj import Geod

from geobatch.engines.roadmatch.geometry import LocalProjection, angle_diff, resample

coordinate = st.floats(min_value=-500.0, max_value=500.0, allow_nan=False)
polyline = st.lists(st.tuples(coordinate, coordinate), min_size=2, max_size=12).filter(
    lambda pts: shapely.LineString(pts).length > 0.0
)


@pytest.mark.parametrize("lat0", [0.0, 38.9, 60.2])
def test_projection_distances_agree_with_the_ellipsoid_near_the_centre(lat0: float) -> None:
    projection = LocalProjection(lon0=10.0, lat0=lat0)
    rng = np.random.default_rng(1)
    lon = 10.0 + rng.uniform(-0.1, 0.1, (50, 2))
    lat = lat0 + rng.uniform(-0.1, 0.1, (50, 2))
    x, y = projection.forward(lon, lat)
    planar = np.hypot(x[:, 1] - x[:, 0], y[:, 1] - y[:, 0])
    _, _, geodesic = Geod(ellps="WGS84").inv(lon[:, 0], lat[:, 0], lon[:, 1], lat[:, 1])
    assert planar == pytest.approx(geodesic, rel=2e-3)
    back_lon, back_lat = projection.inverse(x, y)
    assert back_lon == pytest.approx(lon)
    assert back_lat == pytest.approx(lat)


@settings(max_examples=30, deadline=None)
@given(st.lists(polyline, min_size=1, max_size=4), st.floats(min_value=1.0, max_value=50.0))
def test_resampled_points_lie_on_their_line_at_their_chainage(
    lines: list[list[tuple[float, float]]], spacing: float
) -> None:
    geoms = np.array([shapely.LineString(pts) for pts in lines], dtype=object)
    samples = resample(geoms, spacing)
    assert len(samples.starts) == len(geoms) + 1
    for i, geom in enumerate(geoms):
        part = slice(samples.starts[i], samples.starts[i + 1])
        chainage = samples.chainage[part]
        assert chainage[0] == 0.0
        assert chainage[-1] == pytest.approx(geom.length)
        assert np.all(np.diff(chainage) <= spacing + 1e-9)
        assert len(chainage) >= 3
        expected = shapely.get_coordinates(shapely.line_interpolate_point(geom, chainage))
        got = np.column_stack([samples.x[part], samples.y[part]])
        assert got == pytest.approx(expected, abs=1e-6)
        assert np.all(samples.line[part] == i)


def test_headings_follow_the_line_and_angles_wrap() -> None:
    geoms = np.array([shapely.LineString([(0, 0), (100, 0), (100, 100)])], dtype=object)
    samples = resample(geoms, 10.0)
    assert samples.heading[0] == pytest.approx(0.0)
    assert samples.heading[-1] == pytest.approx(np.pi / 2)
    assert angle_diff(np.array([3.1]), np.array([-3.1]))[0] == pytest.approx(2 * np.pi - 6.2)


def test_turns_are_judged_against_the_chord_or_the_inputs_own_piece() -> None:
    # A right-angle corner just after a sample: its chord cuts the corner at about 26
    # degrees, its own piece still runs east; a jittered chord or a tight bend is no reason
    # to call a reference heading along the input's own piece a turn.
    geoms = np.array([shapely.LineString([(0, 0), (22, 0), (22, 100)])], dtype=object)
    samples = resample(geoms, 10.0)
    corner = int(np.flatnonzero(samples.x < 22)[-1])
    east, north = np.array([0.0]), np.array([np.pi / 2])
    assert angle_diff(east, samples.heading[[corner]])[0] > np.radians(20)
    assert samples.turn(np.array([corner]), east)[0] == pytest.approx(0.0)
    assert samples.turn(np.array([corner]), north)[0] == pytest.approx(
        angle_diff(north, samples.heading[[corner]])[0]
    )


def test_a_lines_samples_do_not_depend_on_the_lines_before_it() -> None:
    rng = np.random.default_rng(5)
    lines = [
        shapely.LineString(np.cumsum(rng.uniform(-37.3, 41.9, (n, 2)), axis=0))
        for n in (40, 3, 250, 17)
    ]
    together = resample(np.array(lines, dtype=object), 15.0)
    for k, geom in enumerate(lines):
        alone = resample(np.array([geom], dtype=object), 15.0)
        mine = slice(together.starts[k], together.starts[k + 1])
        for field in ("chainage", "x", "y", "heading", "tangent"):
            assert getattr(together, field)[mine].tolist() == getattr(alone, field).tolist()
        assert together.lengths[k] == alone.lengths[0]
