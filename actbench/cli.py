"""The actbench command line: a thin Typer shell over the library (no logic beyond arguments)."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from typing import Any, Optional

import typer

from actbench import __version__
from actbench.core.text import MAX_LINE_CHARS, Terminal, markup, plain
from actbench.errors import UserError
from actbench.suite import MAX_TRIALS

try:  # typer >= 0.20 vendors click; older typer uses click itself
    from typer._click.exceptions import ClickException
except ImportError:  # pragma: no cover
    from click.exceptions import ClickException

app = typer.Typer(
    help="Benchmark activation functions: kernels, memory, and small-LM quality at matched compute.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    add_completion=False,
)
lm_app = typer.Typer(help="Language-model suites: matching and planning.", no_args_is_help=True)
data_app = typer.Typer(help="Corpora and token shards.", no_args_is_help=True)
app.add_typer(lm_app, name="lm")
app.add_typer(data_app, name="data")
console = Terminal(width=None if sys.stdout.isatty() else 160)
err_console = Terminal(stderr=True, width=None if sys.stderr.isatty() else 160)


def _version(value: bool) -> None:
    if value:
        console.print(f"actbench {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True, help="Print the version and exit."),
    plugin: list[str] = typer.Option([], "--plugin", help="Import MODULE to register extra activations (repeatable)."),
) -> None:
    from actbench.activations import load_plugin

    for module in plugin:
        load_plugin(module)


@app.command("list")
def list_cmd() -> None:
    """Table of every registered activation."""
    from actbench.report.tables import activation_table

    console.print(activation_table())


@app.command()
def info(name: str = typer.Argument(..., help="Activation name, e.g. xielu.")) -> None:
    """Formula, defaults, parameters and implementations of one activation."""
    from actbench.report.tables import activation_info

    console.print(activation_info(name))


def _filter_option() -> Any:
    return typer.Option(None, "-k", "--filter", help='Only trials whose config matches, e.g. -k "activation=xielu and seed=0", '
                                                     '-k "not swiglu" (field=value, field!=value, words as substrings, and/or/not, '
                                                     "parentheses).")


@app.command()
def run(
    suite: Path = typer.Argument(..., help="Suite YAML file, e.g. suites/smoke.yaml."),
    out: Optional[Path] = typer.Option(None, "--out", help="Results folder (default results/<suite name>)."),
    executor: str = typer.Option("ray", "--executor", help="ray (default: each trial in its own worker process) or inline "
                                 "(in this process, one at a time, for debugging: a trial that kills its process ends the sweep)."),
    address: Optional[str] = typer.Option(None, "--address", help="Join a Ray cluster: HOST:PORT, auto, or ray://HOST:10001."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the expanded trials and resources; run nothing."),
    force: bool = typer.Option(False, "--force", help="Run trials that look too large for this machine's memory (the estimate "
                               "refuses them otherwise)."),
    rerun: bool = typer.Option(False, "--rerun", help="Run trials again even if already recorded ok."),
    checkpoints: Optional[str] = typer.Option(None, "--checkpoints", help="Checkpoint storage every node can reach (default <out>/checkpoints)."),
    set_: list[str] = typer.Option([], "--set", help="Override a field for every trial: --set steps=20, --set seed=3, "
                                   "--set resources.cpus=2 (a swept field becomes that one value; repeatable)."),
    max_trials: int = typer.Option(MAX_TRIALS, "--max-trials", min=1, help="Refuse suites that expand to more trials."),
    verbose: bool = typer.Option(False, "--verbose", help="Show Ray's and the trials' own output here instead of <out>/run.log."),
    select: Optional[str] = _filter_option(),
    all_rows: bool = typer.Option(False, "--all", help="With --dry-run: list every trial of a large suite (default: trials per "
                                  "value of each swept field and the first rows)."),
    tensorboard: bool = typer.Option(False, "--tensorboard", help="Same as --log tensorboard."),
    log: list[str] = typer.Option([], "--log", help="Stream each trial's scalars and final metrics to a tracker: tensorboard "
                                  "(<out>/tensorboard), wandb (<out>/wandb unless WANDB_DIR; WANDB_MODE=offline keeps it local), "
                                  "mlflow (MLFLOW_TRACKING_URI, else <out>/mlruns); repeatable or a comma list; needs "
                                  "actbench[tensorboard|wandb|mlflow]."),
) -> None:
    """Run a suite: plan its trials, schedule them, record every outcome."""
    from actbench import api
    from actbench.report.tables import print_summary, trial_table
    from actbench.runner.trackers import names

    s = api.suite_of(suite, set_, max_trials=max_trials, check_paths=dry_run, force=force)
    out_dir = out or Path("results") / s.name
    trackers = names([*log, *(["tensorboard"] if tensorboard else [])])
    if dry_run:
        from actbench.results.store import ResultStore
        from actbench.select import parse_filter

        console.print(trial_table(s, parse_filter(select), set() if rerun else ResultStore(out_dir).successful_ids(), all_rows))
        return
    result = api.run(s, out=out_dir, overrides=set_, executor=executor, address=address, rerun=rerun, checkpoints=checkpoints,
                     select=select, console=err_console, log=True, verbose=verbose, trackers=trackers, status=console, force=force)
    print_summary(result, out_dir, console)
    raise typer.Exit(result.exit_code)


@lm_app.command("plan")
def lm_plan(
    suite: Path = typer.Argument(..., help="An lm suite YAML file."),
    set_: list[str] = typer.Option([], "--set", help="Override a default: --set d_model=256 (repeatable)."),
    results: Optional[Path] = typer.Option(None, "--results", help="Cost with what an earlier run measured (default results/<name> "
                                           "when it holds one)."),
) -> None:
    """Matched d_ff per activation, parameters, FLOPs/token, and what the suite costs: by stage, fixed costs and compiles included."""
    from actbench import api

    console.print(api.plan(suite, set_, results))


@data_app.command("prepare")
def data_prepare(
    out: Path = typer.Option(..., "--out", help="Folder for the shards."),
    text: Optional[Path] = typer.Option(None, "--text", help="A local .txt file or folder of them (offline)."),
    dataset: Optional[str] = typer.Option(None, "--dataset", help="A Hugging Face dataset, e.g. HuggingFaceFW/fineweb-edu (network)."),
    config: Optional[str] = typer.Option(None, "--config", help="The dataset's config, e.g. sample-10BT."),
    split: str = typer.Option("train", "--split"),
    field: str = typer.Option("text", "--field", help="The column holding the text."),
    tokenizer: Optional[str] = typer.Option(None, "--tokenizer", help="bpe (train one on --text; the default there, offline), byte, "
                                            "a tokenizer.json path, or a hub name (gpt2, the default for --dataset)."),
    bpe_vocab_size: int = typer.Option(4096, "--bpe-vocab-size", min=260, max=65535, help="Tokens of the BPE trained with --tokenizer bpe."),
    prefix: Optional[str] = typer.Option(None, "--prefix", help="Shard names: <prefix>_val_000000.bin, <prefix>_train_000001.bin, ... "
                                         "(default: the input's name)."),
    shard_tokens: int = typer.Option(100_000_000, "--shard-tokens", min=1),
    val_tokens: int = typer.Option(10_000_000, "--val-tokens", min=1),
    max_tokens: Optional[int] = typer.Option(None, "--max-tokens", min=1, help="Stop after this many tokens."),
) -> None:
    """Tokenise text into uint16 shards in the modded-nanogpt layout (256 x int32 header: magic
    20240520, version 1, token count; then the tokens), as suites with `data: {source: bin}` read,
    with the token byte table <prefix>_token_bytes.npy beside them so bits per byte are exact."""
    from actbench.lm.prepare import default_prefix, hf_texts, hub_name, prepare_shards, read_pieces, text_files

    if (text is None) == (dataset is None):
        raise UserError("data prepare: give exactly one of --text or --dataset")
    if text is not None:
        files = text_files(text)
        texts = lambda: (read_pieces(f) for f in files)  # noqa: E731
        tokenizer = tokenizer or ("bpe" if importlib.util.find_spec("tokenizers") else "byte")
        name = str(text)
    else:
        if tokenizer == "bpe":
            raise UserError("--tokenizer bpe trains on the input and needs --text (for --dataset: gpt2, byte or a tokenizer.json)")
        hub_name(dataset)
        texts = lambda: hf_texts(dataset, config, split, field)  # noqa: E731
        tokenizer = tokenizer or "gpt2"
        name = f"{dataset}-{config}" if config else dataset
    done = prepare_shards(texts, out, tokenizer, prefix or default_prefix(name), shard_tokens, val_tokens, max_tokens, bpe_vocab_size)
    names = markup(", ".join(f.name for f in done.files[:4]) + (" ..." if len(done.files) > 4 else ""))
    console.print(f"tokenizer: {markup(done.tokenizer)}", highlight=False)
    console.print(f"wrote {len(done.files)} shard(s) to {markup(out)}: {names} ({done.val_tokens:,} validation and "
                  f"{done.train_tokens:,} training tokens)", highlight=False)
    if done.token_bytes:
        console.print(f"bytes per token: {markup(done.token_bytes.name)} (bits per byte are exact)", highlight=False)
    else:
        console.print("bytes per token: unknown (the tokens do not add up to the text's bytes); "
                      "set data.bytes_per_token to report bits per byte", highlight=False)


def _alpha_option() -> Any:
    return typer.Option(0.05, "--alpha", help="Family-wise error rate of the lm verdicts (Holm over the candidates of each table).")


def _margin_option() -> Any:
    return typer.Option(None, "--margin", help="Equivalence margin of lm tables whose suite states no decide: block (absolute, in "
                                                "the table's metric): an interval inside ±margin is 'equivalent'.")


def _merge_option() -> Any:
    return typer.Option(False, "--merge", help="Pool every results folder below the root into one row per "
                                               "activation (default: each folder's rows stay separate).")


TERMINAL_ROWS = 200
"""Rows of a kernel or memory table (and of failed trials) that compare and report print, unless
--all (rich takes seconds per thousand rows; md/csv/json and the report's files hold every row)."""


def _all_rows_option() -> Any:
    return typer.Option(False, "--all", help="Print every row of the kernel and memory tables (and, in report, every failed "
                                             f"trial); default: the first {TERMINAL_ROWS} of each (the verdict lines cover every row).")


@app.command()
def compare(
    names: list[str] = typer.Argument(..., help="Activations; the first is the baseline."),
    results: Path = typer.Option(Path("results"), "--results", help="Folder searched for results (every trials.jsonl below it)."),
    fmt: str = typer.Option("rich", "--format", help="rich (default), md, csv (one long table) or json (one document)."),
    alpha: float = _alpha_option(),
    merge: bool = _merge_option(),
    select: Optional[str] = _filter_option(),
    all_rows: bool = _all_rows_option(),
    margin: Optional[float] = _margin_option(),
) -> None:
    """Compare activations across every recorded kernel, memory and lm result."""
    from actbench import api
    from actbench.report.compare import missing_hints

    if fmt not in ("rich", "md", "csv", "json"):
        raise UserError(f"--format: unknown format {fmt!r} (rich, md, csv, json)")
    c = api.compare(names, results, alpha=alpha, merge=merge, select=select, margin=margin)
    if fmt == "rich":
        _print_comparison(c, all_rows)
    else:
        _print_text({"md": c.to_markdown, "csv": c.to_csv, "json": c.to_json}[fmt]())
    for hint in missing_hints(c):
        err_console.print(markup(hint, limit=MAX_LINE_CHARS), highlight=False, soft_wrap=True)


def _print_text(text: str) -> None:
    """A document (csv, markdown) on stdout: as it is into a pipe or file, without control
    characters on a terminal."""
    print(plain(text, multiline=True, limit=None) if sys.stdout.isatty() else text)


def _print_comparison(c: Any, all_rows: bool) -> None:
    from actbench.report.present import compare_tables

    for table in compare_tables(c, None if all_rows else TERMINAL_ROWS):
        console.print(table)
    for kind, kind_lines in c.lines.items():
        for line in kind_lines:
            console.print(f"[bold]{kind}[/]: {markup(line, limit=MAX_LINE_CHARS)}", highlight=False)


@app.command()
def report(
    run_dir: Path = typer.Argument(..., help="A results folder, e.g. results/llm_tiny."),
    out: Optional[Path] = typer.Option(None, "--out", help="Where to write plots, HTML and exports (default RUN_DIR/report)."),
    baseline: Optional[str] = typer.Option(None, "--baseline", help="Baseline activation (default: the suite's reference, else the first)."),
    alpha: float = _alpha_option(),
    merge: bool = _merge_option(),
    select: Optional[str] = _filter_option(),
    all_rows: bool = _all_rows_option(),
    margin: Optional[float] = _margin_option(),
) -> None:
    """Summary, failures, comparisons, PNG plots, an HTML page and CSV/Parquet exports of a run."""
    from actbench import api

    r = api.report(run_dir, out, baseline=baseline, alpha=alpha, merge=merge, select=select, margin=margin)
    console.print(_text_table(r["summary"]), markup=False, highlight=False)
    failures = r["failures"]
    if not failures.empty:
        shown = failures if all_rows else failures.head(TERMINAL_ROWS)
        console.print(f"[bold red]trials that did not succeed[/] ({len(failures)}" +
                      (f"; the first {len(shown)} here: --all prints them all, {markup(r['html'])} lists every one)"
                       if len(shown) < len(failures) else ")"))
        console.print(_text_table(shown), markup=False, highlight=False)
    if r["comparison"] is not None:
        console.print(f"baseline: {markup(r['names'][0])} ({markup(r['baseline_why'])})")
        _print_comparison(r["comparison"], all_rows)
    console.print(f"wrote {markup(r['html'])}, {len(r['images'])} plot(s), exports: {markup(', '.join(p.name for p in r['exports']) or '-')}")


def _text_table(df: Any) -> str:
    """A frame of a results folder as a plain text table, every cell shown and cut by `plain`."""
    from actbench.report.formats import display

    return display(df).map(plain).to_string(index=False)


@app.command()
def regress(
    run_dir: Path = typer.Argument(..., help="The results folder of the run to check."),
    history: Optional[Path] = typer.Option(None, "--history", help="The nightly gate: a folder of histories (one file per GPU model "
                                           "and environment); the run is judged over its history and added to it."),
    baseline: Optional[Path] = typer.Option(None, "--baseline", help="Instead: compare once with another run (its results folder "
                                            "or trials.jsonl) from the same GPU model."),
    rerun: Optional[Path] = typer.Option(None, "--rerun", help="A results folder with an immediate rerun of the suspect rows "
                                         "(see --suspects): a rerun that moved as well confirms the step."),
    suspects: Optional[Path] = typer.Option(None, "--suspects", help="Only write the suspect rows' trials to this file "
                                            "('suite trial_id' a line, for a rerun with -k); the history is not changed."),
    accept: bool = typer.Option(False, "--accept", help="Accept this night's steps as intended: the history keeps the old level "
                                "and the level of those rows restarts here."),
    commit: Optional[str] = typer.Option(None, "--commit", help="The commit this run tested (default: its records' git commit)."),
    row: Optional[str] = typer.Option(None, "--row", help="For git bisect run: exit 1 when the run's figure of this row (its key in "
                                      "the history) is at its level after its step, 0 before it, 125 without one."),
    plot: Optional[Path] = typer.Option(None, "--plot", help="Draw the trend of every row of the history to this PNG."),
    threshold: Optional[float] = typer.Option(None, "--threshold", min=0, max=0.99, help="With --baseline: the relative change that "
                                              "counts (timing, throughput; default 0.05)."),
    min_effect: Optional[float] = typer.Option(None, "--min-effect", help="With --history: the smallest step of a timing or "
                                               "throughput row that counts (default 0.03: on a settled history a 5% step at 1% "
                                               "noise is confirmed within 2 nights 97% of the time)."),
    bpb_tolerance: float = typer.Option(0.02, "--bpb-tolerance", min=0, help="Validation bits per byte that count as worse or better "
                                        "(for a run that records no val_bpb: val_loss, in nats, absolute); with --history above 0 and below 1."),
    summary: Optional[Path] = typer.Option(None, "--summary", help="Also write the markdown summary here (e.g. $GITHUB_STEP_SUMMARY)."),
) -> None:
    """Judge a run over its history (a step confirmed by a second night or a rerun), or compare it
    once with a baseline run; exit 1 on a confirmed regression (SLOW, WORSE with --baseline) or
    failed trials, 0 otherwise (suspects and machine events are reported), 2 on bad input."""
    from actbench import api

    if row is not None:
        if history is None:
            raise UserError("--row goes with --history")
        code, why = api.regress_row(run_dir, history, row)
        console.print(markup(why))
        raise typer.Exit(code)
    r = api.regress(run_dir, baseline, history=history, rerun=rerun, accept=accept, suspects=suspects, commit=commit, plot=plot,
                    threshold=threshold, bpb_tolerance=bpb_tolerance, summary=summary, min_effect=min_effect)
    if suspects is not None:
        console.print(f"{len(r.night.suspects)} suspect trial(s) written to {markup(suspects)}")
        return
    _print_text(r.markdown)
    if r.night is not None:
        added = "already in" if r.night.recorded_as is not None and not r.night.accepted else "night added to"
        console.print(f"{added} {markup(r.night.path)}" + (f"; trend in {markup(r.plot)}" if r.plot else ""))
    raise typer.Exit(r.exit_code)


@app.command()
def index(
    results: Path = typer.Argument(Path("results"), help="A results folder, or a folder of them."),
) -> None:
    """Bring the columnar index (Parquet, a cache of trials.jsonl) of each results folder up to date and print its tables' paths."""
    from actbench import api
    from actbench.results.index import ROWS, TRIALS

    for folder, place in api.index(results):
        where = f"{markup(place / TRIALS, limit=None)} {markup(place / ROWS, limit=None)}" if place else "not written (no pyarrow, or the cache folder is not writable)"
        console.print(f"{markup(folder, limit=None)}: {where}", highlight=False, soft_wrap=True)


@app.command("plot-activation")
def plot_activation(
    names: list[str] = typer.Argument(..., help="Activations to draw."),
    out: Path = typer.Option(Path("activations.png"), "--out", help="PNG file to write."),
    lo: float = typer.Option(-4.0, "--min"),
    hi: float = typer.Option(4.0, "--max"),
) -> None:
    """Draw f(x) and f'(x) of activations (gated ones with value 1)."""
    from actbench import activations
    from actbench.report.plots.activation import activation_shapes

    for n in names:
        activations.spec(n)
    console.print(f"wrote {markup(activation_shapes(names, out, lo, hi))}")


def _error(message: str) -> None:
    err_console.print(f"actbench: error: {plain(message, limit=MAX_LINE_CHARS)}", markup=False, highlight=False, soft_wrap=True)


def _warning_line(message: Warning | str, category: type[Warning], filename: str, lineno: int, line: str | None = None) -> str:
    return f"actbench: warning: {plain(message, limit=MAX_LINE_CHARS)}\n"


def main() -> None:
    """Console entry point: bad input is one line on stderr and exit code 2; an internal error is
    one line naming the file that holds its traceback, exit code 1. Never a traceback. Warnings
    (e.g. skipped lines of a results file) are one line each."""
    import warnings

    warnings.formatwarning = _warning_line
    try:
        rv = app(standalone_mode=False)
    except UserError as e:
        _error(str(e))
        sys.exit(2)
    except ClickException as e:  # usage errors, bad parameters, unreadable files given as arguments
        _error(e.format_message())
        sys.exit(2)
    except typer.Exit as e:
        sys.exit(e.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("actbench: interrupted")
        sys.exit(130)
    except Exception as e:  # noqa: BLE001 - a bug: one line, the traceback in a file
        import tempfile
        import traceback

        fd, path = tempfile.mkstemp(prefix="actbench-error-", suffix=".txt")
        with os.fdopen(fd, "w") as f:
            f.write(traceback.format_exc())
        _error(f"internal error: {type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''} "
               f"(traceback in {path})")
        sys.exit(1)
    sys.exit(rv if isinstance(rv, int) else 0)
