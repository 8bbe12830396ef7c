"""Fused Triton xIELU: one read of x and one write of y forward; one read of (x, g) and one
write of dx backward, with both alpha gradients reduced in fp32 in the same pass.

- Inputs of any shape in fp32 / bf16 / fp16; a non-contiguous input is copied to a contiguous
  one first (one extra pass, so pass contiguous tensors for speed). Arithmetic is fp32.
- Only x is saved for backward (2 B/elem in bf16). alpha_p_raw / alpha_n_raw stay fp32 [1]
  tensors on the device and are read by the kernels: no host sync anywhere.
- Alpha-gradient reduction: each program writes its partial sums to its own slot of a
  [programs, 2] fp32 buffer, then one torch.sum reduces that buffer. No atomics are used, so the
  result is bitwise identical run to run (atomic float adds would make the order, and so the
  rounding, depend on scheduling).
- dx uses the exact derivative, alpha_n expm1(min(x, eps)) + beta for x <= 0 (ANCHORS.md), as
  `XIELU.derivative` does. The eager module's autograd (the transformers formula) differs only
  on [eps, 0], where differentiating through min(x, eps) gives beta - alpha_n (half of it at
  the tie x = eps).
- Non-finite inputs give what eager gives: NaN in, NaN out (y, dx, and both alpha gradients,
  whose sums it poisons); f(+inf) = +inf with dx = g * inf; x = -inf gives y = NaN (inf - inf
  in the formula) and an infinite alpha_n gradient, as eager, but dx = g (beta - alpha_n), the
  limit, where eager's autograd gives NaN. `min` propagates NaN (tl.minimum's default would
  drop it).
- Registered as xIELU's `triton` impl through `torch.library.custom_op` (with fake impls), so
  torch.compile(fullgraph=True) sees one opaque op per direction and no graph break. Runs on
  CUDA, or on CPU with TRITON_INTERPRET=1 (tests).
"""

from __future__ import annotations

import torch

from actbench.activations.xielu import XIELU
from actbench.kernels import unavailable_reason as kernels_unavailable_reason

try:
    import triton
    import triton.language as tl
    from torch.library import custom_op

    _IMPORT_ERROR: str | None = None
except ImportError as e:  # non-Linux
    _IMPORT_ERROR = f"triton is not importable ({e})"

# elements and warps per program; H200, bf16, 64M elements (scripts/xielu_blocks.py): forward 87% of
# copy bandwidth at 4096/4 (82% at 4096/8), backward 0.142 ms at 4096/8 (0.186 at 4096/4)
FWD_BLOCK, FWD_WARPS = 4096, 4
BWD_BLOCK, BWD_WARPS = 4096, 8


def unavailable_reason() -> str | None:
    """Why the Triton kernels cannot run here, or None when they can."""
    return _IMPORT_ERROR or kernels_unavailable_reason()


