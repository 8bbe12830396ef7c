"""Scaling ladders: validation loss against training compute, and what a gain is worth.

Per activation the loss of a ladder of model sizes is fitted as L(C) = E + A (C / C0)^-alpha
(C0: the geometric mean compute of the ladder, for conditioning). For a fixed alpha the model is
linear in (E, A), so the fit is a one-dimensional search over alpha with closed-form least
squares inside (variable projection), constrained to E >= 0 and A > 0. The search runs on a
log-spaced grid refined by a parabola through the best three points, vectorised over many loss
vectors at once so that bootstrap replicates cost milliseconds.

The compute-equivalent gain of an activation X against a reference R at compute C is
k = C_R(L_X(C)) / C, where C_R(L) inverts the reference's fitted curve: the reference needs k
times the compute to reach X's loss (k > 1: X is better). It is infinite when X's loss lies
below the reference's asymptote E_R. Intervals come from a paired bootstrap over seeds: at every
rung the same resampled seeds are used for every activation (seed s of X and of R share data
order and initial weights).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

ALPHA_GRID = np.geomspace(1e-3, 3.0, 481)
MIN_RUNGS = 3


@dataclass(frozen=True)
class PowerLaw:
    """L(C) = E + A (C / C0)^-alpha."""

    E: float
    A: float
    alpha: float
    C0: float

    def loss(self, compute: np.ndarray | float) -> np.ndarray | float:
        return self.E + self.A * (np.asarray(compute, dtype=float) / self.C0) ** -self.alpha

    def compute_for(self, loss: float) -> float:
        """Compute at which this curve reaches `loss`; inf at or below the asymptote E."""
        if loss <= self.E:
            return float("inf")
        return float(self.C0 * (self.A / (loss - self.E)) ** (1.0 / self.alpha))


@dataclass(frozen=True)
class Fit:
    """A fitted curve with its quality on the points it was fitted to."""

    law: PowerLaw
    r2: float
    residuals: np.ndarray
    dof: int


def _least_squares(z: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(E, A, SSE) of y = E + A z over the last axis (z and y broadcast). E < 0 is clamped to 0
    (A refitted alone); A <= 0 (a curve that does not decrease) is infeasible: SSE = inf."""
    z, y = np.broadcast_arrays(z, y)
    n = z.shape[-1]
    sz, szz, sy, szy = z.sum(-1), (z * z).sum(-1), y.sum(-1), (z * y).sum(-1)
    A = (n * szy - sz * sy) / (n * szz - sz * sz)
    E = (sy - A * sz) / n
    neg = E < 0
    A = np.where(neg, szy / szz, A)
    E = np.where(neg, 0.0, E)
    sse = ((y - E[..., None] - A[..., None] * z) ** 2).sum(-1)
    return E, A, np.where(A > 0, sse, np.inf)


