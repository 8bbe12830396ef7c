"""`actbench data prepare` reads a text folder from anyone: only regular .txt files inside it (a
link, FIFO or device is refused in one line, never followed or opened), streamed so a huge file
cannot exhaust memory, strict UTF-8 (the file and offset of a bad byte named); it writes only
inside --out; --dataset is a hub name, never a path. Real files, the real CLI."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from actbench.cli import main
from actbench.errors import UserError
from actbench.lm.prepare import hub_name, read_pieces
from actbench.lm.shards import read_shard


def prepare(capsys, monkeypatch, *args: str) -> tuple[int, str, str]:
    """The CLI in this process: (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["actbench", "data", "prepare", *args])
    with pytest.raises(SystemExit) as e:
        main()
    out = capsys.readouterr()
    return e.value.code, out.out, out.err


def prepare_bounded(*args: str, memory_bytes: int | None = None) -> tuple[int, str, int]:
    """The CLI in a child process, killed after 60 s (a FIFO must not hang it): (exit code,
    stderr, peak resident kB), its address space limited to `memory_bytes`."""
    limit = f"resource.setrlimit(resource.RLIMIT_AS, ({memory_bytes}, {memory_bytes}))" if memory_bytes else ""
    code = (f"import resource, sys\n{limit}\nfrom actbench.cli import main\nsys.argv = ['actbench', 'data', 'prepare', *{list(args)!r}]\n"
            "try:\n    main()\nfinally:\n    hwm = open('/proc/self/status').read().split('VmHWM:')[1].split()[0]\n"
            "    print('peak_kb', hwm, file=sys.stderr)\n")  # VmHWM: this image's peak (ru_maxrss may count the forked parent)
    started = time.monotonic()
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert time.monotonic() - started < 60
    err, _, peak = r.stderr.rpartition("peak_kb ")
    return r.returncode, err, int(peak)


def one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    return lines[0]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    d = tmp_path / "texts"
    d.mkdir()
    (d / "a.txt").write_text("the quick brown fox\n" * 200)
    (tmp_path / "secret.txt").write_text("a planted link must not read this\n" * 200)
    return d


def test_a_link_out_of_the_folder_is_refused_not_read(folder, tmp_path, capsys, monkeypatch):
    (folder / "leak.txt").symlink_to(tmp_path / "secret.txt")
    code, _, err = prepare(capsys, monkeypatch, "--text", str(folder), "--out", str(tmp_path / "out"), "--tokenizer", "byte",
                           "--val-tokens", "100")
    assert code == 2
    assert one_line(err).startswith(f"actbench: error: --text {folder / 'leak.txt'}: a link; only regular files inside the folder")
    assert not (tmp_path / "out").exists()


def test_a_linked_folder_is_refused_not_followed(folder, tmp_path, capsys, monkeypatch):
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "b.txt").write_text("outside\n")
    (folder / "more").symlink_to(tmp_path / "elsewhere")
    code, _, err = prepare(capsys, monkeypatch, "--text", str(folder), "--out", str(tmp_path / "out"), "--tokenizer", "byte")
    assert code == 2 and f"--text {folder / 'more'}: a link;" in one_line(err)


def test_a_folder_named_txt_is_a_folder_and_its_files_are_read(folder, tmp_path, capsys, monkeypatch):
    (folder / "d.txt").mkdir()
    (folder / "d.txt" / "b.txt").write_text("jumps over the lazy dog\n" * 200)
    code, out, err = prepare(capsys, monkeypatch, "--text", str(folder), "--out", str(tmp_path / "out"), "--tokenizer", "byte",
                             "--val-tokens", "100")
    assert code == 0, err
    tokens = np.concatenate([read_shard(f) for f in sorted((tmp_path / "out").glob("*.bin"), key=lambda p: "val" not in p.name)])
    assert bytes(tokens.astype(np.uint8)) == (folder / "a.txt").read_bytes() + (folder / "d.txt" / "b.txt").read_bytes()


@pytest.mark.parametrize("where", ["in the folder", "given", "an endless device"])
def test_a_fifo_or_device_is_refused_without_opening_it(where, folder, tmp_path):
    fifo = folder / "f.txt" if where == "in the folder" else tmp_path / "pipe.txt"
    if where == "an endless device":
        fifo = Path("/dev/zero")
    else:
        os.mkfifo(fifo)
    given = folder if where == "in the folder" else fifo
    code, err, _ = prepare_bounded("--text", str(given), "--out", str(tmp_path / "out"), "--tokenizer", "byte")
    assert code == 2
    what = "a device" if where == "an endless device" else "a FIFO"
    assert one_line(err).startswith(f"actbench: error: --text {fifo}: {what}"), err


def test_a_huge_file_is_streamed_in_bounded_memory(tmp_path):
    """512 MiB (sparse: no disk) under a 1 GiB address space: read whole, it cannot fit."""
    huge = tmp_path / "huge.txt"
    with open(huge, "wb") as f:
        f.truncate(512 * 2**20)
    code, err, peak_kb = prepare_bounded("--text", str(huge), "--out", str(tmp_path / "out"), "--tokenizer", "byte",
                                         "--val-tokens", "10000", "--max-tokens", "30000", memory_bytes=2**30)
    assert code == 0, err
    assert peak_kb < 200_000, peak_kb  # about 85 MB here
    assert sum(len(read_shard(f)) for f in (tmp_path / "out").glob("*.bin")) == 30000


