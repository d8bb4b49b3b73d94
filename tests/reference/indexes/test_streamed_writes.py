"""Index files written piece by piece at import hold the bytes of the whole-array writers."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest

from geobatch.reference.indexes import RouteTable, write_array
from geobatch.reference.indexes.files import ArrayWriter
from geobatch.reference.indexes.sphere import SpherePoints, write_sphere_points


def _files(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in folder.rglob("*.npy")}


@pytest.mark.parametrize(
    ("values", "cuts"),
    [
        (np.arange(30.0).reshape(10, 3), [0, 4, 4, 9, 10]),
        (np.arange(7, dtype=np.int64), [0, 7]),
        (np.zeros((0, 3)), [0, 0]),
    ],
)
def test_an_array_written_in_pieces_is_the_array_written_whole(
    values: np.ndarray, cuts: list[int], tmp_path: Path
) -> None:
    with ArrayWriter(tmp_path / "pieces", "a/values", values.dtype, *values.shape[1:]) as out:
        for start, end in itertools.pairwise(cuts):
            out.append(values[start:end])
    write_array(tmp_path / "whole", "a/values", values)
    assert _files(tmp_path / "pieces") == _files(tmp_path / "whole")
    assert np.array_equal(np.load(out.path), values)


def test_the_header_has_room_for_any_row_count(tmp_path: Path) -> None:
    """The header is written before the rows are counted and rewritten in place after."""
    with ArrayWriter(tmp_path, "values", np.float64, 3) as out:
        assert len(out._header_bytes(10**15)) == len(out._header_bytes(0))


def test_pieces_of_another_shape_are_refused(tmp_path: Path) -> None:
    with ArrayWriter(tmp_path, "values", np.float64, 3) as out:
        with pytest.raises(ValueError, match="rows of shape"):
            out.append(np.zeros((2, 2)))
        out.append(np.zeros((2, 3)))
    assert np.load(out.path).shape == (2, 3)


@pytest.mark.parametrize("oneway", [False, True])
def test_a_route_table_written_in_batches_is_the_table_built_whole(
    oneway: bool, tmp_path: Path
) -> None:
    rng = np.random.default_rng(5)
    nodes = 60
    from_node = rng.integers(0, nodes, 150)
    to_node = (from_node + rng.integers(1, 6, 150)) % nodes
    length = rng.uniform(5.0, 80.0, 150)
    direction = rng.integers(-1, 2, 150).astype(np.int8) if oneway else None
    args = (nodes, from_node, to_node, length, 200.0, direction)
    RouteTable.build(*args).save(tmp_path / "whole", "routes")
    RouteTable.write(tmp_path / "batches", "routes", *args, batch_origins=7)
    written = _files(tmp_path / "batches")
    assert written == _files(tmp_path / "whole")
    assert len(written["indexes/routes/keys.npy"]) > 1_000  # routes were found


def test_points_written_a_grid_at_a_time_are_the_points_built_whole(tmp_path: Path) -> None:
    rng = np.random.default_rng(8)
    lat, lon = rng.uniform(47.0, 47.2, 3_000), rng.uniform(8.0, 8.3, 3_000)
    SpherePoints.build(lat, lon, 40.0, 5_000.0).save(tmp_path / "whole", "edges")
    write_sphere_points(tmp_path / "grids", "edges", lat, lon, 40.0, 5_000.0)
    assert _files(tmp_path / "grids") == _files(tmp_path / "whole")
