"""Ground truth for nightly regression alerts (issue 28): synthetic histories through the rule of
`actbench.analysis.changepoint` (windowed median, the row's own noise, confirmed by a second
night, machine events excluded) and through today's single-night rule (the last night against
the one before, beyond max(5%, noise)), on the same histories.

    python scripts/regress_sim.py            # the README's table (about a minute on 2 cores)
    python scripts/regress_sim.py --quick    # a small run, for the test

Each history: machines of `--rows` rows (a suite's rows on one GPU), 60 nights, per-night noise
normal in log space at 0.5, 1, 1.3, 2.66 and 5% (the figures are "higher is better", e.g. % of
copy or tokens/s); 5% of row-nights missing; on 3% of a machine's nights a machine event moves
all its rows together by 8-30% (either way). Alerts are judged each night from night 20 on.
- false alarms: new alerts (a row that was not alerting the night before) per 1,000 judged
  row-nights of histories with no step, with machine events and missing nights;
- drift: the same with a slow drift of 0.2% per night in the worse direction (every alert is then
  "true", but the question is whether a drift raises one and when);
- power and delay per step size (2, 5, 10, 20%, worse, planted at a random night 25-50): the share
  of rows whose step is alerted within 2 nights (the step night counts as night 1) and within 5,
  and the mean delay of those alerted within 10.
Rates are Monte Carlo; the +- is one binomial (Poisson for counts) standard error.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from actbench.analysis.changepoint import judge_arrays, level_changes, machine_nights, single_night_arrays

NIGHTS, BURN_IN, ROWS_PER_MACHINE, STEPPED = 80, 30, 25, 4
NOISES = (0.005, 0.01, 0.013, 0.0266, 0.05)
STEPS = (0.02, 0.05, 0.10, 0.20)
DRIFT = 0.002
MISSING, BAD_NIGHTS = 0.05, 0.03


def histories(rng: np.random.Generator, rows: int, noise: float, step: float = 0.0, drift: float = 0.0,
              bad_nights: float = BAD_NIGHTS, missing: float = MISSING) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values (rows, nights) with NaN for missing nights, the step night of each row (NIGHTS for
    none: a step is planted in one row of STEPPED), a mask of the nights judged: with a figure and
    no machine event) for machines of ROWS_PER_MACHINE rows; a step or drift makes the figure
    smaller (worse)."""
    machines = -(-rows // ROWS_PER_MACHINE)
    nights = np.arange(NIGHTS)
    start = np.where(np.arange(rows) % STEPPED == 0, rng.integers(40, 71, rows), NIGHTS)
    log = rng.normal(0, noise, (rows, NIGHTS)) - drift * nights + np.where(nights >= start[:, None], np.log1p(-step), 0.0)
    event = rng.random((machines, NIGHTS)) < bad_nights
    shift = rng.choice([-1, 1], (machines, NIGHTS)) * rng.uniform(0.08, 0.3, (machines, NIGHTS))
    event = np.repeat(event, ROWS_PER_MACHINE, axis=0)[:rows]
    log += np.where(event, np.repeat(shift, ROWS_PER_MACHINE, axis=0)[:rows], 0.0)
    values = 100 * np.exp(log)
    values[rng.random((rows, NIGHTS)) < missing] = np.nan
    return values, start, np.isfinite(values) & ~event


def excluded_nights(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Masks (rows, nights) of the machine events found by `machine_nights`, machine by machine:
    as known a night later (a move that persisted is no event), and on the night itself."""
    changes, limits = level_changes(values)
    later, tonight = np.zeros(values.shape, dtype=bool), np.zeros(values.shape, dtype=bool)
    for m in range(0, len(values), ROWS_PER_MACHINE):
        c, lim = changes[m:m + ROWS_PER_MACHINE], limits[m:m + ROWS_PER_MACHINE]
        later[m:m + ROWS_PER_MACHINE] = machine_nights(c, lim)[None, :]
        tonight[m:m + ROWS_PER_MACHINE] = np.array([machine_nights(c[:, t:t + 1], lim)[0] for t in range(values.shape[1])])[None, :]
    return later, tonight


def alerts(values: np.ndarray) -> dict[str, np.ndarray]:
    """Per rule, a (rows, nights) mask of the nights each row alerts (False before BURN_IN); each
    night is judged with what is known that night."""
    later, tonight = excluded_nights(values)
    out = {"confirmed": np.zeros(values.shape, dtype=bool), "single night": np.zeros(values.shape, dtype=bool)}
    for t in range(BURN_IN, NIGHTS):
        ours = np.where(later[:, :t + 1], np.nan, values[:, :t + 1])
        ours[:, t] = np.where(tonight[:, t], np.nan, ours[:, t])
        j = judge_arrays(ours, higher_is_better=True)
        out["confirmed"][:, t] = np.isin(j.status, ("regression", "improvement")) & np.isfinite(ours[:, t])
        out["single night"][:, t] = single_night_arrays(values[:, :t + 1], higher_is_better=True) != "ok"
    return out


def false_alarms(flags: np.ndarray, values: np.ndarray) -> tuple[float, float]:
    """New alerts per 1,000 judged row-nights, and its standard error."""
    new = flags[:, BURN_IN:] & ~flags[:, BURN_IN - 1:-1]
    judged = np.isfinite(values[:, BURN_IN:]).sum()
    return 1000 * new.sum() / judged, 1000 * np.sqrt(max(new.sum(), 1)) / judged


def delays(flags: np.ndarray, start: np.ndarray, counted: np.ndarray | None = None) -> np.ndarray:
    """Nights from each row's step to its first alert, the step night and the alert's counted
    (only the `counted` ones where given); inf where no alert."""
    nights = np.arange(NIGHTS)[None, :]
    after = nights >= start[:, None]
    hit = flags & after
    first = hit.argmax(1)
    mask = np.ones_like(flags) if counted is None else counted
    n = (mask & after & (nights <= first[:, None])).sum(1)
    return np.where(hit.any(1), n, np.inf)


def table(rows: int, seed: int) -> list[str]:
    rng = np.random.default_rng(seed)
    rules = ("confirmed", "single night")
    head = [f"{rows} rows x {NIGHTS} nights per cell ({ROWS_PER_MACHINE} rows a machine), seed {seed}",
            "noise  rule          false alarms/1000  drift: alerts/1000, first alert (median night)  "
            + "  ".join(f"step {s:>3.0%}: <=2 nights <=2 judged <=5  delay" for s in STEPS)]
    lines = []
    for noise in NOISES:
        values, _, _ = histories(rng, rows, noise)
        flagged = alerts(values)
        dvalues, _, _ = histories(rng, rows, noise, drift=DRIFT)
        dflagged = alerts(dvalues)
        stepped = [histories(rng, rows, noise, step=step) for step in STEPS]
        sflagged = [alerts(v) for v, _, _ in stepped]
        for rule in rules:
            fa, err = false_alarms(flagged[rule], values)
            dr, _ = false_alarms(dflagged[rule], dvalues)
            first = delays(dflagged[rule], np.full(rows, 0))
            cells = []
            for (_, start, judged), f in zip(stepped, sflagged):
                has = start < NIGHTS
                d, dj = delays(f[rule][has], start[has]), delays(f[rule][has], start[has], judged[has])
                mean = d[d <= 10].mean() if (d <= 10).any() else float("nan")
                cells.append(f"{(d <= 2).mean():>18.1%} {(dj <= 2).mean():>10.1%} {(d <= 5).mean():>4.0%} {mean:>5.1f}")
            lines.append(f"{noise:5.2%}  {rule:<12}  {fa:>8.2f} ± {err:<5.2f}  {dr:>9.1f}, night {np.median(first):>4.0f}"
                         + " " * 29 + "  ".join(cells))
    se = 100 * np.sqrt(0.25 / (rows / STEPPED))
    return head + lines + [f"power: one standard error at most {se:.1f} points; delay: mean nights to the alert "
                           "(the step night is 1) of the steps alerted within 10; judged: nights with a figure and no machine event"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small run (for the test)")
    parser.add_argument("--rows", type=int, default=None, help="rows per cell (default 4000; 200 with --quick)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rows = args.rows or (200 if args.quick else 4000)
    t0 = time.perf_counter()
    for line in table(rows, args.seed):
        print(line)
    print(f"({time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
