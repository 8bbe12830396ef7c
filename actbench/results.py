"""The append-only results store, the environment fingerprint, and loading into pandas.

Layout of a results folder (only the driver writes it):
    trials.jsonl            one JSON record per finished trial attempt, flushed and fsynced
    series/<trial_id>.json  large per-step series (loss curves, alpha traces; long integer arrays
                            such as token ids packed by `pack_ints`)
    errors/<trial_id>.<attempt>.txt   tracebacks of failed attempts
    .actbench.lock          held (flock) by the run writing here: its pid, host and start time
A torn last line (a crash mid-write) is skipped on read and newline-terminated before the next
append, so no later record is lost; an append that fails (disk full, read-only) is rolled back
to the last whole line before the error is raised.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import fcntl
import gc
import json
import os
import platform
import socket
import subprocess
import tempfile
import time
import warnings
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import actbench
from actbench.errors import UserError

if TYPE_CHECKING:  # pandas and numpy are imported where frames are built: writing records (a Ray worker) needs neither
    import pandas as pd

RECORDS = "trials.jsonl"
LOCK = ".actbench.lock"
OK = "ok"


class ResultStore:
    """Append-only store of trial records under one folder."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.path = self.root / RECORDS
        self._lock_fd: int | None = None

    @contextlib.contextmanager
    def lock(self) -> Iterator[str | None]:
        """Hold the folder for writing, exclusively: an flock on LOCK, which records this
        process's pid, host and start time. Checks that the folder is writable (creates it, writes
        the lock file, opens an existing trials.jsonl for appending) before anything runs. Yields a note when
        it took over a lock that a dead run never released; UserError when another run holds it
        or the folder is not writable. Re-entrant within one store."""
        if self._lock_fd is not None:
            yield None
            return
        lock_path = self.root / LOCK
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        except OSError as e:
            raise _not_writable(self.root, e) from e
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            holder = _lock_holder(fd)
            os.close(fd)
            if isinstance(e, BlockingIOError):
                raise UserError(f"{self.root}: results folder is in use by another actbench run ({holder}); "
                                "wait for it to finish or choose another --out") from None
            raise UserError(f"{self.root}: cannot lock the results folder: {e.strerror or e}") from e
        previous = _lock_holder(fd)
        try:
            mine = json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")})
            os.ftruncate(fd, 0)
            os.pwrite(fd, mine.encode(), 0)
            os.fsync(fd)
            if self.path.exists() or self.path.is_symlink():  # else it is created beside the lock file, just written
                os.close(os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW))
        except OSError as e:
            os.close(fd)
            raise _not_writable(self.root, e) from e
        self._lock_fd = fd
        try:
            yield f"took over the lock of {previous}, which ended without releasing it" if previous else None
        finally:
            self._lock_fd = None
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            os.close(fd)  # releases the flock

    def append(self, record: dict[str, Any], series: dict[str, Any] | None = None, traceback: str | None = None) -> dict[str, Any]:
        """Write side files first, then the record line (fsynced). Returns the record. On an
        OSError the file is cut back to where it was, so no torn line is left behind."""
        self.root.mkdir(parents=True, exist_ok=True)
        tid, attempt = record["trial_id"], record["attempt"]
        if series:
            record["series_file"] = self._write_side(f"series/{tid}.json", json.dumps(series))
        if traceback:
            record.setdefault("error", {})["traceback_file"] = self._write_side(f"errors/{tid}.{attempt}.txt", traceback)
        line = (json.dumps(record, default=_json_default, allow_nan=True) + "\n").encode()
        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        try:
            end = os.lseek(fd, 0, os.SEEK_END)
            if end and os.pread(fd, 1, end - 1) != b"\n":  # a torn line from a crash: terminate it, keep ours whole
                line = b"\n" + line
            try:
                view = memoryview(line)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            except OSError:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, end)
                raise
        finally:
            os.close(fd)
        return record

    def save_suite(self, name: str, data: dict[str, Any]) -> str:
        """Keep the suite a run used (after --set) as `suites/<name>.yaml`, so that compare and
        report can read its reference, tuning and ladder later."""
        import yaml

        return self._write_side(f"suites/{name}.yaml", yaml.safe_dump(data, sort_keys=False))

    def _write_side(self, rel: str, text: str) -> str:
        """Write a side file atomically, through a fresh temporary file (never through a link)."""
        p = self.root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=f".{p.name}.")
        try:
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.replace(tmp, p)
        except OSError:
            Path(tmp).unlink(missing_ok=True)
            raise
        return rel

    def records(self) -> list[dict[str, Any]]:
        return list(iter_records(self.path))

    def _trial_records(self) -> Iterator[dict[str, Any]]:
        """Records that name a trial (anything else in the file is ignored here)."""
        return (r for r in iter_records(self.path) if isinstance(r, dict) and isinstance(r.get("trial_id"), str))

    def successful_ids(self) -> set[str]:
        return {r["trial_id"] for r in self._trial_records() if r.get("status") == OK}

    def attempts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for r in self._trial_records():
            counts[r["trial_id"]] = counts.get(r["trial_id"], 0) + 1
        return counts

    def series(self, record: dict[str, Any]) -> dict[str, Any]:
        return read_series(self.root, record.get("series_file"))


