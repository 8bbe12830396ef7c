"""A comparison on the terminal: rich tables (kernel and memory one each, lm one per table, scaling
one per ladder) and one verdict line per candidate and table."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
from rich import box
from rich.table import Table

from actbench.analysis.stats import HINT_CAP
from actbench.core.text import markup as esc
from actbench.report.formats import num, verdict_alpha
from actbench.report.frames import MERGED
from actbench.report.kernels import kernel_lines
from actbench.report.lm import MATCH_TOLERANCE_PCT

if TYPE_CHECKING:
    import pandas as pd

    from actbench.report.formats import Comparison

DECIDED = ("better", "worse", "equivalent")


def _colour(verdict: str) -> str:
    v = verdict.split(" (")[0]
    return {"better": "green", "faster": "green", "worse": "red", "slower": "red", "equivalent": "cyan"}.get(v, "white")


def _interval(low: float, high: float) -> str:
    return f"[{low:+.4f}, {high:+.4f}]" if np.isfinite(low) and np.isfinite(high) else "-"


def _cost(r: Any, baseline: str) -> str:
    """The throughput ratio and the difference at equal wall-clock, in words."""
    if not np.isfinite(r.speed_ratio):
        return ""
    where = " (CPU throughput, not the GPU kernel)" if r.device == "cpu" else ""
    if r.shared_gpu:
        where += (f" (from shared GPUs: {r.shared_gpu} of these trials ran beside others on their GPU, so it is not comparable with "
                  "trials that ran alone)")
    text = f"; speed {r.speed_ratio:.3f}x {baseline}'s [{r.speed_low:.3f}, {r.speed_high:.3f}]{where}"
    if np.isfinite(r.delta_wall):
        text += f", Δ at equal wall-clock {r.delta_wall:+.4f} ± {num(r.delta_wall_ci95, '.4f')}"
    return text


def _noise(r: Any) -> str:
    """Where the seed noise comes from, and so what buys a verdict cheaper."""
    if not np.isfinite(r.pair_corr):
        return ""
    removed = f"pairing removed {r.pairing_gain:.0%} of the variance" if r.pairing_gain > 0 else "pairing removed none of the variance"
    where = ("mostly shared by the paired runs (data order, initial weights): more seeds are the way to a verdict" if r.pairing_gain >= 0.5 else
             "mostly each run's own: more seeds shrink it as 1/sqrt(n), and a larger budget per seed may shrink it too")
    return f"; seed noise: sd of paired Δ {r.sd_diff:.4f}, paired seeds correlate {r.pair_corr:+.2f}, {removed}: {where}"


def _hint(r: Any) -> str:
    """How many paired seeds would decide an undecided comparison at the observed Δ and spread: for
    a design, its rounds carried on to them (decided with 80% probability); for a one-look Holm
    test, a fresh test at its level (80% power). Never at or below the seeds run."""
    if r.seeds_needed is None or not np.isfinite(r.seeds_needed):
        return f"; at the observed Δ and spread more than {HINT_CAP} paired seeds would be needed to decide it"
    n = int(r.seeds_needed)
    if r.needed_for == "80% power":
        return f"; ~{n} paired seeds would detect the observed Δ with 80% power (a fresh test at {r.test_level:.3g})"
    return f"; ~{n} paired seeds would decide it with 80% probability at the observed Δ and spread (the design's rounds carried on to {n})"


def _skewed(r: Any) -> str:
    """Beside the verdict, when the paired differences are more skewed than the t intervals tolerate
    (`stats.skew_limit`): which claims may be wrong more often than alpha says, and what to do."""
    if not (np.isfinite(r.skew) and abs(r.skew) > r.skew_limit):
        return ""
    far, claims = ("worse", "'better' and 'equivalent'") if r.skew > 0 else ("better", "'worse' and 'equivalent'")
    return (f"; paired Δ skewed (skewness {r.skew:+.2f}, beyond {r.skew_limit:.2f} at {r.pairs} seeds: a few seeds far {far} than "
            f"the rest): the t intervals assume symmetry, so {claims} can be wrong more often than alpha says; add seeds or "
            "widen the margin, and look at those seeds")


def lm_line(r: Any, baseline: str) -> str | None:
    """One candidate row of an lm table in words (None for the baseline)."""
    where = f"{r.suite}" + (f" [{r.setup_label}]" if r.setup_label else "") + (f" ({r.results})" if r.results not in (".", MERGED) else "")
    head = f"{where}: {r.activation} vs {baseline}"
    if r.verdict == "baseline":
        return None
    if r.verdict == "no baseline":
        return f"{head}: no ok {baseline} trial in this setup: no comparison"
    if r.verdict == "no paired seeds":
        return f"{head}: no seed ran for both (no paired seeds): no comparison"
    if r.verdict == "no test":
        return f"{head}: Δ {r.metric} {r.delta:+.4f} from 1 paired seed: no test (need >= 2 paired seeds)"
    if r.verdict == "pending" and r.pairs < 2:
        return f"{head}: pending: {r.recorded or f'its first look has no paired seeds yet ({r.design})'}"
    if r.verdict == "no verdict" and r.pairs < 2:
        return f"{head}: no verdict ({r.design})"
    seeds = f"{r.delta:+.4f} {_interval(r.low, r.high)} ({r.pairs} paired seeds)"
    if np.isfinite(r.eval_ci95):
        seeds += f", eval-set ± {r.eval_ci95:.4f} ({r.dominant} dominate{'s' if r.dominant == 'eval set' else ''})"
    stat = (f"Holm p={r.p_holm:.3g}, " if np.isfinite(r.p_holm) else "") + f"dz={r.dz:+.2f}" + (f", skewness {r.skew:+.2f}" if np.isfinite(r.skew) else "")
    text = f"{head}: Δ {r.metric} {seeds}, {stat}: {r.verdict}"
    if r.look is not None and np.isfinite(r.look) and r.look > 0:
        text += f" at look {int(r.look)} ({r.design})"
    elif r.design:
        text += f" ({r.design})"
    text += _skewed(r)
    if r.extra_pairs:
        why = "the rule had decided" if r.verdict.split(" ")[0] in DECIDED else "past the rule's last look"
        text += f"; {r.extra_pairs} more paired seed(s) recorded, not used ({why})"
    text += "".join(f"; {note}" for note in (r.failures, r.recorded) if isinstance(note, str))
    if r.verdict.startswith("undecided"):
        if np.isfinite(r.detectable):
            text += f"; with {r.pairs} seeds the smallest detectable Δ is {num(r.detectable, '.4f')} (80% power, two-sided at {r.test_level:.3g})"
        text += "" if r.blocked is True else _hint(r)  # the design's hint knows no claims that failed seeds rule out
    if r.verdict.startswith("pending"):
        text += " (the run has not finished its looks)"
    if r.matched is False:
        text += f" [UNMATCHED: params {r.params_diff_pct:+.2f}%, FLOPs/token {r.flops_diff_pct:+.2f}%]"
    if r.shared:
        text += f" [{r.shared}]"
    if np.isfinite(r.epochs) and r.epochs > 1.05:
        text += f" [{r.epochs:.1f} epochs over the training data: a verdict on repeated data is partly one on memorisation]"
    return text + _cost(r, baseline) + _noise(r)


def verdict_lines(c: "Comparison") -> dict[str, list[str]]:
    """One line per candidate and kind (per lm table for lm)."""
    out: dict[str, list[str]] = {}
    if not c.frames["kernel"].empty:
        out["kernel"] = kernel_lines(c.frames["kernel"], c.names)
    m = c.frames["memory"]
    if not m.empty:
        lines = []
        for n in c.names[1:]:
            a = m[m["activation"] == n]["saved_bytes_per_elem"].min()
            b = m[m["activation"] == c.baseline]["saved_bytes_per_elem"].min()
            if np.isfinite(a) and np.isfinite(b):
                lines.append(f"{n} saves {a:.1f} B/elem for backward (best impl) vs {b:.1f} for {c.baseline}")
        out["memory"] = lines
    lm = c.frames["lm"]
    if not lm.empty:
        out["lm"] = [line for r in lm.itertuples() if (line := lm_line(r, c.baseline))]
    if not c.frames["scaling"].empty:
        from actbench.report.scaling import scaling_lines

        out["scaling"] = scaling_lines(c.frames["scaling"], c.baseline)
    return out


def first_rows(df: "pd.DataFrame", max_rows: int | None) -> tuple["pd.DataFrame", str | None]:
    """df's first `max_rows` rows (all when None), and a caption saying how many there are when some are left out."""
    if max_rows is None or len(df) <= max_rows:
        return df, None
    return df.head(max_rows), (f"the first {max_rows} of {len(df)} rows in table order: --all prints them all; the report's "
                               "HTML and exports, and compare --format md/csv/json, hold every row")


