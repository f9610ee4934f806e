"""mergekit interop: proxies as mergekit YAML, merges through ``run_merge``, proxy checkpoints.

Our methods use mergekit's names, formulas and defaults, so a proxy exported
with :func:`mergekit_yaml` and merged by ``mergekit-yaml`` reproduces the
bank's output to float32 rounding (DARE's random masks only when the same seed
draws them in the same order). Excluded parameters are expressed with
mergekit's conditional parameters: their task vectors get weight 0, which
keeps the base's values (``linear``, which ignores the base, lists the base
as an input with weight 1 on them).

mergekit filters are substrings, not globs: an exclude pattern must be a
prefix glob (``model.vision_tower.*``) or an exact name.

:func:`materialize_proxy` writes a proxy as a dmo checkpoint (what
``dmo merge`` does), built by the bank or by mergekit.

:func:`run_mergekit` needs our model type registered with transformers before
mergekit reads a checkpoint (:func:`dmo.models.auto.register_auto`). mergekit has no
architecture definition for ``ModMLLMForCausalLM`` and infers one from tensor
names (decoder layers, vision blocks, loose weights; routers of routed layers
are "optional"). Inference can silently drop tensors, so every merge is
checked: a tensor of the input missing from the output raises MergeError.

For architectures mergekit does define (Qwen2-VL), an expert with tensors the
definition lacks — p-MoD routers — is refused before any YAML is written, naming
them (:mod:`dmo.merging.mergekit_definitions`, which also carries the fix
mergekit 0.1.5's Qwen2-VL definition needs under transformers 5). Patterns are
written against the checkpoint's file names, which can differ from the loaded
model's: transformers 5 loads Qwen2-VL's ``visual.*`` as ``model.visual.*``.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import yaml

from dmo.errors import MergeError
from dmo.merging.bank import DEFAULT_EXCLUDE, TaskVectorBank
from dmo.merging.compat import check_checkpoints
from dmo.merging.mergekit_definitions import text_config_layers, undefined_tensors
from dmo.merging.methods import MergeMethod, get_method
from dmo.mixture import check_weights

GLOB_CHARS = "*?["


def mergekit_filter(pattern: str, *, where: str = "merge.exclude") -> str:
    """A glob pattern as mergekit's substring filter (prefix globs and exact names only)."""
    stem = pattern.removesuffix("*")
    if not stem or any(char in stem for char in GLOB_CHARS):
        raise MergeError(
            f"pattern {pattern!r} cannot be written as a mergekit filter",
            where=where,
            hint="mergekit filters are substrings: use a prefix glob "
            "like 'model.vision_tower.*' or an exact name",
        )
    return stem


def _conditional(
    value: float, *, excluded: float, filters_out: Sequence[str], filters_in: Sequence[str] | None
) -> Any:
    """A mergekit parameter that is ``excluded`` on excluded tensors and ``value`` on merged ones.

    mergekit takes the first matching condition, so exclusions come first; with
    an include list, names matching none of it are excluded too.
    """
    if not filters_out and filters_in is None:
        return value
    conditions: list[dict[str, Any]] = [{"filter": f, "value": excluded} for f in filters_out]
    if filters_in is None:
        conditions.append({"value": value})
    else:
        conditions += [{"filter": f, "value": value} for f in filters_in]
        conditions.append({"value": excluded})
    return conditions


