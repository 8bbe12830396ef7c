"""`regress RUN --history`: the trials of a run's folders are never pooled silently (README,
Comparing: each folder's rows stay separate unless --merge)."""

from __future__ import annotations

import subprocess
import sys
import warnings

import pytest

from actbench import api
from actbench.errors import UserError
from actbench.report import history as store
from actbench.results.store import ResultStore

from .synthetic import kernel_record, lm_record


def test_a_trial_in_two_folders_of_a_run_is_not_pooled_silently(tmp_path):
    for sub, bpb, ms in (("a", 1.5, 1.0), ("b", 1.9, 3.0)):
        ResultStore(tmp_path / "run" / sub).append(lm_record("xielu", 0, bpb))
        ResultStore(tmp_path / "run" / sub).append(kernel_record("t0", "relu2", [("triton", "forward", ms, 0.005)]))
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        try:
            api.regress(str(tmp_path / "run"), history=tmp_path / "h")
        except UserError as e:
            assert str(tmp_path / "run" / "a") in str(e) and str(tmp_path / "run" / "b") in str(e), e
            return
    assert any(str(tmp_path / "run" / "a") in str(w.message) and str(tmp_path / "run" / "b") in str(w.message) for w in said), \
        [str(w.message) for w in said]
    [path] = (tmp_path / "h").iterdir()
    rows = store.read_nights(path.parent, path.name)[-1].rows
    assert all(p.n == 1 for k, p in rows.items() if k.endswith("| val_bpb")), rows


@pytest.mark.parametrize("content", ["", "not a record\n", '{"trial_id": 5}\n'])
def test_a_run_folder_with_no_record_is_bad_input(tmp_path, content):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "trials.jsonl").write_text(content)
    r = subprocess.run([sys.executable, "-m", "actbench", "regress", str(tmp_path / "run"), "--history", str(tmp_path / "h")],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "internal error" not in r.stderr and str(tmp_path / "run") in r.stderr, r.stderr
    assert not (tmp_path / "h").exists() or not any((tmp_path / "h").iterdir())
