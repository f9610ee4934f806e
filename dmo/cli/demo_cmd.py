"""`dmo demo`: the main job end to end on the embedded default config."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from dmo.cli.data_cmd import print_summary
from dmo.cli.options import DEFAULT_CONFIG, ConfigOption
from dmo.config import load_config
from dmo.data import SPLITS, load_domains


def demo(
    config: ConfigOption = DEFAULT_CONFIG,
    trials: Annotated[int | None, typer.Option(help="Override the number of search trials.")] = None,
) -> None:
    """Generate the domains, train base and experts, search mixtures, print the best, export a recipe."""
    console = Console()
    settings = load_config(config)
    domains = load_domains(settings)
    rows = [
        {"domain": name, **{split: len(data.split(split)) for split in SPLITS}, "sha256": data.content_hash()}
        for name, data in domains.items()
    ]
    print_summary(rows, title=f"{settings.project.name}: domains")
    console.print("[yellow]not built yet:[/] expert training, search and export.")
