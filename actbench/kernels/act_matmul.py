"""Triton matmuls with an MLP activation in their epilogue: the up projection's forward, and the
down projection's input gradient followed by the activation's derivative.

- `act_matmul(a, b, act, ...)` -> (pre, post): pre = a @ b accumulated in fp32 and stored in a's
  dtype, post = f(pre) computed from the stored pre (so that the backward, which recomputes f
  from the same stored pre, sees the forward's own values, as an unfused MLP would).
- `act_matmul_grad(g, b, pre, act, ...)` -> (dpre, post, sums): h = g @ b in fp32 (the gradient
  of post), dpre = h * f'(pre), post = f(pre) recomputed for the down projection's weight
  gradient; for xIELU `sums` holds the two alpha-gradient sums before the chain through softplus,
  sum_{pre>0} h pre^2 and sum_{pre<=0} h (expm1(min(pre, eps)) - pre). Each program writes the
  sums of its own tile to a [tiles, 2] fp32 buffer that one torch.sum reduces: no atomics, the
  same bits on every run. h is never rounded to the storage dtype (an unfused backward rounds it
  once before the activation's backward).
- The pre-activation is stored, never recovered from post: xIELU's negative branch is not
  monotonic (quack's gemm_act / gemm_dact store it too; modded-nanogpt's ReLU² MLP keeps both).
- Activations (`ACTS`): `relu2` (max(x, 0)^2, NaN-propagating) and `xielu` (the formulas and the
  exact derivative of `actbench.kernels.xielu`, alphas read on the device, no host sync).
- Operands may be strided views (a transposed weight is read in place); a and b share a dtype
  (fp32, bf16, fp16). fp32 operands follow torch's float32 matmul precision (tf32 unless
  "highest"). Two defects of Triton's interpreter (3.9) are worked around off CUDA: it multiplies
  bf16 operands as integer bit patterns (16-bit operands go to tl.dot as fp32 there, exact) and
  truncates fp32 -> bf16 (rounded on the bits there). Registered as `torch.library.custom_op`s with fake impls, opaque to
  torch.compile. CUDA, or CPU with TRITON_INTERPRET=1. Tile sizes: `TILES`, not tuned on a GPU.
"""

from __future__ import annotations

import torch

from actbench.kernels import xielu as _xielu

ACTS = {"relu2": 0, "xielu": 1}
"""Activations the epilogues apply, by the code the kernels take."""
TILES = {  # device type -> BLOCK_M, BLOCK_N, BLOCK_K, GROUP_M, num_warps, num_stages
    "cuda": (128, 128, 64, 8, 8, 3),  # a common Hopper bf16 GEMM tile; untuned (no GPU has run these kernels yet)
    "cpu": (16, 32, 16, 2, 1, 1),  # the interpreter: small tiles, so small test shapes span several tiles
}


def unavailable_reason() -> str | None:
    """Why these kernels cannot run here, or None when they can."""
    return _xielu.unavailable_reason()


