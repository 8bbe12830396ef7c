"""The report's tables for people (HTML, `cells.table`): lm one per table with its long notes as
footnotes, kernel grouped by (dtype, mode) and folded past a screenful, memory, scaling, the
environments one column per fingerprint, and any other frame cell by cell."""

from __future__ import annotations

import html
import numbers
from typing import TYPE_CHECKING, Any, Iterable

import numpy as np

from actbench.report.cells import (MISSING, Cell, count, duration_ms, esc, missing, number, plus_minus, si, table, text,
                                   with_interval, yes_no)
from actbench.report.formats import fmt_cell
from actbench.report.present import DECIDED

if TYPE_CHECKING:
    import pandas as pd

SCREENFUL = 30
"""Rows a kernel table shows unfolded; past it every (dtype, mode) group starts folded."""
GROUP_ROWS = 200
"""Rows one (dtype, mode) group of the kernel table shows at most (every row is in compare's CSV)."""


def verdict_class(verdict: Any) -> str:
    """The CSS class colouring a verdict: v-better, v-worse, v-equivalent, v-undecided, v-pending, v-none."""
    word = str(verdict).split(" ")[0]
    word = {"faster": "better", "slower": "worse", "same": "equivalent", "noisy": "undecided", "baseline": "none"}.get(word, word)
    return f"v-{word}" if word in ("better", "worse", "equivalent", "undecided", "pending") else "v-none"


def verdict_cell(shown: str, verdict: Any) -> Cell:
    return Cell(f'<span class="verdict {verdict_class(verdict)}">{html.escape(shown)}</span>', None, "t")


def frame_table(df: "pd.DataFrame", caption: str = "") -> str:
    """Any frame, every cell as `formats.fmt_cell` writes it (numbers sort by value), booleans as yes / no."""
    rows = [[Cell(esc(yes_no(v)), None, "t") if isinstance(v, (bool, np.bool_)) else
             Cell(esc(fmt_cell(v)), None if missing(v) else float(v)) if isinstance(v, numbers.Real) else Cell(esc(fmt_cell(v)), None, "wrap")
             for v in row] for row in df.itertuples(index=False)]
    return table([(str(c), str(c)) for c in df.columns], rows, caption)


class Footnotes:
    """Long notes of a table's rows as numbered footnotes (one number per distinct text)."""

    def __init__(self) -> None:
        self.texts: dict[str, int] = {}

    def mark(self, notes: Iterable[Any]) -> str:
        marks = []
        for note in notes:
            if isinstance(note, str) and note:
                marks.append(self.texts.setdefault(note, len(self.texts) + 1))
        return " ".join(f"[{n}]" for n in marks)

    def html(self) -> str:
        items = "".join(f"<li value='{n}'>{html.escape(t)}</li>" for t, n in self.texts.items())
        return f"<ol class='notes'>{items}</ol>" if items else ""


