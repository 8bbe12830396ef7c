"""A checkpoint that does not load is set aside, not obeyed: a real tiny trial is interrupted
after its checkpoint at step 12 (the one at step 8 kept beside it), its newest checkpoint is
then damaged or replaced (truncated, garbage, empty, a planted pickle, another format, tensors of
other shapes, a state past the end, a folder, a FIFO, a link to an endless device, a huge sparse
file), and the trial resumed: it finishes from step 8 with the losses of an uninterrupted run,
keeps the bad file beside its folder, and says so in its note and on the terminal."""

from __future__ import annotations

import io
import os
import shutil
import stat
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from rich.console import Console

from actbench import api
from actbench.core.trial import TrialContext, TrialTimeout
from actbench.lm.checkpoint import CHECKPOINT_FORMAT, previous, save
from actbench.lm.config import LMConfig
from actbench.lm.train import train
from actbench.results.read import iter_records
from actbench.runner.local import InlineExecutor
from actbench.runner.trial import execute_trial
from actbench.suite import load_suite

TINY = dict(d_model=32, n_layers=1, n_heads=2, seq_len=16, batch_size=4, ff_multiple=16, eval_tokens=512, churn_tokens=64,
            impl="eager", eval_every=8, final_eval="slice")
CFG = LMConfig(activation="relu2", tokens=16 * 4 * 16, checkpoint_every=4, **TINY)  # 16 steps, checkpoints at 4, 8, 12


class Interrupted(Exception):
    """Stands for a kill: the trial stops after a checkpoint and before its next one."""


def _stop_at(step: int):  # noqa: ANN202
    def progress(values: dict) -> None:
        if values.get("step") == step and values.get("phase") == "train":
            raise Interrupted

    return progress


@pytest.fixture(scope="module")
def uninterrupted() -> list[float]:
    """The train losses of the trial run without a stop."""
    return train(CFG, TrialContext(trial_id="full")).series["train"]["loss"]


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory) -> Path:
    """A checkpoint root whose trial `t` stopped at step 13: ckpt.pt at step 12, ckpt.prev.pt at step 8."""
    root = tmp_path_factory.mktemp("interrupted")
    with pytest.raises(Interrupted):
        train(CFG, TrialContext(trial_id="t", checkpoint_dir=root / "t", progress=_stop_at(13)))
    for name, step in (("ckpt.pt", 12), ("ckpt.prev.pt", 8)):
        assert torch.load(root / "t" / name, weights_only=True)["state"]["step"] == step
    return root


def _copy(interrupted: Path, tmp_path: Path) -> Path:
    shutil.copytree(interrupted, tmp_path / "ck")
    return tmp_path / "ck" / "t"


def _resume(root: Path) -> dict:
    started = time.monotonic()
    out = execute_trial("lm", CFG.model_dump(), "t", str(root), timeout_s=60)
    assert time.monotonic() - started < 60
    return out


def _rewrite(path: Path, change) -> None:  # noqa: ANN001
    saved = torch.load(path, weights_only=True)
    change(saved)
    torch.save(saved, path)


class Payload:
    def __reduce__(self):  # noqa: ANN204
        return (os.mkdir, (str(Path(os.environ["CKPT_MARKER"])),))


def _truncate(p: Path) -> None:
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def _garbage(p: Path) -> None:
    p.write_bytes(np.random.default_rng(0).bytes(50_000))


def _empty(p: Path) -> None:
    p.write_bytes(b"")


def _pickle(p: Path) -> None:
    torch.save({"format": CHECKPOINT_FORMAT, "model": {}, "optimizer": {}, "state": Payload()}, p)


def _earlier_format(p: Path) -> None:  # format 2 held the qkv rows in another layout: resuming it would train another model
    _rewrite(p, lambda s: s.update(format=CHECKPOINT_FORMAT - 1))


def _other_shapes(p: Path) -> None:
    _rewrite(p, lambda s: s["model"].update({"embed.weight": torch.zeros(300, 32)}))


def _other_moments(p: Path) -> None:
    _rewrite(p, lambda s: s["optimizer"]["state"][0].update(exp_avg=torch.zeros(3)))


def _past_the_end(p: Path) -> None:
    _rewrite(p, lambda s: s["state"].update(step=CFG.steps + 5))


def _folder(p: Path) -> None:
    p.unlink()
    p.mkdir()
    (p / "inside").write_text("kept")


