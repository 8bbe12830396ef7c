"""Check the fused xIELU kernel targets against a kernel-suite run and print a pass/fail table.

    actbench run suites/xielu_targets.yaml        # on a GPU machine
    python scripts/xielu_targets.py results/xielu_targets

Targets (bf16): at 64M elements, triton forward >= 90% of the copy bandwidth measured in the same
trial; forward+backward <= 1.15x the 10 B/elem floor (10 bytes per element at that copy
bandwidth) and >= 2.2x faster than torch.compile; at every size, triton within 1.05x of ReLU2
compiled (forward and forward+backward).
"""

from __future__ import annotations

import sys

from actbench.results import load_rows


def main(results: str) -> int:
    rows = load_rows(results)
    if rows.empty:
        print(f"no kernel results under {results}")
        return 2
    k = rows[(rows["kind"] == "kernel") & (rows["dtype"] == "bfloat16")]
    p50 = k.groupby(["activation", "impl", "size", "mode"])["ms_p50"].median()
    pct = k.groupby(["activation", "impl", "size", "mode"])["pct_copy"].median()
    copy_gbps = k[k["impl"] == "copy"].groupby("size")["gbps"].median()
    checks: list[tuple[str, float, str, bool]] = []
    big = 1 << 26
    if ("xielu", "triton", big, "forward") in pct:
        v = pct[("xielu", "triton", big, "forward")]
        checks.append(("64M forward, % of copy bandwidth", v, ">= 90", v >= 90))
    if ("xielu", "triton", big, "full") in p50 and big in copy_gbps:
        floor_ms = 10 * big / (copy_gbps[big] * 1e9) * 1e3
        v = p50[("xielu", "triton", big, "full")] / floor_ms
        checks.append(("64M fwd+bwd / 10 B-per-elem floor", v, "<= 1.15", v <= 1.15))
        if ("xielu", "compile", big, "full") in p50:
            v = p50[("xielu", "compile", big, "full")] / p50[("xielu", "triton", big, "full")]
            checks.append(("64M fwd+bwd speed-up over torch.compile", v, ">= 2.2", v >= 2.2))
    for size in sorted(k["size"].unique()):
        for mode in ("forward", "full"):
            a, b = ("xielu", "triton", size, mode), ("relu2", "compile", size, mode)
            if a in p50 and b in p50:
                v = p50[a] / p50[b]
                checks.append((f"{size:>11,} {mode:<7} triton xIELU / compiled ReLU2", v, "<= 1.05", v <= 1.05))
    for name, value, target, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {name:<48} {value:8.3f}  (target {target})")
    if not checks:
        print("no bf16 xielu triton rows: run suites/xielu_targets.yaml on a GPU")
        return 2
    return 0 if all(ok for *_, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "results/xielu_targets"))
