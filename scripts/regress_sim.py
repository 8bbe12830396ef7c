"""Ground truth for nightly regression alerts (issue 28): synthetic histories through the rule of
`actbench.analysis.changepoint` (windowed median level, the row's own noise, a step confirmed on
its second night, machine events found by `machine_nights` and excluded) and through today's
single-night rule (the last night against the one before, beyond max(5%, noise)), on the same
histories. Prints three Markdown tables.

    python scripts/regress_sim.py            # the README's tables (4000 rows a cell: minutes)
    python scripts/regress_sim.py --quick    # 100 rows, two noise levels, a 5% step (the test)

Each history: 80 nights of a row on machines of 25 rows (a suite's rows on one GPU), per-night
noise normal in log space (`--tails DF`: a t law of DF degrees of freedom, the same sd) at 0.5, 1,
1.3, 2.66 and 5% (figures where higher is better: % of copy, tokens/s); 5% of row-nights missing;
on 3% of a machine's nights a machine event moves all its rows together by 8-30% either way. Each
night from night 30 on is judged with what is known that night (a machine event is known as such
only the next night; that night it is excluded).
- false alarms: new alerts (the row was not alerting the night before) per 1,000 judged
  row-nights of histories with no step;
- drift: from night 30 the figure of one row in 4 falls 0.2% a night: the share of those rows
  alerted by night 80 and the median drift (nights, %) at their first alert;
- power and delay per step size (2, 5, 10, 20% worse, in one row in 4, at a random night 40-70):
  the share alerted within 2 nights (the step night is night 1), within 2 judged nights (with a
  figure and no machine event) and within 5, and the mean delay of those alerted within 10.
Rates are Monte Carlo: the false alarms come with one Poisson standard error, the powers' binomial
error is stated below their table. A third table (`short_table`) judges young histories: 5-11
nights at 1% noise, before a level has settled.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from actbench.analysis.changepoint import judge_arrays, level_changes, machine_nights, single_night_arrays

NIGHTS, BURN_IN, ROWS_PER_MACHINE, STEPPED = 80, 30, 25, 4
NOISES = (0.005, 0.01, 0.013, 0.0266, 0.05)
STEPS = (0.02, 0.05, 0.10, 0.20)
QUICK_NOISES, QUICK_STEPS = (0.01, 0.05), (0.05,)
DRIFT = 0.002
MISSING, BAD_NIGHTS = 0.05, 0.03
SHORT_NIGHTS, SHORT_FALSE, SHORT_STEPS = (5, 7, 10), 11, (0.05, 0.2, 0.5)


def histories(rng: np.random.Generator, rows: int, noise: float, step: float = 0.0, drift: float = 0.0,
              tails: float | None = None, bad_nights: float = BAD_NIGHTS, missing: float = MISSING) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values (rows, nights) with NaN for missing nights, the step night of each row (NIGHTS for
    none), a mask of the nights judged: with a figure and no machine event) for machines of
    ROWS_PER_MACHINE rows; a step or a drift (from BURN_IN) makes the figure of one row in STEPPED
    smaller (worse)."""
    machines = -(-rows // ROWS_PER_MACHINE)
    nights = np.arange(NIGHTS)
    planted = np.arange(rows) % STEPPED == 0
    start = np.where(planted, rng.integers(40, 71, rows), NIGHTS)
    shape = (rows, NIGHTS)
    draws = rng.normal(0, 1, shape) if tails is None else rng.standard_t(tails, shape) * np.sqrt((tails - 2) / tails)
    log = (noise * draws - drift * np.maximum(nights - BURN_IN, 0) * planted[:, None]
           + np.where(nights >= start[:, None], np.log1p(-step), 0.0))
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


def alerts(values: np.ndarray, min_effect: float = 0.03) -> dict[str, np.ndarray]:
    """Per rule, a (rows, nights) mask of the nights each row alerts (False before BURN_IN); each
    night is judged with what is known that night."""
    later, tonight = excluded_nights(values)
    out = {"confirmed": np.zeros(values.shape, dtype=bool), "single night": np.zeros(values.shape, dtype=bool)}
    for t in range(BURN_IN, NIGHTS):
        ours = np.where(later[:, :t + 1], np.nan, values[:, :t + 1])
        ours[:, t] = np.where(tonight[:, t], np.nan, ours[:, t])
        j = judge_arrays(ours, higher_is_better=True, min_effect=min_effect)
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


def table(rows: int, seed: int, noises: tuple[float, ...] = NOISES, steps: tuple[float, ...] = STEPS,
          min_effect: float = 0.03, tails: float | None = None) -> list[str]:
    rng = np.random.default_rng(seed)
    rules = ("confirmed", "single night")
    first = [("| noise | rule | false alarms /1000 row-nights | drift 0.2%/night: rows alerted by night 80 | "
              "drift at the first alert (median) |"), "|---|---|---|---|---|"]
    second = ["| noise | step | rule | alerted within 2 nights | within 2 judged nights | within 5 | mean delay |",
              "|---|---|---|---|---|---|---|"]
    for noise in noises:
        values, _, _ = histories(rng, rows, noise, tails=tails)
        flagged = alerts(values, min_effect)
        dvalues, _, _ = histories(rng, rows, noise, drift=DRIFT, tails=tails)
        dflagged = alerts(dvalues, min_effect)
        for rule in rules:
            fa, err = false_alarms(flagged[rule], values)
            d = delays(dflagged[rule][::STEPPED], np.full(len(dvalues[::STEPPED]), BURN_IN))
            hit = np.isfinite(d)
            at = f"{np.median(d[hit]):.0f} nights, {np.expm1(-DRIFT * np.median(d[hit])):.1%}" if hit.any() else "-"
            first.append(f"| {noise:.2%} | {rule} | {fa:.2f} ± {err:.2f} | {hit.mean():.0%} | {at} |")
        for step in steps:
            svalues, start, judged = histories(rng, rows, noise, step=step, tails=tails)
            sflagged = alerts(svalues, min_effect)
            has = start < NIGHTS
            for rule in rules:
                d, dj = delays(sflagged[rule][has], start[has]), delays(sflagged[rule][has], start[has], judged[has])
                mean = f"{d[d <= 10].mean():.1f}" if (d <= 10).any() else "-"
                second.append(f"| {noise:.2%} | {step:.0%} | {rule} | {(d <= 2).mean():.1%} | {(dj <= 2).mean():.1%} | "
                              f"{(d <= 5).mean():.1%} | {mean} |")
    se = 100 * np.sqrt(0.25 / (rows / STEPPED))
    law = "normal" if tails is None else f"t with {tails:g} degrees of freedom"
    return [f"{rows} rows a cell, {NIGHTS} nights, seed {seed}, minimum effect {min_effect:.0%}, {law} noise", "", *first, "", *second, "",
            (f"Powers: {rows // STEPPED} stepped rows a cell, one standard error at most {se:.1f} points. "
             "Delay: nights from the step to the alert (the step night is 1), of those alerted within 10.")]


def short_table(rows: int, seed: int, noise: float = 0.01, min_effect: float = 0.03) -> list[str]:
    """A young history (no missing night, no machine event): false alarms per 1,000 row-nights
    judged with SHORT_NIGHTS[0] to SHORT_FALSE nights before, and the share of steps (SHORT_STEPS:
    the figure falls by that much; 50% is a 2x slowdown) confirmed on their second night (or by an
    immediate rerun) after each of SHORT_NIGHTS nights, with and without each night's own noise
    stated (the kernel's repeat spread; here at the night-to-night noise)."""
    rng = np.random.default_rng(seed)
    out = [f"{rows} rows a cell, noise {noise:.0%} a night, minimum effect {min_effect:.0%}", "",
           f"| own noise stated | false alarms /1000 row-nights ({SHORT_NIGHTS[0]}-{SHORT_FALSE} nights before) | "
           + " | ".join(f"{s:.0%} step: confirmed after {', '.join(map(str, SHORT_NIGHTS))} nights" for s in SHORT_STEPS) + " |",
           "|---|---|" + "---|" * len(SHORT_STEPS)]
    for stated in (False, True):
        def judge(v: np.ndarray) -> np.ndarray:
            own = np.full(v.shape, noise) if stated else None
            return np.isin(judge_arrays(v, own, higher_is_better=True, min_effect=min_effect).status, ("regression", "improvement"))

        quiet = 100 * np.exp(rng.normal(0, noise, (rows, SHORT_FALSE + 1)))
        flags = np.column_stack([judge(quiet[:, :t + 1]) for t in range(SHORT_NIGHTS[0] - 1, SHORT_FALSE + 1)])
        new = (flags[:, 1:] & ~flags[:, :-1]).sum()
        judged = rows * (SHORT_FALSE + 1 - SHORT_NIGHTS[0])
        cells = [f"{1000 * new / judged:.2f} ± {1000 * np.sqrt(max(new, 1)) / judged:.2f}"]
        for step in SHORT_STEPS:
            shares = []
            for before in SHORT_NIGHTS:
                v = 100 * np.exp(rng.normal(0, noise, (rows, before + 2)))
                v[:, before:] *= 1 - step
                shares.append(f"{judge(v).mean():.1%}")
            cells.append(" / ".join(shares))
        out.append(f"| {'yes' if stated else 'no'} | " + " | ".join(cells) + " |")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small run (for the test)")
    parser.add_argument("--rows", type=int, default=None, help="rows a cell (default 4000; 100 with --quick)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-effect", type=float, default=0.03, help="judge's min_effect (regress --history --min-effect, default 0.03)")
    parser.add_argument("--tails", type=float, default=None, help="heavy-tailed noise: Student t with this many degrees "
                        "of freedom (> 2), scaled to the same sd")
    args = parser.parse_args()
    if args.tails is not None and not args.tails > 2:
        parser.error("--tails: more than 2 degrees of freedom (the sd must exist)")
    rows = args.rows or (100 if args.quick else 4000)
    t0 = time.perf_counter()
    for line in table(rows, args.seed, *((QUICK_NOISES, QUICK_STEPS) if args.quick else (NOISES, STEPS)), min_effect=args.min_effect, tails=args.tails):
        print(line)
    print()
    for line in short_table(rows, args.seed, min_effect=args.min_effect):
        print(line)
    print(f"({time.perf_counter() - t0:.1f} s)")


if __name__ == "__main__":
    main()
