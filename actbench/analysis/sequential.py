"""Group-sequential comparison of candidates with a baseline on paired seeds: repeated confidence
intervals (Jennison & Turnbull) with Lan-DeMets alpha spending, calibrated for the t statistic.

Data: per candidate, the paired differences d_s = candidate - baseline metric of seed s (lower is
better), looked at after growing numbers of pairs. At a look with n pairs the interval is
mean +- c_k sd / sqrt(n). Under normal differences T_k = (mean_k - delta) / (sd_k / sqrt(n_k)) has a
joint law over the looks that is free of delta and sigma, so the critical values c_k are found once
by simulating it: c_k spends f(t_k) - f(t_{k-1}) of the level at information fraction
t_k = n_k / n_max (actual pairs, so failed trials are allowed; `spent` gives f). Then all the
intervals of a candidate, at every look, contain the true mean difference with probability
>= 1 - level, whatever the stopping rule; with Bonferroni (level = alpha / candidates) every claim
("better", "worse", "equivalent" = interval inside +-margin) of every candidate at every look holds
simultaneously with probability >= 1 - alpha, correlated candidates (shared baseline) included.
Assumptions: normal paired differences with a constant sd; which pairs exist, and when looks are
taken, does not depend on their values. The calibration is Monte Carlo over SIMS paths (fixed seed): each look's crossing
probability is exact up to a standard error of about sqrt(p / SIMS), ~1.6e-4 at p = 0.005.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from types import EllipsisType

import numpy as np
from numpy.typing import ArrayLike
from scipy import special, stats

from actbench.analysis.rounds import looks_in_rounds

SPENDING = ("pocock", "obrien_fleming")
SIMS = 200_000
"""Simulated null paths behind the critical values."""
_SEED = 20_240_611
_EPS = 8 * np.finfo(float).eps


def spent(t: ArrayLike, level: float, spending: str) -> np.ndarray:
    """Cumulative alpha spent at information fractions t (capped at 1); both functions give level at 1."""
    t = np.minimum(np.asarray(t, dtype=float), 1.0)
    if spending == "pocock":
        return level * np.log1p((math.e - 1) * t)
    if spending == "obrien_fleming":
        with np.errstate(divide="ignore"):
            return 2 - 2 * stats.norm.cdf(stats.norm.ppf(1 - level / 2) / np.sqrt(t))
    raise ValueError(f"spending must be one of {SPENDING}, not {spending!r}")


@functools.lru_cache(maxsize=8)
def _null_tops(n_sim: int, keep: int) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    """For n = 0..n_sim: the `keep` largest |T_n| over SIMS null paths (descending) and their path
    ids. The paths are the same for every n_sim (one stream, drawn in order of n); a boundary never
    needs more than the level * SIMS largest values, so this is all a calibration reads."""
    rng = np.random.default_rng(_SEED)
    s1, s2 = np.zeros(SIMS), np.zeros(SIMS)
    tops = [(np.zeros(0), np.zeros(0, dtype=np.int64))] * 2
    for n in range(1, n_sim + 1):
        z = rng.standard_normal(SIMS)
        s1 += z
        s2 += z * z
        if n >= 2:
            t = np.abs(s1) / np.sqrt(n * (s2 - s1 * s1 / n) / (n - 1))  # |mean| / (sd / sqrt(n))
            ids = np.argpartition(t, SIMS - keep)[SIMS - keep:]
            ids = ids[np.argsort(-t[ids])]
            tops.append((t[ids], ids))
    return tuple(tops)


@functools.lru_cache(maxsize=65_536)
def _boundaries(pairs: tuple[int, ...], n_max: int, level: float, spending: str) -> np.ndarray:
    keep = int(level * SIMS)
    target = np.minimum(np.floor(spent(np.array(pairs) / n_max, level, spending) * SIMS), keep).astype(int)
    crit = np.full(len(pairs), np.inf)
    if keep == 0:
        return crit
    tops = _null_tops(max(n_max, pairs[-1]), keep)
    stopped, done = np.zeros(SIMS, dtype=bool), 0  # paths that crossed an earlier look
    for k, (n, need) in enumerate(zip(pairs, target)):
        if need > done:  # the (need - done)-th largest |T_n| among paths still running
            values, ids = tops[n][0][:need], tops[n][1][:need]
            running = ~stopped[ids]
            crit[k] = values[running][need - done - 1]
            stopped[ids[running][: need - done]] = True
            done = need
    crit.flags.writeable = False
    return crit


def _check(pairs: tuple[int, ...], n_max: int, level: float, spending: str) -> None:
    if not pairs or pairs[0] < 2 or any(b <= a for a, b in pairwise(pairs)):
        raise ValueError(f"pairs must be strictly increasing and start at >= 2, not {pairs}")
    if not 0 < level < 1 or n_max < 2 or spending not in SPENDING:
        raise ValueError(f"need 0 < level < 1, n_max >= 2 and spending in {SPENDING}: {level}, {n_max}, {spending!r}")


def boundaries(pairs: tuple[int, ...], n_max: int, level: float, spending: str = "pocock") -> np.ndarray:
    """Critical |T| at looks with these (actual) pair counts; inf where the look spends nothing.
    The value at look k depends only on pairs[:k + 1] (read-only, cached)."""
    pairs = tuple(int(p) for p in pairs)
    _check(pairs, n_max, level, spending)
    return _boundaries(pairs, int(n_max), float(level), spending)


@dataclass(frozen=True)
class Design:
    looks: tuple[int, ...]  # planned pairs at each look, strictly increasing, first >= 2
    alpha: float = 0.05  # family-wise, over candidates and looks
    candidates: int = 1  # Bonferroni over this many comparisons
    margin: float | None = None  # absolute equivalence margin; None: no "equivalent" verdict
    spending: str = "pocock"

    def __post_init__(self) -> None:
        object.__setattr__(self, "looks", tuple(int(n) for n in self.looks))
        _check(self.looks, self.n_max, self.level, self.spending)
        if self.candidates < 1 or (self.margin is not None and not self.margin > 0):
            raise ValueError(f"need candidates >= 1 and margin > 0 or None: {self}")

    @property
    def n_max(self) -> int:
        return self.looks[-1]

    @property
    def level(self) -> float:
        return self.alpha / self.candidates

    @classmethod
    def rounds(cls, first: int, last: int, step: int, **kw) -> Design:
        return cls(looks_in_rounds(first, last, step), **kw)


@dataclass(frozen=True)
class Interval:
    n: int
    mean: float
    sd: float
    crit: float
    low: float
    high: float


@dataclass(frozen=True)
class Decision:
    verdict: str  # better | worse | equivalent | continue | undecided
    look: int  # 1-based index into the looks given: the deciding one, or the last
    interval: Interval | None  # at that look (the last with >= 2 pairs); None if none had
    pairs: tuple[int, ...]  # pair counts of the looks used
    seeds_needed: int | None  # continue / undecided: seeds_to_decide at the last look


def _verdict(low: float, high: float, margin: float | None) -> str | None:
    if margin is not None and -margin < low and high < margin:
        return "equivalent"
    return "better" if high < 0 else "worse" if low > 0 else None


def _interval(d: list[float], crit: float) -> Interval:
    n = len(d)  # a few dozen seeds: plain floats are faster than numpy here
    mean = math.fsum(d) / n
    sd = math.sqrt(math.fsum([(x - mean) ** 2 for x in d]) / (n - 1))
    if sd <= _EPS * max(map(abs, d)):  # all equal up to rounding: exact
        sd = 0.0
    half = math.inf if math.isinf(crit) else crit * sd / math.sqrt(n)  # a look that spends no alpha decides nothing
    return Interval(n, mean, sd, crit, mean - half, mean + half)


def decide(looks: Sequence[Sequence[float]], design: Design,
           margin: float | Sequence[float | None] | None | EllipsisType = ...,
           blocked: Sequence[frozenset[str]] | None = None, hint: bool = True) -> Decision:
    """Replay the design over the looks so far (looks[k]: all differences available at look k, a
    superset of look k - 1's) and stop at the first decisive look. Looks with < 2 pairs, or no
    more than the previous look, are skipped. `margin` (one value, or one per look) overrides
    design.margin; `blocked[k]`: verdicts look k may not reach (`actbench.analysis.failures`), so
    it goes on to the next look instead; `hint`: an undecided decision's seeds_needed (a simulation
    of its own: simulations of many decisions leave it out)."""
    if len(looks) > len(design.looks):
        raise ValueError(f"{len(looks)} looks, but the design plans {len(design.looks)}")
    margin = design.margin if margin is ... else margin
    margins = [margin] * len(looks) if margin is None or np.isscalar(margin) else list(margin)
    if len(margins) != len(looks):
        raise ValueError(f"{len(margins)} margins for {len(looks)} looks")
    used: list[tuple[int, list[float]]] = []
    for k, look in enumerate(looks):
        d = np.asarray(look, dtype=float).tolist()
        if len(d) >= 2 and len(d) > (len(used[-1][1]) if used else 0):
            used.append((k, d))
    pairs = tuple(len(d) for _, d in used)
    crit = boundaries(pairs, design.n_max, design.level, design.spending) if used else ()
    interval = None
    for j, ((k, d), c) in enumerate(zip(used, crit)):
        interval = _interval(d, float(c))
        verdict = claim(interval, margins[k], blocked[k] if blocked else frozenset())
        if verdict:
            return Decision(verdict, k + 1, interval, pairs[: j + 1], None)
    needed = seeds_to_decide(interval.mean, interval.sd, design.level, margins[used[-1][0]]) if hint and interval else None
    verdict = "undecided" if len(looks) == len(design.looks) else "continue"
    return Decision(verdict, len(looks), interval, pairs, needed)


def claim(interval: Interval, margin: float | None, blocked: frozenset[str] = frozenset()) -> str | None:
    """The claim an interval makes, of those not `blocked`: equivalent before better or worse (an
    interval inside +-margin and clear of 0 makes both); None: none."""
    verdict = _verdict(interval.low, interval.high, margin)
    if verdict == "equivalent" and verdict in blocked:
        verdict = _verdict(interval.low, interval.high, None)
    return None if verdict in blocked else verdict


def seeds_to_decide(mean: float, sd: float, level: float, margin: float | None, cap: int = 10_000) -> int | None:
    """Smallest n (2..cap) at which a fixed-n t interval at `level` with this mean and sd excludes 0
    or fits inside +-margin; None if neither happens by cap. Either way its half-width t(n) sd / sqrt(n)
    must fall below `gap`, i.e. n > (t(n) sd / gap)^2; it falls with n, so bisection finds n."""
    gap, q = max(abs(mean), margin - abs(mean) if margin is not None else -math.inf), 1 - level / 2

    def decides(n: int) -> bool:
        return special.stdtrit(n - 1, q) * sd / math.sqrt(n) < gap

    if cap < 2 or not decides(cap):
        return None
    # t quantiles exceed the normal one, so `low` pairs do not decide; `high` does, as t(high) <= t(low)
    low = max(1, int((special.ndtri(q) * sd / gap) ** 2))
    high = min(cap, max(2, int((special.stdtrit(max(low, 2) - 1, q) * sd / gap) ** 2) + 1))
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if decides(mid) else (mid, high)
    return high


@dataclass(frozen=True)
class OperatingCharacteristics:
    p_better: float
    p_worse: float
    p_equivalent: float
    p_undecided: float
    mean_pairs: float
    max_pairs: int
    sims: int


def operating(design: Design, delta: float, sd: float, sims: int = 20_000, seed: int = 0) -> OperatingCharacteristics:
    """Simulate one candidate's run of the design (at design.level) with differences N(delta, sd^2)
    and no missing pairs, vectorised over simulations."""
    rng = np.random.default_rng(seed)
    crit = boundaries(design.looks, design.n_max, design.level, design.spending)
    s1, s2 = np.zeros(sims), np.zeros(sims)
    verdict = np.zeros(sims, dtype=int)  # 0 undecided, 1 better, 2 worse, 3 equivalent
    pairs = np.full(sims, design.n_max)
    prev = 0
    for n, c in zip(design.looks, crit):
        z = rng.standard_normal((n - prev, sims))
        s1 += z.sum(axis=0)
        s2 += (z * z).sum(axis=0)
        prev = n
        mean = delta + sd * s1 / n  # d = delta + sd * z, so sd_d = sd * sd_z (exactly 0 when sd is)
        sd_n = sd * np.sqrt(np.maximum(s2 - s1 * s1 / n, 0) / (n - 1))
        half = np.full(sims, np.inf) if np.isinf(c) else c * sd_n / math.sqrt(n)  # no alpha spent: no decision
        low, high = mean - half, mean + half
        equivalent = (-design.margin < low) & (high < design.margin) if design.margin is not None else False
        code = np.select([equivalent, high < 0, low > 0], [3, 1, 2], 0)
        new = (verdict == 0) & (code > 0)
        verdict[new], pairs[new] = code[new], n
    p = np.bincount(verdict, minlength=4) / sims
    return OperatingCharacteristics(float(p[1]), float(p[2]), float(p[3]), float(p[0]),
                                    float(pairs.mean()), int(pairs.max()), sims)
