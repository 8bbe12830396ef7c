"""scripts/gpu_check.sh --cpu: every target's line printed once, in the four-field form, none of
them claiming a GPU figure, the stages that can run on a CPU measured (interpreted), the fused
MLP's float64 check within its goal, and no Ray needed (an importable `ray` that refuses to load
stands in for a machine without it)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))
import gpu_check  # noqa: E402

CPU_UNMEASURED = {"kernel_compile", "mlp_xielu_compile", "mlp_relu2_compile", "packed"}  # torch.compile and llm_small: not in CPU mode


@pytest.mark.skipif(sys.platform != "linux", reason="the wrapper is a bash script calling timeout")
def test_cpu_mode_prints_every_target_line_and_no_gpu_figure(tmp_path):
    (tmp_path / "ray").mkdir()
    (tmp_path / "ray" / "__init__.py").write_text('raise ImportError("no Ray on this machine")\n')
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")])),
           "PYTHON": sys.executable}
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
