"""`dmo data ...`: generate and inspect domain data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from dmo.cli.common import console
from rich.table import Table

from dmo.cli.options import DEFAULT_CONFIG, ConfigOption, JsonFlag, print_json
from dmo.config import load_config
from dmo.data import SPLITS, load_domains, write_domains
from dmo.errors import DataError

app = typer.Typer(no_args_is_help=True)


@app.command("generate")
def generate(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for <domain>/<split>.jsonl, images and dataset_info.json.")],
    config: ConfigOption = DEFAULT_CONFIG,
    force: Annotated[bool, typer.Option("--force", help="Write into a folder that is not empty.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Write every configured domain in the LLaMA-Factory ShareGPT format (JSONL + PNG)."""
    settings = load_config(config)
    if out.exists() and any(out.iterdir()) and not force:
        raise DataError("output folder is not empty", where=str(out), hint="choose another --out or pass --force")
    domains = load_domains(settings)
    write_domains(domains, out)
    rows = [
        {"domain": name, **{split: len(data.split(split)) for split in SPLITS}, "sha256": data.content_hash()}
        for name, data in domains.items()
    ]
    if as_json:
        print_json({"out": str(out), "domains": rows})
        return
    print_summary(rows, title=f"Domains written to {out}")


def print_summary(rows: list[dict], *, title: str) -> None:
    table = Table(title=title)
    for column in ("domain", *SPLITS, "sha256"):
        table.add_column(column, justify="right" if column in SPLITS else "left")
    for row in rows:
        table.add_row(row["domain"], *(str(row[s]) for s in SPLITS), row["sha256"][:12])
    console.print(table)
