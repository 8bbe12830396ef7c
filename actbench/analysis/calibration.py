"""Critical values of the group-sequential t intervals (`actbench.analysis.sequential`): at look k,
with n_k pairs, the |T| that null paths (normal paired differences) still running after looks
1..k-1 exceed with probability f(t_k) - f(t_{k-1}), the alpha the spending function f gives the look.

- Look 1 is exact: the two-sided t quantile with n_1 - 1 degrees of freedom at the alpha it spends.
- A later look is Monte Carlo over `PATHS` null paths (fixed seeds) conditioned on the earlier looks:
  a path is carried from look to look by its sufficient statistics (the sum and the sum of squares
  of its differences, one block of new differences at a time) and stops where it crossed. At look
  k the probability that a running path crosses is computed, not drawn: with z the new block's sum
  (normal) and w its sum of squares about its own mean (chi-square), |T_k| >= c is a quadratic
  inequality in z (`crossing`), so it is normal CDFs at its roots. What is left random is where
  the paths stand at look k - 1 and their w: the alpha a look spends has a Monte-Carlo standard
  error (`Calibration.se`, measured on the paths themselves; `spending_of` checks it on other
  paths) of at most 4.6e-5 at a level of 0.025, a third of what as many plain paths give, and
  c_k solves its equation to 1e-7 (far below its Monte-Carlo error).
- A later look that spends less alpha than the paths resolve (none of them can cross near it: an
  early O'Brien-Fleming look) gets the t quantile at its own alpha, which spends at most that.
- c_k depends only on looks 1..k (each block's draws are seeded by the block), so a replay that
  knows more looks finds the same values for the earlier ones.
"""

from __future__ import annotations

import functools
import math
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike
from scipy import optimize, special, stats

SPENDING = ("pocock", "obrien_fleming")
PATHS = 400_000
"""Simulated null paths behind the critical values after the first look."""
SEED = 20_240_611
_KEPT = 4
"""Calibrations whose running paths are kept, to extend by a look (the planner asks look by look)."""


def spent(t: ArrayLike, level: float, spending: str) -> np.ndarray:
    """Cumulative alpha spent at information fractions t (capped at 1); both functions give level at 1."""
    t = np.minimum(np.asarray(t, dtype=float), 1.0)
    if spending == "pocock":
        return level * np.log1p((math.e - 1) * t)
    if spending == "obrien_fleming":
        with np.errstate(divide="ignore"):
            return 2 - 2 * stats.norm.cdf(stats.norm.ppf(1 - level / 2) / np.sqrt(t))
    raise ValueError(f"spending must be one of {SPENDING}, not {spending!r}")


def critical_t(n: int, p: float) -> float:
    """The |t| with n - 1 degrees of freedom exceeded with probability p (two-sided); inf for p <= 0."""
    return float(-special.stdtrit(n - 1, p / 2)) if p > 0 else math.inf


def crossing(s: np.ndarray, r: np.ndarray, w: ArrayLike, n: int, m: int, c: float) -> np.ndarray:
    """P(|T| >= c once m more null differences (sd 1) join the first n, whose sum is s and sum of
    squares r | w, the new block's sum of squares about its own mean), exact in the block's sum
    z ~ N(0, m). With n' = n + m, S = s + z and R = r + w + z^2 / m, T^2 = S^2 (n' - 1) / (n' R - S^2),
    so |T| >= c iff a S^2 - b z^2 >= g with a = n' - 1 + c^2, b = c^2 n' / m, g = c^2 n' (r + w):
    (a - b) z^2 + 2 a s z + a s^2 - g >= 0, whose discriminant / 4 is (a - b) g + a b s^2."""
    n2, c2 = n + m, c * c
    a, b = n2 - 1 + c2, c2 * n2 / m
    g = c2 * n2 * (r + np.asarray(w))
    lead, half = a - b, a * s
    disc = lead * g + a * b * s * s
    q = -(half + np.copysign(np.sqrt(np.maximum(disc, 0.0)), half))  # the roots are q / lead and (a s^2 - g) / q
    with np.errstate(divide="ignore", invalid="ignore"):
        z1, z2 = q / lead, (a * s * s - g) / q
    lo, hi = np.minimum(z1, z2) / math.sqrt(m), np.maximum(z1, z2) / math.sqrt(m)
    if lead < 0:  # crosses between the roots (nowhere without them)
        return np.where(disc > 0, special.ndtr(hi) - special.ndtr(lo), 0.0)
    return np.where(disc > 0, special.ndtr(lo) + special.ndtr(-hi), 1.0)


@dataclass(frozen=True)
class Calibration:
    crit: np.ndarray  # critical |T| per look (inf: the look spends nothing)
    se: np.ndarray  # Monte-Carlo standard error of the alpha each look spends (0 at the first: exact)


@dataclass(frozen=True)
class _Running:
    """The null paths that have not crossed yet, after a look with n pairs: their sums and sums of squares."""

    n: int
    s: np.ndarray
    r: np.ndarray


def _first(n: int, c: float, paths: int, seed: int) -> _Running:
    """The null paths that do not cross c at the first look, with n pairs."""
    rng = np.random.default_rng((seed, 0, n))
    s, w = rng.standard_normal(paths) * math.sqrt(n), rng.chisquare(n - 1, paths)
    running = s * s * (n - 1) < c * c * n * w  # |T| < c
    return _Running(n, s[running], w[running] + s[running] ** 2 / n)


