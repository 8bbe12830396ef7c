"""Results as pandas tables: one flat row per trial record, the long-format measurement rows of
the kinds that write them, and the per-step series of every trial."""

from __future__ import annotations

import contextlib
import os
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from actbench.core.record import Record
from actbench.results import gate
from actbench.results.columnar import joined
from actbench.results.index import Columns, _flat, folder_arrow, folder_frames, only_columns, row_context
from actbench.results.read import RECORDS, Scan, latest_records, result_dirs, series_data

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa

SMALL_FOLDER = 64 * 1024
"""A trials.jsonl of at most this many bytes is read record by record, with the other small ones in
one batch, not through its columnar index, where a tree holds more than `MANY_FOLDERS`: an index
costs ~10-20 ms a folder (index.json, HMAC, Parquet), parsing a small file far less."""
MANY_FOLDERS = 32


def _latest(every: "pd.DataFrame", rows: "pd.DataFrame", folder: "str | np.ndarray", latest_only: bool,
            ids: "np.ndarray | None" = None) -> tuple["pd.DataFrame", "pd.DataFrame"]:
    """Tables (`index.folder_frames`) as `load_tables` gives them: the last attempt of each trial
    in the order the trials first appear (or every attempt), and the rows of those that are ok, in
    that order; `results_dir` set to `folder` (or each record's, an array). A trial is its `ids`
    value (one per record; its trial id by default)."""
    import numpy as np
    import pandas as pd

    if every.empty:
        return every, rows
    trials_at, rows_at = _kept(pd.factorize(every["trial_id"].to_numpy() if ids is None else ids, use_na_sentinel=False)[0],
                               None if rows.empty else rows["_record"].to_numpy(), latest_only)
    if not rows.empty:
        record = rows["_record"].to_numpy()
        if rows_at is None:  # every row kept, in order (one attempt each): no copy to reorder
            rows = rows.drop(columns="_record")
        else:
            rows, record = rows.take(rows_at).drop(columns="_record").reset_index(drop=True), record[rows_at]
        rows["results_dir"] = folder if isinstance(folder, str) else pd.Series(folder[record].tolist())
    if isinstance(folder, np.ndarray):
        every["results_dir"] = pd.Series(folder.tolist())
    trials = (every if trials_at is None else every.take(trials_at)).reset_index(drop=True)
    if isinstance(folder, str):
        trials["results_dir"] = folder
    return trials, rows


def _kept(trial: "np.ndarray", record: "np.ndarray | None", latest_only: bool) -> tuple["np.ndarray | None", "np.ndarray | None"]:
    """What `_latest` keeps of a folder's tables: the places of its records (the last attempt of
    each trial, `trial` numbering each record's trial in the order the trials first appear; None:
    every record, in order) and of its rows (`record`: the place of each one's record; those of the
    kept records, in their order; None: every row, in order)."""
    import numpy as np

    keep = np.zeros(trial.max() + 1 if len(trial) else 0, np.int64)
    np.maximum.at(keep, trial, np.arange(len(trial)))  # each trial's last record
    rows_at = None
    if record is not None:
        rank = np.full(len(trial), -1)
        rank[keep] = np.arange(len(keep))
        of_row = rank[record]
        if not ((of_row >= 0).all() and (np.diff(of_row) >= 0).all()):
            rows_at = np.flatnonzero(of_row >= 0)
            rows_at = rows_at[np.argsort(of_row[rows_at], kind="stable")]
    everyone = len(keep) == len(trial) and (np.diff(keep) > 0).all()
    return (None if everyone or not latest_only else keep), rows_at


