"""The verdict of every candidate row of an lm table: better, worse, equivalent or undecided.

- A table of a suite with a `decide:` block takes the decision the suite's own design made
  (`actbench.planner.seeds`, replayed from the looks its run recorded, or from the records):
  repeated confidence intervals over the looks, Bonferroni over the suite's candidates, a failed
  seed counted as the failing side's worst (`actbench.analysis.failures`: said beside the verdict);
  a folder holding more seeds than the rule needed still gives the rule's verdict (the seeds past
  its deciding look are counted, not used, and so are trials rerun after the look that counted
  them as failed); a recorded decision that its trials do not give is "no verdict".
- Any other table is one look at the seeds it has: with an equivalence `margin`, every claim comes
  from Bonferroni-adjusted t intervals (alpha / candidates each, simultaneous, as equivalence
  needs); without one, Holm's step-down over the table's paired t-tests decides better / worse,
  and the rest is undecided, with the smallest difference the seeds could have detected and about
  how many seeds would resolve the observed one. "Undecided" is never "equivalent". A seed either
  side failed counts by the same failure rule (`actbench.report.lm.seed_failures`): a claim it
  rules out is undecided (a Holm row keeps its adjusted p), said beside the verdict.
A designed comparison that is not decided yet (its run stopped or runs) is "pending"; a row whose
seeds a suite's rule stopped on another comparison (another baseline, another field, merged
folders) gets "no verdict", with the reason. Holm rows show their interval at the level of their
step (alpha / (k - j) for the j-th smallest p) while every earlier step rejected, and at alpha / k
past a step that did not (Holm stops there), so interval and verdict agree. One paired
seed is "no test"; a row more than 0.5% off the baseline's parameters or FLOPs/token is
marked UNMATCHED, in its verdict too.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from actbench.analysis import failures, sequential, stats


def _design_text(design: sequential.Design, margin: float | None) -> str:
    looks = design.looks
    shape = f"looks at {', '.join(map(str, looks))} paired seeds, {design.spending} alpha spending" if len(looks) > 1 else \
        f"one look at {looks[0]} paired seeds"
    return f"{shape}, Bonferroni over {design.candidates} candidate(s)" + (f", margin ±{margin:.4g}" if margin is not None else "")


def _from_decision(r: dict[str, Any], decision: sequential.Decision, design: sequential.Design, margin: float | None) -> None:
    iv = decision.interval
    r.update(verdict="pending" if decision.verdict == "continue" else decision.verdict, look=decision.look, margin=np.nan if margin is None else margin,
             design=_design_text(design, margin), seeds_needed=decision.seeds_needed, test_level=design.level, alpha=design.alpha)
    if iv is not None:
        r.update(low=iv.low, high=iv.high, delta=iv.mean, pairs=iv.n)


def _from_verdict(r: dict[str, Any], v: Any) -> None:
    """A row of a designed comparison (a `actbench.planner.seeds.Verdict`): its decision, the seeds
    each side failed and how they were treated, the trials added after its look, or no verdict when
    the decision the run recorded does not match the trials it names."""
    if v.problem:
        r["verdict"], r["design"] = "no verdict", f"the recorded decision does not match its trials: {v.problem}"
        return
    _from_decision(r, v.decision, v.design, v.margin)
    r.update(failures=v.failure_text, recorded=v.record_text, blocked=bool(v.failures and v.failures.blocked))


def _failed(r: dict[str, Any], baseline: str, failed: failures.Failures | None, reached: str | None) -> None:
    """The seeds each side of a one-look row failed and the claims that rules out, beside its verdict
    (`reached`: the claim its finished pairs make)."""
    if failed is not None:
        r.update(failures=failed.describe(r["activation"], baseline, reached if reached in failed.blocked else None),
                 blocked=bool(failed.blocked))


def decide_table(rows: list[dict[str, Any]], baseline: str, alpha: float, margin: float | None = None) -> None:
    """Fill in the verdict of every row of one table (see the module docstring)."""
    candidates = [r for r in rows if r["activation"] != baseline]
    has_base = any(r["activation"] == baseline and r["n"] for r in rows)
    tested = [r for r in candidates if r["pairs"] >= 2 and r["_verdict"] is None and r["_no_verdict"] is None]
    adjusted = stats.holm([r["p"] for r in tested]) if tested else []
    step, reached = {}, True  # Holm's level at the step a row is tested at: alpha / (k - j) for the j-th smallest p
    for j, i in enumerate(np.argsort([r["p"] for r in tested], kind="stable")):
        level = alpha / (len(tested) - j)
        step[id(tested[i])] = (level, "its step's level") if reached else (alpha / len(tested), "alpha / k (Holm stopped before it)")
        reached = reached and tested[i]["p"] <= level
    for r, p in zip(tested, adjusted):
        r["p_holm"] = float(p)
    for r in rows:
        v, failed = r["_verdict"], r.get("_failures")
        if r["activation"] == baseline:
            r["verdict"] = "baseline"
            continue
        if v is not None:
            _from_verdict(r, v)
        elif r["_no_verdict"] is not None and r["pairs"] >= 2:
            r["verdict"], r["design"] = "no verdict", r["_no_verdict"]
        elif not has_base:
            r["verdict"] = "no baseline"
        elif r["pairs"] == 0:
            r["verdict"] = "no paired seeds"
        elif r["pairs"] == 1:
            r["verdict"] = "no test"
        elif margin is not None:
            design = sequential.Design(looks=(r["pairs"],), alpha=alpha, candidates=max(1, len(candidates)), margin=margin)
            look = failures.Look(tuple(enumerate(r["_diffs"])), failed or failures.Failures(r["pairs"]))
            decision = failures.decide([look], design)
            _from_decision(r, decision, design, margin)
            _failed(r, baseline, failed, sequential.claim(decision.interval, margin) if decision.interval is not None else None)
        else:
            level, at = step[id(r)]  # the row's Holm step: its interval at that level agrees with its verdict
            r["detectable"] = stats.detectable_difference(r["sd_diff"], r["pairs"], level)
            r["seeds_needed"] = stats.seeds_needed(r["delta"], r["sd_diff"], level, run=r["pairs"])
            r["needed_for"] = "80% power"
            r["test_level"], r["alpha"] = level, alpha
            half = float(stats.paired_t(r["_diffs"], 1 - level).half)
            r["low"], r["high"] = r["delta"] - half, r["delta"] + half
            word = str(stats.lm_verdicts(r["delta"], r["p_holm"], alpha))
            r["verdict"] = "undecided" if word == "no detectable difference" or (failed and word in failed.blocked) else word
            _failed(r, baseline, failed, word)
            r["design"] = f"one look at {r['pairs']} paired seeds, Holm over {len(tested)} candidate(s), interval at {at} {level:.3g}"
        if r["matched"] is False and r["verdict"] in ("better", "worse", "equivalent", "undecided"):
            r["verdict"] += " (UNMATCHED)"
