"""report.frames.grouped: the groups of kernel/memory rows from integer codes, as pandas groups the
rows `prepared` makes (same groups in the same order, same keys, trial and run counts)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from actbench.report.frames import grouped, prepared

SHAPE = ["dtype", "size", "gpu_name"]


def _rows(n: int, seed: int, run_ids: bool = True) -> pd.DataFrame:
    """Rows over three results folders with repeated trials and runs, missing shape values beside
    literal "-" ones, and a missing run id."""
    rng = np.random.default_rng(seed)
    pick = lambda values: [values[i] for i in rng.integers(0, len(values), n)]
    df = pd.DataFrame({
        "activation": pick(["relu2", "xielu", "gelu"]), "impl": pick(["eager", "compile", None]),
        "dtype": pd.Series(pick(["float32", "bfloat16", None, "-"]), dtype="str"), "size": pick([1024, 4096]),
        "gpu_name": pick(["cpu", "H100", None]), "results_dir": pick(["/r/a", "/r/b", "/r/a/c"]),
        "trial_id": pick([f"t{i}" for i in range(12)]), "ms_p50": rng.random(n), "gated": pick([True, False])})
    if run_ids:
        df["run_id"] = pick(["run1", "run2", None])
    return df


def _reference(rows: pd.DataFrame, keep: np.ndarray, merge: bool) -> pd.DataFrame:
    shape = [*SHAPE, "results"]
    r = prepared(rows.iloc[keep], Path("/r"), merge, shape, ("ms_p50", "pct_copy"))
    groups = r.groupby(["activation", "impl", *shape], sort=False, dropna=False)
    g = groups.agg(ms_p50=("ms_p50", "median"), pct_copy=("pct_copy", "median"), gated=("gated", "first"))
    return g.join(pd.DataFrame({"trials": groups["_trial"].nunique(), "runs": groups["_run"].nunique()})).reset_index()


@pytest.mark.parametrize("merge", [False, True])
@pytest.mark.parametrize("run_ids", [True, False])
@pytest.mark.parametrize("seed", [0, 1])
def test_groups_are_those_of_pandas_over_prepared_rows(merge, run_ids, seed):
    rows = _rows(400, seed, run_ids)
    keep = np.flatnonzero(np.random.default_rng(seed + 10).random(len(rows)) < 0.7)
    found = grouped(rows, keep, Path("/r"), merge, ["activation", "impl"], SHAPE, ("ms_p50", "pct_copy", "gated"))
    g = found.by().agg(ms_p50=("ms_p50", "median"), pct_copy=("pct_copy", "median"), gated=("gated", "first"))
    got = found.keys.join(g).join(found.counts).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, _reference(rows, keep, merge), check_exact=True)
    assert (got["results"] == "merged").all() if merge else set(got["results"]) == {"a", "b", "a/c"}
