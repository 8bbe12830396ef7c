"""The columnar index of a results folder: its trials.jsonl (the source of truth) as two Parquet
tables, a cache kept in the user's cache folder, brought up to date by parsing only the bytes
appended since, never believed unless this tool wrote it for exactly the bytes it covers.

One folder's index is `<cache>/index/<sha256 of the folder's real path>/` (`<cache>`:
$XDG_CACHE_HOME/actbench or ~/.cache/actbench, 0700):
    trials.parquet  every record (every attempt, in file order), one row each (`folder_frames`)
    rows.parquet    the measurement rows of every ok record, joined with its trial's context;
                    `_record`: the row of its record in trials.parquet
    index.json      what they cover (the folder, the byte length and lines of trials.jsonl parsed,
                    the SHA-256 of those bytes, the lines set aside there, the file's identity when
                    they were hashed), the SHA-256 and size of both Parquet files, and an
                    HMAC-SHA256 of all that under `<cache>/index.key` (0600)
The bytes an index covers are vouched for by hashing them again, or without reading them while
trials.jsonl's `gate.settled` identity (device, inode, size, times; only once its last change is
5 s old) is the one recorded: it is recorded only when the same before and after the bytes were
read, and an index believed by hashing, its file newly settled, gets index.json signed again
with it (the first read 5 s after a run), so later reads skip the hash.
A value that is not text, a number or true/false (a config, an env, a list) is a JSON text, its
column named in the Parquet schema's metadata (`actbench.json`). The results folder itself is never
written: a read-only or downloaded folder reads the same, and a file planted in it is not read.
Anything amiss (no key, no pyarrow, a missing, damaged, foreign or stale index, a file the gate
refuses) means the tables come from the JSON, and a fresh index is written when it can be.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import hmac
import os
import secrets
import stat
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any, Collection

import msgspec

from actbench.core.record import Record
from actbench.results import columnar, gate
from actbench.results.columnar import from_arrow
from actbench.results.read import RECORDS, ResultsWarning, Scan, Settled, gpu_name

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

TRIALS, ROWS, META = "trials.parquet", "rows.parquet", "index.json"
VERSION = 1
"""The index format; `code_version` adds the code that shaped its tables."""
MAX_INDEX = 2**30
"""The largest Parquet file of an index read (about 8 million measurement rows)."""
_CHUNK = 1 << 20


_TOP = ("trial_id", "suite", "kind", "status", "note", "started_at", "ended_at", "duration_s", "attempt", "run_id", "executor",
        "series_file")
_ROW_CONTEXT = ("trial_id", "suite", "kind", "run_id", "gpu_name", "results_dir")


def _flat(r: Record) -> dict[str, Any]:
    """One record as a table row: one column per config field, its top-level fields (a top-level
    field wins over a config field of the same name: `status` is the record's) and per metric
    (`metric.<name>`); `results_dir` is left for the reader to fill."""
    err = r.error or {}
    return {**r.config, **{k: getattr(r, k) for k in _TOP}, "config": r.config,
            **{f"metric.{k}": v for k, v in r.metrics.items()}, "error_type": err.get("type"), "error_message": err.get("message"),
            "gpu_name": gpu_name(r), "hostname": r.env.get("hostname"), "env": r.env, "results_dir": None}


def row_context(r: Record) -> dict[str, Any]:
    """What each measurement row of `r` is joined with: its trial's id, suite, kind, run, GPU and config."""
    return {**{k: getattr(r, k) for k in _ROW_CONTEXT[:4]}, "gpu_name": gpu_name(r), **r.config}


def folder_frames(records: list[Record], first: int = 0) -> tuple["pd.DataFrame", "pd.DataFrame"]:
    """The tables of one folder's records, every attempt: one row per record, and the measurement
    rows of every ok record, each joined with its trial's id, suite, kind, run, GPU and config (a
    row's own field wins over its trial's of the same name) and `_record`, the place of its record
    (`first` + its index in `records`). `results_dir` is left empty for the reader to fill."""
    import numpy as np
    import pandas as pd

    rows: list[dict[str, Any]] = []
    context: list[dict[str, Any]] = []
    owner: list[int] = []  # per row: its record's place in `context`
    place: list[int] = []  # per entry of `context`: its record's place in the folder
    for i, r in enumerate(records):
        if r.ok and r.rows:
            owner += [len(context)] * len(r.rows)
            context.append({**row_context(r), "results_dir": None})
            place.append(first + i)
            rows += r.rows
    measured = pd.DataFrame(rows)
    if len(measured):
        at = np.asarray(owner)
        shared = pd.DataFrame(context).take(at).reset_index(drop=True)
        for c in [c for c in shared.columns if c in measured.columns]:  # a row that lacks the field takes its trial's
            has = np.fromiter((c in row for row in rows), bool, len(rows))
            if not has.all():
                measured[c] = pd.Series(measured[c].astype(object).where(has, shared[c].astype(object)).tolist())  # typed as one
        measured = pd.concat([shared[[c for c in shared.columns if c not in measured.columns]], measured], axis=1)
        measured["_record"] = np.asarray(place)[at]
    return pd.DataFrame([_flat(r) for r in records]), measured


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """The format `VERSION` and a digest of the modules that turn records into its tables (this
    one, its Arrow conversions, the reader, the record and the gate): an index built by other code is rebuilt, never
    served in the old shape."""
    from actbench.core import record
    from actbench.results import read

    digest = hashlib.sha256(str(VERSION).encode())
    for module in (sys.modules[__name__], columnar, read, record, gate):
        digest.update(Path(module.__file__ or "").read_bytes())
    return f"{VERSION}-{digest.hexdigest()[:16]}"


class Meta(msgspec.Struct, forbid_unknown_fields=True):
    """index.json: what an index covers, which code built it, and the HMAC that says this tool wrote it."""

    version: str
    folder: str
    end: int
    lines: int
    sha256: str
    bad: list[tuple[int, str]]
    bad_count: int
    trials: str
    rows: str
    sizes: tuple[int, int]
    identity: str = ""
    """trials.jsonl's `gate.settled` identity when its first `end` bytes were hashed; "" if unsettled."""
    hmac: str = ""


def cache_root() -> Path:
    """This user's cache folder of actbench ($XDG_CACHE_HOME/actbench, else ~/.cache/actbench)."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    return (Path(base) if os.path.isabs(base) else Path.home() / ".cache") / "actbench"


def _private_folder(path: Path) -> Path:
    """`path` made (0700) and checked: a folder of this user's, reached through no link, that only
    this user may open (one with group or other permissions is made 0700); OSError otherwise."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = os.lstat(path)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise OSError(f"{path}: not a folder of this user's")
    if st.st_mode & 0o077:  # another user could read the parsed results or swap entries out
        os.chmod(path, 0o700, follow_symlinks=False)
    return path


def key() -> bytes | None:
    """The HMAC key of this user's indexes (32 random bytes in `<cache>/index.key`, 0600, made on
    first use); None when it cannot be made or read, or is not this user's private file."""
    try:
        root = _private_folder(cache_root())
        path = root / "index.key"
        if not path.exists() and not path.is_symlink():
            tmp = root / f".index.key.{secrets.token_hex(8)}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            try:
                os.write(fd, secrets.token_bytes(32))
                os.close(fd)
                with contextlib.suppress(FileExistsError):  # another process made it first: theirs holds
                    os.link(tmp, path)
            finally:
                tmp.unlink(missing_ok=True)
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        try:
            st = os.fstat(fd)
            secret = os.read(fd, 33)
        finally:
            os.close(fd)
    except OSError:
        return None
    private = stat.S_ISREG(st.st_mode) and st.st_uid == os.getuid() and not st.st_mode & 0o077
    return secret if private and len(secret) == 32 else None


def location(folder: str | Path) -> Path:
    """Where the index of a results folder is kept."""
    real = os.path.realpath(folder)
    return cache_root() / "index" / hashlib.sha256(os.fsencode(real)).hexdigest()[:32]


def _signed(meta: Meta, secret: bytes) -> str:
    return hmac.new(secret, msgspec.json.encode(msgspec.structs.replace(meta, hmac="")), hashlib.sha256).hexdigest()


def _parquet(df: "pd.DataFrame") -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(columnar.to_arrow(df), sink)
    return sink.getvalue().to_pybytes()


Columns = tuple[Collection[str], Collection[str]]
"""Names of the trials' and of the rows' columns to read (`folder_tables`)."""


def _wanted(columns: Columns | None) -> tuple[Collection[str] | None, Collection[str] | None]:
    """The columns `folder_tables` reads of each table: those asked for, and the trial id of a
    trial and the `_record` of a row (to pick each trial's last attempt); every one without `columns`."""
    return (None, None) if columns is None else ({*columns[0], "trial_id"}, {*columns[1], "_record"})


def _arrow(raw: bytes, columns: Collection[str] | None = None) -> "pa.Table":
    """A Parquet file of the index as an Arrow table: only the `columns` it has (in its order), or every one."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    if columns is None:
        return pq.read_table(pa.BufferReader(raw))
    names = pq.read_schema(pa.BufferReader(raw)).names
    return pq.read_table(pa.BufferReader(raw), columns=[c for c in names if c in columns])


def _table(raw: bytes, columns: Collection[str] | None = None) -> "pd.DataFrame":
    """A Parquet file of the index as a table: only the `columns` it has (in its order), or every one."""
    return from_arrow(_arrow(raw, columns))


def _pandas(table: "pa.Table | pd.DataFrame") -> "pd.DataFrame":
    """`table` as pandas (`from_arrow` of an Arrow table)."""
    import pandas as pd

    return table if isinstance(table, pd.DataFrame) else from_arrow(table)


def only_columns(df: "pd.DataFrame", columns: Collection[str] | None) -> "pd.DataFrame":
    """`df` with only the `columns` it has (in its order), or all of them."""
    return df if columns is None or all(c in columns for c in df.columns) else df[[c for c in df.columns if c in columns]]


def _believed(place: Path, folder: Path, secret: bytes,
              columns: tuple[Collection[str] | None, Collection[str] | None] = (None, None)) -> tuple[Meta, dict[str, bytes], "pa.Table", "pa.Table"] | None:
    """The index kept at `place`, when this tool wrote it for `folder` and its files are whole: what
    it covers, its Parquet files and their `columns` (Arrow tables); None otherwise."""
    try:
        meta = msgspec.json.decode(gate.read(place, META, 2**20), type=Meta)
        if meta.version != code_version() or meta.folder != os.path.realpath(folder) or not hmac.compare_digest(meta.hmac, _signed(meta, secret)):
            return None
        raw = {name: gate.read(place, name, size) for name, size in zip((TRIALS, ROWS), meta.sizes)}  # no more than it wrote
        if hashlib.sha256(raw[TRIALS]).hexdigest() != meta.trials or hashlib.sha256(raw[ROWS]).hexdigest() != meta.rows:
            return None
        return meta, raw, _arrow(raw[TRIALS], columns[0]), _arrow(raw[ROWS], columns[1])
    except (OSError, gate.Refused, ValueError, TypeError, KeyError):  # missing, refused, not JSON, not Parquet: rebuild
        return None


def _prefix_digest(f: Any, end: int, start: int = 0, digest: Any = None) -> Any:
    """The SHA-256 of the first `end` bytes of the open trials.jsonl (`digest`: of its first
    `start` bytes, carried on), or None when the file is shorter."""
    digest = digest.copy() if digest is not None else hashlib.sha256()
    fd = f.fileno()
    while start < end and (chunk := os.pread(fd, min(_CHUNK, end - start), start)):
        digest.update(chunk)
        start += len(chunk)
    return digest if start == end else None


def _put(dir_fd: int, name: str, data: bytes) -> None:
    """Write `name` in the folder open as `dir_fd` through a fresh temporary file, renamed into
    place (a link in its place is replaced, never followed)."""
    tmp = f".{name}.{secrets.token_hex(8)}"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise


def _put_meta(place: Path, meta: Meta, secret: bytes) -> None:
    """Write index.json, signed, at `place` (where it can be: a cache)."""
    meta.hmac = _signed(meta, secret)
    try:
        dir_fd = os.open(_private_folder(place), os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return
    try:
        _put(dir_fd, META, msgspec.json.encode(meta))
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def _write(place: Path, folder: Path, secret: bytes, settled: Settled, digest: str, identity: str, every: "pd.DataFrame",
           rows: "pd.DataFrame") -> dict[str, bytes] | None:
    """Keep the index of `folder` at `place`; its Parquet files, or None when it cannot be made
    (it is a cache: written where it can be)."""
    try:
        files = {TRIALS: _parquet(every), ROWS: _parquet(rows)}
        if max(map(len, files.values())) > MAX_INDEX:
            return None
        meta = Meta(version=code_version(), folder=os.path.realpath(folder), end=settled.end, lines=settled.lines, sha256=digest,
                    bad=list(settled.bad), bad_count=settled.bad_count, trials=hashlib.sha256(files[TRIALS]).hexdigest(),
                    rows=hashlib.sha256(files[ROWS]).hexdigest(), sizes=(len(files[TRIALS]), len(files[ROWS])), identity=identity)
        dir_fd = os.open(_private_folder(place), os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except (OSError, ValueError, TypeError, ImportError):  # pyarrow refused a column, or the cache is not writable
        return None
    try:
        for name, data in files.items():
            _put(dir_fd, name, data)
    except OSError:
        return files
    finally:
        os.close(dir_fd)
    _put_meta(place, meta, secret)  # last: it vouches for the others
    return files


def _usable() -> bytes | None:
    """The HMAC key, when pyarrow is there to read and write Parquet."""
    try:
        import pyarrow.parquet  # noqa: F401
    except ImportError:
        return None
    return key()


def folder_tables(folder: str | Path, columns: Columns | None = None) -> tuple["pd.DataFrame", "pd.DataFrame"]:
    """`folder_frames` of the records of `folder/trials.jsonl`, exactly as decoding it
    through the results gate gives them (with the same warning about lines set aside), from its
    index when that is believed (only the bytes appended since are parsed), else from the JSON;
    the index is written or brought up to date on the way (whole, whatever is read). With `columns`
    (the trials' and the rows' names), only those columns of each table, where it has them, and
    `trial_id` (trials) and `_record` (rows): from the index, no other column is read."""
    every, rows = folder_arrow(folder, columns)
    return _pandas(every), _pandas(rows)


def folder_arrow(folder: str | Path, columns: Columns | None = None) -> tuple["pa.Table | pd.DataFrame", "pa.Table | pd.DataFrame"]:
    """`folder_tables`, as the Arrow tables of its index (JSON columns named in their metadata, as
    `columnar.to_arrow` writes them) when they come from an index (read, or just written; with
    `columns`, only those), else as pandas tables (no index could be written, or a last line
    without its newline was read after it). Callers take either."""
    import pandas as pd

    folder = Path(folder)
    wanted = _wanted(columns)
    secret = _usable()
    place = location(folder) if secret else None
    f = gate.open_file(folder, RECORDS)
    if f is None:
        return pd.DataFrame(), pd.DataFrame()
    with f:
        cached = _believed(place, folder, secret, wanted) if place and secret else None
        identity = gate.settled(f.fileno())  # before a byte of the file is read
        vouched = cached is not None and identity is not None and identity == cached[0].identity
        prefix = _prefix_digest(f, cached[0].end) if cached and not vouched else None
        if not vouched and (prefix is None or prefix.hexdigest() != cached[0].sha256):
            cached, prefix = None, None
        meta = cached[0] if cached else None
        start = Settled(meta.end, meta.lines, tuple(map(tuple, meta.bad)), meta.bad_count) if meta else Settled()
        f.seek(start.end)
        scan = Scan(f, start)
        records = list(scan)
        settled, kept, tail = scan.settled, scan.kept, records[scan.kept:]
        every, rows = (cached[2], cached[3]) if cached else (pd.DataFrame(), pd.DataFrame())
        if kept or cached is None or settled != start:
            if cached:  # the index is kept whole
                every, rows = (from_arrow(every), from_arrow(rows)) if columns is None else (_table(cached[1][TRIALS]), _table(cached[1][ROWS]))
            cached = None
            new = folder_frames(records[:kept], len(every))
            del records  # held no longer than needed: a folder's records take more memory than its tables
            every, rows = _joined((every, rows), new)
            if vouched:  # appended since: the bytes covered hashed after all, to carry their digest on (unless changed meanwhile)
                prefix = _prefix_digest(f, start.end)
                prefix = prefix if prefix is not None and prefix.hexdigest() == meta.sha256 else None
            digest = _prefix_digest(f, settled.end, start.end, prefix) if place and secret and not (vouched and prefix is None) else None
            same = identity if identity is not None and gate.settled(f.fileno()) == identity else ""
            files = _write(place, folder, secret, settled, digest.hexdigest(), same, every, rows) if digest is not None else None
            if files is not None:  # served as a later read gives them: each distinct config list and env one object (less memory)
                del every, rows, new
                every, rows = _arrow(files[TRIALS], wanted[0]), _arrow(files[ROWS], wanted[1])
            else:
                every, rows = only_columns(every, wanted[0]), only_columns(rows, wanted[1])
        elif meta and identity is not None and identity != meta.identity and gate.settled(f.fileno()) == identity:
            _put_meta(place, msgspec.structs.replace(meta, identity=identity), secret)  # newly settled: later reads skip the hash
        cached = None  # its files no longer held
    if tail:  # lines after the settled point (a last line without its newline): served, not kept
        every, rows = _joined((_pandas(every), _pandas(rows)), tuple(map(only_columns, folder_frames(tail, len(every)), wanted)))
    if message := scan.warning(folder / RECORDS):
        warnings.warn(message, ResultsWarning, stacklevel=2)
    return every, rows


def update(folder: str | Path) -> Path | None:
    """Bring the index of the results folder `folder` up to date; where it is kept (the folder of
    trials.parquet, rows.parquet and index.json), or None when it could not be written."""
    folder_tables(folder)
    place = location(folder)
    return place if (place / META).is_file() else None


def _joined(old: tuple["pd.DataFrame", "pd.DataFrame"], new: tuple["pd.DataFrame", "pd.DataFrame"]) -> tuple["pd.DataFrame", "pd.DataFrame"]:
    """Tables of earlier records with those of later ones below, each column of the type pandas
    gives all its values at once (as when every record is read together)."""
    import pandas as pd

    joined = []
    for a, b in zip(old, new):
        if a.empty and not len(a.columns) or b.empty and not len(b.columns):
            joined.append(b if a.empty and not len(a.columns) else a)
            continue
        both = pd.concat([a, b], ignore_index=True)
        for name in both.columns[both.dtypes == object]:
            both[name] = pd.Series(both[name].tolist(), dtype=None)
        joined.append(both)
    return joined[0], joined[1]
