"""Results as pandas tables: one flat row per trial record, the long-format measurement rows of
the kinds that write them, and the per-step series of every trial."""

from __future__ import annotations

import contextlib
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

from actbench.results import gate
from actbench.results.index import Columns, folder_tables, only_columns
from actbench.results.read import latest_records, result_dirs, series_data

if TYPE_CHECKING:
    import pandas as pd

def _latest(every: "pd.DataFrame", rows: "pd.DataFrame", folder: str, latest_only: bool) -> tuple["pd.DataFrame", "pd.DataFrame"]:
    """One folder's tables (`index.folder_frames`) as `load_tables` gives them: the last attempt of each
    trial id in the order the ids first appear (or every attempt), and the rows of those that are
    ok, in that order."""
    import numpy as np
    import pandas as pd

    if every.empty:
        return every, rows
    ids = every["trial_id"]
    last = pd.Series(np.flatnonzero(~ids.duplicated(keep="last").to_numpy()), index=ids[~ids.duplicated(keep="last")].to_numpy())
    keep = last.loc[ids.drop_duplicates().to_numpy()].to_numpy()
    if not rows.empty:
        rank = np.full(len(every), -1)
        rank[keep] = np.arange(len(keep))
        of_row = rank[rows["_record"].to_numpy()]
        if (of_row >= 0).all() and (np.diff(of_row) >= 0).all():  # every row kept, in order (one attempt each): no copy to reorder
            rows = rows.drop(columns="_record")
        else:
            chosen = np.flatnonzero(of_row >= 0)
            rows = rows.take(chosen[np.argsort(of_row[chosen], kind="stable")]).drop(columns="_record").reset_index(drop=True)
        rows["results_dir"] = folder
    everyone = len(keep) == len(every) and (np.diff(keep) > 0).all()
    trials = (every.take(keep) if latest_only and not everyone else every).reset_index(drop=True)
    trials["results_dir"] = folder
    return trials, rows


def load_tables(path: str | Path, latest_only: bool = True, columns: Columns | None = None) -> tuple["pd.DataFrame", "pd.DataFrame"]:
    """`(load(path, latest_only), load_rows(path))`, one results folder at a time, each from its
    columnar index (`index.folder_tables`: brought up to date, or rebuilt from trials.jsonl). With
    `columns` (the trials' and the rows' names), only those columns of each, where a table has them
    (in its order; the others are not read from the index)."""
    import pandas as pd

    trials, rows = [], []
    for d in result_dirs(path):
        t, r = _latest(*folder_tables(d, columns), str(d), latest_only)
        if columns is not None:
            t, r = only_columns(t, set(columns[0])), only_columns(r, set(columns[1]))
        trials.append(t)
        rows.append(r)
        release_arrow_memory()
    trials, rows = [t for t in trials if not t.empty], [r for r in rows if not r.empty]
    trials, rows = (pd.concat(trials, ignore_index=True) if trials else pd.DataFrame(),
                    pd.concat(rows, ignore_index=True) if rows else pd.DataFrame())
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
