"""The append-only results store, the environment fingerprint, and loading into pandas.

Layout of a results folder (only the driver writes it):
    trials.jsonl            one JSON record per finished trial attempt, flushed and fsynced
    series/<trial_id>.json  large per-step series (loss curves, alpha traces)
    errors/<trial_id>.<attempt>.txt   tracebacks of failed attempts
A torn last line (a crash mid-write) is skipped on read and newline-terminated before the next
append, so no later record is lost.
"""

from __future__ import annotations

import json
import os
import platform
import socket
import subprocess
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

import pandas as pd

import actbench

RECORDS = "trials.jsonl"
OK = "ok"


class ResultStore:
    """Append-only store of trial records under one folder."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.path = self.root / RECORDS

    def append(self, record: dict[str, Any], series: dict[str, Any] | None = None, traceback: str | None = None) -> dict[str, Any]:
        """Write side files first, then the record line (flushed and fsynced). Returns the record."""
        self.root.mkdir(parents=True, exist_ok=True)
        tid, attempt = record["trial_id"], record["attempt"]
        if series:
            record["series_file"] = self._write_side(f"series/{tid}.json", json.dumps(series))
        if traceback:
            record.setdefault("error", {})["traceback_file"] = self._write_side(f"errors/{tid}.{attempt}.txt", traceback)
        line = json.dumps(record, default=_json_default, allow_nan=True) + "\n"
        with open(self.path, "a+b") as f:
            f.seek(0, os.SEEK_END)
            if f.tell() > 0:
                f.seek(-1, os.SEEK_END)
                if f.read(1) != b"\n":  # a torn line from a crash: terminate it, keep ours whole
                    f.write(b"\n")
            f.write(line.encode())
            f.flush()
            os.fsync(f.fileno())
        return record

    def _write_side(self, rel: str, text: str) -> str:
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        tmp = p.with_suffix(p.suffix + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, p)
        return rel

    def records(self) -> list[dict[str, Any]]:
        return list(iter_records(self.path))

    def successful_ids(self) -> set[str]:
        return {r["trial_id"] for r in self.records() if r.get("status") == OK}

    def attempts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in self.records():
            counts[r["trial_id"]] = counts.get(r["trial_id"], 0) + 1
        return counts

    def series(self, record: dict[str, Any]) -> dict[str, Any]:
        rel = record.get("series_file")
        return json.loads((self.root / rel).read_text()) if rel else {}


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def iter_records(path: Path) -> Iterator[dict[str, Any]]:
    """Records of one trials.jsonl; torn or corrupt lines are skipped with a warning."""
    if not path.exists():
        return
    with open(path, "rb") as f:
        lines = f.read().split(b"\n")
    for i, raw in enumerate(lines):
        if not raw.strip():
            continue
        try:
            yield json.loads(raw)
        except json.JSONDecodeError:
            if i < len(lines) - 1 and any(x.strip() for x in lines[i + 1 :]):
                warnings.warn(f"{path}:{i + 1}: skipping a torn record (an earlier crash mid-write)", stacklevel=2)


def result_dirs(root: str | Path) -> list[Path]:
    """Every folder at or below `root` that holds a trials.jsonl."""
    root = Path(root)
    return sorted({p.parent for p in root.rglob(RECORDS)}) if root.exists() else []


def gpu_name(record: dict[str, Any]) -> str:
    """The GPU model a record ran on; "cpu" for CPU runs."""
    return (record.get("env") or {}).get("gpu_name") or "cpu"


def latest_records(root: str | Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """(results folder, record) for the last attempt of every trial id in each folder below root."""
    for d in result_dirs(root):
        latest: dict[str, dict[str, Any]] = {}
        for r in iter_records(d / RECORDS):
            latest[r["trial_id"]] = r
        for r in latest.values():
            yield d, r


def load(path: str | Path, latest_only: bool = True) -> pd.DataFrame:
    """Records under `path` (a results folder or a folder of them) as one flat DataFrame.

    One column per config field (`activation`, `size`, ...) and per metric (`metric.<name>`),
    plus `gpu_name` ("cpu" for CPU runs) and `hostname`;
    with `latest_only`, the last attempt of each (results folder, trial id) is kept.
    """
    frames = []
    for d in result_dirs(path):
        recs = list(iter_records(d / RECORDS))
        if not recs:
            continue
        rows = []
        for r in recs:
            row = {k: v for k, v in r.items() if k not in ("config", "metrics", "rows", "env", "error")}
            row.update(r.get("config", {}))
            row.update({f"metric.{k}": v for k, v in (r.get("metrics") or {}).items()})
            err = r.get("error") or {}
            row["error_type"], row["error_message"] = err.get("type"), err.get("message")
            row["gpu_name"], row["hostname"] = gpu_name(r), (r.get("env") or {}).get("hostname")
            row["results_dir"] = str(d)
            rows.append(row)
        frames.append(pd.DataFrame(rows))
    if not frames:
        return pd.DataFrame()
    df = pd.concat(frames, ignore_index=True)
    if latest_only:
        df = df.drop_duplicates(subset=["results_dir", "trial_id"], keep="last").reset_index(drop=True)
    return df


SERIES_COLUMNS = ["trial_id", "table", "step", "layer", "metric", "value"]


def series(path: str | Path) -> pd.DataFrame:
    """Per-step series of the latest attempt of every trial under `path` (a results folder or a
    folder of them; or one series JSON file) as one long DataFrame with columns trial_id, table,
    step, layer (NaN where the table has none), metric, value. Only tables of named columns with
    a `step` column are read (train, val, alphas); files or tables of another shape are skipped."""
    path = Path(path)
    if path.is_file():
        sources = [(path.stem, path)]
    else:
        sources = [(r["trial_id"], d / r["series_file"]) for d, r in latest_records(path) if isinstance(r.get("series_file"), str)]
    frames = []
    for trial_id, file in sources:
        try:
            tables = json.loads(file.read_text())
        except (OSError, ValueError) as e:
            warnings.warn(f"{file}: skipping unreadable series ({e})", stacklevel=2)
            continue
        for name, table in (tables.items() if isinstance(tables, dict) else ()):
            if not isinstance(table, dict) or not isinstance(table.get("step"), list):
                continue
            cols = {k: v for k, v in table.items() if isinstance(v, list) and len(v) == len(table["step"])}
            keys = [k for k in ("step", "layer") if k in cols]
            wide = pd.DataFrame(cols)
            long = wide.melt(id_vars=keys, var_name="metric", value_name="value")
            long["value"] = pd.to_numeric(long["value"], errors="coerce")
            frames.append(long.assign(trial_id=trial_id, table=name))
    if not frames:
        return pd.DataFrame(columns=SERIES_COLUMNS)
    return pd.concat(frames, ignore_index=True).reindex(columns=SERIES_COLUMNS)


def load_rows(path: str | Path) -> pd.DataFrame:
    """Long-format measurement rows (kernel and memory kinds) joined with their trial config."""
    out = []
    for d, r in latest_records(path):
        if r.get("status") != OK:
            continue
        base = {"trial_id": r["trial_id"], "suite": r.get("suite"), "kind": r.get("kind"), **r.get("config", {}),
                "gpu_name": gpu_name(r), "results_dir": str(d)}
        out.extend({**base, **row} for row in r.get("rows") or [])
    return pd.DataFrame(out)


@lru_cache(maxsize=1)
def fingerprint() -> dict[str, Any]:
    """Where a trial ran: host, GPU, driver/CUDA, library versions, git commit of a checkout."""
    import torch

    env: dict[str, Any] = {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "actbench": actbench.__version__,
        "gpu_name": None,
        "gpu_count": 0,
        "cuda": torch.version.cuda,
        "driver": None,
        "git_commit": _git_commit(),
    }
    for mod in ("triton", "ray"):
        try:
            env[mod] = __import__(mod).__version__
        except ImportError:
            env[mod] = None
    if torch.cuda.is_available():
        env["gpu_name"] = torch.cuda.get_device_name(0)
        env["gpu_count"] = torch.cuda.device_count()
        try:
            env["driver"] = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True, text=True, timeout=10,
            ).stdout.strip().splitlines()[0]
        except (OSError, IndexError, subprocess.SubprocessError):
            env["driver"] = None
    return env


def _git_commit() -> str | None:
    here = Path(actbench.__file__).resolve().parent.parent
    if not (here / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def write_baseline(run_dir: str | Path, baseline: str | Path) -> int:
    """Write the latest ok record of every trial under `run_dir` to `baseline` (replacing it)."""
    latest = {r["trial_id"]: r for _, r in latest_records(run_dir)}
    ok = [r for r in latest.values() if r.get("status") == OK]
    path = Path(baseline)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(r, default=_json_default) + "\n" for r in ok))
    os.replace(tmp, path)
    return len(ok)