def _json_default(o: Any) -> Any:
    if hasattr(o, "item"):
        return o.item()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


class ResultsWarning(UserWarning):
    """Lines of a trials.jsonl skipped on read (torn by a crash, or not trial records)."""


_RECORD_PARTS = {"config": dict, "metrics": dict, "rows": list, "env": dict, "error": dict}


@lru_cache(maxsize=1)
def _json_decoder() -> Any:
    import msgspec

    return msgspec.json.Decoder()


def parse_json(raw: bytes | str) -> Any:
    """`json.loads(raw)`, decoded by msgspec (2-3x faster) where it accepts the text. Whatever it
    refuses (NaN, Infinity, a BOM, surrogates, deep nesting, ...: a ValueError or RecursionError)
    goes to json.loads, which decides and raises as before; on the text msgspec accepts, both give
    the same values."""
    try:
        return _json_decoder().decode(raw)
    except (ValueError, RecursionError):  # msgspec.DecodeError and UnicodeError are ValueErrors
        return json.loads(raw)


def _not_a_record(obj: Any) -> str | None:
    """Why a parsed JSON line is not a trial record, or None when it is one."""
    if not isinstance(obj, dict):
        return f"a JSON {type(obj).__name__}, not an object"
    for key in ("trial_id", "status"):
        if not isinstance(obj.get(key), str) or not obj[key]:
            return f"no {key}"
    for key, typ in _RECORD_PARTS.items():
        if obj.get(key) is not None and not isinstance(obj[key], typ):
            return f"{key} is a {type(obj[key]).__name__}, not {'an object' if typ is dict else 'an array'}"
    if any(not isinstance(r, dict) for r in obj.get("rows") or ()):
        return "rows holds something other than objects"
    return None


def iter_records(path: str | Path) -> Iterator[dict[str, Any]]:
    """Records of one trials.jsonl. A torn last line (a crash mid-write) is skipped silently;
    every other line that is not a trial record (not UTF-8, not JSON, not an object, no trial_id
    or status, a config that is not an object, ...) is skipped, and the file gets one
    `ResultsWarning` line naming the first such line (file:line), the count and the reasons."""
    path = Path(path)
    if not path.is_file():
        return
    bad: list[tuple[int, str]] = []
    unparsed: int | None = None  # a line that is not JSON: torn (skipped silently) if no other line follows it
    with open(path, "rb") as f:  # line by line: a large file is never held whole (nor twice, split)
        for n, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            if unparsed is not None:
                bad.append((unparsed, "not JSON (a torn record of an earlier crash?)"))
                unparsed = None
            try:
                obj = parse_json(raw)
            except UnicodeDecodeError:
                bad.append((n, "not UTF-8"))
                continue
            except (ValueError, RecursionError):
                unparsed = n
                continue
            why = _not_a_record(obj)
            if why is None:
                yield obj
            else:
                bad.append((n, why))
    if bad:
        listed = "; ".join(f"line {n}: {why}" for n, why in bad[:3]) + ("; ..." if len(bad) > 3 else "")
        warnings.warn(f"{path}:{bad[0][0]}: skipped {len(bad)} line(s) that are not trial records ({listed})",
                      ResultsWarning, stacklevel=2)


def result_dirs(root: str | Path) -> list[Path]:
    """Every folder at or below `root` that holds a trials.jsonl (`root` may be the file itself)."""
    root = Path(root)
    if root.is_file() and root.name == RECORDS:
        return [root.parent]
    return sorted({p.parent for p in root.rglob(RECORDS)}) if root.is_dir() else []


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


def read_series(results_dir: str | Path, series_file: Any) -> dict[str, Any]:
    """The per-step series of a record (`series_file` is relative to its results folder); {} when
    there is none, it lies outside the folder, or it is not a readable JSON object. Readers must
    still check the shape of what they take from it (older results store other shapes)."""
    if not isinstance(series_file, str) or not series_file:
        return {}
    root = Path(results_dir).resolve()
    path = (root / series_file).resolve()
    if not path.is_relative_to(root):
        return {}
    try:
        data = parse_json(path.read_bytes())
    except (OSError, ValueError, RecursionError):
        return {}
    return data if isinstance(data, dict) else {}


