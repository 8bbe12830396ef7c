"""Operating characteristics of group-sequential seed designs (actbench.analysis.sequential).

    python scripts/sequential_design.py
    python scripts/sequential_design.py --experiments 50000 --sims 50000

For looks 3..24 step 3, 4..12 step 2 and 3..12 step 3 (alpha 0.05 family-wise, 2 candidates
sharing the baseline's seeds), both spending functions:
- the critical |t| at each look, and the family-wise rate of any better/worse claim by 2 candidates
  with no true difference under optional stopping (no margin: every decision is a false claim),
  against a fixed-n t-test at alpha / 2 repeated after every round, and one at the last look only;
- for a planted difference delta (in units of the sd of the paired differences) with margin = sd
  and 1.25 sd: the rates of each verdict for one candidate, and the mean and max seeds used;
- the probability that a far-worse candidate is decided at the first look (noncentral t, exact).
Rates are Monte Carlo; the family-wise ones come with their standard error.

    python scripts/sequential_design.py --failures [--experiments 20000]

A failed seed is an outcome (`actbench.analysis.failures`): for looks 4..12 step 2, 2 candidates
sharing a baseline, margin 1.25 sd, each candidate's rate of every claim under its false setting
(better and worse with no difference, equivalent at the margin) and its power (worse at 1.5 sd),
dropping failed pairs (before) and with the failure rule (after), for normal, t (3 degrees of
freedom) and skewed paired differences, and for runs that fail on the side's worst seeds (the
candidate's, the baseline's) or at random.

    python scripts/sequential_design.py --resume [--runs 600]

A printed verdict never moves: runs of a probe suite through the real planner whose trials fail
once (a retry succeeds) and which stop after a look and resume; how many comparisons does compare's
replay decide otherwise than the run printed, without the recorded looks (before) and with them.

    python scripts/sequential_design.py --calibration --errors --skew --hint 400 [--experiments 200000]

How exact the critical values are (`actbench.analysis.calibration`): each look's spent alpha against
its target, checked on other paths, for the plain calibration that was used before
(`plain_boundaries`) and this one. The error rates per candidate (false better, worse, equivalent;
power) with either, for normal, t3, skewed and 'one seed in ten far worse' paired differences, and
how often the skew check fires. Where skew pushes one direction's false claims past its share
(gamma laws of growing skewness: `stats.SKEW_TOLERATED`), and the skew check's rate at n pairs
(`stats.skew_limit`). The hint (`sequential.seeds_to_decide`): how often the named N decides.
"""

from __future__ import annotations

import argparse
import math
from typing import Any

import numpy as np
from scipy import optimize, stats

from actbench.analysis import failures
from actbench.analysis.rounds import looks_in_rounds
from actbench.analysis.sequential import SPENDING, Design, boundaries, decide, operating

DESIGNS = ((3, 24, 3), (4, 12, 2), (3, 12, 3))
DELTAS = (0.0, 0.5, 1.0, 2.0, 4.0)
MARGINS = (1.0, 1.25)
FAR = (4.0, 8.0, 16.0, 32.0)


def family_wise(design: Design, experiments: int, seed: int) -> tuple[float, float, float]:
    """Rates of any false claim by `design.candidates` null candidates sharing one baseline (the
    differences correlate 0.5): the sequential design, a t-test repeated after every round, and
    a t-test at the last look only."""
    rng = np.random.default_rng(seed)
    base = rng.standard_normal((experiments, 1, design.n_max))
    d = rng.standard_normal((experiments, design.candidates, design.n_max)) - base
    s1, s2 = np.cumsum(d, axis=2), np.cumsum(d * d, axis=2)
    crit = boundaries(design.looks, design.n_max, design.level, design.spending)
    claims = np.zeros((3, experiments), dtype=bool)
    for n, c in zip(design.looks, crit):
        t = np.abs(s1[..., n - 1]) / np.sqrt(n * (s2[..., n - 1] - s1[..., n - 1] ** 2 / n) / (n - 1))
        fixed = stats.t.ppf(1 - design.level / 2, n - 1)
        claims |= [(t >= c).any(axis=1), (t >= fixed).any(axis=1), (t >= fixed).any(axis=1) & (n == design.n_max)]
    sequential, repeated, last = claims.mean(axis=1)
    return float(sequential), float(repeated), float(last)