def _next(run: _Running, n2: int, target: float, total: float, paths: int, seed: int,
          crit: float | None = None) -> tuple[float, float, float, _Running]:
    """(c, the alpha it spends, that alpha's standard error, the paths still running) at the look
    after `run`, with n2 pairs, that spends `target` (`total` up to it); `crit`: that c, not solved for."""
    n, m = run.n, n2 - run.n
    rng = np.random.default_rng((seed, n, n2))
    z = rng.standard_normal(len(run.s)) * math.sqrt(m)
    w = rng.standard_normal(len(run.s)) ** 2 if m == 2 else rng.chisquare(m - 1, len(run.s)) if m > 2 else np.zeros(len(run.s))
    c, spend, se = math.inf if crit is None else crit, 0.0, 0.0
    if math.isfinite(c) or target > 0:
        # a path can cross at c (for some w) only below this c^2: where `crossing`'s quadratic at w = 0
        # opens upward or has real roots; so the paths that can, at any c, lead this order
        reach = (n2 - 1) * (m * run.r + run.s ** 2) / (n * run.r - run.s ** 2)
        low = c if crit is not None else critical_t(n2, total)  # the true spend at `low` is >= target

        def able(c: float) -> tuple[np.ndarray, ...]:  # the paths that can cross at c or above, those that can at higher c first
            i = np.flatnonzero(reach > c * c)
            i = i[np.argsort(-reach[i])]
            return run.s[i], run.r[i], w[i], -reach[i]

        s, r, wk, bound = able(low)

        @functools.cache  # a path left out at `low` cannot cross at c >= low: the sum at c holds when `low` steps down
        def sums(c: float) -> tuple[float, float]:
            k = int(np.searchsorted(bound, -c * c))
            g = crossing(s[:k], r[:k], wk[:k], n, m, c)
            return float(g.sum()), float(np.square(g).sum())  # not g @ g: BLAS threads cost more than the sum

        if crit is None:
            need, c = target * paths, critical_t(n2, target)  # c: the true spend there is <= target
            for _ in range(6):  # the estimate can fall short at `low` by its noise: step down (to low / 2 at most)
                if sums(low)[0] >= need:
                    break
                low *= 0.9
                s, r, wk, bound = able(low)
            if sums(low)[0] >= need:  # else too little alpha for the paths to resolve: keep the bound
                while sums(c)[0] > need:
                    c *= 1.25
                c = optimize.root_scalar(lambda c: math.log(max(sums(c)[0], 1e-300) / need), bracket=(low, c), method="toms748",
                                         xtol=1e-7 * low).root
        total_g, squares = sums(c)
        spend = total_g / paths
        se = math.sqrt(max(squares / paths - spend ** 2, 0.0) / paths)
    s, r = run.s + z, run.r + w + z * z / m
    running = s * s * (n2 - 1) < c * c * (n2 * r - s * s)
    return c, spend, se, _Running(n2, s[running], r[running])


_RUNNING: OrderedDict[tuple, tuple[list[float], list[float], _Running]] = OrderedDict()


@functools.lru_cache(maxsize=4096)
def calibrate(pairs: tuple[int, ...], n_max: int, level: float, spending: str, paths: int = PATHS, seed: int = SEED) -> Calibration:
    """The critical values of looks with these (actual, strictly increasing) pair counts, and the
    standard errors of the alpha they spend (read-only, cached). Extends the longest calibration of
    a prefix of `pairs` whose paths it kept."""
    total = spent(np.array(pairs) / n_max, level, spending)
    target = np.diff(total, prepend=0.0)
    key = (n_max, level, spending, paths, seed)
    done = next((k for k in range(len(pairs), 0, -1) if (pairs[:k], key) in _RUNNING), 0)
    if done:
        crit, se, run = _RUNNING[(pairs[:done], key)]
        crit, se = list(crit), list(se)
    else:
        crit, se, done = [critical_t(pairs[0], float(target[0]))], [0.0], 1
        run = _first(pairs[0], crit[0], paths, seed)
    for k in range(done, len(pairs)):
        c, _, e, run = _next(run, pairs[k], float(target[k]), float(total[k]), paths, seed)
        crit.append(c)
        se.append(e)
    _RUNNING[(pairs, key)] = (crit, se, run)
    while len(_RUNNING) > _KEPT:
        _RUNNING.popitem(last=False)
    out = Calibration(np.array(crit), np.array(se))
    out.crit.flags.writeable = out.se.flags.writeable = False
    return out


def spending_of(pairs: tuple[int, ...], crit: ArrayLike, paths: int = PATHS, seed: int = SEED + 1) -> tuple[np.ndarray, np.ndarray]:
    """The alpha that critical values `crit` spend at each look (the first exact) and its standard
    error, estimated on other paths than the calibration's: an independent check of it."""
    crit = np.asarray(crit, dtype=float)
    run = _first(pairs[0], float(crit[0]), paths, seed)
    out, se = [2 * float(stats.t.sf(crit[0], pairs[0] - 1))], [0.0]
    for n2, c in zip(pairs[1:], crit[1:]):
        _, spend, e, run = _next(run, n2, 0.0, 0.0, paths, seed, crit=float(c))
        out.append(spend)
        se.append(e)
    return np.array(out), np.array(se)
