"""Group-sequential comparison of candidates with a baseline on paired seeds: repeated confidence
intervals (Jennison & Turnbull) with Lan-DeMets alpha spending, calibrated for the t statistic.

Data: per candidate, the paired differences d_s = candidate - baseline metric of seed s (lower is
better), looked at after growing numbers of pairs. At a look with n pairs the interval is
mean +- c_k sd / sqrt(n). Under normal differences T_k = (mean_k - delta) / (sd_k / sqrt(n_k)) has a
joint law over the looks that is free of delta and sigma, so the critical values c_k are found once
by simulating it: c_k spends f(t_k) - f(t_{k-1}) of the level at information fraction
t_k = n_k / n_max (actual pairs, so failed trials are allowed; `calibration.spent` gives f). Then all the
intervals of a candidate, at every look, contain the true mean difference with probability
>= 1 - level, whatever the stopping rule; with Bonferroni (level = alpha / candidates) every claim
("better", "worse", "equivalent" = interval inside +-margin) of every candidate at every look holds
simultaneously with probability >= 1 - alpha, correlated candidates (shared baseline) included.
Assumptions: normal paired differences with a constant sd; which pairs exist, and when looks are
taken, does not depend on their values. The critical values are `actbench.analysis.calibration`'s:
exact at the first look, Monte Carlo conditioned on the earlier looks after it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import pairwise
from types import EllipsisType

import numpy as np

from actbench.analysis.calibration import PATHS, SPENDING, calibrate
from actbench.analysis.rounds import looks_in_rounds
from actbench.analysis.stats import HINT_CAP, POWER

_EPS = 8 * np.finfo(float).eps


def _check(pairs: tuple[int, ...], n_max: int, level: float, spending: str) -> None:
    if not pairs or pairs[0] < 2 or any(b <= a for a, b in pairwise(pairs)):
        raise ValueError(f"pairs must be strictly increasing and start at >= 2, not {pairs}")
    if not 0 < level < 1 or n_max < 2 or spending not in SPENDING:
        raise ValueError(f"need 0 < level < 1, n_max >= 2 and spending in {SPENDING}: {level}, {n_max}, {spending!r}")


def boundaries(pairs: tuple[int, ...], n_max: int, level: float, spending: str = "pocock", paths: int = PATHS) -> np.ndarray:
    """Critical |T| at looks with these (actual) pair counts; inf where the look spends nothing.
    The value at look k depends only on pairs[:k + 1] (read-only, cached)."""
    pairs = tuple(int(p) for p in pairs)
    _check(pairs, n_max, level, spending)
    return calibrate(pairs, int(n_max), float(level), spending, paths).crit


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
    seeds_needed: int | None  # undecided: seeds_to_decide at the last look (None: more than HINT_CAP, or not undecided)


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
    verdict = "undecided" if len(looks) == len(design.looks) else "continue"
    needed = seeds_to_decide(design, interval.mean, interval.sd, margins[used[-1][0]]) if hint and interval and verdict == "undecided" else None
    return Decision(verdict, len(looks), interval, pairs, needed)


def claim(interval: Interval, margin: float | None, blocked: frozenset[str] = frozenset()) -> str | None:
    """The claim an interval makes, of those not `blocked`: equivalent before better or worse (an
    interval inside +-margin and clear of 0 makes both); None: none."""
    verdict = _verdict(interval.low, interval.high, margin)
    if verdict == "equivalent" and verdict in blocked:
        verdict = _verdict(interval.low, interval.high, None)
    return None if verdict in blocked else verdict


@dataclass(frozen=True)
class OperatingCharacteristics:
    p_better: float
    p_worse: float
    p_equivalent: float
    p_undecided: float
    mean_pairs: float
    max_pairs: int
    sims: int


def operating(design: Design, delta: float, sd: float, sims: int = 20_000, seed: int = 0, paths: int = PATHS) -> OperatingCharacteristics:
    """Simulate one candidate's run of the design (at design.level) with differences N(delta, sd^2)
    and no missing pairs, vectorised over simulations (the boundaries from `paths` null paths)."""
    rng = np.random.default_rng(seed)
    crit = boundaries(design.looks, design.n_max, design.level, design.spending, paths)
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


HINT_PATHS, HINT_SIMS = 10_000, 4000
"""Null paths behind an extended design's boundaries, and simulated runs behind its decision rate."""


def extended(design: Design, cap: int, margin: float | None) -> Design:
    """The design with its rounds carried on to `cap` pairs (its spending spread over them), or one
    look at `cap` for a one-look design."""
    looks = looks_in_rounds(design.looks[0], cap, design.looks[1] - design.looks[0]) if len(design.looks) > 1 else (cap,)
    return Design(looks, design.alpha, design.candidates, margin, design.spending)


@functools.lru_cache(maxsize=1024)
def _decided(design: Design, delta: float, sd: float) -> float:
    return 1 - operating(design, delta, sd, sims=HINT_SIMS, paths=HINT_PATHS).p_undecided


@functools.lru_cache(maxsize=1024)
def seeds_to_decide(design: Design, mean: float, sd: float, margin: float | None) -> int | None:
    """The least cap N beyond the design's (on its round grid, or HINT_CAP) at which the design
    extended to N (`extended`) decides, better, worse or equivalent, with probability >= POWER
    were the true difference `mean` and the paired sd `sd`: its operating characteristics, at caps
    doubling from the first (the small designs cost least), then by bisection. None when not even
    HINT_CAP pairs do (or mean or sd is not finite)."""
    if not (math.isfinite(mean) and math.isfinite(sd)) or design.n_max >= HINT_CAP:
        return None
    step = design.looks[1] - design.looks[0] if len(design.looks) > 1 else 1
    caps = list(range(design.n_max + step, HINT_CAP + 1, step))
    caps += [HINT_CAP] if not caps or caps[-1] < HINT_CAP else []

    def decides(i: int) -> bool:
        return _decided(extended(design, caps[i], margin), mean, sd) >= POWER

    low, high = -1, 0  # caps[low] does not decide (-1: none tried)
    while not decides(high):
        if high == len(caps) - 1:
            return None
        low, high = high, min(2 * high + 1, len(caps) - 1)
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if decides(mid) else (mid, high)
    return caps[high]