if _IMPORT_ERROR is None:

    @triton.jit
    def _softplus(r):
        e = tl.exp(-tl.abs(r))
        log1p_e = tl.where(e < 1e-4, e - 0.5 * e * e, tl.log(1.0 + e))
        return tl.maximum(r, 0.0) + log1p_e

    @triton.jit
    def _expm1_and_minus_x(x):
        """(expm1(x), expm1(x) - x) for x <= 0, each without cancellation: a Taylor series near 0,
        exp(x) - 1 below -0.1 (adding x back to expm1(x) - x there would cancel to garbage for
        large |x|: expm1(-1e8) - x is 1e8 - 1 in fp32)."""
        taylor = x * x * (0.5 + x * (1.0 / 6.0 + x * (1.0 / 24.0 + x * (1.0 / 120.0 + x * (1.0 / 720.0)))))
        small = x > -0.1
        em1 = tl.exp(x) - 1.0
        return tl.where(small, taylor + x, em1), tl.where(small, taylor, em1 - x)

    @triton.jit
    def _min_eps(x, eps):
        """(min(x, eps), min(x, eps) - x), NaN-propagating; the gap is exactly 0 below eps (no
        inf - inf at x = -inf)."""
        xc = tl.minimum(x, eps, propagate_nan=tl.PropagateNan.ALL)
        return xc, tl.where(x < eps, 0.0, xc - x)

    @triton.jit
    def _xielu_fwd_kernel(x_ptr, y_ptr, ap_raw_ptr, an_raw_ptr, n, beta, eps, BLOCK: tl.constexpr):
        offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < n
        x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        ap = _softplus(tl.load(ap_raw_ptr).to(tl.float32))
        an = beta + _softplus(tl.load(an_raw_ptr).to(tl.float32))
        xc, gap = _min_eps(x, eps)
        _, em1_minus_xc = _expm1_and_minus_x(xc)
        pos = ap * x * x + beta * x
        neg = an * (em1_minus_xc + gap) + beta * x
        y = tl.where(x > 0, pos, neg)
        tl.store(y_ptr + offs, y.to(y_ptr.dtype.element_ty), mask=mask)

    @triton.jit
    def _xielu_bwd_kernel(
        g_ptr, x_ptr, dx_ptr, partial_ptr, ap_raw_ptr, an_raw_ptr, n, beta, eps, BLOCK: tl.constexpr
    ):
        pid = tl.program_id(0)
        offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
        mask = offs < n
        x = tl.load(x_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        g = tl.load(g_ptr + offs, mask=mask, other=0.0).to(tl.float32)
        ap = _softplus(tl.load(ap_raw_ptr).to(tl.float32))
        an = beta + _softplus(tl.load(an_raw_ptr).to(tl.float32))
        xc, gap = _min_eps(x, eps)
        em1, em1_minus_xc = _expm1_and_minus_x(xc)
        is_pos = x > 0
        dx = tl.where(is_pos, 2.0 * ap * x + beta, an * em1 + beta) * g
        tl.store(dx_ptr + offs, dx.to(dx_ptr.dtype.element_ty), mask=mask)
        # Each branch's share of g times that branch's d/d alpha, as eager's autograd through
        # torch.where computes it: a NaN or infinite x makes the sums NaN or inf as in eager (a
        # select would drop it). Masked lanes have x = 0, g = 0 and contribute 0.
        d_ap = tl.sum(tl.where(is_pos, g, 0.0) * (x * x), axis=0)
        d_an = tl.sum(tl.where(is_pos, 0.0, g) * (em1_minus_xc + gap), axis=0)
        tl.store(partial_ptr + 2 * pid, d_ap)
        tl.store(partial_ptr + 2 * pid + 1, d_an)

    @custom_op("actbench::xielu_fwd", mutates_args=())
    def xielu_fwd(x: torch.Tensor, alpha_p_raw: torch.Tensor, alpha_n_raw: torch.Tensor, beta: float, eps: float) -> torch.Tensor:
        x = x.contiguous()
        y = torch.empty_like(x)
        n = x.numel()
        if n:
            grid = (triton.cdiv(n, FWD_BLOCK),)
            _xielu_fwd_kernel[grid](
                x, y, alpha_p_raw, alpha_n_raw, n, beta, eps, BLOCK=FWD_BLOCK, num_warps=FWD_WARPS
            )
        return y

    @custom_op("actbench::xielu_bwd", mutates_args=())
    def xielu_bwd(
        g: torch.Tensor, x: torch.Tensor, alpha_p_raw: torch.Tensor, alpha_n_raw: torch.Tensor, beta: float, eps: float
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        x = x.contiguous()
        g = g.contiguous()
        dx = torch.empty_like(x)
        n = x.numel()
        programs = max(triton.cdiv(n, BWD_BLOCK), 1)
        # every program writes its own slot, so only an empty input needs the zeros
        partial = (torch.empty if n else torch.zeros)((programs, 2), dtype=torch.float32, device=x.device)
        if n:
            _xielu_bwd_kernel[(programs,)](
                g, x, dx, partial, alpha_p_raw, alpha_n_raw, n, beta, eps, BLOCK=BWD_BLOCK, num_warps=BWD_WARPS
            )
        sums = partial.sum(dim=0)
        d_ap = sums[0:1] * torch.sigmoid(alpha_p_raw.float())
        d_an = sums[1:2] * torch.sigmoid(alpha_n_raw.float())
        return dx, d_ap, d_an

    def _setup_context(ctx, inputs, output) -> None:  # noqa: ANN001
        x, alpha_p_raw, alpha_n_raw, beta, eps = inputs
        ctx.save_for_backward(x, alpha_p_raw, alpha_n_raw)
        ctx.beta, ctx.eps = beta, eps

    def _backward(ctx, g: torch.Tensor):  # noqa: ANN001
        x, alpha_p_raw, alpha_n_raw = ctx.saved_tensors
        dx, d_ap, d_an = xielu_bwd(g, x, alpha_p_raw, alpha_n_raw, ctx.beta, ctx.eps)
        return dx, d_ap, d_an, None, None

    xielu_fwd.register_autograd(_backward, setup_context=_setup_context)

    @xielu_fwd.register_fake
    def _xielu_fwd_fake(x, alpha_p_raw, alpha_n_raw, beta, eps):  # noqa: ANN001, ANN202
        return torch.empty_like(x, memory_format=torch.contiguous_format)

    @xielu_bwd.register_fake
    def _xielu_bwd_fake(g, x, alpha_p_raw, alpha_n_raw, beta, eps):  # noqa: ANN001, ANN202
        return torch.empty_like(x, memory_format=torch.contiguous_format), torch.empty_like(alpha_p_raw), torch.empty_like(alpha_n_raw)


def xielu_triton(x: torch.Tensor, alpha_p_raw: torch.Tensor, alpha_n_raw: torch.Tensor, beta: float = 0.5, eps: float = -1e-6) -> torch.Tensor:
    """Fused xIELU. Differentiable in x, alpha_p_raw and alpha_n_raw."""
    reason = unavailable_reason()
    if reason:
        raise RuntimeError(f"xIELU triton kernel unavailable: {reason}")
    return xielu_fwd(x, alpha_p_raw, alpha_n_raw, beta, eps)


class XIELUTriton(XIELU):
    """xIELU through the fused Triton kernels (same parameters and state_dict as XIELU)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return xielu_triton(x, self.alpha_p_raw, self.alpha_n_raw, self.beta, self.eps)

