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
"""

from __future__ import annotations

import argparse
import math

import numpy as np
from scipy import optimize, stats

from actbench.analysis.sequential import SPENDING, Design, boundaries, operating

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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiments", type=int, default=20_000, help="for the family-wise rates")
    parser.add_argument("--sims", type=int, default=20_000, help="for each planted difference")
    parser.add_argument("--alpha", type=float, default=0.05)
    parser.add_argument("--candidates", type=int, default=2)
    args = parser.parse_args()
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