def lm_table(g: "pd.DataFrame", base: str) -> str:
    """One lm table: the candidates' verdicts first, then the numbers, the notes as footnotes."""
    metric = str(g.iloc[0].metric)
    notes = Footnotes()
    rows = []
    for r in g.itertuples():
        is_base = r.activation == base
        verdict = str(r.verdict) + (f" at look {int(r.look)}" if not missing(r.look) and r.look > 0 and r.verdict in DECIDED else "")
        extra = f"{int(r.extra_pairs)} more paired seed(s) recorded, not used" if not missing(r.extra_pairs) and r.extra_pairs else None
        size = f"{si(r.params)} / {si(r.flops_per_token)}" if is_base else \
            f"{si(r.params)} ({MISSING if missing(r.params_diff_pct) else f'{r.params_diff_pct:+.1f}%'}) / " \
            f"{si(r.flops_per_token)} ({MISSING if missing(r.flops_diff_pct) else f'{r.flops_diff_pct:+.1f}%'})"
        speed = MISSING if is_base or missing(r.speed_ratio) else \
            f"{r.speed_ratio:.2f}×" + (f" [{r.speed_low:.2f}, {r.speed_high:.2f}]" if not missing(r.speed_low) else "")
        rows.append([
            Cell(f"<b>{esc(r.activation)}</b>", None, "t"),
            verdict_cell("baseline" if is_base else verdict, r.verdict),
            number(MISSING if is_base else with_interval(r.delta, r.low, r.high), r.delta),
            number(str(r.n) if is_base else f"{r.pairs} paired" if r.pairs else str(r.n), r.n),
            number(plus_minus(r.mean, r.ci95), r.mean),
            number(MISSING if missing(r.eval_ci95) else f"± {r.eval_ci95:.2g}", r.eval_ci95),
            number(speed, r.speed_ratio),
            number(count(r.tokens_per_s), r.tokens_per_s),
            Cell(html.escape(size) + ("" if r.matched is not False else " <b>UNMATCHED</b>"), None if missing(r.params) else float(r.params)),
            number(count(r.d_ff), r.d_ff),
            text(r.lr if r.lr is not None else MISSING),
            number(f"{r.trials}/{r.runs}" + (f" ({r.not_ok} not ok)" if r.not_ok else ""), r.trials),
            Cell(notes.mark([getattr(r, "tuned", None), r.design, r.failures, r.recorded, extra]), None, "t"),
        ])
    columns = [("activation", "the activation (the first column stays in view)"),
               ("verdict", "against the baseline on paired seeds, at the family-wise alpha; 'at look k': decided at look k"),
               (f"Δ {metric} [interval]", f"candidate minus baseline on paired seeds, with the interval behind the verdict; lower {metric} is better"),
               ("seeds", "paired seeds behind the verdict (the baseline: its seeds)"),
               (f"{metric} mean ± 95% CI", "over seeds"), ("eval-set ±", "the eval-set bootstrap half-width of Δ"),
               ("speed [95% CI]", f"tokens/s relative to {base}'s: the cost ratio (above 1: cheaper)"),
               ("tokens/s", "training throughput"),
               ("params / FLOPs per token", f"the baseline's; the candidates' with % against it (UNMATCHED: too far off)"),
               ("d_ff", "MLP hidden width"), ("lr", "learning rate"), ("trials/runs", "records and runs behind the row"),
               ("notes", "numbered notes under the table")]
    return table(columns, rows) + notes.html()


def kernel_tables(k: "pd.DataFrame", base: str) -> str:
    """The kernel table grouped by (dtype, mode), each group folded when the whole is past a
    screenful, each at most GROUP_ROWS rows (a note says how many are left out)."""
    folders, gpus = k["results"].nunique(), k["gpu_name"].nunique()
    fold = len(k) > SCREENFUL
    parts = []
    for (dtype, mode), g in k.groupby(["dtype", "mode"], sort=False):
        tally = g.loc[g["verdict"] != "baseline", "verdict"].value_counts()
        said = ", ".join(f"{n} {v}" for v, n in tally.items())
        shown = g.head(GROUP_ROWS)
        rows = []
        for r in shown.itertuples():
            word = f"{r.verdict} {r.ratio:.2f}×" if r.verdict in ("faster", "slower") else str(r.verdict)
            row = [Cell(esc(r.activation) + (" <span class='mark' title='gated: 2x input'>gated</span>" if r.gated is True else ""), None, "t"),
                   text(r.impl), number(count(r.size), r.size), number(count(r.width), r.width),
                   number(f"{duration_ms(r.ms_p50)} [{duration_ms(r.ms_low)}, {duration_ms(r.ms_high)}]", r.ms_p50),
                   number(MISSING if missing(r.gbps) else f"{r.gbps:,.1f}", r.gbps), number(MISSING if missing(r.pct_copy) else f"{r.pct_copy:.1f}%", r.pct_copy),
                   verdict_cell(word + ("" if r.verdict in ("baseline", "no baseline") else f" (vs {r.baseline_impl})"), r.verdict),
                   number(f"{r.trials}/{r.runs}", r.trials)]
            row += [text(r.results)] if folders > 1 else []
            row += [text(r.gpu_name)] if gpus > 1 else []
            rows.append(row)
        columns = [("activation", "the activation"), ("impl", "implementation"), ("size", "input elements"), ("width", "last dimension"),
                   ("median [p20, p80]", "time per call, median over repeats with its p20-p80 interval"),
                   ("GB/s", "achieved bandwidth (minimal bytes)"), ("% of copy", "of a device copy in the same trial"),
                   (f"vs {base}", f"against {base}'s best impl at the same shape: same (intervals overlap), noisy (too wide), faster / slower by the ratio"),
                   ("trials/runs", "records and runs behind the row")]
        columns += [("results", "results folder")] if folders > 1 else []
        columns += [("GPU", "device")] if gpus > 1 else []
        cut = f"<p class='caption'>the first {GROUP_ROWS:,} of {len(g):,} rows; <code>actbench compare --format csv</code> prints them all</p>" \
            if len(g) > GROUP_ROWS else ""
        summary = f"{esc(dtype)} · {esc(mode)}: {len(g):,} row(s)" + (f": {esc(said)}" if said else "")
        parts.append(f"<details{'' if fold else ' open'}><summary>{summary}</summary>{table(columns, rows)}{cut}</details>")
    return ("<p class='caption'>folded: open a group to see its rows</p>" if fold else "") + "".join(parts)