def _fifo(p: Path) -> None:
    p.unlink()
    os.mkfifo(p)


def _link_to_endless_device(p: Path) -> None:
    p.unlink()
    p.symlink_to("/dev/zero")


def _huge_sparse(p: Path) -> None:
    os.truncate(p, 2**40)  # a terabyte that takes no disk: refused by its size, never read


DAMAGES = {
    "truncated": (_truncate, "not a plain-tensor actbench checkpoint", stat.S_ISREG),
    "garbage": (_garbage, "not a plain-tensor actbench checkpoint", stat.S_ISREG),
    "empty": (_empty, "an empty file", stat.S_ISREG),
    "planted pickle": (_pickle, "not a plain-tensor actbench checkpoint: Weights only load failed", stat.S_ISREG),
    "earlier format": (_earlier_format, f"format {CHECKPOINT_FORMAT - 1}, not {CHECKPOINT_FORMAT}", stat.S_ISREG),
    "other shapes": (_other_shapes, "model tensor embed.weight is (300, 32) torch.float32, the model's is", stat.S_ISREG),
    "other optimizer moments": (_other_moments, "optimizer state exp_avg of parameter 0 does not fit", stat.S_ISREG),
    "step past the end": (_past_the_end, "its step is not one of 1..15", stat.S_ISREG),
    "folder": (_folder, "(a folder)", stat.S_ISDIR),
    "fifo": (_fifo, "(a FIFO)", stat.S_ISFIFO),
    "link to an endless device": (_link_to_endless_device, "(a symbolic link)", stat.S_ISLNK),
    "huge sparse file": (_huge_sparse, "1,099,511,627,776 bytes, more than the", stat.S_ISREG),
}


def test_a_trial_that_sets_a_checkpoint_aside_and_then_fails_keeps_the_note(interrupted, tmp_path):
    """The trial resumes from ckpt.prev.pt past a garbage ckpt.pt, then runs out of time (its alarm
    goes off in a progress call, as it can anywhere): the timed-out record still says what was set aside."""
    folder = _copy(interrupted, tmp_path)
    _garbage(folder / "ckpt.pt")

    def alarm_after_resume(values: dict) -> None:
        if values.get("step", 0) > 8:
            raise TrialTimeout("ran past timeout_s=60")

    out = execute_trial("lm", CFG.model_dump(), "t", str(folder.parent), timeout_s=60, progress=alarm_after_resume)
    assert out["status"] == "timeout", out["error"]
    assert out["note"].endswith("set aside as ckpt.pt.bad-1: resumed from ckpt.prev.pt at step 8"), out["note"]
    assert (folder / "ckpt.pt.bad-1").exists()


@pytest.mark.parametrize("damage", list(DAMAGES))
def test_a_bad_checkpoint_is_set_aside_and_the_trial_resumes_from_the_previous_one(damage, interrupted, uninterrupted, tmp_path,
                                                                                   monkeypatch):
    monkeypatch.setenv("CKPT_MARKER", str(tmp_path / "pwned"))
    folder = _copy(interrupted, tmp_path)
    make, reason, kind = DAMAGES[damage]
    make(folder / "ckpt.pt")
    out = _resume(folder.parent)
    assert out["status"] == "ok", out["error"]
    assert not (tmp_path / "pwned").exists()  # the pickle was never run
    assert f"checkpoint {folder / 'ckpt.pt'} (" in out["note"] and reason in out["note"]
    assert out["note"].endswith("set aside as ckpt.pt.bad-1: resumed from ckpt.prev.pt at step 8"), out["note"]
    assert out["metrics"]["resumed_from_step"] == 8
    np.testing.assert_array_equal(out["series"]["train"]["loss"], uninterrupted)
    assert kind(os.lstat(folder / "ckpt.pt.bad-1").st_mode)  # kept as it was, for inspection
    assert sorted(p.name for p in folder.iterdir()) == ["ckpt.pt.bad-1"]  # the trial's own checkpoints are gone


