"""Tuning stages with real trials: the probe kind's synthetic objective has a known optimum."""

from __future__ import annotations

from pathlib import Path

import pytest

from actbench import tuning
from actbench.errors import UserError
from actbench.results import ResultStore, iter_records
from actbench.runner import run_suite
from actbench.runner.local import InlineExecutor
from actbench.suite import load_suite

TUNED = """\
name: t
kind: probe
defaults: {{noise: {noise}}}
zip:
  tag: [a, b]
  optimum: [0.3, -1.7]
seeds: 3
tune: {{x: [-2.0, -1.0, 0.0, 1.0, 2.0], seeds: 2, metric: objective{extra}}}
"""


def write(tmp_path: Path, noise: float = 0.05, extra: str = "") -> Path:
    p = tmp_path / "t.yaml"
    p.write_text(TUNED.format(noise=noise, extra=extra))
    return p


def chosen(records: list[dict]) -> dict[str, set[float]]:
    """tag -> the x values of its seed-2 trial (seed 2 is not a tuning seed: final stage only)."""
    out: dict[str, set[float]] = {}
    for r in records:
        if r["config"]["seed"] == 2:
            out.setdefault(r["config"]["tag"], set()).add(r["config"]["x"])
    return out


def test_each_group_gets_its_own_best_value_and_nothing_reruns(tmp_path, capsys):
    suite = load_suite(write(tmp_path))
    assert len(suite.trials) == 2 * 5 * 2  # stage one: groups x values x tuning seeds
    store = ResultStore(tmp_path / "out")
    result = run_suite(suite, store, InlineExecutor())
    assert result.exit_code == 0
    recs = list(iter_records(store.path))
    # final stage: 2 groups x 3 seeds, of which seeds 0 and 1 at the chosen x ARE tuning trials (budget 1)
    assert len(recs) == 20 + 2 and len({r["trial_id"] for r in recs}) == 22
    assert chosen(recs) == {"a": {0.0}, "b": {-2.0}}
    err = capsys.readouterr().err
    assert "tuned tag=a optimum=0.3: x=0.0" in err and "x=-2.0 is at the low edge" in err
    # replayed from the records (what compare does): the same final trials
    final = load_suite(write(tmp_path)).final_stage(tuning.metric_values(recs, "objective"))
    assert {t.id for t in final.trials} <= {r["trial_id"] for r in recs} and len(final.trials) == 6
    again = run_suite(load_suite(write(tmp_path)), store, InlineExecutor())
    assert again.records == [] and again.skipped == 20 + 6  # per stage; 4 final trials are tuning trials too


def test_halving_keeps_the_best_third_and_restarts_at_the_larger_budget(tmp_path):
    suite = load_suite(write(tmp_path, noise=0.2, extra=", budget: 1.0, halving: {eta: 3, rungs: 2}"))
    store = ResultStore(tmp_path / "out")
    run_suite(suite, store, InlineExecutor())
    recs = list(iter_records(store.path))
    rung0 = [r for r in recs if r["config"]["budget"] == pytest.approx(1 / 3)]
    rung1 = [r for r in recs if r["config"]["budget"] == 1.0 and r["config"]["seed"] in (0, 1)]
    assert len(rung0) == 2 * 5 * 2 and len(rung1) == 2 * 2 * 2  # ceil(5 / 3) = 2 values go on per group
    assert chosen(recs) == {"a": {0.0}, "b": {-2.0}}


def test_a_value_whose_trials_fail_is_never_chosen(tmp_path):
    p = tmp_path / "f.yaml"
    p.write_text("name: f\nkind: probe\nmatrix:\n  tag: [a]\nseeds: 2\ntune: {fail: [raise, none], metric: objective}\n")
    store = ResultStore(tmp_path / "out")
    result = run_suite(load_suite(p), store, InlineExecutor())
    finals = [r for r in iter_records(store.path) if r["config"]["seed"] == 1 and r["status"] == "ok"]
    assert [r["config"]["fail"] for r in finals] == ["none"] and result.exit_code == 1  # the failed tuning trials count


@pytest.mark.parametrize("extra,pattern", [
    (", y: [1, 2]", r"tune.y: not a field that can be tuned"),
    (", seeds: 9", r"tune.seeds: 9 tuning seeds but the suite has 3"),
    (", budget: 1.5", r"tune.budget: Input should be less than or equal to 1"),
])
def test_bad_tune_blocks_are_one_line_errors(tmp_path, extra, pattern):
    text = TUNED.format(noise=0.0, extra="").replace(", seeds: 2, metric: objective}", f", seeds: 2, metric: objective{extra}}}")
    p = tmp_path / "b.yaml"
    p.write_text(text.replace("seeds: 2, metric: objective, seeds: 9", "seeds: 9, metric: objective"))
    with pytest.raises(UserError, match=pattern):
        load_suite(p)


def test_k_selects_whole_points_of_a_tuned_suite_never_part_of_a_tuning_grid(tmp_path, capsys):
    from actbench.select import parse_filter

    store = ResultStore(tmp_path / "out")
    with pytest.raises(UserError, match=r"-k 'x=0.0' selects part of the tuning grid of tag=a .*\(and 1 more\)"):
        run_suite(load_suite(write(tmp_path)), store, InlineExecutor(), select=parse_filter("x=0.0"))
    assert not store.path.exists()  # refused before any trial ran
    with pytest.raises(UserError, match=r"-k 'seed=2' selects none of the tuning trials of t.yaml"):  # seed 2: final stage only
        run_suite(load_suite(write(tmp_path)), store, InlineExecutor(), select=parse_filter("seed=2"))
    result = run_suite(load_suite(write(tmp_path)), store, InlineExecutor(), select=parse_filter("tag=b"))
    assert result.exit_code == 0 and chosen(result.records) == {"b": {-2.0}}
    err = capsys.readouterr().err
    assert "tuned tag=b optimum=-1.7: x=-2.0" in err and "tag=a" not in err  # no decision printed for a point not selected
