"""The actbench command line: a thin Typer shell over the library (no logic beyond arguments)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from actbench import __version__
from actbench.errors import UserError

try:  # typer >= 0.20 vendors click; older typer uses click itself
    from typer._click import exceptions as click_exc
except ImportError:  # pragma: no cover
    from click import exceptions as click_exc

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
console = Console(width=None if sys.stdout.isatty() else 160)


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
    from actbench.report import activation_table

    console.print(activation_table())


@app.command()
def info(name: str = typer.Argument(..., help="Activation name, e.g. xielu.")) -> None:
    """Formula, defaults, parameters and implementations of one activation."""
    from actbench.report import activation_info

    console.print(activation_info(name))


@app.command()
def run(
    suite: Path = typer.Argument(..., help="Suite YAML file, e.g. suites/smoke.yaml."),
    out: Optional[Path] = typer.Option(None, "--out", help="Results folder (default results/<suite name>)."),
    executor: str = typer.Option("ray", "--executor", help="ray (default) or inline (in-process, for debugging)."),
    address: Optional[str] = typer.Option(None, "--address", help="Join a Ray cluster: 'auto' or ray://host:10001."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Print the expanded trials and resources; run nothing."),
    rerun: bool = typer.Option(False, "--rerun", help="Run trials again even if already recorded ok."),
    checkpoints: Optional[str] = typer.Option(None, "--checkpoints", help="Checkpoint storage every node can reach (default <out>/checkpoints)."),
    set_: list[str] = typer.Option([], "--set", help="Override a default: --set steps=20 (repeatable)."),
) -> None:
    """Run a suite: expand its trials, schedule them, record every outcome."""
    from actbench.report import print_summary, trial_table
    from actbench.results import ResultStore
    from actbench.runner import make_executor, run_suite
    from actbench.suite import load_suite, parse_overrides

    s = load_suite(suite, parse_overrides(set_))
    if dry_run:
        console.print(trial_table(s))
        return
    out_dir = out or Path("results") / s.name
    ex = make_executor(executor, address)
    try:
        result = run_suite(s, ResultStore(out_dir), ex, rerun=rerun, checkpoint_dir=checkpoints or str(out_dir / "checkpoints"),
                           console=Console(stderr=True, width=None if sys.stderr.isatty() else 160))
    finally:
        ex.shutdown()
    print_summary(result, out_dir, console)
    raise typer.Exit(result.exit_code)


@lm_app.command("plan")
def lm_plan(
    suite: Path = typer.Argument(..., help="An lm suite YAML file."),
    set_: list[str] = typer.Option([], "--set", help="Override a default: --set d_model=256 (repeatable)."),
) -> None:
    """Matched d_ff per activation, parameters, FLOPs/token, and estimated GPU-hours."""
    from actbench.report import plan_table
    from actbench.suite import load_suite, parse_overrides

    s = load_suite(suite, parse_overrides(set_))
    if s.spec.kind != "lm":
        raise UserError(f"{suite}: kind: lm plan needs an lm suite, got {s.spec.kind!r}")
    console.print(plan_table(s))


def main() -> None:
    """Console entry point: bad input is one line on stderr and exit code 2, never a traceback."""
    err = Console(stderr=True)
    try:
        rv = app(standalone_mode=False)
    except UserError as e:
        err.print(f"actbench: error: {e}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
    except click_exc.UsageError as e:
        err.print(f"actbench: error: {e.format_message()}", markup=False, highlight=False, soft_wrap=True)
        sys.exit(2)
    except click_exc.Exit as e:
        sys.exit(e.exit_code)
    except (click_exc.Abort, KeyboardInterrupt):
        err.print("actbench: interrupted")
        sys.exit(130)
    sys.exit(rv if isinstance(rv, int) else 0)
