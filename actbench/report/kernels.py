"""Kernel and memory results side by side: one row per (activation, impl, shape, results folder),
the repeats pooled into a median with an interval, and a verdict against the baseline's best impl
at the same shape ("same" where the intervals overlap, "noisy" where one is too wide, else
"faster" / "slower" with the ratio); verdict lines per candidate."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from actbench.analysis import stats
from actbench.report.formats import num
from actbench.report.frames import grouped

if TYPE_CHECKING:
    from collections.abc import Iterator

    import pandas as pd

KERNEL_SHAPE = ("dtype", "size", "width", "mode", "gpu_name")
MEMORY_SHAPE = ("dtype", "size", "width", "gpu_name")


def kernel_frame(rows: "pd.DataFrame", names: list[str], root: Path, merge: bool = False) -> "pd.DataFrame":
    """One row per (activation, impl, shape, results) of kernel measurements, compared with the
    baseline's best impl at the same shape (the fastest of its non-noisy impls)."""
    import pandas as pd

    if rows.empty or "kind" not in rows:
        return pd.DataFrame()
    keep = _positions(rows, "kernel", names, rows["impl"] != "copy")
    if not len(keep):
        return pd.DataFrame()
    shape = [*KERNEL_SHAPE, "results"]
    found = grouped(rows, keep, root, merge, ["activation", "impl"], list(KERNEL_SHAPE), ("ms_p20", "ms_p50", "ms_p80", "gbps", "pct_copy", "gated"))
    found.values["noisy"] = pd.Series(rows["noisy"].array.take(keep)).eq(True) if "noisy" in rows else False
    groups = found.by()
    g = stats.kernel_summary(groups).join(groups.agg(gbps=("gbps", "median"), pct_copy=("pct_copy", "median"), gated=("gated", "first")))
    g = found.keys.join(g).join(found.counts).reset_index(drop=True)
    base = g[g["activation"] == names[0]].sort_values(["noisy", "ms_p50"]).drop_duplicates(shape)
    base = base[[*shape, "impl", "ms_p50", "ms_low", "ms_high", "noisy"]].rename(
        columns={"impl": "baseline_impl", "ms_p50": "_b50", "ms_low": "_blow", "ms_high": "_bhigh", "noisy": "_bnoisy"})
    g = g.merge(base, on=shape, how="left")
    verdict, ratio = stats.kernel_verdicts(g["ms_p50"], g["ms_low"], g["ms_high"], g["noisy"],
                                           g["_b50"], g["_blow"], g["_bhigh"], g["_bnoisy"].fillna(False))
    is_base = (g["activation"] == names[0]) & (g["impl"] == g["baseline_impl"])
    g["ratio"], g["verdict"] = ratio, np.where(is_base, "baseline", verdict)
    order = {n: i for i, n in enumerate(names)}
    g = g.drop(columns=["_b50", "_blow", "_bhigh", "_bnoisy"])
    return g.sort_values(["results", "dtype", "size", "mode", "activation", "impl"],
                         key=lambda s: s.map(order) if s.name == "activation" else s.astype(str)).reset_index(drop=True)


def memory_frame(rows: "pd.DataFrame", names: list[str], root: Path, merge: bool = False) -> "pd.DataFrame":
    """One row per (activation, impl, shape, results) of memory measurements (medians)."""
    import pandas as pd

    if rows.empty or "kind" not in rows:
        return pd.DataFrame()
    keep = _positions(rows, "memory", names)
    if not len(keep):
        return pd.DataFrame()
    found = grouped(rows, keep, root, merge, ["activation", "impl"], list(MEMORY_SHAPE), ("peak_fwd_mb", "peak_fwd_bwd_mb", "saved_bytes_per_elem", "gated"))
    g = found.by().agg(peak_fwd_mb=("peak_fwd_mb", "median"), peak_fwd_bwd_mb=("peak_fwd_bwd_mb", "median"),
                       saved_bytes_per_elem=("saved_bytes_per_elem", "median"), gated=("gated", "first"))
    return found.keys.join(g).join(found.counts).reset_index(drop=True)


def _positions(rows: "pd.DataFrame", kind: str, names: list[str], also: "pd.Series | bool" = True) -> np.ndarray:
    """Positions of the rows of `kind` and of the activations `names` (and `also`)."""
    return np.flatnonzero(((rows["kind"] == kind) & rows["activation"].isin(names) & also).to_numpy(dtype=bool, na_value=False))


def best_per_shape(k: "pd.DataFrame", name: str) -> "pd.DataFrame":
    """An activation's best impl at every shape of the kernel table: the least noisy, then the fastest."""
    return k[k["activation"] == name].sort_values(["noisy", "ms_p50"]).drop_duplicates([*KERNEL_SHAPE, "results"])


def shape_tallies(k: "pd.DataFrame", names: list[str]) -> "Iterator[tuple[str, pd.DataFrame, pd.Series, dict[str, pd.Series]]]":
    """Per candidate with kernel rows: its best impl per shape, the count of each verdict over those
    shapes, and the ratios of the shapes where it is faster and where slower."""
    for n in names[1:]:
        best = best_per_shape(k, n)
        if not best.empty:
            yield n, best, best["verdict"].value_counts(), {w: best.loc[best["verdict"] == w, "ratio"] for w in ("faster", "slower")}


def kernel_lines(k: "pd.DataFrame", names: list[str]) -> list[str]:
    """Per candidate: its best impl against the baseline's best impl at every shape."""
    lines = []
    for n, best, tally, ratios in shape_tallies(k, names):
        parts = []
        for word, r in ratios.items():
            if len(r):
                gm = float(np.exp(np.log(r).mean()))
                parts.append(f"{word} at {len(r)} ({num(r.min(), '.2f')}x-{num(r.max(), '.2f')}x, geometric mean {gm:.2f}x)")
        if tally.get("same"):
            parts.append(f"same at {tally['same']} (intervals overlap)")
        if tally.get("noisy"):
            parts.append(f"noisy at {tally['noisy']} (p20-p80 wider than {stats.NOISY_SPREAD:.0%} of the median: no ratio)")
        if tally.get("no baseline"):
            parts.append(f"no {names[0]} measurement at {tally['no baseline']}")
        impls = {a: sorted(set(k.loc[k["activation"] == a, "impl"])) for a in (n, names[0])}
        head = f"{n} (best of {', '.join(impls[n])}) vs {names[0]} (best of {', '.join(impls[names[0]]) or '-'})"
        on_cpu = bool((best["gpu_name"] == "cpu").all())
        lines.append(f"{head} over {len(best)} shape(s){' on CPU' if on_cpu else ''}: " + "; ".join(parts) + _unmeasured(impls, on_cpu))
    return lines


def _unmeasured(impls: dict[str, list[str]], on_cpu: bool) -> str:
    """What a CPU comparison leaves out: the registered kernels that need a GPU and were not timed."""
    from actbench.activations.registry import names, spec

    missing = [f"{a}'s {impl}" for a, have in impls.items() if a in names() for impl in spec(a).impls if impl not in have]
    if not on_cpu:
        return f"; not measured: {', '.join(missing)}" if missing else ""
    return (f"; CPU timings of {' and '.join(sorted({i for have in impls.values() for i in have}))}" +
            (f"; the fused GPU kernel ({', '.join(missing)}) was not measured: it needs a GPU" if missing else ""))