PACKED_DTYPES = ("<u1", "<u2", "<u4")  # unsigned little-endian, the smallest that holds the values


def pack_ints(values: "np.ndarray") -> dict[str, str]:
    """Non-negative integers (e.g. token ids) as {"dtype", "base64"} for a series file: one JSON
    string, a fraction of the size and parse time of a list of numbers."""
    import numpy as np

    a = np.asarray(values).ravel()
    if not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"pack_ints takes integers, not {a.dtype}")
    top = int(a.max()) if a.size else 0
    if a.size and int(a.min()) < 0 or top >= 2**32:
        raise ValueError(f"pack_ints takes integers in [0, 2^32), not [{a.min()}, {top}]")
    dtype = next(d for d in PACKED_DTYPES if top < 2 ** (8 * np.dtype(d).itemsize))
    return {"dtype": dtype, "base64": base64.b64encode(a.astype(dtype).tobytes()).decode("ascii")}


def unpack_ints(packed: Any) -> "np.ndarray | None":
    """The integers of `pack_ints`' output (uint8/16/32, a read-only array); None for anything else."""
    import numpy as np

    if not isinstance(packed, dict) or packed.get("dtype") not in PACKED_DTYPES or not isinstance(packed.get("base64"), str):
        return None
    try:
        raw = base64.b64decode(packed["base64"], validate=True)
    except ValueError:
        return None
    dtype = np.dtype(packed["dtype"])
    return np.frombuffer(raw, dtype=dtype) if len(raw) % dtype.itemsize == 0 else None


class _Blocks:
    """Rows kept as tuples, grouped by their field names (records of one kind share them), so
    that a row costs one tuple rather than one Python call per field; `frame` builds each group
    with pandas and restores the order of arrival. A name given twice keeps its last value."""

    def __init__(self) -> None:
        self.blocks: dict[tuple[str, ...], tuple[list[int], list[tuple[Any, ...]]]] = {}
        self.n = 0

    def add(self, names: tuple[str, ...], values: tuple[Any, ...]) -> None:
        block = self.blocks.get(names)
        if block is None:
            block = self.blocks[names] = ([], [])
        block[0].append(self.n)
        block[1].append(values)
        self.n += 1

    def frame(self) -> "pd.DataFrame":
        import pandas as pd

        parts = []
        for names, (positions, values) in self.blocks.items():
            last = {name: i for i, name in enumerate(names)}
            if len(last) < len(names):  # a config key shadowing a record key: the later wins
                keep = sorted(last.values())
                values = [tuple(v[i] for i in keep) for v in values]
                names = tuple(names[i] for i in keep)
            parts.append(pd.DataFrame.from_records(values, columns=list(names), index=positions, nrows=len(values)))
        if not parts:
            return pd.DataFrame()
        df = parts[0] if len(parts) == 1 else pd.concat(parts, sort=False)
        return df.sort_index().reset_index(drop=True)


_ROW_CONTEXT = ("trial_id", "suite", "kind", "run_id", "gpu_name", "results_dir")
_TRAILER = ("error_type", "error_message", "gpu_name", "hostname", "env", "results_dir")


def _load_folder(d: Path, latest_only: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Trials and rows of one results folder (rows: of the latest ok attempt of each trial)."""
    import numpy as np
    import pandas as pd

    trials, rows = _Blocks(), _Blocks()
    row_owner: list[int] = []
    metric_names: dict[tuple[str, ...], tuple[str, ...]] = {}
    config_keys: dict[str, None] = {}
    folder, latest = str(d), {}
    shared_env: dict[str, Any] = {}
    for r in iter_records(d / RECORDS):
        i = trials.n
        top = [k for k in r if k not in _RECORD_PARTS]
        config, metrics = r.get("config") or {}, r.get("metrics") or {}
        err, env = r.get("error") or {}, r.get("env") or {}
        if env == shared_env:  # records of one run share one environment: keep one dict for them
            env = shared_env
        shared_env = env
        mkeys = tuple(metrics)
        mnames = metric_names.get(mkeys)
        if mnames is None:
            mnames = metric_names[mkeys] = tuple(f"metric.{k}" for k in mkeys)
        trials.add((*top, *config, "config", *mnames, *_TRAILER),
                   (*(r[k] for k in top), *config.values(), config, *metrics.values(), err.get("type"), err.get("message"),
                    gpu_name(r), env.get("hostname"), env, folder))
        latest[r["trial_id"]] = i
        if r["status"] == OK and r.get("rows"):
            if config.keys() - config_keys.keys():  # the config fields joined to rows: those of kinds with rows
                config_keys.update(dict.fromkeys(config))
            for row in r["rows"]:
                rows.add(tuple(row), tuple(row.values()))
                row_owner.append(i)
    t = trials.frame()
    if t.empty:
        return t, pd.DataFrame()
    latest_ids = np.fromiter(sorted(latest.values()), dtype=np.int64, count=len(latest))
    r = rows.frame()
    if len(r):
        owner = np.asarray(row_owner, dtype=np.int64)
        kept = np.isin(owner, latest_ids)
        if not kept.all():
            r, owner = r[kept].reset_index(drop=True), owner[kept]
        context = [c for c in dict.fromkeys((*_ROW_CONTEXT, *config_keys)) if c in t.columns and c not in r.columns]
        r = pd.concat([t[context].iloc[owner].reset_index(drop=True), r], axis=1)
    return (t.iloc[latest_ids].reset_index(drop=True) if latest_only else t), r


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """Hold off Python's cyclic garbage collector: loading builds millions of objects (no cycles
    among them) that its collections, triggered by the allocations, would traverse again and
    again (a tenth of the load time). Anything cyclic is collected after, as usual."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@contextlib.contextmanager
