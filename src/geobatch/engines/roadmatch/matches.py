"""Road matches in columns: one array per field of the roads and of their matched stretches.

The engine answers thousands of roads per batch, each with a few stretches; building a
Python object per stretch cost as much as decoding the paths. ``Matches`` holds the same
answer as arrays, which the result tables are assembled from directly; ``roads()`` gives
the per-road objects for callers that want them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, cast

import numpy as np

if TYPE_CHECKING:
    from geobatch.engines.roadmatch.match import RoadMatch, Status

STATUSES: Final = ("full", "partial", "unmatched")
FULL, PARTIAL, UNMATCHED = 0, 1, 2
_ROAD_FIELDS: Final = frozenset({"status", "confidence", "matched_ratio", "length_m"})


@dataclass(frozen=True, kw_only=True)
class Matches:
    """Roads ``i`` has stretches ``offsets[i]:offsets[i + 1]`` (stretches in road order).

    Per road: ``status`` (codes into ``STATUSES``), ``confidence`` (0-100), ``matched_ratio``
    and ``length_m`` (the input road's). Per stretch: the fields of ``SegmentMatch``, ids as
    object arrays of str, ``geometry`` None where it was not asked for.
    """

    status: np.ndarray
    confidence: np.ndarray
    matched_ratio: np.ndarray
    length_m: np.ndarray
    offsets: np.ndarray
    segment_id: np.ndarray
    source_id: np.ndarray
    from_fraction: np.ndarray
    to_fraction: np.ndarray
    input_from_m: np.ndarray
    input_to_m: np.ndarray
    segment_length_m: np.ndarray
    segment_confidence: np.ndarray
    geometry: np.ndarray

    def __len__(self) -> int:
        return len(self.status)

    @property
    def counts(self) -> np.ndarray:
        """Stretches per road."""
        return np.diff(self.offsets)

    @property
    def road_of_stretch(self) -> np.ndarray:
        return np.repeat(np.arange(len(self)), self.counts)

    def status_names(self) -> np.ndarray:
        return np.take(np.asarray(STATUSES, dtype=object), self.status)

    def roads(self) -> list[RoadMatch]:
        """One ``RoadMatch`` per road, for callers reading the answer road by road."""
        from geobatch.engines.roadmatch.match import RoadMatch, SegmentMatch

        stretches = [
            SegmentMatch(
                segment_id=segment_id,
                source_id=source_id,
                from_fraction=lo,
                to_fraction=hi,
                input_from_m=input_lo,
                input_to_m=input_hi,
                length_m=metres,
                confidence=confidence,
                geometry=shape,
            )
            for segment_id, source_id, lo, hi, input_lo, input_hi, metres, confidence, shape in zip(
                self.segment_id.tolist(),
                self.source_id.tolist(),
                self.from_fraction.tolist(),
                self.to_fraction.tolist(),
                self.input_from_m.tolist(),
                self.input_to_m.tolist(),
                self.segment_length_m.tolist(),
                self.segment_confidence.tolist(),
                self.geometry.tolist(),
                strict=True,
            )
        ]
        bounds = self.offsets.tolist()
        return [
            RoadMatch(
                status=cast("Status", status),
                confidence=confidence,
                matched_ratio=ratio,
                length_m=length,
                segments=tuple(stretches[begin:end]),
            )
            for status, confidence, ratio, length, begin, end in zip(
                self.status_names().tolist(),
                self.confidence.tolist(),
                self.matched_ratio.tolist(),
                self.length_m.tolist(),
                bounds[:-1],
                bounds[1:],
                strict=True,
            )
        ]

    def take(self, roads: np.ndarray) -> Matches:
        """The answers of ``roads`` (indices), in that order, with their stretches."""
        roads = np.asarray(roads, dtype=np.int64)
        counts = self.counts[roads]
        offsets = np.zeros(len(roads) + 1, dtype=np.int64)
        np.cumsum(counts, out=offsets[1:])
        stretch = np.repeat(self.offsets[roads] - offsets[:-1], counts) + np.arange(offsets[-1])
        columns = {
            name: getattr(self, name)[roads if name in _ROAD_FIELDS else stretch]
            for name in self.__dataclass_fields__
            if name != "offsets"
        }
        return Matches(offsets=offsets, **columns)

    @classmethod
    def from_roads(cls, roads: Sequence[RoadMatch]) -> Matches:
        """The columns of per-road objects (the inverse of ``roads()``)."""
        flat = [segment for road in roads for segment in road.segments]
        counts = np.fromiter((len(road.segments) for road in roads), np.int64, len(roads))
        geometry = np.empty(len(flat), dtype=object)
        geometry[:] = [s.geometry for s in flat]
        return cls(
            status=np.fromiter(
                (STATUSES.index(road.status) for road in roads), np.int8, len(roads)
            ),
            confidence=_floats([road.confidence for road in roads]),
            matched_ratio=_floats([road.matched_ratio for road in roads]),
            length_m=_floats([road.length_m for road in roads]),
            offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
            segment_id=_objects([s.segment_id for s in flat]),
            source_id=_objects([s.source_id for s in flat]),
            from_fraction=_floats([s.from_fraction for s in flat]),
            to_fraction=_floats([s.to_fraction for s in flat]),
            input_from_m=_floats([s.input_from_m for s in flat]),
            input_to_m=_floats([s.input_to_m for s in flat]),
            segment_length_m=_floats([s.length_m for s in flat]),
            segment_confidence=_floats([s.confidence for s in flat]),
            geometry=geometry,
        )

    @classmethod
    def concat(cls, parts: Sequence[Matches]) -> Matches:
        """The roads of ``parts``, one after another."""
        if len(parts) == 1:
            return parts[0]
        if not parts:
            return cls.from_roads([])
        shift = np.cumsum([0, *(int(p.offsets[-1]) for p in parts[:-1])])
        offsets = [parts[0].offsets[:1]] + [
            p.offsets[1:] + s for p, s in zip(parts, shift.tolist(), strict=True)
        ]
        columns = {
            name: np.concatenate([getattr(p, name) for p in parts])
            for name in cls.__dataclass_fields__
            if name != "offsets"
        }
        return cls(offsets=np.concatenate(offsets), **columns)


def _floats(values: list[float]) -> np.ndarray:
    return np.asarray(values, dtype=np.float64).reshape(len(values))


def _objects(values: list[str]) -> np.ndarray:
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out