def mergekit_config(
    base: str | Path,
    experts: Sequence[str | Path],
    weights: Sequence[float],
    method: str | MergeMethod,
    params: Mapping[str, Any] | None = None,
    *,
    exclude: Sequence[str] = DEFAULT_EXCLUDE,
    include: Sequence[str] | None = None,
    dtype: str = "float32",
) -> dict[str, Any]:
    """The mergekit configuration (as plain data) of the proxy for ``weights``."""
    method = get_method(method, params)
    values = check_weights(weights, [str(e) for e in experts], simplex=False, where="weights")
    names = _file_tensor_names(Path(base))
    filters_out = [mergekit_filter(on_disk(p, names)) for p in exclude]
    filters_in = None
    if include is not None:
        filters_in = [mergekit_filter(on_disk(p, names), where="merge.include") for p in include]
    restricted = bool(filters_out) or filters_in is not None
    extra = method.mergekit_model_parameters()

    def weight_setting(value: float, excluded: float) -> Any:
        return _conditional(
            value, excluded=excluded, filters_out=filters_out, filters_in=filters_in
        )

    models = []
    if not method.uses_base_model and restricted:
        # linear ignores base_model, so the base joins as an input that owns the excluded tensors.
        models.append({"model": str(base), "parameters": {"weight": weight_setting(0.0, 1.0)}})
    for expert, weight in zip(experts, values):
        parameters = {"weight": weight_setting(weight, 0.0), **extra}
        models.append({"model": str(expert), "parameters": parameters})

    config: dict[str, Any] = {"merge_method": method.name}
    if method.uses_base_model:
        config["base_model"] = str(base)
    config["models"] = models
    config["parameters"] = method.mergekit_parameters()
    config["dtype"] = dtype
    config["out_dtype"] = dtype
    return config


def on_disk(pattern: str, names: set[str]) -> str:
    """``pattern`` (over the loaded model's names) as a pattern over the checkpoint's file names.

    transformers 5 loads some checkpoints under new module paths (Qwen2-VL's ``visual.*`` as
    ``model.visual.*``, LLaVA's ``vision_tower.*`` as ``model.vision_tower.*``) and mergekit reads
    the files: a prefix no file tensor has, but has without the leading ``model.``, is rewritten.
    """
    stem = pattern.rstrip("*")
    if not names or any(name.startswith(stem) for name in names) or not stem.startswith("model."):
        return pattern
    legacy = stem.removeprefix("model.")
    return pattern.removeprefix("model.") if any(name.startswith(legacy) for name in names) else pattern


def _file_tensor_names(directory: Path) -> set[str]:
    return tensor_names(directory) if any(directory.glob("*.safetensors")) else set()


def refuse_undefined_tensors(experts: Sequence[str | Path]) -> None:
    """mergekit writes only the tensors its architecture definition lists: an expert with others
    would lose them silently, so it is refused, naming them (routers first: the usual cause)."""
    for expert in map(Path, experts):
        lost = undefined_tensors(expert, _file_tensor_names(expert))
        if not lost:
            continue
        routers = [name for name in lost if ".router." in name]
        shown = routers or lost
        listed = ", ".join(shown[:4]) + (f" and {len(shown) - 4} more" if len(shown) > 4 else "")
        if routers:
            what = (f"its {len(routers)} p-MoD router tensors are not in mergekit's definition of this "
                    f"architecture, so mergekit would drop them: {listed}")
            hint = ("routed experts cannot go through mergekit: build the proxy with dmo (dmo merge, --via dmo) "
                    "or export a llamafactory/json recipe")
        else:
            what = (f"{len(lost)} of its tensors are not in mergekit's definition of this architecture, so "
                    f"mergekit would drop them: {listed}")
            hint = ("mergekit reads the names a checkpoint is saved under, and dmo saves the experts it trains "
                    "under the loaded model's names: build the proxy with dmo (--via dmo)")
        raise MergeError(what, where=str(expert), hint=hint)


def refuse_adapters(experts: Sequence[str | Path]) -> None:
    """mergekit and dmo's checkpoint writer take full checkpoints: an imported LoRA adapter is named, not
    passed on to fail somewhere inside them."""
    from dmo.merging.adapters import is_adapter

    adapters = [str(e) for e in experts if is_adapter(e)]
    if adapters:
        raise MergeError("is a LoRA adapter: mergekit YAMLs and materialised proxies need full checkpoints",
                         where=adapters[0], hint="fold it first (peft's merge_and_unload) and train or import the "
                         "full expert, or export a llamafactory/json recipe, which needs no weights")


def mergekit_yaml(
    base: str | Path,
    experts: Sequence[str | Path],
    weights: Sequence[float],
    method: str | MergeMethod,
    params: Mapping[str, Any] | None = None,
    *,
    exclude: Sequence[str] = DEFAULT_EXCLUDE,
    include: Sequence[str] | None = None,
    dtype: str = "float32",
) -> str:
    """The proxy for ``weights`` as a mergekit YAML (``mergekit-yaml proxy.yml OUT``)."""
    refuse_adapters(experts)
    refuse_undefined_tensors(experts)
    resolved = get_method(method, params)
    config = mergekit_config(
        base, experts, weights, resolved, exclude=exclude, include=include, dtype=dtype
    )
    header = f"# dmo proxy: {resolved.name}, weights {', '.join(f'{w:g}' for w in weights)}\n"
    if resolved.seed is not None:
        header += f"# random masks: pass --random-seed {resolved.seed} to draw dmo's masks\n"
    return header + yaml.safe_dump(config, sort_keys=False, default_flow_style=None)


