"""A results folder's tables as Arrow and back (`to_arrow`, `from_arrow`: the shape of its
columnar index, `results.index`), and many folders' Arrow tables made one pandas table in one
conversion, exactly the table that converting each folder's table
(`from_arrow`) and concatenating them with pandas gives: columns in the order they first
appear, each of the dtype and values pandas gives it, `results_dir` each row's folder.

A column of one Arrow type in every folder that has it (numbers, text, true/false, JSON text) is
concatenated as Arrow (no copy), converted once, and its JSON decoded once for all folders (each
distinct text once: an env or a config list is one object wherever it recurs); where that type
could convert otherwise by folder (true/false, or no value at all, missing in some folders;
another type elsewhere), the column is converted folder by folder and concatenated by pandas."""

from __future__ import annotations

import contextlib
import gc
from typing import TYPE_CHECKING, Any

import msgspec

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

JSON_COLUMNS = b"actbench.json"
"""The key of an index table's schema metadata naming its JSON text columns."""
_BATCH = 1 << 14
"""JSON texts decoded in one call."""


def to_arrow(df: "pd.DataFrame") -> "pa.Table":
    """A table as Arrow: numbers, text and true/false as they are, any other column (objects,
    lists, mixed types, or values and nulls) as JSON text, named in the schema's metadata."""
    import numpy as np
    import pyarrow as pa

    arrays, names, as_json = [], [], []
    for name in df.columns:
        col = df[name]
        kinds = set(map(type, col)) if col.dtype == object else set()
        if col.dtype == object and not (kinds <= {str} or kinds <= {bool} or kinds == {type(None)}):
            values = col.to_numpy(dtype=object)  # each object encoded once (a trial's rows share its config's lists), by id: all held here
            _, first, inverse = np.unique(np.fromiter(map(id, values), np.uint64, len(values)), return_index=True, return_inverse=True)
            texts = pa.array([None if isinstance(v, float) and v != v else msgspec.json.encode(v).decode() for v in values[first]],
                             pa.string())  # a missing value (NaN) is null, a JSON null the text "null"
            arrays.append(texts.take(pa.array(inverse.ravel())))
            as_json.append(name)
        else:
            arrays.append(pa.array(col, from_pandas=True))
        names.append(name)
    return pa.table(arrays, names=names, metadata={JSON_COLUMNS: msgspec.json.encode(as_json)})


