"""Training on CPU: loss goes down, exact bits per byte on the whole split, resume is exact,
live progress (checkpoints that do not load: tests/lm/test_checkpoint.py)."""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from actbench.core.trial import TrialContext
from actbench.lm.config import DataConfig, LMConfig
from actbench.lm.corpus import load_corpus
from actbench.lm.evaluate import evaluate
from actbench.lm.model import Llama, ModelConfig
from actbench.lm.tokens import train_bpe
from actbench.lm.train import lr_at, train
from actbench.lm.windows import windows_per_chunk
from actbench.results.frames import series
from actbench.results.read import iter_records
from actbench.results.store import ResultStore

TINY = dict(d_model=32, n_layers=1, n_heads=2, seq_len=32, batch_size=8, ff_multiple=16, eval_tokens=2048, churn_tokens=256, impl="eager")
WORDS = ["a", "to", "the", "wörld", "héllo", "日本", "banana", "quixotic", "zebra", "lamp", "river", "stone"]
WORD_P = (1 / np.arange(1, len(WORDS) + 1)) / (1 / np.arange(1, len(WORDS) + 1)).sum()


@pytest.fixture(scope="module")
def word_corpus(tmp_path_factory):
    """Text of i.i.d. words (Zipf-like, some multi-byte): ' w1 w2 ...'; train and validation files."""
    d = tmp_path_factory.mktemp("words")
    rng = np.random.default_rng(0)
    for name, n in (("a_train.txt", 40_000), ("b_val.txt", 30_000)):
        (d / name).write_text("".join(" " + WORDS[i] for i in rng.choice(len(WORDS), size=n, p=WORD_P)), encoding="utf-8")
    return d


def unigram_llama(log_probs: np.ndarray) -> Llama:
    """A real Llama whose next-token distribution is softmax(log_probs) whatever the context:
    both residual branches write zeros, every token embeds to e_0, and the head reads e_0
    (scaled by the RMSNorm's 1 / sqrt(1/d + eps))."""
    d = 32
    model = Llama(ModelConfig(vocab_size=len(log_probs), d_model=d, n_layers=1, n_heads=2, d_ff=64, max_seq_len=64, tied_embeddings=False))
    with torch.no_grad():
        for block in model.blocks:
            block.attn.out.weight.zero_()
            block.mlp.down.weight.zero_()
        model.embed.weight.zero_()
        model.embed.weight[:, 0] = 1.0
        model.lm_head.weight.zero_()
        model.lm_head.weight[:, 0] = torch.from_numpy(log_probs).float() * math.sqrt(1 / d + 1e-6)
    return model


def test_thirty_cpu_steps_lower_the_loss_and_report_progress():
    reports: list[dict] = []
    cfg = LMConfig(activation="xielu", tokens=30 * 8 * 32, eval_every=10, final_eval="slice", **TINY)
    out = train(cfg, TrialContext(trial_id="t", progress=reports.append))
    assert out.status == "ok"
    tr = out.series["train"]
    assert set(tr) == {"step", "loss", "lr", "tokens", "time_s"} and tr["step"] == list(range(30))
    assert tr["tokens"][-1] == 30 * 256 and all(a < b for a, b in zip(tr["time_s"], tr["time_s"][1:]))
    assert np.mean(tr["loss"][-5:]) < np.mean(tr["loss"][:5]) - 0.5
    assert out.series["val"]["step"] == [10, 20, 30] and out.series["val"]["tokens"] == [2560, 5120, 7680]
    assert out.metrics["val_loss"] < np.log(256) - 0.5
    assert out.metrics["eval_scope"] == "slice" and out.metrics["val_tokens_scored"] == 2048 == out.metrics["periodic_eval_tokens"]
    assert out.metrics["impl_used"] == "eager"
    assert len(out.series["val_argmax"]) == 256
    al = out.series["alphas"]
    assert al["step"][:1] == [0] and al["layer"][:1] == [0]
    assert al["alpha_p"][0] == pytest.approx(0.8) and al["alpha_n"][0] == pytest.approx(0.8)  # the init value at step 0
    assert 0 < out.metrics["alpha_p_mean"] and out.metrics["alpha_n_mean"] > 0.5
    assert out.series["layers"]["layer"] == [0] and 0 <= out.series["layers"]["sparsity"][0] <= 1
    # progress: one report per optimizer step, one after each evaluation and one before the final one
    assert [r["step"] for r in reports if r["phase"] == "train"] == list(range(1, 31))
    evals = [r for r in reports if r["phase"] == "eval"]
    assert len(evals) == 4 and evals[0]["val_bpb"] == out.series["val"]["bpb"][0]
    assert set(reports[-1]) == {"step", "total_steps", "tokens", "train_loss", "lr", "tokens_per_s", "val_bpb", "phase"}
    assert reports[-1]["total_steps"] == 30 and reports[-1]["tokens_per_s"] > 0


