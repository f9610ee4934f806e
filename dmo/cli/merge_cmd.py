"""`dmo merge`: write the proxy for one mixture as a checkpoint (by dmo's bank or by mergekit).

A thin layer over :func:`dmo.merging.mergekit_interop.materialize_proxy`. The
command is the app's callback, so ``dmo merge --experts ... --out DIR`` runs
it directly once main.py mounts ``app`` under the name ``merge``.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from dmo.cli.options import JsonFlag, print_json
from dmo.errors import MergeError
from dmo.config.names import MERGE_METHODS, VISION_TOWER_PATTERN
from dmo.mixture import check_weights, parse_floats

app = typer.Typer(no_args_is_help=True)


class Via(str, Enum):
    dmo = "dmo"
    mergekit = "mergekit"


def split_paths(values: list[Path]) -> list[Path]:
    """``--experts a --experts b`` and ``--experts a,b`` both name two experts."""
    return [Path(part) for value in values for part in str(value).split(",") if part]


def parse_params(items: list[str]) -> dict[str, str]:
    """``--param density=0.5`` → ``{"density": "0.5"}`` (the method validates the values)."""
    params = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip() or not value.strip():
            raise MergeError(
                f"cannot read {item!r}", where="--param", hint="write key=value, e.g. density=0.5"
            )
        params[key.strip()] = value.strip()
    return params


ExpertsOption = Annotated[
    list[Path],
    typer.Option("--experts", "-e", help="Expert checkpoints (repeat the flag, or commas)."),
]
BaseOption = Annotated[Path, typer.Option("--base", help="The base the experts were trained from.")]
WeightsOption = Annotated[str, typer.Option("--weights", "-w", help="Per expert, e.g. 0.5,0.5.")]
OutOption = Annotated[Path, typer.Option("--out", "-o", help="Directory of the proxy checkpoint.")]
MethodOption = Annotated[str, typer.Option("--method", "-m", help=f"One of: {', '.join(MERGE_METHODS)}.")]
ParamOption = Annotated[
    list[str] | None,
    typer.Option("--param", "-p", help="Method parameter key=value (lambda, density, seed, ...)."),
]
ViaOption = Annotated[Via, typer.Option("--via", help="Build with dmo's bank or with mergekit.")]
NormalizeFlag = Annotated[bool, typer.Option("--normalize", help="Rescale weights to sum to 1.")]
ExcludeOption = Annotated[
    list[str] | None,
    typer.Option(
        "--exclude",
        help="Glob of parameters that keep base values (repeatable; default "
        f"{VISION_TOWER_PATTERN}; '' for none).",
    ),
]
IncludeOption = Annotated[
    list[str] | None,
    typer.Option("--include", help="Glob of parameters to merge (repeatable; default all)."),
]
ForceFlag = Annotated[bool, typer.Option("--force", help="Replace a checkpoint at --out.")]


@app.callback(invoke_without_command=True)
def merge(
    experts: ExpertsOption,
    base: BaseOption,
    weights: WeightsOption,
    out: OutOption,
    method: MethodOption = "task_arithmetic",
    param: ParamOption = None,
    via: ViaOption = Via.dmo,
    normalize: NormalizeFlag = False,
    exclude: ExcludeOption = None,
    include: IncludeOption = None,
    force: ForceFlag = False,
    as_json: JsonFlag = False,
) -> None:
    """Write the proxy θ0 + λ·Σ wᵢ(θᵢ − θ0) (or another method) of a mixture as a checkpoint."""
    from dmo.merging.mergekit_interop import materialize_proxy

    expert_dirs = split_paths(experts)
    values = check_weights(
        parse_floats(weights),
        [d.name for d in expert_dirs],
        simplex=not normalize,
        normalize=normalize,
        where="--weights",
        normalize_flag="--normalize",
    )
    written = materialize_proxy(
        base,
        expert_dirs,
        values,
        method,
        out,
        parse_params(param or []),
        via=via.value,
        exclude=tuple(p for p in exclude if p) if exclude is not None else (VISION_TOWER_PATTERN,),
        include=tuple(include) if include else None,
        force=force,
    )
    summary = {
        "out": str(written),
        "method": method,
        "weights": list(values),
        "experts": [str(d) for d in expert_dirs],
        "via": via.value,
    }
    if as_json:
        print_json(summary)
        return
    mixture = ", ".join(f"{d.name}={w:.4g}" for d, w in zip(expert_dirs, values))
    Console().print(
        f"wrote {method} proxy ({mixture}) via {via.value} to [bold]{written}[/]", highlight=False
    )
