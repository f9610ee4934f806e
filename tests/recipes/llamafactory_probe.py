"""Run LLaMA-Factory's own data pipeline on a dmo recipe; print what it loaded as JSON.

Runs under the Python of a LLaMA-Factory virtualenv (llamafactory 0.9.5 pins
transformers <= 5.6, so it cannot share dmo's), never under dmo's:

    python llamafactory_probe.py RECIPE.yaml MODEL_DIR [--jsonl-dataset NAME]

MODEL_DIR receives a tiny random LLaVA (CLIP vision + Llama text) with a
tokenizer trained here and its processor, unless one is there already:
nothing is downloaded. The recipe gets only the model keys its header asks
for; LLaMA-Factory then loads the datasets as the recipe names them, opens
every image, and tokenizes every sample with the LLaVA template.
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


def main(recipe_path: str, model_dir: str) -> None:
    from llamafactory.data import get_dataset, get_template_and_fix_tokenizer
    from llamafactory.data.loader import _get_merged_dataset
    from llamafactory.hparams import get_train_args
    from llamafactory.model import load_tokenizer
    from PIL import Image

    tiny_llava(Path(model_dir))
    recipe = yaml.safe_load(Path(recipe_path).read_text())
    output = Path(model_dir).parent / "lf-output"
    args = {**recipe, "model_name_or_path": model_dir, "template": "llava", "stage": "sft", "do_train": True,
            "finetuning_type": "full", "output_dir": str(output), "overwrite_output_dir": True, "report_to": "none",
            "cutoff_len": 512, "preprocessing_num_workers": 1, "dataloader_num_workers": 0, "use_cpu": True}
    model_args, data_args, training_args, _, _ = get_train_args(args)
    merged = _get_merged_dataset(data_args.dataset, model_args, data_args, training_args, "sft")
    images, opened = [], 0
    for row in merged:
        for image in row["_images"] or []:
            with Image.open(image) as handle:
                handle.load()
            opened += 1
            images.append(str(image))
    domains = Counter(Path(image).parent.parent.name for image in images)
    module = load_tokenizer(model_args)
    template = get_template_and_fix_tokenizer(module["tokenizer"], data_args)
    dataset = get_dataset(template, model_args, data_args, training_args, "sft", **module)
    train = dataset["train_dataset"]
    tokens_ok = sum(1 for row in train if len(row["input_ids"]) > 0 and any(label != -100 for label in row["labels"]))
    print(json.dumps({
        "merged": len(merged), "images_opened": opened, "domains": dict(domains), "tokenized": len(train),
        "tokenized_with_answer": tokens_ok, "max_steps": training_args.max_steps,
        "mix_strategy": data_args.mix_strategy,
    }))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