def test_full_split_evaluation_scores_every_target_with_its_exact_bytes(word_corpus):
    cfg = LMConfig(activation="relu2", data={"source": "text", "path": str(word_corpus), "val_fraction": 0.49, "tokenizer": "bpe",
                                             "bpe_vocab_size": 400}, tokens=4 * 8 * 32, eval_every=2, **TINY)
    corpus = load_corpus(cfg.data)
    out = train(cfg, TrialContext(trial_id="f"))
    m, chunks = out.metrics, out.series["eval_chunks"]
    tune, test = corpus.parts(cfg.data.tune_fraction)
    val = np.asarray(test, dtype=np.int64)  # the verdicts' part; tuning's is scored whole too, apart
    assert len(tune) + len(test) == len(corpus.val) and m["tune_val_tokens_scored"] == len(tune) - 1
    assert m["eval_scope"] == "full" and m["val_bytes_exact"] is True
    assert m["val_tokens_scored"] == len(val) - 1 == sum(chunks["tokens"])  # the tail window too
    assert m["val_bytes_scored"] == corpus.token_bytes[val[1:]].sum() == sum(chunks["bytes"])
    val_text = (word_corpus / "b_val.txt").read_text(encoding="utf-8").encode()
    assert corpus.token_bytes[np.asarray(corpus.val, dtype=np.int64)].sum() == len(val_text)  # the table adds up to the text's bytes
    assert m["val_bpb"] == pytest.approx(sum(chunks["nats"]) / math.log(2) / sum(chunks["bytes"]), rel=1e-12)
    assert m["val_loss"] == pytest.approx(sum(chunks["nats"]) / sum(chunks["tokens"]), rel=1e-12)
    per_chunk = windows_per_chunk(len(val) - 1, 32) * 32
    assert all(t == per_chunk for t in chunks["tokens"][:-1]) and 0 < chunks["tokens"][-1] <= per_chunk
    assert out.series["val"]["step"] == [2, 4] and m["periodic_eval_tokens"] == 2048


@pytest.fixture(scope="module")
def letter_corpus(tmp_path_factory):
    """I.i.d. bytes: 16 letters with probabilities proportional to 1..16."""
    d = tmp_path_factory.mktemp("letters")
    rng = np.random.default_rng(1)
    p = np.arange(1, 17) / np.arange(1, 17).sum()
    for name, n in (("a_train.txt", 20_000), ("b_val.txt", 150_000)):
        (d / name).write_bytes(np.frombuffer(b"abcdefghijklmnop", dtype=np.uint8)[rng.choice(16, size=n, p=p)].tobytes())
    return d, p


@pytest.mark.parametrize("tokenizer", ["byte", "bpe"])
def test_bits_per_byte_equal_the_entropy_of_a_known_source_on_the_full_split(word_corpus, letter_corpus, tokenizer):
    """Scored by a model that predicts the source's true distribution, the whole split's bits
    per byte must equal the source's entropy per byte (up to sampling noise, ~0.1% here)."""
    if tokenizer == "byte":  # i.i.d. letters: H(p) bits per byte
        folder, p = letter_corpus
        corpus = load_corpus(DataConfig(source="text", path=str(folder), val_fraction=0.49))
        log_p = np.full(256, -40.0)
        log_p[np.frombuffer(b"abcdefghijklmnop", dtype=np.uint8)] = np.log(p)
        truth = -(p * np.log2(p)).sum()
    else:  # i.i.d. words, each one BPE token: H(words) / E[bytes of " word"] bits per byte
        folder = word_corpus
        corpus = load_corpus(DataConfig(source="text", path=str(folder), val_fraction=0.49, tokenizer="bpe", bpe_vocab_size=400))
        tok = train_bpe([(folder / "a_train.txt").read_text(encoding="utf-8")], 400)  # deterministic: the corpus's own
        ids = [tok.encode(" " + w).ids for w in WORDS]
        assert all(len(i) == 1 for i in ids) and set(np.unique(corpus.val)) <= {i[0] for i in ids}
        log_p = np.full(corpus.vocab_size, -40.0)
        log_p[[i[0] for i in ids]] = np.log(WORD_P)
        truth = -(WORD_P * np.log2(WORD_P)).sum() / (WORD_P * np.array([len((" " + w).encode()) for w in WORDS])).sum()
    val_bytes = len((folder / "b_val.txt").read_bytes())
    ev = evaluate(unigram_llama(log_p), corpus, corpus.val, 64, 64, torch.device("cpu"))
    assert ev.tokens == len(corpus.val) - 1
    assert ev.bytes == val_bytes - corpus.token_bytes[int(corpus.val[0])]  # every byte but the first token's
    assert abs(ev.bpb / truth - 1) < 0.005, (ev.bpb, truth)


def test_wsd_and_cosine_schedules():
    cfg = LMConfig(activation="relu2", tokens=100 * 16 * 128, warmup_frac=0.1, decay_frac=0.2, min_lr_ratio=0.1, lr=1.0)
    assert lr_at(cfg, 0) == pytest.approx(0.1)
    assert lr_at(cfg, 9) == pytest.approx(1.0) and lr_at(cfg, 79) == pytest.approx(1.0)
    assert lr_at(cfg, 99) == pytest.approx(0.1)
    cos = cfg.model_copy(update={"schedule": "cosine"})
    assert lr_at(cos, 10) == pytest.approx(1.0) and lr_at(cos, 99) == pytest.approx(0.1, abs=0.01)