def _kernel_table(k: "pd.DataFrame", base: str, max_rows: int | None) -> Table:
    k, caption = first_rows(k, max_rows)
    base = esc(base)
    t = Table(title=f"kernel: median ms with its p20-p80 interval over repeats; verdict vs {base}'s best impl at the same shape "
                    "(same: intervals overlap; noisy: interval too wide)", caption=caption)
    for col in ("results", "activation", "impl", "dtype", "size", "mode", "ms p50 (interval)", "GB/s", "% copy", f"vs {base}", "trials", "runs"):
        t.add_column(col, justify="left" if col in ("results", "activation", "impl", "dtype", "mode", f"vs {base}") else "right")
    for r in k.itertuples():
        word = r.verdict if r.verdict not in ("faster", "slower") else f"{r.verdict} {r.ratio:.2f}x"
        shown = f"[{_colour(r.verdict)}]{esc(word)}[/]" + (f" ({esc(r.baseline_impl)})" if r.verdict not in ("baseline", "no baseline") else "")
        act = r.activation + (" (gated: 2x input)" if r.gated is True else "")
        t.add_row(esc(r.results), esc(act), esc(r.impl), esc(r.dtype), num(r.size, ","), esc(r.mode),
                  f"{num(r.ms_p50)} ({num(r.ms_low, '.3g')}-{num(r.ms_high, '.3g')})", num(r.gbps, ".1f"), num(r.pct_copy, ".1f"),
                  shown, esc(r.trials), esc(r.runs))
    return t


