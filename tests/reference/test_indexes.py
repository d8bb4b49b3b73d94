"""Index files of a release: built at import, identical on rebuild, refused when damaged."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geobatch.engines.roadmatch.network import RoadNetwork, network_for
from geobatch.reference import Release, ReleaseError, ReleaseStore, import_osm
from geobatch.reference.indexes import GridIndex, RouteTable


def _copy(release: Release, root: Path) -> ReleaseStore:
    """A store holding a copy of ``release`` (new inodes, so nothing is known verified)."""
    shutil.copytree(release.path, root / release.manifest.id)
    return ReleaseStore(root)


def test_every_file_is_in_the_manifest_with_its_checksum(andorra: Release) -> None:
    files = andorra.manifest.files
    on_disk = {
        p.relative_to(andorra.path).as_posix()
        for p in andorra.path.rglob("*")
        if p.is_file() and p.name != "manifest.json"
    }
    assert set(files) == on_disk
    assert "indexes/roads/routes/keys.npy" in files
    assert andorra.manifest.size_bytes == sum(e.size_bytes for e in files.values())


def test_a_release_built_twice_has_byte_identical_files(andorra: Release, tmp_path: Path) -> None:
    again = import_osm(
        Path(andorra.manifest.sources[0].path), ReleaseStore(tmp_path), gazetteer=False
    )
    assert again.files == andorra.manifest.files


def test_a_truncated_index_file_is_refused(andorra: Release, tmp_path: Path) -> None:
    store = _copy(andorra, tmp_path)
    victim = tmp_path / andorra.manifest.id / "indexes/roads/piece_x0.npy"
    with open(victim, "r+b") as handle:
        handle.truncate(victim.stat().st_size - 8)
    with pytest.raises(ReleaseError, match=r"piece_x0\.npy has \d+ bytes but the manifest says"):
        store.load(andorra.manifest.id)


def test_a_tampered_index_file_is_refused_even_after_a_good_load(
    andorra: Release, tmp_path: Path
) -> None:
    store = _copy(andorra, tmp_path)
    store.load(andorra.manifest.id)  # verified, and remembered as verified
    victim = tmp_path / andorra.manifest.id / "indexes/roads/routes/dist.npy"
    data = bytearray(victim.read_bytes())
    data[-3] ^= 0xFF  # same size, other bytes
    victim.write_bytes(bytes(data))
    with pytest.raises(ReleaseError, match=r"routes/dist\.npy does not match its checksum"):
        store.load(andorra.manifest.id)


def test_a_missing_index_file_is_refused(andorra: Release, tmp_path: Path) -> None:
    store = _copy(andorra, tmp_path)
    os.remove(tmp_path / andorra.manifest.id / "indexes/roads/piece_grid/keys.npy")
    with pytest.raises(ReleaseError, match=r"piece_grid/keys\.npy is missing"):
        store.load(andorra.manifest.id)


def test_the_network_is_mapped_not_built(andorra: Release) -> None:
    network = network_for(andorra)
    for array in (network.piece_x0, network.routes.keys, network.arrays.pieces.items):
        assert isinstance(array.base, np.memmap)
    rebuilt = RoadNetwork.from_tables(andorra.table("segments"), andorra.table("connectors"))
    assert np.array_equal(rebuilt.routes.keys, network.routes.keys)
    assert np.array_equal(rebuilt.piece_offset, network.piece_offset)


def test_route_tables_do_not_depend_on_the_batch_size(andorra: Release) -> None:
    network = network_for(andorra)
    args = (len(network.node_x), network.from_node, network.to_node, network.length_m, 200.0)
    small = RouteTable.build(*args, batch_origins=7)
    assert np.array_equal(small.keys, network.routes.keys)
    assert np.array_equal(small.dist, network.routes.dist)
    assert np.array_equal(small.last_segment, network.routes.last_segment)


boxes = st.lists(
    st.tuples(st.floats(-500, 500), st.floats(-500, 500), st.floats(0, 300), st.floats(0, 300)),
    min_size=1,
    max_size=40,
)


@settings(max_examples=60, deadline=None)
@given(items=boxes, queries=boxes, cell=st.sampled_from([7.0, 50.0, 400.0]))
def test_grid_finds_every_box_that_meets_the_query(
    items: list[tuple[float, float, float, float]],
    queries: list[tuple[float, float, float, float]],
    cell: float,
) -> None:
    ix, iy, iw, ih = (np.array(v) for v in zip(*items, strict=True))
    qx, qy, qw, qh = (np.array(v) for v in zip(*queries, strict=True))
    grid = GridIndex.build(cell, ix, iy, ix + iw, iy + ih)
    query, item = grid.query(qx, qy, qx + qw, qy + qh)
    found = set(zip(query.tolist(), item.tolist(), strict=True))
    assert len(found) == len(query)  # each pair once
    meets = {
        (q, i)
        for q in range(len(qx))
        for i in range(len(ix))
        if ix[i] <= qx[q] + qw[q] and qx[q] <= ix[i] + iw[i]
        and iy[i] <= qy[q] + qh[q] and qy[q] <= iy[i] + ih[i]
    }  # fmt: skip
    assert meets <= found


Box = tuple[float, float, float, float]


def _grid_and_shifted_boxes(
    items: list[Box], queries: list[Box], shifts: list[float], cell: float
) -> tuple[GridIndex, tuple[np.ndarray, ...], tuple[np.ndarray, ...]]:
    """A grid of the items, the items and each query box again moved a little in x: often
    over the same cells, as a road's samples are (as x, y, width, height arrays)."""
    ix, iy, iw, ih = (np.array(v) for v in zip(*items, strict=True))
    qx, qy, qw, qh = (np.array(v) for v in zip(*queries, strict=True))
    qx = np.concatenate([qx + shift for shift in [0.0, *shifts]])
    qy, qw, qh = (np.tile(v, len(shifts) + 1) for v in (qy, qw, qh))
    grid = GridIndex.build(cell, ix, iy, ix + iw, iy + ih)
    return grid, (ix, iy, iw, ih), (qx, qy, qw, qh)