def run_mergekit(
    base: str | Path,
    experts: Sequence[str | Path],
    weights: Sequence[float],
    method: str | MergeMethod,
    out_dir: str | Path,
    params: Mapping[str, Any] | None = None,
    *,
    exclude: Sequence[str] = DEFAULT_EXCLUDE,
    include: Sequence[str] | None = None,
    quiet: bool = True,
) -> Path:
    """Merge with mergekit's ``run_merge`` into ``out_dir`` (plain HF directory, no manifest)."""
    from mergekit.config import MergeConfiguration
    from mergekit.merge import run_merge
    from mergekit.options import MergeOptions

    from dmo.models.auto import register_auto

    register_auto()
    resolved = get_method(method, params)
    text = mergekit_yaml(base, experts, weights, resolved, exclude=exclude, include=include)
    config = MergeConfiguration.model_validate(yaml.safe_load(text))
    options = MergeOptions(
        random_seed=resolved.seed,
        copy_tokenizer=False,
        write_model_card=False,
        quiet=quiet,
        safe_serialization=True,
    )
    out_dir = Path(out_dir)
    mergekit_logger = logging.getLogger("mergekit")
    previous, root_previous = mergekit_logger.level, logging.getLogger().level
    if quiet:
        # Architecture inference logs to the root logger; keep the CLI's output readable.
        mergekit_logger.setLevel(logging.ERROR)
        logging.getLogger().setLevel(logging.ERROR)
    try:
        with text_config_layers():
            run_merge(config, str(out_dir), options, config_source=text)
    except (RuntimeError, ValueError) as error:
        raise MergeError(f"mergekit failed: {_short(error)}", where=str(out_dir), hint=_hint(error)) from error
    finally:
        mergekit_logger.setLevel(previous)
        logging.getLogger().setLevel(root_previous)
    check_tensor_names(tensor_names(Path(base)), tensor_names(out_dir), where=str(out_dir))
    return out_dir


def _short(error: BaseException) -> str:
    """mergekit's config errors embed the whole config (a hundred lines): keep what went wrong."""
    text = str(error)
    missing = re.search(r"has no attribute ([\w.]+)", text)
    if text.startswith("Config ") and missing:
        return f"the checkpoint's config has no attribute {missing.group(1)}"
    return text


def _hint(error: BaseException) -> str | None:
    if "has no attribute" in str(error):
        return ("mergekit's definition of this architecture reads a config key this checkpoint's config does not "
                "have (transformers 5 moved text settings into text_config); build the proxy with dmo (--via dmo)")
    return None


def tensor_names(directory: Path) -> set[str]:
    """Names of the tensors in a directory's safetensors files (headers only)."""
    from safetensors import safe_open

    files = sorted(directory.glob("*.safetensors"))
    if not files:
        raise MergeError("no .safetensors file", where=str(directory))
    names: set[str] = set()
    for file in files:
        with safe_open(str(file), framework="pt") as handle:
            names.update(handle.keys())
    return names


def check_tensor_names(inputs: set[str], outputs: set[str], *, where: str) -> None:
    """Every input tensor must be in the merge's output (mergekit can drop tensors silently)."""
    missing = sorted(inputs - outputs)
    if missing:
        raise MergeError(
            f"mergekit wrote {len(outputs)} tensors for {len(inputs)} inputs; "
            f"missing: {', '.join(missing[:5])}"
            + (" …" if len(missing) > 5 else ""),
            where=where,
            hint="mergekit's architecture inference dropped tensors; merge with --via dmo",
        )