def se(p: float, n: int) -> float:
    return math.sqrt(p * (1 - p) / n)


def first_look(design: Design, ratio: float) -> float:
    """P(decided "worse" at look 1) for delta = ratio * sd: the t statistic is noncentral t."""
    n, c = design.looks[0], boundaries(design.looks, design.n_max, design.level, design.spending)[0]
    return 0.0 if math.isinf(c) else float(stats.nct.sf(c, n - 1, ratio * math.sqrt(n)))


SCENARIOS = (("normal", "none", 0.0), ("t3", "none", 0.0), ("skewed", "none", 0.0), ("normal", "candidate", 0.10),
             ("normal", "candidate", 0.25), ("normal", "baseline", 0.25), ("normal", "random", 0.10))
"""(shape of the paired differences, whose runs fail, the fraction q that fails): `candidate` and
`baseline` fail on the seeds in their worst q (the side's loss above its (1 - q) quantile), `random`
runs of either side fail with probability q whatever their values."""


def _noise(shape: str, rng: np.random.Generator, size: tuple[int, ...]) -> np.ndarray:
    """Unit-variance draws: normal, t with 3 degrees of freedom, or a right-skewed lognormal (a seed
    much worse now and then; skewness 6.2), centred."""
    if shape == "normal":
        return rng.standard_normal(size)
    if shape == "t3":
        return rng.standard_t(3, size) / math.sqrt(3)
    x = rng.lognormal(0, 1, size)
    return (x - math.exp(0.5)) / math.sqrt((math.e - 1) * math.e)


def failure_rates(design: Design, shape: str, failing: str, q: float, delta: float, experiments: int,
                  seed: int) -> dict[str, np.ndarray]:
    """Per rule (before: failed pairs dropped; after: the failure rule), the rate of each verdict
    (better, worse, equivalent) per candidate, for `design.candidates` candidates at true
    difference `delta` (in sd of the paired differences) sharing a baseline: the candidate's loss is
    delta + its own noise, the baseline's its own noise (the candidate's noise skewed for
    `skewed`, the baseline's normal), each of variance 1/2."""
    rng = np.random.default_rng(seed)
    n, k = design.n_max, design.candidates
    half = math.sqrt(0.5)
    counts = {rule: np.zeros(3) for rule in ("before", "after")}
    names = ("better", "worse", "equivalent")
    cut = stats.norm.ppf(1 - q) * half if q else math.inf  # a side's own noise above this: its worst q
    seeds = list(range(n))
    for _ in range(experiments):
        base = _noise("t3" if shape == "t3" else "normal", rng, (n,)) * half
        cand = delta + _noise(shape, rng, (k, n)) * half
        base_failed = base > cut if failing == "baseline" else rng.random(n) < q if failing == "random" else np.zeros(n, bool)
        for j in range(k):
            own = cand[j] - delta
            failed = own > cut if failing == "candidate" else rng.random(n) < q if failing == "random" else np.zeros(n, bool)
            c = [(None, "diverged") if f else (float(v), "ok") for v, f in zip(cand[j], failed)]
            b = [(None, "diverged") if f else (float(v), "ok") for v, f in zip(base, base_failed)]
            looks = [failures.look(seeds[:m], c[:m], b[:m]) for m in design.looks]
            for rule, decision in (("before", decide([lk.diffs for lk in looks], design, hint=False)),
                                   ("after", failures.decide(looks, design, hint=False))):
                if decision.verdict in names:
                    counts[rule][names.index(decision.verdict)] += 1
    return {rule: c / (experiments * k) for rule, c in counts.items()}


