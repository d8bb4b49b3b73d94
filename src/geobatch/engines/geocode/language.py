"""Results in the language a record asks for, where the release has the names.

A job's ``lang`` option, or a record's own ``lang`` column, names a language as a BCP 47 tag
(``sv``, ``sv-FI``, ``zh-Hans``): the whole tag is looked up first, then its primary subtag,
which is what most ``name:xx`` tags use. ``street``, ``city``, ``district`` and ``county`` are
replaced by their names in that language from the release's names index, and so is a
``label`` that is a place's or POI's own name; a longer label gets the same names where it spells
them. What the release has no name for in the language stays as it is, and ``state`` (from
GeoNames, in English) and ``country`` (an ISO code) are never translated.
"""

from __future__ import annotations

import re

import pyarrow as pa

from geobatch.engines.geocode.cache import cached
from geobatch.engines.result import EngineResult
from geobatch.engines.validate import _column
from geobatch.reference import Release
from geobatch.reference.indexes.names import NameTranslations

LANGUAGE_PATTERN = r"^[A-Za-z]{2,3}([-_][A-Za-z0-9]{2,8})*$"
"""What a ``lang`` value may look like (a BCP 47 tag, or its POSIX spelling ``sv_FI``)."""
TRANSLATED = {"street": "street", "city": "area", "district": "area", "county": "area"}
"""Result columns given in the requested language, and what kind of name each holds."""


def names_index(release: Release) -> NameTranslations:
    """The release's translations, mapped from its files (opened once per process)."""
    return cached("names", release, lambda r: NameTranslations.open(r.path))


def _tags(tag: str) -> list[str]:
    """The tags to look a name up under, most specific first."""
    tag = tag.strip()
    primary = tag.split("-")[0].split("_")[0].lower()
    return list(dict.fromkeys([tag, primary])) if tag else []


def translate(
    index: NameTranslations, role: str, languages: list[str | None], names: list[str | None]
) -> list[str | None]:
    """Each name of ``role`` in its row's language; None where there is no language or no
    such name."""
    result: list[str | None] = [None] * len(names)
    pending = [i for i, language in enumerate(languages) if language and names[i] is not None]
    tags = {i: _tags(languages[i] or "") for i in pending}
    for depth in range(2):
        asked = [(i, tags[i][depth]) for i in pending if len(tags[i]) > depth]
        if not asked:
            break
        found = index.translate(role, [tag for _, tag in asked], [names[i] for i, _ in asked])
        for (i, _), value in zip(asked, found, strict=True):
            result[i] = value
        pending = [i for i in pending if result[i] is None]
    return result


def _spelled(label: str, names: list[tuple[str, str]]) -> str:
    """``label`` with each name (as a whole word) replaced by its translation."""
    for original, translated in names:
        label = re.sub(rf"(?<!\w){re.escape(original)}(?!\w)", translated, label)
    return label


def localize(results: pa.Table, languages: list[str | None], release: Release) -> pa.Table:
    """``results`` with names in the language of each row (``languages``, one per row)."""
    if not any(languages):
        return results
    index = names_index(release)
    names = results.schema.names
    labels = results.column("label").to_pylist()
    replaced: list[list[tuple[str, str]]] = [[] for _ in labels]
    for column, role in TRANSLATED.items():
        values = results.column(column).to_pylist()
        translated = translate(index, role, languages, values)
        for row, (value, new) in enumerate(zip(values, translated, strict=True)):
            if new is not None and value is not None:
                replaced[row].append((value, new))
        merged = [old if new is None else new for old, new in zip(values, translated, strict=True)]
        results = results.set_column(names.index(column), column, pa.array(merged, pa.string()))
    area = translate(index, "area", languages, labels)
    poi = translate(index, "poi", languages, labels)
    is_poi = [level == "poi" for level in results.column("match_level").to_pylist()]
    whole = [
        (p if p is not None else a) if own_poi else (a if a is not None else p)
        for a, p, own_poi in zip(area, poi, is_poi, strict=True)
    ]
    label = [
        own if own is not None else _spelled(text, replaced[row]) if text else text
        for row, (text, own) in enumerate(zip(labels, whole, strict=True))
    ]
    return results.set_column(names.index("label"), "label", pa.array(label, pa.string()))


def localized(
    result: EngineResult, records: pa.Table, lang: str | None, release: Release
) -> EngineResult:
    """An engine's result in the language the job (``lang``) or each record asks for."""
    own = _column(records, "lang")
    if own is None and not lang:
        return result
    asked = own.cast(pa.string()).to_pylist() if own is not None else [None] * records.num_rows
    by_ordinal = dict(zip(records.column("_ordinal").to_pylist(), asked, strict=True))
    languages = [
        (by_ordinal.get(ordinal) or "").strip() or lang
        for ordinal in result.results.column("_ordinal").to_pylist()
    ]
    return EngineResult(results=localize(result.results, languages, release), errors=result.errors)
