"""Tuning with real trials (the probe kind's synthetic objective has a known optimum): each point
gets its own best value, on tuning seeds disjoint from the final ones, decided from the records
alone (the runner and a replay agree), and -k selects whole points."""

from __future__ import annotations

from pathlib import Path

import pytest

from actbench import api
from actbench.errors import UserError
from actbench.planner.plan import plan
from actbench.results.read import iter_records
from actbench.results.store import ResultStore
from actbench.runner.local import InlineExecutor
from actbench.suite import load_suite
from actbench.suite.schema import TUNE_SEED_BASE

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


def chosen(records: list) -> dict[str, set[float]]:
    """tag -> the x values of its final trials (seeds 0-2; tuning runs on seeds of its own)."""
    out: dict[str, set[float]] = {}
    for r in records:
        if r.config["seed"] < TUNE_SEED_BASE:
            out.setdefault(r.config["tag"], set()).add(r.config["x"])
    return out


def test_each_group_gets_its_own_best_value_and_nothing_reruns(tmp_path, capsys):
    suite = load_suite(write(tmp_path))
    assert len(suite.trials) == 2 * 5 * 2  # stage one: groups x values x tuning seeds
    assert {t.config.seed for t in suite.trials} == {TUNE_SEED_BASE, TUNE_SEED_BASE + 1}  # never a final seed
    store = ResultStore(tmp_path / "out")
    result = api.run(suite, out=store.root, executor=InlineExecutor())
    assert result.exit_code == 0
    recs = list(iter_records(store.path))
    assert len(recs) == 20 + 6 and len({r.trial_id for r in recs}) == 26  # final stage: 2 groups x 3 seeds of their own
    assert chosen(recs) == {"a": {0.0}, "b": {-2.0}}
    err = capsys.readouterr().err
    assert "tuned tag=a optimum=0.3: x=0.0" in err and "x=-2.0 is at the low edge" in err
    # replayed from the records (what compare does): the same final trials
    replayed = plan(load_suite(write(tmp_path)), store.latest(), set(store.latest()))
    assert replayed.batch is None and {t.id for ts in replayed.final.values() for t in ts} == {r.trial_id for r in recs if r.config["seed"] < 3}
    again = api.run(load_suite(write(tmp_path)), out=store.root, executor=InlineExecutor())
    assert again.records == [] and again.skipped == 20 + 6


def test_halving_keeps_the_best_third_and_restarts_at_the_larger_budget(tmp_path):
    suite = load_suite(write(tmp_path, noise=0.2, extra=", budget: 1.0, halving: {eta: 3, rungs: 2}"))
    store = ResultStore(tmp_path / "out")
    api.run(suite, out=store.root, executor=InlineExecutor())
    recs = list(iter_records(store.path))
    rung0 = [r for r in recs if r.config["budget"] == pytest.approx(1 / 3)]
    rung1 = [r for r in recs if r.config["budget"] == 1.0 and r.config["seed"] >= TUNE_SEED_BASE]
    assert len(rung0) == 2 * 5 * 2 and len(rung1) == 2 * 2 * 2  # ceil(5 / 3) = 2 values go on per group
    assert chosen(recs) == {"a": {0.0}, "b": {-2.0}}


def test_a_value_whose_trials_fail_is_never_chosen(tmp_path):
    p = tmp_path / "f.yaml"
    p.write_text("name: f\nkind: probe\nmatrix:\n  tag: [a]\nseeds: 2\ntune: {fail: [raise, none], metric: objective}\n")
    store = ResultStore(tmp_path / "out")
    result = api.run(load_suite(p), out=store.root, executor=InlineExecutor())
    finals = [r for r in iter_records(store.path) if r.config["seed"] == 1 and r.ok]
    assert [r.config["fail"] for r in finals] == ["none"] and result.exit_code == 1  # the failed tuning trials count


@pytest.mark.parametrize("extra,pattern", [
    (", y: [1, 2]", r"tune.y: not a field that can be tuned"),
    (", seeds: [1000000, 2]", r"tune.seeds: tuning seeds must be disjoint from the final seeds \(both have 2\)"),
    (", seeds: 0", r"tune.seeds: a count from 1 to 1000"),
    (", budget: 1.5", r"tune.budget: Input should be less than or equal to 1"),
])
def test_bad_tune_blocks_are_one_line_errors(tmp_path, extra, pattern):
    text = TUNED.format(noise=0.0, extra="").replace(", seeds: 2, metric: objective}", f", seeds: 2, metric: objective{extra}}}")
    p = tmp_path / "b.yaml"
    p.write_text(text.replace("seeds: 2, metric: objective, seeds:", "metric: objective, seeds:"))
    with pytest.raises(UserError, match=pattern):
        load_suite(p)


def test_k_selects_whole_points_of_a_tuned_suite_never_part_of_a_tuning_grid(tmp_path, capsys):
    from actbench.select import parse_filter

    store = ResultStore(tmp_path / "out")
    with pytest.raises(UserError, match=r"-k 'x=0.0' selects part of the tuning grid of tag=a .*\(and 1 more\)"):
        api.run(load_suite(write(tmp_path)), out=store.root, executor=InlineExecutor(), select=parse_filter("x=0.0"))
    assert not store.path.exists()  # refused before any trial ran
    with pytest.raises(UserError, match=r"-k 'seed=2' selects none of the tuning trials of t.yaml"):  # final seeds only
        api.run(load_suite(write(tmp_path)), out=store.root, executor=InlineExecutor(), select=parse_filter("seed=2"))
    result = api.run(load_suite(write(tmp_path)), out=store.root, executor=InlineExecutor(), select=parse_filter("tag=b"))
    assert result.exit_code == 0 and chosen(result.records) == {"b": {-2.0}}
    err = capsys.readouterr().err
    assert "tuned tag=b optimum=-1.7: x=-2.0" in err and "tag=a" not in err  # no decision printed for a point not selected