def failures_table(experiments: int, alpha: float, candidates: int) -> None:
    """The before/after table of the failure rule (see the module docstring)."""
    margin, power_at = 1.25, 1.5
    design = Design.rounds(4, 12, 2, alpha=alpha, candidates=candidates, margin=margin)
    share = design.level / 2
    print(f"\n=== failed seeds: looks {design.looks}, alpha {alpha}, {candidates} candidates sharing a baseline, margin "
          f"{margin} sd, {experiments} experiments each; each direction's share {share:g} per candidate ===")
    print("rates per candidate: false better / false worse at no difference, false equivalent at the margin, power: worse at "
          f"{power_at} sd")
    print(f"{'differences':12} {'who fails':10} {'q':>5} | {'before: better':>14} {'worse':>7} {'equiv':>7} {'power':>6} | "
          f"{'after: better':>13} {'worse':>7} {'equiv':>7} {'power':>6}")
    for shape, failing, q in SCENARIOS:
        null = failure_rates(design, shape, failing, q, 0.0, experiments, seed=11)
        edge = failure_rates(design, shape, failing, q, margin, experiments, seed=12)
        power = failure_rates(design, shape, failing, q, power_at, experiments, seed=13)
        cells = [f"{null[r][0]:14.4f} {null[r][1]:7.4f} {edge[r][2]:7.4f} {power[r][1]:6.3f}" for r in ("before", "after")]
        print(f"{shape:12} {failing:10} {q:5.2f} | {cells[0]} | {cells[1][1:]}")
    print(f"(standard error at {share:g}: {se(share, experiments * candidates):.4f}; a candidate that fails where the baseline "
          "finished is worse by the rule's convention, so its 'worse' at no difference counts as false here only in the sense "
          "of the difference had it finished)")


RESUME_SUITE = """\
name: resume
kind: probe
zip:
  tag: [base, a, b]
  x: [0.0, 0.0, 2.0]
seeds: {min: 4, max: 12, round: 2}
decide: {field: tag, baseline: base, metric: objective, margin: 0.5}
"""


def resumed_run(suite: Any, rng: np.random.Generator, fail: float, recording: bool) -> tuple[dict[int, tuple], dict[int, tuple]]:
    """One run of `suite` through the planner as `actbench run` drives it (records synthetic: each
    point's objective is x/4 plus N(0, 0.25^2) noise per trial; a trial's first attempt fails with
    probability `fail`, a later one never), stopped after a random number of batches and resumed
    (what was not recorded ok runs again, unless a recorded look counted it). Returns, per
    candidate, what the run printed first at each look, and compare's replay of the folder
    afterwards, each as (verdict, look, low, high). `recording`: the run records its looks and
    compare replays them."""
    from actbench.core.record import Record
    from actbench.planner.plan import plan
    from actbench.results import decisions

    records: dict[str, Record] = {}
    attempts: dict[str, int] = {}
    recorded = decisions.Recorded(writing=True) if recording else None
    printed: dict[int, dict[int, tuple]] = {}  # candidate -> look -> what the run printed first
    stop = int(rng.integers(1, len(suite.spec.looks) + 1))
    value = {}
    for segment in range(2):
        settled = {i for i, r in records.items() if r.ok}
        batches = 0
        while segment == 1 or batches < stop:
            p = plan(suite, records, settled, recorded=recorded)
            if recorded is not None:
                for look in p.seeds.fresh:
                    recorded.add(look)
            for c, v in p.seeds.verdicts.items():
                if v.decision.look:
                    printed.setdefault(c, {}).setdefault(v.decision.look, _shown(v))
            if p.batch is None:
                break
            batches += 1
            for t in p.batch.trials:
                if t.id in settled:
                    continue
                attempts[t.id] = attempts.get(t.id, 0) + 1
                x = t.config_dict()["x"]
                v = value.setdefault(t.id, x / 4 + 0.25 * float(rng.standard_normal()))
                failed = attempts[t.id] == 1 and rng.random() < fail
                records[t.id] = Record(trial_id=t.id, status="failed" if failed else "ok", attempt=attempts[t.id],
                                       metrics={} if failed else {"objective": v})
                settled.add(t.id)
                if recorded is not None:
                    recorded.add_records([records[t.id]])
    if recorded is not None:
        recorded.writing = False
    replayed = plan(suite, records, set(records), recorded=recorded).seeds.verdicts
    return printed, {c: _shown(v) for c, v in replayed.items()}


