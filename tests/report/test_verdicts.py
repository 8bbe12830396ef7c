"""Holm rows of a one-look table: the interval shown beside a verdict never contradicts it."""

from __future__ import annotations

import numpy as np
import pytest

from actbench.analysis import stats
from actbench.report.compare import compare_results
from actbench.report.verdicts import decide_table
from actbench.results.store import ResultStore

from .synthetic import lm_record


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


@pytest.mark.parametrize("failing, shift, margin, claim", [
    ("xielu", 0.0, 0.05, "equivalent"), ("relu2", 0.0, 0.05, "equivalent"), ("xielu", -0.01, None, "better"), ("relu2", 0.01, None, "worse")])
def test_a_failed_seed_of_a_table_without_a_rule_blocks_the_claims_in_the_failing_sides_favour(tmp_path, failing, shift, margin, claim):
    """xielu is relu2 plus `shift` and noise of 1e-4 over 8 seeds; `failing` diverged at seed 1. The
    finished pairs alone make `claim` (`compare`, with `--margin` or Holm's), but a candidate that
    failed where the baseline finished is never better or equivalent, and a baseline that failed
    never lets it be worse or equivalent: the line says who failed which seed and why."""
    rng = np.random.default_rng(5)
    store = ResultStore(tmp_path)
    for s in range(8):
        bpb = 2.0 + rng.normal(0, 0.05)
        for act, value in (("relu2", bpb), ("xielu", bpb + shift + rng.normal(0, 1e-4))):
            store.append(lm_record(act, s, value, status="diverged" if (act, s) == (failing, 1) else "ok"))
    c = compare_results(["relu2", "xielu"], tmp_path, margin=margin)
    row = c.frames["lm"].set_index("activation").loc["xielu"]
    blocked = {"better", "equivalent"} if failing == "xielu" else {"worse", "equivalent"}
    assert row["verdict"] not in blocked and row["verdict"] == "undecided" and row["pairs"] == 7 and bool(row["blocked"])
    line = next(line for line in c.lines["lm"] if "xielu vs relu2" in line)
    failed = "xielu failed 1 of 8 seeds (diverged at seed 1), relu2 0" if failing == "xielu" else \
        "xielu failed 0 of 8 seeds, relu2 1 (diverged at seed 1)"
    assert f"{failed}: counted as {failing}'s worst" in line and f"(the pairs both finished alone would say {claim})" in line
    assert "would decide it" not in line
