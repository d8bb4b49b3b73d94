"""Point grids answer like a k-d tree; hashed keys find their rows, collisions included."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from scipy.spatial import cKDTree

from geobatch.reference.indexes import keys
from geobatch.reference.indexes.keys import KeyIndex
from geobatch.reference.indexes.sphere import SpherePoints, sphere_xyz


@pytest.mark.parametrize("wider", [1, 4])
@pytest.mark.parametrize("k", [1, 3, 6, 8])
@pytest.mark.parametrize("radius_m", [300.0, 5_000.0, 150_000.0])
def test_nearest_within_a_radius_matches_a_kd_tree(radius_m: float, k: int, wider: int) -> None:
    """Up to six neighbours most searches take one pass, sized by what their cell recorded
    at import (or none, far from every point); more take the widening search. Both answer
    as the tree does, also when the index reaches ``wider`` than the search."""
    rng = np.random.default_rng(4)
    # a dense town, points spread worldwide, and some at the poles and the antimeridian
    lat = np.r_[rng.uniform(60.1, 60.2, 1_000), rng.uniform(-90, 90, 3_000), [89.99, -89.99]]
    lon = np.r_[rng.uniform(24.8, 25.0, 1_000), rng.uniform(-180, 180, 3_000), [10.0, -170.0]]
    lat = np.r_[lat, rng.uniform(-17, -16, 200)]
    lon = np.r_[lon, rng.choice([-179.99, 179.99], 200)]
    lat, lon = np.r_[lat, [10.0]], np.r_[lon, [-179.999]]  # alone, just across the antimeridian
    points = SpherePoints.build(lat, lon, cell_m=radius_m / 8, reach_m=radius_m * wider)
    tree = cKDTree(sphere_xyz(lat, lon))
    q_lat = np.r_[rng.uniform(60.1, 60.2, 200), rng.uniform(-90, 90, 500), [90.0, -16.5]]
    q_lon = np.r_[rng.uniform(24.8, 25.0, 200), rng.uniform(-180, 180, 500), [0.0, 180.0]]
    q_lat = np.r_[q_lat, rng.uniform(-17, -16, 50)]
    q_lon = np.r_[q_lon, rng.choice([-179.999, 179.999], 50)]
    q_lat, q_lon = np.r_[q_lat, [10.0]], np.r_[q_lon, [179.999]]
    xyz = sphere_xyz(q_lat, q_lon)
    expected_distance, expected = tree.query(xyz, k=k, distance_upper_bound=radius_m)
    distance, found = points.query(xyz, k=k, distance_upper_bound=radius_m)
    expected, expected_distance = (
        expected.reshape(len(xyz), k),
        expected_distance.reshape(len(xyz), k),
    )
    assert np.array_equal(found, expected)
    assert np.allclose(distance, expected_distance, equal_nan=True)
    nowhere, none = points.query(sphere_xyz(np.array([np.nan]), np.array([1.0])), 3, radius_m)
    assert np.isinf(nowhere).all()
    assert (none == len(points)).all()


def test_keys_find_their_rows_in_order() -> None:
    index = KeyIndex.build(pa.array(["b", "a", None, "b", "c"]), np.array([10, 11, 12, 13, 14]))
    groups = index.groups(["b", "x", None, "c", "a"])
    runs = [
        index.rows[index.starts[g] : index.starts[g + 1]].tolist() if g >= 0 else None
        for g in groups
    ]
    assert runs == [[10, 13], None, None, [14], [11]]


def test_a_key_hashes_the_same_alone_and_among_others() -> None:
    many = ["a", "osm:node/267901435", "x" * 300, "ä" * 20, "", None]
    alone = [keys.key_hashes([key])[0] for key in many]
    assert keys.key_hashes(many).tolist() == alone
    assert len(set(alone)) == len(many)


def test_keys_sharing_a_hash_are_told_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(keys, "key_hashes", lambda values: np.full(len(list(values)), 7, np.uint64))
    index = KeyIndex.build(pa.array(["b", "a", "c", "a"]), np.arange(4))
    groups = index.groups(["c", "a", "b", "d"])
    assert [index.keys[g].as_py() if g >= 0 else None for g in groups] == ["c", "a", "b", None]
    assert index.rows[index.starts[groups[1]] : index.starts[groups[1] + 1]].tolist() == [1, 3]


@pytest.mark.parametrize("small", [1 << 16, 0])
def test_one_key_hashes_and_is_found_as_among_many(
    monkeypatch: pytest.MonkeyPatch, small: int
) -> None:
    """Both ways of finding one key (a small index's dictionary, a large one's hashes)."""
    monkeypatch.setattr(keys, "SMALL", small)
    many = ["a", "osm:node/267901435", "x" * 300, "ä" * 20, "", "bosnia herzegovina"]
    assert [keys.key_hash(key) for key in many] == keys.key_hashes(many).tolist()
    index = KeyIndex.build(pa.array(["b", "a", "c", "a"]), np.arange(4))
    assert [index.group(k) for k in ["c", "a", "b", "d"]] == index.groups(
        ["c", "a", "b", "d"]
    ).tolist()
    monkeypatch.setattr(keys, "key_hashes", lambda values: np.full(len(list(values)), 7, np.uint64))
    monkeypatch.setattr(keys, "key_hash", lambda value: 7)
    shared = KeyIndex.build(pa.array(["b", "a", "c", "a"]), np.arange(4))
    assert [shared.keys[shared.group(k)].as_py() for k in "cab"] == ["c", "a", "b"]
    assert shared.group("d") == -1


@pytest.mark.parametrize("small", [1 << 16, 0])
def test_a_key_absent_from_an_index_is_ruled_out_by_its_hash(
    monkeypatch: pytest.MonkeyPatch, small: int
) -> None:
    """Both ways of asking (a small index's dictionary of keys, a search in a large one's
    hashes)."""
    monkeypatch.setattr(keys, "SMALL", small)
    present = ["mikonkatu", "helsinki", "x" * 300, "ä" * 20]
    index = KeyIndex.build(pa.array(present), np.arange(len(present)))
    assert all(index.may_hold(key, keys.key_hash(key)) for key in present)
    assert not any(index.may_hold(k, keys.key_hash(k)) for k in ["mikonkatu 18", "", "espoo"])
    assert not KeyIndex.build(pa.array([], pa.string()), np.arange(0)).may_hold("", 0)