def _shown(v: Any) -> tuple:
    iv = v.decision.interval
    return v.decision.verdict, v.decision.look, iv.low if iv else None, iv.high if iv else None


def _moved(printed: dict[int, tuple], shown: tuple) -> bool:
    """Whether compare's verdict contradicts what the run printed: every decision the run printed
    (not "continue") must be compare's, and so must what it printed at compare's deciding look."""
    return any(said != shown for look, said in printed.items() if said[0] != "continue" or look == shown[1])


def resume_table(runs: int, fail: float = 0.1) -> None:
    """How many runs does compare's replay decide otherwise than the run printed (see the module docstring)."""
    import tempfile
    from pathlib import Path

    from actbench.suite import load_suite

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "resume.yaml"
        path.write_text(RESUME_SUITE)
        suite = load_suite(path)
    print(f"\n=== a printed verdict never moves: {runs} runs of a probe suite (looks {suite.spec.looks}, margin 0.5, 2 candidates "
          f"0 and 0.5 above the baseline, noise sd 0.25 per trial), a trial's first attempt failing with probability {fail}, "
          "stopped after a random look and resumed ===")
    for recording in (False, True):
        rng = np.random.default_rng(5)
        moved = 0
        for _ in range(runs):
            printed, shown = resumed_run(suite, rng, fail, recording)
            moved += any(_moved(printed.get(c, {}), shown[c]) for c in shown)
        print(f"  {'with the recorded looks (after)' if recording else 'replayed from the records (before)':36}: {moved} of {runs} runs "
              "with a verdict that compare shows otherwise than the run printed it")


def plain_boundaries(pairs: tuple[int, ...], n_max: int, level: float, spending: str, sims: int = 200_000,
                     seed: int = 20_240_611) -> np.ndarray:
    """The critical values as actbench computed them before the calibration was conditioned: at
    every look (the first too) the |T| that plain null paths still running exceed level * sims
    times (the same paths and seed as then)."""
    from actbench.analysis.calibration import spent

    rng = np.random.default_rng(seed)
    s1, s2 = np.zeros(sims), np.zeros(sims)
    stopped, done, crit = np.zeros(sims, dtype=bool), 0, np.full(len(pairs), np.inf)
    target = np.minimum(np.floor(spent(np.array(pairs) / n_max, level, spending) * sims), int(level * sims)).astype(int)
    for n in range(1, max(pairs) + 1):
        z = rng.standard_normal(sims)
        s1 += z
        s2 += z * z
        if n in pairs and target[pairs.index(n)] > done:
            need = target[pairs.index(n)]
            t = np.where(stopped, -1.0, np.abs(s1) / np.sqrt(n * (s2 - s1 * s1 / n) / (n - 1)))
            order = np.argsort(-t)[: need - done]
            crit[pairs.index(n)] = t[order[-1]]
            stopped[order] = True
            done = need
    return crit


