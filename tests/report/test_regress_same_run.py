"""regress --history judging the same run twice (a person reading an alert's summary again, a
retried job step): the history must not gain the night twice, and a suspect must not be
confirmed by its own copy."""

from __future__ import annotations

import numpy as np
import pytest

from actbench import api
from actbench.errors import UserError
from actbench.report import history as store

from .test_nightly_gate import _history, _night, _statuses


def test_the_same_run_judged_twice_is_one_night(tmp_path):
    rng = np.random.default_rng(1)
    _history(tmp_path, 8, rng)
    run = _night(tmp_path, "bad1", rng, slow={"relu2": 1.2})
    first = api.regress(run, history=tmp_path / "h")
    assert first.exit_code == 0 and _statuses(first)["relu2"] == "suspect"
    again = api.regress(run, history=tmp_path / "h")
    [name] = [p.name for p in (tmp_path / "h").iterdir()]
    assert [n.commit for n in store.read_nights(tmp_path / "h", name)].count("bad1") == 1
    assert again.exit_code == 0 and _statuses(again)["relu2"] == "suspect", again.markdown
    assert "already in the history (night 9)" in again.markdown and again.night.recorded_as == 8


def test_accepting_a_night_already_recorded_adds_only_its_accepted_rows(tmp_path):
    rng = np.random.default_rng(1)
    _history(tmp_path, 8, rng)
    run = _night(tmp_path, "bad1", rng, slow={"relu2": 1.2})
    api.regress(run, history=tmp_path / "h")
    accepted = api.regress(run, history=tmp_path / "h", accept=True)
    [name] = [p.name for p in (tmp_path / "h").iterdir()]
    nights = store.read_nights(tmp_path / "h", name)
    assert len((tmp_path / "h" / name).read_text().splitlines()) == 10 and len(nights) == 9  # the second line of bad1 is merged
    assert nights[-1].commit == "bad1" and nights[-1].accepted == accepted.night.accepted and len(accepted.night.accepted) == 1
    after = api.regress(_night(tmp_path, "bad2", rng, slow={"relu2": 1.2}), history=tmp_path / "h")
    assert _statuses(after)["relu2"] == "short" and after.exit_code == 0, after.markdown


def test_a_rerun_that_is_the_run_itself_is_refused(tmp_path):
    rng = np.random.default_rng(1)
    _history(tmp_path, 6, rng)
    run = _night(tmp_path, "bad1", rng, slow={"relu2": 1.2})
    with pytest.raises(UserError, match="--rerun .*the same records as the run"):
        api.regress(run, history=tmp_path / "h", rerun=run)