@settings(max_examples=60, deadline=None)
@given(
    items=boxes,
    queries=boxes,
    shifts=st.lists(st.floats(-20, 20), min_size=1, max_size=5),
    cell=st.sampled_from([7.0, 50.0, 400.0]),
)
def test_grid_shared_query_answers_as_the_plain_one(
    items: list[tuple[float, float, float, float]],
    queries: list[tuple[float, float, float, float]],
    shifts: list[float],
    cell: float,
) -> None:
    grid, _, (qx, qy, qw, qh) = _grid_and_shifted_boxes(items, queries, shifts, cell)
    plain = grid.query(qx, qy, qx + qw, qy + qh)
    shared = grid.query_shared(qx, qy, qx + qw, qy + qh)
    assert all(np.array_equal(a, b) for a, b in zip(plain, shared, strict=True))


@settings(max_examples=60, deadline=None)
@given(
    items=boxes,
    queries=boxes,
    shifts=st.lists(st.floats(-20, 20), min_size=1, max_size=5),
    cell=st.sampled_from([7.0, 50.0, 400.0]),
)
def test_grid_shared_query_leaves_out_only_items_clear_of_every_box_of_a_range(
    items: list[tuple[float, float, float, float]],
    queries: list[tuple[float, float, float, float]],
    shifts: list[float],
    cell: float,
) -> None:
    grid, (ix, iy, iw, ih), (qx, qy, qw, qh) = _grid_and_shifted_boxes(items, queries, shifts, cell)
    query, item = grid.query_shared(
        qx,
        qy,
        qx + qw,
        qy + qh,
        item_bounds=lambda k: (ix[k], iy[k], ix[k] + iw[k], iy[k] + ih[k]),
    )
    found = set(zip(query.tolist(), item.tolist(), strict=True))
    plain_query, plain_item = grid.query(qx, qy, qx + qw, qy + qh)
    assert found <= set(zip(plain_query.tolist(), plain_item.tolist(), strict=True))
    assert np.all(np.diff(query * len(ix) + item) > 0)  # sorted, each pair once
    meets = {
        (q, i)
        for q in range(len(qx))
        for i in range(len(ix))
        if ix[i] <= qx[q] + qw[q] and qx[q] <= ix[i] + iw[i]
        and iy[i] <= qy[q] + qh[q] and qy[q] <= iy[i] + ih[i]
    }  # fmt: skip
    assert meets <= found
