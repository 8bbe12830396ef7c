"""One boundary (issue 26): every hostile suite value is refused when the suite loads, by the real
CLI, as one line `file:line: field.path: message` with exit 2 and nothing run or written; never an
internal error from a layer inside, a hang, or a run that silently does something else."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import textwrap
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import pytest

from actbench.cli import main
from actbench.errors import UserError
from actbench.lm.shards import HEADER_INTS, MAGIC, write_shard, write_token_bytes
from actbench.suite import load_suite, parse_overrides

LM = """\
name: t
kind: lm
defaults:
{defaults}matrix:
  activation: [relu2, xielu]
{rest}"""
BASE = {"d_model": "32", "n_heads": "2", "tokens": "20480"}


def lm_suite(tmp_path: Path, defaults: str = "", rest: str = "") -> Path:
    """x.yaml: an lm suite of relu2 and xielu, its defaults (BASE unless `defaults` sets them) and `rest`."""
    given = {line.split(":")[0] for line in defaults.splitlines()}
    defaults = "".join(f"{k}: {v}\n" for k, v in BASE.items() if k not in given) + defaults
    p = tmp_path / "x.yaml"
    p.write_text(LM.format(defaults=textwrap.indent(defaults, "  "), rest=rest))
    return p


def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str]:
    """The real CLI entry in this process: (exit code, stderr)."""
    monkeypatch.setattr(sys, "argv", ["actbench", *args])
    with pytest.raises(SystemExit) as e:
        main()
    return int(e.value.code or 0), capsys.readouterr().err


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """TimeoutError after `seconds`, even inside a blocking read (a FIFO opened for reading blocks forever)."""

    def expire(signum: int, frame: object) -> None:
        raise TimeoutError(f"still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def refused(monkeypatch, capsys, path: Path, pattern: str, commands=(("run", "--dry-run"), ("lm", "plan"))) -> None:
    """Loading the suite (to run, and for `lm plan` unless `commands` leaves it out) raises
    `path:line: field: message` with a message that starts with `pattern`; each command of the real
    CLI exits 2 with that one line (which it may shorten), and nothing is written."""
    before = sorted(path.parent.rglob("*"))
    for cmd in commands:
        with pytest.raises(UserError) as e, deadline(30):
            load_suite(path, check_paths=cmd[0] == "run")
        assert re.match(rf"{re.escape(str(path))}:\d+: {pattern}", str(e.value)), str(e.value)
        args = ["run", str(path), "--dry-run"] if cmd[0] == "run" else ["lm", "plan", str(path)]
        with deadline(30):
            code, err = cli(monkeypatch, capsys, *args)
        lines = err.strip().splitlines()
        assert code == 2 and len(lines) == 1 and lines[0].startswith(f"actbench: error: {path}:"), (cmd, err)
        field = str(e.value).removeprefix(f"{path}:").split(": ")[1]
        assert f": {field}: " in lines[0], (field, lines[0])
    assert sorted(path.parent.rglob("*")) == before


# --- values that reached the internals: each is now refused with its field's path

@pytest.mark.parametrize("rest,pattern", [
    ("ladder:\n  rungs: [{d_model: 32, n_layers: 2, n_heads: 64}, {d_model: 64, n_layers: 2, n_heads: 2}]\n  tokens_per_param: 5\n",
     r"ladder\.rungs\.n_heads: 64 heads do not split d_model 32 into heads of even size .*e\.g\. n_heads 16\)"),
    ("ladder:\n  rungs: [{d_model: 32, n_layers: 2, n_heads: 2}, {d_model: 64, n_layers: 2, n_heads: 2.0}]\n",
     r"ladder\.rungs\.n_heads: Input should be a valid integer"),
    ("ladder:\n  widths: [32, 40]\n", r"ladder\.widths: width 40 is not a multiple of the head size 16"),
    ("ladder:\n  widths: [32, 65536]\n", r"ladder\.widths: width 65536 at head size 16 has 4096 heads: Input should be less than or equal to 1024"),
    ("ladder:\n  widths: [32, 64]\n  ff_ratio: 4\n", None),  # with ff_multiple 0 in the defaults: below
])
def test_ladder_rungs_are_checked_like_any_shape(tmp_path, monkeypatch, capsys, rest, pattern):
    if pattern is None:
        refused(monkeypatch, capsys, lm_suite(tmp_path, "ff_multiple: 0\n", rest), r"defaults\.ff_multiple: Input should be greater than 0, got 0")
    else:
        refused(monkeypatch, capsys, lm_suite(tmp_path, "", rest), pattern)


def test_a_widths_ladder_checks_the_defaults_it_builds_on(tmp_path, monkeypatch, capsys):
    refused(monkeypatch, capsys, lm_suite(tmp_path, "n_heads: [2]\n", "ladder:\n  widths: [32, 64]\n"),
            r"defaults\.n_heads: Input should be a valid integer")
    refused(monkeypatch, capsys, lm_suite(tmp_path, "n_layers: [2]\n", "ladder:\n  widths: [32, 64]\n"),
            r"defaults\.n_layers: Input should be a valid integer")
    refused(monkeypatch, capsys, lm_suite(tmp_path, "reference: nope\n", "ladder:\n  widths: [32, 64]\n  tokens_per_param: 2\n"),
            r"defaults\.reference: unknown activation 'nope'.*")


@pytest.mark.parametrize("defaults,pattern", [
    ("batch_size: 1048576\ntokens: 1000000000000\n",
     r"defaults\.batch_size: 1048576 sequences of seq_len 128 are 134,217,728 tokens in one micro-batch; at most 16,777,216 .*"),
    ("n_heads: 64\n", r"defaults\.n_heads: 64 heads do not split d_model 32 .*"),
    ("tokens: 1000\n", r"defaults\.tokens: tokens 1000 is less than one step of 2048 tokens \(batch_size x seq_len x grad_accum\)"),
    ("lr: 1.0e+5\n", r"defaults\.lr: Input should be less than or equal to 10000, got 100000\.0"),
    ("weight_decay: 1.0e+30\n", r"defaults\.weight_decay: Input should be less than or equal to 10, got 1e\+30"),
    ("eval_every: 100000000000000\n", r"defaults\.eval_every: Input should be less than or equal to 1000000000, got 100000000000000"),
    ("seq_len: 1\nbatch_size: 1\ntokens: 1000000000000000\n", r"defaults\.tokens: tokens 1,000,000,000,000,000 are .* micro-batches .*"),
    ("data: {path: '" + "a" * 300 + "', source: text}\n", r"defaults\.data\.path: a file or folder name in the path is longer than 255 bytes"),
])
def test_numbers_have_ranges_and_cross_field_rules_name_the_later_field(tmp_path, monkeypatch, capsys, defaults, pattern):
    refused(monkeypatch, capsys, lm_suite(tmp_path, defaults), pattern)


def test_a_rule_between_fields_names_the_matrix_entry_that_broke_it(tmp_path):
    p = tmp_path / "x.yaml"
    p.write_text("name: t\nkind: lm\ndefaults: {d_model: 32, tokens: 20480}\nmatrix:\n  activation: [relu2]\n  n_heads: [2, 3]\n")
    with pytest.raises(UserError, match=r"x.yaml:6: matrix.n_heads: 3 heads do not split d_model 32"):
        load_suite(p)


# --- nonsense that used to be accepted silently

@pytest.mark.parametrize("defaults,rest,pattern", [
    ("", "tune: {lr: [1.0e-3, 2.0e-3], metric: val_bbp}\n",
     r"tune\.metric: 'val_bbp' is not a metric that lm trials record \(did you mean 'val_bpb'.*"),
    ("", "seeds: 2\ndecide: {baseline: relu2, metric: val_bbp}\n", r"decide\.metric: 'val_bbp' is not a metric that lm trials record .*"),
    ("warmup_frac: 0.6\ndecay_frac: 0.6\n", "", r"defaults\.decay_frac: warmup_frac 0\.6 \+ decay_frac 0\.6 is more than the whole run .*"),
    ("", "ladder:\n  widths: [32]\n", r"ladder\.widths: List should have at least 2 items after validation, not 1"),
    ("", "ladder:\n  widths: [32, 64, 64]\n", r"ladder\.widths: rung 2 repeats rung 1: every rung is a model size of its own"),
    ("", "ladder:\n  widths: [32, 64, 96]\n  target: {compute: 1.0e+20}\n",
     r"ladder\.target: a target needs at least 4 rungs to extrapolate from .* this ladder has 3: add rungs or drop the target"),
    ("", "ladder:\n  widths: [32, 64, 96, 128]\n  tokens: 204800\n  target: {compute: 1.0e+9}\n",
     r"ladder\.target: 1e\+09 training FLOPs is below the largest rung \(6\.\d+e\+11 FLOPs\): .*"),
    ("", "ladder:\n  widths: [32, 64, 96, 128]\n  tokens: 204800\n  target: {d_model: 16, n_layers: 1, tokens: 1000}\n",
     r"ladder\.target: .* training FLOPs is below the largest rung .*"),
])
def test_nonsense_is_refused_not_run(tmp_path, monkeypatch, capsys, defaults, rest, pattern):
    refused(monkeypatch, capsys, lm_suite(tmp_path, defaults, rest), pattern)


def test_a_decision_needs_two_paired_seeds(tmp_path):
    """A decide: block on one seed used to run its first stage, then end in an internal error of the
    sequential design (found by the fuzzer of tests/fuzz)."""
    p = tmp_path / "x.yaml"
    p.write_text("name: t\nkind: probe\nmatrix:\n  tag: [a, b]\nseeds: 1\ndecide: {field: tag, baseline: a, metric: objective}\n")
    with pytest.raises(UserError, match=r"x.yaml:5: seeds: 1 seed: a decide: block compares each candidate with the baseline on "
                                        r"paired seeds, at least 2"):
        load_suite(p)
    p.write_text(p.read_text().replace("seeds: 1", "seeds: 2"))
    assert len(load_suite(p).trials) == 4
    with pytest.raises(UserError, match=r"^--set seed: 1 seed: a decide: block"):
        load_suite(p, parse_overrides(["seed=3"]))


def test_metrics_of_other_kinds_are_the_ones_they_record(tmp_path):
    kernel = "name: t\nkind: kernel\ndefaults: {width: 4, impls: [eager], modes: [forward]}\nmatrix:\n  activation: [relu2]\n  size: [8]\n"
    p = tmp_path / "k.yaml"
    p.write_text(kernel + "tune: {warmup_ms: [1.0, 2.0], metric: eager.forward.ms_p50}\n")
    assert load_suite(p).trials
    p.write_text(kernel + "tune: {warmup_ms: [1.0, 2.0], metric: eager.full.ms_p50}\n")  # full is not among its modes
    with pytest.raises(UserError, match=r"k.yaml:\d+: tune.metric: 'eager.full.ms_p50' is not a metric that kernel trials record "
                                        r"\(did you mean 'eager.forward.ms_p50'"):
        load_suite(p)
    p.write_text("name: t\nkind: probe\nmatrix:\n  x: [0.0, 1.0]\ntune: {noise: [0.0, 1.0], metric: objectiv}\n")
    with pytest.raises(UserError, match=r"tune.metric: 'objectiv' is not a metric that probe trials record \(did you mean 'objective'"):
        load_suite(p)


@pytest.mark.parametrize("field,value,why", [("impls", "[eager, eager]", "each impl once"), ("modes", "[forward, forward]", "each mode once")])
def test_a_kernel_times_each_impl_and_mode_once(tmp_path, field, value, why):
    p = tmp_path / "k.yaml"
    p.write_text(f"name: t\nkind: kernel\ndefaults: {{width: 4, {field}: {value}}}\nmatrix:\n  activation: [relu2]\n  size: [8]\n")
    with pytest.raises(UserError, match=rf"k.yaml:3: defaults.{field}: .*: {why}$"):
        load_suite(p)


def test_a_tuning_grid_is_counted_before_it_is_listed(tmp_path):
    values = ", ".join(str(v) for v in range(1, 251))
    fields = "".join(f"  {f}: [{values}]\n" for f in ("sleep_s", "optimum", "noise", "x", "fail_marker"))  # 250**5 combinations
    p = tmp_path / "x.yaml"
    p.write_text("name: t\nkind: probe\nmatrix:\n  tag: [a]\ntune:\n" + fields)
    started = time.perf_counter()
    with pytest.raises(UserError, match=r"expands to 976,562,500,001 trials .*tuning 976562500000\)"):
        load_suite(p)
    assert time.perf_counter() - started < 2


# --- the data, checked before any trial starts

def shards(folder: Path, train: np.ndarray | None = None, val: np.ndarray | None = None) -> Path:
    rng = np.random.default_rng(0)
    write_shard(folder / "c_train_000001.bin", rng.integers(0, 256, 50_000) if train is None else train)
    write_shard(folder / "c_val_000000.bin", rng.integers(0, 256, 20_000) if val is None else val)
    write_token_bytes(folder / "c_token_bytes.npy", np.ones(256, dtype=np.int32))
    return folder


def bin_suite(tmp_path: Path, path: str, val_path: str, extra: str = "") -> Path:
    return lm_suite(tmp_path, f"eval_tokens: 1024\ndata: {{source: bin, vocab_size: 256, path: '{path}', val_path: '{val_path}'{extra}}}\n")


def put(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def header(*ints: int) -> bytes:
    return np.array([*ints] + [0] * (HEADER_INTS - len(ints)), np.int32).tobytes()


@pytest.mark.parametrize("make,pattern", [
    (lambda d: d, r"a folder, not a shard file"),
    (lambda d: put(d / "e_train_000001.bin", b""), r"empty: a shard holds at least one token"),
    (lambda d: put(d / "o.bin", b"\x01\x02\x03"), r"not a uint16 token file \(odd size\)"),
    (lambda d: put(d / "h.bin", header(MAGIC, 1, 99) + b"\x00" * 20), r"its header says 99 tokens but the file holds 10"),
    (lambda d: put(d / "v.bin", header(MAGIC, 7, 1) + b"\x00" * 2), r"unsupported shard version 7"),
    (lambda d: put(d / "z.bin", header(MAGIC, 1, 0)), r"empty: its header says it holds no tokens"),
    (lambda d: os.mkfifo(d / "f.bin") or d / "f.bin", r"not a regular file \(a FIFO, socket or device\)"),
    (lambda d: Path("/dev/zero"), r"not a regular file \(a FIFO, socket or device\)"),
])
def test_shards_that_are_not_regular_readable_nonempty_files_are_refused_at_load(tmp_path, monkeypatch, capsys, make, pattern):
    good = shards(tmp_path / "good")
    bad = make(tmp_path)
    p = bin_suite(tmp_path, str(bad), str(good / "c_val_*.bin"))
    refused(monkeypatch, capsys, p, rf"defaults\.data\.path: {re.escape(str(bad))}: {pattern}", commands=(("run",),))  # never opened (a FIFO would block)
    p = bin_suite(tmp_path, str(good / "c_train_*.bin"), str(bad))
    refused(monkeypatch, capsys, p, rf"defaults\.data\.val_path: {re.escape(str(bad))}: {pattern}", commands=(("run",),))


def test_text_paths_that_are_not_text_files_are_refused_at_load(tmp_path, monkeypatch, capsys):
    os.mkfifo(tmp_path / "fifo.txt")
    p = lm_suite(tmp_path, f"data: {{source: text, path: '{tmp_path / 'fifo.txt'}'}}\n")
    refused(monkeypatch, capsys, p, r"defaults\.data\.path: '.*fifo.txt' is not a regular file \(a FIFO, socket or device\)", commands=(("run",),))
    (tmp_path / "corpus").mkdir()
    (tmp_path / "corpus" / "a.txt").write_text("to be or not to be " * 2000)
    os.mkfifo(tmp_path / "corpus" / "b.txt")  # a FIFO among the texts would hang the tokenizer
    p = lm_suite(tmp_path, f"data: {{source: text, path: '{tmp_path / 'corpus'}'}}\n")
    refused(monkeypatch, capsys, p, r"defaults\.data\.path: '.*b.txt' is not a regular file .*", commands=(("run",),))
    (tmp_path / "corpus" / "b.txt").unlink()
    (tmp_path / "empty").mkdir()
    p = lm_suite(tmp_path, f"data: {{source: text, path: '{tmp_path / 'empty'}'}}\n")
    refused(monkeypatch, capsys, p, r"defaults\.data\.path: no \.txt file in the folder .*", commands=(("run",),))


def test_seq_len_must_fit_the_tokens_there_are(tmp_path, monkeypatch, capsys):
    """seq_len 2**20 used to pass every check on the embedded corpus and then run out of memory,
    hanging the machine: its validation parts hold 233,738 tokens."""
    p = lm_suite(tmp_path, "seq_len: 1048576\nbatch_size: 1\ntokens: 1000000000000\n")
    refused(monkeypatch, capsys, p, r"defaults\.seq_len: 1048576 is longer than a part of the validation split \(233,738 tokens "
                                    r"in the tuning part\): each part holds at least one window .*", commands=(("run",),))
    good = shards(tmp_path, val=np.arange(200) % 256)
    p = bin_suite(tmp_path, str(good / "c_train_*.bin"), str(good / "c_val_*.bin"))  # seq_len 128: 100-token parts
    refused(monkeypatch, capsys, p, r"defaults\.seq_len: 128 is longer than a part of the validation split \(100 tokens .*",
            commands=(("run",),))


# --- one trial that cannot fit in this machine's memory

def test_a_trial_too_large_for_memory_is_refused_with_the_estimate_unless_forced(tmp_path, monkeypatch, capsys):
    p = lm_suite(tmp_path, "d_model: 8192\nn_heads: 64\nn_layers: 64\nseq_len: 8192\nbatch_size: 2048\ntokens: 1000000000000\n"
                 "eval_tokens: 1024\ndata: {val_tokens: 16386}\n")
    refused(monkeypatch, capsys, p, r"defaults\.batch_size: one trial needs at least [\d,.]+ GiB \(weights [\d,.]+ GiB, gradients [\d,.]+ "
            r"GiB, optimizer state [\d,.]+ GiB, activations [\d,.]+ GiB\) and this machine has [\d,.]+ GiB of RAM: make the trial "
            r"smaller, or run it anyway with --force", commands=(("run",),))
    code, err = cli(monkeypatch, capsys, "run", str(p), "--dry-run", "--force")
    assert code == 0, err
    assert load_suite(p, check_paths=False).trials  # lm plan reads neither data nor memory


@pytest.mark.slow
def test_the_memory_estimate_is_below_a_measured_training_step():
    """The estimate refuses only what cannot fit: one real training step on this CPU holds more.
    Slow (3-11 s): the step runs in a fresh process, since this one's peak resident memory says
    nothing about one step, and that process imports torch."""
    script = textwrap.dedent("""
        import torch
        from actbench.core.resources import Resources
        from actbench.lm.config import LMConfig
        from actbench.lm.model import Llama
        torch.set_num_threads(1)
        cfg = LMConfig(activation="swiglu", d_model=128, n_heads=4, n_layers=2, seq_len=512, batch_size=16, tokens=10**6)
        model = Llama(cfg.to_model(256))
        opt = torch.optim.AdamW(model.parameters())
        x = torch.randint(0, 256, (cfg.batch_size, cfg.seq_len))
        def status(field):
            line = next(l for l in open("/proc/self/status") if l.startswith(field + ":"))
            return int(line.split()[1]) * 1024
        before = status("VmRSS")
        open("/proc/self/clear_refs", "w").write("5")  # the peak from here on: importing torch may have peaked higher
        torch.nn.functional.cross_entropy(model(x).flatten(0, 1), x.flatten()).backward()
        opt.step()
        grown = status("VmHWM") - before
        print(cfg.memory(Resources()).total, grown)
    """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True).stdout
    estimate, measured = map(float, out.split())
    assert 0.4 * measured < estimate < measured, (estimate, measured)


# --- --set and -k: hostile values are one line naming the flag

@pytest.mark.parametrize("item,pattern", [
    ("ta\x00g=1", r"--set 'ta\\x00g=1': expected KEY=VALUE.*"),
    ("a" * 100_000 + "=1", r"--set 'a{77}\.\.\.': expected KEY=VALUE.*"),
    ("tag=" + "a" * 2000, r"--set tag: String should have at most 1000 characters.*"),
])
def test_hostile_set_values_are_one_line_naming_the_flag(tmp_path, item, pattern):
    p = tmp_path / "x.yaml"
    p.write_text("name: t\nkind: probe\nmatrix:\n  tag: [a, b]\n")
    with pytest.raises(UserError) as e:
        load_suite(p, parse_overrides([item]))
    msg = str(e.value)
    assert re.fullmatch(pattern, msg) and "\n" not in msg and len(msg) < 500 and msg.isprintable(), msg
