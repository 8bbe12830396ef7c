"""`actbench regress`: a run against a baseline from the same GPU model, noise-aware, and a
per-commit history of the figures it compared (one JSON line per run, plotted as a trend)."""

from __future__ import annotations

import os
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from actbench.core.record import LIMIT, Record, decode_json, encode
from actbench.core.trial import NOISY_SPREAD
from actbench.errors import UserError
from actbench.report.formats import markdown
from actbench.results import gate
from actbench.results.read import gpu_name, iter_records, latest, latest_records, result_dirs

if TYPE_CHECKING:
    import pandas as pd

COLUMNS = ["trial_id", "kind", "what", "metric", "baseline", "current", "change_pct", "noise_pct", "verdict"]
COMPARED = ("SAME", "SLOW", "FAST", "WORSE", "BETTER", "NOISY")


def _spread(row: dict[str, Any] | None) -> float:
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
        noise = max(_spread(r) + _spread(ccopy), _spread(br) + _spread(bcopy))
        time_ratio = b / c if c else float("inf")  # > 1: slower relative to the copy
        limit = max(threshold, noise)
        if noise > NOISY_SPREAD or r.get("noisy") is True or br.get("noisy") is True:
            verdict = "NOISY"
        else:
            verdict = "SLOW" if time_ratio > 1 + limit else "FAST" if time_ratio < 1 - limit else "SAME"
        out.append((f"{key[0]} {key[1]}", "pct_copy", b, c, verdict, noise))
    return out


def regress(baseline: str | Path, run_dir: str | Path, threshold: float = 0.05, bpb_tolerance: float = 0.02) -> "pd.DataFrame":
    """Compare a run with a baseline taken on the same GPU model, metric by metric.

    Kernels: % of the device copy (see `_kernel_rows`). Memory: WORSE/BETTER beyond `threshold`.
    LM quality: WORSE/BETTER beyond `bpb_tolerance` (absolute); LM throughput: SLOW/FAST beyond
    `threshold`. Trials that did not succeed are FAILED. A UserError when the run has no records
    or nothing in it could be compared (a wrong path or baseline)."""
    import pandas as pd

    base_path = Path(baseline)
    if not gate.user_file(base_path, "--baseline"):
        raise UserError(f"--baseline {baseline}: no such file (create one with --update-baseline)")
    if not result_dirs(run_dir):
        raise UserError(f"{run_dir}: no trials.jsonl at or below it")
    base = {r.trial_id: r for r in iter_records(base_path, user=True) if r.ok}
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


def history_entry(df: "pd.DataFrame", run_dir: str | Path) -> dict[str, Any]:
    """One line of the history: the run's git commit (the most common among its records), its
    date (the last record's end, UTC), and the current figure of every compared row."""
    recs = [r for _, r in latest_records(run_dir)]
    commits = Counter(r.env.get("git_commit") or "unknown" for r in recs)
    ended = [r.ended_at for r in recs if isinstance(r.ended_at, (int, float))]
    date = datetime.fromtimestamp(max(ended), timezone.utc) if ended else datetime.now(timezone.utc)
    compared = df[df["verdict"].isin(COMPARED) & df["current"].notna()]
    figures = {f"{r.what} | {r.metric}": float(r.current) for r in compared.itertuples()}
    return {"commit": commits.most_common(1)[0][0] if commits else "unknown", "date": date.isoformat(timespec="seconds"),
            "run_dir": str(run_dir), "figures": figures}


def read_history(path: str | Path) -> list[dict[str, Any]]:
    """The entries of a history file, oldest first, read line by line through the results gate
    (lines that are not entries, or longer than `gate.MAX_LINE`, are skipped; so is a file that is
    not a regular one, with a warning)."""
    p = Path(path)
    entries = []
    for _, raw in gate.lines(p.parent, p.name, user=True) or ():
        try:
            e = decode_json(raw) if raw is not None else None
        except ValueError:
            continue
        if isinstance(e, dict) and isinstance(e.get("figures"), dict) and all(map(_figure, e["figures"].values())):
            entries.append(e)
    return entries


def _figure(value: Any) -> bool:
    """A figure of a history entry: a number within the bound of a record's numbers."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and abs(value) <= LIMIT


def append_history(df: "pd.DataFrame", run_dir: str | Path, history: str | Path) -> tuple[dict[str, Any], Path]:
    """Append this run's entry to `history` and redraw its trend plot (the same name, .png).
    Returns the entry and the plot's path."""
    from actbench.report.plots.history import history_plot

    entry = history_entry(df, run_dir)
    path = Path(history)
    gate.user_file(path, "--history")  # a FIFO or device is refused before it is opened for appending
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        f.write(encode(entry).decode() + "\n")
    return entry, history_plot(read_history(path), path.with_suffix(".png"))


def write_baseline(run_dir: str | Path, baseline: str | Path) -> int:
    """Write the latest ok record of every trial under `run_dir` to `baseline` (replacing it)."""
    ok = [r for r in latest(r for _, r in latest_records(run_dir)).values() if r.ok]
    if not ok:
        raise UserError(f"{run_dir}: no ok trial record at or below it; {baseline} left as it was")
    path = Path(baseline)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(b"".join(encode(r) + b"\n" for r in ok))
    os.replace(tmp, path)
    return len(ok)
