"""The `dmo` command line: a thin layer over the library.

Each area lives in its own module with a Typer app; this file mounts them and
turns every way a command can end into one exit code of the table in
:mod:`dmo.errors` — a :class:`DmoError` into one readable paragraph, a usage
error into Typer's usage message, Ctrl-C into 130 — never a traceback, except
for a bug. The command modules import only Typer and Rich at the top (heavy
libraries inside the commands that use them), so ``dmo --help`` answers at once.
"""

from __future__ import annotations

import atexit
import gc
import sys
from typing import Annotated

import typer
from rich.markup import escape

from dmo.cli import (
    config_cmd,
    dashboard_cmd,
    data_cmd,
    db_cmd,
    demo_cmd,
    expert_cmd,
    export_cmd,
    merge_cmd,
    model_cmd,
    search_cmd,
    train_cmd,
    validate_cmd,
)
from dmo.cli.common import err_console
from dmo.errors import EXIT_INTERRUPTED, EXIT_USAGE, DmoError

app = typer.Typer(
    name="dmo",
    help="Optimise SFT data mixtures for multimodal LLMs by merging Mixture-of-Depths domain experts.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            typer.echo(f"dmo {version('dmo')}")
        except PackageNotFoundError:  # running from a source tree that was never installed
            typer.echo("dmo (not installed)")
        raise typer.Exit()


@app.callback()
def _root(
    show_version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    """Optimise SFT data mixtures for multimodal LLMs by merging Mixture-of-Depths domain experts."""


# Explicit list: one line per command area, no registration by import side effect.
app.add_typer(config_cmd.app, name="config", help="Validate configuration files.")
app.add_typer(data_cmd.app, name="data", help="Generate and inspect domain data.")
app.add_typer(model_cmd.app, name="model", help="Efficiency accounting and ARank of MoD models.")
app.add_typer(train_cmd.app, name="train", help="Train base, expert and mixture models.")
app.add_typer(expert_cmd.app, name="expert", help="Import experts trained elsewhere (peft LoRA adapters).")
app.add_typer(db_cmd.app, name="db", help="The SQL store: migrations.")
app.add_typer(search_cmd.app, name="search", help="Run, resume, inspect and submit mixture searches.")
app.command("eval")(train_cmd.evaluate_command)
app.add_typer(merge_cmd.app, name="merge", help="Materialise a proxy as a checkpoint (dmo or mergekit).")
app.command("searches")(db_cmd.searches)
app.command("best")(db_cmd.best)
app.command("export")(export_cmd.export)
app.command("validate")(validate_cmd.validate)
app.command("demo")(demo_cmd.demo)
app.command("dashboard")(dashboard_cmd.dashboard)


def run() -> None:
    """The `dmo` console script: :func:`main`, in a process whose exit skips the last garbage collection.

    Tearing down SQLAlchemy, pydantic and Typer's objects costs a read-only command 60–70 ms of
    its ~0.5 s. Freezing the heap after every other exit handler (Ray's shutdown, temporary
    directories' finalizers) has run leaves nothing for that collection to do; the process ends
    and the operating system takes the memory back. Only here, never in :func:`main`: a test
    process calls main many times and must keep collecting.
    """
    atexit.register(gc.freeze)  # registered first, so it runs last
    main()


def main(argv: list[str] | None = None) -> None:
    """Run one command and exit with its code (see the table in :mod:`dmo.errors`)."""
    try:
        code = app(args=argv, prog_name="dmo", standalone_mode=False)
    except DmoError as error:
        err_console.print(f"[bold red]error:[/] {escape(error.render())}", highlight=False, soft_wrap=True)
        sys.exit(error.exit_code)
    except (KeyboardInterrupt, typer.Abort):
        err_console.print("[yellow]interrupted[/]")
        sys.exit(EXIT_INTERRUPTED)
    except typer.Exit as done:
        sys.exit(done.exit_code)
    except _click_errors() as error:
        error.show()
        sys.exit(getattr(error, "exit_code", EXIT_USAGE) or EXIT_USAGE)
    code = code if isinstance(code, int) else 0
    if code == EXIT_INTERRUPTED:  # Typer turns Ctrl-C inside a command into this code, silently
        err_console.print("[yellow]interrupted[/]")
    sys.exit(code)


def _click_errors() -> tuple[type[BaseException], ...]:
    """Usage errors as raised by the click Typer bundles and, for commands built on it, by click.

    Typer vendors click since 0.26 in a module it calls private, so each is looked up without
    assuming it is there: a Typer that moved it still exits 2 through click's own handling.
    """
    import importlib

    errors = []
    for module in ("typer._click.exceptions", "click.exceptions"):
        try:
            errors.append(importlib.import_module(module).ClickException)
        except (ImportError, AttributeError):
            continue
    return tuple(errors)
