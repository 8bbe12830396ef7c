"""Sweep the fused xIELU kernels' block size and warps on a GPU and print a table.

    python scripts/xielu_blocks.py [elements]      # default 64M, bf16

For each (BLOCK, num_warps) it checks the forward output, dx and both alpha gradients against a
float64 reference (1M random inputs; the worst relative error is printed) and times the forward and the backward kernel
(triton.testing.do_bench, median) against a device copy timed in the same run: the forward moves
4 B/elem (read x, write y), the backward 6 B/elem (read x and g, write dx), so fwd+bwd has a
floor of 10 B/elem at copy bandwidth. Set the winners as FWD_/BWD_BLOCK and _WARPS in
actbench/kernels/xielu.py.
"""

from __future__ import annotations

import sys

import torch
import triton

from actbench.activations.xielu import XIELU
from actbench.kernels import xielu as kernel

BLOCKS = (1024, 2048, 4096, 8192, 16384)
WARPS = (4, 8, 16)


def _bench(fn) -> float:  # noqa: ANN001
    return triton.testing.do_bench(fn, warmup=25, rep=100, return_mode="median")


def _reference(x: torch.Tensor, g: torch.Tensor, ap_raw: torch.Tensor, an_raw: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """y, dx (the analytic derivative, as the kernel computes it), d alpha_p_raw, d alpha_n_raw in
    float64, from the registry's module (beta 0.5, eps -1e-6)."""
    module = XIELU(beta=0.5, eps=-1e-6).double()
    with torch.no_grad():
        module.alpha_p_raw.copy_(ap_raw)
        module.alpha_n_raw.copy_(an_raw)
    x64, g64 = x.double(), g.double()
    y = module.formula(x64)
    d_ap, d_an = torch.autograd.grad(y, (module.alpha_p_raw, module.alpha_n_raw), g64)
    return y.detach(), g64 * module.derivative(x64).detach(), d_ap, d_an


def _rel(a: torch.Tensor, ref: torch.Tensor) -> float:
    return float((a.double() - ref).norm() / ref.norm())


def main(n: int) -> None:
    dev = torch.device("cuda")
    torch.manual_seed(0)
    x = torch.randn(n, device=dev, dtype=torch.bfloat16)
    g = torch.randn(n, device=dev, dtype=torch.bfloat16)
    ap_raw = torch.tensor([0.3], device=dev)
    an_raw = torch.tensor([0.2], device=dev)
    buf = torch.empty_like(x)
    copy_ms = _bench(lambda: buf.copy_(x))
    gbps = 4 * n / copy_ms / 1e6
    floor_ms = 10 * n / (gbps * 1e6)
    print(f"{n:,} bf16 elements; copy {copy_ms:.4f} ms = {gbps:.0f} GB/s (read+write); fwd+bwd floor {floor_ms:.4f} ms")
    small = torch.randn(1 << 20, device=dev, dtype=torch.bfloat16)
    gs = torch.randn_like(small)
    refs = _reference(small, gs, ap_raw, an_raw)
    rows = []
    for block in BLOCKS:
        for warps in WARPS:
            kernel.FWD_BLOCK = kernel.BWD_BLOCK = block
            kernel.FWD_WARPS = kernel.BWD_WARPS = warps
            got = (kernel.xielu_fwd(small, ap_raw, an_raw, 0.5, -1e-6), *kernel.xielu_bwd(gs, small, ap_raw, an_raw, 0.5, -1e-6))
            err = max(_rel(a, ref) for a, ref in zip(got, refs))
            fwd = _bench(lambda: kernel.xielu_fwd(x, ap_raw, an_raw, 0.5, -1e-6))
            bwd = _bench(lambda: kernel.xielu_bwd(g, x, ap_raw, an_raw, 0.5, -1e-6))
            rows.append((block, warps, fwd, bwd, err))
            print(f"BLOCK {block:>5} warps {warps:>2}: fwd {fwd:.4f} ms ({100 * copy_ms / fwd:5.1f}% of copy)  "
                  f"bwd {bwd:.4f} ms  fwd+bwd {fwd + bwd:.4f} ms = {(fwd + bwd) / floor_ms:.3f}x floor  rel err {err:.1e}", flush=True)
    best_f = min(rows, key=lambda r: r[2])
    best_b = min(rows, key=lambda r: r[3])
    print(f"best forward: BLOCK {best_f[0]} warps {best_f[1]} {best_f[2]:.4f} ms; "
          f"best backward: BLOCK {best_b[0]} warps {best_b[1]} {best_b[3]:.4f} ms; "
          f"together {best_f[2] + best_b[3]:.4f} ms = {(best_f[2] + best_b[3]) / floor_ms:.3f}x floor")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 1 << 26)
