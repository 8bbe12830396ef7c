"""`actbench regress --baseline`: a one-off comparison of a run with another run (its results
folder or trials.jsonl) from the same GPU model, noise-aware. The nightly gate judges a run over
its history instead (`report.alerts`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from actbench.core.record import OK
from actbench.core.trial import NOISY_SPREAD
from actbench.errors import UserError
from actbench.report.formats import markdown
from actbench.results import gate
from actbench.results.frames import folders_tables
from actbench.results.index import folder_frames
from actbench.results.read import iter_records, latest, result_dirs

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

COLUMNS = ["trial_id", "kind", "what", "metric", "baseline", "current", "change_pct", "noise_pct", "verdict"]
COMPARED = ("SAME", "SLOW", "FAST", "WORSE", "BETTER", "NOISY")


def spread(row: dict[str, Any] | None) -> float:
    """(p80 - p20) / p50 of a timing row; 0 where unknown."""
    try:
        return max(0.0, (float(row["ms_p80"]) - float(row["ms_p20"])) / float(row["ms_p50"]))  # type: ignore[index]
    except (TypeError, KeyError, ValueError, ZeroDivisionError):
        return 0.0


ROW_FIELDS = ("impl", "mode", "pct_copy", "ms_p20", "ms_p50", "ms_p80", "noisy", "saved_bytes_per_elem", "peak_fwd_bwd_mb")
TRIAL_FIELDS = ("trial_id", "kind", "status", "gpu_name", "config", "metric.val_bpb", "metric.val_loss", "metric.tokens_per_s")
LABEL_FIELDS = ("activation", "dtype", "size", "seed")
MEMORY_METRICS = ("saved_bytes_per_elem", "peak_fwd_bwd_mb")
READ = ({*TRIAL_FIELDS, "results_dir"}, {"results_dir", "trial_id", *ROW_FIELDS})
"""The only columns of a results folder's tables read (its config for the labels, `LABEL_FIELDS`:
the run's only, the baseline's is never decoded)."""


def _side(path: Path, user_file: bool, kept: dict[Path, tuple["pd.DataFrame", "pd.DataFrame"]],
          labels: bool = True) -> tuple["pd.DataFrame", "pd.DataFrame"]:
    """The compared columns of the last attempt of each trial id at or below `path` (an id in two
    folders: the later folder's, in the place of its first), and the measurement rows of those
    that are ok, in order, each with `_trial`, its trial's place. A folder is read through its
    columnar index, one at a time (those in `kept` are taken from there, or kept there when
    `kept` names them with None); a file named by the user (which may be a link) record by record.
    Without `labels`, no `config` is read (its column is empty) but in the folders of `kept`."""
    import numpy as np
    import pandas as pd

    def compared(trials: pd.DataFrame, rows: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
        return trials.reindex(columns=[*TRIAL_FIELDS, "results_dir"]), rows.reindex(columns=["results_dir", "trial_id", *ROW_FIELDS])

    if user_file:
        trials, rows = folder_frames(list(latest(iter_records(path, user=True)).values()))
        trials, rows = compared(trials.assign(results_dir=""), rows.assign(results_dir=""))
    else:
        tables, loose = [], []  # loose: the folders read next, together (not in `kept`)
        for d in [*result_dirs(path), None]:
            if loose and (d is None or d in kept):
                tables.append(compared(*folders_tables(loose, columns=READ if labels else (READ[0] - {"config"}, READ[1]))))
                loose = []
            if d in kept:
                tables.append(kept.get(d) or compared(*folders_tables([d], columns=READ)))
                kept[d] = tables[-1]
            elif d is not None:
                loose.append(d)
        trials, rows = (pd.concat([t[i] for t in tables if len(t[i])] or [tables[0][i]], ignore_index=True)  # an empty one
                        for i in (0, 1))  # (its columns of no type) would make every column one of objects
    ids = trials["trial_id"]
    last = trials[~ids.duplicated(keep="last").to_numpy()]
    trials = last.take(pd.Index(last["trial_id"]).get_indexer(ids[~ids.duplicated()])).reset_index(drop=True)
    if len(rows):
        at = pd.MultiIndex.from_frame(trials[["results_dir", "trial_id"]]).get_indexer(pd.MultiIndex.from_frame(rows[["results_dir", "trial_id"]]))
        rows = rows[at >= 0].assign(_trial=at[at >= 0])
    else:
        rows = rows.assign(_trial=np.zeros(0, int))
    return trials.drop(columns="results_dir"), rows.drop(columns=["results_dir", "trial_id"]).reset_index(drop=True)


def _number(col: "pd.Series") -> "np.ndarray":
    """A column's numbers as floats (NaN where a row had none, or not a number)."""
    import numpy as np

    if col.dtype != object:
        return col.to_numpy(dtype=float, na_value=np.nan)
    return np.array([float(v) if isinstance(v, (int, float)) else np.nan for v in col], dtype=float)


def _spreads(rows: "pd.DataFrame") -> "np.ndarray":
    """`spread` of each timing row."""
    import numpy as np

    p20, p50, p80 = (_number(rows[c]) for c in ("ms_p20", "ms_p50", "ms_p80"))
    with np.errstate(all="ignore"):
        s = (p80 - p20) / p50
    return np.where(np.isfinite(s) & (s > 0), s, 0.0)  # over a zero median: none (as `spread`)


def _is_true(col: "pd.Series") -> "np.ndarray":
    """Whether each row's value is true itself (not 1, not "true")."""
    import numpy as np

    if col.dtype == bool:
        return col.to_numpy()
    return np.fromiter((v is True for v in col.to_numpy(dtype=object)), bool, len(col))


def _kernel_rows(crows: "pd.DataFrame", brows: "pd.DataFrame", copy: int, trials: int, threshold: float) -> "pd.DataFrame":
    """One row per timed (impl, mode) of a compared kernel trial (its last row of that key, in the
    place of its first) with a baseline row of that key: on the % of the device copy measured in
    the same trial (so a slower or faster machine state cancels out). The noise of a side is its
    row's spread plus its copy's (its first row of impl `copy`, a code); NOISY where it exceeds
    NOISY_SPREAD or a row is flagged noisy; else SLOW / FAST beyond max(threshold, noise), SAME
    otherwise. `_impl`, `_mode`: codes of both sides alike; `trials`: how many the run has."""
    import numpy as np
    import pandas as pd

    high = int(max(crows["_impl"].max() if len(crows) else 0, brows["_impl"].max() if len(brows) else 0,
                   crows["_mode"].max() if len(crows) else 0, brows["_mode"].max() if len(brows) else 0)) + 2

    def timed(rows: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
        is_copy = rows["_impl"].to_numpy() == copy
        copies = rows[is_copy].drop_duplicates("_trial")
        copy_spread = np.zeros(trials)
        copy_spread[copies["_trial"].to_numpy()] = _spreads(copies)
        rows = rows[~is_copy]
        key = pd.Series((rows["_trial"].to_numpy(dtype="int64") * high + rows["_impl"].to_numpy() + 1) * high + rows["_mode"].to_numpy() + 1)
        last, first = ~key.duplicated(keep="last").to_numpy(), ~key.duplicated().to_numpy()
        return rows[last], key.to_numpy()[last], (key.to_numpy()[first], rows.index.to_numpy()[first]), \
            copy_spread[rows["_trial"].to_numpy()[last]] + _spreads(rows[last])

    cur, cur_keys, (places, place_rows), cur_spread = timed(crows)
    base, base_keys, _, base_spread = timed(brows)
    at, bat = pd.Index(cur_keys).get_indexer(places), pd.Index(base_keys).get_indexer(places)
    at, bat, place_rows = at[bat >= 0], bat[bat >= 0], place_rows[bat >= 0]
    c, b = _number(cur["pct_copy"])[at], _number(base["pct_copy"])[bat]
    keep = np.isfinite(c) & np.isfinite(b) & (b != 0)
    at, bat, c, b, place_rows = at[keep], bat[keep], c[keep], b[keep], place_rows[keep]
    noise = np.maximum(cur_spread[at], base_spread[bat])
    with np.errstate(divide="ignore"):
        time_ratio = np.where(c != 0, b / np.where(c != 0, c, 1.0), np.inf)  # > 1: slower relative to the copy
    limit = np.maximum(threshold, noise)
    noisy = (noise > NOISY_SPREAD) | _is_true(cur["noisy"])[at] | _is_true(base["noisy"])[bat]
    verdict = np.select([noisy, time_ratio > 1 + limit, time_ratio < 1 - limit], ["NOISY", "SLOW", "FAST"], "SAME")
    rows = cur.iloc[at]
    return pd.DataFrame({"_trial": rows["_trial"].to_numpy(), "_row": place_rows, "_metric": 0, "_impl": rows["_impl"].to_numpy(),
                         "_mode": rows["_mode"].to_numpy(), "metric": "pct_copy", "baseline": b, "current": c, "verdict": verdict,
                         "noise": noise})


def _memory_rows(crows: "pd.DataFrame", brows: "pd.DataFrame", threshold: float) -> list["pd.DataFrame"]:
    """Per row of a compared memory trial and byte figure, against the baseline trial's last row of
    its impl: WORSE / BETTER beyond `threshold`."""
    import numpy as np
    import pandas as pd

    high = int(max(crows["_impl"].max() if len(crows) else 0, brows["_impl"].max() if len(brows) else 0)) + 2
    base_keys = pd.Series(brows["_trial"].to_numpy(dtype="int64") * high + brows["_impl"].to_numpy() + 1)
    last = ~base_keys.duplicated(keep="last").to_numpy()
    at = pd.Index(base_keys.to_numpy()[last]).get_indexer(crows["_trial"].to_numpy(dtype="int64") * high + crows["_impl"].to_numpy() + 1)
    cur, base = crows[at >= 0], brows[last].iloc[at[at >= 0]]
    out = []
    for i, m in enumerate(MEMORY_METRICS):
        c, b = _number(cur[m]), _number(base[m])
        keep = np.isfinite(c) & np.isfinite(b) & (b != 0)
        c, b = c[keep], b[keep]
        ratio = c / b
        out.append(pd.DataFrame({"_trial": cur["_trial"].to_numpy()[keep], "_row": cur.index.to_numpy()[keep], "_metric": i,
                                 "_impl": cur["_impl"].to_numpy()[keep], "metric": m, "baseline": b, "current": c,
                                 "verdict": np.select([ratio > 1 + threshold, ratio < 1 - threshold], ["WORSE", "BETTER"], "SAME")}))
    return out


def _lm_rows(cur: "pd.DataFrame", base: "pd.DataFrame", threshold: float, bpb_tolerance: float) -> list["pd.DataFrame"]:
    """Per compared lm trial (`base`: its baseline trial, row by row): its quality (val_bpb, else
    val_loss: WORSE / BETTER beyond `bpb_tolerance`, absolute) and throughput (SLOW / FAST beyond `threshold`)."""
    import numpy as np
    import pandas as pd

    has_bpb = np.isfinite(_number(cur["metric.val_bpb"]))
    q = np.where(has_bpb, "val_bpb", "val_loss")
    cq = np.where(has_bpb, _number(cur["metric.val_bpb"]), _number(cur["metric.val_loss"]))
    bq = np.where(has_bpb, _number(base["metric.val_bpb"]), _number(base["metric.val_loss"]))
    ct, bt = _number(cur["metric.tokens_per_s"]), _number(base["metric.tokens_per_s"])
    quality = np.isfinite(cq) & np.isfinite(bq)
    speed = np.isfinite(ct) & np.isfinite(bt) & (ct != 0) & (bt != 0)
    out = []
    for i, (keep, metric, b, c, verdict) in enumerate((
            (quality, q, bq, cq, np.select([cq > bq + bpb_tolerance, cq < bq - bpb_tolerance], ["WORSE", "BETTER"], "SAME")),
            (speed, "tokens_per_s", bt, ct, np.select([ct < bt * (1 - threshold), ct > bt * (1 + threshold)], ["SLOW", "FAST"], "SAME")))):
        out.append(pd.DataFrame({"_trial": cur["_trial"].to_numpy()[keep], "_row": -1, "_metric": i,
                                 "metric": np.broadcast_to(metric, keep.shape)[keep], "baseline": b[keep], "current": c[keep],
                                 "verdict": verdict[keep]}))
    return out


def _column(values: "np.ndarray") -> Any:
    """Numbers as a column, NaN where none; None in every row where no row has one (as pandas makes of Nones)."""
    import numpy as np

    return [None] * len(values) if np.isnan(values).all() else values


def regress(baseline: str | Path, run_dir: str | Path, threshold: float = 0.05, bpb_tolerance: float = 0.02) -> "pd.DataFrame":
    """Compare a run with a baseline run (a results folder or a trials.jsonl) taken on the same GPU model, metric by metric.

    Kernels: % of the device copy (see `_kernel_rows`). Memory: WORSE/BETTER beyond `threshold`.
    LM quality: WORSE/BETTER beyond `bpb_tolerance` (absolute); LM throughput: SLOW/FAST beyond
    `threshold`. Trials that did not succeed are FAILED. The baseline of a trial is its latest
    attempt in the baseline (folder or file alike): NO BASELINE where that attempt failed. A UserError when the run has no records
    or nothing in it could be compared (a wrong path or baseline). Rows in the order of the run's
    trials, each trial's in the order of its measurement rows."""
    import numpy as np
    import pandas as pd

    base_path = Path(baseline)
    kept: dict[Path, Any] = {}  # the folders of both (a baseline inside the run): read once
    if base_path.is_dir():
        if not result_dirs(base_path):
            raise UserError(f"--baseline {baseline}: no trials.jsonl at or below it")
        kept = dict.fromkeys(set(result_dirs(base_path)) & set(result_dirs(run_dir)))
        base, brows = _side(base_path, False, kept, labels=False)
    elif not gate.user_file(base_path, "--baseline"):
        raise UserError(f"--baseline {baseline}: no such file or folder (an earlier run's results folder or trials.jsonl)")
    else:
        base, brows = _side(base_path, True, kept)
    if not result_dirs(run_dir):
        raise UserError(f"{run_dir}: no trials.jsonl at or below it")
    current, crows = _side(Path(run_dir), False, kept)
    at = pd.Index(base["trial_id"]).get_indexer(current["trial_id"])  # each trial's place in the baseline, -1 where none

    def of_base(column: str) -> np.ndarray:
        """The baseline's `column` for each trial of the run (None where it has no baseline)."""
        values = np.append(base[column].to_numpy(dtype=object), None)  # at -1: the None at the end
        return values[at]

    b_status = of_base("status")
    ok, has_base, base_ok = current["status"].eq(OK).to_numpy(), at >= 0, b_status == OK
    same_gpu = current["gpu_name"].to_numpy(dtype=object) == of_base("gpu_name")
    compared = ok & has_base & base_ok & same_gpu
    kind = current["kind"].to_numpy(dtype=object)
    trial = np.arange(len(current))
    status = current["status"].to_numpy(dtype=object)
    pieces = [pd.DataFrame({"_trial": trial[mask], "_row": -1, "_metric": 0, "metric": metric, "verdict": [verdict.format(s) for s in why[mask]]})
              for mask, metric, verdict, why in ((~ok, "status", "FAILED ({})", status),
                                                  (ok & has_base & ~base_ok, "-", "NO BASELINE (its last attempt there: {})", b_status),
                                                  (ok & has_base & base_ok & ~same_gpu, "-", "SKIPPED (different GPU)", status))]
    to_current = np.full(len(base), -1)  # a baseline trial's place in the run, where it is compared
    to_current[at[compared]] = trial[compared]

    def of(rows: pd.DataFrame, places: np.ndarray, which: str) -> pd.DataFrame:
        where = places[rows["_trial"].to_numpy()]
        chosen = np.append(kind, None)[where] == which  # where -1 (not compared): the None at the end
        return rows[chosen].assign(_trial=where[chosen])

    run_place = np.where(compared, trial, -1)
    measured = [of(rows, places, which) for which in ("kernel", "memory") for rows, places in ((crows, run_place), (brows, to_current))]
    names = {}
    for f in ("impl", "mode"):  # codes of both sides alike (-1: none)
        codes, names[f] = pd.factorize(pd.concat([rows[f] for rows in measured], ignore_index=True))
        for rows, end in zip(measured, np.cumsum([len(rows) for rows in measured])):
            rows[f"_{f}"] = codes[end - len(rows):end]
    copy = names["impl"].get_indexer(["copy"])[0] if "copy" in names["impl"] else -3  # never a code where no row is the copy
    pieces.append(_kernel_rows(*measured[:2], copy, len(current), threshold))
    pieces += _memory_rows(*measured[2:], threshold)
    lm = compared & (kind == "lm")
    pieces += _lm_rows(current[lm].assign(_trial=trial[lm]), base.take(at[lm]).reset_index(drop=True), threshold, bpb_tolerance)
    out = pd.concat(pieces, ignore_index=True)
    out = out.take(np.lexsort((out["_metric"].to_numpy(), out["_row"].to_numpy(), out["_trial"].to_numpy())))
    at = out["_trial"].to_numpy()
    configs = current["config"].to_numpy(dtype=object)
    labels = {t: " ".join(f"{k}={v}" for k, v in configs[t].items() if k in LABEL_FIELDS) for t in np.unique(at)}

    no = object()  # a row of no impl or mode (a trial's own row), code -2; -1 is a row whose impl or mode is missing (None)
    impl, mode = (np.concatenate([names[f].to_numpy(dtype=object), np.array([no, None], dtype=object)])[out[f"_{f}"].fillna(-2).to_numpy(dtype=int)]
                  for f in ("impl", "mode"))
    what = [labels[t] if i is no else f"{labels[t]} {i}" if m is no else f"{labels[t]} {i} {m}" for t, i, m in zip(at, impl, mode)]
    b, c = out["baseline"].to_numpy(dtype=float), out["current"].to_numpy(dtype=float)
    with np.errstate(all="ignore"):
        change = np.where(b != 0, (c / b - 1) * 100, np.nan)
    df = pd.DataFrame({"trial_id": current["trial_id"].to_numpy(dtype=object)[at], "kind": kind[at], "what": what,
                       "metric": out["metric"].to_numpy(dtype=object), "baseline": _column(b), "current": _column(c),
                       "change_pct": _column(change), "noise_pct": _column(out["noise"].to_numpy(dtype=float) * 100),
                       "verdict": out["verdict"].to_numpy(dtype=object)}, columns=COLUMNS) if len(out) else pd.DataFrame([], columns=COLUMNS)
    if not df["verdict"].isin(COMPARED).any() and not df["verdict"].str.startswith("FAILED").any():
        skipped = int((df["verdict"] == "SKIPPED (different GPU)").sum())
        why = f" ({skipped} trial(s) ran on another GPU model)" if skipped else " (same trial ids on the same GPU model)"
        raise UserError(f"{run_dir}: no trial of {len(current)} has a baseline in {baseline}{why}: nothing compared")
    return df


def regress_failed(df: "pd.DataFrame") -> bool:
    return bool(df["verdict"].str.startswith(("SLOW", "WORSE", "FAILED")).any()) if not df.empty else False


def regress_markdown(df: "pd.DataFrame", baseline: str | Path, run_dir: str | Path) -> str:
    """A summary for a CI job: counts per verdict and the rows that are not SAME."""
    counts = df["verdict"].value_counts()
    head = ", ".join(f"{n} {v}" for v, n in counts.items())
    status = "FAIL" if regress_failed(df) else "PASS"
    notable = df[df["verdict"] != "SAME"]
    body = markdown(notable) if not notable.empty else "Every compared metric is SAME."
    note = (f" NOISY: the spread of repeats (row plus copy, p20-p80) exceeds {NOISY_SPREAD:.0%} of the median, so no verdict."
            if counts.get("NOISY") else "")
    return f"## actbench regress: {status}\n\nBaseline `{baseline}`, run `{run_dir}`: {head}.{note}\n\n{body}\n"
