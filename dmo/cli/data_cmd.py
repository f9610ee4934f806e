"""`dmo data ...`: generate and inspect domain data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from dmo.cli.common import console, load_project
from dmo.cli.options import DEFAULT_CONFIG, ConfigOption, JsonFlag, print_json

app = typer.Typer(no_args_is_help=True)
SPLITS = ("train", "dev", "test")


@app.command("generate")
def generate(
    out: Annotated[Path, typer.Option("--out", "-o", help="Folder for <domain>/<split>.jsonl, images and dataset_info.json.")],
    config: ConfigOption = DEFAULT_CONFIG,
    force: Annotated[bool, typer.Option("--force", help="Write into a folder that is not empty.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Write every configured domain in the LLaMA-Factory ShareGPT format (JSONL + PNG)."""
    from dmo.data import load_domains, write_domains
    from dmo.errors import DataError

    settings = load_project(config)
    if out.exists() and any(out.iterdir()) and not force:
        raise DataError("output folder is not empty", where=str(out), hint="choose another --out or pass --force")
    domains = load_domains(settings)
    write_domains(domains, out)
    rows = domain_rows(domains)
    if as_json:
        print_json({"out": str(out), "domains": rows})
        return
    print_summary(rows, title=f"Domains written to {out}")


def domain_rows(domains: dict) -> list[dict]:
    return [
        {"domain": name, **{split: len(data.split(split)) for split in SPLITS}, "sha256": data.content_hash()}
        for name, data in domains.items()
    ]


def print_summary(rows: list[dict], *, title: str) -> None:
    table = Table(title=escape(title))
    for column in ("domain", *SPLITS, "sha256"):
        table.add_column(column, justify="right" if column in SPLITS else "left")
    for row in rows:
        table.add_row(row["domain"], *(str(row[s]) for s in SPLITS), row["sha256"][:12])
    console.print(table)
