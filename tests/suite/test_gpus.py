"""`resources.gpus: auto`: each trial's share of a GPU sized from its memory (the estimate, or a
peak an earlier run measured), so that the trials packed on one GPU fit in it together."""

from __future__ import annotations

import pytest

from actbench.core.record import Record
from actbench.core.resources import Resources
from actbench.lm.config import LMConfig
from actbench.suite import load_suite
from actbench.suite.gpus import ASSUMED_GPU_BYTES, CONTEXT_BYTES, ESTIMATE_MARGIN, PEAK_MARGIN, share
from tests.suite.test_boundary import lm_suite, refused

GIB = float(2**30)
AUTO = "resources:\n  gpus: auto\n"


@pytest.mark.parametrize("need_gib,device_gib,expected", [
    (10, 80, 0.125), (10.01, 80, 0.25), (20, 80, 0.25), (20.01, 80, 0.5), (40, 80, 0.5), (40.01, 80, 1.0), (200, 80, 1.0), (0.001, 80, 0.125),
])
def test_the_share_is_the_smallest_whose_trials_all_fit(need_gib, device_gib, expected):
    assert share(need_gib * GIB, device_gib * GIB) == expected
    assert expected == 1.0 or need_gib / expected <= device_gib  # every trial packed on the GPU fits in it


def _largest_need(suite_path, overrides) -> float:
    """What auto must size for, computed here from each trial's own LMConfig (the estimate, with its margin)."""
    suite = load_suite(suite_path, {**overrides, "resources.gpus": 1}, check_paths=False)
    return max(CONTEXT_BYTES + ESTIMATE_MARGIN * LMConfig.model_validate(t.config_dict()).memory(Resources(gpus=1)).total
               for t in suite.trials)


@pytest.mark.parametrize("batch_size,expected", [(32, 0.125), (256, 0.5), (768, 1.0)])
def test_llm_small_is_packed_as_its_largest_trial_allows(batch_size, expected):
    overrides = {"batch_size": batch_size, "resources.gpus": "auto"}
    suite = load_suite("suites/llm_small.yaml", overrides, check_paths=False)
    need = _largest_need("suites/llm_small.yaml", {"batch_size": batch_size})
    assert share(need, ASSUMED_GPU_BYTES) == expected == suite.spec.resources.gpus
    assert {t.resources.gpus for t in suite.trials} == {expected} and suite.spec.gpus_auto
    assert suite.gpu_note.startswith(f"resources.gpus: auto: {expected:g} ({int(1 / expected)} trial(s) per GPU)")
    assert "an 80 GB GPU assumed (this machine sees none)" in suite.gpu_note
    resized = suite.sized()
    assert resized.spec.resources.gpus == expected and resized.spec.gpus_auto  # sized again (with records), from the estimate again


def _peaks(suite, mb: float, status: str = "ok", **change) -> list[Record]:
    """A record of each of the suite's trials (its config changed by `change`) that measured a GPU peak of `mb` MiB."""
    return [Record(trial_id=t.id, status=status, kind="lm", config={**t.config_dict(), **change}, metrics={"peak_mem_mb": mb, "device": "cuda"})
            for t in suite.trials]


def test_a_measured_peak_of_the_same_shape_can_only_raise_the_need(tmp_path):
    suite = load_suite(lm_suite(tmp_path, rest=AUTO), check_paths=False)
    assert suite.spec.resources.gpus == 0.125
    big = (ASSUMED_GPU_BYTES / 2 - CONTEXT_BYTES) / PEAK_MARGIN / 2**20  # a peak that lets two fit, not four
    sized = suite.sized(_peaks(suite, big))
    assert sized.spec.resources.gpus == 0.5 and "a measured peak of" in sized.gpu_note
    assert {t.resources.gpus for t in sized.trials} == {0.5}
    assert suite.sized(_peaks(suite, big)[:1]).spec.resources.gpus == 0.5  # one trial's peak sizes the share of all
    large = load_suite(lm_suite(tmp_path, "batch_size: 27000\ntokens: 3456000\n", AUTO), check_paths=False)
    est = max(LMConfig.model_validate(t.config_dict()).memory(Resources(gpus=1)).total for t in large.trials)
    assert large.spec.resources.gpus == share(CONTEXT_BYTES + ESTIMATE_MARGIN * est, ASSUMED_GPU_BYTES) == 0.5
    for low in (1.0, est / ESTIMATE_MARGIN / 2**20):  # a planted tiny peak, or one just below the estimate's cover: no more packed than no record
        planted = large.sized(_peaks(large, low))
        assert planted.spec.resources.gpus == large.spec.resources.gpus == 0.5
        assert "the estimate of" in planted.gpu_note and "x 1.75, above" in planted.gpu_note and "x 1.25 measured" in planted.gpu_note
    assert suite.sized(_peaks(suite, big, d_model=64)).spec.resources.gpus == 0.125  # another shape's peak says nothing of these
    assert suite.sized(_peaks(suite, big, status="failed")).spec.resources.gpus == 0.125
    assert suite.sized(_peaks(suite, big, impl="fused")).spec.resources.gpus == 0.5  # the implementation that ran changes no shape


@pytest.mark.parametrize("defaults,rest,pattern", [
    ("", "kind_is_probe", r"resources\.gpus: auto sizes each trial's share of a GPU from its memory estimate, and kind 'probe' has none"),
    ("device: cpu\n", AUTO, r"resources\.gpus: auto sizes a share of a GPU, and this suite's trials run on the CPU"),
    ("", "resources:\n  gpus: auto\n  workers: 2\n", r"resources: gpus is for a trial of one process; with workers, set gpus_per_worker"),
    ("", "resources:\n  gpus: autox\n", r"resources\.gpus: Input should be a valid number"),
])
def test_auto_is_refused_where_it_cannot_size_a_share(tmp_path, monkeypatch, capsys, defaults, rest, pattern):
    if rest == "kind_is_probe":
        path = tmp_path / "x.yaml"
        path.write_text("name: t\nkind: probe\nmatrix:\n  tag: [a]\n" + AUTO)
    else:
        path = lm_suite(tmp_path, defaults, rest)
    refused(monkeypatch, capsys, path, pattern)


@pytest.mark.parametrize("rest,field", [("", "gpus"), ("resources:\n  gpus: 0\n", "gpus"),
                                        ("resources:\n  workers: 2\n  gpus_per_worker: 0\n", "gpus_per_worker")])
def test_a_gpu_device_without_a_gpu_is_refused_naming_the_resource(tmp_path, monkeypatch, capsys, rest, field):
    refused(monkeypatch, capsys, lm_suite(tmp_path, "device: cuda\n", rest),
            rf"resources\.{field}: 0 with device: cuda: the trial would hold no GPU \(under Ray it sees none\)")


@pytest.mark.parametrize("defaults,rest", [("device: cuda\n", "resources:\n  gpus: 0.25\n"), ("device: cuda\n", AUTO), ("device: cpu\n", ""),
                                           ("", "")])
def test_a_gpu_device_with_a_gpu_or_a_cpu_device_loads(tmp_path, defaults, rest):
    assert load_suite(lm_suite(tmp_path, defaults, rest), check_paths=False).trials
