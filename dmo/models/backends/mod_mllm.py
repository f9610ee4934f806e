"""``mod_mllm``: dmo's own tiny LLaVA-shaped MoD MLLM, trained from scratch on the project's data.

Its tokenizer is a small BPE trained once per data fingerprint and saved under
the workdir, so every worker (and every later run) encodes with the same one.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn
from transformers import PreTrainedTokenizerFast

from dmo.config.names import VISION_TOWER_PATTERN
from dmo.config.schema import DmoConfig, LoraSettings
from dmo.data.encoding import EncodedSplit, TokenIds, encode_split
from dmo.data.prepared import data_hash
from dmo.data.sample import DomainData, Sample
from dmo.data.tokenizer import load_tokenizer, train_tokenizer
from dmo.errors import CheckpointError
from dmo.models.backends.base import ModelBackend

TYPICAL_TEXT_TOKENS = 16  # question + answer + specials of the synthetic domains


@dataclass
class ProjectTokenizerEncoder:
    """dmo's layout, ``[BOS] <image>×n question [SEP] answer [EOS]``, with the project's tokenizer."""

    tokenizer: PreTrainedTokenizerFast
    num_image_tokens: int
    max_tokens: int | None = None
    num_frames: int = 1  # a video model's frames per sample (its images become that many copies)
    image_size: int | None = None  # images of another size are resized to it (None: taken as they are)
    ids: TokenIds = field(init=False)

    def __post_init__(self) -> None:
        self.ids = TokenIds.of(self.tokenizer)

    @property
    def pad_id(self) -> int:
        return self.ids.pad

    @property
    def eos_id(self) -> int:
        return self.ids.eos

    def encode(self, samples: Sequence[Sample]) -> EncodedSplit:
        return encode_split(samples, self.tokenizer, self.num_image_tokens, max_tokens=self.max_tokens,
                            num_frames=self.num_frames, image_size=self.image_size)

    def fingerprint(self) -> bytes:
        return self.tokenizer.backend_tokenizer.to_str().encode()

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=True).strip()

    def save(self, directory: Path) -> None:
        self.tokenizer.save_pretrained(directory)


class ModMllmBackend(ModelBackend):
    name = "mod_mllm"
    trains_base = True

    # ------------------------------------------------------------------ data

    def encoder(self, config: DmoConfig, domains: Mapping[str, DomainData]) -> ProjectTokenizerEncoder:
        model = config.model
        folder = config.project.workdir / "tokenizers" / f"{data_hash(dict(domains))[:16]}-v{config.tokenizer.vocab_size}"
        if (folder / "tokenizer.json").is_file():
            tokenizer = load_tokenizer(folder)
        else:
            texts = [text for data in domains.values() for s in data.train for text in (s.question, s.answer)]
            tokenizer = train_tokenizer(texts, vocab_size=config.tokenizer.vocab_size)
            _save_atomically(tokenizer, folder)
        return ProjectTokenizerEncoder(tokenizer, model.num_image_tokens, model.max_position_embeddings, model.num_frames,
                                       model.image_size)

    def checkpoint_encoder(self, config: DmoConfig, checkpoint: Path) -> ProjectTokenizerEncoder:
        from dmo.models.checkpoint import read_config

        if not (checkpoint / "tokenizer.json").is_file():
            raise CheckpointError("the checkpoint has no tokenizer.json to encode the data with", where=str(checkpoint),
                                  hint="score checkpoints written by dmo, which carry their tokenizer")
        model_config = read_config(checkpoint)
        tokenizer = load_tokenizer(checkpoint)
        ids = TokenIds.of(tokenizer)
        expected = {"image_token_id": ids.image, "pad_token_id": ids.pad, "bos_token_id": ids.bos,
                    "eos_token_id": ids.eos}
        wrong = [f"{k} {getattr(model_config, k)} (tokenizer: {v})" for k, v in expected.items()
                 if getattr(model_config, k) != v]
        if wrong or model_config.vocab_size < len(tokenizer):
            raise CheckpointError(f"its tokenizer does not match its model: {', '.join(wrong) or 'vocabulary size'}",
                                  where=str(checkpoint))
        if model_config.image_size != config.model.image_size:
            raise CheckpointError(
                f"the checkpoint reads {model_config.image_size}-pixel images, the config's domains are "
                f"{config.model.image_size}-pixel", where=str(checkpoint),
                hint="pass the -c CONFIG the checkpoint was trained with")
        return ProjectTokenizerEncoder(tokenizer, model_config.num_image_tokens, model_config.max_position_embeddings,
                                       model_config.num_frames, model_config.image_size)

    # ------------------------------------------------------------------ models

    def model_config(self, config: DmoConfig, encoder: ProjectTokenizerEncoder):
        """The model config of a project, with the token ids of its tokenizer."""
        from dmo.models.configuration_mod_mllm import ModMLLMConfig

        ids = encoder.ids
        return ModMLLMConfig.from_settings(config.model, vocab_size=len(encoder.tokenizer), image_token_id=ids.image,
                                           pad_token_id=ids.pad, bos_token_id=ids.bos, eos_token_id=ids.eos)

    def accounting_config(self, config: DmoConfig):
        """Token ids come from the tokenizer, which may not exist yet; they change no count, so
        placeholders inside the vocabulary stand in."""
        from dmo.models.configuration_mod_mllm import ModMLLMConfig

        return ModMLLMConfig.from_settings(config.model, vocab_size=config.tokenizer.vocab_size, image_token_id=3,
                                           pad_token_id=0, bos_token_id=1, eos_token_id=2)

    def initial_model(self, config: DmoConfig, encoder: ProjectTokenizerEncoder, init: Path | None, *,
                      seed: int) -> nn.Module:
        from dmo.models.modeling_mod_mllm import ModMLLMForCausalLM

        if init is not None:
            return self.load(init)
        torch.manual_seed(seed)
        return ModMLLMForCausalLM(self.model_config(config, encoder))

    def load(self, path: Path, *, verify: bool = True) -> nn.Module:
        from dmo.models.checkpoint import load_checkpoint

        return load_checkpoint(path, verify=verify)

    def state_dict(self, path: Path, *, verify: bool = True, like: Path | None = None) -> dict[str, torch.Tensor]:
        from dmo.models.checkpoint import read_state_dict

        return read_state_dict(path, verify=verify)

    def save(self, model: nn.Module, out_dir: Path, *, encoder: ProjectTokenizerEncoder,
             extra_files: Mapping[str, str | bytes]) -> str:
        from dmo.models.checkpoint import save_checkpoint

        return save_checkpoint(model, out_dir, tokenizer=encoder.tokenizer, extra_files=extra_files).total_sha256

    def fingerprint(self, path: Path) -> str:
        from dmo.models.checkpoint import read_manifest

        return read_manifest(path).model_sha256

    # ------------------------------------------------------------------ parameters

    def freeze_vision(self, model: nn.Module) -> None:
        model.model.vision_tower.requires_grad_(False)

    def lora_targets(self, settings: LoraSettings) -> tuple[str, list[str]]:
        # LoRA only on the decoder's projections; routers and the projector are small and
        # trained in full, as in LLaVA SFT.
        return rf"model\.layers\.\d+\.(self_attn|mlp)\.({'|'.join(settings.target_modules)})", ["router", "projector"]

    def merge_exclude(self, path: Path) -> tuple[str, ...]:
        return (VISION_TOWER_PATTERN,)

    # ------------------------------------------------------------------ merging

    def check_compatible(self, base: Path, experts: Sequence[Path]) -> None:
        from dmo.merging.compat import check_checkpoints

        check_checkpoints(base, experts)

    # ------------------------------------------------------------------ inference

    def generate(self, model: nn.Module, batch: Mapping[str, torch.Tensor], *, max_new_tokens: int,
                 eos_id: int, pad_id: int) -> torch.Tensor:
        room = model.config.max_position_embeddings - batch["input_ids"].shape[1]
        return model.generate_greedy(batch["input_ids"], batch["pixel_values"], batch["attention_mask"],
                                     max_new_tokens=max(0, min(max_new_tokens, room)), eos_token_id=eos_id,
                                     video_rows=batch.get("video_rows"))

    def generate_scored(self, model: nn.Module, batch: Mapping[str, torch.Tensor], answers: torch.Tensor,
                        answer_mask: torch.Tensor, *, max_new_tokens: int, eos_id: int,
                        pad_id: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        room = model.config.max_position_embeddings - batch["input_ids"].shape[1]
        if answers.shape[1] > room:  # the continuation would run past the model's positions
            return None
        return model.generate_greedy(batch["input_ids"], batch["pixel_values"], batch["attention_mask"],
                                     max_new_tokens=max(0, min(max_new_tokens, room)), eos_token_id=eos_id,
                                     video_rows=batch.get("video_rows"), answers=answers, answer_mask=answer_mask)

    def mean_gates(self, model: nn.Module, batch: Mapping[str, torch.Tensor]) -> dict[str, float]:
        with torch.no_grad():
            output = model(input_ids=batch["input_ids"], pixel_values=batch["pixel_values"],
                           attention_mask=batch["attention_mask"], output_routing=True,
                           video_rows=batch.get("video_rows"))
        return {f"layer{i}_mean_gate": float(layer.mean_gate) for i, layer in enumerate(output.routing or [])
                if layer is not None and layer.mean_gate is not None}

    # ------------------------------------------------------------------ efficiency

    def efficiency(self, model_config: Any) -> dict[str, Any]:
        from dmo.models.efficiency import efficiency_vs_dense

        n_text, n_vis = TYPICAL_TEXT_TOKENS, model_config.num_image_tokens
        report = efficiency_vs_dense(model_config, n_text=n_text, n_vis=n_vis)
        return {**model_config.mod_settings(), "flops_ratio": report.flops_ratio, "kv_ratio": report.kv_ratio,
                "n_text": n_text, "n_vis": n_vis}


def _save_atomically(tokenizer: PreTrainedTokenizerFast, folder: Path) -> None:
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{folder.name}-", dir=folder.parent))
    try:
        tokenizer.save_pretrained(str(tmp))
        try:
            os.rename(tmp, folder)
        except OSError:  # another worker saved the same tokenizer first: keep theirs
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
