"""`actbench report`: summary, failures, comparisons, PNG plots, a self-contained HTML page and
CSV/Parquet exports of one results folder (or a folder of them). Missing values show as "-"."""

from __future__ import annotations

import html
import json
import os
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from actbench.errors import UserError
from actbench.report import compare

if TYPE_CHECKING:
    import pandas as pd

    from actbench.select import TrialFilter


def choose_baseline(trials: "pd.DataFrame", names: list[str], requested: str | None = None) -> tuple[str, str]:
    """(baseline, why): `requested` when given (it must be present in the results), else the lm
    suites' `reference` when it is among the results, else the first activation recorded."""
    from actbench.activations.registry import unknown_message

    if requested is not None:
        if requested not in names:
            raise UserError(f"--baseline: {unknown_message(requested, names)}; activations in these results: {', '.join(names)}")
        return requested, "--baseline"
    if "reference" in trials and "kind" in trials:
        refs = Counter(r for r in trials.loc[trials["kind"] == "lm", "reference"].dropna() if r in names)
        if refs:
            return refs.most_common(1)[0][0], "the suite's reference"
    return names[0], "the first activation recorded"


def _html_table(df: "pd.DataFrame") -> str:
    """An HTML table of df's cells as `compare.display` writes them, escaped (built directly:
    pandas' to_html takes seconds for the thousands of rows of a large kernel table)."""
    shown = compare.display(df)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in shown.columns)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(v)}</td>" for v in row) + "</tr>\n" for row in shown.itertuples(index=False))
    return f'<table class="dataframe">\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}</tbody>\n</table>'


def _json_lists(df: "pd.DataFrame") -> "pd.DataFrame":
    """Lists and dicts in object columns as JSON text (CSV and Parquet cells are scalars)."""
    import numpy as np
    import pandas as pd

    df = df.copy()
    for c in df.columns:  # infer_dtype (one C pass) names columns of plain strings or numbers; only the rest are looked at
        if df[c].dtype == object and pd.api.types.infer_dtype(df[c], skipna=True) in ("mixed", "mixed-integer"):
            # each object once (the rows of a trial share its config's lists), told apart by id while df holds them all;
            # map infers the same dtype from them as from the whole column: the same types and values
            values = df[c].to_numpy()
            _, first, inverse = np.unique(np.fromiter(map(id, values), np.uint64, len(values)), return_index=True, return_inverse=True)
            text = pd.Series(values[first], dtype=object).map(lambda v: json.dumps(v) if isinstance(v, (list, dict)) else v)
            df[c] = text.take(inverse).set_axis(df.index)
    return df


def _partial(path: Path) -> Path:
    """Where an export is written before the report succeeds (then it replaces `path`)."""
    return path.with_name(f".{path.name}.partial")


EXPORTS = ("trials.csv", "trials.parquet", "rows.csv", "rows.parquet")


def _exports(trials: "pd.DataFrame", rows: "pd.DataFrame", out: Path) -> list[Path]:
    """trials and rows as CSV and Parquet, written under `_partial` names (the report moves them
    into place once it has succeeded; the final paths are returned). With pyarrow (the `parquet`
    extra) both are written from one Arrow table (fast); without it, or for a column of mixed
    types that has no Arrow type, CSV is written by pandas and Parquet is left out."""
    exports = []
    for name, df in (("trials", trials.drop(columns=["config", "env"], errors="ignore")), ("rows", rows)):
        if df.empty:
            continue
        df = _json_lists(df)
        csv, parquet = out / f"{name}.csv", out / f"{name}.parquet"
        try:
            import pyarrow as pa
            import pyarrow.csv as pa_csv
            import pyarrow.parquet as pq

            table = pa.Table.from_pandas(df, preserve_index=False)
            pa_csv.write_csv(table, _partial(csv))
            pq.write_table(table, _partial(parquet))
            exports += [csv, parquet]
        except (ImportError, ValueError, TypeError):  # pyarrow's errors derive from these
            _partial(parquet).unlink(missing_ok=True)
            df.to_csv(_partial(csv), index=False)
            exports.append(csv)
    return exports


ENV_FIELDS = {"git commit": "git_commit", "actbench": "actbench", "python": "python", "torch": "torch", "triton": "triton",
              "ray": "ray", "platform": "platform", "host": "hostname", "CPUs": "cpu_count", "GPU": "gpu_name", "GPUs": "gpu_count",
              "driver": "driver", "CUDA": "cuda", "torch threads": "torch_threads", "interop threads": "torch_interop_threads",
              "OMP_NUM_THREADS": "omp_num_threads", "deterministic": "deterministic_algorithms"}
"""The environment fingerprint's fields the report shows (column: key in a record's `env`)."""


def environments(trials: "pd.DataFrame") -> "pd.DataFrame":
    """One row per distinct environment the trials ran in (ENV_FIELDS), with its results folder,
    suite and the number of trials (records of one run share one `env` object: cheap)."""
    import pandas as pd

    if trials.empty or "env" not in trials:
        return pd.DataFrame()
    seen: dict[tuple, dict[str, Any]] = {}
    by_object: dict[tuple[int, str, str], tuple] = {}
    for env, d, suite in zip(trials["env"], trials["results_dir"].astype(str), trials["suite"].astype(str)):
        key = by_object.get((id(env), d, suite))
        if key is None:
            e = env if isinstance(env, dict) else {}
            values = tuple(json.dumps(e.get(k), sort_keys=True) if isinstance(e.get(k), (list, dict)) else e.get(k) for k in ENV_FIELDS.values())
            key = by_object[(id(env), d, suite)] = (d, suite, values)
        row = seen.get(key)
        if row is None:
            row = seen[key] = {"results": key[0], "suite": key[1], **dict(zip(ENV_FIELDS, key[2])), "trials": 0}
        row["trials"] += 1
    return pd.DataFrame(list(seen.values()))


