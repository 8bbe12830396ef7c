"""The sections of report.html: each comparison's table with its verdicts in words and its plots
beside it, then the trials, the environments and the suites as run (folded). Paths are shown
relative to the report."""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING

from actbench.report.cells import esc
from actbench.report.findings import findings
from actbench.report.formats import verdict_alpha
from actbench.report.htmltables import environment_table, frame_table, kernel_tables, lm_table, memory_table, scaling_table
from actbench.report.output import inside
from actbench.report.page import figure
from actbench.report.present import lm_line

if TYPE_CHECKING:
    import pandas as pd

    from actbench.report.formats import Comparison

CAPTIONS = {
    "lm": "How to read: line = mean over seeds, band = min to max; left: training loss against tokens, middle: validation against "
          "tokens, right: against wall-clock; the diamond is the final whole-split value the table reports; lower is better.",
    "alphas": "How to read: each layer's learned alpha_p (left) and alpha_n (right) from its initial value at step 0; colour: activation, "
              "line style and end label: layer.",
    "kernel": "How to read: one row per mode; left: achieved GB/s against input size, right: % of a device copy in the same trial "
              "(black dashed: the copy); colour: activation, line style: impl; higher is better.",
    "scaling": "How to read: points are seeds, lines each activation's fitted E + A (C/C0)^-alpha; a lower line reaches a loss with less compute.",
    "tuning": "How to read: the tuning metric against the tuned value; line: mean over seeds, dots: seeds, star: the value chosen.",
}


def _lines(lines: list[str], rel: dict[str, str]) -> str:
    """Verdict lines in words, with this machine's paths relative to the report."""
    return "<ul class='lines'>" + "".join(f"<li>{esc(_relative(line, rel))}</li>" for line in lines) + "</ul>" if lines else ""


def _figures(images: list[Path], out: Path, suites: list[str]) -> dict[str, list[Path]]:
    """The images per place: 'lm:<suite>' (curves, alphas, tuning), 'kernel', 'scaling:<suite>', or 'other'."""
    owner: dict[str, str] = {}
    for suite in suites:
        for kind in ("lm", "alphas", "tuning", "scaling"):
            place = f"scaling:{suite}" if kind == "scaling" else f"lm:{suite}"
            for name in [suite, *(f"{suite}_{i}" for i in range(1, len(images) + 1))]:
                owner.setdefault(inside(out, f"{kind}_{name}", ".png").name, place)
    placed: dict[str, list[Path]] = {}
    for p in images:
        place = owner.get(p.name) or ("kernel" if p.name.startswith("kernel_") else "other")
        placed.setdefault(place, []).append(p)
    return placed


def _figure_html(paths: list[Path], ids: dict[Path, str]) -> str:
    return "".join(figure(p, ids[p], CAPTIONS.get(p.name.split("_", 1)[0], "")) for p in paths)


