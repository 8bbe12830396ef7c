"""The other doors: names given on the command line (`info`, `plot-activation`, `--plugin`,
`compare`) and the text folder `data prepare` reads (hostile file names and bytes, FIFOs, links
out of the folder and to /dev/zero, huge and empty files, deep folders)."""

from __future__ import annotations

import importlib.util
import os
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from .harness import OUT, Sandbox, fuzz
from .hostile import NAMES, hostile_text
from .promises import run_and_check


def _not_importable(name: str) -> bool:
    """Whether importing `name` runs no code: its first part is no module Python can find (a
    plugin is trusted code, so the fuzzer gives --plugin only names that import nothing)."""
    first = name.split(".")[0]
    try:
        return not first.isidentifier() or importlib.util.find_spec(first) is None
    except (ImportError, ValueError):
        return True


@fuzz(20)
@given(name=st.one_of(st.sampled_from(NAMES), hostile_text()), which=st.sampled_from(["info", "plot", "plugin", "compare"]))
def test_hostile_names_on_the_command_line(sandboxes, name, which):
    if which == "plugin" and not _not_importable(name):
        name = f"no_such_module_{name}"
    args = {"info": ["info", name], "plot": ["plot-activation", name, "--out", f"{OUT}/a.png"],
            "plugin": ["--plugin", name, "list"], "compare": ["compare", name, "relu2", "--results", "@IN@"]}[which]
    with Sandbox(sandboxes) as box:
        run_and_check(box, args, example=args)


@st.composite
def text_folder(draw: Any) -> list[tuple[str, str, bytes]]:
    """(relative path, kind, content) of the entries of a text folder (no huge file: a large text is
    data, streamed by design, and tokenising a gigabyte is slow, not wrong)."""
    name = st.one_of(st.sampled_from(["a.txt", "b.txt", "sub/c.txt", "sub/deeper/d.txt", "e.md", ".hidden.txt", "x"]),
                     hostile_text().map(lambda t: (t.replace("/", "_").replace("\x00", "_")[:100] or "_") + ".txt"))
    kind = st.sampled_from(["text", "text", "text", "bytes", "empty", "fifo", "link_secret", "link_devzero", "link_outside_dir",
                            "link_loop", "dir"])
    content = st.one_of(hostile_text().map(lambda t: t.encode("utf-8", "surrogatepass")),
                        st.sampled_from([b"\xff\xfe\x00a", b"\xef\xbb\xbfhello", b"a" * 5_000_000, b"\x00" * 1000, b"\xc3"]))
    return draw(st.lists(st.tuples(name, kind, content), min_size=1, max_size=5, unique_by=lambda e: e[0]))


def _make(box: Sandbox, root: str, entries: list[tuple[str, str, bytes]]) -> None:
    for rel, kind, content in entries:
        path = box.inp / root / rel
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if kind in ("text", "bytes"):
                path.write_bytes(content if kind == "bytes" else content.decode("utf-8", "replace").encode())
            elif kind == "empty":
                path.write_bytes(b"")
            elif kind == "fifo":
                os.mkfifo(path)
            elif kind == "dir":
                path.mkdir()
            else:
                target = {"link_secret": box.outside / "secret.txt", "link_devzero": "/dev/zero", "link_outside_dir": box.outside,
                          "link_loop": path.name}[kind]
                os.symlink(target, path)
        except (OSError, UnicodeError):  # a name this file system cannot hold
            continue


@fuzz(12)
@given(entries=text_folder(), flags=st.lists(st.sampled_from([["--max-tokens", "1"], ["--val-tokens", "1"], ["--shard-tokens", "1"],
                                                               ["--prefix", "../../../outside/pwn"], ["--prefix", "\x1b[31m"],
                                                               ["--prefix", "[/x]"], ["--max-tokens", str(2**70)]]), max_size=2),
       whole=st.booleans())
def test_hostile_text_folder_for_data_prepare(sandboxes, entries, flags, whole):
    with Sandbox(sandboxes) as box:
        _make(box, "text", entries)
        source = "@IN@/text" if whole else f"@IN@/text/{entries[0][0]}"
        args = ["data", "prepare", "--text", source, "--out", f"{OUT}/shards", "--tokenizer", "byte", *[a for f in flags for a in f]]
        run_and_check(box, args, example=(entries, args))
