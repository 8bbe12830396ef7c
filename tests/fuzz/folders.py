"""Results folders for the fuzzer: a real one, made once per session by real runs, and the hostile
changes planted in a copy of it per example (records with hostile values, torn and foreign lines,
FIFOs, links out of the folder and to /dev/zero, missing, empty and huge files, planted names,
kept suites with hostile values), then the command that reads it."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from .harness import OUT, OUTSIDE, Sandbox, invoke
from .hostile import JSON_SPELLINGS, Raw, hostile_json_value, hostile_text, hostile_yaml_value, mutated, to_json, to_yaml

REAL_SUITES: dict[str, dict[str, Any]] = {
    "p": {"name": "p", "kind": "probe", "defaults": {"noise": 0.1}, "matrix": {"tag": ["a", "b"]},
          "tune": {"x": [-1.0, 0.5], "seeds": [1000], "budget": 0.5, "metric": "objective"},
          "seeds": {"min": 2, "max": 3, "round": 1}, "decide": {"field": "tag", "baseline": "a", "metric": "objective", "margin": 0.5},
          "resources": {"timeout_s": 20, "retries": 0}},
    "f": {"name": "f", "kind": "probe", "zip": {"tag": ["fine", "broken"], "fail": ["none", "raise"]},
          "resources": {"timeout_s": 20, "retries": 0}},
    "k": {"name": "k", "kind": "kernel", "defaults": {"impls": ["eager"], "width": 64, "rep_ms": 1.0, "warmup_ms": 1.0, "dtype": "float32",
                                                     "device": "cpu", "modes": ["forward", "full"]},
          "matrix": {"activation": ["relu2", "xielu"], "size": [256]}, "seeds": 2, "resources": {"timeout_s": 60, "retries": 0}},
    "l": {"name": "l", "kind": "lm", "defaults": {"d_model": 16, "n_layers": 1, "n_heads": 2, "seq_len": 16, "batch_size": 4, "tokens": 640,
                                                 "eval_every": 5, "eval_tokens": 256, "churn_tokens": 0, "reference": "relu2",
                                                 "ff_multiple": 16, "impl": "eager", "device": "cpu", "data": {"val_tokens": 4096}},
          "matrix": {"activation": ["relu2", "xielu"]}, "seeds": 2, "resources": {"timeout_s": 120, "retries": 0}},
}
"""The suites of the real results folder, as run (and kept in it as suites/<name>.yaml)."""


def make_real_results(base: Path) -> Path:
    """Run REAL_SUITES for real (inline, through the CLI) into `base/real/<name>`, write a regress
    baseline (`baseline.jsonl`, the kernel and lm records) and a regress history (`history/`, one file)."""
    box = Sandbox(base)
    real = base / "real"
    for name, doc in REAL_SUITES.items():
        suite = box.inp / f"{name}.yaml"
        suite.write_text(to_yaml(doc))
        o = invoke(box, ["run", str(suite), "--executor", "inline", "--out", str(real / name)], timeout_s=600)
        assert o.code in (0, 1) and (real / name / "trials.jsonl").is_file(), o.describe()
    (real / "baseline.jsonl").write_bytes((real / "k" / "trials.jsonl").read_bytes() + (real / "l" / "trials.jsonl").read_bytes())
    o = invoke(box, ["regress", str(real / "k"), "--baseline", str(real / "baseline.jsonl")])
    assert o.code == 0, o.describe()
    o = invoke(box, ["regress", str(real / "k"), "--history", str(box.out / "history")])
    assert o.code == 0, o.describe()
    shutil.copytree(box.out / "history", real / "history")
    for junk in real.rglob("*"):
        if junk.name in (".actbench.lock", "run.log") or junk.name == "checkpoints":
            shutil.rmtree(junk) if junk.is_dir() else junk.unlink()
    box.cleanup()
    return real


HUGE_BYTES = 5 * 2**28
"""A huge file (sparse, without a newline): 1.25 GiB, more than a command may add to its address space."""
RECORD_FILES = ["p/trials.jsonl", "f/trials.jsonl", "k/trials.jsonl", "l/trials.jsonl", "baseline.jsonl"]
SIDE_FILES = ["l/series/*", "p/suites/p.yaml", "p/suites/p.activations.json", "l/suites/l.yaml", "l/suites/l.activations.json",
              "k/suites/k.yaml", "f/errors/*", "f/suites/f.yaml", "@history"]
FOLDERS = ["p", "f", "k", "l", "l/series", "p/suites", "f/errors"]
RECORD_PATHS: list[tuple] = [
    ("suite",), ("kind",), ("status",), ("trial_id",), ("config", "activation"), ("config", "tag"), ("config", "seed"), ("config", "x"),
    ("config", "size"), ("config", "d_ff"), ("config", "reference"), ("config", "lr"), ("config", "impl"), ("config", "data"),
    ("metrics", "objective"), ("metrics", "val_bpb"), ("metrics", "tune_val_bpb"), ("metrics", "value"), ("metrics", "tokens_per_s"),
    ("metrics", "params"), ("metrics", "flops_per_token"), ("rows", 0, "ms_p50"), ("rows", 0, "ms_p20"), ("rows", 0, "pct_copy"),
    ("rows", 0, "gbps"), ("rows", 0, "impl"), ("rows", 0, "mode"), ("rows", 0, "noisy"), ("rows", 1), ("rows",), ("series_file",),
    ("env", "gpu_name"), ("env", "git_commit"), ("env", "hostname"), ("env",), ("attempt",), ("started_at",), ("ended_at",),
    ("duration_s",), ("error",), ("error", "message"), ("error", "type"), ("error", "traceback_file"), ("note",), ("run_id",),
    ("executor",), ("config",), ("metrics",),
]
HOW = ["fifo", "link_secret", "link_devzero", "link_outside_dir", "link_loop", "missing", "empty", "huge", "dir", "garbage", "link_dangling"]
WHERE = ["folder", "suite", "activation", "tag", "reference", "kind", "impl", "dtype"]
TRAVERSALS = ["../../../../outside/pwn", "../../../../../outside/pwn", "../../../outside/pwn", "../pwn", f"{OUTSIDE}/pwn", "..", ".",
              "a/../../../../../outside/pwn", "~/pwn", "/dev/zero", "bad\udcff", "-k"]
NUMBER_PATHS = [("metrics", "val_bpb"), ("metrics", "tune_val_bpb"), ("metrics", "objective"), ("metrics", "tokens_per_s"),
                ("metrics", "params"), ("metrics", "flops_per_token"), ("rows", 0, "ms_p50"), ("rows", 1, "pct_copy"),
                ("rows", 1, "ms_p20"), ("config", "seed"), ("config", "x"), ("config", "size"), ("config", "lr"), ("duration_s",),
                ("ended_at",), ("started_at",), ("attempt",)]
ABSURD_NUMBERS = ["1e308", "-1e308", "1.7976931348623157e308", "5e-324", "1e400", "-1e400", "1" + "0" * 400, "-" + "9" * 400,
                  "NaN", "Infinity", "-Infinity", "0", "-0", "1" + "0" * 5000]
GARBAGE = [b"\xff\xfe\x00", b"{", b"[1, 2]", b'{"trial_id": 1, "status": "ok"}', b"\x00" * 100, b'{"trial_id": "x", "status": "ok", '
           b'"metrics": {"val_bpb": 1e400}}', b"\x1b[31m\x1b]52;c;eA==\x07", b'"just a string"', b"NaN", b"\n\n\n"]


def _series_value() -> st.SearchStrategy[Any]:
    return st.one_of(hostile_json_value(), st.lists(st.sampled_from([Raw(s) for s in JSON_SPELLINGS[:12]] + [0, 1, -1]), max_size=5))


OPS = st.one_of(
    st.tuples(st.just("field"), st.sampled_from(RECORD_FILES), st.one_of(st.integers(0, 20), st.just("all")),
              st.sampled_from(RECORD_PATHS), hostile_json_value()),
    st.tuples(st.just("suite_field"), st.sampled_from(RECORD_FILES[:4]),
              st.sampled_from(["../../../../outside/secret", "../../../outside/secret", "../../../../../outside/secret", "../secret",
                               f"{OUTSIDE}/secret", "/dev/zero", "..", ".", "", "a/../../b", "suites/../../x", "\x00"])),
    st.tuples(st.just("series_file"), st.sampled_from(["l/trials.jsonl", "p/trials.jsonl"]),
              st.sampled_from(["../../../../outside/secret.json", f"{OUTSIDE}/secret.json", "/dev/zero", "/proc/self/environ", "..",
                               "series", "trials.jsonl", "series/../../k/trials.jsonl", "\x00x"])),
    st.tuples(st.just("tear"), st.sampled_from(RECORD_FILES + ["@history"]), st.floats(0.01, 0.99)),
    st.tuples(st.just("append"), st.sampled_from(RECORD_FILES + ["@history"]), st.sampled_from(GARBAGE)),
    st.tuples(st.just("replace"), st.sampled_from(RECORD_FILES + SIDE_FILES + FOLDERS), st.sampled_from(HOW)),
    st.tuples(st.just("series"), st.sampled_from(["eval_chunks", "val_argmax", "curve", "nats", "bytes", "tokens", "steps", ""]),
              _series_value()),
    st.sampled_from(["p", "l", "f"]).flatmap(lambda name: st.tuples(st.just("kept_suite"), st.just(name),
                                                                     mutated(REAL_SUITES[name], hostile_yaml_value()))),
    st.tuples(st.just("planted_name"), hostile_text(), st.sampled_from(WHERE)),
    st.tuples(st.just("planted_name"), st.sampled_from(TRAVERSALS), st.sampled_from(WHERE)),
    st.tuples(st.just("replace"), st.sampled_from(SIDE_FILES + ["p/trials.jsonl", "l/trials.jsonl"]),
              st.sampled_from(["fifo", "link_devzero", "link_secret", "huge"])),
    st.tuples(st.just("field"), st.sampled_from(RECORD_FILES), st.just("all"), st.sampled_from(NUMBER_PATHS),
              st.sampled_from([Raw(s) for s in ABSURD_NUMBERS])),
    st.tuples(st.just("history"), hostile_json_value()),
)


def ops() -> st.SearchStrategy[list[tuple]]:
    return st.lists(OPS, min_size=1, max_size=4)


def history_file(box: Sandbox) -> Path:
    """The regress history's one file (named from the environment's fingerprint) in box.out/history."""
    found = sorted((box.out / "history").glob("*.jsonl"))
    return found[0] if found else box.out / "history" / "cpu.jsonl"


def _target(box: Sandbox, rel: str) -> Path | None:
    if rel == "@history":
        return history_file(box)
    if rel.endswith("/*"):
        found = sorted((box.inp / rel[:-2]).glob("*"))
        return found[0] if found else None
    return box.inp / rel


def _records(path: Path) -> list[dict[str, Any]] | None:
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (OSError, ValueError):
        return None


def _write_records(path: Path, lines: list[str]) -> None:
    path.write_text("".join(line + "\n" for line in lines))


def _set(doc: Any, path: tuple, value: Any) -> bool:
    """doc[path] = value, creating mappings on the way; False where the path runs through a non-container."""
    for p in path[:-1]:
        if isinstance(doc, dict):
            doc = doc.setdefault(p, {})
        elif isinstance(doc, list) and isinstance(p, int) and p < len(doc):
            doc = doc[p]
        else:
            return False
    last = path[-1]
    if isinstance(doc, dict):
        doc[last] = value
    elif isinstance(doc, list) and isinstance(last, int) and last < len(doc):
        doc[last] = value
    else:
        return False
    return True


def _writable(path: Path | None) -> bool:
    """Whether the fuzzer may edit `path`: a regular file reached through no link (an earlier change
    may have turned its folder into a link out of the sandbox's input)."""
    return path is not None and path.is_file() and _no_link(path)


def _no_link(path: Path) -> bool:
    return not any(p.is_symlink() for p in (path, *path.parents))


def _edit_records(path: Path | None, line: int | str, field: tuple, value: Any) -> None:
    recs = _records(path) if _writable(path) else None
    if not recs:
        return
    chosen = range(len(recs)) if line == "all" else [int(line) % len(recs)]
    out = []
    for i, rec in enumerate(recs):
        if i in chosen:
            _set(rec, field, value)
        out.append(to_json(rec))
    _write_records(path, out)


def _replace(box: Sandbox, path: Path, how: str) -> None:
    if not path.parent.is_dir() or not _no_link(path.parent):  # an earlier change replaced the folder itself
        return
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()
    if how == "fifo":
        os.mkfifo(path)
    elif how == "link_secret":
        os.symlink(box.outside / ("secret.jsonl" if path.suffix == ".jsonl" else "secret.yaml" if path.suffix == ".yaml"
                                  else "secret.json" if path.suffix == ".json" else "secret.txt"), path)
    elif how == "link_devzero":
        os.symlink("/dev/zero", path)
    elif how == "link_outside_dir":
        os.symlink(box.outside / "results", path)
    elif how == "link_loop":
        os.symlink(path.name, path)
    elif how == "link_dangling":
        os.symlink(box.outside / "nothing-here", path)
    elif how == "empty":
        path.write_bytes(b"")
    elif how == "huge":  # sparse: costs no disk, but reading it whole costs more than the memory bound
        with open(path, "wb") as f:
            f.truncate(HUGE_BYTES)
    elif how == "dir":
        path.mkdir()
    elif how == "garbage":
        path.write_bytes(b"\x00\xff" * 1000 + b"\x1b[31m")


def _plant(box: Sandbox, name: str, where: str) -> None:
    """A folder, a kept suite or an activation named `name` (a hostile string) in the results."""
    safe = name.replace("/", "_").replace("\x00", "_")[:200] or "_"
    try:
        os.fsencode(safe)
    except UnicodeError:
        safe = "bad\udcff"
    source = box.inp / "p" / "trials.jsonl"
    recs = (_records(source) if _writable(source) else None) or []
    if where == "folder":
        folder = box.inp / safe
        if folder.exists() or folder.is_symlink() or not _no_link(box.inp):
            return
        folder.mkdir(parents=True)
        _write_records(folder / "trials.jsonl", [to_json(r) for r in recs])
    elif where == "suite":
        _edit_records(box.inp / "p" / "trials.jsonl", "all", ("suite",), name)
        kept = box.inp / "p" / "suites" / f"{safe}.yaml"
        if kept.parent.is_dir() and _no_link(kept.parent) and not kept.exists() and not kept.is_symlink():
            kept.write_text(to_yaml({**REAL_SUITES["p"], "name": name}))
    elif where in ("activation", "reference", "impl", "dtype"):
        for rel in ("k/trials.jsonl", "l/trials.jsonl"):
            _edit_records(box.inp / rel, 0, ("config", where), name)
    elif where == "tag":
        _edit_records(box.inp / "p" / "trials.jsonl", 0, ("config", "tag"), name)
    else:
        _edit_records(box.inp / "l" / "trials.jsonl", "all", (where,), name)


def apply(box: Sandbox, real: Path, changes: list[tuple]) -> None:
    """Copy the real results into box.inp and its history into box.out, then make `changes`."""
    shutil.copytree(real, box.inp, dirs_exist_ok=True, symlinks=True)
    shutil.copytree(real / "history", box.out / "history", symlinks=True)
    shutil.rmtree(box.inp / "history")
    for change in changes:
        kind = change[0]
        if kind == "field":
            _edit_records(_target(box, change[1]), change[2], change[3], change[4])
        elif kind == "suite_field":
            _edit_records(_target(box, change[1]), "all", ("suite",), box.sub(change[2]))
        elif kind == "series_file":
            _edit_records(_target(box, change[1]), "all", ("series_file",), box.sub(change[2]))
        elif kind == "tear":
            p = _target(box, change[1])
            if _writable(p):
                raw = p.read_bytes()
                p.write_bytes(raw[: int(len(raw) * change[2])])
        elif kind == "append":
            p = _target(box, change[1])
            if _writable(p):
                with open(p, "ab") as f:
                    f.write(change[2] + b"\n")
        elif kind == "replace":
            p = _target(box, change[1])
            if p is not None:
                _replace(box, p, change[2])
        elif kind == "series":
            p = _target(box, "l/series/*")
            if _writable(p):
                try:
                    doc = json.loads(p.read_text())
                except ValueError:
                    continue
                key = change[1]
                if not isinstance(doc, dict) or not key:  # an earlier change made it something else
                    doc = change[2]
                elif key in ("nats", "bytes", "tokens") and isinstance(doc.get("eval_chunks"), dict):
                    doc["eval_chunks"][key] = change[2]
                else:
                    doc[key] = change[2]
                p.write_text(box.sub(to_json(doc)))
        elif kind == "kept_suite":
            p = box.inp / change[1] / "suites" / f"{change[1]}.yaml"
            if _writable(p):
                p.write_text(box.sub(to_yaml(change[2])))
        elif kind == "planted_name":
            _plant(box, box.sub(change[1]), change[2])
        elif kind == "history" and (_writable(history_file(box)) or not os.path.lexists(history_file(box))):
            with open(history_file(box), "a") as f:
                f.write(box.sub(to_json({"commit": change[1], "date": change[1], "run_dir": change[1], "rows": {"x | y": {"value": change[1]}}})))
                f.write("\n" + box.sub(to_json({"commit": "c", "date": "2026-01-01T00:00:00+00:00", "rows": change[1]})) + "\n")
    for p in box.inp.rglob("trials.jsonl"):  # hostile placeholders inside records become the sandbox's real paths
        if _writable(p) and p.stat().st_size < 2**24:
            p.write_bytes(box.sub(p.read_bytes().decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape"))


NAMES = st.sampled_from(["relu2", "xielu", "swiglu", "a", "b", "fine", "broken", "gelu"])
FLOAT_FLAGS = st.sampled_from(["0.05", "0", "-1", "1", "0.5", "0.9", "0.999", "1e-300", "nan", "inf", "-inf", "1e400", "1e-400", "5e-324", "x"])


@st.composite
def folder_command(draw: Any) -> list[str]:
    """A compare, report or regress command over the sandbox's results (hostile flags now and then)."""
    from .suites import k_expressions

    which = draw(st.sampled_from(["compare", "report", "regress"]))
    extra: list[str] = []
    if which != "regress" and draw(st.integers(0, 3)) == 0:
        extra += ["-k", draw(k_expressions())]
    if which != "regress" and draw(st.integers(0, 4)) == 0:
        extra += [draw(st.sampled_from(["--alpha", "--margin"])), draw(FLOAT_FLAGS)]
    if which != "regress" and draw(st.booleans()):
        extra.append(draw(st.sampled_from(["--merge", "--all"])))
    if which == "compare":
        names = draw(st.lists(st.one_of(NAMES, NAMES, hostile_text()), min_size=1, max_size=3))
        fmt = draw(st.sampled_from(["rich", "rich", "md", "csv", "json"]))
        return ["compare", *names, "--results", draw(st.sampled_from(["@IN@", "@IN@/l", "@IN@/p", "@IN@/k/trials.jsonl"])),
                "--format", fmt, *extra]
    if which == "report":
        args = ["report", draw(st.sampled_from(["@IN@", "@IN@/l", "@IN@/p", "@IN@/k", "@IN@/f"])), "--out", f"{OUT}/report", *extra]
        if draw(st.integers(0, 3)) == 0:
            args += ["--baseline", draw(st.one_of(NAMES, hostile_text()))]
        return args
    args = ["regress", draw(st.sampled_from(["@IN@/k", "@IN@/l", "@IN@"])),
            *draw(st.sampled_from([["--baseline", "@IN@/baseline.jsonl"], ["--history", f"{OUT}/history"]]))]
    if draw(st.booleans()):
        args += ["--summary", f"{OUT}/summary.md"]
    if draw(st.integers(0, 4)) == 0:
        args += [draw(st.sampled_from(["--threshold", "--bpb-tolerance"])), draw(FLOAT_FLAGS)]
    if draw(st.integers(0, 5)) == 0:
        args = ["regress", args[1], "--history", f"{OUT}/history", "--accept"]
    return args
