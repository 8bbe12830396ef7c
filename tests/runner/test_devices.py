"""What the trials of a run share beyond their resources: on a cluster, the compile cache in the
checkpoint folder, which torch reads from the environment a trial runs with (packed GPUs:
tests/runner/test_driver.py)."""

from __future__ import annotations

from actbench.runner.devices import compile_cache_env


def test_the_compile_cache_lives_in_a_checkpoint_folder_that_is_a_path(tmp_path, monkeypatch):
    env = compile_cache_env(str(tmp_path / "ckpt"))
    root = tmp_path / "ckpt" / "compile-cache"
    assert env == {"TORCHINDUCTOR_CACHE_DIR": str(root), "TRITON_CACHE_DIR": str(root / "triton")}
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    from torch._inductor.runtime.cache_dir_utils import cache_dir, triton_cache_dir

    assert cache_dir() == str(root) and triton_cache_dir(0) == str(root / "triton")  # where inductor and Triton now write
    assert compile_cache_env(None) == {}
