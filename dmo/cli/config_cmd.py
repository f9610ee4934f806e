"""`dmo config ...`: check configuration files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from dmo.cli.common import console
from dmo.cli.options import JsonFlag, print_json

app = typer.Typer(no_args_is_help=True)


@app.command("validate")
def validate(
    files: Annotated[list[Path], typer.Argument(metavar="FILE...", help="Project YAML files.")],
    as_json: JsonFlag = False,
) -> None:
    """Validate YAML configs; exits non-zero naming the file, line and field of the first error."""
    from dmo.config import load_config

    summaries = []
    for path in files:
        config = load_config(path)
        summaries.append({
            "file": str(path), "domains": list(config.domain_names), "sampler": config.search.sampler,
            "merge_method": config.search.merge.method,
        })
    if as_json:
        print_json(summaries)
        return
    for summary in summaries:
        console.print(f"[green]ok[/] {escape(summary['file'])}: domains {', '.join(summary['domains'])}")
