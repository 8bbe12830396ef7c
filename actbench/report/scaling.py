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
from typing import TYPE_CHECKING, Any

import numpy as np

from actbench.lm.ladder import MIN_RUNGS_TO_EXTRAPOLATE

if TYPE_CHECKING:
    import pandas as pd

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
    """Losses of one activation: `losses[r, s]` at rung r (compute `compute[r]`) and seed s, and
    its training throughput `speed[r, s]` (tokens/s; nan where unknown). Seeds are columns shared
    by every activation of the same ladder (nan where missing)."""

    compute: np.ndarray
    losses: np.ndarray
    speed: np.ndarray | None = None

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
    # order statistics, not interpolation: an infinite replicate (the baseline's curve never gets
    # there) sorts last and stays infinite instead of turning an interval's end into nan
    lo, hi = np.quantile(v, [(1 - level) / 2, (1 + level) / 2], method="inverted_cdf")
    return GainEstimate(point, float(lo), float(hi), len(v))


def bootstrap_gains(reference: Ladder, candidate: Ladder, at: list[float], *, replicates: int = 1000,
                    level: float = 0.95, seed: int = 0) -> tuple[list[GainEstimate], list[GainEstimate], GainEstimate | None]:
    """Gain of `candidate` over `reference` at each rung's compute and at each compute in `at`,
    both read off the two fitted curves, with percentile intervals from a paired bootstrap over
    seeds. Both ladders share rungs and seeds. The third estimate is the gain at the largest rung
    net of the throughput ratio (candidate / reference tokens/s there, geometric mean over the
    same resampled seeds): the factor of training time saved (None without throughputs)."""
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
    time = None
    if reference.speed is not None and candidate.speed is not None:
        log_ratio = np.log(candidate.speed[-1] / reference.speed[-1])  # per seed, at the largest rung
        if np.isfinite(log_ratio).any():
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                ratio_b = np.exp(np.nanmean(log_ratio[idx[:, -1, :]], axis=1))[keep]
            time = _interval(at_rungs[1:, -1] * ratio_b, float(at_rungs[0, -1] * np.exp(np.nanmean(log_ratio))), level)
    return rungs, ext, time


LOUD_EXTRAPOLATION = 10.0
"""Beyond this factor past the largest rung an extrapolated gain is flagged in its verdict line."""


def _ladders(recs: "pd.DataFrame", names: list[str], metric: str) -> tuple[dict[str, Ladder], list[tuple[int, int]], list[int]]:
    """Per activation its Ladder over the suite's rungs (d_model, n_layers; ordered by compute)
    and seeds (nan where a trial is missing)."""
    import pandas as pd

    compute = recs["metric.flops_per_token"].astype(float) * 3 * recs["metric.tokens"].astype(float)
    recs = recs.assign(_rung=list(zip(recs["d_model"].astype(int), recs["n_layers"].astype(int))), _compute=compute)
    rungs = list(recs.groupby("_rung")["_compute"].mean().sort_values().index)
    seeds = sorted(int(s) for s in recs["seed"].unique())
    out = {}
    for act in names:
        a = recs[recs["activation"] == act]
        if a.empty:
            continue
        c = np.full(len(rungs), np.nan)
        losses = np.full((len(rungs), len(seeds)), np.nan)
        speed = np.full((len(rungs), len(seeds)), np.nan)
        tps = a["metric.tokens_per_s"].astype(float) if "metric.tokens_per_s" in a else pd.Series(np.nan, index=a.index)
        for r, rung in enumerate(rungs):
            at = a[a["_rung"] == rung]
            if len(at):
                c[r] = at["_compute"].mean()
                for s, v, t in zip(at["seed"].astype(int), at[f"metric.{metric}"].astype(float), tps[at.index]):
                    losses[r, seeds.index(s)] = v
                    speed[r, seeds.index(s)] = t
        out[act] = Ladder(c, losses, speed)
    return out, rungs, seeds