def memory_table(m: "pd.DataFrame") -> str:
    rows = [[Cell(esc(r.activation) + (" <span class='mark'>gated</span>" if r.gated is True else ""), None, "t"), text(r.impl), text(r.dtype),
             number(count(r.size), r.size), number(MISSING if missing(r.peak_fwd_mb) else f"{r.peak_fwd_mb:,.1f}", r.peak_fwd_mb),
             number(MISSING if missing(r.peak_fwd_bwd_mb) else f"{r.peak_fwd_bwd_mb:,.1f}", r.peak_fwd_bwd_mb),
             number(MISSING if missing(r.saved_bytes_per_elem) else f"{r.saved_bytes_per_elem:.2f}", r.saved_bytes_per_elem),
             number(f"{r.trials}/{r.runs}", r.trials), text(r.results)] for r in m.head(GROUP_ROWS).itertuples()]
    columns = [("activation", ""), ("impl", ""), ("dtype", ""), ("size", "input elements"), ("peak fwd MB", "above the inputs (CUDA only)"),
               ("peak fwd+bwd MB", "above the inputs (CUDA only)"), ("saved B/elem", "bytes saved for backward per output element"),
               ("trials/runs", ""), ("results", "results folder")]
    cut = f"<p class='caption'>the first {GROUP_ROWS:,} of {len(m):,} rows; <code>actbench compare --format csv</code> prints them all</p>" \
        if len(m) > GROUP_ROWS else ""
    return table(columns, rows) + cut


def scaling_table(g: "pd.DataFrame", base: str) -> str:
    from actbench.report import scaling

    rows = []
    for r in g.itertuples():
        is_base = r.activation == base
        per_rung = " ".join(f"{v:.3g}×" for v, _, _ in r.rung_gains) if r.rung_gains else MISSING
        target = MISSING if not r.target_compute or is_base else \
            (r.target_note or f"{scaling.gain_text(r.target_gain, r.target_low, r.target_high, short=True)}, {r.extrapolation:.3g}× beyond")
        saved = MISSING if is_base or missing(r.time_gain) else scaling.gain_text(r.time_gain, r.time_low, r.time_high, short=True)
        rows.append([Cell(f"<b>{esc(r.activation)}</b>", None, "t"), number(str(r.rungs), r.rungs), number(str(r.seeds), r.seeds),
                     number(f"{r.E:.4g}" if not missing(r.E) else MISSING, r.E), number(f"{r.alpha:.3g}" if not missing(r.alpha) else MISSING, r.alpha),
                     number(f"{r.r2:.3f}" if not missing(r.r2) else MISSING, r.r2), text(per_rung), Cell(esc(target), None, "wrap"), text(saved)])
    columns = [("activation", ""), ("rungs", ""), ("seeds", ""), ("E", "fitted asymptote"), ("alpha", "fitted exponent"), ("R²", "of the fit"),
               ("gain per rung", f"compute {base} needs for the candidate's loss, / the candidate's"), ("gain at target", ""),
               ("time saved", "the gain net of the throughput ratio")]
    return table(columns, rows)


def environment_table(envs: "pd.DataFrame") -> str:
    """The distinct environments one column each, a field per row (booleans as yes / no)."""
    columns = [("field", "")] + [(f"#{i + 1}", "") for i in range(len(envs))]
    rows = [[Cell(f"<b>{esc(field)}</b>", None, "t"), *(Cell(esc(yes_no(v) if isinstance(v, bool) else fmt_cell(v)), None, "t")
                                                         for v in envs[field])] for field in envs.columns]
    return table(columns, rows)
