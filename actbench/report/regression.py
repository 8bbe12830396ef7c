"""`actbench regress`: a run against a baseline from the same GPU model, noise-aware."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from actbench.errors import UserError
from actbench.report.compare import markdown

if TYPE_CHECKING:
    import pandas as pd


def regress(baseline: str | Path, run_dir: str | Path, threshold: float = 0.05, bpb_tolerance: float = 0.02) -> "pd.DataFrame":
    """Compare a run with a baseline taken on the same GPU model, metric by metric.

    Times: SLOW when the median is worse by more than max(threshold, the p20-p80 spread of
    either side, relative to its median), FAST when better by as much, SAME otherwise.
    Memory: WORSE/BETTER beyond `threshold`. LM quality: WORSE/BETTER beyond `bpb_tolerance`
    bits (absolute); LM throughput: SLOW/FAST beyond `threshold`.
    """
    import pandas as pd

    from actbench.results import gpu_name, iter_records, latest_records

    base_path = Path(baseline)
    if not base_path.is_file():
        raise UserError(f"--baseline {baseline}: no such file (create one with --update-baseline)")
    base = {r["trial_id"]: r for r in iter_records(base_path) if r.get("status") == "ok"}
    current = {r["trial_id"]: r for _, r in latest_records(run_dir)}
    out = []

    def add(rec: dict, label: str, metric: str, b: float, c: float, verdict: str, noise: float | None = None) -> None:
        change = (c / b - 1) * 100 if b else float("nan")
        out.append({"trial_id": rec["trial_id"], "kind": rec["kind"], "what": label, "metric": metric, "baseline": b,
                    "current": c, "change_pct": change, "noise_pct": None if noise is None else noise * 100, "verdict": verdict})

    for tid, rec in current.items():
        label = " ".join(f"{k}={v}" for k, v in rec["config"].items() if k in ("activation", "dtype", "size", "seed"))
        if rec.get("status") != "ok":
            out.append({"trial_id": tid, "kind": rec["kind"], "what": label, "metric": "status", "verdict": f"FAILED ({rec['status']})"})
            continue
        b = base.get(tid)
        if b is None:
            continue
        if gpu_name(b) != gpu_name(rec):
            out.append({"trial_id": tid, "kind": rec["kind"], "what": label, "metric": "-", "verdict": "SKIPPED (different GPU)"})
            continue
        if rec["kind"] == "kernel":
            brows = {(r["impl"], r["mode"]): r for r in b.get("rows", [])}
            for r in rec.get("rows", []):
                br = brows.get((r["impl"], r["mode"]))
                if br is None:
                    continue
                noise = max((r["ms_p80"] - r["ms_p20"]) / r["ms_p50"], (br["ms_p80"] - br["ms_p20"]) / br["ms_p50"])
                limit = max(threshold, noise)
                ratio = r["ms_p50"] / br["ms_p50"]
                verdict = "SLOW" if ratio > 1 + limit else "FAST" if ratio < 1 - limit else "SAME"
                add(rec, f"{label} {r['impl']} {r['mode']}", "ms_p50", br["ms_p50"], r["ms_p50"], verdict, noise)
        elif rec["kind"] == "memory":
            brows = {r["impl"]: r for r in b.get("rows", [])}
            for r in rec.get("rows", []):
                br = brows.get(r["impl"])
                for m in ("saved_bytes_per_elem", "peak_fwd_bwd_mb"):
                    if br is None or r.get(m) is None or br.get(m) in (None, 0):
                        continue
                    ratio = r[m] / br[m]
                    add(rec, f"{label} {r['impl']}", m, br[m], r[m], "WORSE" if ratio > 1 + threshold else "BETTER" if ratio < 1 - threshold else "SAME")
        elif rec["kind"] == "lm":
            q = "val_bpb" if rec["metrics"].get("val_bpb") is not None else "val_loss"
            bq, cq = b["metrics"].get(q), rec["metrics"].get(q)
            if bq is not None and cq is not None:
                add(rec, label, q, bq, cq, "WORSE" if cq > bq + bpb_tolerance else "BETTER" if cq < bq - bpb_tolerance else "SAME")
            bt, ct = b["metrics"].get("tokens_per_s"), rec["metrics"].get("tokens_per_s")
            if bt and ct:
                add(rec, label, "tokens_per_s", bt, ct, "SLOW" if ct < bt * (1 - threshold) else "FAST" if ct > bt * (1 + threshold) else "SAME")
    return pd.DataFrame(out, columns=["trial_id", "kind", "what", "metric", "baseline", "current", "change_pct", "noise_pct", "verdict"])


def regress_failed(df: "pd.DataFrame") -> bool:
    return bool(df["verdict"].str.startswith(("SLOW", "WORSE", "FAILED")).any()) if not df.empty else False


def regress_markdown(df: "pd.DataFrame", baseline: str | Path, run_dir: str | Path) -> str:
    """A summary for a CI job: counts per verdict and the rows that are not SAME."""
    if df.empty:
        return f"## actbench regress\n\nNo trial of {run_dir} has a baseline in {baseline} (same trial ids): nothing compared.\n"
    counts = df["verdict"].value_counts()
    head = ", ".join(f"{n} {v}" for v, n in counts.items())
    status = "FAIL" if regress_failed(df) else "PASS"
    notable = df[df["verdict"] != "SAME"]
    body = markdown(notable) if not notable.empty else "Every compared metric is SAME."
    return f"## actbench regress: {status}\n\nBaseline `{baseline}`, run `{run_dir}`: {head}.\n\n{body}\n"
