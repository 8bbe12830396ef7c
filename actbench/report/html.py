"""`actbench report`: summary, failures, comparisons, PNG plots, a self-contained HTML page and
CSV/Parquet exports of one results folder (or a folder of them). Missing values show as "-"."""

from __future__ import annotations

import json
import os
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from actbench.errors import UserError
from actbench.report import compare, output
from actbench.report.formats import json_lists
from actbench.report.page import html_page
from actbench.report.sections import meta, page_sections
from actbench.report.replay import replay, saved_suites
from actbench.results import gate
from actbench.suite.yamlsafe import MAX_SUITE_BYTES

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


class _Cancelled(Exception):
    """The report failed or was interrupted while its exports were being written."""


def _sink(path: Path, staged: dict[Path, Path], cancelled: threading.Event) -> BinaryIO:
    """A fresh temporary file beside `path` (`output.fresh`), in `staged`, open to be written
    through its descriptor (one the report removes meanwhile is then written nowhere, not made
    again); _Cancelled, the file removed, once the report has failed."""
    staged[path] = output.fresh(path)
    sink = open(os.open(staged[path], os.O_WRONLY | os.O_NOFOLLOW | os.O_CLOEXEC), "wb")
    if cancelled.is_set():
        sink.close()
        staged.pop(path).unlink(missing_ok=True)
        raise _Cancelled
    return sink


def _exports(trials: "pd.DataFrame", rows: "pd.DataFrame", out: Path, staged: dict[Path, Path], cancelled: threading.Event) -> None:
    """trials and rows as CSV and Parquet, each written to a fresh temporary file beside its final
    path (`output.fresh`: never through a planted link), on a thread beside the figures (Arrow
    writes without the GIL); the report moves them into place once it has succeeded, and stops them
    (`cancelled`) when it fails. `staged` gets final path -> written file. Both are written by
    pyarrow from one Arrow table; for a column of mixed types that has no Arrow type, CSV is written
    by pandas and Parquet is left out."""
    import pyarrow as pa
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    for name, df in (("trials", trials.drop(columns=["config", "env"], errors="ignore")), ("rows", rows)):
        if df.empty:
            continue
        df = json_lists(df)
        csv, parquet = out / f"{name}.csv", out / f"{name}.parquet"
        try:
            table = pa.Table.from_pandas(df, preserve_index=False)
        except (ValueError, TypeError):  # pyarrow's errors derive from these
            with _sink(csv, staged, cancelled) as sink:
                df.to_csv(sink, index=False, errors="backslashreplace")  # a lone surrogate: its escape
            continue
        with _sink(csv, staged, cancelled) as sink:
            pa_csv.write_csv(table, sink)
        with _sink(parquet, staged, cancelled) as sink:
            pq.write_table(table, sink)


ENV_FIELDS = {"git commit": "git_commit", "actbench": "actbench", "python": "python", "torch": "torch", "triton": "triton",
              "ray": "ray", "platform": "platform", "host": "hostname", "CPUs": "cpu_count", "GPU": "gpu_name", "GPUs": "gpu_count",
              "driver": "driver", "CUDA": "cuda", "torch threads": "torch_threads", "interop threads": "torch_interop_threads",
              "OMP_NUM_THREADS": "omp_num_threads", "deterministic": "deterministic_algorithms"}
"""The environment fingerprint's fields the report shows (column: key in a record's `env`)."""


def environments(trials: "pd.DataFrame") -> "pd.DataFrame":
    """One row per distinct environment the trials ran in (ENV_FIELDS), with its results folder,
    suite and the number of trials."""
    import numpy as np
    import pandas as pd

    if trials.empty or "env" not in trials:
        return pd.DataFrame()
    seen: dict[tuple, dict[str, Any]] = {}
    envs = trials["env"].to_numpy(dtype=object)  # trials read from the index share one object per distinct env: grouped by object
    each = pd.factorize(np.fromiter(map(id, envs), np.uint64, len(envs)))[0]
    counts = pd.Series(each).groupby([trials["results_dir"].astype(str).to_numpy(), trials["suite"].astype(str).to_numpy(), each],
                                     sort=False).size()
    first = np.empty(each.max() + 1 if len(each) else 0, np.int64)
    first[each[::-1]] = np.arange(len(each))[::-1]
    for (d, suite, code), n in counts.items():
        e = envs[first[code]] if isinstance(envs[first[code]], dict) else {}
        values = tuple(json.dumps(e.get(k), sort_keys=True) if isinstance(e.get(k), (list, dict)) else e.get(k) for k in ENV_FIELDS.values())
        row = seen.setdefault((d, suite, values), {"results": d, "suite": suite, **dict(zip(ENV_FIELDS, values)), "trials": 0})
        row["trials"] += int(n)
    return pd.DataFrame(list(seen.values()))


