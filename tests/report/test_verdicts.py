"""Holm rows of a one-look table: the interval shown beside a verdict never contradicts it."""

from __future__ import annotations

import numpy as np

from actbench.analysis import stats
from actbench.report.verdicts import decide_table


def _rows(diffs_by_name: dict[str, list[float]]) -> list[dict]:
    rows = [dict(activation="relu2", n=len(next(iter(diffs_by_name.values()))), pairs=0, _verdict=None, _no_verdict=None,
                 p=np.nan, matched=True)]
    for name, d in diffs_by_name.items():
        t = stats.paired_t(d)
        rows.append(dict(activation=name, n=len(d), pairs=len(d), _verdict=None, _no_verdict=None, p=float(t.p),
                         sd_diff=float(t.sd), delta=float(t.mean), _diffs=list(d), matched=True))
    return rows


def test_an_interval_excludes_zero_exactly_when_holm_rejects():
    """Random tables of 2-4 candidates (some with real effects): a row's interval excludes 0 if
    and only if its verdict is better or worse, also for a row Holm never reached."""
    rng = np.random.default_rng(7)  # 150 tables: each row costs its power calculations
    reached_later = 0
    for _ in range(150):
        k, n = int(rng.integers(2, 5)), int(rng.integers(3, 9))
        table = _rows({f"c{i}": list(rng.normal(rng.choice([0.0, 0.5, 1.0]), 1.0, n)) for i in range(k)})
        decide_table(table, "relu2", 0.05)
        for r in table[1:]:
            assert (r["verdict"] in ("better", "worse")) == (r["low"] > 0 or r["high"] < 0), r
            reached_later += "Holm stopped" in r["design"] and r["p"] < 0.05
    assert reached_later >= 3  # the case this checks: a row past a failed step that alone would have cleared alpha


def test_a_row_past_a_failed_step_shows_the_first_steps_level():
    # six pairs each at p = 0.03 and 0.04: Holm tests 0.03 at 0.025 (fails) and stops; 0.04 alone would clear 0.05
    shape = np.array([-1.0, -0.5, 0.0, 0.0, 0.5, 1.0])
    shape /= shape.std(ddof=1)
    from scipy import stats as scipy_stats

    table = _rows({name: list(shape + scipy_stats.t.isf(p / 2, 5) / np.sqrt(6)) for name, p in (("a", 0.03), ("b", 0.04))})
    decide_table(table, "relu2", 0.05)
    a, b = table[1], table[2]
    assert abs(a["p"] - 0.03) < 1e-9 and abs(b["p"] - 0.04) < 1e-9
    assert a["verdict"] == b["verdict"] == "undecided"
    assert a["test_level"] == b["test_level"] == 0.025 and a["low"] < 0 < a["high"] and b["low"] < 0 < b["high"]