def test_bytes_that_are_not_utf8_are_refused_naming_the_file_and_offset(folder, tmp_path, capsys, monkeypatch):
    (folder / "latin1.txt").write_bytes("café au lait\n".encode("latin-1"))
    code, _, err = prepare(capsys, monkeypatch, "--text", str(folder), "--out", str(tmp_path / "out"), "--tokenizer", "byte",
                           "--val-tokens", "100")
    assert code == 2
    assert one_line(err) == (f"actbench: error: --text {folder / 'latin1.txt'}: not UTF-8 (byte 0xe9 at offset 3); "
                             "convert it first, e.g. iconv -f latin1 -t utf-8")
    assert not list((tmp_path / "out").iterdir())  # no shard, no temporary folder left


def test_a_byte_order_mark_is_not_text(tmp_path, capsys, monkeypatch):
    (tmp_path / "bom.txt").write_bytes(b"\xef\xbb\xbf" + b"hello world\n" * 50)
    code, _, err = prepare(capsys, monkeypatch, "--text", str(tmp_path / "bom.txt"), "--out", str(tmp_path / "out"),
                           "--tokenizer", "byte", "--val-tokens", "12")
    assert code == 0, err
    assert bytes(np.asarray(read_shard(tmp_path / "out" / "bom_val_000000.bin"), dtype=np.uint8)) == b"hello world\n"


def test_utf8_offsets_across_pieces():
    assert list(read_pieces_of(b"ab\ncd\nef\n", 2)) == ["ab", "\ncd", "\nef\n"]  # cut before a newline that starts a line
    assert "".join(read_pieces_of(b"\xc3\xa9" * 10, 3)) == "é" * 10  # a character split between reads is whole
    with pytest.raises(UserError, match=r"not UTF-8 \(byte 0xff at offset 6\)"):
        list(read_pieces_of(b"ab\xc3\xa9cd\xff", 4))
    with pytest.raises(UserError, match=r"not UTF-8 \(byte 0xc3 at offset 4\)"):
        list(read_pieces_of(b"abcd\xc3", 4))  # cut short at the end


def read_pieces_of(data: bytes, piece_bytes: int, longest: int | None = None):  # noqa: ANN201
    import tempfile

    with tempfile.NamedTemporaryFile(suffix=".txt") as f:
        f.write(data)
        f.flush()
        yield from read_pieces(Path(f.name), piece_bytes, longest)


@pytest.fixture(scope="module")
def bpe():  # noqa: ANN201
    pytest.importorskip("tokenizers")
    from actbench.lm.tokens import EOT, train_bpe

    words = ["the", " cat", " sat", "\n", "\n\n", " on", "  ", "\t", "é", "日本", "'s", " 42", "!", "\n "]
    rng = np.random.default_rng(0)
    return train_bpe(["".join(rng.choice(words, 3000))], 300, (EOT,))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(["a", "bc", " ", "  ", "\n", "\n\n", "\t", "é", "日", "'s", "1", "!", "<|endoftext|>"]), max_size=60),
       st.integers(1, 8))
def test_pieces_tokenise_as_the_whole_text(bpe, parts, piece_bytes):
    """Cutting a file into pieces at line starts changes no token of a byte-level BPE (GPT-2's split)."""
    text = "".join(parts)
    pieces = list(read_pieces_of(text.encode(), piece_bytes, longest=10**6))
    assert "".join(pieces) == text
    assert [i for p in pieces for i in bpe.encode(p).ids] == bpe.encode(text).ids


def test_writes_stay_inside_out(folder, tmp_path, capsys, monkeypatch):
    out = tmp_path / "out"
    code, _, err = prepare(capsys, monkeypatch, "--text", str(folder), "--out", str(out), "--tokenizer", "byte",
                           "--val-tokens", "100", "--prefix", "../escape")
    assert code == 2 and "--prefix '../escape': letters, digits" in one_line(err)
    assert not list(tmp_path.glob("escape*"))
    (tmp_path / "a-file").write_text("x")
    code, _, err = prepare(capsys, monkeypatch, "--text", str(folder), "--out", str(tmp_path / "a-file"), "--tokenizer", "byte")
    assert code == 2 and one_line(err) == f"actbench: error: --out {tmp_path / 'a-file'}: not a folder"


def test_a_dataset_name_is_never_a_path(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "wikitext").mkdir()
    for name, says in (("../secrets", "not a Hugging Face dataset name"), ("/etc", "not a Hugging Face dataset name"),
                       ("loader.py", "not a Hugging Face dataset name"), ("wikitext", "a local file or folder of that name exists")):
        code, _, err = prepare(capsys, monkeypatch, "--dataset", name, "--out", "out", "--tokenizer", "byte")
        assert code == 2 and says in one_line(err), (name, err)
    assert hub_name("HuggingFaceFW/fineweb-edu") == "HuggingFaceFW/fineweb-edu"