def _suite_files(trials: "pd.DataFrame") -> list[tuple[str, str]]:
    """(title, text) of every suite file its run kept (`<results>/suites/<name>.yaml`), read
    through the results folder's gate (a suite field that is not a plain name names no file)."""
    out = []
    if trials.empty or "suite" not in trials:
        return out
    for d, name in trials[["results_dir", "suite"]].astype(str).drop_duplicates().itertuples(index=False):
        kept = gate.kept_suite(name)
        if kept is None:
            out.append((f"{name} ({d})", "no suite file read: the records' suite field is not a plain suite name"))
            continue
        try:
            out.append((str(Path(d) / kept), gate.read(d, kept, MAX_SUITE_BYTES).decode("utf-8", errors="replace")))
        except FileNotFoundError:
            out.append((f"{name} ({d})", "not kept: runs before the runner kept the effective suite in <results>/suites/ did not save it"))
        except gate.Refused as e:
            gate.warn(e)
            out.append((str(e.path), f"not read: {e.why}"))
    return out


def build_report(run_dir: str | Path, out: str | Path | None = None, *, baseline: str | None = None, alpha: float = 0.05,
                 merge: bool = False, select: "TrialFilter | None" = None, margin: float | None = None) -> dict[str, Any]:
    """Summary, failures, comparison tables, PNG plots, HTML page, CSV/Parquet exports (of the
    trials `select` matches)."""
    from actbench.report.plots.kernel import kernel_throughput
    from actbench.report.plots.lm import lm_curves
    from actbench.report.plots.stages import scaling_plot, tuning_plot
    from actbench.results.frames import load_tables, release_arrow_memory
    from actbench.select import select_frames

    run_dir = Path(run_dir)
    if out is None:  # <results>/report: inside the folder read, so no planted link may lead it elsewhere
        out = (run_dir if run_dir.is_dir() else run_dir.parent) / "report"
        if out.is_symlink() or (out.exists() and not out.is_dir()):
            raise UserError(f"{out}: not a folder (a symbolic link or a file is in the way of the report); give --out")
    elif Path(out).exists() and not Path(out).is_dir():
        raise UserError(f"--out {out}: not a folder (a file is in the way of the report)")
    all_trials, all_rows = load_tables(run_dir)
    if all_trials.empty:
        raise UserError(f"{run_dir}: no trial records in a trials.jsonl at or below it")
    trials, rows = select_frames(select, all_trials, all_rows)
    out = output.folder(Path(out))
    summary = trials.groupby(["suite", "kind", "status"], dropna=False).size().rename("trials").reset_index()
    failed = trials[trials["status"] != "ok"]
    failures = failed[[c for c in ("suite", "trial_id", "activation", "status", "error_type", "error_message", "note") if c in failed]]
    names = list(trials["activation"].dropna().unique()) if "activation" in trials else []
    why = ""
    if names:
        base, why = choose_baseline(trials, names, baseline)
        names = [base, *(n for n in names if n != base)]
    staged: dict[Path, Path] = {}
    exporter, cancelled = ThreadPoolExecutor(1, "report-exports"), threading.Event()
    try:
        exporting = exporter.submit(_exports, trials, rows, out, staged, cancelled)
        kernels = kernel_throughput(rows, out)  # drawn before compare: the rows are let go once compare has read them
        exporting.result()  # written before compare, whose peak would otherwise add to theirs
        release_arrow_memory()
        comparison = compare.build(names, all_trials, all_rows, run_dir, alpha=alpha, merge=merge, select=select, margin=margin) \
            if names else None
        # staged suites: the curves of their final trials, chosen from all records before -k (tuning has its own plot)
        if comparison is not None:
            suites, final, plans = comparison.suites, comparison.replayed, comparison.plans
        else:
            suites = saved_suites(all_trials)[0]
            final, _, plans = replay(all_trials, suites)
        curves = select_frames(select, final, all_rows, empty_ok=True)[0] if suites else trials
        del rows, all_rows  # read by now: their memory goes back before the lm figures are drawn
        release_arrow_memory()
        images = lm_curves(curves, out, comparison.series if comparison is not None else None, merge)
        images += kernels
        if comparison is not None:
            images += scaling_plot(comparison.frames["scaling"], out)
        images += tuning_plot(all_trials, suites, plans, out)
        exports = list(staged)
        for path, written in staged.items():  # the report succeeded: its exports replace any earlier ones
            os.replace(written, path)
    finally:  # a report that failed leaves the earlier exports as they were, its own stopped and removed (a second Ctrl-C too)
        cancelled.set()
        try:
            exporter.shutdown(wait=True)
        finally:
            for written in list(staged.values()):
                written.unlink(missing_ok=True)
        release_arrow_memory()
    rel = {d: os.path.relpath(d, out) for d in trials["results_dir"].astype(str).unique()} if "results_dir" in trials else {}
    found, sections = page_sections(comparison, names, why, alpha, images, summary, failures, environments(trials), _suite_files(trials), rel, out)
    page = html_page(f"actbench report: {os.path.relpath(run_dir, out)}", meta(trials, names, why, os.path.relpath(run_dir, out)), found, sections)
    output.write(out / "report.html", lambda f: f.write(page.encode("utf-8", "replace")))  # a lone surrogate from a record: "?"
    return {"summary": summary, "failures": failures, "comparison": comparison, "names": names, "baseline_why": why,
            "images": images, "html": out / "report.html", "exports": exports, "out": out}

