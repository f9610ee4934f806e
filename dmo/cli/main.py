"""The `dmo` command line: a thin layer over the library.

Each area (data, model, train, eval, db, merge, search, ...) lives in its own
module with a Typer app; this file mounts them and turns a :class:`DmoError`
into one readable paragraph and a non-zero exit instead of a traceback.
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from dmo.errors import DmoError

app = typer.Typer(
    name="dmo",
    help="Optimise SFT data mixtures for multimodal LLMs by merging Mixture-of-Depths domain experts.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
err_console = Console(stderr=True)


def _mount() -> None:
    # Explicit list: one line per command area, no registration by import side effect.
    from dmo.cli import config_cmd, data_cmd, demo_cmd

    app.add_typer(config_cmd.app, name="config", help="Validate configuration files.")
    app.add_typer(data_cmd.app, name="data", help="Generate and inspect domain data.")
    app.command("demo", help=demo_cmd.demo.__doc__)(demo_cmd.demo)


_mount()


def main() -> None:
    try:
        app(standalone_mode=False)
    except DmoError as error:
        err_console.print(f"[bold red]error:[/] {error.render()}", highlight=False, soft_wrap=True)
        sys.exit(error.exit_code)
    except KeyboardInterrupt:
        err_console.print("[yellow]interrupted[/]")
        sys.exit(130)
    except typer.Abort:
        sys.exit(1)
    except SystemExit:
        raise
    except Exception as error:  # click usage errors come through here in standalone_mode=False
        import click

        if isinstance(error, click.ClickException):
            error.show()
            sys.exit(error.exit_code)
        raise
