"""`actbench report`: summary, failures, comparisons, PNG plots, a self-contained HTML page and
CSV/Parquet exports of one results folder."""

from __future__ import annotations

from pathlib import Path

from actbench.errors import UserError
from actbench.report.compare import compare_frames, verdicts


def build_report(run_dir: str | Path, out: str | Path | None = None) -> dict[str, object]:
    """Summary, failures, comparison tables, PNG plots, HTML page, CSV/Parquet exports."""
    import json

    from actbench.report import plots
    from actbench.results import load, load_rows

    run_dir = Path(run_dir)
    trials = load(run_dir)
    if trials.empty:
        raise UserError(f"{run_dir}: no trials.jsonl with records below it")
    out = Path(out) if out else run_dir / "report"
    out.mkdir(parents=True, exist_ok=True)
    rows = load_rows(run_dir)
    summary = trials.groupby(["suite", "kind", "status"]).size().rename("trials").reset_index()
    failed = trials[trials["status"] != "ok"]
    fail_cols = [c for c in ("suite", "trial_id", "activation", "status", "error_type", "error_message", "note") if c in failed]
    failures = failed[fail_cols].reset_index(drop=True)
    names = list(dict.fromkeys(trials["activation"].dropna())) if "activation" in trials else []
    frames = compare_frames(names, run_dir) if names else {}
    images = plots.lm_curves(run_dir, out) + plots.kernel_bars(rows, out)
    if names:
        images.append(plots.activation_shapes(names, out / "activations.png"))
    flat = trials.map(lambda v: json.dumps(v) if isinstance(v, (list, dict)) else v)
    flat.to_csv(out / "trials.csv", index=False)
    exports = [out / "trials.csv"]
    if not rows.empty:
        rows.to_csv(out / "rows.csv", index=False)
        exports.append(out / "rows.csv")
    try:
        flat.to_parquet(out / "trials.parquet", index=False)
        exports.append(out / "trials.parquet")
        if not rows.empty:
            rows.to_parquet(out / "rows.parquet", index=False)
            exports.append(out / "rows.parquet")
    except ImportError:
        pass  # pyarrow is the `parquet` extra
    sections = [("Summary", summary.to_html(index=False))]
    if not failures.empty:
        sections.append(("Trials that did not succeed", failures.to_html(index=False)))
    for kind, df in frames.items():
        if not df.empty:
            lines = "".join(f"<li>{line}</li>" for line in verdicts(frames, names).get(kind, []))
            sections.append((f"{kind} (baseline: {names[0]})", df.drop(columns=[c for c in ("values",) if c in df]).to_html(index=False, float_format=lambda v: f"{v:.4g}") + f"<ul>{lines}</ul>"))
    (out / "report.html").write_text(plots.html_page(f"actbench report: {run_dir}", sections, images))
    return {"summary": summary, "failures": failures, "frames": frames, "names": names, "images": images,
            "html": out / "report.html", "exports": exports, "out": out}