def _suite_files(trials: "pd.DataFrame") -> list[tuple[str, str]]:
    """(title, text) of every suite file its run kept (`<results>/suites/<name>.yaml`)."""
    out = []
    if trials.empty or "suite" not in trials:
        return out
    for d, name in trials[["results_dir", "suite"]].astype(str).drop_duplicates().itertuples(index=False):
        path = Path(d) / "suites" / f"{name}.yaml"
        try:
            out.append((str(path), path.read_text(encoding="utf-8", errors="replace")))
        except OSError:
            out.append((f"{name} ({d})", "not kept: runs before the runner kept the effective suite in <results>/suites/ did not save it"))
    return out


def _environment_section(trials: "pd.DataFrame") -> str:
    envs = environments(trials)
    table = _html_table(envs) if not envs.empty else "<p>no environment recorded</p>"
    suites = "".join(f"<h3>{html.escape(title)}</h3><pre>{html.escape(text)}</pre>" for title, text in _suite_files(trials))
    return table + suites


def build_report(run_dir: str | Path, out: str | Path | None = None, *, baseline: str | None = None, alpha: float = 0.05,
                 merge: bool = False, select: "TrialFilter | None" = None, parallel: bool = False) -> dict[str, Any]:
    """Summary, failures, comparison tables, PNG plots, HTML page, CSV/Parquet exports (of the
    trials `select` matches); `parallel`: see `load_tables`."""
    from actbench.report import plots
    from actbench.results import gc_frozen, load_tables
    from actbench.select import select_frames

    run_dir = Path(run_dir)
    all_trials, all_rows = load_tables(run_dir, parallel=parallel)
    if all_trials.empty:
        raise UserError(f"{run_dir}: no trial records in a trials.jsonl at or below it")
    with gc_frozen():  # what follows allocates plenty (plots): its collections need not traverse the loaded tables
        trials, rows = select_frames(select, all_trials, all_rows)
        out = Path(out) if out else (run_dir if run_dir.is_dir() else run_dir.parent) / "report"
        out.mkdir(parents=True, exist_ok=True)
        summary = trials.groupby(["suite", "kind", "status"], dropna=False).size().rename("trials").reset_index()
        failed = trials[trials["status"] != "ok"]
        failures = failed[[c for c in ("suite", "trial_id", "activation", "status", "error_type", "error_message", "note") if c in failed]]
        names = list(trials["activation"].dropna().unique()) if "activation" in trials else []
        why = ""
        if names:
            base, why = choose_baseline(trials, names, baseline)
            names = [base, *(n for n in names if n != base)]
        try:
            with ThreadPoolExecutor(1, thread_name_prefix="actbench-exports") as writing:
                # pyarrow writes CSV and Parquet without holding the GIL: the exports go on beside the comparison and plots
                exporting = writing.submit(_exports, trials, rows, out)
                comparison = compare.build(names, all_trials, all_rows, run_dir, alpha=alpha, merge=merge, select=select) if names else None
                # tuned suites: the curves of their final trials, chosen from all records before -k (tuning has its own plot)
                suites, _ = compare.saved_suites(all_trials)
                curves = select_frames(select, compare.select_tuned(all_trials, suites)[0], all_rows, empty_ok=True)[0] if suites else trials
                images = plots.lm_curves(curves, out, comparison.series if comparison is not None else None, merge)
                images += plots.kernel_throughput(rows, out)
                if comparison is not None:
                    images += plots.scaling_plot(comparison.frames["scaling"], out)
                images += plots.tuning_plot(all_trials, suites, out)
            exports = exporting.result()
            for path in exports:  # the report succeeded: its exports replace any earlier ones
                os.replace(_partial(path), path)
        finally:  # a report that failed leaves the earlier exports as they were
            for name in EXPORTS:
                _partial(out / name).unlink(missing_ok=True)
        sections = [("Summary", _html_table(summary))]
        if not failures.empty:
            sections.append(("Trials that did not succeed", _html_table(failures.reset_index(drop=True))))
        if comparison is not None:
            for kind, df in comparison.frames.items():
                if not df.empty:
                    lines = "".join(f"<li>{html.escape(line)}</li>" for line in comparison.lines.get(kind, []))
                    sections.append((f"{kind} (baseline: {names[0]}, {why}; alpha={alpha:g})",
                                     _html_table(df.drop(columns=compare.LIST_COLUMNS, errors="ignore")) + f"<ul>{lines}</ul>"))
        sections.append(("Environment (distinct fingerprints of the trials) and the suites as run", _environment_section(trials)))
        (out / "report.html").write_text(plots.html_page(f"actbench report: {run_dir}", sections, images))
        return {"summary": summary, "failures": failures, "comparison": comparison, "names": names, "baseline_why": why,
                "images": images, "html": out / "report.html", "exports": exports, "out": out}
