"""Run LLaMA-Factory's own data pipeline on a dmo recipe; print what it loaded as JSON.

Runs under the Python of a LLaMA-Factory virtualenv (llamafactory 0.9.5 pins
transformers <= 5.6, so it cannot share dmo's), never under dmo's:

    python llamafactory_probe.py RECIPE.yaml MODEL_DIR [qwen2_vl]

MODEL_DIR receives a tiny random LLaVA (CLIP vision + Llama text) with a
tokenizer trained here and its processor, unless one is there already:
nothing is downloaded. The recipe gets only the model keys its header asks
for; LLaMA-Factory then loads the datasets as the recipe names them, opens
every image (and every frame of every video), and tokenizes every sample with
the LLaVA template, or with ``qwen2_vl`` (a tiny Qwen2-VL: a recipe with videos).

Qwen2-VL's video processor in transformers needs torchvision, which does not load beside the CPU
torch pin. Its one stand-in here, :class:`FramesVideoProcessor`, makes the same patches from the
image processor's with dmo's ``clip_patches`` (held to transformers' patchify by
tests/models/test_hf_video.py); everything else, from reading the recipe to expanding each
``<video>`` into its tokens, is LLaMA-Factory's own.
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

import yaml

CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] }}: {{ message['content'] }}\n{% endfor %}"
)


def tiny_llava(directory: Path) -> None:
    """A random LLaVA small enough for CPU, saved with its tokenizer and processor."""
    if (directory / "config.json").is_file():
        return
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        PreTrainedTokenizerFast,
    )

    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    words = "what color shape number written how many bar tallest shortest left right red blue green 0 1 2 3 4 5 6 7 8 9"
    bpe.train_from_iterator([words] * 4, trainers.BpeTrainer(
        vocab_size=300, special_tokens=["<unk>", "<s>", "</s>", "<pad>", "<image>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                        pad_token="<pad>", extra_special_tokens={"image_token": "<image>"})
    processor = LlavaProcessor(
        image_processor=CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}),
        tokenizer=tokenizer, patch_size=8, vision_feature_select_strategy="default", num_additional_image_tokens=1,
        chat_template=CHAT_TEMPLATE,
    )
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                       num_attention_heads=2, image_size=32, patch_size=8),
        text_config=LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                                num_attention_heads=2, num_key_value_heads=2),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
    )
    directory.mkdir(parents=True, exist_ok=True)
    LlavaForConditionalGeneration(config).save_pretrained(directory)
    processor.save_pretrained(directory)


QWEN_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>",
                 "<|image_pad|>", "<|video_pad|>"]


def tiny_qwen2_vl(directory: Path) -> None:
    """A random Qwen2-VL small enough for CPU, saved with its tokenizer and image processor."""
    if (directory / "config.json").is_file():
        return
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2VLConfig, Qwen2VLForConditionalGeneration
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    bpe = Tokenizer(models.BPE(unk_token="<|endoftext|>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    words = "which way did the dot move left right up down how many what color shape 0 1 2 3 4 5 user assistant"
    bpe.train_from_iterator([words] * 4, trainers.BpeTrainer(vocab_size=300, special_tokens=QWEN_SPECIALS,
                                                             initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                                             show_progress=False))
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                        unk_token="<|endoftext|>", chat_template=CHAT_TEMPLATE)
    ids = tokenizer.convert_tokens_to_ids
    config = Qwen2VLConfig(
        text_config={"vocab_size": len(tokenizer), "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1,
                     "num_attention_heads": 2, "num_key_value_heads": 2,
                     "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0, "mrope_section": [2, 3, 3]}},
        vision_config={"depth": 1, "embed_dim": 32, "hidden_size": 32, "num_heads": 2, "mlp_ratio": 2, "patch_size": 8,
                       "spatial_merge_size": 2, "temporal_patch_size": 2, "in_channels": 3},
        image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"),
    )
    directory.mkdir(parents=True, exist_ok=True)
    Qwen2VLForConditionalGeneration(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    Qwen2VLImageProcessorPil(min_pixels=32 * 32, max_pixels=32 * 32, patch_size=8, merge_size=2,
                             temporal_patch_size=2).save_pretrained(directory)


def _clip_patches():
    """dmo's clip_patches, loaded from its file (numpy only: dmo itself is not installed here)."""
    import importlib.util

    path = Path(__file__).resolve().parents[2] / "dmo" / "models" / "qwen2_vl_video.py"
    spec = importlib.util.spec_from_file_location("qwen2_vl_video", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.clip_patches


class FramesVideoProcessor:
    """Qwen2VLVideoProcessor's output (pixel_values_videos, video_grid_thw) from the image processor."""

    def __init__(self, image_processor):
        self.image_processor = image_processor
        for name in ("patch_size", "temporal_patch_size", "merge_size", "size"):
            setattr(self, name, getattr(image_processor, name))

    def __call__(self, videos, return_tensors=None, **_):
        import numpy as np
        import torch

        clip_patches, patches, grids = _clip_patches(), [], []
        for frames in videos:
            encoded = self.image_processor(images=list(frames), return_tensors="np")
            grid = np.asarray(encoded["image_grid_thw"])
            per_frame = np.asarray(encoded["pixel_values"]).reshape(len(frames), int(grid[0].prod()), -1)
            video, grid_t = clip_patches(per_frame, self.temporal_patch_size)
            patches.append(video)
            grids.append([grid_t, int(grid[0, 1]), int(grid[0, 2])])
        return {"pixel_values_videos": torch.from_numpy(np.concatenate(patches)), "video_grid_thw": torch.tensor(grids)}


class QwenProcessor:
    """What LLaMA-Factory reads of a Qwen2VLProcessor: its image, video and text parts."""

    model_input_names = ["input_ids", "attention_mask", "pixel_values", "image_grid_thw", "pixel_values_videos",
                         "video_grid_thw"]

    def __init__(self, model_dir: str, tokenizer):
        from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

        self.image_processor = Qwen2VLImageProcessorPil.from_pretrained(model_dir, local_files_only=True)
        self.video_processor = FramesVideoProcessor(self.image_processor)
        self.tokenizer = tokenizer


def main(recipe_path: str, model_dir: str, template_name: str = "llava") -> None:
    from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
    from llamafactory.data.loader import _get_merged_dataset
    from llamafactory.hparams import get_train_args
    from llamafactory.model import load_tokenizer
    from PIL import Image

    (tiny_qwen2_vl if template_name == "qwen2_vl" else tiny_llava)(Path(model_dir))
    recipe = yaml.safe_load(Path(recipe_path).read_text())
    output = Path(model_dir).parent / "lf-output"
    args = {**recipe, "model_name_or_path": model_dir, "template": template_name, "stage": "sft", "do_train": True,
            "finetuning_type": "full", "output_dir": str(output), "overwrite_output_dir": True, "report_to": "none",
            "cutoff_len": 512, "preprocessing_num_workers": 1, "dataloader_num_workers": 0, "use_cpu": True}
    model_args, data_args, training_args, _, _ = get_train_args(args)
    merged = _get_merged_dataset(data_args.dataset, model_args, data_args, training_args, "sft")
    opened, frames_opened, domains = 0, 0, Counter()
    for row in merged:
        firsts = []
        for image in row["_images"] or []:
            with Image.open(image) as handle:
                handle.load()
            opened += 1
            firsts.append(image)
        for video in row.get("_videos") or []:
            for frame in video:
                with Image.open(frame) as handle:
                    handle.load()
                frames_opened += 1
            firsts.append(video[0])
        domains.update(Path(first).parent.parent.name for first in firsts)
    module = load_tokenizer(model_args)
    if template_name == "qwen2_vl":
        from llamafactory.model.patcher import patch_processor

        module["processor"] = QwenProcessor(model_dir, module["tokenizer"])
        patch_processor(module["processor"], module["tokenizer"], model_args)
    template = get_template_and_fix_tokenizer(module["tokenizer"], data_args)
    dataset = get_dataset(template, model_args, data_args, training_args, "sft", **module)
    train = dataset["train_dataset"]
    tokens_ok = sum(1 for row in train if len(row["input_ids"]) > 0 and any(label != -100 for label in row["labels"]))
    tokenizer = module["tokenizer"]
    vision_tokens = Counter()
    for token in ("<|image_pad|>", "<|video_pad|>") if template_name == "qwen2_vl" else ():
        token_id = tokenizer.convert_tokens_to_ids(token)
        vision_tokens.update(f"{token}x{row['input_ids'].count(token_id)}" for row in train)
    print(json.dumps({
        "merged": len(merged), "images_opened": opened, "videos": sum(len(r.get("_videos") or []) for r in merged),
        "frames_opened": frames_opened, "domains": dict(domains), "tokenized": len(train),
        "tokenized_with_answer": tokens_ok, "max_steps": training_args.max_steps,
        "mix_strategy": data_args.mix_strategy, "vision_tokens": dict(vision_tokens),
    }))


if __name__ == "__main__":
    main(*sys.argv[1:4])
