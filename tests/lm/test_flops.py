"""Parameter and FLOP counts against the real model; d_ff matching on the paper's configs."""

from __future__ import annotations

import pytest
import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from actbench.lm import flops
from actbench.lm.model import Llama, ModelConfig

PAPER_1B = dict(vocab_size=50304, d_model=1536, n_layers=24, n_heads=12, max_seq_len=4096)


@pytest.mark.parametrize("activation,d_ff", [("xielu", 6 * 1536), ("relu2", 6 * 1536), ("swiglu", 4 * 1536)])
def test_paper_1b_counts_match_the_model_built_on_meta(activation, d_ff):
    cfg = ModelConfig(**PAPER_1B, d_ff=d_ff, activation=activation)
    with torch.device("meta"):
        model = Llama(cfg)
    n = flops.count(cfg, 4096)
    assert n.params == sum(p.numel() for p in model.parameters())
    assert n.mlp_params == sum(p.numel() for b in model.blocks for p in (b.mlp.up.weight, b.mlp.down.weight))
    assert n.mlp_params == 24 * 12 * 1536**2  # 12 h^2 per layer: "matched parameters"


def test_paper_matching_xielu_6h_equals_swiglu_4h():
    h = 1536
    assert flops.match_d_ff("swiglu", h, "relu2", 6 * h) == 4 * h
    assert flops.match_d_ff("xielu", h, "relu2", 6 * h) == 6 * h
    assert flops.mismatch_pct("swiglu", 4 * h, "xielu", 6 * h) == 0.0
    a = flops.count(ModelConfig(**PAPER_1B, d_ff=6 * h, activation="xielu"), 4096)
    b = flops.count(ModelConfig(**PAPER_1B, d_ff=4 * h, activation="swiglu"), 4096)
    assert a.flops_per_token == b.flops_per_token
    assert a.params - b.params == 2 * 24  # xIELU's two scalars per layer


@pytest.mark.parametrize("d_model,ref_d_ff,multiple", [(128, 512, 64), (384, 1536, 64), (1000, 4000, 8), (2048, 8192, 64)])
def test_solver_picks_the_closest_width_on_the_grid(d_model, ref_d_ff, multiple):
    """The solver's d_ff is the multiple whose MLP is closest to the reference's (brute force over
    the grid), so within half a grid step: one step of `multiple` moves a gated MLP (3 matrices) by
    3 * multiple against ReLU2's 2 * ref_d_ff, e.g. 6.25% at d_ff 512 and step 64."""
    for act in ("swiglu", "geglu", "xielu", "gelu"):
        d_ff = flops.match_d_ff(act, d_model, "relu2", ref_d_ff, multiple)
        off = abs(flops.mismatch_pct(act, d_ff, "relu2", ref_d_ff))
        grid = range(multiple, 4 * ref_d_ff, multiple)
        assert d_ff % multiple == 0 and off == min(abs(flops.mismatch_pct(act, w, "relu2", ref_d_ff)) for w in grid)
        assert off <= 100 * flops.mlp_width_factor(act) * multiple / 2 / (flops.mlp_width_factor("relu2") * ref_d_ff)


@pytest.mark.parametrize("activation,d_ff,tied", [("xielu", 96, True), ("swiglu", 64, False)])
def test_analytic_flops_equal_the_flop_counter(activation, d_ff, tied):
    cfg = ModelConfig(vocab_size=256, d_model=64, n_layers=2, n_heads=4, d_ff=d_ff, activation=activation,
                      max_seq_len=32, tied_embeddings=tied)
    model = Llama(cfg)
    idx = torch.randint(0, 256, (2, 32))
    # the math backend shows the counter its matmuls (the fused CPU kernel is not counted)
    with sdpa_kernel(SDPBackend.MATH), FlopCounterMode(display=False) as counter:
        model(idx)
    assert counter.get_total_flops() == flops.count(cfg, 32).flops_per_token * idx.numel()
    assert flops.count(cfg, 32).params == sum(p.numel() for p in model.parameters())


def test_lm_plan_cli_shows_the_paper_match():
    import subprocess
    import sys
    from pathlib import Path

    suite = Path(__file__).resolve().parents[2] / "suites" / "llm_fineweb.yaml"
    r = subprocess.run([sys.executable, "-c", "from actbench.cli import main; main()", "lm", "plan", str(suite)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    lines = {line.split("│")[1].strip(): line for line in r.stdout.splitlines() if line.startswith("│")}
    assert "4608" in lines["xielu"] and "3072" in lines["swiglu (gated)"]
    assert lines["xielu"].count("+0.00%") == 1 and "84.935M" in lines["swiglu (gated)"]