@contextlib.contextmanager
def _collector_paused() -> Any:
    """The cyclic garbage collector off meanwhile: decoding many JSON objects (which hold no cycles)
    would start it again and again, each time walking every object held (~0.5 s of 100,000 configs)."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def from_arrow(table: "pa.Table") -> "pd.DataFrame":
    """`to_arrow` undone (one folder's table, as its index serves it): each JSON column decoded as
    `joined` decodes it, each distinct text once (rows share their trial's config lists, as when
    read from the JSON)."""
    import pandas as pd

    if not table.num_columns:
        return pd.DataFrame()
    as_json = json_columns(table)
    df = table.drop_columns([c for c in table.column_names if c in as_json]).to_pandas()
    for at, name in enumerate(table.column_names):  # in place, in order: no copy of the other columns to reorder them
        if name in as_json:
            df.insert(at, name, _decoded(_encoded(table.column(name))))
    return df


def json_columns(table: "pa.Table") -> set[str]:
    """The columns of `table` that hold JSON text (named in its schema's metadata)."""
    return set(msgspec.json.decode((table.schema.metadata or {}).get(JSON_COLUMNS, b"[]")))


def _encoded(column: "pa.ChunkedArray") -> "pa.ChunkedArray":
    """A column of JSON texts as each distinct text and where it recurs (one dictionary for all
    chunks; made whole first, ~5x faster, unless that could pass Arrow's 2 GiB of text an array)."""
    import pyarrow as pa

    if column.nbytes < 2**30:
        return pa.chunked_array([column.combine_chunks().dictionary_encode()])
    return column.dictionary_encode().unify_dictionaries()


def _decoded(coded: "pa.ChunkedArray") -> "pd.Series":
    """A column of JSON texts (`_encoded`) decoded (objects), each distinct text once; a null is NaN."""
    import numpy as np
    import pandas as pd

    texts = coded.chunks[0].dictionary if coded.num_chunks else []
    decoded: list[Any] = []
    with _collector_paused():
        for start in range(0, len(texts), _BATCH):  # a batch at a time: no copy of all the texts at once
            decoded += msgspec.json.decode("[" + ",".join(texts[start:start + _BATCH].to_pylist()) + "]")
    values = np.fromiter([*decoded, np.nan], dtype=object, count=len(decoded) + 1)  # the last: a null's
    at = [chunk.indices.fill_null(len(decoded)).to_numpy() for chunk in coded.chunks]
    return pd.Series(values[np.concatenate(at) if at else np.zeros(0, np.int64)], dtype=object)


def joined(pieces: "list[tuple[pa.Table, str]]") -> "pd.DataFrame":
    """The Arrow tables of `pieces` (each with the folder it came from) as one pandas table, exactly
    as `pd.concat` of each one's `from_arrow` with `results_dir` set to its folder gives it
    (an empty table, no rows or no columns, left out as there). `pieces` is emptied: each column's
    Arrow memory is freed once converted (held elsewhere, it is kept)."""
    import numpy as np
    import pandas as pd
    import pyarrow as pa

    given, pieces = pieces, [(t, d) for t, d in pieces if t.num_rows and t.num_columns]
    given.clear()
    if not pieces:
        return pd.DataFrame()
    tables = [t for t, _ in pieces]
    as_json = [json_columns(t) for t in tables]
    names = [set(t.column_names) for t in tables]
    order = list(dict.fromkeys(name for t in tables for name in t.column_names))
    plain, coded, apart = [], [], []  # Arrow-concatenated and converted once, decoded once, converted by folder
    for name in order:
        if name == "results_dir":
            plain.append(name)
            continue
        kinds = {(t.schema.field(name).type, name in js) for t, js, has in zip(tables, as_json, names) if name in has}
        everywhere = all(name in has for has in names)
        kind, is_json = next(iter(kinds))
        if len(kinds) > 1 or not (everywhere or is_json or kind in (pa.float64(), pa.int64(), pa.large_string())):
            apart.append(name)  # e.g. true/false missing somewhere: pandas makes it objects with NaN, Arrow would give None
        else:
            (coded if is_json else plain).append(name)

    def chunks(name: str) -> "pa.ChunkedArray":
        """The column `name` of every table, one after another (nulls where a table lacks it)."""
        if name == "results_dir":
            at = np.repeat(np.arange(len(pieces)), [t.num_rows for t in tables])
            return pa.chunked_array([pa.array([d for _, d in pieces], pa.large_string()).take(pa.array(at))])
        kind = next(t.schema.field(name).type for t, has in zip(tables, names) if name in has)
        return pa.chunked_array([chunk for t, has in zip(tables, names)
                                 for chunk in (t.column(name).chunks if name in has else [pa.nulls(t.num_rows, kind)])], kind)

    by_folder = pd.concat([pd.DataFrame({name: _decoded(_encoded(t.column(name))) if name in js else t.column(name).to_pandas()
                                         for name in apart if name in has}, index=pd.RangeIndex(t.num_rows))
                           for t, js, has in zip(tables, as_json, names)], ignore_index=True) if apart else None
    length, texts, table = sum(map(len, tables)), {name: chunks(name) for name in coded}, pa.table({name: chunks(name) for name in plain})
    pieces.clear()  # the columns above hold what is left of them: each freed once converted (a lower peak)
    tables.clear()
    df = table.to_pandas(self_destruct=True) if plain else pd.DataFrame(index=pd.RangeIndex(length))
    del table
    pa.default_memory_pool().release_unused()  # what Arrow freed handed back before more is taken (~100 MB at 100,000 records)
    encoded = {name: _encoded(texts.pop(name)) for name in coded}  # an env's text, on every trial, one text now
    pa.default_memory_pool().release_unused()
    for at, name in enumerate(order):  # in place, in order
        if name in encoded:
            df.insert(at, name, _decoded(encoded.pop(name)))
        elif by_folder is not None and name in by_folder.columns:
            df.insert(at, name, by_folder[name])
    return df