if _xielu._IMPORT_ERROR is None:
    import triton
    import triton.language as tl
    from torch.library import custom_op

    from actbench.kernels.xielu import _expm1_and_minus_x, _min_eps, _softplus

    @triton.jit
    def _epilogue(x, ap_raw_ptr, an_raw_ptr, beta, eps, ACT: tl.constexpr):
        """(f(x), f'(x), x > 0, the alpha_n factor expm1(min(x, eps)) - x) in fp32; the last is 0 for relu2."""
        if ACT == 0:
            r = tl.maximum(x, 0.0, propagate_nan=tl.PropagateNan.ALL)
            return r * r, 2.0 * r, x > 0, tl.zeros_like(x)
        else:
            ap = _softplus(tl.load(ap_raw_ptr).to(tl.float32))
            an = beta + _softplus(tl.load(an_raw_ptr).to(tl.float32))
            xc, gap = _min_eps(x, eps)
            em1, em1_minus_xc = _expm1_and_minus_x(xc)
            is_pos = x > 0
            neg_factor = em1_minus_xc + gap
            y = tl.where(is_pos, ap * x * x + beta * x, an * neg_factor + beta * x)
            dy = tl.where(is_pos, 2.0 * ap * x + beta, an * em1 + beta)
            return y, dy, is_pos, neg_factor

    @triton.jit
    def _rounded(v, dtype: tl.constexpr, INTERPRET: tl.constexpr):
        """fp32 v in `dtype`, rounded to nearest even. The interpreter truncates fp32 -> bf16 whatever
        the rounding asked, so there the rounding is done on the bits first (NaN kept NaN)."""
        if INTERPRET and dtype == tl.bfloat16:
            bits = v.to(tl.uint32, bitcast=True)
            bits = (bits + (0x7FFF + ((bits >> 16) & 1))) & 0xFFFF0000
            v = tl.where(v != v, v, bits.to(tl.float32, bitcast=True))
        return v.to(dtype)

    @triton.jit
    def _act_matmul_kernel(
        a_ptr, b_ptr, pre_ptr, out_ptr, post_ptr, partial_ptr, ap_raw_ptr, an_raw_ptr,
        M, N, K, stride_am, stride_ak, stride_bk, stride_bn, stride_cm, stride_cn, beta, eps,
        ACT: tl.constexpr, BACKWARD: tl.constexpr, PRECISION: tl.constexpr, INTERPRET: tl.constexpr,
        BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, GROUP_M: tl.constexpr,
    ):
        """Forward: out = pre = a @ b, post = f(pre). Backward: h = a @ b with a = g, pre read in,
        out = dpre = h f'(pre), post = f(pre), and this tile's two alpha sums to partial[pid]."""
        pid = tl.program_id(0)
        tiles_m, tiles_n = tl.cdiv(M, BLOCK_M), tl.cdiv(N, BLOCK_N)
        per_group = GROUP_M * tiles_n  # GROUP_M rows of tiles walked column by column: b's tiles stay in L2
        first_m = (pid // per_group) * GROUP_M
        group_m = min(tiles_m - first_m, GROUP_M)
        pid_m = first_m + (pid % per_group) % group_m
        pid_n = (pid % per_group) // group_m
        rm = (pid_m * BLOCK_M + tl.arange(0, BLOCK_M)).to(tl.int64)
        rn = (pid_n * BLOCK_N + tl.arange(0, BLOCK_N)).to(tl.int64)
        rk = tl.arange(0, BLOCK_K).to(tl.int64)
        a_ptrs = a_ptr + rm[:, None] * stride_am + rk[None, :] * stride_ak
        b_ptrs = b_ptr + rk[:, None] * stride_bk + rn[None, :] * stride_bn
        acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
        for k in range(0, tl.cdiv(K, BLOCK_K)):
            k_left = K - k * BLOCK_K
            # rows and columns past the edge load zeros: their h is 0, so they add nothing to the sums
            a = tl.load(a_ptrs, mask=(rm[:, None] < M) & (rk[None, :] < k_left), other=0.0)
            b = tl.load(b_ptrs, mask=(rk[:, None] < k_left) & (rn[None, :] < N), other=0.0)
            if INTERPRET:  # exact: a product of two 16-bit floats fits fp32
                a, b = a.to(tl.float32), b.to(tl.float32)
            acc = tl.dot(a, b, acc, input_precision=PRECISION)
            a_ptrs += BLOCK_K * stride_ak
            b_ptrs += BLOCK_K * stride_bk
        c_offs = rm[:, None] * stride_cm + rn[None, :] * stride_cn
        inside = (rm[:, None] < M) & (rn[None, :] < N)
        if BACKWARD:
            pre = tl.load(pre_ptr + c_offs, mask=inside, other=0.0).to(tl.float32)
            post, dpost, is_pos, neg_factor = _epilogue(pre, ap_raw_ptr, an_raw_ptr, beta, eps, ACT)
            tl.store(out_ptr + c_offs, _rounded(acc * dpost, out_ptr.dtype.element_ty, INTERPRET), mask=inside)
            tl.store(post_ptr + c_offs, _rounded(post, post_ptr.dtype.element_ty, INTERPRET), mask=inside)
            if ACT == 1:  # each branch's share of h times its d/d alpha, as the elementwise kernel sums them
                d_ap = tl.sum(tl.sum(tl.where(is_pos, acc, 0.0) * (pre * pre), axis=1), axis=0)
                d_an = tl.sum(tl.sum(tl.where(is_pos, 0.0, acc) * neg_factor, axis=1), axis=0)
                tl.store(partial_ptr + 2 * pid, d_ap)
                tl.store(partial_ptr + 2 * pid + 1, d_an)
        else:
            pre = _rounded(acc, out_ptr.dtype.element_ty, INTERPRET)
            tl.store(out_ptr + c_offs, pre, mask=inside)
            post, _, _, _ = _epilogue(pre.to(tl.float32), ap_raw_ptr, an_raw_ptr, beta, eps, ACT)
            tl.store(post_ptr + c_offs, _rounded(post, post_ptr.dtype.element_ty, INTERPRET), mask=inside)

    def _launch(a: torch.Tensor, b: torch.Tensor, pre: torch.Tensor | None, act: str, alpha_p_raw: torch.Tensor | None,
                alpha_n_raw: torch.Tensor | None, beta: float, eps: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        if act not in ACTS:
            raise ValueError(f"act_matmul: activation {act!r} is not one of {sorted(ACTS)}")
        if a.dtype != b.dtype or a.dim() != 2 or b.dim() != 2 or a.shape[1] != b.shape[0]:
            raise ValueError(f"act_matmul: needs a (M, K) @ b (K, N) of one dtype, got {tuple(a.shape)} {a.dtype} @ {tuple(b.shape)} {b.dtype}")
        if ACTS[act] == 1 and (alpha_p_raw is None or alpha_n_raw is None):
            raise ValueError("act_matmul: xielu needs alpha_p_raw and alpha_n_raw")
        (m, k), n = a.shape, b.shape[1]
        out = torch.empty((m, n), dtype=a.dtype, device=a.device)
        post = torch.empty_like(out)
        block_m, block_n, block_k, group_m, warps, stages = TILES["cuda" if a.is_cuda else "cpu"]
        tiles = triton.cdiv(m, block_m) * triton.cdiv(n, block_n)
        partial = torch.zeros((max(tiles, 1), 2), dtype=torch.float32, device=a.device)
        precision = "ieee" if a.dtype == torch.float32 and torch.get_float32_matmul_precision() == "highest" else "tf32"
        if a.element_size() == 4:  # fp32 tiles: two stages of them fit shared memory
            stages = min(stages, 2)
        if tiles:
            dummy = partial  # a pointer the relu2 kernels never read
            _act_matmul_kernel[(tiles,)](
                a, b, out if pre is None else pre, out, post, partial,
                dummy if alpha_p_raw is None else alpha_p_raw, dummy if alpha_n_raw is None else alpha_n_raw,
                m, n, k, a.stride(0), a.stride(1), b.stride(0), b.stride(1), out.stride(0), out.stride(1), beta, eps,
                ACT=ACTS[act], BACKWARD=pre is not None, PRECISION=precision, INTERPRET=not a.is_cuda,
                BLOCK_M=block_m, BLOCK_N=block_n, BLOCK_K=block_k, GROUP_M=group_m, num_warps=warps, num_stages=stages,
            )
        return out, post, partial.sum(dim=0)

    @custom_op("actbench::act_matmul", mutates_args=())
    def act_matmul(a: torch.Tensor, b: torch.Tensor, act: str, alpha_p_raw: torch.Tensor | None, alpha_n_raw: torch.Tensor | None,
                   beta: float, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
        """(pre, post) = (a @ b, f(a @ b)), both in a's dtype."""
        pre, post, _ = _launch(a, b, None, act, alpha_p_raw, alpha_n_raw, beta, eps)
        return pre, post

    @custom_op("actbench::act_matmul_grad", mutates_args=())
    def act_matmul_grad(g: torch.Tensor, b: torch.Tensor, pre: torch.Tensor, act: str, alpha_p_raw: torch.Tensor | None,
                        alpha_n_raw: torch.Tensor | None, beta: float, eps: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(dpre, post, sums): (g @ b) f'(pre), f(pre), and xIELU's two alpha sums (fp32 [2]; zeros for relu2)."""
        if pre.shape != (g.shape[0], b.shape[1]) or pre.dtype != g.dtype:
            raise ValueError(f"act_matmul_grad: pre {tuple(pre.shape)} {pre.dtype} does not match g @ b")
        return _launch(g, b, pre, act, alpha_p_raw, alpha_n_raw, beta, eps)

    @act_matmul.register_fake
    def _act_matmul_fake(a, b, act, alpha_p_raw, alpha_n_raw, beta, eps):  # noqa: ANN001, ANN202
        out = a.new_empty((a.shape[0], b.shape[1]))
        return out, torch.empty_like(out)

    @act_matmul_grad.register_fake
    def _act_matmul_grad_fake(g, b, pre, act, alpha_p_raw, alpha_n_raw, beta, eps):  # noqa: ANN001, ANN202
        out = g.new_empty((g.shape[0], b.shape[1]))
        return out, torch.empty_like(out), g.new_empty((2,), dtype=torch.float32)
