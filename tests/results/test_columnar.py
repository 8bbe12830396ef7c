"""Many folders read from their columnar indexes are made one table in one conversion
(`actbench.results.columnar`): exactly the tables of converting each folder's own and
concatenating them with pandas (columns, order, dtypes, values, last attempts, `results_dir`),
whatever type a field has in each folder (numbers, text, true/false, null, mixed, lists, absent)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from actbench.core.record import encode
from actbench.results import frames, index
from actbench.results.frames import load_tables
from actbench.results.read import RECORDS, result_dirs

pytest.importorskip("pyarrow")

KINDS = ["int", "float", "str", "bool", "none", "mixed", "list", "absent"]


def _value(kind: str, i: int) -> object:
    return {"int": i, "float": i + 0.5, "str": f"s{i % 3}", "bool": i % 2 == 0, "none": None, "mixed": [i, "s", 0.5, None][i % 4],
            "list": [i % 2, "x"]}[kind]


def _folder(path: Path, kinds: dict[str, str], n: int, retried: bool) -> None:
    """`n` records (kernel ones with two rows each; every fifth failed), each field of its folder's
    kind (a row's list: text, as rows hold single values)."""
    lines = []
    for i in range(n):
        fields = {name: _value(kind, i) for name, kind in kinds.items() if kind != "absent"}
        ok = i % 5 != 4
        metrics = {f"m_{name}": v for name, v in fields.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        lines.append(encode({"trial_id": f"t{i % (n - 1) if retried else i}", "attempt": 1, "run_id": "r", "kind": "kernel", "suite": "s",
                             "config": {"activation": "relu2", **{f"c_{k}": v for k, v in fields.items()}}, "status": "ok" if ok else "failed",
                             "metrics": metrics if ok else {}, "rows": [{"impl": impl, **{f"r_{k}": v if not isinstance(v, list) else f"l{i}"
                                                                                          for k, v in fields.items()}}
                                                                        for impl in ("eager", "triton")] if ok else [],
                             "env": {"hostname": "h", "n": len(kinds)}}))
    path.mkdir(parents=True)
    (path / RECORDS).write_bytes(b"\n".join(lines) + b"\n")


def _each_folder(root: Path, latest_only: bool, columns) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The reference: each folder's tables converted alone (`index.folder_tables`), their last
    attempts (`frames._latest`), concatenated by pandas."""
    trials, rows = [], []
    for d in result_dirs(root):
        t, r = frames._latest(*index.folder_tables(d, columns), str(d), latest_only)
        if columns is not None:
            t, r = index.only_columns(t, set(columns[0])), index.only_columns(r, set(columns[1]))
        trials += [t] if not t.empty else []
        rows += [r] if not r.empty else []
    return tuple(pd.concat(p, ignore_index=True) if len(p) > 1 else p[0].reset_index(drop=True) if p else pd.DataFrame()
                 for p in (trials, rows))


@pytest.fixture(autouse=True)
def cache(tmp_path_factory, monkeypatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))


FOLDERS = st.lists(st.tuples(st.dictionaries(st.sampled_from(["a", "b", "c"]), st.sampled_from(KINDS), min_size=3, max_size=3),
                             st.integers(2, 6), st.booleans()), min_size=1, max_size=4)


@settings(max_examples=12, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
@given(folders=FOLDERS, latest_only=st.booleans(), some=st.booleans())
def test_folders_made_one_table_at_once_are_the_tables_converted_each_alone(tmp_path_factory, folders, latest_only, some):
    root = tmp_path_factory.mktemp("root")
    for i, (kinds, n, retried) in enumerate(folders):
        _folder(root / f"f{i}", kinds, n, retried)
    _same(root, latest_only, (["status", "c_a", "c_b", "m_c", "config", "results_dir"], ["impl", "r_a", "c_b", "r_c", "results_dir"]) if some else None)


@pytest.mark.parametrize("latest_only", [True, False])
def test_every_kind_of_field_beside_every_other_and_none(tmp_path, latest_only):
    """Each kind of field in one folder, beside each other kind, and alone beside its absence."""
    for shift in range(len(KINDS)):
        _folder(tmp_path / f"f{shift}", {kind: KINDS[(i + shift) % len(KINDS)] for i, kind in enumerate(KINDS)}, 6, shift % 2 == 1)
    _folder(tmp_path / "g_alone", {f"alone_{kind}": kind for kind in KINDS}, 4, False)
    _same(tmp_path, latest_only, None)


def _same(root: Path, latest_only: bool, columns) -> None:
    want = _each_folder(root, latest_only, columns)  # also writes every index
    got = load_tables(root, latest_only, columns)
    for a, b in zip(got, want):
        assert list(a.columns) == list(b.columns)
        pd.testing.assert_frame_equal(a, b, check_exact=True)
        for name in a.columns[a.dtypes == object]:  # None and NaN, True and 1 told apart
            assert list(map(type, a[name])) == list(map(type, b[name])), name


def test_the_json_of_all_folders_is_decoded_once(tmp_path):
    """An env, a config list recurring in many folders is one object (as within one folder)."""
    for i in range(3):
        _folder(tmp_path / f"f{i}", {"a": "list", "b": "int"}, 4, False)
    load_tables(tmp_path)  # the indexes written
    trials, rows = load_tables(tmp_path)
    assert trials["results_dir"].nunique() == 3 and len({id(e) for e in trials["env"]}) == 1
    assert len({id(v) for v in trials["c_a"]}) == 2 and len({id(c) for c in trials["config"]}) == 4  # [0, "x"], [1, "x"]; the same 4 configs in each folder