def _latest_arrow(every: "pa.Table", rows: "pa.Table", latest_only: bool, columns: Columns | None) -> tuple["pa.Table", "pa.Table"]:
    """`_latest` of a folder's Arrow tables (`index.folder_arrow`), `results_dir` left for
    `columnar.joined` to fill, and only the `columns` asked for."""
    if not every.num_rows or not every.num_columns:
        return every.slice(0, 0), rows.slice(0, 0)
    has_rows = rows.num_rows and rows.num_columns
    trials_at, rows_at = _kept(every.column("trial_id").combine_chunks().dictionary_encode().indices.to_numpy(),  # numbered as they first appear
                               rows.column("_record").to_numpy() if has_rows else None, latest_only)
    if has_rows:
        rows = (rows if rows_at is None else rows.take(rows_at)).drop_columns(["_record"])
    every = every if trials_at is None else every.take(trials_at)
    if columns is not None:
        every, rows = (t.select([c for c in t.column_names if c in names]) for t, names in zip((every, rows), map(set, columns)))
    return every, rows


def _small_records(folder: Path) -> list[Record] | None:
    """The records of a small `folder/trials.jsonl` (at most `SMALL_FOLDER` bytes), read through the
    results gate as its index reads it when it cannot be believed (with the same warning of lines
    set aside); None when the file is larger."""
    f = gate.open_file(folder, RECORDS)
    if f is None:
        return []
    with f:
        if os.fstat(f.fileno()).st_size > SMALL_FOLDER:
            return None
        scan = Scan(f)
        records = list(scan)
    if message := scan.warning(folder / RECORDS):
        warnings.warn(message, gate.ResultsWarning, stacklevel=3)
    return records


def _row_columns(small: list[tuple[Path, list[Record]]]) -> list[str]:
    """The columns of the rows of the small folders' records, in the order that joining each
    folder's `folder_frames` gives them: its trials' context first (but where a row has the same
    field), then its rows' fields, then `_record`."""
    order: dict[str, None] = {}
    for _, records in small:
        shared: dict[str, None] = dict.fromkeys(("trial_id", "suite", "kind", "run_id", "gpu_name"))
        measured: dict[str, None] = {}
        for r in records:
            if r.ok and r.rows:
                shared.update(dict.fromkeys(r.config))
                for row in r.rows:
                    measured.update(dict.fromkeys(row))
        if measured:
            shared["results_dir"] = None
            order.update(dict.fromkeys([*(c for c in shared if c not in measured), *measured, "_record"]))
    return list(order)


def _typed_as_each_folder(df: "pd.DataFrame", place: "np.ndarray", raw: list[dict[str, Any]], folders: int) -> "pd.DataFrame":
    """`df`, the table of many folders' records made at once (`raw`: each line's values; `place`:
    its folder), with each column of the type joining each folder's own table gives it: a column
    that a folder holds only as None (or not at all) is one of objects there, so of objects once
    joined (None there), its values elsewhere as typed without that folder's."""
    import numpy as np
    import pandas as pd

    nones = {k for values in raw for k, v in values.items() if v is None}
    for c in [c for c in df.columns if c in nones and df[c].dtype != object]:
        is_none = np.fromiter((c in values and values[c] is None for values in raw), bool, len(raw))
        null = df[c].isna().to_numpy()
        only_none = (np.bincount(place[~null], minlength=folders) == 0) & (np.bincount(place[is_none], minlength=folders) > 0)
        if not only_none.any():
            continue
        inside = only_none[place]
        values = np.full(len(df), np.nan, dtype=object)
        values[is_none & inside] = None
        rest = np.flatnonzero(~inside)
        values[rest] = pd.Series([raw[i].get(c, np.nan) for i in rest]).astype(object).to_numpy()
        df[c] = pd.Series(values, dtype=object)
    return df


