"""`dmo model ...`: what a configured MoD model costs (either backend), and where its attention is redundant."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from dmo.cli.common import console, load_project
from dmo.cli.options import DEFAULT_CONFIG, ConfigOption, JsonFlag, print_json

if TYPE_CHECKING:
    import torch

    from dmo.config.schema import DmoConfig
    from dmo.models.configuration_mod_mllm import ModMLLMConfig

app = typer.Typer(no_args_is_help=True)

TYPICAL_TEXT_TOKENS = 16


def model_info(config: DmoConfig, n_text: int = TYPICAL_TEXT_TOKENS) -> dict[str, Any]:
    """Per-layer retention, kept tokens, FLOPs and KV ratios of the configured model vs dense."""
    from dmo.models.backends import backend_for
    from dmo.models.efficiency import efficiency_vs_dense

    model_config = backend_for(config).accounting_config(config)
    n_vis = model_config.num_image_tokens
    report = efficiency_vs_dense(model_config, n_text, n_vis)
    retention = model_config.layer_retention()
    layers = report.table()
    kept = sum(row["kept_vision"] for row in layers)
    frames = getattr(model_config, "num_frames", 1)
    if frames > 1:  # a video model: how many of each frame's tokens every layer keeps (the same for every frame)
        for row in layers:
            row["kept_per_frame"] = row["kept_vision"] // frames
    payload = {
        "mod": model_config.mod_settings(),
        "vision_tokens": n_vis,
        "frames": frames,
        "vision_tokens_per_frame": n_vis // frames,
        "text_tokens": n_text,
        # ⌊n·ρ⌋ rounds down, so fewer tokens are kept than the nominal schedule says.
        "mean_retention": sum(retention) / len(retention),
        "vision_tokens_kept": kept,
        "vision_tokens_all_layers": n_vis * len(layers),
        "kept_fraction": kept / (n_vis * len(layers)),
        "flops_ratio": report.flops_ratio,
        "kv_ratio": report.kv_ratio,
        "layers": layers,
    }
    if getattr(model_config, "routing_frames", None) is not None:  # VideoLLM-MoD: images route by PRD
        payload["images"] = _image_rows(model_config, n_text, n_vis)
    return payload


def _image_rows(model_config: ModMLLMConfig, n_text: int, n_vis: int) -> dict[str, Any]:
    """What an image (a still clip of every frame) costs in a video model routed by frame: PRD over the
    whole sample's vision tokens."""
    from dmo.models.efficiency import decoder_cost

    shape = (model_config.hidden_size, model_config.intermediate_size, n_text, n_vis)
    mod = decoder_cost(model_config.image_layer_retention(), *shape)
    dense = decoder_cost((1.0,) * model_config.num_hidden_layers, *shape)
    return {"schedule": "prd_shifted_cosine", "retention": [layer.retention for layer in mod.layers],
            "kept_vision": [layer.kept_vision for layer in mod.layers],
            "flops_ratio": mod.total_flops / dense.total_flops, "kv_ratio": mod.total_kv_entries / dense.total_kv_entries}


@app.command("info")
def info(
    config: ConfigOption = DEFAULT_CONFIG,
    text_tokens: Annotated[
        int, typer.Option("--text-tokens", min=0, help="Text tokens per sample (prompt + answer).")
    ] = TYPICAL_TEXT_TOKENS,
    as_json: JsonFlag = False,
) -> None:
    """Per-layer retention, tokens kept, FLOPs and KV-cache ratios of the model vs its dense twin.

    Decoder only (the vision tower costs the same either way), for one sample
    with the model's own number of vision tokens and --text-tokens text tokens.
    """
    payload = model_info(load_project(config), text_tokens)
    if as_json:
        print_json(payload)
        return
    video = payload["frames"] > 1
    table = Table(title=f"MoD schedule {payload['mod']['schedule']!r} vs dense"
                        + (f" ({payload['frames']} frames per sample)" if video else ""))
    columns = ("layer", "retention", "vision kept", *(("per frame",) if video else ()), "tokens", "FLOPs vs dense")
    for column in columns:
        table.add_column(column, justify="right")
    for row in payload["layers"]:
        per_frame = (f"{row['kept_per_frame']}/{payload['vision_tokens_per_frame']}",) if video else ()
        table.add_row(
            str(row["layer"]), f"{row['retention']:.3f}", f"{row['kept_vision']}/{payload['vision_tokens']}",
            *per_frame, f"{row['tokens']}/{row['dense_tokens']}", f"{row['flops_ratio']:.1%}",
        )  # fmt: skip
    console.print(table)
    console.print(
        f"vision tokens kept {payload['vision_tokens_kept']}/{payload['vision_tokens_all_layers']} "
        f"({payload['kept_fraction']:.1%}; nominal mean retention {payload['mean_retention']:.4f})   "
        f"FLOPs {payload['flops_ratio']:.1%}   "
        f"KV cache {payload['kv_ratio']:.1%} of dense  ({payload['vision_tokens']} vision + "
        f"{payload['text_tokens']} text tokens)"
    )
    if "images" in payload:
        images = payload["images"]
        console.print(f"images (still clips) route by PRD over the whole sample: vision kept per layer "
                      f"{', '.join(map(str, images['kept_vision']))} of {payload['vision_tokens']}   "
                      f"FLOPs {images['flops_ratio']:.1%}   KV cache {images['kv_ratio']:.1%} of dense")


