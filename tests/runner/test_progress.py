"""Live progress of real tiny lm trials, inline and on Ray: a terminal gets a live table, a log
gets plain lines without escape codes; TensorBoard event files from the streamed progress; the
sweep's ETA counts steps."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path

import pytest
import ray
from rich.console import Console

from actbench import api
from actbench.core.trial import TrialTimeout
from actbench.runner.local import InlineExecutor
from actbench.runner.progress import Board, Throttle
from actbench.runner.ray import RayExecutor
from actbench.suite import load_suite

TINY_LM = """\
name: tiny
kind: lm
defaults: {d_model: 32, n_layers: 1, n_heads: 2, seq_len: 32, batch_size: 8, ff_multiple: 16, impl: eager,
           tokens: 15360, eval_every: 20, eval_tokens: 2048, churn_tokens: 256, final_eval: slice}
matrix:
  activation: [xielu, relu2]
resources: {cpus: 1}
"""
STEP_LINE = re.compile(r"running activation=(xielu|relu2): step (\d+)/60, train loss \d\.\d{4}, val bpb \d\.\d{4}, [\d,]+ tokens/s")


def tiny_suite(tmp_path: Path):
    p = tmp_path / "tiny.yaml"
    p.write_text(TINY_LM)
    return load_suite(p)


def test_plain_lines_inline_without_escape_codes_and_tensorboard_events(tmp_path):
    buf = io.StringIO()
    console = Console(file=buf, width=200)  # not a terminal: a CI log
    result = api.run(tiny_suite(tmp_path), out=tmp_path / "out", executor=InlineExecutor(), console=console, plain_every_s=0,
                       tensorboard=tmp_path / "out" / "tensorboard")
    assert result.exit_code == 0
    out = buf.getvalue()
    assert "\x1b" not in out
    steps = {(m.group(1), int(m.group(2))) for m in STEP_LINE.finditer(out)}
    assert {("xielu", 20), ("xielu", 40), ("xielu", 60), ("relu2", 60)} <= steps, out  # every evaluation is shown
    assert "tiny: 100% of the work done, 2/2 trials finished (ok 2, not ok 0, running 0)" in out
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    runs = sorted((tmp_path / "out" / "tensorboard").iterdir())
    assert [r.name.split("_")[0] for r in runs] == ["activation=relu2", "activation=xielu"]
    for run, rec in zip(runs, sorted(result.records, key=lambda r: r.config["activation"])):
        ev = EventAccumulator(str(run))
        ev.Reload()
        bpb = {e.step: e.value for e in ev.Scalars("val/bpb")}
        assert sorted(bpb) == [20, 40, 60] and bpb[60] == pytest.approx(rec.metrics["val_bpb"], rel=1e-6)  # the same slice, scored at the end
        assert {"train/loss", "train/lr", "train/tokens_per_s"} <= set(ev.Tags()["scalars"])


def test_live_table_on_a_terminal_from_a_ray_run(tmp_path):
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    try:
        buf = io.StringIO()
        console = Console(file=buf, width=160, force_terminal=True)
        result = api.run(tiny_suite(tmp_path), out=tmp_path / "out", executor=RayExecutor(), console=console)
    finally:
        ray.shutdown()
    assert result.exit_code == 0
    out = buf.getvalue()
    assert "\x1b[" in out  # a live display
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out)
    assert re.search(r"running trial\s+step\s+train loss\s+val bpb\s+tokens/s\s+running for", plain)
    rows = re.findall(r"activation=(xielu|relu2)\s+(\d+)/60(?: final eval)?\s+\d\.\d{4}\s+\d\.\d{4}\s+[\d,]+", plain)
    assert {a for a, _ in rows} == {"xielu", "relu2"} and {"20", "60"} <= {s for _, s in rows}, plain[-3000:]
    assert "tiny: 100% of the work done, 2/2 trials finished" in plain


def test_eta_counts_steps_and_throttle_keeps_evaluations():
    board = Board("s", Console(file=io.StringIO()), plain_every_s=3600)
    board.add([100.0, 100.0])
    board.submitted("a", "a", 100.0)
    board.report("a", {"step": 50, "total_steps": 100})
    assert board.fraction() == pytest.approx(0.25)
    board.started = time.time() - 10.0  # a quarter of the work in 10 s: 30 s to go
    assert board.eta_s() == pytest.approx(30.0, abs=0.5)
    board.finished("a", ok=True)
    assert board.fraction() == pytest.approx(0.5) and board.counts == {"ok": 1, "bad": 0}
    board.report("a", {"step": 99})  # a late message of a finished trial is dropped
    assert board.fraction() == pytest.approx(0.5)

    sent = []
    throttle = Throttle(sent.append, every_s=3600)
    for step in range(1000):
        throttle({"step": step, "phase": "train"})
        if step % 250 == 0:
            throttle({"step": step, "phase": "eval"})
    assert [m["step"] for m in sent] == [0, 0, 250, 500, 750]  # the first train message, then every evaluation

    def broken(values):
        raise ConnectionError("queue gone")

    Throttle(broken)({"step": 1})  # never fails the trial

    def times_out(values):
        raise TrialTimeout("the alarm went off while sending")

    with pytest.raises(TrialTimeout):  # except for the trial's own timeout, which ends it as anywhere else
        Throttle(times_out)({"step": 1})


def test_board_shows_the_suite_name_and_trial_labels_as_text():
    """Swept values reach the board's plain lines and live table as text: rich markup does not
    raise, escape sequences and bidi overrides are shown as escapes (a plain rich Console here: the
    board escapes by itself)."""
    hostile = "[/x]\x1b]52;c;AAAA\x07 \u202eevil"
    buf = io.StringIO()
    console = Console(file=buf, width=300)
    board = Board(f"suite{hostile}", console, plain_every_s=0)
    board.add([2.0])
    board.submitted("t1", f"tag={hostile}", 2.0)
    board.report("t1", {"step": 1, "total_steps": 2})  # a plain line for the sweep and one for the trial
    console.print(board)  # the live table
    out = buf.getvalue()
    assert not re.search("[\x00-\x09\x0b-\x1f\x7f-\x9f\u202a-\u202e]", out), repr(out)
    assert out.count("tag=[/x]\\x1b]52;c;AAAA\\x07 \\u202eevil") == 2 and "suite[/x]\\x1b]52" in out
