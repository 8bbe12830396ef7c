"""Hostile and damaged regress history files (`report.history`): a night regress writes is read back
whatever the file held before it."""

from __future__ import annotations

import msgspec
import pytest

from actbench import api
from actbench.report import history as store
from actbench.results.gate import ResultsWarning
from actbench.results.store import ResultStore

from .synthetic import kernel_record


def _run(tmp_path, name: str) -> str:
    rec = kernel_record("t0", "relu2", [("triton", "forward", 1.0, 0.005)])
    ResultStore(tmp_path / name).append(msgspec.structs.replace(rec, env={**rec.env, "git_commit": name}))
    return str(tmp_path / name)


def test_a_night_appended_after_a_torn_line_is_read_back(tmp_path):
    api.regress(_run(tmp_path, "n1"), history=tmp_path / "h")
    [path] = (tmp_path / "h").iterdir()
    path.write_bytes(path.read_bytes()[:-5])  # the last night torn by a killed write
    with pytest.warns(ResultsWarning, match="skipped 1 line"):
        api.regress(_run(tmp_path, "n2"), history=tmp_path / "h")
    with pytest.warns(ResultsWarning, match="skipped 1 line"):
        assert [n.commit for n in store.read_nights(path.parent, path.name)] == ["n2"]


def test_a_history_of_many_distinct_rows_is_judged_in_seconds(tmp_path):
    import json
    import subprocess
    import sys

    run = _run(tmp_path, "n1")
    api.regress(run, history=tmp_path / "h")
    [path] = (tmp_path / "h").iterdir()
    night = {k: v for k, v in json.loads(path.read_text()).items() if k != "run"}
    with path.open("w") as f:
        for i in range(300):
            f.write(json.dumps({**night, "commit": f"c{i}", "rows": {f"k{i}-{j}": {"value": 1.0} for j in range(300)}}) + "\n")
    r = subprocess.run([sys.executable, "-m", "actbench", "regress", _run(tmp_path, "n2"), "--history", str(tmp_path / "h")],
                       capture_output=True, text=True, timeout=20)  # 2 s unloaded; 62 s before a fix
    assert r.returncode == 0, r.stderr


def test_a_night_too_long_to_read_back_is_refused_before_a_byte_is_written(tmp_path):
    """A night whose line would pass the reader's limit was written, then skipped on every read: the
    same run judged again was added again. It is refused (exit 2) and the file is left as it was."""
    from actbench.errors import UserError
    from actbench.results.gate import MAX_LINE

    api.regress(_run(tmp_path, "n1"), history=tmp_path / "h")
    [path] = (tmp_path / "h").iterdir()
    before = path.read_bytes()
    rows = {f"suite relu2 float32 {i} triton forward {'x' * 60}": store.Point(1.0 + i, 0.01, 5) for i in range(MAX_LINE // 100)}
    night = store.Night(commit="big", date="2026-12-07T00:00:00+00:00", rows=rows)
    with pytest.raises(UserError, match="more than a history line may hold"):
        store.append_night(path.parent, path.name, night)
    assert path.read_bytes() == before


def test_bpb_tolerance_zero_with_a_history_is_a_flag_error(tmp_path):
    """--bpb-tolerance 0 made the lm rows' smallest step 0, which the gate rejected with a traceback."""
    from actbench.errors import UserError

    with pytest.raises(UserError, match="--bpb-tolerance"):
        api.regress(_run(tmp_path, "n1"), history=tmp_path / "h", bpb_tolerance=0.0)
    assert not (tmp_path / "h").exists()


def test_a_night_with_a_figure_not_above_zero_is_skipped_not_judged(tmp_path):
    """Every figure a night holds is above 0 (night_rows keeps only those); a planted night whose
    val_bpb is -1.5 made the row's level (median) 0 beside tonight's 1.5, and judging divided by
    it (ZeroDivisionError, exit 1 with a traceback). It is skipped with the warning of a bad line."""
    import json

    from .synthetic import lm_record

    def lm_run(name: str) -> str:
        store = ResultStore(tmp_path / name)
        for seed in range(2):
            store.append(lm_record("xielu", seed, 1.5, run_id=name))
        return str(tmp_path / name)

    api.regress(lm_run("n1"), history=tmp_path / "h")
    [path] = (tmp_path / "h").iterdir()
    night = json.loads(path.read_text())
    night["rows"] = {k: {**p, "value": -1.5} if k.endswith("val_bpb") else p for k, p in night["rows"].items()}
    path.write_text(json.dumps({**night, "run": "planted"}) + "\n")
    with pytest.warns(ResultsWarning, match="skipped 1 line"):
        assert api.regress(lm_run("n2"), history=tmp_path / "h").exit_code == 0
