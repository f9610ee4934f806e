"""A project's data made ready for models: samples, the tokenizer, encoded splits.

The tokenizer is trained once per data fingerprint and saved under the
workdir, so every worker (and every later run) encodes with the same one.
Splits are encoded lazily: a worker that trains one expert encodes one domain.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from pathlib import Path

from transformers import PreTrainedTokenizerFast

from dmo.config.schema import DmoConfig
from dmo.data.domains import load_domains
from dmo.data.encoding import EncodedSplit, TokenIds, encode_split
from dmo.data.sample import DomainData
from dmo.data.tokenizer import load_tokenizer, train_tokenizer


class PreparedData:
    def __init__(self, domains: dict[str, DomainData], tokenizer: PreTrainedTokenizerFast, num_image_tokens: int,
                 max_tokens: int | None = None):
        self.domains = domains
        self.tokenizer = tokenizer
        self.token_ids = TokenIds.of(tokenizer)
        self.num_image_tokens = num_image_tokens
        self.max_tokens = max_tokens  # the model's context: longer samples are refused when encoded
        self._encoded: dict[tuple[str, str], EncodedSplit] = {}

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.domains)

    def encoded(self, domain: str, split: str) -> EncodedSplit:
        key = (domain, split)
        if key not in self._encoded:
            self._encoded[key] = encode_split(
                self.domains[domain].split(split), self.tokenizer, self.num_image_tokens, max_tokens=self.max_tokens
            )
        return self._encoded[key]

    def fingerprint(self) -> str:
        """Hash of every sample and the tokenizer: part of every model's cache key."""
        digest = hashlib.sha256(data_hash(self.domains).encode())
        digest.update(self.tokenizer.backend_tokenizer.to_str().encode())
        return digest.hexdigest()


def data_hash(domains: dict[str, DomainData]) -> str:
    digest = hashlib.sha256()
    for name, data in domains.items():
        digest.update(f"{name}:{data.content_hash()}\n".encode())
    return digest.hexdigest()


def prepare_data(config: DmoConfig, *, domains: dict[str, DomainData] | None = None) -> PreparedData:
    domains = domains if domains is not None else load_domains(config)
    folder = config.project.workdir / "tokenizers" / f"{data_hash(domains)[:16]}-v{config.tokenizer.vocab_size}"
    if (folder / "tokenizer.json").is_file():
        tokenizer = load_tokenizer(folder)
    else:
        texts = [text for data in domains.values() for s in data.train for text in (s.question, s.answer)]
        tokenizer = train_tokenizer(texts, vocab_size=config.tokenizer.vocab_size)
        _save_atomically(tokenizer, folder)
    return PreparedData(domains, tokenizer, config.model.num_image_tokens, config.model.max_position_embeddings)


def prepare_for_checkpoint(config: DmoConfig, checkpoint: Path, model_config) -> PreparedData:
    """The project's domains encoded with a checkpoint's own tokenizer, for scoring that checkpoint.

    A checkpoint scored with another tokenizer gives wrong scores silently (0.0 everywhere),
    so its tokenizer is used, and a checkpoint whose token ids or image size do not fit the
    project's data is refused.
    """
    from dmo.errors import CheckpointError

    if not (Path(checkpoint) / "tokenizer.json").is_file():
        raise CheckpointError("the checkpoint has no tokenizer.json to encode the data with", where=str(checkpoint),
                              hint="score checkpoints written by dmo, which carry their tokenizer")
    tokenizer = load_tokenizer(Path(checkpoint))
    ids = TokenIds.of(tokenizer)
    expected = {"image_token_id": ids.image, "pad_token_id": ids.pad, "bos_token_id": ids.bos, "eos_token_id": ids.eos}
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
    return PreparedData(load_domains(config), tokenizer, model_config.num_image_tokens,
                        model_config.max_position_embeddings)


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
