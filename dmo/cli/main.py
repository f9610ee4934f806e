"""The `dmo` command line: a thin layer over the library.

Each area lives in its own module with a Typer app; this file mounts them and
turns a :class:`DmoError` into one readable paragraph and a non-zero exit
instead of a traceback.
"""

from __future__ import annotations

import sys

import click
import typer
from rich.console import Console

from dmo.cli import (
    config_cmd,
    dashboard_cmd,
    data_cmd,
    db_cmd,
    demo_cmd,
    export_cmd,
    merge_cmd,
    model_cmd,
    search_cmd,
    train_cmd,
    validate_cmd,
)
from dmo.errors import DmoError

app = typer.Typer(
    name="dmo",
    help="Optimise SFT data mixtures for multimodal LLMs by merging Mixture-of-Depths domain experts.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
err_console = Console(stderr=True)

# Explicit list: one line per command area, no registration by import side effect.
app.add_typer(config_cmd.app, name="config", help="Validate configuration files.")
app.add_typer(data_cmd.app, name="data", help="Generate and inspect domain data.")
app.add_typer(model_cmd.app, name="model", help="Efficiency accounting and ARank of MoD models.")
app.add_typer(train_cmd.app, name="train", help="Train base, expert and mixture models.")
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


def main() -> None:
    try:
        app(standalone_mode=False)
    except DmoError as error:
        err_console.print(f"[bold red]error:[/] {error.render()}", highlight=False, soft_wrap=True)
        sys.exit(error.exit_code)
    except click.exceptions.Abort:
        err_console.print("[yellow]aborted[/]")
        sys.exit(130)
    except click.ClickException as error:
        error.show()
        sys.exit(error.exit_code)
