"""judge_night judges the rows that share their nights, rule and effect at once
(`changepoint.judge_arrays`): every verdict must be the one `changepoint.judge` gives the row
alone, over histories with steps, missing nights, accepted steps, a machine event, memory and lm
rows and an immediate rerun."""

from __future__ import annotations

import statistics

import numpy as np
import pytest

from actbench.analysis import changepoint as cp
from actbench.core.record import Record
from actbench.report.alerts import (
    CONFIRM,
    MEMORY_EFFECT,
    WINDOW,
    Row,
    judge_night,
    machine_events,
)
from actbench.report.history import Night, Point

KINDS = [("kernel", "pct_copy"), ("copy", "gbps"), ("memory", "peak_fwd_bwd_mb"), ("lm", "val_bpb"), ("lm", "tokens_per_s")]


def _history(rng: np.random.Generator, n_nights: int, n_rows: int) -> tuple[list[Night], dict[str, Row]]:
    record = Record(trial_id="t", attempt=1, kind="kernel", status="ok", suite="k", config={})
    rows = {}
    for i in range(n_rows):
        kind, metric = KINDS[i % len(KINDS)]
        rows[f"k t{i} | {metric}"] = Row(f"k t{i} | {metric}", record, f"t{i}", metric, kind)
    level = rng.uniform(0.5, 3.0, n_rows)
    step_at = rng.integers(2, n_nights + 3, n_rows)  # some rows never step
    step = rng.choice([0.8, 0.95, 1.05, 1.3], n_rows)
    noise = rng.choice([0.002, 0.01, 0.05], n_rows)
    nights = []
    for night in range(n_nights):
        machine = 1.5 if night == n_nights // 2 else 1.0  # a machine event: every row moves together, for one night
        points = {}
        for i, key in enumerate(rows):
            if rng.random() < 0.1:
                continue  # the row did not run that night
            value = level[i] * (step[i] if night >= step_at[i] else 1.0) * machine * (1 + rng.normal(0, noise[i]))
            points[key] = Point(value, float(rng.choice([0.0, noise[i]])), 1)
        accepted = [k for k in rows if rng.random() < 0.03]
        nights.append(Night(commit=f"c{night}", date="2026-01-01", rows=points, accepted=accepted))
    return nights, rows


def _reference(history: list[Night], tonight: Night, rows: dict[str, Row], rerun: dict[str, Point] | None) -> list[tuple]:
    """Each row judged alone by `changepoint.judge` (what judge_night did row by row)."""
    nights = [*history, tonight]
    excluded, _ = machine_events(nights)
    out = []
    for key, row in rows.items():
        if row.kind == "copy" or key not in tonight.rows:
            continue
        start = max((i for i, n in enumerate(nights) if key in n.accepted), default=0)
        series = [cp.Night(n.rows[key].value, n.rows[key].noise or None) if key in n.rows else cp.Night(None) for n in nights[start:]]
        level = statistics.median(n.value for n in series if n.value is not None)
        effect = MEMORY_EFFECT if row.kind == "memory" else min(0.5, 0.02 / level) if row.metric == "val_bpb" else 0.03
        again = rerun.get(key) if rerun else None
        j = cp.judge(series, higher_is_better=row.higher_is_better, min_effect=effect, confirm=CONFIRM, window=WINDOW,
                     excluded=[i - start for i in excluded if i >= start],
                     rerun=cp.Night(again.value, again.noise or None) if again else None)
        commits = [n.commit for n in nights[start:]] + [tonight.commit]
        out.append((key, j, None if j.last_good is None else commits[j.last_good], None if j.first_bad is None else commits[j.first_bad],
                    again is not None))
    return out


@pytest.mark.parametrize("seed", range(4))
def test_rows_judged_at_once_get_the_verdicts_each_gets_alone(seed):
    rng = np.random.default_rng(seed)
    nights, rows = _history(rng, 12 + 4 * seed, 60)
    history, tonight = nights[:-1], nights[-1]
    tonight_rows = {k: r for k, r in rows.items() if k in tonight.rows}
    rerun = {k: Point(p.value * 1.01, p.noise, 1) for k, p in list(tonight.rows.items())[::3]} if seed % 2 else None
    judged = judge_night(history, tonight, tonight_rows, rerun=rerun)
    assert not judged.machine_event
    got = [(v.row.key, v.judgement, v.last_good, v.first_bad, v.rerun) for v in judged.verdicts]
    assert got == _reference(history, tonight, tonight_rows, rerun)
    assert {v.judgement.status for v in judged.verdicts} >= {"ok", "short"} and len(got) > 30