def run_design(d: np.ndarray, looks: tuple[int, ...], crit: np.ndarray, margin: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Each experiment's verdict (0 undecided, 1 better, 2 worse, 3 equivalent) and the pairs of its
    deciding (or last) look: the design's looks replayed over the rows of d, vectorised."""
    s1, s2 = np.cumsum(d, axis=1), np.cumsum(d * d, axis=1)
    verdict, pairs = np.zeros(len(d), dtype=int), np.full(len(d), looks[-1])
    for n, c in zip(looks, crit):
        mean = s1[:, n - 1] / n
        half = c * np.sqrt(np.maximum(s2[:, n - 1] - n * mean * mean, 0) / (n - 1) / n) if math.isfinite(c) else np.inf
        low, high = mean - half, mean + half
        equivalent = (-margin < low) & (high < margin) if margin is not None else np.zeros(len(d), dtype=bool)
        code = np.select([equivalent, high < 0, low > 0], [3, 1, 2], 0)
        new = (verdict == 0) & (code > 0)
        verdict[new], pairs[new] = code[new], n
    return verdict, pairs


def _gamma_noise(skew: float, rng: np.random.Generator, size: tuple[int, ...]) -> np.ndarray:
    """Unit-variance, centred draws of a gamma law of this skewness (normal at 0); a seed much worse now and then as it grows."""
    if skew == 0:
        return rng.standard_normal(size)
    k = 4 / skew ** 2
    return (rng.standard_gamma(k, size) - k) / math.sqrt(k)


def _differences(shape: str, delta: float, rng: np.random.Generator, size: tuple[int, int]) -> np.ndarray:
    """Paired differences as `failure_rates` builds them (the candidate's noise of `shape`, the
    baseline's normal, t3 for t3, each of variance 1/2), plus delta; `one worse`: normal, but one
    seed in ten is 4 sd worse (centred)."""
    half = math.sqrt(0.5)
    if shape == "one worse":
        return delta + rng.standard_normal(size) + 4 * ((rng.random(size) < 0.1) - 0.1)
    base = _noise("t3" if shape == "t3" else "normal", rng, size)
    return delta + (_noise(shape, rng, size) - base) * half


def _flagged(d: np.ndarray, pairs: np.ndarray) -> np.ndarray:
    """Whether the skewness of each experiment's differences at its deciding look is beyond `stats.skew_limit`."""
    from actbench.analysis import stats as st

    out = np.zeros(len(d), dtype=bool)
    for n in np.unique(pairs):
        rows = pairs == n
        out[rows] = np.abs(stats.skew(d[rows, :n], axis=1, bias=False)) > st.skew_limit(int(n))
    return out


def calibration_table(alpha: float) -> None:
    """How exact the critical values are: before (plain paths, every look) and after (the first
    look exact, later looks conditioned), each checked by `spending_of` on other paths."""
    import time

    from actbench.analysis.calibration import calibrate, critical_t, spending_of, spent

    print("\n=== critical values: the alpha each look spends, against its target (independent check on 400,000 other "
          "conditioned paths); before: plain paths at every look, after: look 1 exact, later looks conditioned ===")
    for first, last, step, level in ((4, 12, 2, alpha / 2), (3, 24, 3, alpha / 2), (2, 12, 2, alpha / 2), (2, 12, 2, 2 * alpha)):
        pairs = looks_in_rounds(first, last, step)
        target = np.diff(spent(np.array(pairs) / last, level, "pocock"), prepend=0.0)
        start = time.process_time()
        after = calibrate(pairs, last, level, "pocock")
        took = time.process_time() - start
        before = plain_boundaries(pairs, last, level, "pocock")
        print(f"\nlooks {pairs}, level {level:g} (pocock): calibration {took:.2f} s CPU; look 1 exact |t| "
              f"{critical_t(pairs[0], target[0]):.4f}, before {before[0]:.4f}")
        print(f"  {'look':>4} {'target':>9} | {'before: c':>10} {'spent - target':>15} | {'after: c':>9} {'spent - target':>15} "
              f"{'its se':>8} {'(dev / se)':>10}")
        check_before, se_before = spending_of(pairs, before)
        check_after, se_after = spending_of(pairs, after.crit)
        for k, n in enumerate(pairs):
            z = (check_after[k] - target[k]) / math.hypot(se_after[k], after.se[k]) if after.se[k] else 0.0
            print(f"  {n:4d} {target[k]:9.6f} | {before[k]:10.4f} {check_before[k] - target[k]:+15.6f} | {after.crit[k]:9.4f} "
                  f"{check_after[k] - target[k]:+15.6f} {after.se[k]:8.1e} {z:+10.2f}")
        print(f"  all looks: before {check_before.sum() - level:+.6f}, after {check_after.sum() - level:+.6f} "
              f"(the check's own se per look {se_after.max():.1e})")


def errors_table(experiments: int, alpha: float, candidates: int) -> None:
    """Per candidate, the false better / worse (no difference) and equivalent (at the margin)
    rates and the power (worse at 1.5 sd), with the critical values before and after, for normal,
    t3, skewed and 'one worse' paired differences; and how often the skew flag speaks."""
    margin = 1.25
    print(f"\n=== error rates per candidate: looks 4..12 step 2, alpha {alpha}, {candidates} candidates (level "
          f"{alpha / candidates:g}, each direction's share {alpha / candidates / 2:g}), margin {margin} sd, {experiments} "
          "experiments each; before: the plain calibration, after: this one; flag: the skew check fires at the deciding look ===")
    print(f"{'differences':12} | {'before: better':>14} {'worse':>7} {'equiv':>7} {'power':>6} | {'after: better':>13} {'worse':>7} "
          f"{'equiv':>7} {'power':>6} | {'flag at 0':>9} {'flag|false better':>17} {'flag|false worse':>16}")
    design = Design.rounds(4, 12, 2, alpha=alpha, candidates=candidates, margin=margin)
    crits = {"before": plain_boundaries(design.looks, design.n_max, design.level, "pocock"),
             "after": boundaries(design.looks, design.n_max, design.level)}
    for shape in ("normal", "t3", "skewed", "one worse"):
        rng = np.random.default_rng(21)
        null, edge, far = (_differences(shape, delta, rng, (experiments, design.n_max)) for delta in (0.0, margin, 1.5))
        cells, flags = [], ""
        for rule, crit in crits.items():
            v0, p0 = run_design(null, design.looks, crit, margin)
            cells.append(f"{(v0 == 1).mean():.4f} {(v0 == 2).mean():7.4f} {(run_design(edge, design.looks, crit, margin)[0] == 3).mean():7.4f} "
                         f"{(run_design(far, design.looks, crit, margin)[0] == 2).mean():6.3f}")
            if rule == "after":
                flag = _flagged(null, p0)
                flags = (f"{flag.mean():9.3f} {flag[v0 == 1].mean() if (v0 == 1).any() else math.nan:17.3f} "
                         f"{flag[v0 == 2].mean() if (v0 == 2).any() else math.nan:16.3f}")
        print(f"{shape:12} | {cells[0]:>14} | {cells[1]:>13} | {flags}")
    print(f"(standard error at the share: {se(alpha / candidates / 2, experiments):.4f})")


def skew_table(experiments: int, alpha: float, candidates: int) -> None:
    """Where each direction's false claims leave their share: per candidate, the rates of false
    better and worse with no difference for gamma-distributed paired differences of growing
    skewness (SKEW_TOLERATED is where the larger stays near 1.25 times its share), and how often the
    skew check fires at n pairs for such differences."""
    from actbench.analysis import stats as st

    share = alpha / candidates / 2
    print(f"\n=== skewed paired differences (gamma laws, right-skewed: a seed much worse now and then), no difference, alpha "
          f"{alpha}, {candidates} candidates: each direction's share {share:g}; {experiments} experiments ===")
    print(f"{'looks':>22} {'skewness':>8} | {'false better':>12} {'false worse':>11} {'larger / share':>14}")
    for first, last, step in DESIGNS:
        design = Design.rounds(first, last, step, alpha=alpha, candidates=candidates)
        crit = boundaries(design.looks, design.n_max, design.level)
        for skew in (0.0, 0.1, st.SKEW_TOLERATED, 0.3, 0.5, 1.0, 2.0):
            v, _ = run_design(_gamma_noise(skew, np.random.default_rng(31), (experiments, design.n_max)), design.looks, crit, None)
            better, worse = (v == 1).mean(), (v == 2).mean()
            print(f"{f'{first}..{last} step {step}':>22} {skew:8.2f} | {better:12.4f} {worse:11.4f} {max(better, worse) / share:14.2f}")
    print(f"\nthe skew check: |sample skewness| above skew_limit(n), the {st.SKEW_SURE:.0%} quantile at n of a gamma law of skewness "
          f"{st.SKEW_TOLERATED}; how often it fires at n pairs")
    print(f"{'n':>4} {'limit':>6} | {'normal':>7} {'t3':>6} {'gamma 0.2':>9} {'gamma 1':>8} {'gamma 2':>8} {'skewed':>7} {'one worse':>9}")
    for n in (4, 6, 8, 12, 24, 48):
        rng = np.random.default_rng(n)
        rates = [np.mean(np.abs(stats.skew(x, axis=1, bias=False)) > st.skew_limit(n)) for x in (
            rng.standard_normal((experiments, n)), rng.standard_t(3, (experiments, n)), *(_gamma_noise(g, rng, (experiments, n)) for g in (0.2, 1.0, 2.0)),
            _differences("skewed", 0.0, rng, (experiments, n)), _differences("one worse", 0.0, rng, (experiments, n)))]
        print(f"{n:4d} {st.skew_limit(n):6.3f} | " + " ".join(f"{r:{w}.3f}" for r, w in zip(rates, (7, 6, 9, 8, 8, 7, 9))))


def _old_hint(mean: float, sd: float, level: float, margin: float | None) -> int | None:
    """The hint before: the fewest n at which a fixed-n t interval at `level` with this mean and sd decides."""
    for n in range(2, 10_001):
        half = stats.t.ppf(1 - level / 2, n - 1) * sd / math.sqrt(n)
        if abs(mean) > half or (margin is not None and abs(mean) + half < margin):
            return n
    return None


def hint_table(undecided: int, alpha: float, candidates: int) -> None:
    """How often the hint's N decides: undecided comparisons of looks 4..12 step 2 (true differences
    drawn from N(0, 0.75^2) sd, margin 1.25 sd and none), the hint from the observed mean and sd;
    then a fresh run of the design extended to N, with the observed difference as the truth and
    with the drawn one, and the run itself carried on to N (its 12 seeds, more drawn from the truth)."""
    from actbench.analysis.sequential import extended, seeds_to_decide

    print(f"\n=== the hint: {undecided} undecided comparisons each, looks 4..12 step 2, alpha {alpha}, {candidates} candidates; "
          "true differences drawn from N(0, 0.75^2) in sd of the paired differences ===")
    for margin in (1.25, None):
        design = Design.rounds(4, 12, 2, alpha=alpha, candidates=candidates, margin=margin)
        crit = boundaries(design.looks, design.n_max, design.level)
        rng = np.random.default_rng(41)
        old_within = named = beyond = 0
        fresh_observed, fresh_truth, carried, ns = [], [], [], []
        while named + beyond < undecided:
            delta = rng.normal(0, 0.75)
            d = delta + rng.standard_normal(design.n_max)
            if run_design(d[None], design.looks, crit, margin)[0][0]:
                continue
            mean, sd = float(d.mean()), float(d.std(ddof=1))
            old = _old_hint(mean, sd, design.level, margin)
            old_within += old is not None and old <= design.n_max
            n = seeds_to_decide(design, mean, sd, margin)
            if n is None:
                beyond += 1
                continue
            named += 1
            ns.append(n)
            big = extended(design, n, margin)
            big_crit = boundaries(big.looks, big.n_max, big.level, paths=100_000)
            fresh_observed.append(1 - operating(big, mean, sd, sims=2000, seed=int(rng.integers(1 << 30)), paths=100_000).p_undecided)
            fresh_truth.append(run_design(delta + rng.standard_normal((1, n)), big.looks, big_crit, margin)[0][0] > 0)
            carried.append(run_design(np.concatenate([d, delta + rng.standard_normal(n - design.n_max)])[None], big.looks, big_crit, margin)[0][0] > 0)
        total = named + beyond
        print(f"margin {margin}: the hint before named N <= 12 (seeds already run) for {old_within / total:.1%}; now never. "
              f"It named N for {named} ({named / total:.0%}; median "
              f"{np.median(ns):g}), 'more than 100' for {beyond}. Where it named N, the design extended to N decided: {np.mean(fresh_observed):.3f} of fresh runs with "
              f"the observed difference as the truth (2000 runs each, other seeds than the hint's), {np.mean(fresh_truth):.3f} of "
              f"fresh runs with the drawn truth, {np.mean(carried):.3f} of the runs carried on to N")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=20_000, help="for the family-wise rates")
    parser.add_argument("--sims", type=int, default=20_000, help="for each planted difference")
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--candidates", type=int, default=2)
    parser.add_argument("--failures", action="store_true", help="only the before/after table of failed seeds")
    parser.add_argument("--resume", action="store_true", help="only the resumed runs' verdicts, before and after")
    parser.add_argument("--runs", type=int, default=600, help="for --resume")
    parser.add_argument("--fail", type=float, default=0.1, help="for --resume: the probability that a trial's first attempt fails")
    parser.add_argument("--calibration", action="store_true", help="only how exact the critical values are, before and after")
    parser.add_argument("--errors", action="store_true", help="only the error rates with the critical values before and after")
    parser.add_argument("--skew", action="store_true", help="only the error rates under skew and the skew check")
    parser.add_argument("--hint", type=int, default=0, metavar="N", help="only the hint's coverage, on N undecided comparisons")
    args = parser.parse_args()
    if args.calibration or args.errors or args.skew or args.hint:
        if args.calibration:
            calibration_table(args.alpha)
        if args.errors:
            errors_table(args.experiments, args.alpha, args.candidates)
        if args.skew:
            skew_table(args.experiments, args.alpha, args.candidates)
        if args.hint:
            hint_table(args.hint, args.alpha, args.candidates)
        return
    if args.failures or args.resume:
        if args.failures:
            failures_table(args.experiments, args.alpha, args.candidates)
        if args.resume:
            resume_table(args.runs, args.fail)
        return
    e = args.experiments
    for first, last, step in DESIGNS:
        print(f"\n=== looks {first}..{last} step {step}: alpha {args.alpha}, {args.candidates} candidates "
              f"(level {args.alpha / args.candidates:g} each) ===")
        for spending in SPENDING:
            design = Design.rounds(first, last, step, alpha=args.alpha, candidates=args.candidates, spending=spending)
            crit = boundaries(design.looks, design.n_max, design.level, spending)
            print(f"\n{spending}: looks {design.looks}")
            print("  critical |t|  " + " ".join(f"{c:6.2f}" for c in crit))
            seq, rep, one = family_wise(design, e, seed=1)
            print(f"  family-wise false claims, {e} null experiments: sequential {seq:.4f} +- {se(seq, e):.4f}; "
                  f"t-test after every round {rep:.4f} +- {se(rep, e):.4f}; t-test at {design.n_max} only "
                  f"{one:.4f} +- {se(one, e):.4f}")
            ratio90 = optimize.brentq(lambda r, d=design: first_look(d, r) - 0.9, 0.1, 1e4) if math.isfinite(crit[0]) else math.inf
            print("  decided worse at look 1 (" + f"{design.looks[0]} pairs): "
                  + ", ".join(f"delta/sd {r:g}: {first_look(design, r):.3f}" for r in FAR)
                  + f"; 90% needs delta/sd >= {ratio90:.3g}")
            for margin in MARGINS:
                print(f"  margin {margin:g} sd   delta/sd  p(better) p(worse) p(equiv) p(undec)  mean seeds  max")
                for delta in DELTAS:
                    oc = operating(Design(design.looks, args.alpha, args.candidates, margin, spending), delta, 1.0, sims=args.sims)
                    print(f"  {'':14}{delta:6.2f}   {oc.p_better:8.4f} {oc.p_worse:8.4f} {oc.p_equivalent:8.4f} "
                          f"{oc.p_undecided:8.4f}  {oc.mean_pairs:10.2f}  {oc.max_pairs:3d}")


if __name__ == "__main__":
    main()