def _small_tables(small: list[tuple[Path, list[Record]]], latest_only: bool) -> tuple["pd.DataFrame", "pd.DataFrame", "np.ndarray", "np.ndarray"]:
    """The small folders' tables, made in one `folder_frames` of all their records, as `_latest`
    gives them folder by folder (in their order), and the place in `small` of each trial and row."""
    import numpy as np
    import pandas as pd

    records = [r for _, folder in small for r in folder]
    every, rows = folder_frames(records)
    if every.empty:
        return every, rows, np.zeros(0, int), np.zeros(0, int)
    place = np.repeat(np.arange(len(small)), [len(folder) for _, folder in small])
    every = _typed_as_each_folder(every, place, [_flat(r) for r in records], len(small))
    if not rows.empty:
        context = [(row_context(r), r.rows)
                   for r in records if r.ok and r.rows]  # each row's values, as folder_frames joins them
        rows = _typed_as_each_folder(rows[_row_columns(small)], place[rows["_record"].to_numpy()],
                                     [{**trial, **row} for trial, measured in context for row in measured], len(small))
    ids = place * (len(every) + 1) + pd.factorize(every["trial_id"])[0]  # one trial: one id in one folder
    names = pd.Index([str(d) for d, _ in small])
    trials, rows = _latest(every, rows, names.to_numpy(dtype=object)[place], latest_only, ids)
    return trials, rows, names.get_indexer(trials["results_dir"]), names.get_indexer(rows["results_dir"]) if len(rows) else np.zeros(0, int)


def load_tables(path: str | Path, latest_only: bool = True, columns: Columns | None = None) -> tuple["pd.DataFrame", "pd.DataFrame"]:
    """`(load(path, latest_only), load_rows(path))`: each results folder from its columnar index
    (`index.folder_arrow`: brought up to date, or rebuilt from trials.jsonl), all of them made one
    table at once (`columnar.joined`), but the small ones of a tree of many (`SMALL_FOLDER`), read
    record by record and made into tables all together; the same tables either way. With `columns` (the trials' and the rows' names), only those columns of each, where
    a table has them (in its order; the others are not read from the index)."""
    return folders_tables(result_dirs(path), latest_only, columns)


def folders_tables(folders: list[Path], latest_only: bool = True, columns: Columns | None = None) -> tuple["pd.DataFrame", "pd.DataFrame"]:
    """`load_tables` of these results folders, in this order."""
    import numpy as np
    import pandas as pd

    # a folder's tables (pandas, or Arrow from its index with the folder's name), or a range of small folders
    pieces: list[tuple[pd.DataFrame, pd.DataFrame] | list[int] | tuple[str, pa.Table, pa.Table]] = []
    small: list[tuple[Path, list[Record]]] = []
    for d in folders:
        records = _small_records(d) if len(folders) > MANY_FOLDERS else None
        if records is not None:
            if pieces and isinstance(pieces[-1], list):
                pieces[-1][1] += 1
            else:
                pieces.append([len(small), len(small) + 1])
            small.append((d, records))
            continue
        every, rows = folder_arrow(d, columns)
        pieces.append(_latest(every, rows, str(d), latest_only) if isinstance(every, pd.DataFrame) else
                      (str(d), *_latest_arrow(every, rows, latest_only, columns)))
        del every, rows
        release_arrow_memory()
    if all(len(piece) == 3 for piece in pieces):  # every folder from its index: one conversion of them all
        each_trials, each_rows = [(t, d) for d, t, _ in pieces], [(r, d) for d, _, r in pieces]
        del pieces  # held by those lists alone, which joined empties as it goes
        rows = joined(each_rows)  # first: its Arrow numbers freed before the trials' configs are decoded (a lower peak)
        trials = joined(each_trials)
        release_arrow_memory()
        return trials, rows
    pieces = [(joined([(piece[1], piece[0])]), joined([(piece[2], piece[0])])) if len(piece) == 3 else piece for piece in pieces]
    if small:
        t, r, t_place, r_place = _small_tables(small, latest_only)
        del small
        for i, piece in enumerate(pieces):
            if isinstance(piece, list):
                (a, b), (c, e) = np.searchsorted(t_place, piece), np.searchsorted(r_place, piece)
                pieces[i] = (t[a:b] if b - a < len(t) else t, r[c:e] if e - c < len(r) else r)
    trials, rows = [], []
    for t, r in pieces:
        if columns is not None:  # of the pandas tables
            t, r = only_columns(t, set(columns[0])), only_columns(r, set(columns[1]))
        trials.append(t)
        rows.append(r)
    trials, rows = [t for t in trials if not t.empty], [r for r in rows if not r.empty]
    trials, rows = (pd.concat(trials, ignore_index=True) if len(trials) > 1 else trials[0].reset_index(drop=True) if trials else pd.DataFrame(),
                    pd.concat(rows, ignore_index=True) if len(rows) > 1 else rows[0].reset_index(drop=True) if rows else pd.DataFrame())
    release_arrow_memory()
    return trials, rows


