"""Values left `auto` (the lm kind's impl) are chosen once per point by a helper trial, and the
choice stands: a later sweep never runs a failed helper again (its kind's fallback decided, and
the point's trials ran with it)."""

from __future__ import annotations

from actbench.core.record import Record
from actbench.planner.plan import plan
from actbench.suite import load_suite

SUITE = """\
name: c
kind: lm
defaults: {d_model: 16, n_heads: 2, n_layers: 1, seq_len: 32, batch_size: 4, ff_multiple: 16, reference: relu2, tokens: 4096, impl: auto}
matrix:
  activation: [relu2, xielu]
seeds: 2
"""


def test_a_failed_helper_is_not_run_again_and_its_fallback_stands(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(SUITE)
    suite = load_suite(path)
    first = plan(suite, {}, set())
    assert first.batch is not None and first.batch.name == "choose impl" and len(first.batch.trials) == 2
    ok, failed = first.batch.trials
    records = {ok.id: Record(trial_id=ok.id, kind="impl", status="ok", metrics={"impl": "compile"}),
               failed.id: Record(trial_id=failed.id, kind="impl", status="failed")}
    again = plan(suite, records, {ok.id})  # a new sweep: only ok records are settled
    assert again.batch is not None and again.batch.name != "choose impl"
    assert {c.value for c in again.chosen.values()} == {"compile", "eager"} and sum(c.fallback for c in again.chosen.values()) == 1
    assert {t.config.impl for t in again.batch.trials} == {"compile", "eager"}
    rerun = plan(suite, records, set())  # --rerun: the ok helper runs again, the failed one's fallback stands
    assert rerun.batch is not None and [t.id for t in rerun.batch.trials] == [ok.id]
