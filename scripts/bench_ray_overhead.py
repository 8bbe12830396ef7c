"""What the default Ray executor costs per lm trial against the inline executor.

Runs a 1-trial lm suite (llm_tiny's ReLU² model, `--steps` optimizer steps, seed 0, final
evaluation on the periodic slice) through the
runner in a fresh process per run, inline and Ray interleaved `--repeats` times, and prints where
the time goes, as seen by the driver:

  imports     python start to actbench's runner imported (the CLI's own imports)
  executor    creating the executor (ray.init for Ray; nothing inline)
  to start    submission to the trial's own start (Ray: worker start, imports, task dispatch)
  trial       the trial's own wall time (started_at .. ended_at, as its record says)
  to driver   the trial's end to its outcome recorded by the driver
  shutdown    executor shutdown (ray.shutdown)
  total       python start to the end of the sweep
and the trial's tokens/s. Overhead = total - trial; the line `ray - inline` compares medians.

    python scripts/bench_ray_overhead.py --repeats 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = """\
import time
T0 = {t0!r}
import json, sys
from pathlib import Path
from actbench import api
from actbench.suite import load_suite, parse_overrides
from rich.console import Console
t_import = time.time()
suite = load_suite(Path({suite!r}), parse_overrides({sets!r}))
ex = api.make_executor({executor!r})
t_exec = time.time()
submitted = {{}}
real_submit = ex.submit
def submit(trial, ckpt):
    submitted[trial.id] = time.time()
    return real_submit(trial, ckpt)
ex.submit = submit
try:
    result = api.run(suite, out=Path({out!r}), executor=ex, console=Console(file=open("/dev/null", "w")))
finally:
    t_done = time.time()
    ex.shutdown()
t_end = time.time()
(rec,) = result.records
print(json.dumps({{"t0": T0, "import": t_import, "exec": t_exec, "submit": submitted[rec.trial_id], "start": rec.started_at,
                  "end": rec.ended_at, "done": t_done, "shutdown": t_end, "status": rec.status,
                  "tokens_per_s": rec.metrics.get("tokens_per_s"), "impl": rec.metrics.get("impl_used")}}))
"""

PHASES = [("imports", "t0", "import"), ("executor", "import", "exec"), ("to start", "submit", "start"), ("trial", "start", "end"),
          ("to driver", "end", "done"), ("shutdown", "done", "shutdown"), ("total", "t0", "shutdown")]


def run_once(executor: str, steps: int, folder: Path) -> dict[str, float]:
    sets = ["activation=relu2", "seed=0", f"tokens={steps * 2048}", f"eval_every={max(1, steps // 2)}", f"checkpoint_every={max(1, steps // 2)}",
            "final_eval=slice"]
    code = CHILD.format(t0=time.time(), suite=str(Path(__file__).resolve().parent.parent / "suites" / "llm_tiny.yaml"), sets=sets,
                        executor=executor, out=str(folder))
    r = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(f"{executor} run failed:\n{r.stderr[-3000:]}")
    t = json.loads(r.stdout.strip().splitlines()[-1])
    if t["status"] != "ok":
        raise SystemExit(f"{executor} trial ended {t['status']}")
    return {**{name: t[b] - t[a] for name, a, b in PHASES}, "tokens/s": t["tokens_per_s"] or float("nan")}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--steps", type=int, default=30, help="Optimizer steps of the trial (2048 tokens each).")
    args = ap.parse_args()
    cols = [name for name, _, _ in PHASES] + ["tokens/s"]
    print(f"{'executor':>9} " + " ".join(f"{c:>10}" for c in cols) + "   (seconds; overhead = total - trial)")
    got: dict[str, list[dict[str, float]]] = {"inline": [], "ray": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeats):
            for executor in ("inline", "ray"):
                t = run_once(executor, args.steps, Path(tmp) / f"{executor}{i}")
                got[executor].append(t)
                print(f"{executor:>9} " + " ".join(f"{t[c]:>10.2f}" if c != "tokens/s" else f"{t[c]:>10.0f}" for c in cols)
                      + f"   overhead {t['total'] - t['trial']:.2f}", flush=True)
    med = {ex: {c: statistics.median(t[c] for t in runs) for c in cols} for ex, runs in got.items()}
    for ex in ("inline", "ray"):
        m = med[ex]
        print(f"{'median ' + ex:>16}: total {m['total']:.2f} s, trial {m['trial']:.2f} s, overhead {m['total'] - m['trial']:.2f} s, "
              f"{m['tokens/s']:.0f} tokens/s")
    d = {c: med["ray"][c] - med["inline"][c] for c in cols}
    print(f"{'ray - inline':>16}: total {d['total']:+.2f} s (" + ", ".join(f"{c} {d[c]:+.2f}" for c, _, _ in PHASES[:-1]) + ")")


if __name__ == "__main__":
    main()
