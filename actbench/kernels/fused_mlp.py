"""The fused MLP: y = f(x @ W_up^T) @ W_down^T with the activation f applied in the epilogue of the up
projection's matmul, and its derivative in the epilogue of the down projection's input-gradient
matmul (`actbench.kernels.act_matmul`). The activations' `fused` impl (xIELU, ReLU²) in an lm
MLP (`actbench.lm.model.MLP`, `impl: fused`).

Forward: (pre, post) = act_matmul(x, W_up^T); y = post @ W_down^T (torch). Saved for backward:
x, the weights and pre (not post: the backward epilogue recomputes it, as quack's gemm_dact does).
Backward: (dpre, post, sums) = act_matmul_grad(dy, W_down, pre); dW_down = dy^T post,
dW_up = dpre^T x, dx = dpre W_up (torch); xIELU's alpha gradients are the sums times
sigmoid(alpha_raw), in fp32. Against an unfused MLP it skips the activation's read of pre forward
and the write and read of d post backward, writes post again backward, and keeps d_ff values per
token less between forward and backward (post is not saved).

Under autocast the operands are cast to the autocast dtype first (as F.linear would cast them)
and the op runs with autocast off; the alphas stay fp32.
"""

from __future__ import annotations

from typing import Any

import torch

from actbench.activations.relu import ReLU2
from actbench.activations.xielu import XIELU
from actbench.kernels import act_matmul as _am


def unavailable_reason() -> str | None:
    """Why the fused MLP cannot run here, or None when it can."""
    return _am.unavailable_reason()


class _FusedMLPFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, w_up: torch.Tensor, w_down: torch.Tensor, act: str,  # type: ignore[override]
                alpha_p_raw: torch.Tensor | None, alpha_n_raw: torch.Tensor | None, beta: float, eps: float) -> torch.Tensor:
        pre, post = _am.act_matmul(x, w_up.t(), act, alpha_p_raw, alpha_n_raw, beta, eps)
        ctx.save_for_backward(x, w_up, w_down, pre, alpha_p_raw, alpha_n_raw)
        ctx.act, ctx.beta, ctx.eps = act, beta, eps
        return post @ w_down.t()

    @staticmethod
    @torch.autograd.function.once_differentiable  # no double backward
    def backward(ctx: Any, dy: torch.Tensor) -> tuple[torch.Tensor | None, ...]:  # type: ignore[override]
        x, w_up, w_down, pre, alpha_p_raw, alpha_n_raw = ctx.saved_tensors
        dpre, post, sums = _am.act_matmul_grad(dy, w_down, pre, ctx.act, alpha_p_raw, alpha_n_raw, ctx.beta, ctx.eps)
        need = ctx.needs_input_grad
        dx = dpre @ w_up if need[0] else None
        dw_up = dpre.t() @ x if need[1] else None
        dw_down = dy.t() @ post if need[2] else None
        d_ap = sums[0:1] * torch.sigmoid(alpha_p_raw.float()) if need[4] else None
        d_an = sums[1:2] * torch.sigmoid(alpha_n_raw.float()) if need[5] else None
        return dx, dw_up, dw_down, None, d_ap, d_an, None, None


def fused_mlp(x: torch.Tensor, w_up: torch.Tensor, w_down: torch.Tensor, act: str, alpha_p_raw: torch.Tensor | None = None,
              alpha_n_raw: torch.Tensor | None = None, beta: float = 0.5, eps: float = -1e-6) -> torch.Tensor:
    """f(x @ w_up^T) @ w_down^T for x (..., d_model), w_up (d_ff, d_model), w_down (d_model, d_ff) (nn.Linear
    weights), f `relu2` or `xielu` (with its raw alphas). Differentiable in x, both weights and the alphas."""
    if reason := unavailable_reason():
        raise RuntimeError(f"fused MLP unavailable: {reason}")
    device = x.device.type
    if torch.is_autocast_enabled(device):
        dtype = torch.get_autocast_dtype(device)
        x, w_up, w_down = x.to(dtype), w_up.to(dtype), w_down.to(dtype)
    with torch.autocast(device, enabled=False):
        y = _FusedMLPFunction.apply(x.reshape(-1, x.shape[-1]), w_up, w_down, act, alpha_p_raw, alpha_n_raw, beta, eps)
    return y.view(*x.shape[:-1], w_down.shape[0])


class FusedXIELU(XIELU):
    """xIELU whose MLP runs fused (impl `fused`): `mlp` is the whole up -> xIELU -> down. Called
    alone it is the eager module (nothing to fuse); the same parameters and state_dict as XIELU."""

    def mlp(self, x: torch.Tensor, w_up: torch.Tensor, w_down: torch.Tensor) -> torch.Tensor:
        return fused_mlp(x, w_up, w_down, "xielu", self.alpha_p_raw, self.alpha_n_raw, self.beta, self.eps)


class FusedReLU2(ReLU2):
    """ReLU² whose MLP runs fused (impl `fused`), as FusedXIELU."""

    def mlp(self, x: torch.Tensor, w_up: torch.Tensor, w_down: torch.Tensor) -> torch.Tensor:
        return fused_mlp(x, w_up, w_down, "relu2")