def fit_power_laws(compute: np.ndarray, losses: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Fit L = E + A (C/C0)^-alpha to every row of `losses` (B x R) at rung computes `compute` (R).

    Returns arrays (E, A, alpha) of length B (nan where no decreasing curve fits) and C0."""
    compute = np.asarray(compute, dtype=float)
    y = np.atleast_2d(np.asarray(losses, dtype=float))
    C0 = float(np.exp(np.log(compute).mean()))
    x = np.log(compute / C0)
    _, _, sse = _least_squares(np.exp(-ALPHA_GRID[:, None] * x)[None], y[:, None, :])  # B x G
    rows = np.arange(y.shape[0])
    best = np.argmin(sse, axis=1)
    # refine: vertices of parabolas through the best point and its neighbours, in log alpha,
    # at a step that shrinks fourfold each round; a vertex is kept only where it is better
    log_alpha = np.log(ALPHA_GRID[best])
    current = sse[rows, best]
    step = np.log(ALPHA_GRID[1] / ALPHA_GRID[0])
    for _ in range(4):
        s0, s2 = (_least_squares(np.exp(-np.exp(log_alpha + d)[:, None] * x), y)[2] for d in (-step, step))
        with np.errstate(invalid="ignore", divide="ignore"):
            curvature = s0 - 2 * current + s2
            shift = np.where(np.isfinite(curvature) & (curvature > 0), 0.5 * (s0 - s2) / curvature, 0.0)
        trial = log_alpha + np.clip(shift, -1, 1) * step
        sse_trial = _least_squares(np.exp(-np.exp(trial)[:, None] * x), y)[2]
        better = sse_trial < current
        log_alpha, current = np.where(better, trial, log_alpha), np.where(better, sse_trial, current)
        step /= 4
    alpha = np.exp(log_alpha)
    E, A, final = _least_squares(np.exp(-alpha[:, None] * x), y)
    bad = ~np.isfinite(final)
    return np.where(bad, np.nan, E), np.where(bad, np.nan, A), np.where(bad, np.nan, alpha), C0


def fit(compute: np.ndarray, losses: np.ndarray) -> Fit | None:
    """The curve through one activation's rung means; None when fewer than 3 rungs or no
    decreasing curve fits."""
    compute, losses = np.asarray(compute, dtype=float), np.asarray(losses, dtype=float)
    if len(np.unique(compute)) < MIN_RUNGS:
        return None
    E, A, alpha, C0 = fit_power_laws(compute, losses[None, :])
    if not np.isfinite(alpha[0]):
        return None
    law = PowerLaw(float(E[0]), float(A[0]), float(alpha[0]), C0)
    residuals = losses - law.loss(compute)
    total = ((losses - losses.mean()) ** 2).sum()
    r2 = 1.0 - float((residuals**2).sum() / total) if total > 0 else float("nan")
    return Fit(law=law, r2=r2, residuals=residuals, dof=len(losses) - 3)


def gain(reference: PowerLaw, loss: float, compute: float) -> float:
    """How many times `compute` the reference needs to reach `loss`."""
    return reference.compute_for(loss) / compute


@dataclass(frozen=True)
class Ladder:
    """Losses of one activation: `losses[r, s]` at rung r (compute `compute[r]`) and seed s.
    Seeds are columns shared by every activation of the same ladder (nan where missing)."""

    compute: np.ndarray
    losses: np.ndarray

    @property
    def means(self) -> np.ndarray:
        return np.nanmean(self.losses, axis=1)


@dataclass(frozen=True)
class GainEstimate:
    value: float
    low: float
    high: float
    replicates: int


def _interval(values: np.ndarray, point: float, level: float) -> GainEstimate:
    v = values[~np.isnan(values)]
    if not len(v):
        return GainEstimate(point, float("nan"), float("nan"), 0)
    lo, hi = np.quantile(v, [(1 - level) / 2, (1 + level) / 2])  # inf replicates sort last
    return GainEstimate(point, float(lo), float(hi), len(v))


def bootstrap_gains(reference: Ladder, candidate: Ladder, at: list[float], *, replicates: int = 1000,
                    level: float = 0.95, seed: int = 0) -> tuple[list[GainEstimate], list[GainEstimate]]:
    """Gain of `candidate` over `reference` at each rung's compute and at each compute in `at`,
    both read off the two fitted curves, with percentile intervals from a paired bootstrap over
    seeds. Both ladders share rungs and seeds."""
    if reference.losses.shape != candidate.losses.shape:
        raise ValueError("the two ladders must have the same rungs and seeds")
    rng = np.random.default_rng(seed)
    n_rungs, n_seeds = reference.losses.shape
    idx = rng.integers(0, n_seeds, size=(replicates, n_rungs, n_seeds))
    rung = np.arange(n_rungs)[None, :, None]

    def resampled(ladder: Ladder) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # a replicate of missing seeds only: nan
            return np.nanmean(ladder.losses[rung, idx], axis=2)  # B x R

    ref_b, cand_b = resampled(reference), resampled(candidate)
    keep = ~(np.isnan(ref_b).any(1) | np.isnan(cand_b).any(1))
    ref_b, cand_b = ref_b[keep], cand_b[keep]
    cand_means = np.vstack([candidate.means, cand_b])  # row 0: the data, then the replicates
    E_r, A_r, al_r, C0_r = fit_power_laws(reference.compute, np.vstack([reference.means, ref_b]))
    E_c, A_c, al_c, C0_c = fit_power_laws(candidate.compute, cand_means)
    targets = np.asarray(at, dtype=float)
    with np.errstate(all="ignore"):
        def ref_compute(loss: np.ndarray) -> np.ndarray:  # per row: compute the reference needs
            out = C0_r * (A_r[:, None] / (loss - E_r[:, None])) ** (1.0 / al_r[:, None])
            return np.where(loss > E_r[:, None], out, np.inf)

        def gains(at: np.ndarray) -> np.ndarray:
            cand_loss = E_c[:, None] + A_c[:, None] * (at[None, :] / C0_c) ** -al_c[:, None]
            return ref_compute(cand_loss) / at[None, :]

        at_rungs, at_targets = gains(candidate.compute), gains(targets)
    rungs = [_interval(at_rungs[1:, r], float(at_rungs[0, r]), level) for r in range(n_rungs)]
    ext = [_interval(at_targets[1:, t], float(at_targets[0, t]), level) for t in range(len(targets))]
    return rungs, ext