def _samples(data: Path, n: int, *, image_size: int | None) -> list:
    """The first ``n`` samples of a ShareGPT JSONL file, or of a folder of them."""
    from dmo.data.sharegpt import read_jsonl
    from dmo.errors import DataError

    files = sorted(data.glob("*.jsonl")) if data.is_dir() else [data]
    if not files:
        raise DataError("no .jsonl file", where=str(data))
    found: list = []
    for path in files:
        found.extend(read_jsonl(path, domain="probe", image_size=image_size))
        if len(found) >= n:
            break
    return found[:n]


def _data_batch(
    checkpoint: Path, data: Path, model_config: ModMLLMConfig, samples: int
) -> dict[str, torch.Tensor]:
    """A right-padded batch of real samples, encoded with the checkpoint's own tokenizer."""
    from dmo.data.encoding import encode_split, training_batch
    from dmo.data.tokenizer import load_tokenizer
    from dmo.errors import DataError

    if not (checkpoint / "tokenizer.json").is_file():
        raise DataError(
            "checkpoint has no tokenizer.json to encode --data with",
            where=str(checkpoint),
            hint="omit --data to measure on random inputs",
        )
    found = _samples(data, samples, image_size=model_config.image_size)
    tokenizer = load_tokenizer(checkpoint)
    split = encode_split(found, tokenizer, model_config.num_image_tokens)
    batch = training_batch(split, range(len(split)), tokenizer.pad_token_id)
    batch.pop("labels")
    return batch


@app.command("arank")
def arank(
    checkpoint: Annotated[Path, typer.Argument(help="Checkpoint directory: dmo's, or a Hugging Face LLaVA or Qwen2-VL one.")],
    samples: Annotated[int, typer.Option("--samples", "-n", min=1, help="Samples to average over.")] = 16,
    data: Annotated[
        Path | None,
        typer.Option(
            "--data",
            help="ShareGPT JSONL file, or a folder of them, encoded with the checkpoint's tokenizer. "
            "Without it the batch is RANDOM inputs ([BOS], <image> tokens, random text and pixels).",
        ),
    ] = None,
    text_tokens: Annotated[
        int, typer.Option("--text-tokens", min=1, help="Random text tokens per sample (without --data).")
    ] = TYPICAL_TEXT_TOKENS,
    route: Annotated[
        int | None, typer.Option("--route", min=0, help="Also name the N lowest-ARank layers to route.")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """ARank per decoder layer (γ-MoD): low rank = redundant attention = a layer to route.

    A routed layer is measured on the tokens it keeps; measure a dense
    checkpoint to choose which layers to route.
    """
    from dmo.errors import DataError
    from dmo.models.arank import layer_aranks, layers_to_route
    from dmo.models.backends import backend_of_checkpoint
    from dmo.models.checkpoint import load_checkpoint
    from dmo.models.efficiency import probe_batch

    if backend_of_checkpoint(checkpoint).name == "hf":
        from dmo.models.backends.hf import attention_probe

        if data is None:
            raise DataError("a Hugging Face checkpoint is measured on real samples", where=str(checkpoint),
                            hint="pass --data FILE.jsonl (ShareGPT with images)")
        model, batch = attention_probe(checkpoint, _samples(data, samples, image_size=None))
        mod = getattr(model.config, "dmo_mod", None)  # a dmo expert's schedule; a pretrained base is dense
        retention = list(mod["retention"]) if mod else [1.0] * model.config.get_text_config().num_hidden_layers
        source = str(data)
    else:
        model = load_checkpoint(checkpoint)
        if data is not None:
            batch = _data_batch(checkpoint, data, model.config, samples)
            source = str(data)
        else:
            batch = probe_batch(model.config, samples, n_text=text_tokens)
            source = "random"
        retention = list(model.config.layer_retention())
    aranks = layer_aranks(model, batch)
    payload: dict[str, Any] = {
        "checkpoint": str(checkpoint),
        "inputs": source,
        "samples": int(batch["input_ids"].shape[0]),
        "retention": retention,
        "aranks": aranks,
    }
    routed = [layer for layer, rho in enumerate(payload["retention"]) if rho < 1.0]
    if route is not None:
        # Layers routed already are measured on the tokens they keep; only dense ones are candidates.
        dense = [layer for layer in range(len(aranks)) if layer not in routed]
        picked = layers_to_route([aranks[layer] for layer in dense], min(route, len(dense)))
        payload["route"] = [dense[i] for i in picked]
        payload["already_routed"] = routed
    if as_json:
        print_json(payload)
        return
    table = Table(title=escape(f"ARank of {checkpoint} on {payload['samples']} {source} samples"))
    for column in ("layer", "retention", "ARank"):
        table.add_column(column, justify="right")
    for layer, (rho, value) in enumerate(zip(payload["retention"], aranks, strict=True)):
        table.add_row(str(layer), f"{rho:.3f}", f"{value:.2f}")
    console.print(table)
    if "route" in payload:
        if routed:
            console.print(f"[yellow]note:[/] layers {routed} are routed already; ARank chose among the dense layers")
        console.print(f"lowest ARank (route these): {payload['route']}")
