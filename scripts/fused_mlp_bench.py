"""The fused MLP (impl `fused`) against the unfused MLP and torch.compile, after a float64 check.

    python scripts/fused_mlp_bench.py                 # on a GPU: the 124M model's MLP, bf16 autocast
    TRITON_INTERPRET=1 python scripts/fused_mlp_bench.py --tiny --no-compile    # on CPU, interpreted

`check`: the fused MLP's y, dx, dW_up, dW_down and xIELU's two alpha gradients against the
registry's activation in float64 (its analytic derivative for dx, autograd for the alphas), at a
small shape that spans several tiles: the worst |error| / max |reference| of each.
`bench`: forward + backward of one lm MLP (`actbench.lm.model.MLP`: fp32 weights, bf16 autocast
on a GPU, as training runs it) on a (rows, d_model) input, for each of: `fused`; `unfused`, the
registry's choice on this device (xIELU's elementwise Triton kernel on a GPU, eager otherwise);
`compile`, the eager MLP under torch.compile. GPU: triton.testing.do_bench, median ms; CPU: the
median of a few timed calls.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from actbench import activations
from actbench.lm.model import MLP
from actbench.lm.shapes import ModelConfig

ACTS = ("xielu", "relu2")
GPT2_MLP = dict(rows=32 * 1024, d_model=768, d_ff=3072)  # scripts/lm_throughput.py's 124M model, one micro-batch
TINY_MLP = dict(rows=64, d_model=32, d_ff=128)
ALPHAS = {"xielu": dict(alpha_p=0.6, alpha_n=1.1), "relu2": {}}


def check(act: str, dtype: torch.dtype, device: torch.device, rows: int = 70, d_model: int = 48, d_ff: int = 200) -> dict[str, float]:
    """Worst |error| / max |reference| of each fused output and gradient, against float64."""
    gen = torch.Generator().manual_seed(0)
    x, dy = (torch.randn(rows, d_model, generator=gen, dtype=torch.float64).to(dtype).double() for _ in range(2))
    w_up = (torch.randn(d_ff, d_model, generator=gen, dtype=torch.float64) * 0.3).to(dtype).double()
    w_down = (torch.randn(d_model, d_ff, generator=gen, dtype=torch.float64) * 0.1).to(dtype).double()
    ref_act = activations.build(act, **ALPHAS[act]).double()
    pre = F.linear(x, w_up)
    post = ref_act.formula(pre)
    dpost = dy @ w_down
    p = pre.detach().requires_grad_()
    dpre = dpost * ref_act.derivative(pre).detach() if act == "xielu" else torch.autograd.grad(ref_act.formula(p), p, dpost)[0]
    ref = {"y": F.linear(post, w_down).detach(), "dx": dpre @ w_up, "dW_up": dpre.t() @ x, "dW_down": dy.t() @ post.detach()}
    if act == "xielu":
        ref.update(zip(("dalpha_p", "dalpha_n"), torch.autograd.grad(post, (ref_act.alpha_p_raw, ref_act.alpha_n_raw), dpost)))

    fused = activations.build(act, impl="fused", **ALPHAS[act]).to(device)
    xd, wu, wd = (t.to(device, dtype).requires_grad_() for t in (x, w_up, w_down))
    y = fused.mlp(xd, wu, wd)
    y.backward(dy.to(device, dtype))
    got = {"y": y, "dx": xd.grad, "dW_up": wu.grad, "dW_down": wd.grad}
    if act == "xielu":
        got.update(dalpha_p=fused.alpha_p_raw.grad, dalpha_n=fused.alpha_n_raw.grad)
    return {k: float((got[k].detach().cpu().double() - r).abs().max() / r.abs().max()) for k, r in ref.items()}


def _time_ms(fn: Callable[[], None], device: torch.device, repeats: int) -> float:
    if device.type == "cuda":
        import triton.testing

        return float(triton.testing.do_bench(fn, return_mode="median"))
    fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times)


def bench(act: str, device: torch.device, rows: int, d_model: int, d_ff: int, compile_mlp: bool = True, repeats: int = 5) -> dict[str, float]:
    """Forward + backward ms of the MLP as `fused`, `unfused` and (with `compile_mlp`) `compile`
    (`repeats`: timed calls on a CPU)."""
    gen = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(rows, d_model, device=device, generator=gen).requires_grad_()
    cuda = device.type == "cuda"
    grad = torch.randn(rows, d_model, device=device, generator=gen, dtype=torch.bfloat16 if cuda else torch.float32)
    unfused = activations.resolve_impl(act, "auto", device.type)
    contenders = {"fused": ("fused", False), "unfused": (unfused, False)}
    if compile_mlp:
        contenders["compile"] = ("eager", True)
    out = {}
    for name, (impl, compiled) in contenders.items():
        mlp = MLP(ModelConfig(d_model=d_model, d_ff=d_ff, activation=act, impl=impl)).to(device)
        step = torch.compile(mlp) if compiled else mlp

        def fwd_bwd() -> None:
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=cuda):
                y = step(x)
            y.backward(grad)

        out[name] = _time_ms(fwd_bwd, device, repeats)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help=f"a tiny MLP {TINY_MLP} instead of the 124M model's {GPT2_MLP}")
    parser.add_argument("--no-compile", action="store_true", help="leave out the torch.compile contender")
    args = parser.parse_args()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    shape = TINY_MLP if args.tiny else GPT2_MLP
    for act in ACTS:
        errs = check(act, dtype, device)
        print(f"{act} fused vs float64 ({dtype}): " + ", ".join(f"{k} {v:.1e}" for k, v in errs.items()), flush=True)
        ms = bench(act, device, **shape, compile_mlp=not args.no_compile)
        print(f"{act} fwd+bwd {shape}: " + ", ".join(f"{k} {v:.3f} ms" for k, v in ms.items())
              + "".join(f"; fused / {k} {ms['fused'] / v:.3f}x" for k, v in ms.items() if k != "fused"), flush=True)


if __name__ == "__main__":
    main()
