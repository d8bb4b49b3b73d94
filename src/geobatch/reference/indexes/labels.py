"""How reference rows are labelled: trimmed text, joined parts and house-number labels.

Shared by the index builders (which label every row once, at import) and the engines (which
label what they compute per query, such as interpolated house numbers).
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

NUMBER_FIRST = frozenset({"US", "CA", "GB", "IE", "AU", "NZ", "FR", "MC", "LU", "BE", "ZA"})
"""Countries that write the house number before the street name."""


def flat(values: pa.Array | pa.ChunkedArray) -> pa.Array:
    """One contiguous array: element-wise kernels over several chunked arrays need the same
    chunk layout in all of them, which columns of different tables do not have."""
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def text(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """Trimmed strings, null where blank."""
    trimmed = pc.utf8_trim_whitespace(flat(column))
    return pc.if_else(pc.equal(trimmed, ""), pa.scalar(None, pa.string()), trimmed)


def join(*parts: pa.Array | pa.ChunkedArray, separator: str = ", ") -> pa.Array:
    """The non-null parts joined, element-wise; null where all are null.

    (``binary_join_element_wise`` with ``null_handling="skip"`` drops the rows where every
    part is null, so the skipping is done here.)
    """
    result = flat(parts[0])
    for part in parts[1:]:
        part = flat(part)
        both = pc.binary_join_element_wise(result, part, separator)
        result = pc.coalesce(both, result, part)
    return result


def house_label(
    street: pa.Array | pa.ChunkedArray,
    number: pa.Array | pa.ChunkedArray,
    country: pa.Array | pa.ChunkedArray,
) -> pa.ChunkedArray:
    """``Mannerheimintie 12`` or ``12 Rue Grimaldi``, as the country writes it."""
    street, number, country = flat(street), flat(number), flat(country)
    first = pc.fill_null(pc.is_in(country, pa.array(sorted(NUMBER_FIRST))), False)
    return pc.if_else(
        first, join(number, street, separator=" "), join(street, number, separator=" ")
    )
