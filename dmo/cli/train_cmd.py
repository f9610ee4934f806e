"""`dmo train ...` and `dmo eval`: the one training loop and the benchmarks, in this process."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from dmo.cli.common import console, experts_table, load_project, open_store
from dmo.cli.options import DEFAULT_CONFIG, ConfigOption, JsonFlag, StoreUrlOption, print_json
from dmo.cli.progress import loop_bar

app = typer.Typer(no_args_is_help=True)


class Split(str, Enum):
    dev = "dev"
    test = "test"


class Role(str, Enum):
    search = "search"
    report = "report"


def _ensure(settings, store, spec, *, base=None, as_json: bool):
    from dmo.training.jobs import ensure_model

    with loop_bar(spec.name, enabled=not as_json) as on_step:
        return ensure_model(settings, store, spec, base=base, on_step=on_step)


def _base(settings, store, as_json: bool):
    from dmo.training.jobs import base_spec

    return _ensure(settings, store, base_spec(settings), as_json=as_json)


def _prepare(config: Path, store_url: str | None):
    from dmo.runtime import quiet_transformers, set_torch_threads

    settings = load_project(config)
    set_torch_threads(settings.training.threads)
    quiet_transformers()
    return settings, open_store(store_url, settings, create=True)


def _show(model, as_json: bool) -> None:
    if as_json:
        print_json({"id": model.id, "kind": model.kind, "domain": model.domain, "checkpoint": model.checkpoint_uri,
                    "sha256": model.checkpoint_sha256, "metrics": model.metrics, "efficiency": model.efficiency})
    else:
        console.print(experts_table([model], title=f"{model.kind} model {model.id}: {model.checkpoint_uri}"))


@app.command("base")
def base(
    config: ConfigOption = DEFAULT_CONFIG,
    store_url: StoreUrlOption = None,
    from_scratch: Annotated[bool, typer.Option(
        "--from-scratch", help="Train the base even when training.pretrained_base names a shipped one.")] = False,
    out: Annotated[Path | None, typer.Option(
        "--out", help="Also copy the finished checkpoint here (a new folder, or an old checkpoint to replace); "
        "with --from-scratch this makes a base to ship (training.pretrained_base).")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Train (or reuse) the base model on all domains (uniform weights, or training.base_mixture)."""
    if out is not None:
        from dmo.models.checkpoint import check_replaceable

        check_replaceable(out.absolute())  # before the training, not after it
    settings, store = _prepare(config, store_url)
    if (from_scratch or out is not None) and settings.model.backend != "mod_mllm":
        from dmo.errors import DmoError

        raise DmoError(f"--from-scratch and --out make a base of dmo's own model; with backend {settings.model.backend!r} "
                       "the checkpoint in model.path is the base already", where="--out" if out else "--from-scratch")
    if from_scratch:
        settings = settings.model_copy(update={"training": settings.training.model_copy(update={"pretrained_base": None})})
    model = _base(settings, store, as_json)
    if out is None:
        _show(model, as_json)
        return
    import os

    from dmo.models.checkpoint import copy_checkpoint
    from dmo.training.shipped_base import WEIGHTS_FILE, check_shippable

    check_shippable(Path(model.checkpoint_uri))
    manifest = copy_checkpoint(model.checkpoint_uri, out)
    weights = manifest.files[WEIGHTS_FILE]
    pinned_path = os.path.relpath(out.absolute(), config.absolute().parent)  # the loader resolves it from there
    if as_json:
        print_json({"id": model.id, "kind": model.kind, "checkpoint": str(out), "sha256": manifest.total_sha256,
                    "weights_sha256": weights, "pin": {"path": pinned_path, "weights_sha256": weights},
                    "metrics": model.metrics})
    else:
        _show(model, as_json)
        console.print(f"copied to {escape(str(out))}; to adopt it, add to {escape(str(config))}:\n"
                      f"training:\n  pretrained_base: {{path: {escape(pinned_path)}, weights_sha256: {weights}}}")


