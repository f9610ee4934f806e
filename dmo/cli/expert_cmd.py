"""`dmo expert import`: register an expert trained elsewhere (a peft LoRA adapter or a full checkpoint) for a domain."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from dmo.cli.options import DEFAULT_CONFIG, ConfigOption, JsonFlag, StoreUrlOption

app = typer.Typer(no_args_is_help=True)


@app.command("import")
def import_command(
    directory: Annotated[Path, typer.Argument(help="A peft LoRA adapter directory (adapter_config.json + "
                                                   "adapter_model.safetensors) or a full checkpoint (config.json + "
                                                   "*.safetensors), as peft, LLaMA-Factory or save_pretrained write them.")],
    domain: Annotated[str, typer.Option("--domain", "-d", help="The configured domain it is the expert of.")],
    config: ConfigOption = DEFAULT_CONFIG,
    store_url: StoreUrlOption = None,
    force: Annotated[bool, typer.Option("--force", help="Replace the domain's earlier import.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Verify an expert against the project's base, copy it into the workdir (hashes checked), score it on the
    dev benchmarks and record it: searches over this base then merge it as the domain's expert."""
    from dmo.cli.train_cmd import _prepare, _show
    from dmo.training.imports import import_expert

    settings, store = _prepare(config, store_url)
    _show(import_expert(settings, store, directory, domain, force=force), as_json)
