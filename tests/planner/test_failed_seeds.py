"""A failed seed is an outcome (`actbench.analysis.failures`): against ground truth by simulation,
with runs that fail on the seeds where their side would have done worst, and in a real sequential
run of the probe kind whose candidate diverges on chosen seeds."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from scipy import stats

from actbench import api
from actbench.analysis import failures
from actbench.analysis.sequential import Design, decide
from actbench.planner.plan import plan
from actbench.results.store import ResultStore
from actbench.runner.local import InlineExecutor
from actbench.suite import load_suite

MARGIN = 1.25
DESIGN = Design((3, 6), alpha=0.05, candidates=2, margin=MARGIN)  # one of 2 candidates: level 0.025; few pair counts to calibrate
ONE_LOOK = Design((12,), alpha=0.05, candidates=2, margin=MARGIN)  # exact critical values: many experiments are cheap
SHARE = DESIGN.level / 2  # each direction's share of a candidate's level


def experiment(rng: np.random.Generator, delta: float, failing: str, q: float, design: Design = DESIGN) -> list[failures.Look]:
    """One candidate's looks: its loss delta + N(0, 1/2), the baseline's N(0, 1/2) per seed, and the
    runs of `failing` ("candidate", "baseline", "random": either) failing on their worst q of seeds
    (their own noise above its 1 - q quantile) or, for random, with probability q."""
    half, n = math.sqrt(0.5), design.n_max
    cand, base = delta + rng.standard_normal(n) * half, rng.standard_normal(n) * half
    cut = stats.norm.ppf(1 - q) * half
    worst = {"candidate": (cand - delta > cut, np.zeros(n, bool)), "baseline": (np.zeros(n, bool), base > cut),
             "random": (rng.random(n) < q, rng.random(n) < q)}[failing]
    sides = [[(None, "diverged") if f else (float(v), "ok") for v, f in zip(values, failed)] for values, failed in zip((cand, base), worst)]
    return [failures.look(list(range(m)), sides[0][:m], sides[1][:m]) for m in design.looks]


def test_a_claim_in_a_sides_favour_is_never_made_across_its_failure():
    """Whatever makes runs fail: better only where the candidate finished every seed of the look on
    which the baseline did, worse only the other way round, equivalent only where nothing failed,
    and then it is exactly the decision of the complete data (the coupling behind the rule's error
    rates)."""
    rng = np.random.default_rng(1)
    claims = coupled = 0
    for i in range(600):
        looks = experiment(rng, [0.0, 0.5, -0.5, 2.5, -2.5][i % 5], ["candidate", "baseline", "random"][i % 3], [0.1, 0.25][i % 2])
        decision = failures.decide(looks, DESIGN, hint=False)
        if decision.verdict not in failures.CLAIMS:
            continue
        claims += 1
        f = looks[decision.look - 1].failures
        c, b = {s for s, _ in f.candidate}, {s for s, _ in f.baseline}
        against = {"better": c - b, "worse": b - c, "equivalent": c | b}[decision.verdict]
        assert not against, (decision, f)
        if not f.candidate and not f.baseline:
            coupled += 1
            assert decision == decide([lk.diffs for lk in looks[: decision.look]], DESIGN, hint=False)
    assert claims >= 120 and coupled >= 60


def rate(verdict: str, delta: float, failing: str, seed: int, experiments: int = 2000) -> float:
    rng = np.random.default_rng(seed)
    return sum(failures.decide(experiment(rng, delta, failing, 0.25, ONE_LOOK), ONE_LOOK, hint=False).verdict == verdict
               for _ in range(experiments)) / experiments


def test_each_claim_keeps_its_share_of_alpha_when_runs_fail_on_their_worst_seeds():
    """A quarter of the seeds fail, on the failing side's worst ones (one look at 12 seeds): a
    candidate that is equivalent only at the margin, or no better, is not called equivalent or
    better beyond its share of alpha (dropping its failed seeds did: 0.059 and 0.035 against
    0.0125), nor is one no worse than a baseline that fails on its worst seeds called worse (0.043
    when dropped). `scripts/sequential_design.py --failures` has the sequential design's table."""
    bound = SHARE + 3 * math.sqrt(SHARE * (1 - SHARE) / 2000)
    assert rate("equivalent", MARGIN, "candidate", seed=2) <= bound
    assert rate("better", 0.0, "candidate", seed=3) <= bound
    assert rate("worse", 0.0, "baseline", seed=4) <= bound


DIVERGING = """\
name: div
kind: probe
defaults: {noise: 0.3}
zip:
  tag: [base, twin, diverging, worse]
  x: [0.0, 0.0, 0.0, 2.0]
  fail: [none, none, nan, nan]
  fail_seeds: [null, null, [1], [1, 4]]
seeds: {min: 3, max: 9, round: 3}
decide: {field: tag, baseline: base, metric: objective, margin: 0.2}
"""


def test_a_candidate_that_diverges_on_a_seed_is_never_called_equivalent(tmp_path: Path, capsys):
    """The baseline's function itself, diverging on seed 1: its 8 finished pairs are exactly equal
    to the baseline's, yet it is undecided, not equivalent, and the line says why; one that is far
    worse and diverges on two seeds is still worse."""
    path = tmp_path / "div.yaml"
    path.write_text(DIVERGING)
    store = ResultStore(tmp_path / "out")
    api.run(load_suite(path), out=store.root, executor=InlineExecutor())
    suite = load_suite(path)
    verdicts = {suite.value(g, "tag"): v for g, v in plan(suite, store.latest(), set(store.latest())).seeds.verdicts.items()}
    assert verdicts["twin"].decision.verdict == "equivalent" and verdicts["twin"].failures is None
    diverging = verdicts["diverging"]
    assert diverging.decision.verdict == "undecided" and diverging.decision.interval.low == diverging.decision.interval.high == 0.0
    assert diverging.seeds == (0, 2, 3, 4, 5, 6, 7, 8) and diverging.decision.seeds_needed is None
    assert verdicts["worse"].decision.verdict == "worse"
    err = capsys.readouterr().err
    assert ("diverging failed 1 of 9 seeds (diverged at seed 1), base 0: counted as diverging's worst; cannot be better or "
            "equivalent (the pairs both finished alone would say equivalent)") in err
    assert "worse failed 1 of 3 seeds (diverged at seed 1), base 0: counted as worse's worst; cannot be better or equivalent" in err
