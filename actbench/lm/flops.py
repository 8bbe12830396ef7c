"""Analytic parameter and FLOP counts of the Llama in model.py, and d_ff matching.

FLOPs per token of one forward pass, counting a multiply-add as 2 FLOPs:
- matmuls: 2 x (weights used), i.e. attention 8 d^2, MLP 2 (k d d_ff) with k = 3 gated / 2
  plain, and the LM head 2 d V per layer-stack;
- attention scores and values: 4 T d per layer over the full T x T matrix, as
  torch.utils.flop_counter counts scaled_dot_product_attention (a causal kernel does half);
- activation elementwise: a rough op count per element (`ACT_OPS`), reported separately and
  not used for matching (it is < 1% of the matmul FLOPs at these widths).
Training is 3x forward. Matching: MLP parameters and MLP matmul FLOPs are both
k d d_ff per layer, so equal MLP parameters means equal FLOPs; `match_d_ff` picks d_ff.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from actbench import activations

if TYPE_CHECKING:
    import pandas as pd

    from actbench.lm.shapes import ModelConfig

ACT_OPS = {  # approximate forward elementwise ops per output element
    "relu": 1, "relu2": 2, "leaky_relu2": 3, "leaky_relu": 2, "prelu": 2, "helu": 1, "elu": 4, "smelu": 5,
    "xielu": 8, "xiprelu": 5, "xsilu": 7, "gelu": 10, "gelu_tanh": 9, "silu": 5, "swish": 6, "mish": 9,
    "golu": 6, "sau": 14, "velu": 12, "swiglu": 6, "geglu": 11, "reglu": 2,
}


@dataclass(frozen=True)
class Counts:
    params: int
    mlp_params: int
    flops_per_token: float  # forward, matmuls + attention
    act_flops_per_token: float  # forward, activation elementwise (approximate)

    @property
    def train_flops_per_token(self) -> float:
        return 3 * self.flops_per_token


def mlp_width_factor(activation: str) -> int:
    """MLP weights per (d_model x d_ff): 3 gated (up is 2 d_ff wide), 2 plain."""
    return 3 if activations.spec(activation).gated else 2


def count(cfg: "ModelConfig", seq_len: int) -> Counts:
    d, ff, layers, vocab = cfg.d_model, cfg.d_ff, cfg.n_layers, cfg.vocab_size
    act_params = len(activations.spec(cfg.activation).params)
    norm = d if cfg.norm == "rms" else 0
    mlp = mlp_width_factor(cfg.activation) * d * ff
    per_layer = 4 * d * d + mlp + 2 * norm + act_params
    embed = vocab * d
    head = 0 if cfg.tied_embeddings else vocab * d
    params = embed + head + layers * per_layer + norm
    flops = layers * (2 * (4 * d * d + mlp) + 4 * seq_len * d) + 2 * d * vocab
    act = layers * ff * ACT_OPS.get(cfg.activation, 5)
    return Counts(params=params, mlp_params=layers * mlp,
                  flops_per_token=float(flops), act_flops_per_token=float(act))


def match_d_ff(activation: str, d_model: int, reference: str, reference_d_ff: int, multiple: int = 64) -> int:
    """d_ff for `activation` whose MLP parameters (and FLOPs) match `reference` at `reference_d_ff`,
    rounded to the nearest `multiple`."""
    target = mlp_width_factor(reference) * reference_d_ff
    k = mlp_width_factor(activation)
    return max(multiple, round(target / k / multiple) * multiple)


def mismatch_pct(activation: str, d_ff: int, reference: str, reference_d_ff: int) -> float:
    """MLP parameter (= FLOP) difference from the reference, in percent."""
    ref = mlp_width_factor(reference) * reference_d_ff
    return 100.0 * (mlp_width_factor(activation) * d_ff - ref) / ref


def plan(trials: list, mfu: Callable[[int], float], peak_tflops: float = 989.0) -> "pd.DataFrame":
    """One row per distinct (activation, model) of an `lm` suite: d_ff, counts, match, cost.

    Training GPU-hours at `mfu(params)` of an H100's dense bf16 peak (`peak_tflops`)."""
    import pandas as pd

    rows, seen = [], {}
    for t in trials:
        c = t.config
        key = (c.activation, c.d_ff, c.d_model, c.n_layers, c.seq_len, c.tokens)
        if key in seen:
            seen[key]["trials"] += 1
            continue
        n = count(c.to_model(c.expected_vocab_size), c.seq_len)
        ref_d_ff = c.reference_d_ff or 4 * c.d_model
        tokens = c.steps * c.tokens_per_step
        train_flops = n.train_flops_per_token * tokens
        row = {
            "activation": c.activation, "gated": activations.spec(c.activation).gated, "d_ff": c.d_ff,
            "d_model": c.d_model, "n_layers": c.n_layers,
            "params": n.params, "mlp_params": n.mlp_params, "flops_per_token": n.flops_per_token,
            "act_flops_per_token": n.act_flops_per_token,
            "diff_pct": mismatch_pct(c.activation, c.d_ff, c.reference, ref_d_ff), "reference": f"{c.reference} d_ff={ref_d_ff}",
            "tokens": tokens, "trials": 1, "train_flops": train_flops, "mfu": mfu(n.params),
            "gpu_hours_per_trial": train_flops / (mfu(n.params) * peak_tflops * 1e12) / 3600,
        }
        seen[key] = row
        rows.append(row)
    return pd.DataFrame(rows)