@app.command("expert")
def expert(
    domain: Annotated[str, typer.Argument(help="A configured domain.")],
    config: ConfigOption = DEFAULT_CONFIG,
    store_url: StoreUrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Train (or reuse) one domain's expert from the base."""
    from dmo.errors import DmoError
    from dmo.training.jobs import expert_spec

    settings = load_project(config)
    if domain not in settings.domain_names:
        raise DmoError(f"unknown domain {domain!r}", where="DOMAIN", hint=f"configured: {', '.join(settings.domain_names)}")
    settings, store = _prepare(config, store_url)
    base_model = _base(settings, store, as_json)
    _show(_ensure(settings, store, expert_spec(settings, domain), base=base_model, as_json=as_json), as_json)


@app.command("mixture")
def mixture(
    weights: Annotated[str, typer.Option("--weights", help="Comma-separated, one per domain, summing to 1.")],
    config: ConfigOption = DEFAULT_CONFIG,
    normalize: Annotated[bool, typer.Option("--normalize", help="Rescale weights that do not sum to 1.")] = False,
    store_url: StoreUrlOption = None,
    as_json: JsonFlag = False,
) -> None:
    """Train (or reuse) a mixture-SFT model: same base, budget and schedule as the experts."""
    from dmo.mixture import Mixture
    from dmo.training.jobs import mixture_spec

    mixture_value = Mixture.parse(weights, load_project(config).domain_names, normalize=normalize)
    settings, store = _prepare(config, store_url)
    base_model = _base(settings, store, as_json)
    _show(_ensure(settings, store, mixture_spec(mixture_value), base=base_model, as_json=as_json), as_json)


def evaluate_command(
    checkpoint: Annotated[Path, typer.Argument(metavar="CHECKPOINT", help="A checkpoint directory.")],
    config: ConfigOption = DEFAULT_CONFIG,
    split: Annotated[Split, typer.Option(help="Which split of every domain to score.")] = Split.dev,
    limit: Annotated[int | None, typer.Option(min=1, help="Samples per benchmark.")] = None,
    benchmarks: Annotated[Role | None, typer.Option(
        "--benchmarks", help="Score the config's declared benchmarks of this role, each by its own metric, "
                             "instead of the domains' splits.")] = None,
    as_json: JsonFlag = False,
) -> None:
    """Score a checkpoint on every domain's benchmark (exact match and likelihood), or on the declared
    benchmarks of one role (--benchmarks search|report)."""
    from rich.table import Table

    from dmo.data.domains import load_benchmarks
    from dmo.data.prepared import prepare_for_checkpoint
    from dmo.errors import ConfigError
    from dmo.evaluation import benchmarks_for, evaluate
    from dmo.evaluation.benchmarks import declared_benchmarks
    from dmo.models.backends import backend_of_checkpoint

    settings = load_project(config)
    if benchmarks is not None and split is not Split.dev:
        raise ConfigError("--split picks a domain split; declared benchmarks have their own samples",
                          where="--split", hint="drop --split, or drop --benchmarks to score the domains' splits")
    if benchmarks is not None and not declared_benchmarks(settings, benchmarks.value):
        raise ConfigError(f"the config declares no {benchmarks.value} benchmark", where="benchmarks",
                          hint="add one to the config's benchmarks: section, or score the domains' splits")
    backend = backend_of_checkpoint(checkpoint)
    model = backend.load(checkpoint)
    data = prepare_for_checkpoint(settings, checkpoint)
    if benchmarks is None:
        chosen, where = benchmarks_for(data.names, split.value), split.value
    else:
        data.add_benchmarks(load_benchmarks(settings, (benchmarks.value,), data.domains))
        chosen, where = declared_benchmarks(settings, benchmarks.value), f"{benchmarks.value} benchmarks"
    result = evaluate(model, data, chosen, backend=backend, max_new_tokens=settings.evaluation.max_new_tokens,
                      batch_size=settings.evaluation.batch_size, limit=limit)
    if as_json:
        print_json(result.to_dict())
        return
    table = Table(title=escape(f"{checkpoint} on {where}"))
    declared = benchmarks is not None
    for column in ("benchmark", *(("metric", "score") if declared else ()), "exact match", "likelihood", "samples"):
        table.add_column(column, justify="right")
    for name, score in result.benchmarks.items():
        table.add_row(name, *((score.metric, f"{score.score:.1f}") if declared else ()), _points(score.exact_match),
                      _points(score.likelihood), str(score.samples))
    table.add_row("[bold]average[/]", *(("", _points(result.average("benchmark"))) if declared else ()),
                  _points(result.average("exact_match")), _points(result.average("likelihood")), "")
    console.print(table)


def _points(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"
