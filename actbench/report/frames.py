"""What every comparison table shares: the `results` column (each results folder, or "merged"),
the identity of each row's trial and run, key columns filled with "-", and trial/run counts."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterable

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


def counts(groups: Any) -> "pd.DataFrame":
    """How many trials and runs (results folder x run id) went into each group."""
    import pandas as pd

    return pd.DataFrame({"trials": groups["_trial"].nunique(), "runs": groups["_run"].nunique()})


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
