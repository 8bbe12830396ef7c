"""What the CLI prints about the registry, suites, runs and plans: rich tables of activations,
expanded trials, sweep summaries and matched-MLP plans."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from actbench import activations
from actbench.core.text import markup, plain
from actbench.lm.cost import DEFAULTS, PEAK_TFLOPS, curve_mfu

if TYPE_CHECKING:
    import pandas as pd

    from actbench.lm.cost import Figures
    from actbench.runner.driver import SweepResult
    from actbench.select import TrialFilter
    from actbench.suite import Suite


def activation_table() -> Table:
    """Rich table of every registered activation."""
    t = Table(title="actbench activations", caption="whether an implementation runs here: actbench info NAME")
    for col in ("name", "family", "gated", "trainable params", "implementations", "paper"):
        t.add_column(col)
    for name in activations.names():
        s = activations.spec(name)
        t.add_row(name, s.family, "yes" if s.gated else "", ", ".join(s.params), ", ".join(s.impl_names), s.paper or "")
    return t


def activation_info(name: str) -> Panel:
    """Formula, defaults, parameters and implementations of one activation."""
    s = activations.spec(name)
    lines = [
        Text(s.formula),
        Text(""),
        Text(f"family: {s.family}    gated: {'yes (input 2*d -> d, split [gate, value])' if s.gated else 'no'}"),
        Text(f"defaults: {s.defaults or '-'}"),
        Text(f"trainable parameters (fp32): {', '.join(s.params) or '-'}"),
    ]
    for impl in s.impl_names:
        why = s.unavailable_reason(impl, quick=True)  # a listing: triton is not imported to tell
        lines.append(Text(f"impl {impl}: " + ("available" if why is None else f"unavailable here ({why})")))
    lines.append(Text(f"paper: {s.paper or '-'}"))
    return Panel(Group(*lines), title=name)


DRY_RUN_ROWS = 40
"""A dry run of more trials than this prints a summary and the first rows (unless asked for all)."""
DRY_RUN_FIRST = 15


def trial_table(suite: "Suite", select: "TrialFilter | None" = None, recorded: set[str] | frozenset[str] = frozenset(),
                all_rows: bool = False) -> Group:
    """`run --dry-run`: the expanded trials (those `select` matches) and the resources each asks
    for, the ones in `recorded` (already recorded ok: a run skips them) marked; for more than
    DRY_RUN_ROWS trials, unless `all_rows`, the count of trials per value of every swept field
    and the first DRY_RUN_FIRST rows."""
    r = suite.spec.resources
    keys = suite.label_fields
    trials = [(t, t.config_dict()) for t in suite.trials]
    if select is not None:
        trials = select.apply(trials, lambda tc: tc[1], lambda tc: tc[0].id)
    n_done = sum(t.id in recorded for t, _ in trials)
    chosen = f" of {len(suite.trials)} (-k {select.expr!r})" if select is not None else ""
    head = (f"{suite.name}: {len(trials)} {suite.spec.kind} trial(s){chosen}; each asks {r.asks()}, "
            f"timeout_s={r.timeout_s:g} retries={r.retries}; {n_done} already recorded ok (skipped by run unless --rerun), "
            f"{len(trials) - n_done} to run")
    parts: list = [Text(plain(head), style="bold")]
    shown = trials if all_rows or len(trials) <= DRY_RUN_ROWS else trials[:DRY_RUN_FIRST]
    if len(shown) < len(trials):
        parts.append(Text("trials per value of each swept field"))
        axes = Table()
        axes.add_column("field")
        axes.add_column("values (trials)")
        for k in keys:
            counts: dict[str, int] = {}
            for _, cfg in trials:
                counts[str(cfg.get(k))] = counts.get(str(cfg.get(k)), 0) + 1
            listed = ", ".join(f"{v} ({n})" for v, n in list(counts.items())[:20]) + (f", ... ({len(counts)} values)" if len(counts) > 20 else "")
            axes.add_row(markup(k), markup(listed))
        parts.append(axes)
    if len(shown) < len(trials):
        parts.append(Text(f"first {len(shown)} of {len(trials)} trials (--all lists every one)"))
    t = Table()
    t.add_column("#", justify="right")
    t.add_column("trial id")
    for k in keys:
        t.add_column(markup(k))
    t.add_column("recorded")
    for i, (trial, cfg) in enumerate(shown):
        t.add_row(str(i), trial.id, *(markup(cfg.get(k)) for k in keys), "ok: skipped" if trial.id in recorded else "")
    later = []
    if suite.spec.tune is not None:
        tune = suite.spec.tune
        rungs = len(tune.rung_budgets())
        later.append(f"these are the tuning trials ({', '.join(tune.fields)}, on tuning seeds" + (
            f"; successive halving in {rungs} rungs: later rungs keep the best values" if rungs > 1 else "") +
            f"); then the final trials of {suite.groups} point(s) at each point's best values, decided from these results")
    if suite.spec.decide is not None and len(suite.spec.looks) > 1:
        later.append(f"seeds in rounds: the first {suite.spec.looks[0]} here; more (up to {suite.spec.looks[-1]}) only for the "
                     "candidates a look leaves undecided")
    if any(suite.kind.choice(tr.config) for tr, _ in trials[:1]):
        later.append("values left auto (impl) are chosen first, once per point, by a helper trial")
    if later:
        t.caption = "; ".join(later)
    parts.append(t)
    return Group(*parts)


def print_summary(result: "SweepResult", out_dir: Path, console: Console) -> None:
    """Counts by status (of each trial's last attempt), and the trials that did not succeed with the reason."""
    recs = result.final_records
    counts: dict[str, int] = {}
    for r in recs:
        counts[r.status] = counts.get(r.status, 0) + 1
    nothing = "interrupted before any trial finished: nothing recorded" if result.interrupted else "nothing to run"
    parts = [f"{n} {s}" for s, n in sorted(counts.items())] or [nothing]
    if len(result.records) > len(recs):
        parts.append(f"{len(result.records) - len(recs)} earlier attempt(s) recorded")
    if result.skipped:
        parts.append(f"{result.skipped} already done")
    if result.deselected:
        parts.append(f"{result.deselected} not selected by -k")
    path = out_dir / "trials.jsonl"
    where = f"results in {path}" if path.exists() else f"no results file: {path} does not exist"
    console.print(f"[bold]{markup(', '.join(parts))}[/]; {markup(where)}", highlight=False)
    bad = [r for r in recs if not r.ok]
    if bad:
        t = Table(title="trials that did not succeed")
        for col in ("trial id", "status", "config", "reason", "traceback"):
            t.add_column(col)
        for r in bad:
            err = r.error or {}
            cfg = ", ".join(f"{k}={v}" for k, v in r.config.items() if k not in ("impls", "modes"))
            reason = f"{err.get('type', '')}: {err.get('message', '')}".strip(": ") or r.note
            t.add_row(*(markup(v) for v in (r.trial_id, r.status, cfg, reason, err.get("traceback_file") or "")))
        console.print(t)


def _planned(suite: "Suite") -> list:
    """Every trial of the suite's own kind it can run (`planner.plan.forecast`)."""
    from actbench.planner.plan import forecast

    return [t for t in forecast(suite).planned if t.kind == suite.spec.kind]


CPU_TRAIN_FLOPS = DEFAULTS["cpu"].thread_flops.value
"""Training FLOP/s of one CPU core, for CPU-hour estimates (`actbench.lm.cost`, with its source)."""


def _matched(trials: list) -> "pd.DataFrame":
    """`flops.plan` of these trials, GPU-hours at the MFU that fits each model's size."""
    from actbench.lm.flops import plan

    return plan(trials, lambda params: curve_mfu(params).value)


def cpu_hours(suite: "Suite") -> float:
    """About how many hours of one CPU core every trial of an lm suite takes (CPU_TRAIN_FLOPS)."""
    return _cpu_hours(_matched(_planned(suite)))


def _cpu_hours(df: "pd.DataFrame") -> float:
    """CPU-hours of the trials of a `flops.plan` table."""
    return float((df["trials"] * df["train_flops"]).sum()) / CPU_TRAIN_FLOPS / 3600 if len(df) else 0.0


def sequential_cost(suite: "Suite") -> str | None:
    """What a suite with `decide:` costs in seeds: its looks, and with `decide.sd` (a planning
    guess of the paired-difference sd) the expected seeds per comparison and how often each
    verdict comes, at no difference, at the margin and at twice the margin."""
    from actbench.analysis.sequential import operating
    from actbench.planner.seeds import design

    d = suite.spec.decide
    if d is None:
        return None
    plan = design(suite)
    text = (f"Decided in looks at {', '.join(map(str, plan.looks))} paired seeds (alpha {d.alpha:g} family-wise, Bonferroni over "
            f"{plan.candidates} candidate(s), {d.spending} spending; at most {plan.n_max} seeds per activation and setup)")
    margin = None if d.margin is None else d.margin if not d.relative else None
    if d.sd is None or margin is None:
        return text + ("; set decide.sd (a guess of the sd of paired differences) for the expected seeds" if margin is not None else
                       "; expected seeds need an absolute margin and decide.sd") + "."
    parts = []
    for label, delta in (("no difference", 0.0), ("a difference of the margin", margin), ("twice the margin", 2 * margin)):
        oc = operating(plan, delta, d.sd, sims=4000)
        parts.append(f"at {label}: expected {oc.mean_pairs:.1f} seeds (max {oc.max_pairs}), better {oc.p_better:.0%} / worse "
                     f"{oc.p_worse:.0%} / equivalent {oc.p_equivalent:.0%} / undecided {oc.p_undecided:.0%}")
    return text + f"; with sd {d.sd:g} and margin ±{margin:g}, per comparison " + "; ".join(parts) + "."


def plan_table(suite: "Suite", figures: "Figures | None" = None) -> Group:
    """`actbench lm plan`: matched widths, counts, difference from the reference, training cost
    per trial; then what the suite costs by stage (`report.cost.planned`: fixed costs, compiles,
    evaluation, wall clock) with the epochs it reads and the source of every figure."""
    from actbench.report.cost import clock, gpus_per_trial, plan_lines, planned

    trials = _planned(suite)
    df = _matched(trials)
    ladder = suite.spec.ladder is not None
    t = Table(title=f"{markup(suite.name)}: matched MLPs (training GPU-hours at the MFU that fits each model's size, of an H100's "
                    f"{PEAK_TFLOPS:g} bf16 TFLOP/s; every trial the suite can run)")
    cols = ["activation", *(["d_model x layers"] if ladder else []), "d_ff", "params", "MLP params", "FLOPs/token", "act FLOPs/token",
            "vs reference", "tokens/trial", "trials", "MFU", "GPU-h/trial", "CPU-h/trial"]
    for col in cols:
        t.add_column(col, justify="left" if col == "activation" else "right")
    for r in df.itertuples():
        diff = f"{r.diff_pct:+.2f}%"
        t.add_row(markup(r.activation + (" (gated)" if r.gated else "")), *([f"{r.d_model} x {r.n_layers}"] if ladder else []), str(r.d_ff),
                  f"{r.params / 1e6:.3f}M", f"{r.mlp_params / 1e6:.3f}M", f"{r.flops_per_token / 1e6:.2f}M",
                  f"{r.act_flops_per_token / 1e3:.1f}K", diff if abs(r.diff_pct) <= 0.5 else f"[red]{diff}[/]",
                  f"{r.tokens / 1e6:.2f}M", str(r.trials), f"{r.mfu:.1%}", f"{r.gpu_hours_per_trial:.3g}",
                  f"{r.train_flops / CPU_TRAIN_FLOPS / 3600:.3g}")
    if not len(df):
        return Group(t)
    total = float((df["trials"] * df["gpu_hours_per_trial"]).sum())
    t.add_section()
    t.add_row("total", *([""] if ladder else []), "", "", "", "", "", "", f"{(df['trials'] * df['tokens']).sum() / 1e6:.2f}M",
              str(int(df["trials"].sum())), "", f"{total:.3g} GPU-h", f"{_cpu_hours(df):.3g} CPU-h")
    tuned = " Tuned suite: tuning trials at their budgets plus the final stage (costed at the first tuned values)." \
        if suite.spec.tune is not None else ""
    tuned += f" {sequential_cost(suite)}" if suite.spec.decide is not None else ""
    group = suite.spec.resources.worker_group
    if group and group.gpus:
        gpus = group.workers * group.gpus
        tuned += (f" Each trial runs on {group.workers} workers of {group.gpus:g} GPU ({gpus:g} GPUs): about "
                  f"{df['gpu_hours_per_trial'].max() / gpus:.3g} hours of wall clock for the longest, at that MFU.")
    t.caption = (f"reference: {markup(df['reference'].iloc[0])}{' at the first rung' if ladder else ''}; FLOPs/token: forward matmuls and "
                 "attention (x3 to train); act FLOPs: approximate elementwise ops of the activation, not matched; red: more than "
                 "0.5% off (pick another ff_multiple); GPU-h and CPU-h: training alone (the costs below add the rest); CPU-hours: one "
                 f"core at {CPU_TRAIN_FLOPS / 1e9:g} GFLOP/s, roughly.{tuned}")
    p = planned(suite, figures)
    gpus = gpus_per_trial(suite)
    where = (f"H100s ({gpus} per trial)" if gpus > 1 else "one H100") if p.figures.device == "cuda" else "this machine's CPU"
    c = Table(title=f"{markup(suite.name)}: what the run costs on {where}, by stage (seconds of its trials; wall clock at {p.how})")
    for col in ("stage", "trials", "training", "evaluation", "compiles (cold/fresh/warm)", "setup", "trial-seconds", "wall clock"):
        c.add_column(col, justify="left" if col == "stage" else "right")

    def row(label: str, stage: Any) -> None:
        levels = "/".join(str(sum(1 for x in stage.costs if x.compile == level)) for level in ("cold", "fresh", "warm"))
        c.add_row(label, str(len(stage.costs)), f"{stage.part('train_s'):,.0f} s", f"{stage.part('eval_s'):,.0f} s",
                  f"{stage.part('compile_s'):,.0f} s ({levels})", f"{stage.part('fixed_s'):,.0f} s", f"{stage.total:,.0f} s",
                  clock(stage.wall(p.at_once)))

    for stage in p.stages:
        row(stage.name + (" (to every last look)" if p.least_final is not None and stage.name == "final" else ""), stage)
    if p.least_final is not None:
        row("final (all decided at the first look)", p.least_final)
    c.add_section()
    def hours(seconds: float) -> str:
        return f"{clock(seconds)}" + (f" = {seconds * gpus / 3600:.3g} GPU-hours" if p.figures.device == "cuda" else "")

    c.add_row("total" + (" (at most)" if p.least_final else ""), "", "", "", "", f"{p.ray_s:,.0f} s per run", "", hours(p.wall()))
    if p.least_final is not None:
        c.add_row("total (at least)", "", "", "", "", "", "", hours(p.wall(p.least_final)))
    lines = plan_lines(suite, p, [t.config.memory(suite.spec.resources).total for t in trials])
    return Group(t, c, *(Text(plain(line)) for line in lines))