def page_sections(c: "Comparison | None", names: list[str], why: str, alpha: float, images: list[Path], summary: "pd.DataFrame",
                  failures: "pd.DataFrame", envs: "pd.DataFrame", suite_files: list[tuple[str, str]], rel: dict[str, str],
                  out: Path) -> tuple[list[str], list[tuple[str, str, str]]]:
    """(findings, sections) of the page."""
    suites = sorted({str(s) for s in summary["suite"].dropna()}) if "suite" in summary else []
    placed = _figures(images, out, suites)
    ids = {p: f"fig-{i + 1}" for i, p in enumerate(images)}
    sections: list[tuple[str, str, str]] = []
    anchors: dict[str, str] = {}
    plots: dict[str, str] = {}
    if c is not None:
        base = names[0]
        lm = c.frames["lm"]
        said: set[str] = set()
        groups = list(lm.groupby(["suite", "setup", "results"], sort=False)) if not lm.empty else []
        last_of_suite = {str(key[0]): i for i, (key, _) in enumerate(groups)}
        for i, (key, g) in enumerate(groups):
            anchors[str(key)] = f"lm-{i + 1}"
            figs = placed.pop(f"lm:{key[0]}", []) if last_of_suite[str(key[0])] == i else []
            first_fig = next((ids[p] for p in placed.get(f"lm:{key[0]}", figs)), None)
            if first_fig:
                plots[str(key)] = first_fig
            r = g.iloc[0]
            lines = [line for row in g.itertuples() if (line := lm_line(row, base))]
            said.update(lines)
            caption = (f"{esc(r.metric)}: lower is better; verdicts at family-wise {esc(verdict_alpha(g, alpha))}"
                       + (f"; {esc(r.shared)}" if isinstance(r.shared, str) and r.shared else "")
                       + ("; throughput measured on CPU" if r.device == "cpu" else "") + ". Click a heading to sort.")
            title = f"lm: {key[0]}" + (f" [{r.setup_label}]" if r.setup_label else "") + (f" ({key[2]})" if key[2] != "." else "")
            sections.append((f"lm-{i + 1}", title, f"<p class='caption'>{caption}</p>{lm_table(g, base)}"
                             f"<h3>In words</h3>{_lines(lines, rel)}{_figure_html(figs, ids)}"))
        cost = [line for line in c.lines.get("lm", []) if line not in said]
        if cost:
            sections.append(("cost", "What the runs cost", _lines(cost, rel)))
        for kind, make in (("kernel", lambda f: kernel_tables(f, base)), ("memory", memory_table)):
            if not c.frames[kind].empty:
                anchors[kind] = kind
                figs = placed.pop(kind, [])
                if figs:
                    plots[kind] = ids[figs[0]]
                sections.append((kind, f"{kind} (baseline: {base}, {why})",
                                 make(c.frames[kind]) + f"<h3>In words</h3>{_lines(c.lines.get(kind, []), rel)}{_figure_html(figs, ids)}"))
        sc = c.frames["scaling"]
        if not sc.empty:
            anchors["scaling"] = "scaling"
            parts = []
            for (suite, _), g in sc.groupby(["suite", "results"], sort=False):
                figs = placed.pop(f"scaling:{suite}", [])
                plots.setdefault("scaling", ids[figs[0]]) if figs else None
                parts.append(f"<h3>{esc(suite)}</h3>{scaling_table(g, base)}{_figure_html(figs, ids)}")
            sections.append(("scaling", f"scaling (baseline: {base})", "".join(parts) + _lines(c.lines.get("scaling", []), rel)))
    rest = [p for paths in placed.values() for p in paths]
    if rest:
        sections.append(("plots", "More plots", _figure_html(rest, ids)))
    trials = frame_table(summary, "trials per suite, kind and status")
    if not failures.empty:
        trials += "<h3 id='failures'>Trials that did not succeed</h3>" + frame_table(failures.reset_index(drop=True))
    sections.append(("trials", "Summary of the trials", trials))
    env = environment_table(envs.assign(results=envs["results"].map(lambda d: rel.get(d, d)))) if not envs.empty else "<p>no environment recorded</p>"
    kept = "".join(f"<details><summary>{esc(_relative(title, rel))}</summary><pre>{html.escape(text)}</pre></details>" for title, text in suite_files)
    sections.append(("environment", "Environment (distinct fingerprints of the trials) and the suites as run", env + kept))
    return (findings(c, anchors, plots) if c is not None else []), sections


def _relative(text: str, rel: dict[str, str]) -> str:
    """`text` with this machine's results paths relative to the report."""
    for absolute, short in sorted(rel.items(), key=lambda kv: -len(kv[0])):
        text = text.replace(absolute, short)
    return text


def meta(trials: "pd.DataFrame", names: list[str], why: str, source: str) -> str:
    """What was read: the results (relative to the report), trials, suites, the baseline and why."""
    ok = int((trials["status"] == "ok").sum()) if "status" in trials else len(trials)
    suites = sorted({str(s) for s in trials["suite"].dropna()}) if "suite" in trials else []
    text = (f"results: {source} (relative to this page) · {len(trials):,} trial(s), {ok:,} ok" + (f", {len(trials) - ok:,} not ok" if ok < len(trials) else "")
            + f" · suites: {', '.join(suites) or '-'}" + (f" · baseline: {names[0]} ({why})" if names else ""))
    return esc(text) + (" · <a href='#failures'>failures</a>" if ok < len(trials) else "")