SUITE = """\
name: resume
kind: lm
defaults:
  impl: eager
  d_model: 32
  n_layers: 1
  n_heads: 2
  seq_len: 32
  batch_size: 8
  ff_multiple: 16
  tokens: 153600
  eval_every: 100
  eval_tokens: 2048
  final_eval: slice
  checkpoint_every: 20
matrix:
  activation: [xielu]
resources:
  retries: 0
"""


def _cli(*args):
    return subprocess.Popen([sys.executable, "-c", "from actbench.cli import main; main()", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_killed_trial_resumes_from_its_checkpoint_with_the_same_loss_curve(tmp_path):
    suite = tmp_path / "resume.yaml"
    suite.write_text(SUITE)
    full = _cli("run", str(suite), "--executor", "inline", "--out", str(tmp_path / "full"))
    assert full.wait(timeout=600) == 0, full.stderr.read()

    crashed = _cli("run", str(suite), "--executor", "inline", "--out", str(tmp_path / "crash"))
    ckpts = tmp_path / "crash" / "checkpoints"
    deadline = time.time() + 300
    while time.time() < deadline and not list(ckpts.glob("*/ckpt.pt")):
        time.sleep(0.01)
    time.sleep(0.3)
    os.kill(crashed.pid, signal.SIGKILL)
    crashed.wait()
    assert not (tmp_path / "crash" / "trials.jsonl").exists()  # it died before finishing

    resumed = _cli("run", str(suite), "--executor", "inline", "--out", str(tmp_path / "crash"))
    assert resumed.wait(timeout=600) == 0, resumed.stderr.read()
    a = next(iter_records(tmp_path / "full" / "trials.jsonl"))
    b = next(iter_records(tmp_path / "crash" / "trials.jsonl"))
    assert a.trial_id == b.trial_id
    assert a.metrics["resumed_from_step"] is None
    assert 20 <= b.metrics["resumed_from_step"] < 600
    sa, sb = (ResultStore(tmp_path / d).series(r) for d, r in (("full", a), ("crash", b)))
    for table, cols in (("train", ("step", "loss", "lr", "tokens")), ("val", ("step", "tokens", "loss", "bpb")), ("alphas", ("step", "alpha_p"))):
        for col in cols:
            np.testing.assert_allclose(sa[table][col], sb[table][col], rtol=1e-5, atol=1e-6, err_msg=f"{table}.{col}")
    assert a.metrics["val_bpb"] == pytest.approx(b.metrics["val_bpb"], rel=1e-5)
    assert not ckpts.exists()  # the checkpoint and its empty folders are gone once the trial finished
    # the long per-step loader reads the same curves back
    long = series(tmp_path / "full")
    assert list(long.columns) == ["trial_id", "table", "step", "layer", "metric", "value"]
    loss = long[(long["table"] == "train") & (long["metric"] == "loss")]
    np.testing.assert_allclose(loss["value"], sa["train"]["loss"])
    alpha = long[(long["table"] == "alphas") & (long["metric"] == "alpha_p")]
    assert alpha["step"].iloc[0] == 0 and (alpha["layer"] == 0).all()


def test_series_loader_skips_files_of_another_shape(tmp_path):
    (tmp_path / "old.json").write_text('{"train_loss": [[0, 5.5], [1, 5.0]], "val": [[1, 4.0, 5.8]], "val_argmax": [1, 2]}')
    assert series(tmp_path / "old.json").empty
    (tmp_path / "mixed.json").write_text('{"train": {"step": [0, 1], "loss": [5.5, null], "note": "x"}, "val": {"step": 3}}')
    df = series(tmp_path / "mixed.json")
    assert df["metric"].tolist() == ["loss", "loss"] and df["value"].isna().tolist() == [False, True]
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.warns(UserWarning, match="bad.json"):
        assert series(tmp_path / "bad.json").empty


def test_non_finite_loss_stops_the_trial_as_diverged_with_the_step():
    cfg = LMConfig(activation="relu2", tokens=40 * 8 * 32, norm="none", lr=1e4, grad_clip=0, warmup_frac=0, **TINY)
    out = train(cfg, TrialContext(trial_id="d"))
    assert out.status == "diverged"
    assert out.note.startswith("non-finite loss at step ")
    assert out.metrics["steps"] < 40
    assert out.metrics["eval_scope"] == "slice"  # no full pass over the split for a diverged model


def test_auto_impl_on_cpu_times_a_gated_activation_and_records_what_ran():
    cfg = LMConfig(activation="swiglu", tokens=8 * 8 * 32, eval_every=100, final_eval="slice", **{**TINY, "impl": "auto"})
    out = train(cfg, TrialContext(trial_id="a"))
    assert out.status == "ok" and out.metrics["impl_used"] in ("eager", "compile")
