"""Check the fused xIELU kernel targets against a kernel-suite run and print a pass/fail table.

    actbench run suites/xielu_targets.yaml        # on a GPU machine
    python scripts/xielu_targets.py results/xielu_targets

Targets (bf16): at 64M elements, triton forward >= 90% of the copy bandwidth measured in the same
trial; forward+backward <= 1.15x the 10 B/elem floor (10 bytes per element at that copy
bandwidth) and >= 2.2x faster than torch.compile; at every size, triton within 1.05x of ReLU2
compiled (forward and forward+backward). `checks` gives them to other scripts (scripts/gpu_check.py).
"""

from __future__ import annotations

import sys
from typing import NamedTuple

import pandas as pd

from actbench.results import load_rows


class Check(NamedTuple):
    key: str  # forward_pct_copy | full_over_floor | full_speedup_over_compile | vs_relu2
    name: str
    value: float
    goal: str
    ok: bool


def checks(rows: pd.DataFrame, big: int = 1 << 26) -> list[Check]:
    """The targets that bf16 kernel rows of `rows` measure (`big`: the size of the single-size targets)."""
    k = rows[(rows["kind"] == "kernel") & (rows["dtype"] == "bfloat16")]
    p50 = k.groupby(["activation", "impl", "size", "mode"])["ms_p50"].median()
    pct = k.groupby(["activation", "impl", "size", "mode"])["pct_copy"].median()
    copy_gbps = k[k["impl"] == "copy"].groupby("size")["gbps"].median()
    out: list[Check] = []
    if ("xielu", "triton", big, "forward") in pct:
        v = pct[("xielu", "triton", big, "forward")]
        out.append(Check("forward_pct_copy", f"{big:,} forward, % of copy bandwidth", v, ">= 90", v >= 90))
    if ("xielu", "triton", big, "full") in p50 and big in copy_gbps:
        floor_ms = 10 * big / (copy_gbps[big] * 1e9) * 1e3
        v = p50[("xielu", "triton", big, "full")] / floor_ms
        out.append(Check("full_over_floor", f"{big:,} fwd+bwd / 10 B-per-elem floor", v, "<= 1.15", v <= 1.15))
        if ("xielu", "compile", big, "full") in p50:
            v = p50[("xielu", "compile", big, "full")] / p50[("xielu", "triton", big, "full")]
            out.append(Check("full_speedup_over_compile", f"{big:,} fwd+bwd speed-up over torch.compile", v, ">= 2.2", v >= 2.2))
    for size in sorted(k["size"].unique()):
        for mode in ("forward", "full"):
            a, b = ("xielu", "triton", size, mode), ("relu2", "compile", size, mode)
            if a in p50 and b in p50:
                v = p50[a] / p50[b]
                out.append(Check("vs_relu2", f"{size:>11,} {mode:<7} triton xIELU / compiled ReLU2", v, "<= 1.05", v <= 1.05))
    return out


def main(results: str) -> int:
    rows = load_rows(results)
    if rows.empty:
        print(f"no kernel results under {results}")
        return 2
    found = checks(rows)
    for c in found:
        print(f"{'PASS' if c.ok else 'FAIL'}  {c.name:<48} {c.value:8.3f}  (target {c.goal})")
    if not found:
        print("no bf16 xielu triton rows: run suites/xielu_targets.yaml on a GPU")
        return 2
    return 0 if all(c.ok for c in found) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "results/xielu_targets"))