def _memory_table(m: "pd.DataFrame", max_rows: int | None) -> Table:
    m, caption = first_rows(m, max_rows)
    t = Table(title="memory: peak above inputs (CUDA only) and bytes saved for backward per output element", caption=caption)
    for col in ("results", "activation", "impl", "dtype", "size", "peak fwd MB", "peak fwd+bwd MB", "saved B/elem", "trials", "runs"):
        t.add_column(col)
    for r in m.itertuples():
        t.add_row(esc(r.results), esc(r.activation), esc(r.impl), esc(r.dtype), num(r.size, ","), num(r.peak_fwd_mb), num(r.peak_fwd_bwd_mb),
                  num(r.saved_bytes_per_elem, ".2f"), esc(r.trials), esc(r.runs))
    return t


def _lm_table(g: "pd.DataFrame", suite: str, results: str, base: str, alpha: float) -> Table:
    first = g.iloc[0]
    where = esc(f"{suite}" + (f" [{first.setup_label}]" if first.setup_label else "") + (f", results {results}" if results != "." else ""))
    rule = esc(first.design if isinstance(first.design, str) else next((d for d in g["design"] if isinstance(d, str)), ""))
    base_text, metric = esc(base), esc(first.metric)
    t = Table(title=f"lm {where}: {metric} mean ± 95% CI over seeds; Δ vs {base_text} on paired seeds with the interval behind the "
                    f"verdict ({rule}; family-wise {verdict_alpha(g, alpha)}) and the eval-set bootstrap ±; speed: tokens/s vs {base_text}; "
                    "Δ at equal wall-clock",
              caption=f"params / FLOPs per token: the baseline's, and % vs it; UNMATCHED: more than {MATCH_TOLERANCE_PCT}% off; lower "
                      f"{metric} is better; @k: decided at look k; trials/runs (not ok)" + (f"; {esc(first.tuned)}" if first.tuned else "") + (f"; {esc(first.shared)}" if first.shared else "")
                      + ("; throughput measured on CPU" if first.device == "cpu" else ""),
              box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0))
    for col in ("activation", "d_ff", "params / FLOPs", "lr", "seeds", metric, f"Δ vs {base_text}", "eval ±", "verdict", "speed",
                "Δ equal time", "tokens/s", "trials"):
        t.add_column(col, justify="left" if col in ("activation", "verdict") else "right", no_wrap=True)
    for r in g.itertuples():
        is_base = r.activation == base
        delta = "-" if not np.isfinite(r.delta) else f"[{_colour(r.verdict)}]{r.delta:+.4f}[/] {_interval(r.low, r.high)}"
        size = f"{num(r.params / 1e6 if r.params is not None else None, '.3f')}M / {num(r.flops_per_token / 1e6 if r.flops_per_token is not None else None, '.3f')}M" \
            if is_base else f"{num(r.params_diff_pct, '+.1f')}% / {num(r.flops_diff_pct, '+.1f')}%"
        verdict = r.verdict + (f" @{int(r.look)}" if r.look is not None and np.isfinite(r.look) and r.look > 0 and r.verdict in DECIDED else "")
        t.add_row(esc(r.activation), num(r.d_ff, "d"), size, esc(r.lr or "-"), str(r.pairs if not is_base and r.pairs else r.n),
                  f"{num(r.mean, '.4f')}±{num(r.ci95, '.4f')}", delta, num(r.eval_ci95, ".4f"), f"[{_colour(r.verdict)}]{esc(verdict)}[/]",
                  "-" if is_base else num(r.speed_ratio, ".3f") + "x", "-" if is_base else num(r.delta_wall, "+.4f"), num(r.tokens_per_s, ",.0f"),
                  f"{r.trials}/{r.runs}" + (f" ({r.not_ok})" if r.not_ok else ""))
    return t


