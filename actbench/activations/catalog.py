"""The built-in activations: name, class (by import path), family, gated, trainable parameters,
paper, extra implementations (`triton`: an elementwise kernel; `fused`: the activation inside its
MLP's matmuls, `actbench.kernels.fused_mlp`). Plain data, declared here rather than by decorators so that the
registry is known without importing torch; the formula of each is its class docstring."""

from __future__ import annotations

XIELU_PAPER = "arXiv:2411.13010"
GLU_PAPER = "arXiv:2002.05202"


def _a(name: str, target: str, family: str, paper: str, *, gated: bool = False, params: tuple[str, ...] = (),
       impls: dict[str, str] | None = None, availability: dict[str, str] | None = None,
       quick_availability: dict[str, str] | None = None) -> dict[str, object]:
    return {"name": name, "target": f"actbench.activations.{target}", "family": family, "gated": gated, "params": params,
            "paper": paper, "impls": dict(impls or {}), "availability": dict(availability or {}),
            "quick_availability": dict(quick_availability or {})}


BUILTINS = [
    _a("xielu", "xielu:XIELU", "xielu", XIELU_PAPER, params=("alpha_p_raw", "alpha_n_raw"),
       impls={"triton": "actbench.kernels.xielu:XIELUTriton", "fused": "actbench.kernels.fused_mlp:FusedXIELU"},
       availability={"triton": "actbench.kernels.xielu:unavailable_reason", "fused": "actbench.kernels.fused_mlp:unavailable_reason"},
       quick_availability={"triton": "actbench.kernels:unavailable_reason", "fused": "actbench.kernels:unavailable_reason"}),
    _a("xiprelu", "xielu:XIPReLU", "xielu", XIELU_PAPER + " (v3)", params=("alpha_p_raw", "alpha_n_raw")),
    _a("xsilu", "xielu:XSiLU", "xielu", XIELU_PAPER, params=("a",)),
    _a("relu", "relu:ReLU", "relu", "Nair & Hinton, ICML 2010"),
    _a("relu2", "relu:ReLU2", "relu", "arXiv:2109.08668", impls={"fused": "actbench.kernels.fused_mlp:FusedReLU2"},
       availability={"fused": "actbench.kernels.fused_mlp:unavailable_reason"},
       quick_availability={"fused": "actbench.kernels:unavailable_reason"}),
    _a("leaky_relu2", "relu:LeakyReLU2", "relu", "modded-nanogpt speedrun (community)"),
    _a("leaky_relu", "relu:LeakyReLU", "relu", "Maas et al., ICML 2013"),
    _a("prelu", "relu:PReLU", "relu", "arXiv:1502.01852", params=("a",)),
    _a("elu", "relu:ELU", "relu", "arXiv:1511.07289"),
    _a("helu", "relu:HeLU", "relu", "Kimhi et al., Hysteresis Activation Function for Efficient Inference, 2024"),
    _a("smelu", "relu:SmeLU", "relu", "arXiv:2010.09458"),
    _a("gelu", "smooth:GELU", "smooth", "arXiv:1606.08415"),
    _a("gelu_tanh", "smooth:GELUTanh", "smooth", "arXiv:1606.08415"),
    _a("silu", "smooth:SiLU", "smooth", "arXiv:1702.03118"),
    _a("swish", "smooth:Swish", "smooth", "arXiv:1710.05941", params=("beta",)),
    _a("mish", "smooth:Mish", "smooth", "arXiv:1908.08681"),
    _a("golu", "smooth:GoLU", "smooth", "arXiv:2502.03654"),
    _a("sau", "smooth:SAU", "smooth", "arXiv:2109.13210"),
    _a("velu", "smooth:VeLU", "smooth", "Shakarami et al., VeLU: Variance-enhanced Learning Unit, 2025"),
    _a("swiglu", "glu:SwiGLU", "glu", GLU_PAPER, gated=True),
    _a("geglu", "glu:GeGLU", "glu", GLU_PAPER, gated=True),
    _a("reglu", "glu:ReGLU", "glu", GLU_PAPER, gated=True),
]