def materialize_proxy(
    base: str | Path,
    experts: Sequence[str | Path],
    weights: Sequence[float],
    method: str | MergeMethod,
    out_dir: str | Path,
    params: Mapping[str, Any] | None = None,
    *,
    via: Literal["dmo", "mergekit"] = "dmo",
    exclude: Sequence[str] = DEFAULT_EXCLUDE,
    include: Sequence[str] | None = None,
    force: bool = False,
) -> Path:
    """Write the proxy for ``weights`` as a dmo checkpoint that ``from_pretrained`` loads.

    ``via="dmo"`` builds it with the :class:`TaskVectorBank`; ``via="mergekit"``
    with mergekit's ``run_merge`` (into a temporary sibling), after the same
    compatibility guard. Either way the result is saved by
    :func:`dmo.models.checkpoint.save_checkpoint` (manifest, atomic rename),
    with the base's tokenizer, the provenance (``dmo_merge.json``) and, when
    the patterns allow, the proxy's mergekit YAML (``mergekit_config.yml``).
    """
    from dmo.files import check_directory_target
    from dmo.models.backends import backend_of_checkpoint
    from dmo.models.checkpoint import (
        load_checkpoint,
        read_manifest,
        read_state_dict,
        refuse_pickles,
        save_checkpoint,
        verify_checkpoint,
    )

    base, out_dir = Path(base), Path(out_dir)
    experts = [Path(expert) for expert in experts]
    refuse_adapters(experts)
    if backend_of_checkpoint(base).name != "mod_mllm":
        # The proxy is written as dmo's own checkpoint; a Hugging Face model would need its
        # routers, processor and chat template carried over, which only mergekit's YAML does.
        raise MergeError("is a Hugging Face checkpoint: dmo merge writes proxies of dmo's own model",
                         where=str(base), hint="export the mixture's mergekit YAML (dmo export SEARCH "
                         "--format mergekit) and run it with mergekit-yaml")
    check_directory_target(out_dir)
    if out_dir.exists() and not force:
        raise MergeError(
            "output directory exists", where=str(out_dir), hint="pass --force to replace it"
        )
    resolved = get_method(method, params)
    values = check_weights(weights, [str(e) for e in experts], simplex=False, where="weights")
    if via == "dmo":
        bank = TaskVectorBank.from_checkpoints(base, experts, exclude=exclude, include=include)
        model = bank.load_into(load_checkpoint(base), values, resolved)
    elif via == "mergekit":
        # mergekit reads the files itself (and would unpickle a .bin): the same checks as
        # read_state_dict first — safetensors only, every hash as in the manifest.
        for directory in (base, *experts):
            refuse_pickles(directory)
            verify_checkpoint(directory)
        check_checkpoints(base, experts)
        parent = out_dir.absolute().parent
        parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".mergekit-{out_dir.name}-", dir=parent))
        try:
            target = staging / "merged"
            merged = run_mergekit(
                base, experts, values, resolved, target, exclude=exclude, include=include
            )
            model = load_checkpoint(base)
            model.load_state_dict(read_state_dict(merged, verify=False))
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    else:
        raise MergeError(f"unknown --via {via!r}", where="--via", hint="dmo or mergekit")

    provenance = {
        "base": str(base.resolve()),
        "base_sha256": read_manifest(base).model_sha256,
        "experts": [str(expert.resolve()) for expert in experts],
        "weights": list(values),
        "method": resolved.name,
        "parameters": {**resolved.mergekit_parameters(), **resolved.mergekit_model_parameters()},
        "seed": resolved.seed,
        "exclude": list(exclude),
        "include": None if include is None else list(include),
        "via": via,
    }
    extra_files = {"dmo_merge.json": json.dumps(provenance, indent=2)}
    try:
        extra_files["mergekit_config.yml"] = mergekit_yaml(
            base, experts, values, resolved, exclude=exclude, include=include
        )
    except MergeError:
        pass  # globs mergekit cannot express: the checkpoint is still valid, just without a YAML
    save_checkpoint(model, out_dir, tokenizer=_base_tokenizer(base), extra_files=extra_files)
    return out_dir


def _base_tokenizer(base: Path) -> Any | None:
    """The base's tokenizer, so a proxy is as usable as the base (None if the base has none)."""
    if not (base / "tokenizer.json").is_file():
        return None
    from dmo.data.tokenizer import load_tokenizer

    return load_tokenizer(base)
