"""What every comparison table shares: the `results` column (each results folder, or "merged"),
the identity of each row's trial and run, key columns filled with "-", and trial/run counts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable, NamedTuple

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

MERGED = "merged"


def _source(folders: "pd.Series", root: Path, merge: bool) -> "pd.Series":
    """The `results` column: each results folder relative to the root, or "merged"."""
    if merge:
        return folders.map(lambda _: MERGED)
    base = str(root.resolve()) if root.exists() else str(root)
    return folders.map({d: os.path.relpath(d, base) for d in folders.unique()})


def fill_keys(df: "pd.DataFrame", keys: list[str]) -> "pd.DataFrame":
    """Missing values of key columns as "-" so that groups and joins treat them alike."""
    df = df.copy()
    for c in keys:
        if c not in df:
            df[c] = "-"
        elif df[c].isna().any():
            df[c] = df[c].astype(object).where(df[c].notna(), "-")
    return df


class Groups(NamedTuple):
    """Rows grouped by key columns (`grouped`): per group (numbered 0.. in order of first
    appearance) its `keys` and `counts`; per row its `values` and `group` number."""

    keys: "pd.DataFrame"
    counts: "pd.DataFrame"
    values: "pd.DataFrame"
    group: np.ndarray

    def by(self) -> Any:
        """The groupby of `values` by group number."""
        return self.values.groupby(self.group, sort=True)


def _factorized(column: "pd.Series", keep: np.ndarray) -> tuple[np.ndarray, Any]:
    """`pd.factorize` codes of a column's values at positions `keep`, and uniques (at least those
    values'): of a copy of those values where they are at most half the column (hashing fewer is
    faster), else of the whole column (a copy of most of its strings would raise the peak)."""
    import pandas as pd

    if 2 * len(keep) <= len(column):
        return pd.factorize(column.array.take(keep))
    codes, uniques = pd.factorize(column)
    return codes[keep], uniques


def _codes(column: "pd.Series", keep: np.ndarray, dash: bool = False) -> tuple[np.ndarray, bool]:
    """Integer codes of a column's values at positions `keep` (missing: -1, or the code of "-"
    where `dash` and "-" occurs: `fill_keys` makes them one key), and whether any is missing."""
    import pandas as pd

    codes, uniques = _factorized(column, keep)
    missing = bool((codes < 0).any())
    if dash and missing:
        is_dash = np.flatnonzero(np.asarray(uniques == "-", dtype=bool))
        if len(is_dash):
            codes = np.where(codes < 0, is_dash[0], codes)
    return codes, missing


def _distinct(group: np.ndarray, groups: int, folder: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """How many distinct (results folder, id) pairs each group holds (a missing id is none)."""
    import pandas as pd

    has = codes >= 0
    pair = folder[has]
    pair *= int(codes.max(initial=0)) + 1
    pair += codes[has]
    pair = pd.factorize(pair)[0]
    size = int(pair.max(initial=0)) + 1
    at = group[has]
    at *= size
    at += pair
    at.sort()  # in place: lighter than hashing (the peak of compare at 100k records)
    return np.bincount(at[np.r_[True, at[1:] != at[:-1]]] // size, minlength=groups)


def grouped(rows: "pd.DataFrame", keep: np.ndarray, root: Path, merge: bool, keys: list[str], shape: list[str],
            columns: Iterable[str] = ()) -> Groups:
    """The rows at positions `keep` grouped as `prepared` rows grouped by `[*keys, *shape,
    "results"]` (sort=False, dropna=False) are, from integer codes instead of copies of the
    rows: each group's keys (`shape` filled with "-", and `results`), its `trials` and `runs`
    (results folder x trial id, x run id), and `columns` of the rows (nan where absent)."""
    import pandas as pd

    folder, folders = _factorized(rows["results_dir"], keep)
    results = pd.factorize(_source(pd.Series(folders), root, merge))[0]  # of each folder
    group, filled, span = np.zeros(len(keep), np.int64), {}, 1  # group < span
    for c in [*keys, *shape]:
        codes, filled[c] = _codes(rows[c], keep, dash=c in shape) if c in rows else (np.zeros(len(keep), np.int64), True)
        width = int(codes.max(initial=0)) + 2
        if span * width * max(1, len(folders)) >= 2**62:  # one number per distinct key so far, before the next could overflow
            group = pd.factorize(group)[0]
            span = int(group.max(initial=0)) + 1
        group *= width  # in place: no copies of the rows' length
        group += codes + 1
        span *= width
    group *= int(results.max(initial=0)) + 1
    group += results[folder]
    group = pd.factorize(group)[0]
    at = keep[np.unique(group, return_index=True)[1]]
    table = pd.DataFrame({c: rows[c].array.take(at) for c in [*keys, *shape] if c in rows})
    for c in shape:
        if c not in table:
            table[c] = "-"
        elif filled[c]:
            table[c] = pd.Index(table[c].astype(object).where(table[c].notna(), "-").to_numpy())  # typed as a groupby types keys
    table["results"] = _source(rows["results_dir"].take(at).reset_index(drop=True), root, merge)
    trials = _distinct(group, len(at), folder, _codes(rows["trial_id"], keep)[0])  # one column at a time: the peak
    runs = _distinct(group, len(at), folder, _codes(rows["run_id"], keep)[0] if "run_id" in rows else np.zeros(len(keep), np.int64))
    counts = pd.DataFrame({"trials": trials, "runs": runs})
    values = pd.DataFrame({c: rows[c].array.take(keep) if c in rows else np.full(len(keep), np.nan) for c in columns}, copy=False)
    return Groups(table[[*keys, *shape, "results"]], counts, values, group)


def prepared(df: "pd.DataFrame", root: Path, merge: bool, keys: list[str], columns: Iterable[str] = ()) -> "pd.DataFrame":
    """Rows with their `results` column, the identity of their trial record (`_trial`: results
    folder and trial id) and run (`_run`: results folder and run id), filled key columns, and
    `columns` present (nan where a kind's older records lack them)."""
    run = df["run_id"].astype(str) if "run_id" in df else "-"
    folder = df["results_dir"].astype(str) + "#"
    df = df.assign(results=_source(df["results_dir"], root, merge), _run=folder + run, _trial=folder + df["trial_id"].astype(str))
    for c in columns:
        if c not in df:
            df[c] = np.nan
    return fill_keys(df, keys)