def test_with_both_checkpoints_bad_the_trial_starts_afresh_and_never_overwrites_an_earlier_bad_one(interrupted, uninterrupted, tmp_path):
    folder = _copy(interrupted, tmp_path)
    (folder / "ckpt.pt.bad-1").write_bytes(b"set aside by an earlier run")
    _truncate(folder / "ckpt.pt")
    _garbage(folder / "ckpt.prev.pt")
    out = _resume(folder.parent)
    assert out["status"] == "ok", out["error"]
    assert "ckpt.pt (not a plain-tensor actbench checkpoint" in out["note"] and "set aside as ckpt.pt.bad-2, " in out["note"]
    assert out["note"].endswith("set aside as ckpt.prev.pt.bad-1: started the trial afresh"), out["note"]
    assert out["metrics"]["resumed_from_step"] is None
    np.testing.assert_array_equal(out["series"]["train"]["loss"], uninterrupted)
    assert (folder / "ckpt.pt.bad-1").read_bytes() == b"set aside by an earlier run"
    assert sorted(p.name for p in folder.iterdir()) == ["ckpt.prev.pt.bad-1", "ckpt.pt.bad-1", "ckpt.pt.bad-2"]


def test_a_link_in_place_of_the_trial_folder_is_set_aside_not_followed(interrupted, tmp_path):
    """A planted link would make the trial read and write checkpoints outside the checkpoint root."""
    elsewhere = _copy(interrupted, tmp_path)
    root = tmp_path / "root"
    root.mkdir()
    (root / "t").symlink_to(elsewhere)
    out = _resume(root)
    assert out["status"] == "ok", out["error"]
    assert out["note"] == f"checkpoint folder {root / 't'} (a symbolic link) set aside as t.bad-1: started the trial afresh"
    assert (root / "t.bad-1").is_symlink() and sorted(p.name for p in elsewhere.iterdir()) == ["ckpt.prev.pt", "ckpt.pt"]


def test_a_save_keeps_the_previous_checkpoint_and_never_follows_a_planted_link(tmp_path):
    outside = tmp_path / "outside"
    outside.write_text("not yours")
    folder = tmp_path / "t"
    folder.mkdir()
    for n in range(4):  # where a save's temporary file would go if it were named by the process id
        (folder / f"ckpt.pt.tmp{os.getpid() + n}").symlink_to(outside)
    path = str(folder / "ckpt.pt")
    save({"step": 1}, path)
    save({"step": 2}, path)
    assert torch.load(path, weights_only=True) == {"step": 2}
    assert torch.load(previous(path), weights_only=True) == {"step": 1}
    assert outside.read_text() == "not yours"


SUITE = f"""\
name: ck
kind: lm
defaults: {dict(TINY, tokens=CFG.tokens, checkpoint_every=4)}
matrix:
  activation: [relu2]
resources:
  retries: 0
"""


def test_the_run_says_on_the_terminal_and_in_the_record_that_a_checkpoint_was_set_aside(tmp_path):
    (tmp_path / "ck.yaml").write_text(SUITE)
    suite = load_suite(tmp_path / "ck.yaml")
    folder = tmp_path / "out" / "checkpoints" / suite.trials[0].id
    folder.mkdir(parents=True)
    (folder / "ckpt.pt").write_bytes(b"PK\x03\x04 torn")
    console = Console(file=io.StringIO(), width=400)
    result = api.run(suite, out=tmp_path / "out", executor=InlineExecutor(), console=console)
    assert result.exit_code == 0
    record = next(iter_records(tmp_path / "out" / "trials.jsonl"))
    assert record.status == "ok" and "set aside as ckpt.pt.bad-1: started the trial afresh" in record.note
    printed = console.file.getvalue()
    assert "ok lm" in printed and f"(note: checkpoint {folder / 'ckpt.pt'} (not a plain-tensor actbench checkpoint" in printed
    assert (folder / "ckpt.pt.bad-1").read_bytes() == b"PK\x03\x04 torn"


@pytest.mark.parametrize("uri", ["s3://bucket/ckpt", "file:///tmp/ckpt", "gs://b/c"])
def test_a_checkpoint_uri_is_refused_before_anything_runs(uri, tmp_path, monkeypatch, capsys):
    """Trials keep checkpoints as files in a folder of their own (a URI was mangled by Path into s3:/bucket/...)."""
    from tests.suite.test_boundary import cli

    suite = tmp_path / "p.yaml"
    suite.write_text("name: p\nkind: probe\nmatrix:\n  tag: [a]\n")
    code, err = cli(monkeypatch, capsys, "run", str(suite), "--executor", "inline", "--out", str(tmp_path / "out"), "--checkpoints", uri)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1, err
    assert lines[0].startswith(f"actbench: error: --checkpoints {uri}: a URI is not supported"), lines[0]
    assert not (tmp_path / "out").exists() and sorted(p.name for p in tmp_path.iterdir()) == ["p.yaml"]
