"""Tiny random Hugging Face MLLMs for tests, made here and saved with save_pretrained.

Nothing is downloaded: the tokenizer is a byte-level BPE trained on the synthetic
domains' words, the image processor is built from its class, and the chat template is
written here. The checkpoints are then read back through the same path a user's
checkpoint takes (``model: {backend: hf, path: DIR}``, ``local_files_only``).
"""

from __future__ import annotations

from pathlib import Path

import torch

WORDS = ("what color is the shape which shape is it on left or right how many circles squares triangles are there "
         "number written bar tallest shortest red green blue yellow purple orange circle square triangle "
         "0 1 2 3 4 5 6 7 8 9 ? .")
LLAVA_TEMPLATE = (
    "{% for message in messages %}{% if message['role'] == 'user' %}USER: "
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}<image>\n{% else %}{{ part['text'] }}"
    "{% endif %}{% endfor %} {% else %}ASSISTANT: {{ message['content'][0]['text'] }}</s>{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}ASSISTANT:{% endif %}"
)
QWEN_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n"
    "{% for part in message['content'] %}{% if part['type'] == 'image' %}<|vision_start|><|image_pad|><|vision_end|>"
    "{% elif part['type'] == 'video' %}<|vision_start|><|video_pad|><|vision_end|>{% else %}{{ part['text'] }}{% endif %}{% endfor %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def _tokenizer(specials: list[str], *, bos: str | None, eos: str, pad: str, template: str):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=420, special_tokens=["<unk>", *specials],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    bpe.train_from_iterator([WORDS] * 8, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token=bos, eos_token=eos, pad_token=pad,
                                        unk_token="<unk>", additional_special_tokens=[s for s in specials
                                                                                       if s not in (bos, eos, pad)])
    tokenizer.chat_template = template
    return tokenizer


def tiny_llava(directory: Path, *, layers: int = 3, seed: int = 0) -> Path:
    """A random LLaVA (CLIP vision + Llama text), hidden 32, with its tokenizer and image processor."""
    from transformers import CLIPImageProcessorPil, CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    tokenizer = _tokenizer(["<s>", "</s>", "<pad>", "<image>"], bos="<s>", eos="</s>", pad="<pad>",
                           template=LLAVA_TEMPLATE)
    processor = CLIPImageProcessorPil(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
                                       image_size=32, patch_size=8),
        text_config=LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64,
                                num_hidden_layers=layers, num_attention_heads=2, num_key_value_heads=2,
                                max_position_embeddings=256, bos_token_id=tokenizer.bos_token_id,
                                eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id),
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
    )
    torch.manual_seed(seed)
    LlavaForConditionalGeneration(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


def tiny_qwen2_vl(directory: Path, *, layers: int = 3, seed: int = 0) -> Path:
    """A random Qwen2-VL, hidden 32, with its tokenizer and image processor (no video processor)."""
    from transformers import Qwen2VLConfig, Qwen2VLForConditionalGeneration, Qwen2VLImageProcessorPil

    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|vision_start|>", "<|vision_end|>", "<|image_pad|>",
                "<|video_pad|>"]
    tokenizer = _tokenizer(specials, bos=None, eos="<|im_end|>", pad="<|endoftext|>", template=QWEN_TEMPLATE)
    processor = Qwen2VLImageProcessorPil(min_pixels=32 * 32, max_pixels=32 * 32, patch_size=8, merge_size=2,
                                         temporal_patch_size=2)
    ids = tokenizer.convert_tokens_to_ids
    config = Qwen2VLConfig(
        text_config={"vocab_size": len(tokenizer), "hidden_size": 32, "intermediate_size": 64,
                     "num_hidden_layers": layers, "num_attention_heads": 2, "num_key_value_heads": 2,
                     "max_position_embeddings": 256, "rope_parameters": {"rope_type": "default", "rope_theta": 10000.0,
                                                                         "mrope_section": [2, 3, 3]},
                     "eos_token_id": ids("<|im_end|>"), "pad_token_id": ids("<|endoftext|>"), "bos_token_id": None},
        vision_config={"depth": 1, "embed_dim": 32, "hidden_size": 32, "num_heads": 2, "mlp_ratio": 2, "patch_size": 8,
                       "spatial_merge_size": 2, "temporal_patch_size": 2, "in_channels": 3},
        image_token_id=ids("<|image_pad|>"), video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"), vision_end_token_id=ids("<|vision_end|>"),
    )
    torch.manual_seed(seed)
    Qwen2VLForConditionalGeneration(config).save_pretrained(directory)
    tokenizer.save_pretrained(directory)
    processor.save_pretrained(directory)
    return directory


BUILDERS = {"llava": tiny_llava, "qwen2_vl": tiny_qwen2_vl}


def hf_project(tiny_yaml_text: str, checkpoint: Path, workdir: Path) -> str:
    """configs/tiny.yaml with its model section replaced by an ``hf`` one over ``checkpoint``."""
    import yaml

    data = yaml.safe_load(tiny_yaml_text)
    data["project"]["workdir"] = str(workdir)
    data["model"] = {"backend": "hf", "path": str(checkpoint), "image_size": 32,
                     "mod": {"schedule": "explicit", "retention": [1.0, 0.5, 0.25]}}
    data.pop("tokenizer", None)
    data["training"]["expert"] = {**data["training"]["expert"], "steps": 8, "lr": 5e-3}
    data["evaluation"] = {**data.get("evaluation", {}), "dev_limit": 8}
    return yaml.safe_dump(data, sort_keys=False)
