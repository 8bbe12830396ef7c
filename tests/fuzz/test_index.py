"""The columnar index's door (`actbench.results.index`), through the real CLI: hostile files in
place of an index (and of its key), and a hostile trials.jsonl beside a valid index. Besides the
promises of harness.check, what compare prints must be what it prints with no index at all: the
index is a cache, never trusted over the JSON."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterator

from hypothesis import given
from hypothesis import strategies as st

from actbench.results import index

from .folders import apply, ops
from .harness import Sandbox, fuzz
from .hostile import hostile_json_value
from .promises import run_and_check

COMPARE = ["compare", "relu2", "xielu", "--results", "@IN@", "--format", "json"]
FILES = [index.TRIALS, index.ROWS, index.META]
META_FIELDS = ["version", "folder", "end", "lines", "sha256", "bad", "bad_count", "trials", "rows", "sizes", "identity", "hmac"]

SPOIL = st.one_of(
    st.tuples(st.just("bytes"), st.sampled_from(FILES), st.binary(max_size=300)),
    st.tuples(st.just("flip"), st.sampled_from(FILES), st.floats(0, 1, exclude_max=True)),
    st.tuples(st.just("cut"), st.sampled_from(FILES), st.floats(0, 1)),
    st.tuples(st.just("meta"), st.sampled_from(META_FIELDS), hostile_json_value()),
    st.tuples(st.just("swap"), st.sampled_from(FILES), st.just("")),  # another folder's file of the same name
    st.tuples(st.just("replace"), st.sampled_from(FILES + ["@key"]),
              st.sampled_from(["fifo", "link_secret", "link_devzero", "dir", "missing", "huge", "empty", "world_readable"])),
)


@contextlib.contextmanager
def cache_in(path: Path) -> Iterator[Path]:
    """XDG_CACHE_HOME set to `path` while the commands run."""
    before = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(path)
    try:
        yield path / "actbench"
    finally:
        if before is None:
            os.environ.pop("XDG_CACHE_HOME", None)
        else:
            os.environ["XDG_CACHE_HOME"] = before


def _spoil(box: Sandbox, cache: Path, change: tuple[str, str, Any]) -> None:
    kind, name, how = change
    places = sorted(index.location(d) for d in (box.inp / "k", box.inp / "l", box.inp / "p", box.inp / "f"))
    target = cache / "index.key" if name == "@key" else places[0] / (index.META if kind == "meta" else name)
    if kind != "replace" and not (target.is_file() and not target.is_symlink()):  # an earlier change made it something else
        return
    if kind == "meta":
        try:
            doc = json.loads(target.read_bytes())
        except ValueError:
            return
        if not isinstance(doc, dict):
            return
        doc[name] = how
        target.write_text(json.dumps(doc, default=str))
    elif kind == "swap":
        shutil.copyfile(places[1] / name, target)
    elif kind == "bytes":
        target.write_bytes(how)
    elif kind in ("flip", "cut"):
        raw = bytearray(target.read_bytes())
        at = int(len(raw) * how)
        if kind == "cut":
            raw = raw[:at]
        elif raw:
            raw[at] ^= 0x55
        target.write_bytes(bytes(raw))
    elif how == "world_readable":
        if target.is_file() and not target.is_symlink():
            target.chmod(0o644)
    else:
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)
        if how == "fifo":
            os.mkfifo(target)
        elif how == "link_secret":
            target.symlink_to(box.outside / "secret.json")
        elif how == "link_devzero":
            target.symlink_to("/dev/zero")
        elif how == "dir":
            target.mkdir()
        elif how == "huge":
            with open(target, "wb") as f:
                f.truncate(5 * 2**28)
        elif how == "empty":
            target.write_bytes(b"")


@fuzz(8)
@given(spoils=st.lists(SPOIL, min_size=1, max_size=3))
def test_a_hostile_index_changes_nothing_compare_says(sandboxes, real_results, spoils):
    with Sandbox(sandboxes) as box, cache_in(box.tmp / "cache") as cache:
        apply(box, real_results, [])
        clean = run_and_check(box, COMPARE, codes=(0,))  # builds the index of every folder
        for change in spoils:
            _spoil(box, cache, change)
        o = run_and_check(box, COMPARE, codes=(0,), example=spoils)
        assert o.stdout == clean.stdout, o.describe()


@fuzz(8)
@given(changes=ops())
def test_a_hostile_trials_jsonl_beside_a_valid_index_reads_as_with_none(sandboxes, real_results, changes):
    with Sandbox(sandboxes) as box:
        apply(box, real_results, [])
        with cache_in(box.tmp / "cache"):
            run_and_check(box, COMPARE, codes=(0,))  # the index of the folders as they were
            shutil.rmtree(box.out / "history")
            apply(box, real_results, changes)
            indexed = run_and_check(box, COMPARE, example=changes)
        with cache_in(box.tmp / "fresh"):
            fresh = run_and_check(box, COMPARE, example=changes)
        assert (indexed.code, indexed.stdout) == (fresh.code, fresh.stdout), indexed.describe()