def _scaling_table(g: "pd.DataFrame", suite: str, base: str) -> Table:
    from actbench.report import scaling

    t = Table(title=f"scaling {esc(suite)}: {esc(g.iloc[0].metric)} = E + A (C/C0)^-alpha per activation; compute-equivalent gain vs {esc(base)} "
                    "(the compute the baseline needs to reach the candidate's loss, / the candidate's) with 95% paired-bootstrap CIs, "
                    "and net of the throughput ratio (the factor of training time saved)",
              box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0))
    for col in ("activation", "rungs", "seeds", "E", "alpha", "R2", "max |resid|", "gain per rung", "gain at target", "time saved"):
        t.add_column(col, justify="left" if col in ("activation", "gain per rung", "gain at target", "time saved") else "right")
    for r in g.itertuples():
        per_rung = " ".join(f"{v:.3g}x" for v, _, _ in r.rung_gains) if r.rung_gains else "-"
        target = "-" if not r.target_compute or r.activation == base else \
            (r.target_note or f"{scaling.gain_text(r.target_gain, r.target_low, r.target_high, short=True)}, {r.extrapolation:.3g}x beyond")
        saved = "-" if r.activation == base or not np.isfinite(r.time_gain) else scaling.gain_text(r.time_gain, r.time_low, r.time_high, short=True)
        t.add_row(esc(r.activation), str(r.rungs), str(r.seeds), num(r.E, ".4g"), num(r.alpha, ".3g"), num(r.r2, ".3f"),
                  num(r.max_residual, ".2g"), per_rung, esc(target), esc(saved))
    return t


def compare_tables(c: "Comparison", max_rows: int | None = None) -> list[Table]:
    """Rich tables: kernel and memory one each (their first `max_rows` rows, with a caption
    saying how many there are, when given), lm one per table (suite, setup, results), scaling one
    per ladder suite."""
    tables = []
    if not c.frames["kernel"].empty:
        tables.append(_kernel_table(c.frames["kernel"], c.baseline, max_rows))
    if not c.frames["memory"].empty:
        tables.append(_memory_table(c.frames["memory"], max_rows))
    lm = c.frames["lm"]
    for (suite, _, results), g in (lm.groupby(["suite", "setup", "results"], sort=False) if not lm.empty else []):
        tables.append(_lm_table(g, suite, results, c.baseline, c.alpha))
    sc = c.frames["scaling"]
    for (suite, _), g in (sc.groupby(["suite", "results"], sort=False) if not sc.empty else []):
        tables.append(_scaling_table(g, suite, c.baseline))
    return tables