def _gain_cells(g: GainEstimate) -> dict[str, float]:
    return {"gain": g.value, "gain_low": g.low, "gain_high": g.high}


def scaling_frame(trials: "pd.DataFrame", names: list[str], suites: dict[tuple[str, str], Any], *, level: float = 0.95,
                  replicates: int = 1000) -> "pd.DataFrame":
    """One row per activation of every ladder suite: its fitted curve and, against the baseline
    (names[0]), the compute-equivalent gain at every rung and at the suite's target, with
    paired-bootstrap intervals over seeds (or why the target is refused)."""
    import pandas as pd

    from actbench.lm.ladder import target_compute

    out = []
    for (d, name), suite in suites.items():
        spec = suite.spec.ladder
        if spec is None or trials.empty:
            continue
        recs = trials[(trials["results_dir"].astype(str) == d) & (trials["suite"] == name) & (trials["kind"] == "lm")
                      & (trials["status"] == "ok") & trials["activation"].isin(names)]
        if recs.empty or not {"metric.flops_per_token", "metric.tokens"} <= set(recs):
            continue
        metric = "val_bpb" if "metric.val_bpb" in recs and recs["metric.val_bpb"].notna().all() else "val_loss"
        ladders, rungs, seeds = _ladders(recs, names, metric)
        target = target_compute(spec, suite.spec.defaults)
        base = ladders.get(names[0])
        device = ", ".join(sorted({str(v) for v in recs["metric.device"].dropna()})) if "metric.device" in recs else None
        for act, lad in ladders.items():
            ok = np.isfinite(lad.compute) & ~np.isnan(lad.losses).all(axis=1)
            f = fit(lad.compute[ok], lad.means[ok])
            row: dict[str, Any] = {
                "device": device,
                "suite": name, "results": d, "activation": act, "metric": metric, "rungs": int(ok.sum()), "seeds": len(seeds),
                "compute": lad.compute.tolist(), "losses": lad.losses.tolist(), "shapes": [f"{m}x{n}" for m, n in rungs],
                "E": f.law.E if f else np.nan, "A": f.law.A if f else np.nan, "alpha": f.law.alpha if f else np.nan,
                "C0": f.law.C0 if f else np.nan, "r2": f.r2 if f else np.nan,
                "max_residual": float(np.abs(f.residuals).max()) if f else np.nan,
                "gain": np.nan, "gain_low": np.nan, "gain_high": np.nan, "rung_gains": [],
                "time_gain": np.nan, "time_low": np.nan, "time_high": np.nan,
                "target_compute": target, "target_label": spec.target.label if spec.target else "", "extrapolation": np.nan, "target_gain": np.nan, "target_low": np.nan,
                "target_high": np.nan, "target_note": None, "note": None if f else f"no fit: fewer than {MIN_RUNGS} rungs or no decreasing curve",
            }
            if act != names[0] and base is not None and f is not None:
                both = ok & np.isfinite(base.compute) & ~np.isnan(base.losses).all(axis=1)
                if both.sum() >= MIN_RUNGS and fit(base.compute[both], base.means[both]) is not None:
                    ref = Ladder(base.compute[both], base.losses[both], base.speed[both] if base.speed is not None else None)
                    cand = Ladder(lad.compute[both], lad.losses[both], lad.speed[both] if lad.speed is not None else None)
                    factor = target / float(cand.compute.max()) if target else np.nan
                    refuse = None
                    if target and both.sum() < MIN_RUNGS_TO_EXTRAPOLATE:
                        refuse = f"refused: {int(both.sum())} rungs leave the 3-parameter fit untested (need {MIN_RUNGS_TO_EXTRAPOLATE})"
                    elif target and factor > spec.max_extrapolation:
                        refuse = f"refused: {factor:.3g}x beyond the largest rung (max_extrapolation {spec.max_extrapolation:g})"
                    at = [target] if target and refuse is None else []
                    per_rung, ext, time = bootstrap_gains(ref, cand, at, replicates=replicates, level=level)
                    row.update(_gain_cells(per_rung[-1]), rung_gains=[[g.value, g.low, g.high] for g in per_rung],
                               extrapolation=factor, target_note=refuse)
                    if ext:
                        row.update(target_gain=ext[0].value, target_low=ext[0].low, target_high=ext[0].high)
                    if time is not None:
                        row.update(time_gain=time.value, time_low=time.low, time_high=time.high)
                else:
                    row["note"] = f"the baseline {names[0]} has no fit on the same rungs"
            out.append(row)
    return pd.DataFrame(out)


