"""scripts/gpu_check.sh --cpu: every target's line printed once, in the four-field form, none of
them claiming a GPU figure, the stages that can run on a CPU measured (interpreted), the fused
MLP's float64 check within its goal, and the packed llm_small round run at tiny sizes on a Ray told
the machine has a GPU, its trials sharing it; without Ray that line says so."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import gpu_check  # noqa: E402

CPU_UNMEASURED = {"kernel_compile", "mlp_xielu_compile", "mlp_relu2_compile"}  # torch.compile: not in CPU mode


@pytest.mark.slow  # the whole script: interpreted Triton kernels, a tiny 124M-shaped model, and 10 packed lm trials under Ray
@pytest.mark.skipif(sys.platform != "linux", reason="the wrapper is a bash script calling timeout")
def test_cpu_mode_prints_every_target_line_and_no_gpu_figure(tmp_path):
    env = {**os.environ, "PYTHON": sys.executable}
    done = subprocess.run([str(ROOT / "scripts" / "gpu_check.sh"), "--cpu"], capture_output=True, text=True, env=env, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = {}
    for line in done.stdout.splitlines()[1:]:
        target, value, goal, status = line.split(" | ")
        assert target not in lines, f"printed twice: {target}"
        lines[target] = (value, goal, status)
    for key, (target, goal) in gpu_check.TARGETS.items():
        value, printed_goal, status = lines[target]
        assert (printed_goal, status) == (goal, "unmeasured"), line
        if key in CPU_UNMEASURED:
            assert value.startswith("unmeasured: "), (key, value)
        else:
            assert value.endswith(gpu_check.CPU_NOTE), (key, value)  # measured, and says it is no GPU figure
    assert len(lines) == len(gpu_check.TARGETS)
    assert float(lines[gpu_check.TARGETS["mlp_check"][0]][0].split()[0]) <= 0.02
    packed = lines[gpu_check.TARGETS["packed"][0]][0]
    assert packed.startswith("10 lm trial(s) in ") and ", exit 0, up to " in packed and "(share 0.25)" in packed, packed
    assert int(packed.split("up to ")[1].split()[0]) > 1, packed  # trials shared the GPU at one time


def test_the_packed_round_without_ray_says_so(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails, as on a machine without it
    assert gpu_check.packed(True, tmp_path, 60) == {"packed": "Ray is not installed here, and packed trials share a GPU through Ray"}
