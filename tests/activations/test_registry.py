"""The registry: names, did-you-mean errors, impls, plugins (flag and entry point), and the CLI's
list / info / --version."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from actbench import activations
from actbench.errors import UserError


def test_unknown_activation_lists_closest_names():
    with pytest.raises(UserError, match=r"unknown activation 'xielo' \(did you mean 'xielu'"):
        activations.build("xielo")
    with pytest.raises(UserError, match="has no implementation 'triton'"):
        activations.build("relu", impl="triton")


def test_auto_impl_is_eager_without_cuda():
    if torch.cuda.is_available():
        assert activations.resolve_impl("xielu", "auto") == "triton"
    else:
        assert activations.resolve_impl("xielu", "auto") == "eager"
    assert activations.resolve_impl("relu2", "auto") == "eager"


def test_register_rejects_a_second_class_under_the_same_name():
    with pytest.raises(ValueError, match="already registered"):

        @activations.register("relu", family="relu")
        class Other(torch.nn.Module):
            pass


PLUGIN = """
import torch
from actbench.activations import register

@register("cube_plugin", family="plugin", paper="none")
class Cube(torch.nn.Module):
    \"\"\"f(x) = x^3\"\"\"
    def forward(self, x):
        return x ** 3
"""


def _cli(args, cwd, pythonpath):
    env = {"PYTHONPATH": str(pythonpath), "PATH": "/usr/bin:/bin", "COLUMNS": "200"}
    return subprocess.run([sys.executable, "-c", "from actbench.cli import main; main()", *args],
                          capture_output=True, text=True, cwd=cwd, env=env, timeout=120)


def test_plugin_via_cli_flag(tmp_path):
    (tmp_path / "my_acts.py").write_text(PLUGIN)
    r = _cli(["--plugin", "my_acts", "info", "cube_plugin"], tmp_path, tmp_path)
    assert r.returncode == 0, r.stderr
    assert "x^3" in r.stdout
    r = _cli(["info", "cube_plugin"], tmp_path, tmp_path)
    assert r.returncode == 2 and "unknown activation 'cube_plugin'" in r.stderr
    assert "Traceback" not in r.stderr


def test_plugin_via_entry_point(tmp_path):
    (tmp_path / "ep_acts.py").write_text(PLUGIN)
    dist = tmp_path / "ep_acts-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: ep-acts\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[actbench.activations]\ncube = ep_acts\n")
    r = _cli(["list"], tmp_path, tmp_path)
    assert r.returncode == 0, r.stderr
    assert "cube_plugin" in r.stdout


def test_cli_list_info_version_and_bad_arguments(tmp_path):
    r = _cli(["list"], tmp_path, "")
    assert r.returncode == 0 and "xielu" in r.stdout and "swiglu" in r.stdout
    r = _cli(["--version"], tmp_path, "")
    assert r.returncode == 0 and r.stdout.startswith("actbench ")
    for bad in (["lisst"], ["info"], ["info", "xielu", "--nope"], ["--plugin", "no.such.module", "list"]):
        r = _cli(bad, tmp_path, "")
        assert r.returncode == 2, (bad, r.stdout, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    for cmd in ([], ["list"], ["info"]):
        assert _cli([*cmd, "--help"], tmp_path, "").returncode == 0


def test_a_triton_that_does_not_import_is_unavailable_to_trials_but_info_does_not_import_it(tmp_path):
    """Choosing an impl imports triton (an install that cannot be imported makes auto fall back,
    not fail); `info`'s quick check only asks whether triton is installed."""
    fake = tmp_path / "triton"
    fake.mkdir()
    (fake / "__init__.py").write_text("raise ImportError('broken install')\n")
    code = ("import sys\nfrom actbench import activations\ns = activations.spec('xielu')\n"
            "print(repr(s.unavailable_reason('triton')), repr(s.unavailable_reason('triton', quick=True)), 'triton' in sys.modules)")
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "TRITON_INTERPRET": "1"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["'triton", "is", "not", "importable", "(broken", "install)'", "None", "False"]
