"""compare says where its figures need a caveat: throughput measured on GPUs shared with other
trials (packed, `env.shared_gpu`), and trials that read their training data more than once."""

from __future__ import annotations

import msgspec

from actbench.report.compare import compare_results
from actbench.results.store import ResultStore

from .synthetic import lm_record


def write(root, shared: dict[str, int], epochs: float) -> None:
    store = ResultStore(root)
    for seed in range(4):
        for act, bpb in (("relu2", 2.0), ("xielu", 1.9)):
            rec = lm_record(act, seed, bpb + seed / 100 + (0.003 * (seed % 3) if act == "xielu" else 0.0))
            rec = msgspec.structs.replace(rec, metrics={**rec.metrics, "epochs": epochs, "device": "cuda"},
                                          env={**rec.env, **({"gpu_share": 0.25, "shared_gpu": shared[act]} if act in shared else {})})
            store.append(rec)


def line(root) -> str:
    return next(x for x in compare_results(["relu2", "xielu"], root).lines["lm"] if "xielu vs relu2" in x)


def test_speed_from_shared_gpus_and_repeated_data_are_said_beside_the_verdict(tmp_path):
    write(tmp_path / "packed", {"relu2": 3, "xielu": 0}, epochs=3.66)
    text = line(tmp_path / "packed")
    assert "(from shared GPUs: 4 of these trials ran beside others on their GPU, so it is not comparable with trials that ran alone)" in text
    assert "[3.7 epochs over the training data: a verdict on repeated data is partly one on memorisation]" in text
    write(tmp_path / "alone", {}, epochs=0.91)
    text = line(tmp_path / "alone")
    assert "shared GPUs" not in text and "epochs" not in text
