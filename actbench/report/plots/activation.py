"""`actbench plot-activation`: f(x) and f'(x) of activations side by side."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from actbench import activations
from actbench.report.plots.base import literal, plt, save


def activation_curves(names: list[str], lo: float = -4.0, hi: float = 4.0, points: int = 801
                      ) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, str]]:
    """Per activation (x, f(x), f'(x), how f' was obtained), in float64. Gated activations are
    drawn as f([x, 1]) (the gate, value 1). f' is the module's analytic `derivative` where it has
    one (xIELU: autograd through its min(x, eps) would draw a spike to beta - alpha_n at 0),
    autograd otherwise."""
    import torch

    x = torch.linspace(lo, hi, points, dtype=torch.float64)
    curves = {}
    for name in names:
        module = activations.build(name).double()
        xi = x.clone().requires_grad_()
        inp = torch.cat([xi, torch.ones_like(xi)]) if activations.spec(name).gated else xi
        y = module(inp.reshape(1, -1)).reshape(-1)
        if callable(getattr(module, "derivative", None)):
            dy, how = module.derivative(x).detach(), "analytic"
        else:
            (dy,) = torch.autograd.grad(y.sum(), xi)
            how = "autograd"
        curves[name] = (x.numpy(), y.detach().numpy(), dy.numpy(), how)
    return curves


def activation_figure(names: list[str], lo: float = -4.0, hi: float = 4.0) -> plt.Figure:
    """f(x) and f'(x) side by side, one colour per activation, the legend in its own column."""
    curves = activation_curves(names, lo, hi)
    fig, (ax_f, ax_d, ax_legend) = plt.subplots(1, 3, figsize=(12, 4.4), gridspec_kw={"width_ratios": [1, 1, 0.32]})
    for name, (x, y, dy, how) in curves.items():
        label = literal(name) + (" (gated: f([x, 1]))" if activations.spec(name).gated else "") + (" (f' analytic)" if how == "analytic" else "")
        (line,) = ax_f.plot(x, y, label=label, lw=1.6)
        ax_d.plot(x, dy, color=line.get_color(), lw=1.6)
    fig.suptitle(f"Activation functions compared: value f(x) and slope f'(x) for x in [{lo:g}, {hi:g}]")
    ax_f.set(title="f(x)", xlabel="input x", ylabel="f(x)")
    ax_d.set(title="f'(x) = df/dx (autograd unless marked analytic)", xlabel="input x", ylabel="f'(x)")
    for ax in (ax_f, ax_d):
        ax.axhline(0, color="0.7", lw=0.8)
        ax.axvline(0, color="0.7", lw=0.8)
        ax.grid(alpha=0.3)
    # the shapes near 0 matter: clip the growth of quadratic ones, fit the negative side
    ax_f.set_ylim(max(-2.0, min(-0.5, *(float(c[1].min()) for c in curves.values())) - 0.2), 6.0)
    ax_d.set_ylim(max(-1.5, min(-0.5, *(float(c[2].min()) for c in curves.values())) - 0.2), 3.0)
    ax_legend.axis("off")
    ax_legend.legend(*ax_f.get_legend_handles_labels(), loc="center left", fontsize=8, frameon=False)
    return fig


def activation_shapes(names: list[str], path: Path, lo: float = -4.0, hi: float = 4.0) -> Path:
    """Write activation_figure as a PNG."""
    return save(activation_figure(names, lo, hi), path)
