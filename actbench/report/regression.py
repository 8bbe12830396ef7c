"""`actbench regress --baseline`: a one-off comparison of a run with another run (its results
folder or trials.jsonl) from the same GPU model, noise-aware. The nightly gate judges a run over
its history instead (`report.alerts`)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from actbench.core.record import Record
from actbench.core.trial import NOISY_SPREAD
from actbench.errors import UserError
from actbench.report.formats import markdown
from actbench.results import gate
from actbench.results.read import gpu_name, iter_records, latest, latest_records, result_dirs

if TYPE_CHECKING:
    import pandas as pd

COLUMNS = ["trial_id", "kind", "what", "metric", "baseline", "current", "change_pct", "noise_pct", "verdict"]
COMPARED = ("SAME", "SLOW", "FAST", "WORSE", "BETTER", "NOISY")


def spread(row: dict[str, Any] | None) -> float:
    """(p80 - p20) / p50 of a timing row; 0 where unknown."""
    try:
        return max(0.0, (float(row["ms_p80"]) - float(row["ms_p20"])) / float(row["ms_p50"]))  # type: ignore[index]
    except (TypeError, KeyError, ValueError, ZeroDivisionError):
        return 0.0


def _kernel_rows(rec: Record, base: Record, threshold: float) -> list[tuple[str, str, float, float, str, float]]:
    """(impl mode, metric, baseline, current, verdict, noise) per timed row, on the % of the device
    copy measured in the same trial (so a slower or faster machine state cancels out). The noise
    of a side is its row's spread plus its copy's spread; NOISY where it exceeds NOISY_SPREAD or
    a row is flagged noisy; else SLOW / FAST beyond max(threshold, noise), SAME otherwise."""
    def split(r: Record) -> tuple[dict | None, dict[tuple[Any, Any], dict]]:
        rows = r.rows
        copy = next((x for x in rows if x.get("impl") == "copy"), None)
        return copy, {(x.get("impl"), x.get("mode")): x for x in rows if x.get("impl") != "copy"}

    bcopy, brows = split(base)
    ccopy, crows = split(rec)
    out = []
    for key, r in crows.items():
        br = brows.get(key)
        if br is None or not isinstance(r.get("pct_copy"), (int, float)) or not br.get("pct_copy"):
            continue
        b, c = float(br["pct_copy"]), float(r["pct_copy"])
        noise = max(spread(r) + spread(ccopy), spread(br) + spread(bcopy))
        time_ratio = b / c if c else float("inf")  # > 1: slower relative to the copy
        limit = max(threshold, noise)
        if noise > NOISY_SPREAD or r.get("noisy") is True or br.get("noisy") is True:
            verdict = "NOISY"
        else:
            verdict = "SLOW" if time_ratio > 1 + limit else "FAST" if time_ratio < 1 - limit else "SAME"
        out.append((f"{key[0]} {key[1]}", "pct_copy", b, c, verdict, noise))
    return out


def regress(baseline: str | Path, run_dir: str | Path, threshold: float = 0.05, bpb_tolerance: float = 0.02) -> "pd.DataFrame":
    """Compare a run with a baseline run (a results folder or a trials.jsonl) taken on the same GPU model, metric by metric.

    Kernels: % of the device copy (see `_kernel_rows`). Memory: WORSE/BETTER beyond `threshold`.
    LM quality: WORSE/BETTER beyond `bpb_tolerance` (absolute); LM throughput: SLOW/FAST beyond
    `threshold`. Trials that did not succeed are FAILED. The baseline of a trial is its latest
    attempt in the baseline (folder or file alike): NO BASELINE where that attempt failed. A UserError when the run has no records
    or nothing in it could be compared (a wrong path or baseline)."""
    import pandas as pd

    base_path = Path(baseline)
    if base_path.is_dir():
        if not result_dirs(base_path):
            raise UserError(f"--baseline {baseline}: no trials.jsonl at or below it")
        base = {r.trial_id: r for _, r in latest_records(base_path)}
    elif not gate.user_file(base_path, "--baseline"):
        raise UserError(f"--baseline {baseline}: no such file or folder (an earlier run's results folder or trials.jsonl)")
    else:
        base = latest(iter_records(base_path, user=True))
    if not result_dirs(run_dir):
        raise UserError(f"{run_dir}: no trials.jsonl at or below it")
    current = {r.trial_id: r for _, r in latest_records(run_dir)}
    out = []

    def add(rec: Record, label: str, metric: str, b: float | None = None, c: float | None = None, verdict: str = "",
            noise: float | None = None) -> None:
        change = (c / b - 1) * 100 if b and c is not None else None
        out.append({"trial_id": rec.trial_id, "kind": rec.kind, "what": label, "metric": metric, "baseline": b, "current": c,
                    "change_pct": change, "noise_pct": None if noise is None else noise * 100, "verdict": verdict})

    for tid, rec in current.items():
        label = " ".join(f"{k}={v}" for k, v in rec.config.items() if k in ("activation", "dtype", "size", "seed"))
        if not rec.ok:
            add(rec, label, "status", verdict=f"FAILED ({rec.status})")
            continue
        b = base.get(tid)
        if b is None:
            continue
        if not b.ok:
            add(rec, label, "-", verdict=f"NO BASELINE (its last attempt there: {b.status})")
            continue
        if gpu_name(b) != gpu_name(rec):
            add(rec, label, "-", verdict="SKIPPED (different GPU)")
            continue
        kind, metrics, bmetrics = rec.kind, rec.metrics, b.metrics
        if kind == "kernel":
            for what, metric, bv, cv, verdict, noise in _kernel_rows(rec, b, threshold):
                add(rec, f"{label} {what}", metric, bv, cv, verdict, noise)
        elif kind == "memory":
            brows = {r.get("impl"): r for r in b.rows}
            for r in rec.rows:
                br = brows.get(r.get("impl"))
                for m in ("saved_bytes_per_elem", "peak_fwd_bwd_mb"):
                    if br is None or r.get(m) is None or br.get(m) in (None, 0):
                        continue
                    ratio = r[m] / br[m]
                    add(rec, f"{label} {r['impl']}", m, br[m], r[m], "WORSE" if ratio > 1 + threshold else "BETTER" if ratio < 1 - threshold else "SAME")
        elif kind == "lm":
            q = "val_bpb" if metrics.get("val_bpb") is not None else "val_loss"
            bq, cq = bmetrics.get(q), metrics.get(q)
            if bq is not None and cq is not None:
                add(rec, label, q, bq, cq, "WORSE" if cq > bq + bpb_tolerance else "BETTER" if cq < bq - bpb_tolerance else "SAME")
            bt, ct = bmetrics.get("tokens_per_s"), metrics.get("tokens_per_s")
            if bt and ct:
                add(rec, label, "tokens_per_s", bt, ct, "SLOW" if ct < bt * (1 - threshold) else "FAST" if ct > bt * (1 + threshold) else "SAME")
    df = pd.DataFrame(out, columns=COLUMNS)
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
