"""`dmo config ...`: check configuration files."""

from __future__ import annotations

from pathlib import Path

import typer
from dmo.cli.common import console

from dmo.cli.options import JsonFlag, print_json
from dmo.config import load_config

app = typer.Typer(no_args_is_help=True)


@app.command("validate")
def validate(files: list[Path], as_json: JsonFlag = False) -> None:
    """Validate YAML configs; exits non-zero naming the file, line and field of the first error."""
    summaries = []
    for path in files:
        config = load_config(path)
        summaries.append(
            {"file": str(path), "domains": list(config.domain_names), "sampler": config.search.sampler}
        )
    if as_json:
        print_json(summaries)
        return
    for summary in summaries:
        console.print(f"[green]ok[/] {summary['file']}: domains {', '.join(summary['domains'])}")
