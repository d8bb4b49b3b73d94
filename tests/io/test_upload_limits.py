"""The upload guard: limits checked on bytes as they arrive, whatever the piece boundaries."""

from __future__ import annotations

import itertools
import json
import re
import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from geobatch.io.inputs import InputError, InputFormat
from geobatch.io.inputs.limits import InputLimits, UploadGuard

LIMITS = InputLimits(
    max_decompressed_bytes=1 << 30,
    max_compression_ratio=200,
    max_line_bytes=40,
    max_field_bytes=12,
    max_nesting_depth=6,
)


def _edges(data: bytes, cuts: list[int]) -> list[int]:
    return sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})


def _feed(data: bytes, cuts: list[int], fmt: InputFormat) -> str | None:
    guard = UploadGuard(LIMITS, fmt)
    try:
        for start, end in itertools.pairwise(_edges(data, cuts)):
            guard.feed(data[start:end])
    except InputError as exc:
        return exc.code
    return None


def _expected_csv(data: bytes, cuts: list[int]) -> str | None:
    """The first limit the text read so far breaks, piece by piece; in one piece a long line
    is reported before a long field."""
    for end in _edges(data, cuts)[1:]:
        lines = re.split(rb"[\r\n]", data[:end])
        if max(len(line) for line in lines) > LIMITS.max_line_bytes:
            return "line_too_long"
        fields = (f for line in lines for f in re.split(rb"[,;\t|]", line))
        if max(len(f) for f in fields) > LIMITS.max_field_bytes:
            return "field_too_large"
    return None


@given(
    st.lists(st.sampled_from([b"a", b"bb", b",", b"\n", b"\r\n", b"x" * 9, b";"]), max_size=60),
    st.lists(st.integers(min_value=0, max_value=1000), max_size=8),
)
def test_csv_lengths_match_a_plain_split_whatever_the_pieces(
    pieces: list[bytes], cuts: list[int]
) -> None:
    data = b"".join(pieces) or b"a"
    assert _feed(data, cuts, InputFormat.CSV) == _expected_csv(data, cuts)


@given(
    st.recursive(
        st.one_of(st.text(alphabet='ab[]{}"\\', max_size=6), st.integers()),
        lambda inner: st.one_of(
            st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=3), inner, max_size=3)
        ),
        max_leaves=12,
    ),
    st.lists(st.integers(min_value=0, max_value=500), max_size=6),
)
def test_json_depth_ignores_brackets_in_strings(value: object, cuts: list[int]) -> None:
    def depth(item: object) -> int:
        if isinstance(item, list):
            return 1 + max((depth(v) for v in item), default=0)
        if isinstance(item, dict):
            return 1 + max((depth(v) for v in item.values()), default=0)
        return 0

    data = json.dumps(value).encode()
    expected = "too_deeply_nested" if depth(value) > LIMITS.max_nesting_depth else None
    assert _feed(data, cuts, InputFormat.GEOJSON) == expected


def test_gzip_is_inflated_in_bounded_pieces_across_members() -> None:
    member = zlib.compressobj(9, zlib.DEFLATED, 31)
    text = b"id,x\n" + b"1,2\n" * 1000
    packed = member.compress(text) + member.flush()
    guard = UploadGuard(LIMITS, InputFormat.CSV)
    for _ in range(3):  # three gzip members back to back
        for i in range(0, len(packed), 7):
            guard.feed(packed[i : i + 7])
    tight = InputLimits(**{**LIMITS.__dict__, "max_decompressed_bytes": 2 * len(text)})
    guard = UploadGuard(tight, InputFormat.CSV)
    guard.feed(packed)
    with pytest.raises(InputError, match="decompresses to more than"):
        guard.feed(packed * 2)


def test_a_highly_compressed_input_is_refused_by_ratio() -> None:
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(1 << 20)
    guard = UploadGuard(LIMITS, InputFormat.PARQUET)
    bomb = b"".join(packer.compress(block) for _ in range(64))
    with pytest.raises(InputError) as refused:
        guard.feed(bomb)
    assert refused.value.code == "compression_ratio_too_high"
