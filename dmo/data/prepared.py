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
    def __init__(self, domains: dict[str, DomainData], tokenizer: PreTrainedTokenizerFast, num_image_tokens: int):
        self.domains = domains
        self.tokenizer = tokenizer
        self.token_ids = TokenIds.of(tokenizer)
        self.num_image_tokens = num_image_tokens
        self._encoded: dict[tuple[str, str], EncodedSplit] = {}

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self.domains)

    def encoded(self, domain: str, split: str) -> EncodedSplit:
        key = (domain, split)
        if key not in self._encoded:
            self._encoded[key] = encode_split(
                self.domains[domain].split(split), self.tokenizer, self.num_image_tokens
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
    return PreparedData(domains, tokenizer, config.model.num_image_tokens)


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