def gc_frozen() -> Iterator[None]:
    """Keep the objects that exist now (loaded tables: millions of them) out of Python's cyclic
    garbage collections until the block ends (gc.freeze), so that the collections which later
    allocations trigger traverse only what is new. Left alone where something else froze objects."""
    if gc.get_freeze_count():
        yield
        return
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


PARALLEL_MIN_BYTES = 32 << 20
PARALLEL_MIN_FOLDERS = 16
"""`load_tables(..., parallel=True)` parses folders in worker processes from this many bytes of
records (trials.jsonl), or this many folders (each costs pandas ~20 ms, however few its records);
below both, starting the workers costs more than it saves."""


def _tables(parts: list[tuple[pd.DataFrame, pd.DataFrame]]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The trials and rows of consecutive parts, concatenated in order (empty parts left out)."""
    import pandas as pd

    concat = lambda frames: frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True, sort=False)  # noqa: E731
    trials = [t for t, _ in parts if not t.empty]
    rows = [r for _, r in parts if not r.empty]
    return (concat(trials) if trials else pd.DataFrame()), (concat(rows) if rows else pd.DataFrame())


def _load_batch(dirs: list[Path], latest_only: bool) -> tuple[pd.DataFrame, pd.DataFrame, list[warnings.WarningMessage]]:
    """The tables of consecutive folders (`_load_folder` each), in a worker process, with the
    warnings it would have shown (for the parent to show)."""
    with warnings.catch_warnings(record=True) as caught:
        trials, rows = _tables([_load_folder(d, latest_only) for d in dirs])
    return trials, rows, caught


def _records_bytes(d: Path) -> int:
    try:
        return (d / RECORDS).stat().st_size
    except OSError:  # gone since it was found: loading it finds nothing, as in one process
        return 0


def _batches(dirs: list[Path], workers: int) -> list[list[Path]]:
    """`dirs` in consecutive batches, for `workers` processes, or [] where one process should
    parse them: 2+ folders and PARALLEL_MIN_BYTES or PARALLEL_MIN_FOLDERS, and forking is safe
    (Linux, called from the only thread of the process). About 4 batches per worker of about
    equal bytes (a folder larger than that alone), so that none waits long on another."""
    import multiprocessing
    import threading

    if workers < 2 or len(dirs) < 2 or "fork" not in multiprocessing.get_all_start_methods() or threading.active_count() > 1:
        return []
    sizes = [_records_bytes(d) for d in dirs]
    total = sum(sizes)
    if total < PARALLEL_MIN_BYTES and len(dirs) < PARALLEL_MIN_FOLDERS:
        return []
    share, batches, filled = total / (4 * workers), [], 0.0
    for d, size in zip(dirs, sizes):
        if not batches or filled >= share:
            batches.append([])
            filled = 0.0
        batches[-1].append(d)
        filled += size
    return batches


def _load_in_workers(batches: list[list[Path]], workers: int, latest_only: bool) -> tuple[pd.DataFrame, pd.DataFrame] | None:
    """The tables of `batches` loaded in forked worker processes, their warnings shown here as
    they were given there; None when the workers could not start or one died (the caller loads
    in-process: no folder is left out). What a worker raises (an unreadable file) is raised."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    with ProcessPoolExecutor(min(workers, len(batches)), mp_context=multiprocessing.get_context("fork")) as pool:
        try:
            results = pool.map(_load_batch, batches, [latest_only] * len(batches))  # submits: the workers start here
        except OSError:  # no process could be started (fork: out of memory or processes)
            return None
        try:
            done = list(results)
        except BrokenProcessPool:  # a worker died (killed, out of memory)
            return None
    for _, _, caught in done:
        for w in caught:
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return _tables([(t, r) for t, r, _ in done])


def load_tables(path: str | Path, latest_only: bool = True, parallel: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`(load(path, latest_only), load_rows(path))` from one pass over the files. In this process,
    one results folder at a time (only one folder's parsed records are held in memory at once);
    with `parallel` (the CLI's compare and report), many or large folders are parsed in forked
    worker processes (`_batches`), one per usable CPU up to 4, each holding one batch of folders.
    The tables are the same either way. Fork only where no other code runs threads that could
    hold locks (a fresh command, not a library caller with Ray or torch threads)."""
    dirs = result_dirs(path)
    workers = min(4, len(os.sched_getaffinity(0))) if parallel and hasattr(os, "sched_getaffinity") else 1
    with _gc_paused():
        batches = _batches(dirs, workers)
        tables = _load_in_workers(batches, workers, latest_only) if batches else None
        return tables if tables is not None else _tables([_load_folder(d, latest_only) for d in dirs])


def load(path: str | Path, latest_only: bool = True) -> pd.DataFrame:
    """Records under `path` (a results folder or a folder of them) as one flat DataFrame.

    One column per config field (`activation`, `size`, ...) and per metric (`metric.<name>`),
    the config itself (`config`, a dict), `gpu_name` ("cpu" for CPU runs), `hostname`, the
    environment fingerprint (`env`, a dict) and `results_dir`; with `latest_only`, the last attempt of each (results folder, trial id)."""
    return load_tables(path, latest_only)[0]


SERIES_COLUMNS = ["trial_id", "table", "step", "layer", "metric", "value"]


def series(path: str | Path) -> pd.DataFrame:
    """Per-step series of the latest attempt of every trial under `path` (a results folder or a
    folder of them; or one series JSON file) as one long DataFrame with columns trial_id, table,
    step, layer (NaN where the table has none), metric, value. Only tables of named columns with
    a `step` column are read (train, val, alphas); files or tables of another shape are skipped."""
    import pandas as pd

    path = Path(path)
    if path.is_file():
        sources = [(path.stem, path)]
    else:
        sources = [(r["trial_id"], d / r["series_file"]) for d, r in latest_records(path) if isinstance(r.get("series_file"), str)]
    frames = []
    for trial_id, file in sources:
        try:
            tables = parse_json(file.read_bytes())
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
    """Long-format measurement rows (kernel and memory kinds) of the latest ok attempt of each
    trial, joined with the trial's config, id, suite, kind, run id, GPU and results folder."""
    return load_tables(path)[1]


def _not_writable(root: Path, e: OSError) -> UserError:
    why = "a symbolic link is in the way (refusing to write through it)" if e.errno == errno.ELOOP else e.strerror or str(e)
    return UserError(f"{root}: results folder is not writable: {why}")


def _lock_holder(fd: int) -> str:
    """Who a lock file names, as text ("" when it names no one)."""
    try:
        info = json.loads(os.pread(fd, 4096, 0) or b"null")
        return f"pid {info['pid']} on host {info['host']}, started {info['started']}"
    except (OSError, ValueError, TypeError, KeyError):
        return ""


def fingerprint() -> dict[str, Any]:
    """Where and how a trial ran: host, GPU, driver/CUDA, library versions, git commit of a
    checkout, and this process's torch threads and determinism settings (which change results
    bitwise, and can differ per trial)."""
    import torch

    return {
        **_machine_fingerprint(),
        "torch_threads": torch.get_num_threads(),
        "torch_interop_threads": torch.get_num_interop_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
        "deterministic_warn_only": torch.is_deterministic_algorithms_warn_only_enabled(),
        "cudnn_deterministic": torch.backends.cudnn.deterministic,
        "cudnn_benchmark": torch.backends.cudnn.benchmark,
    }


@lru_cache(maxsize=1)
def _machine_fingerprint() -> dict[str, Any]:
    import torch

    env: dict[str, Any] = {
        "hostname": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "torch": str(torch.__version__),  # a TorchVersion would make a Ray driver import torch to unpickle it
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
    if not ok:
        raise UserError(f"{run_dir}: no ok trial record at or below it; {baseline} left as it was")
    path = Path(baseline)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(r, default=_json_default) + "\n" for r in ok))
    os.replace(tmp, path)
    return len(ok)