MIN_VERDICT_SEEDS = 5
"""Fewer seeds than this: the scaling lines give the gain and its bootstrap interval but no verdict."""


def _times(v: float) -> str:
    return "unbounded" if v == float("inf") else ("-" if not np.isfinite(v) else f"{v:.3g}x")


def gain_text(value: float, low: float, high: float, short: bool = False) -> str:
    """A gain with its interval; an infinite gain says why (the baseline's fitted curve levels off
    above the candidate's loss: no compute brings the baseline there, by the fit)."""
    interval = "no interval" if np.isnan(low) else f"{_times(low)}-{_times(high)}"
    if value == float("inf"):
        return f"unbounded ({interval})" if short else \
            f"unbounded: the baseline's fit levels off (its E) above this loss, so no compute reaches it by the fit (95% CI {interval})"
    return f"{_times(value)} ({interval})" if short else f"{_times(value)} (95% CI {interval})"


def scaling_lines(frame: "pd.DataFrame", baseline: str) -> list[str]:
    """One line per candidate of every ladder: its gain at the largest rung and at the target."""
    lines = []
    for r in frame.itertuples():
        fit_text = f"fit alpha={r.alpha:.3g}, R2={r.r2:.3f}, {r.rungs} rungs" if np.isfinite(r.alpha) else (r.note or "no fit")
        if r.activation == baseline:
            lines.append(f"{r.suite}: {baseline} (baseline): {fit_text}")
            continue
        if not np.isfinite(r.gain):
            lines.append(f"{r.suite}: {r.activation} vs {baseline}: {r.note or 'no gain'}")
            continue
        excludes = r.gain_low > 1 or r.gain_high < 1
        if r.seeds < MIN_VERDICT_SEEDS:  # 2 seeds give 3 distinct resamples: an interval, but far too narrow to test with
            verdict = (f"no verdict: a bootstrap over {r.seeds} seed(s) gives too narrow an interval to test with "
                       f"({MIN_VERDICT_SEEDS}+ seeds needed); the per-rung paired tests are the test")
        else:
            verdict = "the interval excludes 1" if excludes else "the interval includes 1: no detectable gain"
        head = (f"{r.suite}: {r.activation} vs {baseline}: compute-equivalent gain at the largest rung {gain_text(r.gain, r.gain_low, r.gain_high)}"
                f" ({verdict}); {fit_text}")
        if np.isfinite(r.time_gain):
            head += (f"; net of its throughput there (training time saved): {gain_text(r.time_gain, r.time_low, r.time_high)}"
                     + (" on CPU" if r.device == "cpu" else ""))
        if r.target_compute and np.isfinite(r.target_compute):
            where = f"the target ({r.target_label}, {r.target_compute:.3g} FLOPs)" if r.target_label else f"the target {r.target_compute:.3g} FLOPs"
            if r.target_note:
                head += f"; at {where}: {r.target_note}"
            else:
                loud = "EXTRAPOLATED " if r.extrapolation > LOUD_EXTRAPOLATION else ""
                head += (f"; at {where}, {loud}{r.extrapolation:.3g}x beyond the ladder: "
                         f"{gain_text(r.target_gain, r.target_low, r.target_high)}")
        lines.append(head)
    return lines