def release_arrow_memory() -> None:
    """Hand the memory Arrow has freed (Parquet pages read or written, tables no longer held) back
    to the system: its allocator keeps it otherwise (~100 MB after reading 100,000 records)."""
    with contextlib.suppress(ImportError):
        import pyarrow as pa

        pa.default_memory_pool().release_unused()


def load(path: str | Path, latest_only: bool = True) -> "pd.DataFrame":
    """Records under `path` (a results folder or a folder of them) as one flat DataFrame.

    One column per config field (`activation`, `size`, ...) and per metric (`metric.<name>`),
    the config itself (`config`, a dict), `gpu_name` ("cpu" for CPU runs), `hostname`, the
    environment fingerprint (`env`, a dict) and `results_dir`; with `latest_only`, the last
    attempt of each (results folder, trial id)."""
    return load_tables(path, latest_only)[0]


def load_rows(path: str | Path) -> "pd.DataFrame":
    """Long-format measurement rows (kernel and memory kinds) of the latest ok attempt of each
    trial, joined with the trial's config, id, suite, kind, run id, GPU and results folder."""
    return load_tables(path)[1]


SERIES_COLUMNS = ["trial_id", "table", "step", "layer", "metric", "value"]


def series(path: str | Path) -> "pd.DataFrame":
    """Per-step series of the latest attempt of every trial under `path` (a results folder or a
    folder of them; or one series JSON file) as one long DataFrame with columns trial_id, table,
    step, layer (NaN where the table has none), metric, value. Only tables of named columns with
    a `step` column are read (train, val, alphas); files or tables of another shape are skipped."""
    import numpy as np
    import pandas as pd

    path = Path(path)
    if path.is_file():
        sources = [(path.stem, path.parent, path.name, True)]
    else:
        sources = [(r.trial_id, d, r.series_file, False) for d, r in latest_records(path) if r.series_file]
    frames = []
    for trial_id, folder, name, named in sources:  # through the results gate: refused files are skipped with a warning
        try:
            raw = gate.user_bytes(folder / name, gate.MAX_SERIES) if named else gate.read(folder, name, gate.MAX_SERIES)
            tables = series_data(raw, folder / name)
        except FileNotFoundError:
            continue
        except gate.Refused as e:
            gate.warn(e)
            continue
        except ValueError as e:
            warnings.warn(f"{folder / name}: skipping unreadable series ({e})", gate.ResultsWarning, stacklevel=2)
            continue
        for name, table in (tables.items() if isinstance(tables, dict) else ()):
            if not isinstance(table, dict) or not isinstance(table.get("step"), list):
                continue
            cols = {k: v for k, v in table.items() if isinstance(v, list) and len(v) == len(table["step"])}
            keys = [k for k in ("step", "layer") if k in cols]
            wide = pd.DataFrame(cols)
            names = [c for c in wide.columns if c not in keys]  # by hand, not melt: a column may be named "value" or "metric"
            long = pd.DataFrame({**{k: np.tile(wide[k].to_numpy(), len(names)) for k in keys}, "metric": np.repeat(names, len(wide)),
                                 "value": wide[names].to_numpy(dtype=object).T.ravel()})
            long["value"] = pd.to_numeric(long["value"], errors="coerce")
            frames.append(long.assign(trial_id=trial_id, table=name))
    if not frames:
        return pd.DataFrame(columns=SERIES_COLUMNS)
    return pd.concat(frames, ignore_index=True).reindex(columns=SERIES_COLUMNS)
